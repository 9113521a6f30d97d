"""The book's recurring figures and the source listings of :mod:`dinosal.viz`, and the figures that
compare models of :mod:`dinosal.viz_panels`."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from dinosal import localisation, viz
from dinosal import viz_panels as vp
from dinosal.data.sample import IGNORE
from dinosal.data.synthetic import DrivingConfig, DrivingScenes
from dinosal.losses import DINOLoss
from dinosal.saliency.attention import cls_attention
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
    assert all(len(line) <= viz.OUTPUT_CHARS for line in lines)  # an output block is narrower than a code cell
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


def test_ground_truth_figure_wraps_a_long_gallery_into_rows():
    g = DrivingScenes(DrivingConfig(size=48, seed=3, n_objects=(2, 3)))
    samples = [g[i] for i in range(5)]
    fig = viz.ground_truth_figure(samples, g.semantic_names, per_row=2)
    assert len(fig.axes) == 2 * len(samples)  # the empty place of the last row is removed
    assert fig.get_figwidth() == pytest.approx(1.7 * 2 + 2.2)
    tops = [ax for ax in fig.axes if ax.patches or ax.texts]
    assert sum(len(ax.patches) for ax in tops) == sum(len(s.boxes) for s in samples)
    assert all(t.get_fontsize() >= viz.LABEL_SIZE - 1 for ax in tops for t in ax.texts)
    with pytest.raises(ValueError):
        viz.ground_truth_figure(samples, g.semantic_names, per_row=0)


def test_attention_strip_wraps_steps_with_one_colour_scale_per_step():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(2)]
    maps = {step: [rng.random((2, 2)) * (step + 1) for _ in images] for step in (0, 50, 100, 150, 300, 600, 1000)}
    fig = viz.attention_strip(maps, images, patch=8, title="t", per_row=4)
    subfigs = fig.subfigs
    assert len(subfigs) == 2  # 7 steps, at most 4 a row: blocks of 4 and 3
    titles = [ax.get_title() for sub in subfigs for ax in sub.axes if ax.get_title()]
    assert titles == [f"step {s}" for s in maps]
    for sub, steps in zip(subfigs, ((0, 50, 100, 150), (300, 600, 1000))):
        grid = sub.axes[: len(images) * 4]  # rows: images, columns: steps (row-major); colour bars after
        for i, ax in enumerate(grid):
            if i % 4 >= len(steps):
                assert not ax.images  # the empty place of the last block
                continue
            # each column's scale: its own maps' min to their 99th percentile
            values = np.concatenate([m.ravel() for m in maps[steps[i % 4]]])
            norm = ax.images[1].norm
            assert norm.vmin == pytest.approx(values.min())
            assert norm.vmax == pytest.approx(np.percentile(values, 99))
        bars = [ax for ax in sub.axes if not ax.images and ax.get_label() == "<colorbar>"]
        assert len(bars) == len(steps)
        assert all(t.get_fontsize() >= viz.LABEL_SIZE for ax in bars for t in ax.get_xticklabels())
    with pytest.raises(ValueError):
        viz.attention_strip({0: images[:1]}, images, patch=8)


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


# ---------------------------------------------------------------- figures that compare models (viz_panels)

MODELS = ("random", "dino_a", "dino_b")


def _panel_inputs(models=MODELS, n_img=2, seed=0):
    """Real LOST/TokenCut/attention results on a 6 x 6 grid; model k's keys are 10**k times larger."""
    rng = np.random.default_rng(seed)
    grid, patch = (6, 6), 8
    images = [rng.integers(0, 255, (48, 48, 3), dtype=np.uint8) for _ in range(n_img)]
    results = {}
    for k, m in enumerate(models):
        rr = []
        for _ in range(n_img):
            f = rng.normal(size=(36, 16))
            f[:8] += 2.5  # a group of similar patches, the "object"
            att = cls_attention(rng.dirichlet(np.full(36, 0.3 + k), size=3) * 0.9, grid)
            rr.append(localisation.maps_of_features(f * 10 ** k, grid, patch, (48, 48), k=10, tau=0.2, attention=att))
        results[m] = rr
    boxes = [np.array([[0, 0, 16, 16]]) for _ in range(n_img)]
    return images, results, patch, boxes


def _map_images(ax):
    """The overlays of a panel: every AxesImage but the photo (the first one drawn)."""
    return ax.get_images()[1:]


@pytest.fixture(scope="module")
def panel_inputs():
    return _panel_inputs()


def test_paper_panels_draw_three_rows_per_image_and_one_column_per_model(panel_inputs):
    images, results, patch, boxes = panel_inputs
    fig = vp.paper_panels(images, results, patch, gt_boxes=boxes, names=["a", "b"])
    n_img, n_mod = len(images), len(MODELS)
    assert len(fig.axes) == 3 * n_img * (n_mod + 3), "label, image, models, colour bar on each of 3 rows per image"
    maps = [ax for ax in fig.axes if len(_map_images(ax)) == 1]
    assert len(maps) == 3 * n_img * n_mod
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["a", *MODELS, "b", *MODELS]
    labels = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert labels == ["inverse\ndegree", "correlation", "composite"] * n_img
    assert fig.get_figwidth() + 2 * vp.INLINE_PAD == pytest.approx(vp.PAGE_INCHES), "as wide as the page"
    with pytest.raises(ValueError):
        vp.paper_panels(images, {"m": results["random"][:1]}, patch)


def _rows_of_maps(fig, n_per_row):
    maps = [ax for ax in fig.axes if len(_map_images(ax)) == 1]
    return [maps[i:i + n_per_row] for i in range(0, len(maps), n_per_row)]


def test_paper_panels_share_one_scale_per_panel_kind_across_models_and_images(panel_inputs):
    images, results, patch, boxes = panel_inputs
    fig = vp.paper_panels(images, results, patch, gt_boxes=boxes)
    rows = _rows_of_maps(fig, len(MODELS))
    norms = {}
    for r, row in enumerate(rows):
        kind = r % 3
        for ax in row:
            im = _map_images(ax)[0]
            norms.setdefault(kind, []).append((type(im.norm), im.norm.vmin, im.norm.vmax, im.get_cmap().name))
    for kind, seen in norms.items():
        assert len(set(seen)) == 1, f"panel kind {kind}: one scale for every model and image, got {set(seen)}"
    assert norms[0] == norms[2], "the composite is on the inverse-degree scale"
    assert norms[0][0][0] is matplotlib.colors.LogNorm
    assert norms[1][0][1:3] == (-1.0, 1.0)
    # the inverse-degree limits are the pooled 1st and 99th percentiles of every model's map
    pooled = np.concatenate([r.lost.inverse_degree.ravel() for m in MODELS for r in results[m]])
    assert norms[0][0][1:3] == pytest.approx(tuple(np.percentile(pooled, [1, 99])))


def test_correlation_of_networks_with_very_different_key_sizes_is_not_a_flat_wash(panel_inputs):
    images, results, patch, _ = panel_inputs
    fig = vp.paper_panels(images, results, patch)
    for ax in _rows_of_maps(fig, len(MODELS))[1]:  # the correlation row of the first image
        shown = _map_images(ax)[0].get_array()
        assert shown.max() == pytest.approx(1.0) or shown.min() == pytest.approx(-1.0)
        assert np.ptp(shown) >= 1.0, "each model's correlation spans the scale, whatever its keys' size"
    raw = [results[m][0].lost.correlation for m in MODELS]
    assert np.abs(raw[2]).max() > 1000 * np.abs(raw[0]).max(), "the test's networks differ in key size"


def test_normalisation_rules_on_hand_made_maps():
    m = np.r_[np.arange(100.0), 1000.0].reshape(1, -1)  # one outlier
    s = vp.scale_by_percentile(m, 99.0, centre=0.0)
    p99 = np.percentile(np.abs(m), 99)
    assert np.allclose(s[0, :100], np.arange(100) / p99) and s[0, 100] == 1.0, "clipped at the 99th percentile"
    assert np.allclose(vp.CORRELATION.values(-m), -s), "the sign is kept: 0 stays LOST's threshold"
    assert np.allclose(vp.CORRELATION.values(m * 1e-4), s), "a map's own size does not matter"
    v = np.array([[1.0, 1.0], [1.0, 5.0]])  # mean 2: TokenCut splits there
    d = np.array([[-1.0, -1.0], [-1.0, 3.0]])
    assert np.allclose(vp.EIGVEC.values(v), np.clip(d / np.percentile(np.abs(d), 99), -1, 1))
    assert np.allclose(vp.EIGVEC.values(v * 1e-3), vp.EIGVEC.values(v)), "a tiny eigenvector is not invisible"
    assert (vp.EIGVEC.values(v) > 0).sum() == 1 and vp.EIGVEC.values(v)[1, 1] == 1.0
    assert np.allclose(vp.scale_by_percentile(np.full((2, 2), 3.0), centre=None), 0.0)
    # attention: per head relative to its mean; the same shape at half the mass gives the same colours
    head = np.array([[1.0, 1.0], [1.0, 5.0]])
    assert np.allclose(vp.relative_to_uniform(head), [[0.5, 0.5], [0.5, 2.5]])
    assert np.allclose(vp.ATTENTION.values(head), vp.ATTENTION.values(head / 2))
    assert np.allclose(vp.ATTENTION.norm(vp.ATTENTION.values(np.ones((3, 3)))), 0.5), "even spread: the centre"
    peaked = np.full((8, 8), 1e-3)
    peaked[0, 0] = 1.0
    assert vp.ATTENTION.norm(vp.ATTENTION.values(peaked))[0, 0] == pytest.approx(1.0), "a peaked head is not dark"
    with pytest.raises(ValueError):
        vp.relative_to_uniform(-head)
    # inverse degree: a log scale over the pooled percentiles, colour-bar ticks at round degrees
    maps = [np.full((2, 2), 0.01), np.array([[0.5, 0.01], [0.02, 0.03]])]
    kind = vp.degree_kind(maps)
    pooled = np.concatenate([x.ravel() for x in maps])
    assert (kind.norm.vmin, kind.norm.vmax) == pytest.approx(tuple(np.percentile(pooled, [1, 99])))
    assert isinstance(kind.norm, matplotlib.colors.LogNorm)
    positions, labels = kind.ticks
    assert all(kind.norm.vmin <= p <= kind.norm.vmax for p in positions)
    assert np.allclose(positions, [1 / (int(t) + 1) for t in labels])
    assert vp.composite_kind(kind).norm is kind.norm


def test_colour_bars_one_per_panel_kind_with_the_kinds_scale(panel_inputs):
    images, results, patch, boxes = panel_inputs
    fig = vp.paper_panels(images, results, patch, gt_boxes=boxes)
    bars = [ax for ax in fig.axes if getattr(ax, "_colorbar", None) is not None]
    assert len(bars) == 3 * len(images), "a colour bar on every row (inverse degree, correlation, composite)"
    deg = vp.degree_kind([r.lost.inverse_degree for m in MODELS for r in results[m]])
    assert [ax.get_ylabel() for ax in bars] == [deg.label, vp.CORRELATION.label, deg.label] * len(images)
    cb = bars[1]._colorbar
    assert (cb.norm.vmin, cb.norm.vmax) == (-1.0, 1.0)
    fig2 = vp.more_panels(images, results, patch, gt_boxes=boxes)
    bars2 = [ax for ax in fig2.axes if getattr(ax, "_colorbar", None) is not None]
    assert [ax.get_xlabel() for ax in bars2] == [vp.ATTENTION.label, vp.EIGVEC.label]


def test_more_panels_show_every_head_on_one_scale_per_kind(panel_inputs):
    images, results, patch, boxes = panel_inputs
    fig = vp.more_panels(images, results, patch, gt_boxes=boxes, names=["a", "b"])
    heads = results["random"][0].attention.num_heads
    n_col = heads + 2
    rows = _rows_of_maps(fig, n_col)
    assert len(rows) == len(images) * len(MODELS) and all(len(r) == n_col for r in rows)
    for row in rows:
        att = [_map_images(ax)[0].norm for ax in row[:-1]]
        assert all((n.vmin, n.vmax) == (1 / 16, 16) for n in att)
        assert (_map_images(row[-1])[0].norm.vmin, _map_images(row[-1])[0].norm.vmax) == (-1.0, 1.0)
        assert len(row[-1].patches) == 2, "TokenCut's box and the GT box"
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ([f"head {h}" for h in range(heads)] + ["mean of heads", "TokenCut\neigenvector"]) * len(images)
    fig = vp.more_panels(images, results, patch, heads=[1])
    assert len(_rows_of_maps(fig, 3)) == len(images) * len(MODELS)


def test_labels_are_readable_at_the_size_the_book_shows_them(panel_inputs):
    images, results, patch, boxes = panel_inputs
    five = {f"model {i}": results[MODELS[i % 3]] for i in range(5)}
    for fig in (vp.paper_panels(images, results, patch, gt_boxes=boxes),
                vp.paper_panels(images[:1], {m: rr[:1] for m, rr in five.items()}, patch),
                vp.more_panels(images, five, patch, gt_boxes=boxes)):
        sizes = vp.displayed_font_sizes(fig)
        assert len(sizes) > 10
        small = [(t, s) for t, s in sizes if s < viz.LABEL_SIZE]
        assert not small, small
    wide = Figure(figsize=(2 * vp.PAGE_INCHES - 2 * vp.INLINE_PAD, 2))
    wide.text(0.5, 0.5, "x", fontsize=10)
    assert vp.displayed_font_sizes(wide) == [("x", pytest.approx(5.0))], "a wide figure is shrunk to the page"


def test_choose_images_follows_its_rule_on_known_scores():
    scores = [1, 5, 4, 9, np.nan, 6, 0]  # finite: median 4.5
    assert vp.choose_images(scores, 2, "median") == [2, 1], "the two closest to the median, by score"
    assert vp.choose_images(scores, 3, "median") == [2, 1, 5]
    assert vp.choose_images(scores, 1, "median") == [1], "a tie goes to the lower index"
    assert vp.choose_images(scores, 3, "quantiles") == [0, 1, 5], "closest to the 1/6, 1/2, 5/6 quantiles"
    assert vp.choose_images(scores, 3, "first") == [0, 1, 2]
    assert 4 not in vp.choose_images(scores, 10, "median") and len(vp.choose_images(scores, 10, "median")) == 6
    assert len(vp.choose_images(scores, 10, "quantiles")) == 6
    assert vp.choose_images(scores, 10, "first") == list(range(7))
    for bad in (dict(n=0), dict(n=2, rule="best")):
        with pytest.raises(ValueError):
            vp.choose_images(scores, **bad)
    with pytest.raises(ValueError):
        vp.choose_images([np.nan, np.nan], 1)


def test_outline_draws_the_border_of_a_mask():
    fig = Figure()
    ax = fig.subplots()
    mask = np.zeros((4, 4), dtype=bool)
    mask[1:3, 1:3] = True
    lines = vp.outline(ax, mask, 8)
    segs = [np.asarray(s) for s in lines.get_segments()]
    assert len(segs) == 8, "a 2 x 2 block has 8 unit edges on its border"
    assert {tuple(p) for s in segs for p in s} <= {(x, y) for x in (8, 16, 24) for y in (8, 16, 24)}


def test_signed_never_prints_a_negative_zero():
    assert viz.signed(-0.004) == "0.00"
    assert viz.signed(0.004) == "0.00"
    assert viz.signed(-0.06) == "-0.06"
    assert viz.signed(0.05) == "+0.05"
    assert viz.signed(-0.0004, 3) == "0.000"


def test_interval_word_reads_an_interval_against_the_margin():
    m = 0.14
    assert viz.interval_word(-0.1, 0.12, m) == "within the margin"
    assert viz.interval_word(0.05, 0.4, m) == "higher"  # above 0 although it starts inside the margin
    assert viz.interval_word(-0.5, -0.2, m) == "lower"
    assert viz.interval_word(-0.3, 0.2, m) == "not distinguishable from no change"
    assert viz.interval_word(float("nan"), 0.2, m, missing="not measured") == "not measured"
    with pytest.raises(ValueError, match="finite"):
        viz.interval_word(float("nan"), 0.2, m)
    with pytest.raises(ValueError, match="low"):
        viz.interval_word(0.3, 0.2, m)


def _ratio_tables():
    regions = ["objects", "lane_marking", "tree", "road", "sky", "building", "pole", "sign", "roadside"]
    models = ["random", "dino_world", "dino_driving", "pixels (raw)", "pixels (centred)"]
    g = np.random.default_rng(0)
    tables = {m: pd.DataFrame(np.exp(g.normal(0, 0.8, (5, 9))), index=models, columns=regions)
              for m in ("attention", "inverse degree", "LOST mask", "TokenCut mask")}
    tables["attention"].iloc[3:] = np.nan          # the pixel baselines have no attention
    tables["LOST mask"].iloc[0, 2] = 0.0           # a mask that never reaches a region
    tables["inverse degree"].iloc[1, 1] = 9.0      # beyond the scale's end
    return tables


def test_ratio_heatmap_annotates_every_cell_and_marks_missing_values():
    tables = _ratio_tables()
    fig = Figure(figsize=(vp.FIGURE_INCHES, 2.5))
    ax = fig.add_subplot()
    im = vp.ratio_heatmap(ax, tables["attention"], decimals=2)
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 5 * 9
    assert texts.count(viz.MISSING) == 2 * 9 and "nan" not in " ".join(texts)
    assert texts[0] == f"{tables['attention'].iloc[0, 0]:.2f}"
    assert np.ma.getmaskarray(im.get_array())[3:].all() and not np.ma.getmaskarray(im.get_array())[:3].any()
    assert [t.get_text() for t in ax.get_xticklabels()][1] == "lane\nmarking"
    assert im.norm is vp.RATIO.norm
    # values beyond the scale are drawn in its end colours but printed as they are
    ax2 = Figure().add_subplot()
    im2 = vp.ratio_heatmap(ax2, tables["inverse degree"])
    assert im2.get_array()[1, 1] == pytest.approx(vp.RATIO_RANGE) and ax2.texts[1 * 9 + 1].get_text() == "9.00"
    ax3 = Figure().add_subplot()
    im3 = vp.ratio_heatmap(ax3, tables["LOST mask"])
    assert im3.get_array()[0, 2] == pytest.approx(1 / vp.RATIO_RANGE) and ax3.texts[2].get_text() == "0.00"


def test_ratio_figure_stacks_one_panel_per_map_readable_at_the_page_width():
    tables = _ratio_tables()
    fig = vp.ratio_figure(tables, title="driving images: mass share / area share")
    assert fig.get_figwidth() == pytest.approx(vp.FIGURE_INCHES)
    heat = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title(loc="left") for ax in heat] == list(tables)
    assert len(fig.axes) == len(tables) + 1                   # one colour bar for all panels
    sizes = vp.displayed_font_sizes(fig)
    small = [(t, s) for t, s in sizes if s < viz.LABEL_SIZE]
    assert not small, small
    with pytest.raises(ValueError, match="at least one table"):
        vp.ratio_figure({})


def test_ratio_heatmap_draws_no_grid_line_through_the_numbers():
    import matplotlib.pyplot as plt

    with plt.style.context("seaborn-v0_8-whitegrid"):  # a style with a major grid, as the chapters' setup uses
        ax = Figure().add_subplot()
        vp.ratio_heatmap(ax, _ratio_tables()["attention"])
        assert not any(line.get_visible() for line in ax.xaxis.get_gridlines() + ax.yaxis.get_gridlines())


def test_a_panel_draws_the_photo_in_grey_so_the_only_colour_is_the_map():
    """An orange object under a yellow-orange map must not read as salient: the photo under a panel's map is
    its luminance in grey; overlay() keeps colour unless asked."""
    img = np.zeros((16, 16, 3), dtype=np.uint8)
    img[:8] = (255, 140, 0)  # an orange truck
    fig = Figure()
    ax = fig.add_subplot()
    vp.show(ax, img, np.ones((2, 2)), 8, vp.degree_kind([np.ones((2, 2))]))
    photo = ax.get_images()[0].get_array()
    assert photo.ndim == 2 and ax.get_images()[0].get_cmap().name == "gray"
    assert photo[0, 0] == pytest.approx(0.299 * 255 + 0.587 * 140) and photo[-1, -1] == 0
    ax2 = fig.add_subplot()
    viz.overlay(ax2, img, None, 8)
    assert ax2.get_images()[0].get_array().shape == (16, 16, 3)


def test_paper_panels_of_model_groups_can_share_one_degree_scale(panel_inputs):
    images, results, patch, boxes = panel_inputs
    shared = vp.degree_kind([r.lost.inverse_degree for v in results.values() for r in v])
    norms = []
    for m in results:
        fig = vp.paper_panels(images, {m: results[m]}, patch, degree=shared)
        norms.append([im.norm for ax in fig.axes for im in _map_images(ax)][0])
    assert all(n is shared.norm for n in norms)
    own = [vp.paper_panels(images, {m: results[m]}, patch) for m in results]
    assert {(f.axes[2].get_images()[1].norm.vmin, f.axes[2].get_images()[1].norm.vmax) for f in own} != {
        (shared.norm.vmin, shared.norm.vmax)}


def test_styled_table_pads_every_cell_so_columns_never_run_together():
    html = viz.styled_table(pd.DataFrame({"a": [0.008], "b": [0.726]})).to_html()
    css = html.split("</style>")[0]
    assert " td {\n  padding: 0 0.6em;" in css and " th {\n  padding: 0 0.6em;" in css
