"""The book's recurring figures and the source listings of :mod:`dinosal.viz`."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from dinosal import viz
from dinosal.data.sample import IGNORE
from dinosal.data.synthetic import DrivingConfig, DrivingScenes
from dinosal.losses import DINOLoss
from dinosal.saliency.tokencut import cosine_graph, fiedler, tokencut


# ---------------------------------------------------------------- source listings


def test_source_of_a_method_is_dedented():
    src = viz.source_of(DINOLoss.update_center)
    assert src.startswith("@torch.no_grad()\ndef update_center") or src.startswith("def update_center")
    assert src.endswith("\n") and not src.endswith("\n\n")


def test_fields_only_with_bases_shows_inherited_fields_first_and_no_method():
    src = viz.source_of(DrivingConfig, fields_only=True, bases=True)
    base_at, own_at = src.index("size: int = "), src.index("class DrivingConfig(")
    assert base_at < own_at, "the base class's fields come first"
    assert "n_objects" in src[own_at:]
    assert "def " not in src, "fields_only stops before the first method"
    assert src.count("@dataclass(frozen=True)") == 2


def test_fields_only_keeps_a_class_without_methods_whole():
    class Plain:
        """doc"""

        x: int = 1

    assert viz.source_of(Plain, fields_only=True) == viz.source_of(Plain)


def test_helpers_follow_their_caller_once_in_order_of_use():
    src = viz.source_of(cosine_graph, fiedler, tokencut, helpers=True)
    defs = [line.split("(")[0][4:] for line in src.splitlines() if line.startswith("def ")]
    assert defs[0] == "cosine_graph" and defs[1] == "_graph"
    assert defs.index("fiedler") < defs.index("_lanczos_second") < defs.index("tokencut")
    assert defs[-1] == "_warn_degenerate", "tokencut's own helper, after it; _graph is not repeated"
    assert len(defs) == len(set(defs))
    assert all(not d.startswith("__") for d in defs)


def test_without_helpers_only_the_objects_are_shown():
    src = viz.source_of(tokencut)
    assert [line for line in src.splitlines() if line.startswith("def ")] == [
        next(line for line in src.splitlines() if line.startswith("def "))]


def test_show_source_displays_python_code(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    viz.show_source(DINOLoss.update_center)
    assert len(shown) == 1 and isinstance(shown[0], IPython.display.Code)
    assert shown[0].data == viz.source_of(DINOLoss.update_center)


# ---------------------------------------------------------------- ground truth


def test_semantic_colours_cycle_every_twenty():
    colours = viz.semantic_colours(25)
    assert len(colours) == 25 and colours[20] == colours[0] and colours[1] != colours[0]
    assert all(len(c) == 3 and all(0 <= x <= 1 for x in c) for c in colours)


def test_semantic_rgb_paints_indices_and_leaves_ignored_pixels_white():
    sem = np.array([[0, 1], [IGNORE, 1]], dtype=np.uint8)
    colours = viz.semantic_colours(2)
    rgb = viz.semantic_rgb(sem, colours)
    assert rgb.shape == (2, 2, 3)
    assert np.allclose(rgb[0, 0], colours[0]) and np.allclose(rgb[1, 1], colours[1])
    assert np.allclose(rgb[1, 0], 1.0)


def test_ground_truth_figure_draws_boxes_names_masks_and_a_legend():
    g = DrivingScenes(DrivingConfig(size=48, seed=3, n_objects=(2, 3)))
    samples = [g[0], g[1]]
    fig = viz.ground_truth_figure(samples, g.semantic_names, title="t")
    assert isinstance(fig, Figure)
    axes = fig.axes
    assert len(axes) == 4
    tops = axes[:2]
    for ax, s in zip(tops, samples):
        assert len(ax.patches) == len(s.boxes)
        assert all(p.get_edgecolor()[:3] == matplotlib.colors.to_rgb(viz.GT_COLOR) for p in ax.patches)
        assert [t.get_text() for t in ax.texts] == [s.class_names[k] for k in s.labels]
    present = {int(k) for s in samples for k in np.unique(s.semantic) if k != IGNORE}
    assert len(fig.legends) == 1 and len(fig.legends[0].get_texts()) == len(present)
    with pytest.raises(ValueError):
        viz.ground_truth_figure([], g.semantic_names)


# ---------------------------------------------------------------- training curves


def _log(n, seed):
    g = np.random.default_rng(seed)
    return pd.DataFrame({"step": np.arange(n), "teacher_entropy": g.random(n), "teacher_marginal_entropy": g.random(n),
                         "kl": g.random(n)})


def test_training_curves_smooth_each_run_and_mark_log_k_on_entropy_panels():
    logs = {"a": _log(100, 0), "b": _log(50, 1)}
    fig = viz.training_curves(logs, log_k=2.0, title="t")
    axes = fig.axes
    assert len(axes) == len(viz.DINO_CURVES)
    for ax, (col, label) in zip(axes, viz.DINO_CURVES):
        assert ax.get_ylabel() == label
        runs = [line for line in ax.lines if line.get_label() in logs]
        assert [line.get_color() for line in runs] == ["C0", "C1"]
        expected = logs["a"][col].rolling(4, min_periods=1).mean().to_numpy()  # window 100 // 25
        assert np.allclose(runs[0].get_ydata(), expected)
        reference = [line for line in ax.lines if line not in runs]
        assert len(reference) == (1 if "entropy" in col else 0)
    assert axes[0].get_legend() is not None


def test_training_curves_without_log_k_draw_no_reference():
    fig = viz.training_curves({"a": _log(10, 0)}, columns=[("kl", "KL")], window=25)
    (ax,) = fig.axes
    assert len(ax.lines) == 1 and np.allclose(ax.lines[0].get_ydata(), _log(10, 0)["kl"])
