"""Localisation baselines that learn nothing, in one place.

Every localisation score of the book is read next to these:

* **pixel LOST** -- LOST on raw pixels: each ``patch`` x ``patch`` patch's
  ImageNet-normalised RGB values are its "feature" (:func:`pixel_features`),
  taken as they are (``centred=False``) or with the image's mean patch
  subtracted (``centred=True``, which gives the dot products a sign: without
  it nearly all of them are positive and LOST's degree says little).
  :func:`pixel_lost` runs LOST on them; :class:`PixelFeatures` is the same
  features as a "backbone" for :func:`dinosal.localisation.run_methods`,
  which adds TokenCut and the scores of the saliency chapter.
* **centred box** -- a box centred in the image covering a fraction of each
  side (:func:`centre_box`, :func:`centre_box_hits`). The fraction is chosen
  on the scored images themselves (:func:`best_centre_box`), from
  :data:`CENTRE_BOX_FRACTIONS` = 0.3, 0.4, ..., 0.9, with ties going to the
  **smallest** fraction. Choosing on the scored images flatters the baseline
  (a model must beat the best fixed box in hindsight); the wide list keeps
  it strong on sets of small objects (driving scenes) as well as large ones
  (ObjectWorld). A tie changes only the reported fraction, never the CorLoc;
  the smallest box is the more specific of equally good guesses.
* :func:`baseline_corlocs` -- the CorLoc of all three on one set of samples
  (what the training chapter and the recipe benchmark report).

Conventions: images ``(H, W, 3)`` uint8, zero-padded at the bottom/right to a
multiple of the patch (after normalisation, as for the network); boxes xyxy
pixels with an exclusive max; a hit is IoU >= 0.5 with any ground-truth box.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .data.sample import GroundTruth, Sample, truth_of
from .features import to_batch
from .metrics import box_hits
from .saliency.lost import LostResult, lost

__all__ = [
    "pixel_features",
    "PixelFeatures",
    "pixel_lost",
    "CENTRE_BOX_FRACTIONS",
    "centre_box",
    "centre_box_hits",
    "best_centre_box",
    "baseline_corlocs",
]

CENTRE_BOX_FRACTIONS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
"""Side fractions the centred box is chosen from (ties: the smallest)."""


def pixel_features(image: np.ndarray, patch: int, centred: bool = False) -> tuple[torch.Tensor, tuple[int, int]]:
    """Raw-pixel "features": ``((N, 3*p*p) float tensor, (rows, cols))``.

    Each patch's ImageNet-normalised RGB values (channel-major), after
    zero-padding to a multiple of the patch as for the network, patches in
    row-major order; ``centred=True`` subtracts the image's mean feature, so
    that dot products can be negative (LOST's degree counts positive ones).
    An image smaller than one patch per side, or of fewer than 2 patches,
    raises ``ValueError`` naming its size, the patch and the minimum.
    """
    p = int(patch)
    x = to_batch(image)
    h, w = x.shape[-2:]
    if p < 1 or h < p or w < p or -(-h // p) * -(-w // p) < 2:
        raise ValueError(f"image of (H, W) = ({h}, {w}) px is too small for the pixel baseline with patch {p}: "
                         f"it needs at least one patch per side and 2 patches in all (at least {p} x {2 * p} "
                         f"or {2 * p} x {p} px)")
    x = torch.nn.functional.pad(x, (0, -w % p, 0, -h % p))
    grid = (x.shape[-2] // p, x.shape[-1] // p)
    f = torch.nn.functional.unfold(x, kernel_size=p, stride=p)[0].T  # (N, 3pp), row-major patches
    if centred:
        f = f - f.mean(0, keepdim=True)
    return f, grid


@dataclass(frozen=True)
class PixelFeatures:
    """The pixel baseline as a backbone for :func:`dinosal.localisation.run_methods`:
    ``features(image)`` is :func:`pixel_features` with this ``patch`` and ``centred``."""

    patch: int
    centred: bool = False

    def features(self, image: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        return pixel_features(image, self.patch, self.centred)


def pixel_lost(image: np.ndarray, patch: int, k: int = 100, centred: bool = False) -> LostResult:
    """LOST on :func:`pixel_features` of one image (``k`` clamped to the patch count)."""
    f, grid = pixel_features(image, patch, centred)
    return lost(f, grid, patch, np.shape(image)[:2], k=min(int(k), grid[0] * grid[1]))


def centre_box(image_size: Sequence[int], fraction: float) -> np.ndarray:
    """``(4,)`` float xyxy box centred in an image of ``(H, W)`` px, ``fraction``
    of each side long. Raises ``ValueError`` unless ``0 < fraction <= 1``."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    h, w = image_size[0], image_size[1]
    return np.array([w * (1 - fraction) / 2, h * (1 - fraction) / 2, w * (1 + fraction) / 2, h * (1 + fraction) / 2])


def centre_box_hits(truths: Sequence[GroundTruth], fraction: float) -> np.ndarray:
    """``(n,)`` float 1.0/0.0: does the centred box of ``fraction`` hit an object of each image?"""
    boxes = np.stack([centre_box(t.objects.shape, fraction) for t in truths]) if len(truths) else np.zeros((0, 4))
    return box_hits(boxes, [t.boxes for t in truths]).astype(np.float64)


def best_centre_box(truths: Sequence[GroundTruth],
                    fractions: Sequence[float] = CENTRE_BOX_FRACTIONS) -> tuple[float, float]:
    """``(fraction, CorLoc)`` of the best centred box on ``truths``: the highest
    CorLoc over ``fractions``, ties to the smallest fraction (see the module doc)."""
    if len(truths) == 0:
        raise ValueError("truths is empty")
    if len(fractions) == 0:
        raise ValueError("fractions is empty")
    corlocs = {float(f): float(centre_box_hits(truths, f).mean()) for f in fractions}
    best = max(corlocs, key=lambda f: (corlocs[f], -f))
    return best, corlocs[best]


def baseline_corlocs(samples: Sequence[Sample], patch: int, k: int = 100,
                     fractions: Sequence[float] = CENTRE_BOX_FRACTIONS) -> dict[str, float]:
    """CorLoc of the baselines that learn nothing, on ``samples`` (each with an object).

    Returns ``{"pixels_centred", "pixels_raw", "centre_box", "centre_box_fraction"}``:
    :func:`pixel_lost` centred and raw with ``patch`` and ``k``, and
    :func:`best_centre_box` over ``fractions`` with the fraction that won.
    Raises ``ValueError`` for no samples or an image too small for the patch
    (naming ``samples[i]``).
    """
    if len(samples) == 0:
        raise ValueError("samples is empty")
    gts = [s.boxes for s in samples]
    out: dict[str, float] = {}
    for name, centred in (("pixels_centred", True), ("pixels_raw", False)):
        boxes = []
        for i, s in enumerate(samples):
            try:
                boxes.append(pixel_lost(s.image, patch, k, centred).box)
            except ValueError as err:
                raise ValueError(f"samples[{i}]: {err}") from None
        out[name] = float(box_hits(np.stack(boxes), gts).mean())
    out["centre_box_fraction"], out["centre_box"] = best_centre_box([truth_of(s) for s in samples], fractions)
    return out
