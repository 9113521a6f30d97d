"""DINO's own saliency: the CLS token's last-layer attention to the patches.

Shapes: ``heads`` = number of attention heads, ``N = rows * cols`` patches,
grid ``(rows, cols)`` row-major.

* :func:`cls_attention` turns the CLS->patch weights ``(heads, N)`` (post
  softmax, e.g. ``LastBlockFeatures.attn[b]``) into maps per head and their
  mean over heads (the mean is what DINO's video script shows).
* :func:`mass_threshold` is DINO's "keep th of the mass" mask (th = 0.6 in
  the paper figures), per map.
* :func:`upsample` (re-exported from :mod:`.grid`) is the nearest-neighbour
  upsampling by the patch size used for display.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .grid import check_grid, upsample

__all__ = ["AttentionMaps", "cls_attention", "mass_threshold", "upsample", "DINO_MASS_SHARE"]

DINO_MASS_SHARE = 0.6
"""The share of an attention map's mass that DINO's figures keep (``visualize_attention.py``, ``--threshold``)."""


@dataclass(frozen=True)
class AttentionMaps:
    """CLS->patch attention of one image.

    heads: (heads, rows, cols) float32, one map per head (post-softmax weights;
        they sum to less than 1 because CLS and register columns are dropped)
    mean: (rows, cols) float32, mean over heads
    grid: (rows, cols)
    """

    heads: np.ndarray
    mean: np.ndarray
    grid: tuple[int, int]

    @property
    def num_heads(self) -> int:
        return int(self.heads.shape[0])


def cls_attention(attn, grid: Sequence[int]) -> AttentionMaps:
    """Per-head and mean CLS->patch attention maps.

    attn: (heads, N) weights of the CLS query on the N patch keys (no CLS or
        register columns), tensor or array; a 1-D (N,) input counts as one head.
    grid: (rows, cols) with rows * cols == N.
    Returns :class:`AttentionMaps`.
    """
    a = torch.as_tensor(attn).detach().to("cpu", torch.float32).numpy()
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2:
        raise ValueError(f"attn must have shape (heads, N), got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("attn contains NaN/Inf")
    rows, cols = check_grid(grid, a.shape[1])
    heads = a.reshape(a.shape[0], rows, cols)
    return AttentionMaps(heads=heads, mean=heads.mean(axis=0), grid=(rows, cols))


def mass_threshold(maps, share: float = DINO_MASS_SHARE) -> np.ndarray:
    """DINO's mass threshold: keep the largest weights that hold ``share`` of the mass.

    maps: (..., rows, cols) non-negative; each trailing 2-D map is treated on
        its own (e.g. one per head).
    share: in (0, 1]; DINO uses 0.6.
    Returns a bool array of the same shape.

    Definition (DINO's visualize_attention): sort the weights of one map
    ascending, divide by their sum, take the cumulative sum and keep the
    entries whose cumulative sum is ``> 1 - share``. The kept weights are the
    largest ones and hold at least ``share`` of the mass. Tie rule: the sort is
    stable, so among equal weights the lower flat index comes first in the
    ascending order and is dropped first; the higher index is kept.
    A map with zero total mass keeps nothing.
    """
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share}")
    a = np.asarray(torch.as_tensor(maps).detach().cpu().numpy() if torch.is_tensor(maps) else maps,
                   dtype=np.float64)
    if a.ndim < 2:
        raise ValueError(f"maps must have shape (..., rows, cols), got {a.shape}")
    if not np.isfinite(a).all() or (a < 0).any():
        raise ValueError("maps must be finite and non-negative")
    flat = a.reshape(-1, a.shape[-2] * a.shape[-1])
    order = np.argsort(flat, axis=1, kind="stable")
    sorted_w = np.take_along_axis(flat, order, axis=1)
    total = sorted_w.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        cum = np.cumsum(sorted_w / total, axis=1)
    keep_sorted = cum > 1.0 - share
    keep_sorted[total[:, 0] == 0] = False
    keep = np.zeros_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=1)
    return keep.reshape(a.shape)
