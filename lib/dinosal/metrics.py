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
  multi-label scores (scikit-learn);
* :func:`top1_accuracy`, :func:`confusion`: multi-class scores
  (scikit-learn), and :func:`classification_scores`, everything a
  transferred classifier is reported with, as one
  :class:`ClassificationScores`.

A score that averages over images (CorLoc, mAP) raises ``ValueError`` naming
the argument on an empty input rather than returning NaN; inputs whose
lengths disagree raise too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np
from scipy import ndimage
from sklearn.metrics import accuracy_score, average_precision_score, confusion_matrix

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
    "top1_accuracy",
    "confusion",
    "ClassificationScores",
    "classification_scores",
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


def _class_scores(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    y, s = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or y.shape != s.shape[:1]:
        raise ValueError(f"y_true must be (n,) class indices and scores (n, C), got {y.shape} and {s.shape}")
    if len(y) == 0:
        raise ValueError("y_true is empty; accuracy needs at least one image")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= s.shape[1]:
        raise ValueError(f"y_true must hold integer class indices in 0..{s.shape[1] - 1}")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN/Inf")
    return y, s


def top1_accuracy(y_true, scores) -> float:
    """Share of images whose highest score is their class.

    y_true: (n,) class indices; scores: (n, C) logits or probabilities. Ties
    go to the lower class index (``np.argmax``). ``sklearn.metrics.accuracy_score``.
    """
    y, s = _class_scores(y_true, scores)
    return float(accuracy_score(y, s.argmax(axis=1)))


def confusion(y_true, scores) -> np.ndarray:
    """(C, C) int64 confusion matrix: entry ``[i, j]`` counts images of class
    ``i`` predicted as ``j`` (rows true, columns predicted, scikit-learn's
    convention); every class gets a row and a column, present or not."""
    y, s = _class_scores(y_true, scores)
    return confusion_matrix(y, s.argmax(axis=1), labels=np.arange(s.shape[1])).astype(np.int64)


@dataclass(frozen=True)
class ClassificationScores:
    """How well a classifier did on one evaluation set.

    loss: "ce" (one class per image), "bce" (multi-label per image) or
        "patch_bce" (multi-label per patch token: AP over all patches)
    class_names: the C classes
    n_images: images evaluated; n_items: what AP/accuracy averaged over
        (images, or images x patches for "patch_bce")
    top1: top-1 accuracy ("ce" only, else None)
    confusion_matrix: (C, C) int64, rows true, columns predicted ("ce" only)
    ap: (C,) average precision per class; NaN for a class with no positive in
        the set ("bce"/"patch_bce"; for "ce" one-vs-rest AP of the scores)
    map: mean AP over the classes that have a positive
    classes_without_positives: names of the classes left out of ``map``
    """

    loss: str
    class_names: tuple[str, ...]
    n_images: int
    n_items: int
    top1: Optional[float]
    confusion_matrix: Optional[np.ndarray]
    ap: np.ndarray
    map: float
    classes_without_positives: tuple[str, ...]

    def per_class(self):
        """A pandas table, one row per class: AP, positives left out of the mean, and for "ce" the
        per-class recall (the confusion matrix's diagonal over its row sums)."""
        import pandas as pd

        df = pd.DataFrame({"class": list(self.class_names), "ap": self.ap,
                           "in_map": [c not in self.classes_without_positives for c in self.class_names]})
        if self.confusion_matrix is not None:
            cm = self.confusion_matrix
            rows = cm.sum(axis=1)
            df["recall"] = np.divide(np.diag(cm), rows, out=np.full(len(rows), np.nan), where=rows > 0)
            df["n"] = rows
        return df


def classification_scores(loss: str, y_true, scores, class_names: Sequence[str]) -> ClassificationScores:
    """Top-1 and confusion matrix ("ce"), per-class AP and mAP (all losses).

    loss: "ce" -- y_true (n,) class indices, scores (n, C); "bce" -- y_true
    (n, C) multi-hot, scores (n, C); "patch_bce" -- y_true (n, N, C)
    multi-hot per patch, scores (n, N, C), AP over the n*N patches.
    Classes with no positive are left out of the mAP and listed in
    ``classes_without_positives``. Raises ``ValueError`` naming the argument
    (shapes, class count, empty set, no class with a positive).
    """
    names = tuple(str(c) for c in class_names)
    s = np.asarray(scores, dtype=np.float64)
    if loss not in ("ce", "bce", "patch_bce"):
        raise ValueError(f"loss must be 'ce', 'bce' or 'patch_bce', got {loss!r}")
    if s.ndim < 2 or s.shape[-1] != len(names):
        raise ValueError(f"scores must end with one column per class ({len(names)} class_names), got {s.shape}")
    n_images = int(s.shape[0])
    top1 = cm = None
    if loss == "ce":
        y = np.asarray(y_true)
        top1, cm = top1_accuracy(y, s), confusion(y, s)
        multi_hot = np.eye(len(names), dtype=np.int64)[y]
    else:
        multi_hot = np.asarray(y_true)
        if multi_hot.shape != s.shape:
            raise ValueError(f"y_true must have the shape of scores {s.shape}, got {multi_hot.shape}")
        multi_hot, s = multi_hot.reshape(-1, len(names)), s.reshape(-1, len(names))
    ap = average_precisions(multi_hot, s)
    if np.isnan(ap).all():
        raise ValueError("y_true has no positive for any class; mAP undefined")
    missing = tuple(n for n, a in zip(names, ap) if np.isnan(a))
    return ClassificationScores(loss=loss, class_names=names, n_images=n_images, n_items=int(len(s)),
                                top1=top1, confusion_matrix=cm, ap=ap, map=float(np.nanmean(ap)),
                                classes_without_positives=missing)
