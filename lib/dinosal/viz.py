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

The book's other recurring figures live here too, so every chapter draws them
alike: :func:`ground_truth_figure` (images with their GT boxes over their
semantic masks, in the :data:`SEMANTIC_CMAP` palette) and
:func:`training_curves` (smoothed DINO log columns of several runs against
``log K``). Reference lines (chance, ``log K``) are drawn in
:data:`REFERENCE_COLOR`; signed maps and ratios use :data:`DIVERGING_CMAP`,
tables of scores :data:`TABLE_CMAP`.

:func:`source_of` and :func:`show_source` display the library's own code in
a chapter (BOOK.md: never a retyped copy), optionally with the module's
private helpers a function calls, so that a chapter shows them without
naming them.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import matplotlib
import matplotlib.colors as mcolors
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .data.sample import IGNORE

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
    "REFERENCE_COLOR",
    "DIVERGING_CMAP",
    "TABLE_CMAP",
    "SEMANTIC_CMAP",
    "semantic_colours",
    "semantic_rgb",
    "ground_truth_figure",
    "DINO_CURVES",
    "training_curves",
    "source_of",
    "show_source",
]

CMAP = "inferno"
GT_COLOR = "#00e676"
PRED_COLOR = "#ff1744"
REFERENCE_COLOR = "grey"
"""Reference lines and their labels: chance levels, ``log K``, ratio 1."""
DIVERGING_CMAP = "vlag"
"""Signed quantities and log ratios (blue below the centre, red above)."""
TABLE_CMAP = "Greens"
"""Background gradient of score tables (higher is greener)."""
SEMANTIC_CMAP = "tab20"
"""One colour per semantic index (background part or object class), cycled every 20."""


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


# ---------------------------------------------------------------- the benchmark's ground truth


def semantic_colours(n: int) -> list[tuple[float, float, float]]:
    """RGB colours (0..1) of semantic indices ``0..n-1`` in :data:`SEMANTIC_CMAP` (cycled every 20)."""
    cmap = matplotlib.colormaps[SEMANTIC_CMAP].resampled(20)
    return [tuple(float(c) for c in cmap(k % 20)[:3]) for k in range(n)]


def semantic_rgb(semantic: np.ndarray, colours: Sequence[Sequence[float]]) -> np.ndarray:
    """(H, W, 3) float image of a semantic mask: ``colours[k]`` per index, white where :data:`IGNORE`."""
    sem = np.asarray(semantic)
    rgb = np.ones(sem.shape + (3,))
    for k in np.unique(sem):
        if k != IGNORE:
            rgb[sem == k] = colours[int(k)][:3]
    return rgb


def ground_truth_figure(samples: Sequence, semantic_names: Sequence[str], title: Optional[str] = None,
                        panel_size: float = 1.7) -> Figure:
    """One column per sample: the image with its GT boxes and class names on top, its semantic mask below.

    samples: ``dinosal.data.sample.Sample`` items (image, boxes, labels,
    class_names, semantic); semantic_names: the generator's names of the
    semantic indices (background parts, then classes). A legend names the
    indices present; ignored pixels are white.
    """
    if not samples:
        raise ValueError("samples is empty")
    colours = semantic_colours(len(semantic_names))
    fig = Figure(figsize=(panel_size * len(samples) + 1.8, 3.9))
    axes = fig.subplots(2, len(samples), squeeze=False)
    for s, top, bottom in zip(samples, axes[0], axes[1]):
        overlay(top, s.image, None, 1)
        draw_boxes(top, s.boxes, GT_COLOR, linewidth=1)
        for (x1, y1, _, _), lab in zip(np.asarray(s.boxes).reshape(-1, 4), s.labels):
            top.text(x1, y1 - 1, s.class_names[lab], color=GT_COLOR, fontsize=6)
        bottom.imshow(semantic_rgb(s.semantic, colours), interpolation="nearest")
        bottom.set_axis_off()
    present = sorted({int(k) for s in samples for k in np.unique(s.semantic) if k != IGNORE})
    handles = [Rectangle((0, 0), 1, 1, color=colours[k]) for k in present]
    fig.legend(handles, [semantic_names[k] for k in present], loc="center right", fontsize=7, frameon=False)
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(right=0.86, wspace=0.05, hspace=0.05)
    return fig


# ---------------------------------------------------------------- training logs

DINO_CURVES = (("teacher_entropy", "teacher entropy h(P_t) (nats)"),
               ("teacher_marginal_entropy", "entropy of the batch-mean P_t"),
               ("kl", "KL(P_t || P_s) (nats)"))
"""The columns of a DINO log that tell collapse apart, with their axis labels."""


def training_curves(logs: Mapping[str, object], columns: Sequence[tuple[str, str]] = DINO_CURVES,
                    log_k: Optional[float] = None, title: Optional[str] = None, window: int = 25,
                    figsize: tuple[float, float] = (13, 3.6)) -> Figure:
    """One panel per log column, one line per run, smoothed by a rolling mean.

    logs: run name -> DataFrame with a ``step`` column (a DINO ``log.csv``);
    columns: (column, axis label) pairs; window: the rolling mean spans
    ``len(log) // window`` steps (at least 1); log_k: when given, a dashed
    line at ``log K`` (the uniform distribution) on every entropy panel.
    Run ``i`` is drawn in colour ``C{i}`` on every panel.
    """
    fig = Figure(figsize=figsize)
    axes = np.atleast_1d(fig.subplots(1, len(columns)))
    for ax, (col, label) in zip(axes, columns):
        for i, (name, log) in enumerate(logs.items()):
            smooth = log[col].rolling(max(1, len(log) // window), min_periods=1).mean()
            ax.plot(log.step, smooth, label=name, color=f"C{i}")
        if log_k is not None and "entropy" in col:
            ax.axhline(log_k, ls="--", color=REFERENCE_COLOR, lw=1)
            ax.text(0, log_k, " log K (uniform)", va="bottom", fontsize=8, color=REFERENCE_COLOR)
        ax.set(xlabel="step", ylabel=label)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- the library's code on the page


def _fields_only(src: str) -> str:
    """A class's source up to its first method (docstring, fields and class attributes)."""
    body = ast.parse(src).body[0]
    first = next((n for n in body.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
    if first is None:
        return src
    start = min([first.lineno] + [d.lineno for d in first.decorator_list])
    return "\n".join(src.splitlines()[: start - 1]).rstrip() + "\n"


def _private_helpers(fn) -> list:
    """The module-level private functions of ``fn``'s own module that ``fn`` calls, in order of first use."""
    module = inspect.getmodule(fn)
    if module is None:
        return []
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    names = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)),
                   key=lambda n: (n.lineno, n.col_offset))
    out = []
    for n in names:
        obj = vars(module).get(n.id)
        if (n.id.startswith("_") and not n.id.startswith("__") and inspect.isfunction(obj)
                and obj.__module__ == module.__name__ and obj not in out):
            out.append(obj)
    return out


def source_of(*objs, fields_only: bool = False, bases: bool = False, helpers: bool = False) -> str:
    """The dedented source of functions, methods or classes, joined by a blank line.

    fields_only: for a class, stop before its first method (a config
    dataclass's docstring and fields). bases: for a class, first the
    classes it inherits from that are defined in ``dinosal`` (the base-most
    first), so inherited fields are shown. helpers: after each function,
    the private functions of its module that it calls (one level), each
    shown once.
    """
    seen, parts = [], []

    def add(obj):
        if any(obj is o for o in seen):
            return
        seen.append(obj)
        src = textwrap.dedent(inspect.getsource(obj))
        parts.append(_fields_only(src) if fields_only and inspect.isclass(obj) else src.rstrip() + "\n")

    for obj in objs:
        if bases and inspect.isclass(obj):
            for base in reversed(obj.__mro__[1:]):
                if base.__module__.split(".")[0] == "dinosal":
                    add(base)
        add(obj)
        if helpers and not inspect.isclass(obj):
            for helper in _private_helpers(obj):
                add(helper)
    return "\n\n".join(p.rstrip("\n") for p in parts) + "\n"


def show_source(*objs, fields_only: bool = False, bases: bool = False, helpers: bool = False) -> None:
    """Display :func:`source_of` as a highlighted Python listing in a notebook."""
    from IPython.display import Code, display

    display(Code(source_of(*objs, fields_only=fields_only, bases=bases, helpers=helpers), language="python"))
