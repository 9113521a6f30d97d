"""Statistics of a set of samples: what the images hold, and how much colour gives away.

* :func:`object_table`: one row per ground-truth object (class, area, box size);
* :func:`presence_table`: one row per image, which parts and classes appear
  and how much of the image each part covers;
* :func:`pixel_contrast` / :class:`PixelContrast`: how well pixel colour
  alone separates objects from background (the camouflage check).

They take any iterable of :class:`~dinosal.data.sample.Sample` (generated,
cached or read from disk). pandas, scipy and scikit-learn are imported on
first use. Also importable from :mod:`dinosal.data.synthetic` (where they
used to live).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from .sample import Sample, object_mask

__all__ = ["object_table", "presence_table", "pixel_contrast", "PixelContrast"]

# --------------------------------------------------------------------------
# Diagnostics: how much does pixel colour alone give the object away?
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PixelContrast:
    """Pixel-contrast proxies over a set of images (NaN-free; images without objects skipped).

    Attributes:
        auc: ``(B,)`` per image, ROC AUC of a linear discriminant (LDA) fitted
            on the image's own RGB values to predict "pixel is object" — an
            optimistic, in-sample upper bound on what colour alone tells.
            0.5 = colour says nothing; 1 = colour separates perfectly.
        ring_delta: ``(B,)`` per image, mean absolute difference (grey
            levels, averaged over R, G, B) between the object's mean colour
            and the mean colour of a ``ring``-px band around it.
    """

    auc: np.ndarray
    ring_delta: np.ndarray

    @property
    def mean_auc(self) -> float:
        return float(self.auc.mean()) if len(self.auc) else float("nan")

    @property
    def mean_ring_delta(self) -> float:
        return float(self.ring_delta.mean()) if len(self.ring_delta) else float("nan")


def pixel_contrast(samples: Iterable[Sample], ring: int = 3) -> PixelContrast:
    """Measure :class:`PixelContrast` on ``samples`` (uses scikit-learn's LDA)."""
    from scipy.ndimage import binary_dilation
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.metrics import roc_auc_score

    aucs, deltas = [], []
    for s in samples:
        obj = object_mask(s)
        if obj.all() or not obj.any():
            continue
        x = s.image.reshape(-1, 3).astype(np.float64)
        y = obj.ravel()
        lda = LinearDiscriminantAnalysis().fit(x, y)
        aucs.append(roc_auc_score(y, lda.decision_function(x)))
        band = binary_dilation(obj, iterations=ring) & ~obj
        if band.any():
            deltas.append(np.abs(s.image[obj].mean(0) - s.image[band].mean(0)).mean())
    return PixelContrast(np.asarray(aucs), np.asarray(deltas))


# --------------------------------------------------------------------------
# Tables: what the images hold
# --------------------------------------------------------------------------


def object_table(samples: Iterable[Sample]):
    """A pandas DataFrame with one row per ground-truth object.

    Columns: ``image`` (position in ``samples``), ``cls`` (class name),
    ``area`` (visible pixels / image pixels), ``box_w``, ``box_h`` (px).
    """
    import pandas as pd

    rows = []
    for i, s in enumerate(samples):
        hw = s.semantic.size
        for box, lab, m in zip(s.boxes, s.labels, s.masks):
            rows.append((i, s.class_names[lab], m.sum() / hw, box[2] - box[0], box[3] - box[1]))
    return pd.DataFrame(rows, columns=["image", "cls", "area", "box_w", "box_h"])


def presence_table(samples: Iterable[Sample]):
    """A pandas DataFrame with one row per image and one bool column per semantic name.

    A part or class counts as present when at least one pixel carries it;
    plus ``n_objects`` (ground-truth objects) and ``area_<part>`` columns
    with the fraction of the image each part covers.
    """
    import pandas as pd

    rows = []
    for s in samples:
        counts = np.bincount(s.semantic.ravel(), minlength=256)[: len(s.semantic_names)]
        row = {n: bool(c) for n, c in zip(s.semantic_names, counts)}
        row.update({f"area_{n}": c / s.semantic.size for n, c in zip(s.part_names, counts)})
        row["n_objects"] = len(s.labels)
        rows.append(row)
    return pd.DataFrame(rows)
