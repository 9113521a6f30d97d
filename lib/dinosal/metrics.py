"""Scores of boxes, masks and saliency maps against ground truth; mAP for classifiers.

Conventions: boxes are ``xyxy`` pixels with an exclusive max, so a box's area
is ``(x2 - x1) * (y2 - y1)``; maps and masks are (H, W) or batched (B, H, W)
on the same pixel grid.

* :func:`box_iou`, :func:`box_hits`, :func:`corloc` (LOST/TokenCut's CorLoc:
  an image is correct if its box has IoU >= 0.5 with *any* GT box);
* :func:`mask_iou`;
* :func:`mass_share`: the share of a non-negative map's mass inside each
  named region (objects, road, sky, ...) next to the region's share of the
  area, and their ratio (> 1: the map favours the region);
* :func:`pointing_game`: is the map's maximum on the object (within a
  tolerance in px)?
* :func:`average_precisions`, :func:`map_score`: per-class AP and mAP of
  multi-label scores (scikit-learn).

A score that averages over images (CorLoc, mAP) raises ``ValueError`` naming
the argument on an empty input rather than returning NaN; inputs whose
lengths disagree raise too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import ndimage
from sklearn.metrics import average_precision_score

__all__ = [
    "box_iou",
    "box_hits",
    "corloc",
    "mask_iou",
    "MassShare",
    "mass_share",
    "pointing_game",
    "average_precisions",
    "map_score",
]


def _boxes(b, name: str) -> np.ndarray:
    a = np.asarray(b, dtype=np.float64)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] != 4:
        raise ValueError(f"{name} must have shape (n, 4) xyxy, got {np.shape(b)}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN/Inf")
    if (a[:, 2] < a[:, 0]).any() or (a[:, 3] < a[:, 1]).any():
        raise ValueError(f"{name} has boxes with x2 < x1 or y2 < y1 (expected xyxy)")
    return a


def box_iou(a, b) -> np.ndarray:
    """IoU of every box in ``a`` (n, 4) with every box in ``b`` (m, 4) -> (n, m).

    xyxy, exclusive max. Two empty boxes have IoU 0.
    """
    a, b = _boxes(a, "a"), _boxes(b, "b")
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(axis=-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def box_hits(pred_boxes, gt_boxes: Sequence, thr: float = 0.5) -> np.ndarray:
    """(B,) bool: does image i's predicted box reach IoU >= thr with any of its GT boxes?

    pred_boxes: (B, 4), one box per image; gt_boxes: list of B arrays (n_i, 4).
    An image without GT boxes raises ``ValueError`` (drop it first, as LOST's
    ``--no_hard`` does).
    """
    pred = _boxes(pred_boxes, "pred_boxes")
    if len(gt_boxes) != len(pred):
        raise ValueError(f"pred_boxes has {len(pred)} boxes but gt_boxes has {len(gt_boxes)} images")
    hits = np.zeros(len(pred), dtype=bool)
    for i, (p, g) in enumerate(zip(pred, gt_boxes)):
        g = np.asarray(g)
        if g.size == 0:
            raise ValueError(f"gt_boxes[{i}] is empty; CorLoc needs at least one GT box per image")
        hits[i] = box_iou(p, g).max() >= thr
    return hits


def corloc(pred_boxes, gt_boxes: Sequence, thr: float = 0.5) -> float:
    """CorLoc: the fraction of images whose box has IoU >= thr with any GT box.

    No images (empty ``pred_boxes`` / ``gt_boxes``) raises ``ValueError``:
    the fraction is undefined.
    """
    if np.size(pred_boxes) == 0 or len(gt_boxes) == 0:
        raise ValueError(f"corloc needs at least one image; pred_boxes has shape {np.shape(pred_boxes)} "
                         f"and gt_boxes {len(gt_boxes)} images")
    return float(box_hits(pred_boxes, gt_boxes, thr).mean())


def _bool_pair(a, b):
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape or a.ndim not in (2, 3):
        raise ValueError(f"masks must share a shape (H, W) or (B, H, W), got {a.shape} and {b.shape}")
    return a, b


def mask_iou(a, b):
    """IoU of boolean masks (H, W) -> float, or (B, H, W) -> (B,). Empty union -> NaN."""
    a, b = _bool_pair(a, b)
    axes = (-2, -1)
    inter = (a & b).sum(axis=axes).astype(np.float64)
    union = (a | b).sum(axis=axes).astype(np.float64)
    out = np.divide(inter, union, out=np.full_like(inter, np.nan), where=union > 0)
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class MassShare:
    """Mass of a map inside one region.

    share: fraction of the map's total mass inside the region
    area: fraction of the pixels inside the region
    ratio: share / area (1 = as much as a uniform map; NaN if area is 0)
    Scalars for one map, (B,) arrays for a batch. NaN share for a map of zero mass.
    """

    share: np.ndarray | float
    area: np.ndarray | float
    ratio: np.ndarray | float


def _as_map(saliency) -> np.ndarray:
    s = np.asarray(saliency, dtype=np.float64)
    if s.ndim not in (2, 3):
        raise ValueError(f"saliency must be (H, W) or (B, H, W), got {s.shape}")
    if not np.isfinite(s).all() or (s < 0).any():
        raise ValueError("saliency must be finite and non-negative")
    return s


def mass_share(saliency, masks: Mapping[str, np.ndarray]) -> dict[str, MassShare]:
    """Share of a non-negative map's mass in each named region, and its ratio to the area share.

    saliency: (H, W) or (B, H, W) >= 0 (upsample grid maps to pixels first).
    masks: name -> (H, W) or (B, H, W) bool region masks (they may overlap;
        they need not cover the image).
    Returns ``{name: MassShare}``.
    """
    s = _as_map(saliency)
    total = s.sum(axis=(-2, -1))
    out = {}
    for name, m in masks.items():
        m = np.asarray(m, dtype=bool)
        if m.shape[-2:] != s.shape[-2:] or m.ndim > s.ndim or (m.ndim == 3 and m.shape != s.shape):
            raise ValueError(f"masks[{name!r}] has shape {m.shape}, saliency has {s.shape}")
        inside = (s * m).sum(axis=(-2, -1))
        area = np.broadcast_to(m.mean(axis=(-2, -1)), np.shape(total)).astype(np.float64)
        share = np.divide(inside, total, out=np.full_like(inside, np.nan), where=total > 0)
        ratio = np.divide(share, area, out=np.full_like(share, np.nan), where=area > 0)
        out[name] = MassShare(*(float(v) if np.ndim(v) == 0 else v for v in (share, area, ratio)))
    return out


def pointing_game(saliency, object_mask, tolerance: float = 0.0):
    """Is the map's maximum on the object? -> bool, or (B,) bool for a batch.

    saliency: (H, W) or (B, H, W); object_mask: same shape, bool.
    The maximum is the first one in row-major order (``np.argmax``). A hit
    if an object pixel lies within ``tolerance`` px (Euclidean, pixel
    centres) of it; tolerance 0 means the pixel itself.
    """
    s = np.asarray(saliency, dtype=np.float64)
    m = np.asarray(object_mask, dtype=bool)
    if s.shape != m.shape or s.ndim not in (2, 3):
        raise ValueError(f"saliency and object_mask must share a shape (H, W) or (B, H, W), "
                         f"got {s.shape} and {m.shape}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    if not np.isfinite(s).all():
        raise ValueError("saliency contains NaN/Inf")
    single = s.ndim == 2
    s, m = s.reshape(-1, *s.shape[-2:]), m.reshape(-1, *m.shape[-2:])
    hits = np.zeros(len(s), dtype=bool)
    for i in range(len(s)):
        r, c = np.unravel_index(np.argmax(s[i]), s[i].shape)
        if not m[i].any():
            continue
        dist = ndimage.distance_transform_edt(~m[i]) if tolerance > 0 else None
        hits[i] = m[i, r, c] if dist is None else dist[r, c] <= tolerance
    return bool(hits[0]) if single else hits


def average_precisions(y_true, scores) -> np.ndarray:
    """(C,) average precision per class of multi-label scores; NaN for a class with no positive.

    y_true: (n, C) multi-hot {0, 1}; scores: (n, C) real (logits or
    probabilities). Uses ``sklearn.metrics.average_precision_score``.
    """
    y, s = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 2:
        raise ValueError(f"y_true and scores must both be (n, C), got {y.shape} and {s.shape}")
    if y.shape[0] == 0 or y.shape[1] == 0:
        raise ValueError(f"y_true and scores are empty, shape {y.shape}; AP needs at least one image and one class")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must be multi-hot (0/1)")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN/Inf")
    ap = np.full(y.shape[1], np.nan)
    for c in range(y.shape[1]):
        if y[:, c].any():
            ap[c] = average_precision_score(y[:, c], s[:, c])
    return ap


def map_score(y_true, scores) -> float:
    """Mean AP over the classes that have at least one positive (see :func:`average_precisions`)."""
    ap = average_precisions(y_true, scores)
    if np.isnan(ap).all():
        raise ValueError("no class has a positive example; mAP undefined")
    return float(np.nanmean(ap))
