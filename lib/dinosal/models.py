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
  official checkpoint layouts strictly: a key, shape or head-count mismatch
  raises :class:`CheckpointKeyError` naming the file, the keys and both
  shapes, never a silent partial load or a silent resize. The one documented
  exception is a position table of another grid, which is resampled (see
  :func:`load_dino_backbone`).

Position embeddings at other input sizes
----------------------------------------
The stored table has ``1 + n0^2`` rows (``n0 = img_size/patch``). For an input
of another token grid ``(rows, cols)`` the patch part must be resampled. Two
methods, chosen by ``pos_interp`` (:data:`POS_INTERP`):

* ``"dino"`` (default): DINO's ``interpolate_pos_encoding``
  (dino:vision_transformer.py:174-194, :func:`dino_interpolate_pos_embed`):
  bicubic, ``scale_factor = ((rows+0.1)/n0, (cols+0.1)/n0)``, no antialias,
  ``align_corners=False``; the table is used unchanged when the grid equals
  the stored one. This is what ``main_dino`` does for the 96 px local crops
  and what ``visualize_attention`` does at 480 px.
* ``"timm"``: timm's ``resample_abs_pos_embed`` (bicubic to the target size,
  with antialias). On the same weights the two tables differ by a few per
  cent of their values, enough to change CLS attention maps measurably.

Both give bit-identical outputs at the stored grid.

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
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed
from timm.models.vision_transformer import VisionTransformer

__all__ = [
    "VIT_SIZES",
    "POS_INTERP",
    "dino_interpolate_pos_embed",
    "resample_pos_embed",
    "DinoVisionTransformer",
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


POS_INTERP: tuple[str, ...] = ("dino", "timm")


def _check_pos_interp(value, where: str = "pos_interp") -> str:
    if value not in POS_INTERP:
        raise ValueError(f"{where} must be one of {list(POS_INTERP)}, got {value!r}")
    return value


def dino_interpolate_pos_embed(
    pos_embed: torch.Tensor,
    new_grid: Sequence[int],
    old_grid: Optional[Sequence[int]] = None,
    num_prefix_tokens: int = 1,
) -> torch.Tensor:
    """DINO's ``interpolate_pos_encoding`` for a token grid ``(rows, cols)``.

    Source: dino:vision_transformer.py:174-194 (``VisionTransformer.
    interpolate_pos_encoding``). ``pos_embed`` is ``(1, P + n_r*n_c, D)`` with
    ``P = num_prefix_tokens`` prefix rows (the CLS position, left unchanged)
    followed by the ``old_grid = (n_r, n_c)`` patch positions in row-major
    order (default: a square grid). Returns ``(1, P + rows*cols, D)``.

    The table is returned unchanged (the same tensor) when ``(rows, cols)``
    equals the stored grid; DINO's test ``npatch == N and w == h`` is the same
    for inputs whose sides are multiples of the patch. Otherwise the patch part
    is resized with ``F.interpolate(mode="bicubic", align_corners=False,
    antialias=False)`` and ``scale_factor = ((rows + 0.1)/n_r, (cols +
    0.1)/n_c)``: a *scale factor*, not a target size, so the sampling grid is
    stretched by the +0.1 (dino issue #8) and differs from resizing to
    ``(rows, cols)``. DINO's quirk: its ``w, h`` are the input's dims 2 and 3,
    i.e. (height, width); ``rows`` here is the height in patches, so the
    result is the same. Differentiable; computed in float32, returned in the
    table's dtype. Raises ``ValueError`` for a table that does not hold
    ``old_grid`` or a non-positive grid.
    """
    rows, cols = (int(v) for v in new_grid)
    n = int(pos_embed.shape[1]) - int(num_prefix_tokens)
    if old_grid is None:
        side = math.isqrt(max(n, 0))
        if side * side != n:
            raise ValueError(f"dino_interpolate_pos_embed: {n} patch positions are not a square grid; pass old_grid")
        old_grid = (side, side)
    r0, c0 = (int(v) for v in old_grid)
    if pos_embed.ndim != 3 or r0 * c0 != n or rows < 1 or cols < 1:
        raise ValueError(
            f"dino_interpolate_pos_embed: table {tuple(pos_embed.shape)} with {num_prefix_tokens} prefix rows "
            f"does not hold the grid {(r0, c0)}, or the new grid {(rows, cols)} is empty"
        )
    if (rows, cols) == (r0, c0):
        return pos_embed
    prefix, patch = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    dim = patch.shape[-1]
    grid = patch.float().reshape(1, r0, c0, dim).permute(0, 3, 1, 2)
    out = F.interpolate(
        grid, scale_factor=((rows + 0.1) / r0, (cols + 0.1) / c0), mode="bicubic",
        align_corners=False, antialias=False,
    )
    if tuple(out.shape[-2:]) != (rows, cols):  # DINO asserts the same
        raise RuntimeError(f"dino_interpolate_pos_embed: got a {tuple(out.shape[-2:])} grid for {(rows, cols)}")
    out = out.permute(0, 2, 3, 1).reshape(1, rows * cols, dim).to(pos_embed.dtype)
    return torch.cat([prefix, out], dim=1)


_RESAMPLE_DOC = {
    "dino": "bicubic, scale_factor (n+0.1)/n0, no antialias (DINO interpolate_pos_encoding)",
    "timm": "bicubic to the target size with antialias (timm resample_abs_pos_embed)",
}


def resample_pos_embed(
    pos_embed: torch.Tensor,
    new_grid: Sequence[int],
    old_grid: Sequence[int],
    method: str = "dino",
    num_prefix_tokens: int = 1,
) -> torch.Tensor:
    """Resample a ``(1, P + n_r*n_c, D)`` position table to ``new_grid`` by
    ``method`` (:data:`POS_INTERP`): ``"dino"`` is
    :func:`dino_interpolate_pos_embed`, ``"timm"`` is timm's
    ``resample_abs_pos_embed`` (bicubic, antialias, to the target size).
    Returns ``(1, P + rows*cols, D)``; the same tensor when the grids are equal.
    Raises ``ValueError`` for an unknown method."""
    _check_pos_interp(method, "resample_pos_embed: method")
    if method == "dino":
        return dino_interpolate_pos_embed(pos_embed, new_grid, old_grid, num_prefix_tokens)
    return resample_abs_pos_embed(
        pos_embed, new_size=[int(v) for v in new_grid], old_size=[int(v) for v in old_grid],
        num_prefix_tokens=num_prefix_tokens,
    )


class DinoVisionTransformer(VisionTransformer):
    """timm's ``VisionTransformer`` whose position table follows ``pos_interp``.

    The only change is :meth:`_pos_embed` (used by ``forward``,
    ``forward_features`` and ``forward_intermediates``): with
    ``pos_interp="dino"`` and ``dynamic_img_size=True``, a token grid other
    than the stored one gets :func:`dino_interpolate_pos_embed`; with
    ``"timm"`` (or a fixed image size) timm's own code runs. Parameters and
    state-dict keys are timm's. ``pos_interp`` is an attribute that can be
    changed later (validated; ``ValueError`` for other values).
    """

    def __init__(self, *args, pos_interp: str = "dino", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pos_interp = pos_interp

    @property
    def pos_interp(self) -> str:
        return self._pos_interp

    @pos_interp.setter
    def pos_interp(self, value: str) -> None:
        self._pos_interp = _check_pos_interp(value)

    def extra_repr(self) -> str:
        return f"pos_interp={self.pos_interp!r}"

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.pos_interp != "dino" or self.pos_embed is None or not self.dynamic_img_size:
            return super()._pos_embed(x)
        B, H, W, C = x.shape  # dynamic_img_size: patch_embed returns NHWC
        pos_embed = dino_interpolate_pos_embed(
            self.pos_embed, (H, W), old_grid=tuple(self.patch_embed.grid_size),
            num_prefix_tokens=0 if self.no_embed_class else self.num_prefix_tokens,
        )
        x = x.view(B, -1, C)
        to_cat = []
        if self.cls_token is not None:
            to_cat.append(self.cls_token.expand(B, -1, -1))
        if self.reg_token is not None:
            to_cat.append(self.reg_token.expand(B, -1, -1))
        if self.no_embed_class:  # as timm: add, then prepend the prefix tokens
            x = x + pos_embed
            x = torch.cat(to_cat + [x], dim=1) if to_cat else x
        else:  # DINO and original timm: prepend CLS, then add
            x = torch.cat(to_cat + [x], dim=1) if to_cat else x
            x = x + pos_embed
        return self.pos_drop(x)


def create_vit(
    arch="tiny",
    patch: int = 8,
    img_size: int = 96,
    drop_path: float = 0.0,
    pos_interp: str = "dino",
    **kw,
) -> DinoVisionTransformer:
    """A timm ViT with DINO's settings.

    ``arch``: ``"tiny"``/``"small"``/``"base"`` (``"vit_"`` prefix allowed) or a
    custom ``(width, depth, heads)`` tuple. ``patch`` is 8 or 16 (any positive
    int works). ``img_size`` only fixes the size of the stored position table
    (``(img_size/patch)^2 + 1`` rows); inputs of any size that is a multiple of
    ``patch`` run, the table being resampled to their grid by ``pos_interp``:
    ``"dino"`` (default) is DINO's ``interpolate_pos_encoding``
    (:func:`dino_interpolate_pos_embed`), ``"timm"`` timm's bicubic+antialias
    resampling (see the module docstring). Extra keyword arguments go to
    timm's ``VisionTransformer``.

    ``model(x)`` with ``x`` ``(B, 3, H, W)`` returns the final-normed CLS token
    ``(B, D)``. Raises ``ValueError`` for an unknown arch or ``pos_interp``, or
    an ``img_size`` that is not a multiple of ``patch``.
    """
    width, depth, heads = _arch_dims(arch)
    _check_pos_interp(pos_interp, "create_vit: pos_interp")
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
    return DinoVisionTransformer(pos_interp=pos_interp, **kwargs)


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
    """A checkpoint does not match the model.

    ``source`` names the file (or state dict); ``missing``/``unexpected`` list
    the offending keys; ``shapes`` lists ``"key: checkpoint (..) vs model
    (..)"`` entries; ``problems`` states other mismatches in words (depth,
    heads, patch size, no blocks). The message names all of them (first 10 of
    each list)."""

    def __init__(self, source: str, missing: Sequence[str], unexpected: Sequence[str],
                 shapes: Sequence[str] = (), problems: Sequence[str] = ()):
        self.source = str(source)
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.shapes = list(shapes)
        self.problems = list(problems)

        def show(keys):
            keys = list(keys)
            more = f" ... (+{len(keys) - 10} more)" if len(keys) > 10 else ""
            return ", ".join(keys[:10]) + more

        parts = [f"{source}: checkpoint does not match the model"]
        parts += self.problems
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
    or ``"training:<which>"`` (an official or dinosal training checkpoint);
    ``dropped`` lists the checkpoint keys that were deliberately not loaded
    (the DINO projection head); ``grid`` is the (rows, cols) of the stored
    position table; ``pos_interp`` the position mode of the returned model
    (``"timm"`` for a plain timm ViT); ``resampled_pos_embed`` is None when the
    table was loaded as stored, else how it was resampled to the model's grid,
    e.g. ``"dino: (4, 4) -> (5, 5), bicubic, scale_factor (n+0.1)/n0, no
    antialias (DINO interpolate_pos_encoding)"``."""

    source: str
    layout: str
    dropped: tuple[str, ...]
    grid: tuple[int, int]
    pos_interp: str = "dino"
    resampled_pos_embed: Optional[str] = None


def _strip(key: str, prefixes: Sequence[str]) -> str:
    changed = True
    while changed:
        changed = False
        for p in prefixes:
            if key.startswith(p):
                key, changed = key[len(p):], True
    return key


def extract_backbone_state(
    ckpt: Mapping, which: str = "teacher", source: str = "checkpoint"
) -> tuple[dict[str, torch.Tensor], str, tuple[str, ...]]:
    """Backbone state dict (timm key names) from any official DINO layout.

    Layouts: a plain backbone state dict (``dino_deitsmall8_300ep_pretrain.pth``:
    ``cls_token, pos_embed, patch_embed.proj.weight, blocks.N.attn.qkv.weight,
    ..., norm.weight``), or a training checkpoint with ``'teacher'`` /
    ``'student'`` entries whose keys carry ``module.`` and/or ``backbone.``
    prefixes and ``head.`` entries (the DINO head, dropped here). Returns
    ``(state, layout, dropped_keys)``. DINO's ViT key names equal timm's, so
    apart from the prefixes nothing is renamed. ``source`` (the file) starts
    every error message. Raises ``ValueError`` for ``which`` other than
    ``'teacher'``/``'student'``, ``KeyError`` for a training checkpoint
    without that entry, ``TypeError`` for something that is not a mapping.
    """
    if which not in ("teacher", "student"):
        raise ValueError(f"{source}: which must be 'teacher' or 'student', got {which!r}")
    if not isinstance(ckpt, Mapping):
        raise TypeError(f"{source}: checkpoint must be a mapping (a state dict), got {type(ckpt).__name__}")
    if "teacher" in ckpt or "student" in ckpt:
        if which not in ckpt:
            raise KeyError(f"{source}: training checkpoint has no {which!r} entry; it has {sorted(ckpt)}")
        raw, layout = ckpt[which], f"training:{which}"
        if not isinstance(raw, Mapping):
            raise TypeError(f"{source}: entry {which!r} is a {type(raw).__name__}, not a state dict")
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


def _shape(v) -> object:
    return tuple(v.shape) if torch.is_tensor(v) else type(v).__name__


def load_dino_state(module: nn.Module, state: Mapping[str, torch.Tensor], source: str = "state dict") -> None:
    """Strictly load ``state`` into ``module``; raise :class:`CheckpointKeyError`
    naming ``source``, the missing, unexpected and wrong-shape keys (with both
    shapes; a non-tensor value counts as a wrong shape). Old weight-norm names
    are renamed first (see the module docstring). Nothing is resampled here."""
    state = official_head_keys_to_parametrized(state)
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: checkpoint {_shape(state[k])} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if _shape(state[k]) != tuple(own[k].shape)
    ]
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


def _grid_of(state: Mapping[str, torch.Tensor], source: str = "checkpoint", num_prefix: int = 1) -> tuple[int, int]:
    """(rows, cols) of the stored position table (square, after ``num_prefix`` rows)."""
    pe = state.get("pos_embed")
    if pe is None:
        raise CheckpointKeyError(source, ["pos_embed"], [], problems=["no position table"])
    if not torch.is_tensor(pe) or pe.ndim != 3 or pe.shape[0] != 1:
        raise ValueError(f"{source}: pos_embed must be a (1, 1 + n*n, D) tensor, got {_shape(pe)}")
    n = int(pe.shape[1]) - num_prefix
    side = math.isqrt(max(n, 0))
    if n < 1 or side * side != n:
        raise ValueError(
            f"{source}: pos_embed {tuple(pe.shape)} holds {n} patch positions after "
            f"{num_prefix} CLS row, not a square grid"
        )
    return side, side


def _block_ids(state: Mapping) -> list[int]:
    ids = {k.split(".")[1] for k in state if k.startswith("blocks.") and k.count(".") >= 2}
    return sorted(int(i) for i in ids if i.isdigit())


def _dims_of(state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> tuple[int, int, int]:
    """(width, depth, patch) of a backbone state dict; errors name ``source``."""
    key = "patch_embed.proj.weight"
    w = state.get(key)
    if w is None:
        raise CheckpointKeyError(source, [key], [], problems=["no patch embedding (it gives the width and patch size)"])
    if not torch.is_tensor(w) or w.ndim != 4 or w.shape[-1] != w.shape[-2]:
        raise ValueError(f"{source}: {key} must be a (width, 3, p, p) tensor, got {_shape(w)}")
    ids = _block_ids(state)
    if not ids:
        raise CheckpointKeyError(source, [], [], problems=["no transformer blocks (no 'blocks.<i>.*' keys)"])
    return int(w.shape[0]), ids[-1] + 1, int(w.shape[-1])


def _dinosal_config(ckpt: Mapping, source: str = "checkpoint") -> Optional[dict]:
    """The ``config`` JSON entry of a checkpoint written by :mod:`dinosal.train.dino`, else None."""
    raw = ckpt.get("config") if isinstance(ckpt, Mapping) else None
    if not isinstance(raw, str):
        return None
    try:
        cfg = json.loads(raw)
    except ValueError as err:
        raise ValueError(f"{source}: entry 'config' is not JSON ({err})") from err
    return cfg if isinstance(cfg, dict) else None


def _heads_from_dinosal_config(ckpt: Mapping, source: str = "checkpoint") -> Optional[int]:
    """Heads of a checkpoint written by :mod:`dinosal.train.dino` (its
    ``config`` entry holds the arch), else None. A config whose arch is not
    valid raises ``ValueError`` naming ``source``."""
    cfg = _dinosal_config(ckpt, source)
    if cfg is None or "arch" not in cfg:
        return None
    try:
        return _arch_dims(cfg["arch"])[2]
    except ValueError as err:
        raise ValueError(f"{source}: config entry arch: {err}") from None


def _check_model_against(model: nn.Module, state: Mapping, heads: Optional[int], source: str) -> None:
    """Compare every key's shape (``pos_embed``: all but its row count), the
    depth, the heads (when known) and the table's prefix rows with ``model``,
    before anything is resampled; raise :class:`CheckpointKeyError`."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes, problems = [], []
    for k in sorted(set(own) & set(state)):
        a, b = _shape(state[k]), tuple(own[k].shape)
        if k == "pos_embed" and isinstance(a, tuple) and len(a) == len(b) == 3:
            ok = a[0] == b[0] and a[2] == b[2]  # rows may differ: another grid, resampled
        else:
            ok = a == b
        if not ok:
            shapes.append(f"{k}: checkpoint {a} vs model {b}")
    w, pe = state.get("patch_embed.proj.weight"), getattr(model, "patch_embed", None)
    if torch.is_tensor(w) and w.ndim == 4 and pe is not None:
        own_w = pe.proj.weight
        if w.shape[0] != own_w.shape[0]:
            problems.append(f"width: checkpoint {w.shape[0]} vs model {own_w.shape[0]}")
        if tuple(w.shape[-2:]) != tuple(own_w.shape[-2:]):
            problems.append(f"patch size: checkpoint {tuple(w.shape[-2:])} vs model {tuple(own_w.shape[-2:])}")
    blocks = getattr(model, "blocks", None)
    if blocks is not None and _block_ids(state) and _block_ids(state)[-1] + 1 != len(blocks):
        problems.append(f"depth: checkpoint {_block_ids(state)[-1] + 1} blocks vs model {len(blocks)}")
    model_heads = getattr(getattr(blocks[0], "attn", None), "num_heads", None) if blocks else None
    if heads is not None and model_heads is not None and int(heads) != int(model_heads):
        problems.append(f"heads (blocks.*.attn.num_heads): checkpoint {heads} vs model {model_heads}")
    table = getattr(model, "pos_embed", None)
    if table is not None and pe is not None:
        rows = table.shape[1] - math.prod(pe.grid_size)
        if rows != 1:
            problems.append(f"pos_embed: the model's table has {rows} prefix rows, DINO's has 1 (the CLS)")
    if missing or unexpected or shapes or problems:
        raise CheckpointKeyError(source, missing, unexpected, shapes, problems)


def _fit_pos_embed(state: dict, model: nn.Module, grid: tuple[int, int]) -> tuple[dict, Optional[str]]:
    """Resample the stored table to the model's grid by the model's own
    ``pos_interp`` (a plain timm ViT: ``"timm"``); returns (state, how or None)."""
    if getattr(model, "pos_embed", None) is None or "pos_embed" not in state:
        return state, None
    new_grid = tuple(int(v) for v in model.patch_embed.grid_size)
    if new_grid == tuple(grid):
        return state, None
    method = getattr(model, "pos_interp", "timm")
    with torch.no_grad():
        table = resample_pos_embed(state["pos_embed"], new_grid, grid, method=method, num_prefix_tokens=1)
    return {**state, "pos_embed": table}, f"{method}: {tuple(grid)} -> {new_grid}, {_RESAMPLE_DOC[method]}"


def load_dino_backbone(
    path,
    model: Optional[nn.Module] = None,
    which: str = "teacher",
    heads: Optional[int] = None,
    drop_path: float = 0.0,
    pos_interp: str = "dino",
) -> tuple[VisionTransformer, LoadReport]:
    """Load official DINO ViT weights from a local file, strictly.

    ``path``: a ``.pth`` in one of the layouts of :func:`extract_backbone_state`
    (``which`` picks ``'teacher'`` (the one DINO evaluates) or ``'student'`` in
    a training checkpoint). Without ``model``, a :func:`create_vit` ViT is
    built to match the checkpoint (width, depth, patch and position grid read
    from the tensors; heads from ``heads``, else the config of a checkpoint
    written by :func:`dinosal.train.dino.train_dino`, else :data:`VIT_SIZES`
    by width), so the load is bit-exact. Its position mode is ``pos_interp``
    (``"dino"`` or ``"timm"``, see :func:`create_vit`), or the ``pos_interp``
    of a dinosal config when the checkpoint carries one. A given ``model``
    keeps its own mode (``LoadReport.pos_interp`` says which).

    Strict: before anything is resampled, every key and shape except the row
    count of ``pos_embed`` is compared with the model (patch kernel, width,
    depth, and the heads when the caller or a dinosal config gives them; qkv
    shapes do not reveal heads). Any difference raises
    :class:`CheckpointKeyError` naming the file, the keys and both shapes.
    The one exception: a given ``model`` whose position grid differs from the
    stored one gets the table resampled by the model's own ``pos_interp``
    (:func:`resample_pos_embed`; a plain timm ViT: timm's bicubic+antialias),
    which is written to ``LoadReport.resampled_pos_embed``; the model's mode is
    kept. Errors that are not key mismatches (unreadable file, non-square
    table, a width with no DINO size and no ``heads``) raise ``ValueError``
    naming the file. Returns ``(model, LoadReport)``.
    """
    source = str(path)
    _check_pos_interp(pos_interp, "load_dino_backbone: pos_interp")
    ckpt = _read_checkpoint(path)
    state, layout, dropped = extract_backbone_state(ckpt, which, source=source)
    grid = _grid_of(state, source)
    cfg = _dinosal_config(ckpt, source) or {}
    if cfg.get("pos_interp") is not None:
        pos_interp = _check_pos_interp(cfg["pos_interp"], f"{source}: config entry pos_interp")
    cfg_heads = _heads_from_dinosal_config(ckpt, source)
    if heads is not None and cfg_heads is not None and int(heads) != cfg_heads:
        raise CheckpointKeyError(source, [], [], problems=[
            f"heads: heads={heads} but the checkpoint's config has {cfg_heads} (blocks.*.attn.num_heads)"])
    heads = heads if heads is not None else cfg_heads
    if model is None:
        width, depth, patch = _dims_of(state, source)
        if heads is None:
            by_width = {w: h for (w, _, h) in VIT_SIZES.values()}
            if width not in by_width:
                raise ValueError(f"{source}: width {width} is not a DINO size ({sorted(by_width)}); pass heads=")
            heads = by_width[width]
        if int(heads) < 1 or width % int(heads):
            raise ValueError(f"{source}: width {width} is not divisible by heads {heads}")
        model = create_vit((width, depth, int(heads)), patch=patch, img_size=grid[0] * patch,
                           drop_path=drop_path, pos_interp=pos_interp)
    _check_model_against(model, state, heads, source)
    state, resampled = _fit_pos_embed(state, model, grid)
    load_dino_state(model, state, source=source)
    report = LoadReport(source=source, layout=layout, dropped=dropped, grid=grid,
                        pos_interp=getattr(model, "pos_interp", "timm"), resampled_pos_embed=resampled)
    return model, report


def _vit_init_kwargs(kw: Mapping) -> dict:
    import inspect

    accepted = inspect.signature(VisionTransformer.__init__).parameters
    return {k: v for k, v in kw.items() if k in accepted}


def load_dino_timm(name: str = "vit_small_patch8_224.dino", pos_interp: str = "dino", **kw) -> DinoVisionTransformer:
    """Official DINO weights by timm name (needs the Hugging Face hub).

    timm builds its own ``VisionTransformer`` with the pretrained table; its
    weights are then loaded strictly (:func:`load_dino_state`) into a
    :func:`create_vit` model of the same width, depth, heads and patch with
    position mode ``pos_interp`` (``"dino"``: DINO's interpolation, the
    default; ``"timm"``). ``kw`` go to ``timm.create_model`` (and those that
    ``VisionTransformer`` accepts to :func:`create_vit`), except ``img_size``:
    timm would resample the table at load time; here the table is resampled
    to that size by ``pos_interp``'s method (:func:`resample_pos_embed`).

    Raises ``RuntimeError`` with a hint to use a local file when the hub is
    unreachable, ``ValueError`` for an unknown ``pos_interp``.
    """
    import timm

    _check_pos_interp(pos_interp, "load_dino_timm: pos_interp")
    img_size = kw.pop("img_size", None)
    kw = {"num_classes": 0, "dynamic_img_size": True, **kw}
    try:
        src = timm.create_model(name, pretrained=True, **kw)
    except Exception as err:  # noqa: BLE001 - network errors vary
        raise RuntimeError(
            f"could not fetch {name!r} through timm ({type(err).__name__}: {err}). Without a hub, "
            "download dino_deitsmall8_300ep_pretrain.pth elsewhere and use load_dino_backbone(path) "
            f"(or set ${DINO_WEIGHTS_ENV} to that file)."
        ) from err
    native = tuple(int(v) for v in src.patch_embed.img_size)
    patch = int(src.patch_embed.patch_size[0])
    heads = int(src.blocks[0].attn.num_heads)
    if native[0] != native[1]:
        raise ValueError(f"{name}: timm model has a non-square img_size {native}; DINO's tables are square")
    model = create_vit((src.embed_dim, len(src.blocks), heads), patch=patch, img_size=img_size or native[0],
                       pos_interp=pos_interp, **_vit_init_kwargs(kw))
    state = src.state_dict()
    _check_model_against(model, state, heads, name)
    state, _ = _fit_pos_embed(state, model, tuple(int(v) for v in src.patch_embed.grid_size))
    load_dino_state(model, state, source=name)
    return model.train(src.training)


def official_weights_path() -> Optional[Path]:
    """The local official weights named by ``$DINOSAL_DINO_WEIGHTS``, if set."""
    p = os.environ.get(DINO_WEIGHTS_ENV)
    return Path(p) if p else None
