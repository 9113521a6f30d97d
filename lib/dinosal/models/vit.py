"""The ViT backbone: timm's ``VisionTransformer`` with DINO's sizes and position interpolation.

:func:`create_vit` builds the DINO sizes (``tiny``/``small``/``base``, 12
blocks, mlp ratio 4, qkv bias, LayerNorm eps 1e-6) or a custom small config,
with ``dynamic_img_size=True`` so any input whose sides are multiples of the
patch size runs and ``num_classes=0`` so ``model(x)`` returns the
final-normed CLS token ``(B, D)`` exactly as DINO's ``forward`` does.

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
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, calculate_drop_path_rates, resample_abs_pos_embed
from timm.models.vision_transformer import VisionTransformer

__all__ = [
    "POS_INTERP",
    "VIT_SIZES",
    "DinoVisionTransformer",
    "create_vit",
    "seeded_vit",
    "dino_interpolate_pos_embed",
    "resample_pos_embed",
    "set_drop_path",
]

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

    def forward_masked(self, x: torch.Tensor, mask: torch.Tensor, mask_token: torch.Tensor) -> torch.Tensor:
        """``forward_features`` with some patches hidden: every final-normed token ``(B, P + N, D)``,
        where the patch embeddings at the True entries of ``mask`` (``(B, rows, cols)`` or ``(B, N)``,
        row-major) are replaced by ``mask_token`` (``D`` values) *before* the position embedding is
        added -- iBOT's ``prepare_tokens``/``mask_model`` (ibot:models/vision_transformer.py). A mask
        with no True entry gives ``forward_features(x)`` exactly. The token is an argument, not a
        parameter of the ViT: the student's wrapper owns it (the teacher has none)."""
        x = self.patch_embed(x)  # NHWC with dynamic_img_size, else (B, N, D)
        m = mask.to(device=x.device, dtype=torch.bool).reshape(x.shape[:-1]).unsqueeze(-1)
        x = torch.where(m, mask_token.reshape(-1).to(x.dtype), x)  # the token stays in the graph
        x = self._pos_embed(x)
        x = self.patch_drop(x)
        x = self.norm_pre(x)
        x = self.blocks(x)
        return self.norm(x)

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


def seeded_vit(seed: int, arch="tiny", patch: int = 8, img_size: int = 96, pos_interp: str = "dino") -> DinoVisionTransformer:
    """The network at random init that a DINO run of ``seed`` starts from (eval mode): ``torch.manual_seed(seed)``,
    then :func:`create_vit` (the trainer's seeding rule; the student's ``drop_path`` draws no random numbers at
    init). The caller's RNG state is left as it was (``torch.random.fork_rng``). The one place the rule lives:
    :func:`dinosal.zoo.initial_backbone` and the release's regenerated step-0 snapshots call it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = create_vit(arch, patch=patch, img_size=img_size, pos_interp=pos_interp)
    return model.eval()


def set_drop_path(vit: torch.nn.Module, rate: float) -> list[float]:
    """Set the stochastic depth of an existing timm ViT in place.

    Block ``i`` of ``L`` gets ``rate * i / (L - 1)`` on both residual branches
    (timm's and DINO's linear rule, ``linspace(0, rate, L)``); a rate of 0
    puts back ``nn.Identity``. Drop path only acts in train mode. Returns the
    per-block rates. Raises ``ValueError`` for a rate outside ``[0, 1)`` or a
    model without ``blocks`` whose items have ``drop_path1``/``drop_path2``.
    """
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"set_drop_path: rate must lie in [0, 1), got {rate}")
    blocks = getattr(vit, "blocks", None)
    if not blocks or not all(hasattr(b, "drop_path1") and hasattr(b, "drop_path2") for b in blocks):
        raise ValueError(f"set_drop_path: {type(vit).__name__} has no timm blocks with drop_path1/drop_path2")
    rates = calculate_drop_path_rates(rate, len(blocks))
    for block, r in zip(blocks, rates):
        block.drop_path1 = DropPath(r) if r > 0 else torch.nn.Identity()
        block.drop_path2 = DropPath(r) if r > 0 else torch.nn.Identity()
    return list(rates)
