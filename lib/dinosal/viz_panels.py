"""Saliency figures that compare models: the seed paper's three LOST panels, and the rest.

The seed paper (its Fig. 4-6) draws LOST's **degree** map, its
**correlation** map and a **composite** (the degree inside the correlation
region) for several models side by side, and asks the reader to see which
model lights up the vehicles. A side-by-side reading is only honest when a
colour means the same thing in every column, so every figure here follows
three rules:

1. each panel kind (:class:`PanelKind`) has **one colour scale for the whole
   figure**, shared by every model and every image, drawn as a colour bar;
2. the normalisation of each kind is a stated rule (``PanelKind.rule``), chosen
   so that what the method itself uses is what the colours show (next
   paragraph);
3. the images shown are chosen by :func:`choose_images`, a rule fixed before
   anyone looks at the maps, never by hand.

The rules, per kind:

* **inverse degree** (:func:`degree_kind`): the book's one definition of the
  degree map, ``LostResult.inverse_degree`` = ``1 / (deg + 1)`` (bright = few
  positive links = salient), on a **log** colour scale whose limits are the
  1st and 99th percentiles of all inverse-degree values of the figure, every
  model and image pooled. The degree is a count of patches, comparable
  between models on the same grid, so one scale for all is meaningful; the
  log scale gives equal colour steps to equal *ratios* of degree (on a linear
  scale of ``1/(deg+1)`` all patches linked to more than a few dozen others,
  most of an image, crowd into the darkest colours); the percentile clip
  keeps one extreme patch from setting the scale. The colour bar is labelled in degrees.
* **composite** (:func:`composite_kind`): the same values and the same scale,
  inside LOST's region only (the seed's connected part of correlation > 0);
  the rest is left uncoloured.
* **correlation** (:data:`CORRELATION`): **per map**, ``M`` divided by the 99th
  percentile of ``|M|`` over the map's patches and clipped to [-1, 1], on a
  diverging scale whose white centre is 0, LOST's own threshold. Raw ``M``
  sums dot products of keys, whose size differs by orders of magnitude
  between networks (a network at random init has far shorter keys than a
  trained one), so a raw shared scale shows the weaker network as a flat
  wash; LOST itself uses only the sign of ``M``, which this scale keeps.
* **attention** (:data:`ATTENTION`): **per head**, each weight divided by the
  head's mean weight over the patches (1 = the head spreads its weight
  evenly), on one log scale from 1/16 to 16 for every head and model. No
  per-head stretch: a head that spreads its weight evenly stays pale, one
  that singles out a few patches is dark red there.
* **TokenCut eigenvector** (:data:`EIGVEC`): **per map**, ``v - mean(v)`` (the
  split TokenCut makes) divided by the 99th percentile of ``|v - mean(v)|``
  and clipped to [-1, 1], diverging around the split. The vector's scale is
  fixed by ``v^T D v = 1``, which changes with the graph (the model, tau), so
  only its sign and shape compare; red is TokenCut's foreground side (the
  sign rule puts the seed there).

:func:`paper_panels` draws the three paper panels (images x models, large);
:func:`more_panels` draws the rest (attention heads, their mean, TokenCut's
eigenvector) as a second figure. :func:`show` and :func:`colour_bar` draw one
panel kind anywhere else (a tau sweep, a gallery). :func:`ratio_figure` draws
where the maps' mass goes (mass share / area share per model and region, one
heat map per map, stacked; :data:`RATIO`). Figures are
:data:`FIGURE_INCHES` wide, so that with the inline backend's margins they
fill the page (:data:`PAGE_INCHES`) unshrunk and a font size in points is the
size the reader sees (:func:`displayed_font_sizes`).

Floor 2, beside the studies: it draws with :mod:`dinosal.viz` the results of
:mod:`dinosal.saliency` (``MethodMaps`` of :mod:`dinosal.localisation`, or
anything with ``.lost``, ``.tokencut`` and ``.attention``), and imports
neither of the studies.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence

import matplotlib.colors as mcolors
import numpy as np
from matplotlib import patheffects
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from .viz import CMAP, DIVERGING_CMAP, GT_COLOR, LABEL_SIZE, MISSING, PRED_COLOR, draw_boxes, overlay

__all__ = ["PAGE_INCHES", "INLINE_PAD", "FIGURE_INCHES", "PanelKind", "scale_by_percentile",
           "relative_to_uniform", "percentile_limits", "degree_kind", "composite_kind", "CORRELATION",
           "ATTENTION", "EIGVEC", "show", "outline", "colour_bar", "paper_panels", "more_panels", "RATIO",
           "ratio_heatmap", "ratio_figure", "IMAGE_RULES", "choose_images", "displayed_font_sizes"]

PAGE_INCHES = 7.7
"""Width (in) of the book's page: about 770 px at the inline backend's 100 dpi; a wider image is shrunk to it."""
INLINE_PAD = 0.1
"""Margin (in) the inline backend adds on each side of a figure (``bbox_inches="tight"``, ``pad_inches``)."""
FIGURE_INCHES = PAGE_INCHES - 2 * INLINE_PAD
"""Width (in) of the figures here: with the inline margins they fill the page without being shrunk."""
TITLE_SIZE = 10
"""Column titles (pt); row labels, colour-bar labels and ticks use :data:`dinosal.viz.LABEL_SIZE`."""
ATTENTION_RANGE = 16.0
"""Attention over its head's mean weight is drawn from ``1/ATTENTION_RANGE`` to ``ATTENTION_RANGE`` (log)."""
RATIO_RANGE = 4.0
"""A region's mass share / area share is drawn from ``1/RATIO_RANGE`` to ``RATIO_RANGE`` (log; beyond: the end colours)."""


@dataclass(frozen=True)
class PanelKind:
    """One kind of panel: what is drawn, how it is normalised, and its colour bar.

    name: row or column label; label: the colour bar's label; rule: the
    normalisation in one sentence (for docs and tables); cmap, norm: the one
    colour scale of the kind in a figure; transform: the per-map step applied
    to a raw ``(rows, cols)`` map before ``norm`` (identity for shared scales);
    ticks: ``(positions, labels)`` of the colour bar in ``norm``'s units, or
    None for matplotlib's.
    """

    name: str
    label: str
    rule: str
    cmap: str
    norm: mcolors.Normalize
    transform: Callable[[np.ndarray], np.ndarray] = np.asarray
    ticks: Optional[tuple[tuple[float, ...], tuple[str, ...]]] = None

    def values(self, grid_map) -> np.ndarray:
        """The map as drawn: ``transform`` of the raw map (masked cells stay masked)."""
        m = np.ma.asarray(grid_map, dtype=np.float64)
        out = np.ma.asarray(self.transform(np.ma.getdata(m)), dtype=np.float64)
        return np.ma.array(out, mask=np.ma.getmaskarray(m))


def scale_by_percentile(grid_map, q: float = 99.0, centre: Optional[float] = 0.0) -> np.ndarray:
    """``(m - c) / percentile(|m - c|, q)``, clipped to [-1, 1]; ``c = centre``, or ``mean(m)`` when None.

    The per-map rule of :data:`CORRELATION` (c = 0, LOST's threshold) and
    :data:`EIGVEC` (c = the mean, TokenCut's split). A map equal to ``c``
    everywhere gives zeros.
    """
    m = np.asarray(grid_map, dtype=np.float64)
    if not np.isfinite(m).all():
        raise ValueError("the map must be finite")
    c = float(m.mean()) if centre is None else float(centre)
    d = m - c
    s = float(np.percentile(np.abs(d), q))
    if s <= 0:
        s = float(np.abs(d).max())
    return np.zeros_like(d) if s <= 0 else np.clip(d / s, -1.0, 1.0)


def relative_to_uniform(grid_map) -> np.ndarray:
    """A non-negative map divided by its mean (1 = spread evenly): the per-head rule of :data:`ATTENTION`.

    An attention head's CLS->patch weights sum to less than 1 (the CLS and
    register columns are dropped), so dividing by the mean rather than by
    ``1/N`` keeps "1" at "even over the patches". A map of zeros stays zeros.
    """
    m = np.asarray(grid_map, dtype=np.float64)
    if not np.isfinite(m).all() or (m < 0).any():
        raise ValueError("the map must be finite and non-negative")
    mean = float(m.mean())
    return np.zeros_like(m) if mean <= 0 else m / mean


def percentile_limits(maps: Sequence, low: float = 1.0, high: float = 99.0) -> tuple[float, float]:
    """The ``low`` and ``high`` percentiles of all values of ``maps`` pooled (masked cells left out)."""
    parts = [np.ma.compressed(np.ma.asarray(m, dtype=np.float64)) for m in maps]
    values = np.concatenate(parts) if parts else np.array([])
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError("maps must hold finite values")
    lo, hi = np.percentile(values, [low, high])
    return float(lo), float(hi)


def _degree_ticks(lo: float, hi: float) -> tuple[tuple[float, ...], tuple[str, ...]]:
    """Colour-bar ticks of an inverse-degree scale at round degrees ``d`` (placed at ``1 / (d + 1)``)."""
    nice = [d * 10 ** e for e in range(6) for d in (1, 2, 5)]
    degs = [d for d in nice if lo <= 1.0 / (d + 1) <= hi]
    if len(degs) < 2:  # a narrow range: its ends, rounded
        degs = sorted({round(1.0 / hi - 1), round(1.0 / lo - 1)})
    return tuple(1.0 / (d + 1) for d in degs), tuple(str(d) for d in degs)


def degree_kind(inverse_degrees: Sequence, low: float = 1.0, high: float = 99.0) -> PanelKind:
    """The inverse-degree panel kind of a figure: a log scale over the pooled percentiles of ``inverse_degrees``.

    inverse_degrees: every ``LostResult.inverse_degree`` (or composite values
    inside the mask) the figure draws, all models and images. The colour bar
    is labelled in degrees (``deg``, where the colour is ``1/(deg+1)``).
    """
    lo, hi = percentile_limits(inverse_degrees, low, high)
    lo = max(lo, 1e-12)
    hi = max(hi, lo * 1.0001)
    return PanelKind(
        name="inverse degree",
        label="degree (log)",
        rule=(f"1/(deg+1) on one log scale for all models and images, clipped at the pooled {low:g}th and "
              f"{high:g}th percentiles"),
        cmap=CMAP,
        norm=mcolors.LogNorm(vmin=lo, vmax=hi, clip=True),
        ticks=_degree_ticks(lo, hi),
    )


def composite_kind(degree: PanelKind) -> PanelKind:
    """The composite's kind: the inverse degree inside LOST's region, on ``degree``'s scale."""
    return PanelKind(
        name="composite",
        label=degree.label,
        rule="the inverse degree inside LOST's region only, on the inverse-degree scale",
        cmap=degree.cmap,
        norm=degree.norm,
        ticks=degree.ticks,
    )


CORRELATION = PanelKind(
    name="correlation",
    label="M / p99|M|",
    rule="per map: M over the 99th percentile of |M|, clipped to [-1, 1]; white = 0, LOST's threshold",
    cmap=DIVERGING_CMAP,
    norm=mcolors.Normalize(-1.0, 1.0),
    transform=lambda m: scale_by_percentile(m, 99.0, centre=0.0),
    ticks=((-1.0, 0.0, 1.0), ("-1", "0", "1")),
)
"""LOST's correlation map ``M``, scaled per map (see the module docstring)."""

ATTENTION = PanelKind(
    name="attention",
    label="attention / head's mean (log)",
    rule=(f"per head: weight over the head's mean weight, one log scale from 1/{ATTENTION_RANGE:g} to "
          f"{ATTENTION_RANGE:g} for every head and model; white = spread evenly"),
    cmap=DIVERGING_CMAP,
    norm=mcolors.LogNorm(vmin=1.0 / ATTENTION_RANGE, vmax=ATTENTION_RANGE, clip=True),
    transform=lambda m: np.maximum(relative_to_uniform(m), 1e-12),
    ticks=((1 / 16, 1 / 4, 1.0, 4.0, 16.0), ("1/16", "1/4", "1", "4", "16")),
)
"""CLS attention of one head (or the mean of heads), relative to an even spread."""

EIGVEC = PanelKind(
    name="TokenCut eigenvector",
    label="(v - mean) / p99\n(per map)",
    rule=("per map: v minus its mean (TokenCut's split) over the 99th percentile of |v - mean|, clipped to "
          "[-1, 1]; red = the foreground side"),
    cmap=DIVERGING_CMAP,
    norm=mcolors.Normalize(-1.0, 1.0),
    transform=lambda v: scale_by_percentile(v, 99.0, centre=None),
    ticks=((-1.0, 0.0, 1.0), ("-1", "0", "1")),
)
"""TokenCut's Fiedler vector, centred at its split and scaled per map."""


def _cmap(name: str):
    """A colormap by name; seaborn's (``vlag``, :data:`dinosal.viz.DIVERGING_CMAP`) registers on import."""
    import matplotlib

    if name not in matplotlib.colormaps:
        import seaborn  # noqa: F401  (registers its colormaps)
    return matplotlib.colormaps[name]


def show(ax, image: np.ndarray, grid_map, patch: int, kind: PanelKind, mask=None, alpha: float = 0.7):
    """Draw ``image`` in grey and over it ``kind.values(grid_map)`` on the kind's scale (the only colour in
    the panel is the map's); returns the ``AxesImage``.

    mask: (rows, cols) bool; cells outside it are left uncoloured (the
    composite).
    """
    m = np.ma.asarray(grid_map, dtype=np.float64)
    if mask is not None:
        m = np.ma.masked_where(~np.asarray(mask, dtype=bool), m)
    return overlay(ax, image, kind.values(m), patch, norm=kind.norm, cmap=_cmap(kind.cmap), alpha=alpha, grey=True)


def colour_bar(fig: Figure, kind: PanelKind, cax=None, ax=None, orientation: str = "vertical", **kwargs):
    """The colour bar of ``kind`` (in ``cax``, or taking room from ``ax``), labels at :data:`LABEL_SIZE` pt.

    ``kwargs`` go to ``Figure.colorbar`` (e.g. ``shrink``, ``aspect``).
    """
    sm = ScalarMappable(norm=kind.norm, cmap=_cmap(kind.cmap))
    cb = fig.colorbar(sm, cax=cax, ax=None if cax is not None else ax, orientation=orientation, **kwargs)
    cb.set_label(kind.label, fontsize=LABEL_SIZE)
    axis = cb.ax.yaxis if orientation == "vertical" else cb.ax.xaxis
    if kind.ticks is not None:
        axis.set_major_locator(FixedLocator(kind.ticks[0]))
        axis.set_minor_locator(NullLocator())
        axis.set_ticklabels(kind.ticks[1])
    cb.ax.tick_params(labelsize=LABEL_SIZE)
    return cb


# ---------------------------------------------------------------- the figures


def _check(images, results) -> list[str]:
    models = list(results)
    if not models or len(images) == 0:
        raise ValueError("need at least one model and one image")
    for m in models:
        if len(results[m]) != len(images):
            raise ValueError(f"results[{m!r}] has {len(results[m])} entries for {len(images)} images")
    return models


def _label(ax, text: str, width: int = 13) -> None:
    """A row label in a hidden axes of the label column, each of its lines wrapped at ``width`` characters."""
    ax.set_axis_off()
    wrapped = "\n".join(textwrap.fill(line, width) for line in str(text).splitlines())
    ax.text(1.0, 0.5, wrapped, transform=ax.transAxes, ha="right", va="center", fontsize=LABEL_SIZE)


def _gt(ax, boxes, linewidth: float = 1.2) -> None:
    if boxes is not None and np.size(boxes):
        draw_boxes(ax, boxes, GT_COLOR, linewidth=linewidth)


def _seed(ax, lost_result) -> None:
    r, c = lost_result.seed_rc
    p = lost_result.patch
    ax.plot((c + 0.5) * p, (r + 0.5) * p, marker="+", markersize=8, mew=1.8, color="black",
            path_effects=[patheffects.withStroke(linewidth=3.5, foreground="white")])


def outline(ax, mask, patch: int, color: str = "white", linewidth: float = 1.2):
    """Draw the border of a (rows, cols) bool mask of ``patch`` px cells (a black-rimmed line); returns the collection."""
    m = np.pad(np.asarray(mask, dtype=bool), 1)
    segs = []
    for r, c in zip(*np.nonzero(m[1:, :] != m[:-1, :])):  # horizontal edges: between rows r-1 and r
        segs.append([(c - 1, r), (c, r)])
    for r, c in zip(*np.nonzero(m[:, 1:] != m[:, :-1])):  # vertical edges: between cols c-1 and c
        segs.append([(c, r - 1), (c, r)])
    lines = LineCollection(np.asarray(segs, dtype=np.float64).reshape(-1, 2, 2) * patch, colors=color,
                           linewidths=linewidth, path_effects=[patheffects.withStroke(linewidth=linewidth + 1.5,
                                                                                      foreground="black")])
    ax.add_collection(lines, autolim=False)
    return lines


def _aspect(images) -> float:
    return max(np.shape(im)[0] / np.shape(im)[1] for im in images)


def paper_panels(images: Sequence[np.ndarray], results: Mapping[str, Sequence], patch: int,
                 gt_boxes: Optional[Sequence] = None, names: Optional[Sequence[str]] = None,
                 width: float = FIGURE_INCHES, degree: Optional[PanelKind] = None) -> Figure:
    """The seed paper's three LOST panels for rows of images x columns of models.

    images: (H, W, 3) uint8, one per image block; results: model name ->
    one result per image (``.lost``: a ``LostResult``), in the order of
    ``images``; gt_boxes: per image (n, 4) xyxy or None; names: per image
    (the block's title, e.g. its index in the held-out set).

    Per image three rows: inverse degree (LOST's seed marked +), correlation,
    composite (LOST's region outlined in white, its box red, GT green); a
    first column shows the image with its GT boxes, a last one each row's
    colour bar. Scales: see the module
    docstring (inverse degree and composite: one log scale for the figure;
    correlation: per map, white at LOST's threshold). ``degree``: the inverse-degree scale to use (e.g.
    :func:`degree_kind` of more models, so that figures of model groups share it; None: this figure's).
    """
    models = _check(images, results)
    deg = degree or degree_kind([r.lost.inverse_degree for m in models for r in results[m]])
    kinds = (deg, CORRELATION, composite_kind(deg))
    n_img, n_mod = len(images), len(models)
    fig = Figure(figsize=(width, 0.1 + n_img * (3 * _aspect(images) * width / (n_mod + 2.3) + 0.3)),
                 layout="constrained")
    gs = fig.add_gridspec(3 * n_img, n_mod + 3, width_ratios=[0.62, 1] + [1] * n_mod + [0.07])
    for i, image in enumerate(images):
        gt = gt_boxes[i] if gt_boxes is not None else None
        for row, kind in enumerate(kinds):
            g = 3 * i + row
            _label(fig.add_subplot(gs[g, 0]), kind.name)
            ax_img = fig.add_subplot(gs[g, 1])
            if row == 0:
                overlay(ax_img, image, None, patch)
                _gt(ax_img, gt)
                ax_img.set_title(names[i] if names is not None else f"image {i}", fontsize=TITLE_SIZE)
            else:
                ax_img.set_axis_off()
            for j, m in enumerate(models):
                ax = fig.add_subplot(gs[g, 2 + j])
                lr = results[m][i].lost
                if row == 0:
                    show(ax, image, lr.inverse_degree, patch, kind)
                    _seed(ax, lr)
                    ax.set_title(m, fontsize=TITLE_SIZE)
                elif row == 1:
                    show(ax, image, lr.correlation, patch, kind)
                    _seed(ax, lr)
                else:
                    show(ax, image, lr.inverse_degree, patch, kind, mask=lr.mask)
                    outline(ax, lr.mask, patch)
                    _gt(ax, gt)
                    draw_boxes(ax, lr.box, PRED_COLOR, linewidth=1.6)
            colour_bar(fig, kind, cax=fig.add_subplot(gs[g, -1]))
    return fig


def more_panels(images: Sequence[np.ndarray], results: Mapping[str, Sequence], patch: int,
                heads: Optional[Sequence[int]] = None, gt_boxes: Optional[Sequence] = None,
                names: Optional[Sequence[str]] = None, width: float = FIGURE_INCHES) -> Figure:
    """The other panels, as a second figure: per image, one row per model.

    Columns: the attention heads (``heads``, default all of the first model
    with attention), their mean, and TokenCut's eigenvector with its box (red)
    and the GT boxes (green). Scales: attention per head relative to its
    mean, one log scale for all heads and models (:data:`ATTENTION`); the
    eigenvector per map around its split (:data:`EIGVEC`). The two colour
    bars are at the bottom. A model without attention or TokenCut (a pixel
    baseline) gets empty panels there.
    """
    models = _check(images, results)
    if heads is None:
        first = next((r.attention for m in models for r in results[m] if r.attention is not None), None)
        heads = range(first.num_heads if first is not None else 0)
    heads = list(heads)
    titles = [f"head {h}" for h in heads] + ["mean of heads", "TokenCut\neigenvector"]
    n_img, n_mod, n_col = len(images), len(models), len(heads) + 2
    panel = width / (n_col + 1.3)
    fig = Figure(figsize=(width, n_img * (n_mod * panel * _aspect(images) + 0.45) + 0.9), layout="constrained")
    gs = fig.add_gridspec(n_img * n_mod + 1, n_col + 1, width_ratios=[1.2] + [1] * n_col,
                          height_ratios=[1] * (n_img * n_mod) + [0.12])
    for i, image in enumerate(images):
        gt = gt_boxes[i] if gt_boxes is not None else None
        for j, m in enumerate(models):
            g, r = i * n_mod + j, results[m][i]
            name = names[i] if names is not None else f"image {i}"
            _label(fig.add_subplot(gs[g, 0]), f"{name}:\n{m}" if j == 0 else m, width=16)
            axes = [fig.add_subplot(gs[g, 1 + c]) for c in range(n_col)]
            maps = ([r.attention.heads[h] if h < r.attention.num_heads else None for h in heads] + [r.attention.mean]
                    if r.attention is not None else [None] * (len(heads) + 1))
            for ax, a in zip(axes, maps):
                if a is None:
                    overlay(ax, image, None, patch)
                else:
                    show(ax, image, a, patch, ATTENTION)
            if r.tokencut is not None:
                show(axes[-1], image, r.tokencut.eigvec, patch, EIGVEC)
                draw_boxes(axes[-1], r.tokencut.box, PRED_COLOR, linewidth=1.4)
            else:
                overlay(axes[-1], image, None, patch)
            _gt(axes[-1], gt, linewidth=1.0)
            if j == 0:
                for ax, t in zip(axes, titles):
                    ax.set_title(t, fontsize=LABEL_SIZE)
    colour_bar(fig, ATTENTION, cax=fig.add_subplot(gs[-1, 1:n_col - 1]), orientation="horizontal")
    colour_bar(fig, EIGVEC, cax=fig.add_subplot(gs[-1, n_col]), orientation="horizontal")
    return fig


# ---------------------------------------------------------------- where the mass goes

RATIO = PanelKind(
    name="mass share / area share",
    label="mass share / area share (log)",
    rule=(f"a region's share of the map's mass over its share of the image, one log scale from "
          f"1/{RATIO_RANGE:g} to {RATIO_RANGE:g}; white = 1 (no preference), red = favoured, blue = avoided"),
    cmap=DIVERGING_CMAP,
    norm=mcolors.LogNorm(vmin=1.0 / RATIO_RANGE, vmax=RATIO_RANGE, clip=True),
    ticks=((1 / 4, 1 / 2, 1.0, 2.0, 4.0), ("1/4", "1/2", "1", "2", "4")),
)
"""The region ratio of :func:`ratio_heatmap`: mass share / area share, one log scale, white at 1."""

MISSING_COLOUR = "0.93"
"""Background of a cell without a value in :func:`ratio_heatmap` (a light grey, not the "no preference" white)."""


def ratio_heatmap(ax, table, kind: PanelKind = RATIO, decimals: int = 2, fontsize: float = LABEL_SIZE):
    """Draw a models x regions table of ratios (a ``pandas.DataFrame``) as a heat map; returns the ``AxesImage``.

    Each cell is coloured on ``kind``'s scale (values beyond its ends get the end colours; 0 the
    lowest) and annotated with its value to ``decimals`` places; a missing value (NaN, e.g. the
    attention of a backbone without attention) is a grey cell marked :data:`dinosal.viz.MISSING`.
    Column names are drawn with ``_`` as a line break (``lane_marking`` -> "lane / marking"), so the
    labels stay horizontal. Row labels are the index.
    """
    values = np.asarray(table.to_numpy(dtype=np.float64), dtype=np.float64)
    finite = np.isfinite(values)
    lo, hi = kind.norm.vmin, kind.norm.vmax
    drawn = np.ma.masked_invalid(np.clip(np.where(finite, values, np.nan), lo, hi))
    cmap = _cmap(kind.cmap).with_extremes(bad=MISSING_COLOUR)
    im = ax.imshow(drawn, cmap=cmap, norm=kind.norm, aspect="auto", interpolation="nearest")
    strong = np.log(hi) * 0.55  # beyond this, the cell is dark: white text
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            dark = abs(np.log(np.clip(v, lo, hi))) > strong
            ax.text(j, i, f"{v:.{decimals}f}", ha="center", va="center", fontsize=fontsize,
                    color="white" if dark else "black")
        else:
            ax.text(j, i, MISSING, ha="center", va="center", fontsize=fontsize, color="0.35")
    rows, cols = values.shape
    ax.set_xticks(range(cols), [str(c).replace("_", "\n") for c in table.columns], fontsize=fontsize)
    ax.set_yticks(range(rows), [str(r) for r in table.index], fontsize=LABEL_SIZE)
    ax.set_xticks(np.arange(cols + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(rows + 1) - 0.5, minor=True)
    ax.grid(which="major", visible=False)  # a style's grid would strike through the numbers
    ax.grid(which="minor", visible=True, color="white", linewidth=1.5)
    ax.tick_params(which="both", length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    return im


def ratio_figure(tables: Mapping[str, object], title: Optional[str] = None, decimals: int = 2,
                 width: float = FIGURE_INCHES) -> Figure:
    """Where the maps' mass goes: one :func:`ratio_heatmap` per map, stacked, one colour bar (:data:`RATIO`).

    tables: map name (the panel's title) -> models x regions ``DataFrame`` of mass share / area
    share. Every panel is the figure's full ``width`` (the page's, so nothing is shrunk) and shows
    its own column labels.
    """
    if not tables:
        raise ValueError("need at least one table")
    rows = [max(len(t.index), 1) for t in tables.values()]
    row_in, extra = 0.27, 0.95  # per model row; title and column labels per panel
    fig = Figure(figsize=(width, sum(r * row_in + extra for r in rows) + (0.35 if title else 0) + 0.2),
                 layout="constrained")
    gs = fig.add_gridspec(len(tables), 2, width_ratios=[1, 0.025], height_ratios=[r * row_in + extra for r in rows])
    for i, (name, t) in enumerate(tables.items()):
        ax = fig.add_subplot(gs[i, 0])
        ratio_heatmap(ax, t, decimals=decimals)
        ax.set_title(name, fontsize=TITLE_SIZE, loc="left")
    colour_bar(fig, RATIO, cax=fig.add_subplot(gs[:, 1]))
    if title:
        fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig


# ---------------------------------------------------------------- which images a figure shows

IMAGE_RULES = ("first", "median", "quantiles")
"""The rules of :func:`choose_images`."""


def choose_images(scores, n: int, rule: str = "median") -> list[int]:
    """Indices of the ``n`` images a figure shows, by a rule fixed before the maps are looked at.

    scores: one number per image (e.g. LOST's mask IoU averaged over the
    models shown); NaN: never chosen by "median" or "quantiles".
    rule:
      "first": ``0 .. n-1``, the data's own order (which knows nothing of
        the maps); scores only give the number of images;
      "median": the ``n`` images whose score is closest to the median of
        the finite scores: typical images, neither the best nor the worst;
      "quantiles": for ``k = 0 .. n-1`` the image closest to the
        ``(k + 0.5) / n`` quantile of the scores, each image once: from a
        hard to an easy one.
    Ties go to the lower index. "median" and "quantiles" return the indices
    by ascending score (ties: lower index first); fewer than ``n`` when
    fewer images qualify.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if rule not in IMAGE_RULES:
        raise ValueError(f"rule must be one of {IMAGE_RULES}, got {rule!r}")
    if rule == "first":
        return list(range(min(int(n), s.size)))
    ok = [int(i) for i in np.flatnonzero(np.isfinite(s))]
    if not ok:
        raise ValueError("no image has a finite score")
    n = min(int(n), len(ok))
    if rule == "median":
        med = float(np.median(s[ok]))
        chosen = sorted(ok, key=lambda i: (abs(s[i] - med), i))[:n]
    else:
        chosen = []
        for t in np.quantile(s[ok], (np.arange(n) + 0.5) / n):
            chosen.append(min((i for i in ok if i not in chosen), key=lambda i: (abs(s[i] - t), i)))
    return sorted(chosen, key=lambda i: (s[i], i))


# ---------------------------------------------------------------- checks


def displayed_font_sizes(fig: Figure, page: float = PAGE_INCHES) -> list[tuple[str, float]]:
    """``(text, size in pt as the reader sees it)`` for every non-empty text the figure draws.

    A figure wider than ``page`` inches with the inline margins
    (:data:`INLINE_PAD` on each side) is shrunk to the page, and its fonts
    with it. Texts of hidden axes (axis off) and tick labels outside the
    view are left out.
    """
    fig.draw_without_rendering()
    scale = min(1.0, page / (fig.get_figwidth() + 2 * INLINE_PAD))
    texts = list(fig.texts) + ([fig._suptitle] if fig._suptitle is not None else [])
    for ax in fig.axes:
        texts += list(ax.texts) + [ax.title, ax._left_title, ax._right_title]
        if ax.axison:
            for axis in (ax.xaxis, ax.yaxis):
                if axis.get_visible():
                    lo, hi = sorted(axis.get_view_interval())
                    texts.append(axis.label)
                    texts += [t.label1 for t in axis.get_major_ticks()
                              if t.label1.get_visible() and lo - 1e-12 <= t.get_loc() <= hi + 1e-12]
    return [(t.get_text(), t.get_fontsize() * scale) for t in texts if t.get_visible() and t.get_text().strip()]
