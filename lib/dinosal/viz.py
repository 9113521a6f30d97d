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
compared panel to panel. The book's figures that compare models (the seed
paper's three LOST panels, the attention heads, TokenCut's eigenvector) are
drawn by :mod:`dinosal.viz_panels`, which states one normalisation rule per
panel kind and adds colour bars; :func:`saliency_figure` is the older
all-in-one grid, where one raw scale per kind hides weak models.

Figures are plain ``matplotlib.figure.Figure`` objects (no pyplot state);
display them with ``IPython.display.display(fig)`` or ``fig.savefig``.

The book's other recurring figures live here too, so every chapter draws them
alike: :func:`ground_truth_figure` (images with their GT boxes over their
semantic masks, one distinct colour per index from :func:`categorical_colours`),
:func:`training_curves` (smoothed DINO log columns of several runs against
``log K``) and :func:`attention_strip` (one attention map per image and
training snapshot, one colour scale per snapshot). Reference lines (chance, ``log K``) are drawn in
:data:`REFERENCE_COLOR`; signed maps and ratios use :data:`DIVERGING_CMAP`,
tables of scores :data:`TABLE_CMAP` (drawn by :func:`styled_table`, which
shows a missing value as :data:`MISSING` on the page's own background). Rows of a panel grid are named by
:func:`row_label` (horizontal, at least :data:`LABEL_SIZE` pt), and words that
compare two numbers in computed prose come from :func:`compare_word` (an interval
against a margin: :func:`interval_word`).

:func:`source_of` and :func:`show_source` display the library's own code in
a chapter (BOOK.md: never a retyped copy), optionally with the module's
private helpers a function calls, so that a chapter shows them without
naming them.
"""

from __future__ import annotations

import functools
import textwrap
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import matplotlib
import matplotlib.colors as mcolors
from matplotlib import patheffects
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .data.sample import IGNORE
from .prose import (  # noqa: F401 - re-exported: the chapters call them as viz.*
    OUTPUT_CHARS,
    PAGE_CHARS,
    Wrapped,
    compare_word,
    interval_word,
    show_source,
    signed,
    source_of,
    wrapped_repr,
)

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
    "categorical_colours",
    "min_colour_distance",
    "semantic_colours",
    "semantic_rgb",
    "ground_truth_figure",
    "attention_strip",
    "LABEL_SIZE",
    "row_label",
    "compare_word",
    "interval_word",
    "signed",
    "MISSING",
    "styled_table",
    "PAGE_CHARS",
    "OUTPUT_CHARS",
    "Wrapped",
    "wrapped_repr",
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
MISSING = "–"
"""How a table shows a value that was not measured (an en dash, never ``nan`` or an empty black cell)."""
LABEL_SIZE = 9
"""Smallest font size (pt) of row labels and legends in the book's figures."""


def shared_norm(maps: Sequence[np.ndarray], percentile: Optional[float] = None) -> mcolors.Normalize:
    """One ``Normalize`` over all ``maps`` (min..max, or the given upper percentile)."""
    values = np.concatenate([np.asarray(m, dtype=np.float64).ravel() for m in maps])
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError("maps must be non-empty and finite")
    lo = float(values.min())
    hi = float(np.percentile(values, percentile)) if percentile is not None else float(values.max())
    return mcolors.Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1e-12)


def overlay(ax, image: np.ndarray, grid_map: Optional[np.ndarray], patch: int, norm=None,
            cmap: str = CMAP, alpha: float = 0.65, title: Optional[str] = None, grey: bool = False):
    """Draw ``image`` and, on top, a (rows, cols) map with cells of ``patch`` px.

    A masked array's masked cells are left transparent (the composite is
    drawn this way: only the LOST mask is coloured). ``grey``: draw an RGB
    ``image`` (uint8) as its luminance (ITU-R 601 weights), so that the only
    colour in the panel is the map's (an orange truck under a yellow-orange
    map otherwise reads as salient). Returns the map's ``AxesImage`` (None
    without a map) for a colorbar.
    """
    img = np.asarray(image)
    h, w = img.shape[:2]
    if grey and img.ndim == 3:
        luma = img[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        ax.imshow(luma, extent=(0, w, h, 0), interpolation="nearest", cmap="gray", vmin=0, vmax=255)
    else:
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
            row_label(axes[i, 0], r.label)
    for j, t in enumerate(titles):
        axes[0, j].set_title(t, fontsize=9)
    return fig


def _box_panel(ax, image, gt_boxes, pred_box) -> None:
    overlay(ax, image, None, 1)
    if gt_boxes is not None and np.size(gt_boxes):
        draw_boxes(ax, gt_boxes, GT_COLOR, "GT")
    draw_boxes(ax, pred_box, PRED_COLOR, "predicted")


# ---------------------------------------------------------------- the benchmark's ground truth


def _lab(rgb) -> np.ndarray:
    """CIELAB (D65) of sRGB colours in 0..1, shape (..., 3)."""
    rgb = np.asarray(rgb, dtype=np.float64)
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375],
                  [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    d = 6 / 29
    f = np.where(xyz > d ** 3, np.cbrt(xyz), xyz / (3 * d * d) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def _de2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference between CIELAB colours (broadcasting over leading axes)."""
    l1, a1, b1 = np.moveaxis(np.asarray(lab1, dtype=np.float64), -1, 0)
    l2, a2, b2 = np.moveaxis(np.asarray(lab2, dtype=np.float64), -1, 0)
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_mean ** 7 / (c_mean ** 7 + 25.0 ** 7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p, h2p = np.degrees(np.arctan2(b1, a1p)) % 360, np.degrees(np.arctan2(b2, a2p)) % 360
    dl, dc = l2 - l1, c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    dhh = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    l_mean, cp_mean = (l1 + l2) / 2, (c1p + c2p) / 2
    hs = h1p + h2p
    h_mean = np.where(c1p * c2p == 0, hs, np.where(np.abs(h1p - h2p) <= 180, hs / 2,
                                                 np.where(hs < 360, (hs + 360) / 2, (hs - 360) / 2)))
    t = (1 - 0.17 * np.cos(np.radians(h_mean - 30)) + 0.24 * np.cos(np.radians(2 * h_mean))
         + 0.32 * np.cos(np.radians(3 * h_mean + 6)) - 0.20 * np.cos(np.radians(4 * h_mean - 63)))
    rc = 2 * np.sqrt(cp_mean ** 7 / (cp_mean ** 7 + 25.0 ** 7))
    rt = -np.sin(np.radians(60 * np.exp(-(((h_mean - 275) / 25) ** 2)))) * rc
    sl = 1 + 0.015 * (l_mean - 50) ** 2 / np.sqrt(20 + (l_mean - 50) ** 2)
    sc, sh = 1 + 0.045 * cp_mean, 1 + 0.015 * cp_mean * t
    return np.sqrt((dl / sl) ** 2 + (dc / sc) ** 2 + (dhh / sh) ** 2 + rt * (dc / sc) * (dhh / sh))


def min_colour_distance(colours: Sequence[Sequence[float]]) -> float:
    """The smallest CIEDE2000 difference between two of ``colours`` (RGB in 0..1).

    About 1 is the smallest difference a reader notices side by side; the
    pairs of ``tab20`` (a colour and its lighter shade) lie around 12 and
    look alike in a mask; ``tab10``'s closest pair is 16.
    """
    lab = _lab(np.asarray(colours, dtype=np.float64)[:, :3])
    d = _de2000(lab[:, None], lab[None])
    np.fill_diagonal(d, np.inf)
    return float(d.min())


@functools.lru_cache(maxsize=8)
def _palette(n: int) -> tuple:
    chosen = [tuple(float(c) for c in rgb) for rgb in matplotlib.colormaps["tab10"].colors][:n]
    grid = np.linspace(0.0, 1.0, 18)
    cand = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), axis=-1).reshape(-1, 3)
    lab = _lab(cand)
    # neither near black nor near the white of ignored pixels, and no neon (chroma below 80)
    keep = (lab[:, 0] > 25) & (lab[:, 0] < 90) & (np.hypot(lab[:, 1], lab[:, 2]) < 80)
    cand, lab = cand[keep], lab[keep]
    nearest = np.full(len(cand), np.inf)
    for c in [(1.0, 1.0, 1.0)] + chosen:
        nearest = np.minimum(nearest, _de2000(lab, _lab(np.array(c))[None]))
    while len(chosen) < n:
        k = int(np.argmax(nearest))
        chosen.append(tuple(float(c) for c in cand[k]))
        nearest = np.minimum(nearest, _de2000(lab, lab[k][None]))
    return tuple(chosen)


def categorical_colours(n: int) -> list[tuple[float, float, float]]:
    """``n`` distinct RGB colours (0..1) for categories, the same ``n`` always giving the same list.

    The first ten are matplotlib's ``tab10``; each further colour is the one
    of an 18-level RGB grid farthest (CIEDE2000) from all colours chosen so
    far and from white (Glasbey's method), leaving out near-black, near-white
    and neon colours. Unlike ``tab20`` (pairs of shades, repeating after 20)
    no two colours are close: :func:`min_colour_distance` stays at tab10's
    own 16 for at least 32 colours.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return list(_palette(int(n)))


def semantic_colours(n: int) -> list[tuple[float, float, float]]:
    """RGB colours (0..1) of semantic indices ``0..n-1``: :func:`categorical_colours`, one distinct colour each."""
    return categorical_colours(n)


def semantic_rgb(semantic: np.ndarray, colours: Sequence[Sequence[float]]) -> np.ndarray:
    """(H, W, 3) float image of a semantic mask: ``colours[k]`` per index, white where :data:`IGNORE`."""
    sem = np.asarray(semantic)
    rgb = np.ones(sem.shape + (3,))
    for k in np.unique(sem):
        if k != IGNORE:
            rgb[sem == k] = colours[int(k)][:3]
    return rgb


def ground_truth_figure(samples: Sequence, semantic_names: Sequence[str], title: Optional[str] = None,
                        panel_size: float = 1.7, per_row: Optional[int] = None) -> Figure:
    """One column per sample: the image with its GT boxes and class names on top, its semantic mask below.

    samples: ``dinosal.data.sample.Sample`` items (image, boxes, labels,
    class_names, semantic); semantic_names: the generator's names of the
    semantic indices (background parts, then classes). A legend names the
    indices present; ignored pixels are white. per_row: at most this many
    samples side by side (default: all); further samples start a new pair of
    rows below, so that a long gallery stays readable at the page's width.
    Axes are created block by block (images, then masks), left to right.
    """
    if not samples:
        raise ValueError("samples is empty")
    per_row = len(samples) if per_row is None else int(per_row)
    if per_row < 1:
        raise ValueError(f"per_row must be >= 1, got {per_row}")
    cols = min(per_row, len(samples))
    blocks = -(-len(samples) // cols)
    colours = semantic_colours(len(semantic_names))
    fig = Figure(figsize=(panel_size * cols + 2.2, 2 * panel_size * blocks + 0.5))
    axes = fig.subplots(2 * blocks, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for i, s in enumerate(samples):
        b, c = divmod(i, cols)
        top, bottom = axes[2 * b, c], axes[2 * b + 1, c]
        overlay(top, s.image, None, 1)
        draw_boxes(top, s.boxes, GT_COLOR, linewidth=1)
        for (x1, y1, _, _), lab in zip(np.asarray(s.boxes).reshape(-1, 4), s.labels):
            top.text(x1, y1 - 1, s.class_names[lab], color=GT_COLOR, fontsize=LABEL_SIZE - 1,
                     path_effects=[patheffects.withStroke(linewidth=2, foreground="black")])
        bottom.imshow(semantic_rgb(s.semantic, colours), interpolation="nearest")
    for i in range(len(samples), blocks * cols):  # the empty places of the last block
        b, c = divmod(i, cols)
        axes[2 * b, c].remove()
        axes[2 * b + 1, c].remove()
    present = sorted({int(k) for s in samples for k in np.unique(s.semantic) if k != IGNORE})
    handles = [Rectangle((0, 0), 1, 1, color=colours[k]) for k in present]
    ncols = 1 if len(present) <= 14 * blocks else 2
    fig.legend(handles, [semantic_names[k] for k in present], loc="center right", fontsize=LABEL_SIZE,
               frameon=False, ncols=ncols, handlelength=1.2, columnspacing=0.8)
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(right=1 - 1.5 * ncols / fig.get_figwidth(), wspace=0.05, hspace=0.05,
                        top=1 - 0.35 / fig.get_figheight(), bottom=0.02, left=0.02)
    return fig


def attention_strip(maps: Mapping[int, Sequence[np.ndarray]], images: Sequence[np.ndarray], patch: int,
                    title: Optional[str] = None, per_row: int = 6, percentile: float = 99,
                    panel_size: float = 1.6) -> Figure:
    """Attention maps over training: one column per snapshot step, one row per image.

    maps: step -> one (rows, cols) map per image (the same images at every
    step, in order); images: the (H, W, 3) images; patch: the map's cell size
    in px. Each column gets its own colour scale, from its smallest value to
    its ``percentile``-th percentile (:func:`shared_norm`), with a colour bar
    under it, ticked at its two ends: the attention of an untrained network is nearly flat, and a
    scale shared with the trained steps would hide it. More than ``per_row``
    steps are wrapped into blocks of about equal width, one below the other,
    so that titles and ticks stay readable at the page's width.
    """
    steps = list(maps)
    if not steps or not images:
        raise ValueError("attention_strip needs at least one step and one image")
    if any(len(maps[s]) != len(images) for s in steps):
        raise ValueError("every step needs one map per image")
    if per_row < 1:
        raise ValueError(f"per_row must be >= 1, got {per_row}")
    blocks = -(-len(steps) // per_row)
    cols = -(-len(steps) // blocks)
    rows = len(images)
    fig = Figure(figsize=(panel_size * cols, blocks * ((panel_size - 0.15) * rows + 0.7) + (0.3 if title else 0)),
                 layout="constrained")
    subfigs = np.atleast_1d(fig.subfigures(blocks, 1))
    for b, sub in enumerate(subfigs):
        axes = sub.subplots(rows, cols, squeeze=False)
        for c in range(cols):
            k = b * cols + c
            if k >= len(steps):
                for ax in axes[:, c]:
                    ax.set_axis_off()
                continue
            step = steps[k]
            norm = shared_norm(maps[step], percentile=percentile)
            shown = None
            for r, img in enumerate(images):
                shown = overlay(axes[r, c], img, maps[step][r], patch, norm=norm)
            axes[0, c].set_title(f"step {step}", fontsize=LABEL_SIZE + 1)
            bar = sub.colorbar(shown, ax=axes[:, c], location="bottom", shrink=0.9, aspect=12, pad=0.01)
            # the two ends of the scale only: three ticks of a narrow bar run into each other
            # (both to the decimals of two significant digits of the top: a tiny bottom reads 0.000)
            decimals = max(0, 1 - int(np.floor(np.log10(abs(norm.vmax))))) if norm.vmax else 2
            bar.set_ticks([norm.vmin, norm.vmax], labels=[f"{v:.{decimals}f}" for v in (norm.vmin, norm.vmax)])
            bar.ax.tick_params(labelsize=LABEL_SIZE)
    if title:
        fig.suptitle(title, fontsize=LABEL_SIZE + 2)
    return fig


def row_label(ax, text: str, fontsize: float = LABEL_SIZE, width: int = 16):
    """Name a row of panels: horizontal text left of ``ax``, wrapped at ``width`` characters.

    Replaces rotated y-labels, which are hard to read at small sizes. The text
    lies outside the axes: figures shown inline (saved with a tight bounding
    box) keep it. Returns the ``Text``.
    """
    if fontsize < LABEL_SIZE:
        raise ValueError(f"row labels are at least {LABEL_SIZE} pt, got {fontsize}")
    return ax.text(-0.06, 0.5, textwrap.fill(str(text), width), transform=ax.transAxes,
                   ha="right", va="center", fontsize=fontsize)


# ---------------------------------------------------------------- tables


def styled_table(df, precision: int = 3, gradient: Sequence[str] = (), cmap: str = TABLE_CMAP,
                 caption: Optional[str] = None):
    """A pandas ``Styler`` of a table as the book shows it.

    Floats with ``precision`` decimals (integers, strings and booleans as they
    are), missing values as :data:`MISSING`, a :data:`TABLE_CMAP` background
    gradient on the ``gradient`` columns only. A missing value in a gradient
    column keeps the page's background (pandas would paint it black: the
    colormap's "bad" colour is transparent black, and the alpha is dropped).
    Every cell gets horizontal padding, so that neighbouring columns never run
    together ("0.008]0.726").
    """
    st = df.style.format(precision=precision, na_rep=MISSING)
    st = st.set_table_styles([{"selector": "td, th", "props": "padding: 0 0.6em;"}], overwrite=False)
    if gradient:
        st = st.background_gradient(subset=list(gradient), cmap=cmap)
        st = st.highlight_null(props="background-color: transparent; color: inherit")
    if caption:
        st = st.set_caption(caption)
    return st




# ---------------------------------------------------------------- training logs

DINO_CURVES = (("teacher_entropy", r"teacher entropy $h(P_t)$ (nats)"),
               ("teacher_marginal_entropy", r"entropy of the batch mean of $P_t$"),
               ("kl", r"$\mathrm{KL}(P_t\,\|\,P_s)$ (nats)"))
"""The columns of a DINO log that tell collapse apart, with their axis labels."""


def training_curves(logs: Mapping[str, object], columns: Sequence[tuple[str, str]] = DINO_CURVES,
                    log_k: Optional[float] = None, title: Optional[str] = None, window: int = 25,
                    figsize: tuple[float, float] = (10, 3.4)) -> Figure:
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
            ax.text(0, log_k, r" $\log K$ (uniform)", va="bottom", fontsize=LABEL_SIZE, color=REFERENCE_COLOR)
        ax.set(xlabel="step", ylabel=label)
    axes[0].legend(fontsize=LABEL_SIZE)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
