"""Paper-style figures of saliency maps: overlays, boxes and panel grids.

Conventions: images are (H, W, 3) uint8 in the network input's pixel frame
(for padded inputs the original image; padding is simply not shown); grid
maps are (rows, cols) and are drawn over ``[0, cols*p] x [0, rows*p]`` with
nearest-neighbour cells (no resampling), so a padded grid overhangs and is
cut at the image border. GT boxes are drawn in :data:`GT_COLOR`, predicted
boxes in :data:`PRED_COLOR`.

One colormap (:data:`CMAP`) is used for every map of a figure, and each kind
of map (attention, inverse degree, correlation, composite, eigenvector) gets
one normalisation shared by all rows of the figure, so models can be
compared panel to panel.

Figures are plain ``matplotlib.figure.Figure`` objects (no pyplot state);
display them with ``IPython.display.display(fig)`` or ``fig.savefig``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import matplotlib.colors as mcolors
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

__all__ = [
    "CMAP",
    "GT_COLOR",
    "PRED_COLOR",
    "shared_norm",
    "overlay",
    "draw_boxes",
    "PanelRow",
    "saliency_figure",
    "panel_titles",
]

CMAP = "inferno"
GT_COLOR = "#00e676"
PRED_COLOR = "#ff1744"


def shared_norm(maps: Sequence[np.ndarray], percentile: Optional[float] = None) -> mcolors.Normalize:
    """One ``Normalize`` over all ``maps`` (min..max, or the given upper percentile)."""
    values = np.concatenate([np.asarray(m, dtype=np.float64).ravel() for m in maps])
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError("maps must be non-empty and finite")
    lo = float(values.min())
    hi = float(np.percentile(values, percentile)) if percentile is not None else float(values.max())
    return mcolors.Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1e-12)


def overlay(ax, image: np.ndarray, grid_map: Optional[np.ndarray], patch: int, norm=None,
            cmap: str = CMAP, alpha: float = 0.65, title: Optional[str] = None):
    """Draw ``image`` and, on top, a (rows, cols) map with cells of ``patch`` px.

    A masked array's masked cells are left transparent (the composite is
    drawn this way: only the LOST mask is coloured). Returns the map's
    ``AxesImage`` (None without a map) for a colorbar.
    """
    img = np.asarray(image)
    h, w = img.shape[:2]
    ax.imshow(img, extent=(0, w, h, 0), interpolation="nearest")
    shown = None
    if grid_map is not None:
        m = np.ma.asarray(grid_map, dtype=np.float64)  # masked cells stay transparent
        rows, cols = m.shape
        shown = ax.imshow(m, extent=(0, cols * patch, rows * patch, 0), interpolation="nearest",
                          cmap=cmap, norm=norm, alpha=alpha)
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return shown


def draw_boxes(ax, boxes, color: str, label: Optional[str] = None, linewidth: float = 2.0) -> None:
    """Draw xyxy boxes (n, 4) or (4,) (exclusive max) as rectangles."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    for i, (x1, y1, x2, y2) in enumerate(b):
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color,
                               linewidth=linewidth, label=label if i == 0 else None))


@dataclass(frozen=True)
class PanelRow:
    """One row of :func:`saliency_figure`: an image and the methods' results on it.

    image: (H, W, 3) uint8; patch: p; attention: ``AttentionMaps``;
    lost: ``LostResult``; tokencut: ``TokenCutResult``; gt_boxes: (n, 4) or
    None; label: row label (e.g. the model name).
    """

    image: np.ndarray
    patch: int
    attention: object
    lost: object
    tokencut: object
    gt_boxes: Optional[np.ndarray] = None
    label: str = ""


def panel_titles(heads: Sequence[int]) -> list[str]:
    """Column titles of :func:`saliency_figure` for the chosen heads."""
    return (["image"] + [f"head {h}" for h in heads]
            + ["LOST inv. degree", "LOST correlation", "LOST composite", "LOST box",
               "TokenCut eigvec", "TokenCut box"])


def saliency_figure(rows: Sequence[PanelRow], heads: Optional[Sequence[int]] = None,
                    panel_size: float = 1.7) -> Figure:
    """The paper-style grid, one row per image/model:

    image | attention heads | LOST inverse degree | correlation | composite |
    LOST box | TokenCut eigenvector | TokenCut box.

    heads: which heads to show (default: all of the first row's heads).
    Each map kind shares one normalisation over the whole figure.
    """
    if not rows:
        raise ValueError("rows is empty")
    heads = list(range(rows[0].attention.num_heads)) if heads is None else list(heads)
    titles = panel_titles(heads)
    norms = {
        "att": shared_norm([r.attention.heads[h] for r in rows for h in heads]),
        "deg": shared_norm([r.lost.inverse_degree for r in rows]),
        "cor": shared_norm([r.lost.correlation for r in rows]),
        "comp": shared_norm([r.lost.composite[r.lost.mask] for r in rows]),
        "eig": shared_norm([r.tokencut.eigvec for r in rows]),
    }
    fig = Figure(figsize=(panel_size * len(titles), panel_size * len(rows) + 0.4), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(rows), len(titles)))
    for i, r in enumerate(rows):
        ax = iter(axes[i])
        overlay(next(ax), r.image, None, r.patch)
        for h in heads:
            overlay(next(ax), r.image, r.attention.heads[h], r.patch, norms["att"])
        overlay(next(ax), r.image, r.lost.inverse_degree, r.patch, norms["deg"])
        overlay(next(ax), r.image, r.lost.correlation, r.patch, norms["cor"])
        overlay(next(ax), r.image, np.ma.masked_where(~r.lost.mask, r.lost.composite), r.patch, norms["comp"])
        _box_panel(next(ax), r.image, r.gt_boxes, r.lost.box)
        overlay(next(ax), r.image, r.tokencut.eigvec, r.patch, norms["eig"])
        _box_panel(next(ax), r.image, r.gt_boxes, r.tokencut.box)
        if r.label:
            axes[i, 0].text(-0.05, 0.5, r.label, transform=axes[i, 0].transAxes, rotation=90,
                            ha="right", va="center", fontsize=9)
    for j, t in enumerate(titles):
        axes[0, j].set_title(t, fontsize=9)
    return fig


def _box_panel(ax, image, gt_boxes, pred_box) -> None:
    overlay(ax, image, None, 1)
    if gt_boxes is not None and np.size(gt_boxes):
        draw_boxes(ax, gt_boxes, GT_COLOR, "GT")
    draw_boxes(ax, pred_box, PRED_COLOR, "predicted")
