"""LOST (Simeoni et al., BMVC 2021): one object box from the last layer's keys.

Input: patch features ``F`` (N, D), by default the last block's keys without
CLS or register tokens, raw (not normalised); grid (rows, cols) row-major,
``N = rows * cols``.

Steps, as the official ``lost()`` computes them:

1. similarity ``A = F F^T`` (N, N), raw dot products (computed in float64,
   whatever the input dtype);
2. degree ``deg_i = #{j != i : A_ij > 0}``, a count of positive similarities;
3. seed = the patch of lowest degree;
4. potentials = the ``k`` lowest-degree patches (seed first); similars = the
   potentials ``q`` with ``A[seed, q] > 0``; correlation ``M = sum_q A[q, :]``
   over the similars (a weighted sum of raw similarities);
5. mask = the seed's 4-connected component of ``M > 0``; box = that
   component's bounding box times the patch, clipped to the unpadded image.

Tie rule (deterministic, unlike the official unstable ``torch.argsort``):
patches are ordered by degree with a stable sort, so among equal degrees the
lower flat index comes first. The seed is therefore the lowest-index patch of
minimal degree, and the potentials are the first ``k`` of that order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .grid import check_features, check_grid, check_image_size, mask_box, seed_component

__all__ = ["LostResult", "lost", "similarity_degree"]


@dataclass(frozen=True)
class LostResult:
    """Everything LOST computes for one image. Maps are (rows, cols), row-major.

    seed: flat index of the seed patch (row = seed // cols, col = seed % cols)
    potentials: (k,) int64, the k lowest-degree patches in ascending degree
        (stable: ties by lower index); ``potentials[0] == seed``
    similars: (m,) int64, the potentials with ``A[seed, q] > 0``, same order
    degree: (rows, cols) int64, ``#{j != i : A_ij > 0}`` (diagonal excluded)
    inverse_degree: (rows, cols) float64, ``1 / #{j : A_ij > 0}`` with the
        diagonal **included** (the "fms" figure of the LOST code; equals
        ``1 / (degree + 1)`` whenever the patch's own feature is non-zero);
        a patch with no positive similarity at all gets 1
    seed_similarity: (rows, cols) float64, ``A[seed, :]`` (the map "before
        seed expansion")
    correlation: (rows, cols) float64, ``M = sum_{q in similars} A[q, :]``
    mask: (rows, cols) bool, the seed's 4-connected component of ``M > 0``
    box: (4,) int64, xyxy px with exclusive max, clipped to ``image_size``
    composite: (rows, cols) float64, the paper-figure composite: the
        inverse-degree map inside ``mask`` and 0 outside
        (``inverse_degree * mask``)
    grid, patch, image_size: the geometry used ((rows, cols), px, (H, W))
    """

    seed: int
    potentials: np.ndarray
    similars: np.ndarray
    degree: np.ndarray
    inverse_degree: np.ndarray
    seed_similarity: np.ndarray
    correlation: np.ndarray
    mask: np.ndarray
    box: np.ndarray
    composite: np.ndarray
    grid: tuple[int, int]
    patch: int
    image_size: tuple[int, int]

    @property
    def seed_rc(self) -> tuple[int, int]:
        """The seed as (row, col)."""
        return divmod(self.seed, self.grid[1])


def similarity_degree(feats) -> tuple[np.ndarray, np.ndarray]:
    """``A = F F^T`` (N, N) float64 and the degree (N,) int64 (positive, off-diagonal).

    feats: (N, D) tensor or array, finite.
    """
    f = check_features(feats)
    a = f @ f.T
    positive = a > 0
    degree = positive.sum(axis=1) - np.diagonal(positive)
    return a, degree.astype(np.int64)


def lost(
    feats,
    grid: Sequence[int],
    patch: int,
    image_size: Sequence[int],
    k: int = 100,
) -> LostResult:
    """Run LOST on the patch features of one image.

    feats: (N, D) patch features (keys by default), no CLS/register tokens;
        (1, N, D) is accepted too. Tensor or array, finite.
    grid: (rows, cols), rows * cols == N.
    patch: patch size p in pixels (boxes are in pixels of the padded input).
    image_size: (H, W) of the image before padding; x2/y2 are clipped to it.
    k: number of lowest-degree patches compared to the seed (official: 100);
        1 <= k <= N.
    Returns :class:`LostResult`. See the module docstring for the tie rule.
    """
    f = check_features(feats)
    n = f.shape[0]
    rows, cols = check_grid(grid, n)
    h, w = check_image_size(image_size, (rows, cols), patch)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= n:
        raise ValueError(f"k must be an integer in [1, N] = [1, {n}] (number of patches), got k={k!r}")

    a, degree = similarity_degree(f)
    order = np.argsort(degree, kind="stable")
    seed = int(order[0])
    potentials = order[:k]
    similars = potentials[a[seed, potentials] > 0]
    if similars.size == 0:
        raise ValueError(f"seed patch {seed} has no positive similarity (all-zero feature?)")
    correlation = a[similars].sum(axis=0).reshape(rows, cols)

    mask = seed_component(correlation > 0, seed)
    positive_incl_diag = degree + (np.diagonal(a) > 0)
    inverse_degree = (1.0 / np.maximum(positive_incl_diag, 1)).reshape(rows, cols)
    return LostResult(
        seed=seed,
        potentials=potentials.astype(np.int64),
        similars=similars.astype(np.int64),
        degree=degree.reshape(rows, cols),
        inverse_degree=inverse_degree,
        seed_similarity=a[seed].reshape(rows, cols).copy(),
        correlation=correlation,
        mask=mask,
        box=mask_box(mask, patch, (h, w)),
        composite=np.where(mask, inverse_degree, 0.0),
        grid=(rows, cols),
        patch=int(patch),
        image_size=(h, w),
    )
