"""The token grid shared by every saliency method: checks, components, boxes.

Conventions (the whole package follows them):

* a grid is ``(rows, cols)``; patch ``i`` sits at row ``i // cols`` and column
  ``i % cols`` (row-major);
* a box is ``xyxy`` in pixels with an exclusive max, ``(x1, y1, x2, y2)``;
* ``image_size`` is ``(H, W)`` of the image *before* padding, so boxes of
  padded inputs are clipped to the real image.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from scipy import ndimage

__all__ = [
    "check_grid",
    "check_features",
    "check_image_size",
    "seed_component",
    "mask_box",
    "upsample",
]


def check_grid(grid: Sequence[int], n_tokens: int, name: str = "grid") -> tuple[int, int]:
    """Return ``grid`` as ``(rows, cols)`` after checking ``rows * cols == n_tokens``.

    Raises ``ValueError`` naming ``name`` and both numbers on a mismatch.
    """
    try:
        rows, cols = (int(g) for g in grid)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (rows, cols), got {grid!r}") from None
    if rows < 1 or cols < 1:
        raise ValueError(f"{name} must be positive, got (rows, cols) = ({rows}, {cols})")
    if rows * cols != n_tokens:
        raise ValueError(
            f"{name} (rows, cols) = ({rows}, {cols}) holds {rows * cols} patches, "
            f"but the features have {n_tokens} tokens (drop CLS/register tokens first)"
        )
    return rows, cols


def check_features(feats, name: str = "feats") -> np.ndarray:
    """Return ``feats`` (N, D) as a C-contiguous float64 array; reject other ranks and NaN/Inf.

    Accepts a tensor (any device) or an array. A leading batch axis of size 1
    is dropped, so ``(1, N, D)`` (the official code's layout) is accepted too.
    """
    if torch.is_tensor(feats):
        feats = feats.detach().to("cpu", torch.float64).numpy()
    a = np.asarray(feats)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), got {a.shape}")
    if a.shape[0] < 2 or a.shape[1] < 1:
        raise ValueError(
            f"{name} has shape {a.shape} ({a.shape[0]} tokens, {a.shape[1]} channels); LOST and TokenCut "
            "need at least 2 patch tokens and 1 channel. An image gives one token per patch, so it must "
            "span at least 2 patches (e.g. p x 2p px for patch p)"
        )
    a = np.ascontiguousarray(a, dtype=np.float64)
    bad = ~np.isfinite(a).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{name} contains NaN/Inf in {int(bad.sum())} of {a.shape[0]} tokens "
            f"(first: token {int(np.flatnonzero(bad)[0])})"
        )
    return a


def check_image_size(image_size: Sequence[int], grid: tuple[int, int], patch: int) -> tuple[int, int]:
    """Check that ``image_size`` (H, W) fits the padded grid and is at least one patch.

    The padded input is ``(rows * patch, cols * patch)``; the real image must
    lie inside it and lose less than one patch per side (LOST-style padding).
    """
    if int(patch) < 1:
        raise ValueError(f"patch must be >= 1, got {patch}")
    try:
        h, w = (int(s) for s in image_size)
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be a pair (H, W), got {image_size!r}") from None
    if h < patch or w < patch:
        raise ValueError(f"image_size (H, W) = ({h}, {w}) is smaller than one patch ({patch} px)")
    rows, cols = grid
    if not (rows * patch - patch < h <= rows * patch and cols * patch - patch < w <= cols * patch):
        raise ValueError(
            f"image_size (H, W) = ({h}, {w}) does not fit grid (rows, cols) = ({rows}, {cols}) "
            f"with patch {patch}: expected H in ({(rows - 1) * patch}, {rows * patch}] "
            f"and W in ({(cols - 1) * patch}, {cols * patch}]"
        )
    return h, w


def seed_component(region: np.ndarray, seed: int) -> np.ndarray:
    """The 4-connected component of the boolean ``region`` (rows, cols) holding ``seed``.

    Uses ``scipy.ndimage.label`` with its default (cross-shaped) structure.
    Returns a (rows, cols) bool array; ``ValueError`` if the seed is outside
    the region.
    """
    region = np.asarray(region, dtype=bool)
    r, c = np.unravel_index(int(seed), region.shape)
    if not region[r, c]:
        raise ValueError(f"seed {seed} (row {r}, col {c}) lies outside the region")
    labels, _ = ndimage.label(region)
    return labels == labels[r, c]


def mask_box(mask: np.ndarray, patch: int, image_size: Sequence[int]) -> np.ndarray:
    """Pixel box of a non-empty grid mask: ``[xmin*p, ymin*p, (xmax+1)*p, (ymax+1)*p]``.

    ``x2``/``y2`` are clipped to the unpadded width/height in ``image_size``
    (H, W). Returns a (4,) int64 array, xyxy with exclusive max.
    """
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        raise ValueError("mask is empty, no box")
    h, w = (int(s) for s in image_size)
    return np.array(
        [xs.min() * patch, ys.min() * patch, min((xs.max() + 1) * patch, w), min((ys.max() + 1) * patch, h)],
        dtype=np.int64,
    )


def upsample(maps, factor: int) -> np.ndarray:
    """Nearest-neighbour upsampling of ``(..., rows, cols)`` to ``(..., rows*f, cols*f)``.

    Each grid cell becomes an ``f x f`` block, as DINO's visualisation does.
    """
    if int(factor) < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    a = np.asarray(maps)
    if a.ndim < 2:
        raise ValueError(f"maps must have shape (..., rows, cols), got {a.shape}")
    return a.repeat(factor, axis=-2).repeat(factor, axis=-1)
