"""The ground-truth contract: one image and everything known about it.

Everything that consumes ground truth (evaluation, scoring, readers, export,
the sample cache) needs only this module, not the generator that draws the
images (:mod:`dinosal.data.synthetic`). It imports numpy only.

* :class:`Sample`: an image and its full ground truth, as the generators
  yield it;
* :data:`IGNORE`: the ``semantic`` value of pixels of objects dropped from the
  ground truth;
* :func:`object_mask`, :func:`part_masks`: pixel masks of a sample;
* :class:`GroundTruth`: boxes, object mask and background-part masks of one
  image, the form scoring uses (:func:`truth_of` for a :class:`Sample`,
  :func:`truth_from_boxes` for real data that has boxes only).

Conventions: images are ``(H, W, 3)`` uint8; boxes are ``xyxy`` pixels with an
exclusive max; ``semantic`` labels every pixel with an index into
``semantic_names``, whose first entries are the background parts and whose
tail equals ``class_names`` (so class ``k`` is semantic index ``n_parts + k``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

__all__ = [
    "IGNORE",
    "Sample",
    "object_mask",
    "part_masks",
    "GroundTruth",
    "truth_of",
    "truth_from_boxes",
]

IGNORE = 255
"""Semantic value of pixels of objects dropped from the ground truth."""


@dataclass(frozen=True, eq=False)
class Sample:
    """One image and its ground truth.

    Attributes:
        image: ``(H, W, 3)`` uint8.
        boxes: ``(n, 4)`` float32 ``xyxy`` pixels, exclusive max; the tight box
            of ``masks[i]``.
        labels: ``(n,)`` int64 indices into ``class_names``.
        masks: ``(n, H, W)`` bool, visible part of each object.
        semantic: ``(H, W)`` uint8 index into ``semantic_names``; :data:`IGNORE`
            on pixels of objects dropped from the ground truth.
        multi_hot: ``(C,)`` float32, 1 for every class with at least one object.
        class_names: the ``C`` object classes.
        semantic_names: background parts first, then ``class_names``.
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    semantic: np.ndarray
    multi_hot: np.ndarray
    class_names: tuple[str, ...]
    semantic_names: tuple[str, ...]

    @property
    def part_names(self) -> tuple[str, ...]:
        """The background parts: ``semantic_names`` without the object classes."""
        return self.semantic_names[: len(self.semantic_names) - len(self.class_names)]


def object_mask(sample: Sample) -> np.ndarray:
    """``(H, W)`` bool: union of the instance masks (False when there are none)."""
    if len(sample.masks) == 0:
        return np.zeros(sample.semantic.shape, dtype=bool)
    return sample.masks.any(axis=0)


def part_masks(sample: Sample) -> dict[str, np.ndarray]:
    """``{semantic name: (H, W) bool}`` for every semantic name present in the image.

    Object classes come from ``semantic`` too, so ignored pixels (dropped
    objects) belong to no entry.
    """
    present = np.unique(sample.semantic)
    return {
        sample.semantic_names[k]: sample.semantic == k
        for k in present.tolist()
        if k != IGNORE
    }


@dataclass(frozen=True)
class GroundTruth:
    """What is where in one image.

    boxes: (n, 4) float xyxy px, exclusive max (n >= 1 for CorLoc)
    objects: (H, W) bool, union of the object masks
    parts: background part name -> (H, W) bool (empty for box-only data)
    """

    boxes: np.ndarray
    objects: np.ndarray
    parts: Mapping[str, np.ndarray]


def truth_of(sample: Sample) -> GroundTruth:
    """The ground truth of a synthetic sample; ``parts`` holds every background
    part of the generator (absent parts as all-False masks), so rows of
    :func:`dinosal.localisation.region_rows` line up across images."""
    present = part_masks(sample)
    empty = np.zeros(sample.semantic.shape, dtype=bool)
    parts = {name: present.get(name, empty) for name in sample.part_names}
    return GroundTruth(np.asarray(sample.boxes, dtype=np.float64), object_mask(sample), parts)


def truth_from_boxes(image_shape: Sequence[int], boxes) -> GroundTruth:
    """Ground truth of box-only data: objects = union of the (integer-rounded) boxes, no parts."""
    h, w = int(image_shape[0]), int(image_shape[1])
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    objects = np.zeros((h, w), dtype=bool)
    for x1, y1, x2, y2 in np.round(b).astype(int):
        objects[max(y1, 0):min(y2, h), max(x1, 0):min(x2, w)] = True
    return GroundTruth(b, objects, {})
