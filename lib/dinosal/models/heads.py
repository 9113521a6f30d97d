"""Heads on a backbone: DINO's projection head, the multi-crop wrapper, the linear classifier.

:class:`DINOHead`'s last layer is weight-normalised with
``torch.nn.utils.parametrizations.weight_norm``; how its parameter names map
to the official checkpoints' ``weight_g``/``weight_v`` is explained in
:mod:`dinosal.models.checkpoints`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["Classifier", "DINOHead", "LinearHead", "MultiCropWrapper"]


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
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, crops, return_backbone: bool = False):
        if isinstance(crops, torch.Tensor):
            crops = [crops]
        outs = []
        start = 0
        while start < len(crops):
            end = start + 1
            size = tuple(crops[start].shape[-2:])
            while end < len(crops) and tuple(crops[end].shape[-2:]) == size:
                end += 1
            outs.append(self.backbone(torch.cat(list(crops[start:end]))))
            start = end
        feats = torch.cat(outs)
        head_out = self.head(feats)
        return (head_out, feats) if return_backbone else head_out


class LinearHead(nn.Module):
    """``eval_linear``'s classifier: ``Linear(in_dim, num_labels)``, weights
    N(0, 0.01), bias 0. Input ``(B, in_dim)`` features of the last block
    (the normed CLS), output ``(B, num_labels)`` raw logits: softmax + CE for
    one label per image, one sigmoid per class + BCE for multi-label."""

    def __init__(self, in_dim: int, num_labels: int, multi_label: bool = False) -> None:
        super().__init__()
        self.multi_label = bool(multi_label)
        self.linear = nn.Linear(in_dim, num_labels)
        nn.init.normal_(self.linear.weight, mean=0.0, std=0.01)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class Classifier(nn.Module):
    """A backbone whose CLS output ``(B, D)`` feeds a :class:`LinearHead`."""

    def __init__(self, backbone: nn.Module, head: LinearHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))
