"""Backbones, heads and official DINO weights.

Everything here is a thin layer over timm's ``VisionTransformer``: the study
never writes its own ViT. What this module adds:

* :func:`create_vit` builds the DINO sizes (``tiny``/``small``/``base``, 12
  blocks, mlp ratio 4, qkv bias, LayerNorm eps 1e-6) or a custom small
  config, with ``dynamic_img_size=True`` so any input whose sides are
  multiples of the patch size runs (position embeddings are interpolated) and
  ``num_classes=0`` so ``model(x)`` returns the final-normed CLS token
  ``(B, D)`` exactly as DINO's ``forward`` does.
* :class:`DINOHead` and :class:`MultiCropWrapper`, DINO's projection head and
  its "one backbone pass per resolution" wrapper.
* :class:`LinearHead`, the ``eval_linear`` classifier (multi-class CE or
  multi-label BCE is the trainer's choice; the head is the same Linear).
* :func:`load_dino_backbone` / :func:`load_dino_state`, which read the
  official checkpoint layouts strictly: a key mismatch raises
  :class:`CheckpointKeyError` naming the keys, never a silent partial load.

Weight-normalised last layer and official checkpoints
-----------------------------------------------------
The head's last layer uses ``torch.nn.utils.parametrizations.weight_norm``
(the old ``torch.nn.utils.weight_norm`` is deprecated). Its parameters are
named differently from the official checkpoints::

    official (old weight_norm)      this module (parametrizations)
    head.last_layer.weight_g   ->   head.last_layer.parametrizations.weight.original0   (out_dim, 1)
    head.last_layer.weight_v   ->   head.last_layer.parametrizations.weight.original1   (out_dim, bottleneck)

torch registers a load hook that renames ``weight_g``/``weight_v`` on load, and
:func:`official_head_keys_to_parametrized` does the same renaming on a plain
dict (used by :func:`load_dino_state`), so official heads load either way.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn

__all__ = [
    "VIT_SIZES",
    "create_vit",
    "DINOHead",
    "MultiCropWrapper",
    "LinearHead",
    "Classifier",
    "CheckpointKeyError",
    "LoadReport",
    "extract_backbone_state",
    "official_head_keys_to_parametrized",
    "load_dino_state",
    "load_dino_backbone",
    "load_dino_timm",
    "official_weights_path",
]

DINO_WEIGHTS_ENV = "DINOSAL_DINO_WEIGHTS"

# DINO's three sizes (dino:vision_transformer.py:236-254): width, depth, heads.
VIT_SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (192, 12, 3),
    "small": (384, 12, 6),
    "base": (768, 12, 12),
}


def _arch_dims(arch) -> tuple[int, int, int]:
    if isinstance(arch, str):
        key = arch[4:] if arch.startswith("vit_") else arch
        if key not in VIT_SIZES:
            raise ValueError(
                f"create_vit: unknown arch {arch!r}; use one of {sorted(VIT_SIZES)} "
                "(optionally prefixed 'vit_') or a (width, depth, heads) tuple"
            )
        return VIT_SIZES[key]
    try:
        width, depth, heads = (int(v) for v in arch)
    except (TypeError, ValueError):
        raise ValueError(f"create_vit: arch must be a name or (width, depth, heads), got {arch!r}") from None
    if width % heads:
        raise ValueError(f"create_vit: width {width} is not divisible by heads {heads}")
    return width, depth, heads


def create_vit(
    arch="tiny",
    patch: int = 8,
    img_size: int = 96,
    drop_path: float = 0.0,
    **kw,
) -> VisionTransformer:
    """A timm ViT with DINO's settings.

    ``arch``: ``"tiny"``/``"small"``/``"base"`` (``"vit_"`` prefix allowed) or a
    custom ``(width, depth, heads)`` tuple. ``patch`` is 8 or 16 (any positive
    int works). ``img_size`` only fixes the size of the stored position table
    (``(img_size/patch)^2 + 1`` rows); inputs of any size that is a multiple of
    ``patch`` run through bicubic interpolation of that table. Extra keyword
    arguments go to timm's ``VisionTransformer``.

    ``model(x)`` with ``x`` ``(B, 3, H, W)`` returns the final-normed CLS token
    ``(B, D)``.
    """
    width, depth, heads = _arch_dims(arch)
    if patch <= 0 or img_size % patch:
        raise ValueError(f"create_vit: img_size {img_size} must be a positive multiple of patch {patch}")
    kwargs = dict(
        img_size=img_size,
        patch_size=patch,
        embed_dim=width,
        depth=depth,
        num_heads=heads,
        mlp_ratio=4.0,
        qkv_bias=True,
        num_classes=0,
        global_pool="token",
        class_token=True,
        dynamic_img_size=True,
        drop_path_rate=drop_path,
    )
    kwargs.update(kw)
    return VisionTransformer(**kwargs)


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


# --------------------------------------------------------------------------
# Official weights
# --------------------------------------------------------------------------


class CheckpointKeyError(KeyError):
    """State-dict keys do not match the model. ``missing``/``unexpected``
    list the offending keys; the message names them (first 10 of each)."""

    def __init__(self, source: str, missing: Sequence[str], unexpected: Sequence[str], shapes: Sequence[str] = ()):
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.shapes = list(shapes)

        def show(keys):
            keys = list(keys)
            more = f" ... (+{len(keys) - 10} more)" if len(keys) > 10 else ""
            return ", ".join(keys[:10]) + more

        parts = [f"{source}: checkpoint keys do not match the model"]
        if self.missing:
            parts.append(f"missing from checkpoint ({len(self.missing)}): {show(self.missing)}")
        if self.unexpected:
            parts.append(f"unexpected in checkpoint ({len(self.unexpected)}): {show(self.unexpected)}")
        if self.shapes:
            parts.append(f"shape mismatch ({len(self.shapes)}): {show(self.shapes)}")
        super().__init__("; ".join(parts))

    def __str__(self) -> str:  # KeyError quotes its argument otherwise
        return self.args[0]


@dataclass(frozen=True)
class LoadReport:
    """What a loader did. ``layout`` is ``"plain"`` (a backbone state dict)
    or ``"training:<which>"`` (an official training checkpoint);
    ``dropped`` lists the checkpoint keys that were deliberately not loaded
    (the DINO projection head); ``grid`` is the (rows, cols) of the stored
    position table."""

    source: str
    layout: str
    dropped: tuple[str, ...]
    grid: tuple[int, int]


def _strip(key: str, prefixes: Sequence[str]) -> str:
    changed = True
    while changed:
        changed = False
        for p in prefixes:
            if key.startswith(p):
                key, changed = key[len(p):], True
    return key


def extract_backbone_state(
    ckpt: Mapping, which: str = "teacher"
) -> tuple[dict[str, torch.Tensor], str, tuple[str, ...]]:
    """Backbone state dict (timm key names) from any official DINO layout.

    Layouts: a plain backbone state dict (``dino_deitsmall8_300ep_pretrain.pth``:
    ``cls_token, pos_embed, patch_embed.proj.weight, blocks.N.attn.qkv.weight,
    ..., norm.weight``), or a training checkpoint with ``'teacher'`` /
    ``'student'`` entries whose keys carry ``module.`` and/or ``backbone.``
    prefixes and ``head.`` entries (the DINO head, dropped here). Returns
    ``(state, layout, dropped_keys)``. DINO's ViT key names equal timm's, so
    apart from the prefixes nothing is renamed.
    """
    if not isinstance(ckpt, Mapping):
        raise TypeError(f"checkpoint must be a mapping, got {type(ckpt).__name__}")
    if "teacher" in ckpt or "student" in ckpt:
        if which not in ckpt:
            raise KeyError(f"training checkpoint has no {which!r} entry; it has {sorted(ckpt)}")
        raw, layout = ckpt[which], f"training:{which}"
        state, dropped = {}, []
        for k, v in raw.items():
            k2 = _strip(k, ("module.",))
            if k2.startswith("head."):
                dropped.append(k)
                continue
            state[_strip(k2, ("backbone.",))] = v
        return state, layout, tuple(dropped)
    for key in ("model", "state_dict"):
        if key in ckpt and isinstance(ckpt[key], Mapping):
            ckpt = ckpt[key]
    state = {_strip(k, ("module.", "backbone.")): v for k, v in ckpt.items()}
    return state, "plain", ()


def official_head_keys_to_parametrized(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename old weight-norm keys (``*.weight_g``/``*.weight_v``) to the
    ``parametrizations.weight.original0/1`` names of :class:`DINOHead`."""
    out = {}
    for k, v in state.items():
        if k.endswith(".weight_g"):
            k = k[: -len("weight_g")] + "parametrizations.weight.original0"
        elif k.endswith(".weight_v"):
            k = k[: -len("weight_v")] + "parametrizations.weight.original1"
        out[k] = v
    return out


def load_dino_state(module: nn.Module, state: Mapping[str, torch.Tensor], source: str = "state dict") -> None:
    """Strictly load ``state`` into ``module``; raise :class:`CheckpointKeyError`
    naming missing, unexpected and wrong-shape keys. Old weight-norm names
    are renamed first (see the module docstring)."""
    state = official_head_keys_to_parametrized(state)
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(state[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or shapes:
        raise CheckpointKeyError(source, missing, unexpected, shapes)
    module.load_state_dict(state, strict=True)


def _read_checkpoint(path) -> Mapping:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DINO weights: no such file {str(path)!r}")
    # Official training checkpoints pickle their argparse.Namespace under 'args'.
    with torch.serialization.safe_globals([argparse.Namespace]):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - re-raised with the path
            raise ValueError(f"DINO weights: cannot read {str(path)!r} as a torch checkpoint: {err}") from err


def _grid_of(state: Mapping[str, torch.Tensor], num_prefix: int = 1) -> tuple[int, int]:
    if "pos_embed" not in state:
        raise CheckpointKeyError("checkpoint", ["pos_embed"], [])
    n = state["pos_embed"].shape[1] - num_prefix
    side = int(round(n**0.5))
    if side * side != n:
        raise ValueError(f"pos_embed holds {n} patch positions, not a square grid")
    return side, side


def _dims_of(state: Mapping[str, torch.Tensor]) -> tuple[int, int, int]:
    """(width, depth, patch) of a backbone state dict."""
    w = state["patch_embed.proj.weight"]
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    return int(w.shape[0]), depth, int(w.shape[-1])


def _heads_from_dinosal_config(ckpt: Mapping) -> Optional[int]:
    """Heads of a checkpoint written by :mod:`dinosal.train.dino` (its
    ``config`` entry holds the arch), else None."""
    import json

    try:
        arch = json.loads(ckpt["config"])["arch"]
    except (KeyError, TypeError, ValueError):
        return None
    return _arch_dims(arch)[2]


def load_dino_backbone(
    path,
    model: Optional[nn.Module] = None,
    which: str = "teacher",
    heads: Optional[int] = None,
    drop_path: float = 0.0,
) -> tuple[VisionTransformer, LoadReport]:
    """Load official DINO ViT weights from a local file, strictly.

    ``path``: a ``.pth`` in one of the layouts of :func:`extract_backbone_state`
    (``which`` picks ``'teacher'`` (the one DINO evaluates) or ``'student'`` in
    a training checkpoint). Without ``model``, a ViT is built to match the
    checkpoint (width, depth, patch and position grid read from the tensors;
    heads from :data:`VIT_SIZES` by width, or from the config of a
    checkpoint written by :func:`dinosal.train.dino.train_dino`, unless given), so the load is
    bit-exact. With a ``model`` whose position grid differs, the table is
    resampled bicubically by timm's ``checkpoint_filter_fn`` (not bit-exact).
    Returns ``(model, LoadReport)``; raises :class:`CheckpointKeyError`.
    """
    source = str(path)
    ckpt = _read_checkpoint(path)
    state, layout, dropped = extract_backbone_state(ckpt, which)
    grid = _grid_of(state)
    if model is None:
        width, depth, patch = _dims_of(state)
        if heads is None:
            heads = _heads_from_dinosal_config(ckpt)
        if heads is None:
            by_width = {w: h for (w, _, h) in VIT_SIZES.values()}
            if width not in by_width:
                raise ValueError(f"{source}: width {width} is not a DINO size; pass heads=")
            heads = by_width[width]
        model = create_vit((width, depth, heads), patch=patch, img_size=grid[0] * patch, drop_path=drop_path)
    if tuple(model.patch_embed.grid_size) != grid:
        state = checkpoint_filter_fn(state, model)
    load_dino_state(model, state, source=source)
    return model, LoadReport(source=source, layout=layout, dropped=dropped, grid=grid)


def load_dino_timm(name: str = "vit_small_patch8_224.dino", **kw) -> VisionTransformer:
    """Official DINO weights by timm name (needs the Hugging Face hub).

    Raises ``RuntimeError`` with a hint to use a local file when the hub is
    unreachable. ``kw`` go to ``timm.create_model``.
    """
    import timm

    kw = {"num_classes": 0, "dynamic_img_size": True, **kw}
    try:
        return timm.create_model(name, pretrained=True, **kw)
    except Exception as err:  # noqa: BLE001 - network errors vary
        raise RuntimeError(
            f"could not fetch {name!r} through timm ({type(err).__name__}: {err}). Without a hub, "
            "download dino_deitsmall8_300ep_pretrain.pth elsewhere and use load_dino_backbone(path) "
            f"(or set ${DINO_WEIGHTS_ENV} to that file)."
        ) from err


def official_weights_path() -> Optional[Path]:
    """The local official weights named by ``$DINOSAL_DINO_WEIGHTS``, if set."""
    p = os.environ.get(DINO_WEIGHTS_ENV)
    return Path(p) if p else None
