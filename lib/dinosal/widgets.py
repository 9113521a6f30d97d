"""An ipywidgets explorer of saliency maps for seminars.

``SaliencyExplorer(images, models, patch)`` shows one image, one model and one
method at a time and recomputes when a control changes: image, model, method
(attention of one head, mean attention, LOST inverse degree, LOST
correlation, LOST composite, TokenCut eigenvector), head, k (LOST) and tau
(TokenCut). Features are taken once per (image, model) with
:class:`dinosal.features.LastBlockTap` and cached; the methods themselves run
on every change. Each map is drawn on the scale the book's figures give its
kind (:mod:`dinosal.viz_panels`): attention relative to the head's mean on one
log scale, LOST's inverse degree and composite on a log scale labelled in
degrees, the correlation and TokenCut's eigenvector per map around their
thresholds.

The callback is :meth:`SaliencyExplorer.update`, which takes the control
values as keyword arguments and returns an :class:`ExplorerView` (the map,
the box and the figure), so it can be driven without a browser. In a live
notebook, display the explorer (``explorer`` as the last expression, or
``display(explorer.widget)``).

``GeneratorKnobs(makers, size)`` is the benchmark chapter's toy: sliders for
camouflage, background variability and seed that redraw one image of each
procedural generator (:meth:`GeneratorKnobs.figure` draws without a browser).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Optional, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from .features import LastBlockFeatures, LastBlockTap, patch_size_of
from .saliency.attention import DINO_MASS_SHARE, cls_attention, mass_threshold
from .saliency.lost import lost
from .saliency.tokencut import tokencut
from .viz import GT_COLOR, LABEL_SIZE, PRED_COLOR, draw_boxes, overlay
from .viz_panels import ATTENTION, CORRELATION, EIGVEC, PanelKind, colour_bar, composite_kind, degree_kind, show

__all__ = ["figure_png", "METHODS", "ExplorerState", "ExplorerView", "SaliencyExplorer", "GeneratorKnobs"]

METHODS = ("attention head", "attention mean", "LOST degree", "LOST correlation", "LOST composite",
           "TokenCut")


@dataclass(frozen=True)
class ExplorerState:
    """The control values: image index, model name, method, head, k, tau."""

    image: int = 0
    model: str = ""
    method: str = "attention mean"
    head: int = 0
    k: int = 100
    tau: float = 0.2


@dataclass(frozen=True)
class ExplorerView:
    """What one update computed.

    state: the control values used (k clipped to the number of patches)
    map: (rows, cols) float, the map drawn
    box: (4,) int64 xyxy px predicted box, or None (attention methods)
    mask: (rows, cols) bool (LOST/TokenCut mask, or the attention mask that keeps DINO_MASS_SHARE of the mass)
    figure: the matplotlib Figure (overlay | image with GT and predicted box)
    """

    state: ExplorerState
    map: np.ndarray
    box: Optional[np.ndarray]
    mask: np.ndarray
    figure: Figure


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """The PNG bytes of a matplotlib figure (for an ``ipywidgets.Image``)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


class SaliencyExplorer:
    """Interactive saliency explorer.

    images: sequence of (H, W, 3) uint8 arrays, or of objects with ``.image``
        (and optionally ``.boxes``, drawn as GT), e.g. ``dinosal.data`` samples.
    models: name -> timm VisionTransformer (eval mode is used for features).
    patch: the models' patch size (checked against each model; None: read it).
    mode: "pad" or "resize" (see :func:`dinosal.features.prepare`).
    degree: the inverse-degree scale of every LOST degree and composite map
        (a :func:`dinosal.viz_panels.degree_kind`, e.g. over every held-out
        image of a chapter), so that switching image or model keeps one
        scale; None: each map's own (its 1st to 99th percentile, still log
        and labelled in degrees).
    """

    def __init__(self, images: Sequence, models: Mapping[str, torch.nn.Module],
                 patch: Optional[int] = None, mode: str = "pad", degree: Optional[PanelKind] = None):
        if len(images) == 0 or len(models) == 0:
            raise ValueError(f"need at least one image and one model, got {len(images)} and {len(models)}")
        self.images = [np.asarray(getattr(im, "image", im)) for im in images]
        self.gt_boxes = [getattr(im, "boxes", None) for im in images]
        self.models = dict(models)
        for name, m in self.models.items():
            p = patch_size_of(m)
            if patch is not None and p != patch:
                raise ValueError(f"model {name!r} has patch size {p}, but patch={patch}")
        self.patch = patch if patch is not None else patch_size_of(next(iter(self.models.values())))
        self.mode = mode
        self.degree = degree
        self.state = ExplorerState(model=next(iter(self.models)))
        self._cache: dict[tuple[int, str], LastBlockFeatures] = {}
        self._widget = None
        self.last: Optional[ExplorerView] = None

    # ---- computation -------------------------------------------------
    def features(self, image: int, model: str) -> LastBlockFeatures:
        """Cached last-block features of one image under one model."""
        key = (image, model)
        if key not in self._cache:
            with LastBlockTap(self.models[model], mode=self.mode) as tap:
                self._cache[key] = tap(self.images[image])
        return self._cache[key]

    def _check(self, s: ExplorerState) -> ExplorerState:
        if not 0 <= s.image < len(self.images):
            raise ValueError(f"image must be in [0, {len(self.images)}), got {s.image}")
        if s.model not in self.models:
            raise ValueError(f"model must be one of {list(self.models)}, got {s.model!r}")
        if s.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {s.method!r}")
        return s

    def compute(self, state: ExplorerState):
        """(map (rows, cols), box or None, mask (rows, cols), state used) for a state."""
        f = self.features(state.image, state.model)
        k_feats = f.patches("k")[0]
        args = (k_feats, f.grid, f.patch_size, f.image_size)
        if state.method.startswith("attention"):
            if f.attn is None:
                raise ValueError(f"model {state.model!r} has no CLS token, no attention map")
            att = cls_attention(f.attn[0], f.grid)
            if state.method == "attention head" and not 0 <= state.head < att.num_heads:
                raise ValueError(f"head must be in [0, {att.num_heads}), got {state.head}")
            m = att.heads[state.head] if state.method == "attention head" else att.mean
            return m, None, mass_threshold(m, DINO_MASS_SHARE), state
        if state.method == "TokenCut":
            r = tokencut(*args, tau=state.tau)
            return r.eigvec, r.box, r.mask, state
        state = replace(state, k=int(min(state.k, k_feats.shape[0])))
        r = lost(*args, k=state.k)
        m = {"LOST degree": r.inverse_degree, "LOST correlation": r.correlation,
             "LOST composite": r.composite}[state.method]
        return m, r.box, r.mask, state

    def update(self, **values) -> ExplorerView:
        """Set control values (image, model, method, head, k, tau), recompute, redraw.

        Returns the :class:`ExplorerView`; unknown names raise ``ValueError``.
        """
        unknown = set(values) - set(ExplorerState.__dataclass_fields__)
        if unknown:
            valid = list(ExplorerState.__dataclass_fields__)
            raise ValueError(f"unknown controls {sorted(unknown)}; valid: {valid}")
        state = self._check(replace(self.state, **values))
        m, box, mask, state = self.compute(state)
        self.state = state
        fig = self._draw(state, m, box, mask)
        self.last = ExplorerView(state=state, map=m, box=box, mask=mask, figure=fig)
        return self.last

    def kind(self, method: str, grid_map, mask) -> PanelKind:
        """The :class:`~dinosal.viz_panels.PanelKind` a map of ``method`` is drawn with (see the module docstring)."""
        if method.startswith("attention"):
            return ATTENTION
        if method == "LOST correlation":
            return CORRELATION
        if method == "TokenCut":
            return EIGVEC
        if method == "LOST composite":
            inside = np.asarray(grid_map, dtype=np.float64)[np.asarray(mask, dtype=bool)]
            return composite_kind(self.degree if self.degree is not None else degree_kind([inside]))
        return self.degree if self.degree is not None else degree_kind([grid_map])

    def _draw(self, s: ExplorerState, m, box, mask) -> Figure:
        fig = Figure(figsize=(7.0, 3.4), layout="constrained")
        a0, a1 = fig.subplots(1, 2)
        image = self._shown_image(s.image)
        kind = self.kind(s.method, m, mask)
        show(a0, image, m, self.patch, kind, mask=mask if s.method == "LOST composite" else None)
        a0.set_title(f"{s.model}: {s.method}", fontsize=LABEL_SIZE)
        colour_bar(fig, kind, ax=a0, shrink=0.8)
        overlay(a1, image, mask.astype(float), self.patch, alpha=0.35, cmap="gray")
        a1.set_title("mask and boxes", fontsize=LABEL_SIZE)
        gt = self.gt_boxes[s.image]
        if gt is not None and np.size(gt):
            scale = np.array(image.shape[1::-1] * 2) / np.array(self.images[s.image].shape[1::-1] * 2)
            draw_boxes(a1, np.asarray(gt, dtype=np.float64) * scale, GT_COLOR, "GT")
        if box is not None:
            draw_boxes(a1, box, PRED_COLOR, "predicted")
        return fig

    def _shown_image(self, i: int) -> np.ndarray:
        if self.mode == "pad":
            return self.images[i]
        f = next(v for (j, _), v in self._cache.items() if j == i)
        from PIL import Image
        h, w = f.image_size
        return np.asarray(Image.fromarray(self.images[i]).resize((w, h), Image.BICUBIC))

    # ---- widgets -----------------------------------------------------
    @property
    def widget(self):
        """The ipywidgets box (controls + output), built on first use."""
        if self._widget is None:
            self._widget = self._build()
        return self._widget

    def _build(self):
        import ipywidgets as W

        s = self.state
        n_max = max(-(-im.shape[0] // self.patch) * -(-im.shape[1] // self.patch) for im in self.images)
        heads = max(getattr(m.blocks[-1].attn, "num_heads", 1) for m in self.models.values())
        label = {"style": {"description_width": "initial"}}  # the whole description, never cut to "tau (Toke…"
        self.controls = {
            "image": W.IntSlider(value=s.image, min=0, max=len(self.images) - 1, description="image", **label),
            "model": W.Dropdown(options=list(self.models), value=s.model, description="model", **label),
            "method": W.Dropdown(options=list(METHODS), value=s.method, description="method", **label),
            "head": W.IntSlider(value=s.head, min=0, max=heads - 1, description="head", **label),
            "k": W.IntSlider(value=min(s.k, n_max), min=1, max=n_max, description="k (LOST)", **label),
            "tau": W.FloatSlider(value=s.tau, min=0.0, max=0.9, step=0.01, description="tau (TokenCut)", **label),
        }
        # The picture is an Image widget fed with PNG bytes, not an Output
        # widget: capturing display output inside an Output widget while a
        # notebook is executed headless (nbclient, papermill, jupyter-book)
        # intermittently deadlocks (jupyter/nbclient#312), and an Image
        # widget's value is saved in the widget state, so the rendered book
        # shows it with no kernel.
        picture = W.Image(format="png")
        message = W.Label()

        def refresh(_=None):
            values = {name: c.value for name, c in self.controls.items()}
            try:
                picture.value = figure_png(self.update(**values).figure)
                message.value = ""
            except ValueError as err:
                message.value = f"cannot draw: {err}"

        for c in self.controls.values():
            c.observe(refresh, names="value")
        refresh()
        self.picture = picture
        return W.VBox([W.HBox([self.controls["image"], self.controls["model"], self.controls["method"]]),
                       W.HBox([self.controls["head"], self.controls["k"], self.controls["tau"]]),
                       W.VBox([message, picture])])

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)


class GeneratorKnobs:
    """Sliders that redraw the first image of each procedural generator.

    makers: name -> (generator class, config class), e.g. ``{"ObjectWorld":
    (ObjectWorld, WorldConfig)}``; size: image side in px. The controls are
    camouflage and background variability (0..1, steps of 0.25) and the
    dataset seed (0..20); every other field keeps its default.
    """

    def __init__(self, makers: Mapping[str, tuple[type, type]], size: int):
        if not makers:
            raise ValueError("makers is empty")
        self.makers = dict(makers)
        self.size = int(size)
        self._widget = None

    def figure(self, camouflage: float = 0.5, background_variability: float = 1.0, seed: int = 0) -> Figure:
        """One panel per generator: its image 0 under these knob values."""
        fig = Figure(figsize=(2.5 * len(self.makers), 2.6))
        axes = np.atleast_1d(fig.subplots(1, len(self.makers)))
        for ax, (name, (gen, cfg)) in zip(axes, self.makers.items()):
            g = gen(cfg(size=self.size, seed=seed, camouflage=camouflage,
                        background_variability=background_variability))
            ax.imshow(g[0].image)
            ax.set(title=name, xticks=[], yticks=[])
        return fig

    @property
    def widget(self):
        """The ipywidgets box (sliders + picture), built on first use."""
        if self._widget is None:
            import ipywidgets as W

            label = {"style": {"description_width": "initial"}}  # the whole description, never cut to "bg variabi…"
            self.sliders = dict(
                camouflage=W.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.25, description="camouflage", **label),
                background_variability=W.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.25,
                                                     description="background variability", **label),
                seed=W.IntSlider(value=0, min=0, max=20, description="seed", **label),
            )
            self.picture = W.Image(format="png")  # an Image, not an Output widget: see SaliencyExplorer._build

            def refresh(_=None):
                self.picture.value = figure_png(self.figure(**{k: s.value for k, s in self.sliders.items()}))

            for s in self.sliders.values():
                s.observe(refresh, names="value")
            refresh()
            self._widget = W.VBox([W.HBox(list(self.sliders.values())), self.picture])
        return self._widget

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)
