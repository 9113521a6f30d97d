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
semantic masks, one distinct colour per index from :func:`categorical_colours`) and
:func:`training_curves` (smoothed DINO log columns of several runs against
``log K``). Reference lines (chance, ``log K``) are drawn in
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

import ast
import dataclasses
import functools
import inspect
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
    "LABEL_SIZE",
    "row_label",
    "compare_word",
    "interval_word",
    "MISSING",
    "styled_table",
    "PAGE_CHARS",
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
    fig = Figure(figsize=(panel_size * len(samples) + 2.2, 3.9))
    axes = fig.subplots(2, len(samples), squeeze=False)
    for s, top, bottom in zip(samples, axes[0], axes[1]):
        overlay(top, s.image, None, 1)
        draw_boxes(top, s.boxes, GT_COLOR, linewidth=1)
        for (x1, y1, _, _), lab in zip(np.asarray(s.boxes).reshape(-1, 4), s.labels):
            top.text(x1, y1 - 1, s.class_names[lab], color=GT_COLOR, fontsize=7,
                     path_effects=[patheffects.withStroke(linewidth=2, foreground="black")])
        bottom.imshow(semantic_rgb(s.semantic, colours), interpolation="nearest")
        bottom.set_axis_off()
    present = sorted({int(k) for s in samples for k in np.unique(s.semantic) if k != IGNORE})
    handles = [Rectangle((0, 0), 1, 1, color=colours[k]) for k in present]
    fig.legend(handles, [semantic_names[k] for k in present], loc="center right", fontsize=LABEL_SIZE,
               frameon=False, ncols=1 if len(present) <= 14 else 2, handlelength=1.2, columnspacing=0.8)
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(right=(0.86 if len(present) <= 14 else 0.74), wspace=0.05, hspace=0.05)
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
    """
    st = df.style.format(precision=precision, na_rep=MISSING)
    if gradient:
        st = st.background_gradient(subset=list(gradient), cmap=cmap)
        st = st.highlight_null(props="background-color: transparent; color: inherit")
    if caption:
        st = st.set_caption(caption)
    return st


PAGE_CHARS = 86
"""Characters of code or plain-text output that fit the book's page width (about 770 px) without scrolling."""


class Wrapped:
    """Plain text that a notebook shows as it is (no quotes): the result of :func:`wrapped_repr`."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.text)


def wrapped_repr(obj, width: int = PAGE_CHARS) -> Wrapped:
    """``repr(obj)`` broken into lines of at most ``width`` characters where possible.

    A dataclass (a chapter's parameters) is written ``Name(field=value, ...)``
    with whole fields packed onto each line under the opening parenthesis, so
    that no field is split; a field longer than a line gets a line of its own.
    Anything else is its ``repr``, unchanged.
    """
    if not (dataclasses.is_dataclass(obj) and not isinstance(obj, type)):
        return Wrapped(repr(obj))
    head = type(obj).__name__ + "("
    items = [f"{f.name}={getattr(obj, f.name)!r}" for f in dataclasses.fields(obj) if f.repr]
    lines, line = [], head
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else ")")
        if line.strip() and line != head and len(line) + 1 + len(piece) > width:
            lines.append(line)
            line = " " * len(head) + piece
        else:
            line = line + (" " if line != head else "") + piece
    if not items:
        line += ")"
    lines.append(line)
    return Wrapped("\n".join(lines))


# ---------------------------------------------------------------- words in computed prose


def compare_word(a: float, b: float, tol: float,
                 words: Sequence[str] = ("more than", "about the same as", "less than"),
                 missing: Optional[str] = None) -> str:
    """The word that compares ``a`` with ``b`` in computed prose, with a tolerance.

    ``words[0]`` when ``a > b + tol``, ``words[2]`` when ``a < b - tol``,
    ``words[1]`` otherwise (the difference is within ``tol``, ends included).
    Pass ``words`` to fit the sentence, e.g. ``("faster than", "as fast as",
    "slower than")``. A NaN on either side returns ``missing`` when it is
    given and raises otherwise: a sentence must not compare a number that was
    not measured.
    """
    a, b, tol = float(a), float(b), float(tol)
    if not np.isfinite(tol) or tol < 0:
        raise ValueError(f"tol must be finite and >= 0, got {tol}")
    if not (np.isfinite(a) and np.isfinite(b)):
        if missing is not None:
            return missing
        raise ValueError(f"compare_word needs finite numbers, got {a} and {b}")
    if len(words) != 3:
        raise ValueError(f"words holds (above, within, below), got {words!r}")
    d = a - b
    return words[0] if d > tol else words[2] if d < -tol else words[1]


def interval_word(low: float, high: float, margin: float,
                  words: Sequence[str] = ("higher", "within the margin", "lower", "not distinguishable from no change"),
                  missing: Optional[str] = None) -> str:
    """The word for an effect's confidence interval ``[low, high]`` against a margin of no meaningful change.

    ``words[1]`` when the whole interval lies inside ``[-margin, +margin]``, ``words[0]`` when it lies
    above 0, ``words[2]`` when it lies below 0, ``words[3]`` otherwise (it holds 0 but reaches past the
    margin). A NaN bound returns ``missing`` when it is given and raises ``ValueError`` otherwise.
    """
    low, high, margin = float(low), float(high), float(margin)
    if not np.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be finite and >= 0, got {margin}")
    if len(words) != 4:
        raise ValueError(f"words holds (above, within, below, unclear), got {words!r}")
    if not (np.isfinite(low) and np.isfinite(high)):
        if missing is not None:
            return missing
        raise ValueError(f"interval_word needs finite bounds, got {low} and {high}")
    if low > high:
        raise ValueError(f"low must not exceed high, got [{low}, {high}]")
    if -margin <= low and high <= margin:
        return words[1]
    return words[0] if low > 0 else words[2] if high < 0 else words[3]


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
