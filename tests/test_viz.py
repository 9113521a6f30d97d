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


def test_semantic_colours_are_distinct_for_the_largest_label_space():
    from dinosal.data.synthetic import ObjectWorld, WorldConfig

    n = len(ObjectWorld(WorldConfig(size=32, seed=0)).semantic_names)  # 24 categories + backdrop, clutter
    assert n >= 26
    colours = viz.semantic_colours(n)
    assert len(colours) == n and len(set(colours)) == n, "no colour repeats (tab20 repeated after 20)"
    assert all(len(c) == 3 and all(0 <= x <= 1 for x in c) for c in colours)
    assert viz.min_colour_distance(colours) >= 15, "every two categories stay apart at a glance"
    assert viz.min_colour_distance(colours + [(1.0, 1.0, 1.0)]) >= 15, "none close to the white of ignored pixels"
    assert viz.min_colour_distance(viz.categorical_colours(32)) >= 15


def test_categorical_colours_are_stable_prefixes_starting_with_tab10():
    import matplotlib

    short, long = viz.categorical_colours(12), viz.categorical_colours(30)
    assert long[:12] == short, "index k gets the same colour whatever the label space"
    assert short[:10] == [tuple(c) for c in matplotlib.colormaps["tab10"].colors]
    assert viz.categorical_colours(0) == []
    with pytest.raises(ValueError):
        viz.categorical_colours(-1)


def test_min_colour_distance_is_ciede2000():
    assert viz.min_colour_distance([(0, 0, 0), (1, 1, 1)]) == pytest.approx(100.0, abs=0.01)
    assert viz.min_colour_distance([(1, 0, 0), (1, 0, 0), (0, 0, 1)]) == 0.0
    # Sharma, Wu and Dalal (2005), test pairs 1 and 17 of their CIEDE2000 table
    pairs = [((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
             ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492)]
    for lab1, lab2, expected in pairs:
        assert float(viz._de2000(np.array(lab1), np.array(lab2))) == pytest.approx(expected, abs=1e-4)
    assert viz.min_colour_distance(matplotlib.colormaps["tab20"].colors) < 15, "tab20's pairs look alike"


def test_row_label_is_horizontal_readable_and_wrapped():
    fig = Figure()
    ax = fig.subplots()
    t = viz.row_label(ax, "background 1, objects 0 and more words")
    assert t.get_rotation() == 0 and t.get_fontsize() >= 9 and t.get_ha() == "right"
    assert "\n" in t.get_text() and all(len(line) <= 16 for line in t.get_text().splitlines())
    with pytest.raises(ValueError):
        viz.row_label(ax, "x", fontsize=7)


# ---------------------------------------------------------------- tables


def test_styled_table_shows_missing_values_as_a_dash_without_a_black_cell():
    df = pd.DataFrame({"LOST CorLoc": [0.5, np.nan, 0.25], "name": ["a", "b", None], "n": [1, 2, 3]},
                      index=["x", "y", "z"])
    html = viz.styled_table(df, gradient=["LOST CorLoc"], caption="scores").to_html()
    assert "nan" not in html.lower().replace("na_rep", "") and html.count(viz.MISSING) == 2
    assert "0.500" in html and "0.250" in html and ">1<" in html and "scores" in html
    ctx = viz.styled_table(df, gradient=["LOST CorLoc"])._compute().ctx
    missing = dict(ctx[(1, 0)])  # the NaN cell of the gradient column; dict keeps the last value, as CSS does
    assert missing["background-color"] == "transparent" and missing["color"] == "inherit", ctx[(1, 0)]
    assert dict(ctx[(0, 0)])["background-color"].startswith("#"), "measured cells keep their gradient"
    assert (0, 1) not in ctx, "no gradient outside the named columns"


def test_wrapped_repr_keeps_fields_whole_and_lines_within_the_page():
    from dinosal.config import resolve

    P = resolve("theory", "cpu")
    text = repr(viz.wrapped_repr(P))
    lines = text.splitlines()
    assert len(repr(P)) > viz.PAGE_CHARS and len(lines) > 1
    assert all(len(line) <= viz.PAGE_CHARS for line in lines)
    assert " ".join(line.strip() for line in lines) == repr(P), "the same text, only broken into lines"
    assert lines[1].startswith(" " * len(type(P).__name__ + "(")) and not lines[1][len(type(P).__name__) + 1] == " "
    assert repr(viz.wrapped_repr([1, 2])) == "[1, 2]"


# ---------------------------------------------------------------- comparison words


def test_compare_word_follows_the_numbers_with_a_tolerance():
    assert viz.compare_word(0.60, 0.50, 0.05) == "more than"
    assert viz.compare_word(0.40, 0.50, 0.05) == "less than"
    assert viz.compare_word(0.53, 0.50, 0.05) == "about the same as"
    assert viz.compare_word(0.47, 0.50, 0.05) == "about the same as"
    assert viz.compare_word(0.55, 0.50, 0.1) == "about the same as", "inside the tolerance, ends included"
    assert viz.compare_word(1.0, 1.0, 0.0) == "about the same as"
    assert viz.compare_word(1.0 + 1e-9, 1.0, 0.0) == "more than"
    words = ("faster than", "as fast as", "slower than")
    assert [viz.compare_word(a, 1.0, 0.05, words) for a in (1.2, 1.0, 0.8)] == list(words)


def test_compare_word_is_antisymmetric():
    rng = np.random.default_rng(0)
    flip = {"more than": "less than", "less than": "more than", "about the same as": "about the same as"}
    for a, b, tol in rng.random((200, 3)) * [1, 1, 0.2]:
        assert viz.compare_word(b, a, tol) == flip[viz.compare_word(a, b, tol)]


def test_compare_word_refuses_what_was_not_measured():
    with pytest.raises(ValueError):
        viz.compare_word(float("nan"), 1.0, 0.1)
    with pytest.raises(ValueError):
        viz.compare_word(1.0, 2.0, -0.1)
    with pytest.raises(ValueError):
        viz.compare_word(1.0, 2.0, 0.1, words=("more", "less"))
    assert viz.compare_word(1.0, float("nan"), 0.1, missing="not measured against") == "not measured against"


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
