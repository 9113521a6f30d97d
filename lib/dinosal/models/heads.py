"""Heads on a backbone: DINO's projection head, the multi-crop wrapper, the linear classifiers.

:class:`Classifier` (one label vector per image) and :class:`PatchClassifier`
(one per patch token) put :class:`LinearHead` -- ``eval_linear``'s layer --
on a backbone; :func:`classifier_features` is ``eval_linear``'s choice of
features (CLS of the last ``n`` blocks, optional average-pooled patch tokens).

:class:`DINOHead`'s last layer is weight-normalised with
``torch.nn.utils.parametrizations.weight_norm``; how its parameter names map
to the official checkpoints' ``weight_g``/``weight_v`` is explained in
:mod:`dinosal.models.checkpoints`.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["Classifier", "DINOHead", "LinearHead", "MultiCropWrapper", "PatchClassifier", "classifier_features",
           "feature_dim"]


def _trunc_normal_init(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class DINOHead(nn.Module):
    """DINO's projection head: MLP -> L2 normalise -> weight-normalised Linear.

    ``nlayers`` Linear layers (hidden ``hidden_dim``, GELU between them,
    optional BatchNorm), the last one mapping to ``bottleneck_dim``; the output
    is L2-normalised and passed through ``Linear(bottleneck, out_dim,
    bias=False)`` under weight normalisation. With ``norm_last_layer`` the
    norm ``g`` is filled with 1 and frozen, so each output is the cosine with a
    unit-norm prototype. MLP weights use trunc-normal(std 0.02) init, biases 0;
    the last layer keeps torch's default init, as in the official head.

    Input ``(B, in_dim)``, output ``(B, out_dim)`` logits.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        use_bn: bool = False,
        norm_last_layer: bool = True,
        nlayers: int = 3,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
    ) -> None:
        super().__init__()
        nlayers = max(nlayers, 1)
        if nlayers == 1:
            self.mlp = nn.Linear(in_dim, bottleneck_dim)
        else:
            layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim)]
            if use_bn:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.GELU())
            for _ in range(nlayers - 2):
                layers.append(nn.Linear(hidden_dim, hidden_dim))
                if use_bn:
                    layers.append(nn.BatchNorm1d(hidden_dim))
                layers.append(nn.GELU())
            layers.append(nn.Linear(hidden_dim, bottleneck_dim))
            self.mlp = nn.Sequential(*layers)
        self.apply(_trunc_normal_init)
        last = nn.Linear(bottleneck_dim, out_dim, bias=False)
        self.last_layer = nn.utils.parametrizations.weight_norm(last)
        g = self.last_layer.parametrizations.weight.original0
        with torch.no_grad():
            g.fill_(1.0)
        if norm_last_layer:
            g.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mlp(x)
        x = F.normalize(x, dim=-1, p=2)
        return self.last_layer(x)


class MultiCropWrapper(nn.Module):
    """Backbone + head over a list of crops.

    ``forward(crops)`` takes a list of ``(B, 3, H_i, W_i)`` tensors (or one
    tensor), runs the backbone once per run of *consecutive* crops with the
    same ``(H, W)``, concatenates the CLS outputs in crop order (crop-major:
    rows ``[i*B:(i+1)*B]`` belong to crop ``i``) and runs the head once.
    Returns the head output ``(n_crops*B, K)``; with ``return_backbone=True``
    returns ``(head_out, backbone_out (n_crops*B, D))``.

    The official wrapper groups by width only; grouping by the full size is
    the same for square crops and safe for others.

    Patch tokens (iBOT, Zhou et al. 2022 -- beyond original DINO): with
    ``patch_crops=n`` the first ``n`` crops (one size: the global crops) also
    put their patch tokens through the same head (iBOT's ``shared_head``), and
    a third output ``patch_out`` is appended to the return value: ``(n*B, N,
    K)`` for every patch token in row-major order, or -- with ``masks``, a bool
    ``(n*B, rows, cols)`` crop-major grid -- the patches at True entries enter
    the backbone as the wrapper's learnable ``mask_token`` (built with
    ``mask_token=True``; zeros at the start, as iBOT's ``masked_embed``) and
    ``patch_out`` is ``(M, K)``, the head outputs of only those ``M`` patches
    in the order of ``masks.nonzero()`` (the rest enter no loss). The CLS
    outputs of these crops then come from the masked pass, as in iBOT. With
    ``hide=False`` the crops enter whole and only the outputs at the True
    entries are returned (a teacher that scores the masked patches alone). Needs
    a backbone with ``forward_features`` (and ``forward_masked`` for masks).
    Without ``mask_token`` the state dict is the plain ``backbone.``/``head.``
    layout; with it there is one more key, ``mask_token``.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, mask_token: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.mask_token = nn.Parameter(torch.zeros(1, backbone.embed_dim)) if mask_token else None

    def _cls_features(self, crops) -> list[torch.Tensor]:
        outs = []
        start = 0
        while start < len(crops):
            end = start + 1
            size = tuple(crops[start].shape[-2:])
            while end < len(crops) and tuple(crops[end].shape[-2:]) == size:
                end += 1
            outs.append(self.backbone(torch.cat(list(crops[start:end]))))
            start = end
        return outs

    def forward(self, crops, return_backbone: bool = False, patch_crops: int = 0,
                masks: Optional[torch.Tensor] = None, hide: bool = True):
        if isinstance(crops, torch.Tensor):
            crops = [crops]
        if patch_crops:
            return self._forward_patches(crops, return_backbone, int(patch_crops), masks, hide)
        feats = torch.cat(self._cls_features(crops))
        head_out = self.head(feats)
        return (head_out, feats) if return_backbone else head_out

    def _forward_patches(self, crops, return_backbone: bool, n: int, masks: Optional[torch.Tensor], hide: bool):
        if not 1 <= n <= len(crops) or len({tuple(c.shape[-2:]) for c in crops[:n]}) != 1:
            raise ValueError(f"MultiCropWrapper: patch_crops={n} must name 1..{len(crops)} leading crops of one size")
        x = torch.cat(list(crops[:n]))
        if masks is None or not hide:
            tokens = self.backbone.forward_features(x)
        else:
            if self.mask_token is None:
                raise ValueError("MultiCropWrapper: masks need a wrapper built with mask_token=True")
            tokens = self.backbone.forward_masked(x, masks, self.mask_token)
        prefix = int(getattr(self.backbone, "num_prefix_tokens", 1))
        patches = tokens[:, prefix:]
        feats = torch.cat([tokens[:, 0]] + self._cls_features(crops[n:]))
        head_out = self.head(feats)
        if masks is None:
            patch_out = self.head(patches.reshape(-1, patches.shape[-1])).reshape(*patches.shape[:2], -1)
        else:
            patch_out = self.head(patches[masks.to(patches.device, torch.bool).reshape(patches.shape[:2])])
        return (head_out, feats, patch_out) if return_backbone else (head_out, patch_out)


class LinearHead(nn.Module):
    """``eval_linear``'s classifier: ``Linear(in_dim, num_labels)``, weights
    N(0, 0.01), bias 0 (dino:eval_linear.py:237-251). Input ``(B, in_dim)``
    features (the normed CLS of the last block, or the concatenation
    :func:`classifier_features` makes), output ``(B, num_labels)`` raw logits:
    softmax + CE for one label per image, one sigmoid per class + BCE for
    multi-label (``multi_label`` records which; the layer is the same)."""

    def __init__(self, in_dim: int, num_labels: int, multi_label: bool = False) -> None:
        super().__init__()
        if int(in_dim) < 1 or int(num_labels) < 1:
            raise ValueError(f"LinearHead: in_dim ({in_dim}) and num_labels ({num_labels}) must be >= 1")
        self.multi_label = bool(multi_label)
        self.linear = nn.Linear(in_dim, num_labels)
        nn.init.normal_(self.linear.weight, mean=0.0, std=0.01)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


def feature_dim(embed_dim: int, n_last_blocks: int = 1, avgpool: bool = False) -> int:
    """Width of :func:`classifier_features`: ``embed_dim * (n_last_blocks + avgpool)``."""
    return int(embed_dim) * (int(n_last_blocks) + int(bool(avgpool)))


def classifier_features(backbone: nn.Module, x: torch.Tensor, n_last_blocks: int = 1,
                        avgpool: bool = False) -> torch.Tensor:
    """``eval_linear``'s features of a timm ViT (dino:eval_linear.py:164-172).

    x: normalised ``(B, 3, H, W)`` images, sides multiples of the patch.
    Returns ``(B, D * (n_last_blocks + avgpool))``: the CLS tokens of the
    last ``n_last_blocks`` blocks, each passed through the final norm, in
    block order (oldest first), then -- with ``avgpool`` -- the mean of the
    last block's normed patch tokens (prefix tokens left out).

    With ``n_last_blocks=1`` and no avgpool this is ``backbone(x)`` itself
    (any backbone returning ``(B, D)`` works); otherwise the backbone needs
    timm's ``forward_intermediates``. DINO's own avgpool code interleaves the
    CLS and pooled entries (``[cls_0, avg_0, cls_1, avg_1, ...]``) and only
    runs with ``n == 1``; here the blocks are concatenated, which is the same
    features in another order (a linear head with i.i.d. init learns the
    same), and any ``n`` works. Raises ``ValueError`` for ``n_last_blocks``
    outside ``1 .. depth``.
    """
    n = int(n_last_blocks)
    if n == 1 and not avgpool:
        return backbone(x)
    depth = len(getattr(backbone, "blocks", ()))
    if not hasattr(backbone, "forward_intermediates") or not 1 <= n <= depth:
        raise ValueError(f"classifier_features: n_last_blocks={n} needs a timm ViT with at least that many "
                         f"blocks; {type(backbone).__name__} has {depth}")
    outs = backbone.forward_intermediates(x, indices=n, return_prefix_tokens=True, norm=True,
                                          output_fmt="NLC", intermediates_only=True)
    feats = [prefix[:, 0] for _, prefix in outs]
    if avgpool:
        feats.append(outs[-1][0].mean(dim=1))
    return torch.cat(feats, dim=-1)


class _OnBackbone(nn.Module):
    """A backbone and a head; :meth:`freeze_backbone` makes it a probe."""

    backbone_frozen: bool = False

    def freeze_backbone(self) -> "_OnBackbone":
        """Linear-probe mode: the backbone's parameters get ``requires_grad=False``
        and the backbone stays in eval mode even when ``train()`` is called
        (``eval_linear`` keeps the whole model in eval). Returns self."""
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.backbone_frozen = True
        self.backbone.eval()
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        if self.backbone_frozen:
            self.backbone.eval()
        return self


class Classifier(_OnBackbone):
    """A backbone whose features feed a :class:`LinearHead`: ``(B, 3, H, W)``
    images -> ``(B, num_labels)`` logits.

    Features: :func:`classifier_features` (the CLS of the last
    ``n_last_blocks`` blocks, optionally with the average-pooled patch tokens);
    the defaults give ``head(backbone(x))``, the last block's normed CLS, as
    the paper's classifier. The head's ``in_dim`` must equal
    :func:`feature_dim` (checked: ``ValueError``). The saliency class maps
    (:mod:`dinosal.saliency.classmaps`) take a Classifier as it is.
    """

    def __init__(self, backbone: nn.Module, head: LinearHead, n_last_blocks: int = 1,
                 avgpool: bool = False) -> None:
        super().__init__()
        if int(n_last_blocks) < 1:
            raise ValueError(f"Classifier: n_last_blocks must be >= 1, got {n_last_blocks}")
        width = getattr(backbone, "embed_dim", None)
        linear = getattr(head, "linear", None)
        if width is not None and linear is not None and linear.in_features != feature_dim(width, n_last_blocks, avgpool):
            raise ValueError(f"Classifier: head.in_dim is {linear.in_features} but the features are "
                             f"{feature_dim(width, n_last_blocks, avgpool)} wide (embed_dim {width} x "
                             f"(n_last_blocks {n_last_blocks} + avgpool {int(bool(avgpool))}))")
        self.backbone = backbone
        self.head = head
        self.n_last_blocks = int(n_last_blocks)
        self.avgpool = bool(avgpool)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, feature_dim)`` features the head reads."""
        return classifier_features(self.backbone, x, self.n_last_blocks, self.avgpool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def extra_repr(self) -> str:
        return f"n_last_blocks={self.n_last_blocks}, avgpool={self.avgpool}, backbone_frozen={self.backbone_frozen}"


class PatchClassifier(_OnBackbone):
    """A linear head on every patch token: ``(B, 3, H, W)`` images ->
    ``(B, rows*cols, num_labels)`` logits, patches in row-major order.

    The tokens are the last block's output after the final norm, prefix
    (CLS/register) tokens left out; one :class:`LinearHead` (eval_linear init)
    is shared by all patches. Trained with one BCE per class and patch against
    the labels of the boxes covering the patch
    (:func:`dinosal.losses.patch_targets`).
    """

    def __init__(self, backbone: nn.Module, head: LinearHead) -> None:
        super().__init__()
        if not hasattr(backbone, "forward_features"):
            raise ValueError(f"PatchClassifier: {type(backbone).__name__} has no forward_features (not a timm ViT?)")
        self.backbone = backbone
        self.head = head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N, D)`` normed patch tokens of the last block."""
        tokens = self.backbone.forward_features(x)
        return tokens[:, int(getattr(self.backbone, "num_prefix_tokens", 1)):]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        b, n, d = f.shape
        return self.head(f.reshape(b * n, d)).reshape(b, n, -1)
