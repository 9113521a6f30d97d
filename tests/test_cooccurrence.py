"""The co-occurrence knobs of the driving generator (claim 4 of the pre-registration).

(a) ``single_class_scenes``: one class per scene vs co-occurring classes, with the
object counts and the class histogram unchanged; (b) ever-present background
through ``part_prob``; (c) ``part_given_class``: P(tree | pedestrian) moves while
P(tree) stays put. The statistics are measured on scene plans (what a scene
places, :meth:`DrivingScenes.scene_plan`) and checked against the drawings.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from dinosal import runs
from dinosal.data.synthetic import DRIVING_CLASSES, DrivingConfig, DrivingScenes

N_SCENES = 600
Z_MAX = 4.0  # |z| bound of every statistical check (deterministic seeds: no flakiness)


def _plans(cfg: DrivingConfig, n: int = N_SCENES):
    g = DrivingScenes(cfg)
    return [g.scene_plan(i) for i in range(n)]


def _z(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample z of the means, with each sample's own (scene-level) variance."""
    se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    return float((a.mean() - b.mean()) / se) if se > 0 else float(a.mean() != b.mean()) * np.inf


def _per_class(plans) -> np.ndarray:
    """(scenes, classes) number of objects of each class per scene."""
    return np.array([[p.classes.count(c) for c in DRIVING_CLASSES] for p in plans], float)


# ---------------------------------------------------------------- defaults and keys


def test_defaults_draw_and_key_as_before():
    explicit = DrivingConfig(size=32, seed=3, single_class_scenes=0.0, part_given_class=None)
    plain = DrivingConfig(size=32, seed=3)
    for i in range(3):
        a, b = DrivingScenes(plain)[i], DrivingScenes(explicit)[i]
        assert np.array_equal(a.image, b.image) and np.array_equal(a.semantic, b.semantic)
    assert runs.config_key("x", plain) == runs.config_key("x", explicit)
    assert "single_class_scenes" not in runs.config_dict(plain)
    assert runs.config_key("x", DrivingConfig(single_class_scenes=1.0)) != runs.config_key("x", plain)
    shortcut = DrivingConfig(part_prob={"tree": 0.5}, part_given_class={"pedestrian": {"tree": 0.9}})
    assert runs.config_key("x", shortcut) != runs.config_key("x", DrivingConfig(part_prob={"tree": 0.5}))


def test_plan_is_what_the_drawing_places():
    for cfg in (DrivingConfig(size=32, seed=1), DrivingConfig(size=32, seed=1, single_class_scenes=1.0)):
        g = DrivingScenes(cfg)
        for i in range(12):
            plan, s = g.scene_plan(i), g[i]
            visible = Counter(DRIVING_CLASSES[k] for k in s.labels.tolist())
            assert not visible - Counter(plan.classes)  # drawn objects are placed ones (some hidden)
            drawn_parts = {s.semantic_names[k] for k in np.unique(s.semantic).tolist() if k != 255}
            assert drawn_parts & {"lane_marking", "building", "tree", "pole", "sign"} <= set(plan.parts)


# ---------------------------------------------------------------- (a) label-object ambiguity


def test_single_class_scenes_keep_counts_and_class_histogram():
    levels = (0.0, 0.5, 1.0)
    plans = {s: _plans(DrivingConfig(seed=11, single_class_scenes=s)) for s in levels}
    counts = {s: [len(p.classes) for p in plans[s]] for s in levels}
    # the object count is drawn first from the scene's stream: equal scene by scene
    assert counts[0.0] == counts[0.5] == counts[1.0]
    per_class = {s: _per_class(plans[s]) for s in levels}
    expected = np.mean(counts[0.0]) / len(DRIVING_CLASSES)
    for s in levels:
        for k, c in enumerate(DRIVING_CLASSES):
            col = per_class[s][:, k]
            z_exp = (col.mean() - expected) / (col.std(ddof=1) / np.sqrt(len(col)))
            assert abs(z_exp) < Z_MAX, (s, c, col.mean(), expected)
            assert abs(_z(col, per_class[0.0][:, k])) < Z_MAX, (s, c)
    # ... while the knob does what it says: how many classes share a scene
    distinct = {s: np.array([len(set(p.classes)) for p in plans[s] if len(p.classes) >= 2]) for s in levels}
    assert (distinct[1.0] == 1).all()
    assert distinct[0.0].mean() > 2.0
    assert distinct[1.0].mean() < distinct[0.5].mean() < distinct[0.0].mean()


def test_single_class_scenes_drawn_labels():
    g = DrivingScenes(DrivingConfig(size=32, seed=2, n_objects=(2, 4), single_class_scenes=1.0))
    for i in range(10):
        assert g[i].multi_hot.sum() <= 1


def test_class_presence_matches_the_plans():
    for cfg in (DrivingConfig(seed=4), DrivingConfig(seed=4, single_class_scenes=1.0),
                DrivingConfig(seed=4, n_objects=(1, 3), class_weights={"pedestrian": 3.0})):
        present = np.array([("pedestrian" in p.classes) for p in _plans(cfg, 1500)], float)
        pi = cfg.class_presence("pedestrian")
        assert abs(present.mean() - pi) < Z_MAX * np.sqrt(pi * (1 - pi) / len(present))
    assert DrivingConfig(n_objects=(0, 0)).class_presence("car") == 0.0
    assert DrivingConfig().class_presence("car") == pytest.approx(1 - np.mean([(5 / 6) ** n for n in range(7)]))


# ---------------------------------------------------------------- (b) ever-present background


@pytest.mark.parametrize("p", [1.0, 0.5])
def test_ever_present_background_is_part_prob(p):
    plans = _plans(DrivingConfig(seed=5, part_prob={"lane_marking": p, "tree": p}))
    for part in ("lane_marking", "tree"):
        has = np.array([part in pl.parts for pl in plans], float)
        if p == 1.0:
            assert has.all()
        else:
            assert abs(has.mean() - p) < Z_MAX * np.sqrt(p * (1 - p) / len(has)), (part, has.mean())
            # independent of the objects: as often with a pedestrian as without
            ped = np.array([("pedestrian" in pl.classes) for pl in plans])
            assert abs(_z(has[ped], has[~ped])) < Z_MAX


def test_every_drawn_scene_has_lane_markings_at_one():
    g = DrivingScenes(DrivingConfig(size=48, seed=6, part_prob={"lane_marking": 1.0, "tree": 1.0}))
    lane = g.semantic_names.index("lane_marking")
    assert all((g[i].semantic == lane).any() for i in range(12))


# ---------------------------------------------------------------- (c) class-correlated shortcut


def _tree_rates(cfg: DrivingConfig, n: int = 3000):
    plans = _plans(cfg, n)
    tree = np.array([("tree" in p.parts) for p in plans], float)
    ped = np.array([("pedestrian" in p.classes) for p in plans])
    return tree, ped


@pytest.mark.parametrize("q", [0.1, 0.5, 0.9])
def test_tree_given_pedestrian_moves_while_tree_rate_stays(q):
    p = 0.5
    cfg = DrivingConfig(seed=8, part_prob={"tree": p}, part_given_class={"pedestrian": {"tree": q}})
    tree, ped = _tree_rates(cfg)
    assert abs(tree.mean() - p) < Z_MAX * np.sqrt(p * (1 - p) / len(tree)), tree.mean()
    given = tree[ped]
    assert abs(given.mean() - q) < Z_MAX * np.sqrt(max(q * (1 - q), 0.01) / len(given)), given.mean()
    pi = cfg.class_presence("pedestrian")
    absent = (p - q * pi) / (1 - pi)
    assert cfg.conditional_parts()["tree"] == pytest.approx(("pedestrian", q, absent))
    assert abs(tree[~ped].mean() - absent) < Z_MAX * np.sqrt(max(absent * (1 - absent), 0.01) / (~ped).sum())


def test_the_old_multiplier_moves_the_tree_rate_too():
    """Why (c) needs its own knob: ``part_class_multiplier`` confounds it with (b)."""
    base, _ = _tree_rates(DrivingConfig(seed=9, part_prob={"tree": 0.3}), 1500)
    mult, _ = _tree_rates(DrivingConfig(seed=9, part_prob={"tree": 0.3},
                                        part_class_multiplier={"pedestrian": {"tree": 3.0}}), 1500)
    assert mult.mean() - base.mean() > 0.15


def test_shortcut_on_drawn_scenes():
    g = DrivingScenes(DrivingConfig(size=32, seed=10, part_prob={"tree": 0.5},
                                    part_given_class={"pedestrian": {"tree": 1.0}}))
    for i in range(20):
        if "pedestrian" in g.scene_plan(i).classes:
            assert "tree" in g.scene_plan(i).parts


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("kwargs, match", [
    ({"single_class_scenes": 1.5}, "single_class_scenes"),
    ({"single_class_scenes": -0.1}, "single_class_scenes"),
    ({"part_given_class": {"unicorn": {"tree": 0.5}}}, "part_given_class"),
    ({"part_given_class": {"pedestrian": {"lake": 0.5}}}, r"part_given_class\['pedestrian'\]"),
    ({"part_given_class": {"pedestrian": {"tree": 1.2}}}, r"part_given_class\['pedestrian'\]\['tree'\]"),
    ({"part_given_class": [("pedestrian", 0.5)]}, "part_given_class must be a mapping"),
    # default P(tree) = 0.85 with pedestrians in 38 % of scenes: q below ~0.61 is infeasible
    ({"part_given_class": {"pedestrian": {"tree": 0.2}}}, r"feasible q in \[0\.60"),
    ({"part_given_class": {"pedestrian": {"tree": 0.9}, "car": {"tree": 0.9}}}, "one class only"),
    ({"part_given_class": {"pedestrian": {"tree": 0.9}},
      "part_class_multiplier": {"car": {"tree": 2.0}}}, "part_class_multiplier"),
    ({"part_given_class": {"pedestrian": {"tree": 0.9}}, "class_weights": {"pedestrian": 0.0}},
     "never placed"),
])
def test_knob_validation_names_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DrivingConfig(**kwargs)


def test_single_class_scenes_keep_the_visible_histogram():
    """What the classifier is trained on are the visible objects: their counts per class
    match across the two ends of the knob too (scene-level z, 200 drawn scenes each)."""
    visible = {}
    for s in (0.0, 1.0):
        g = DrivingScenes(DrivingConfig(size=48, seed=12, single_class_scenes=s))
        visible[s] = np.array([np.bincount(g[i].labels, minlength=len(DRIVING_CLASSES)) for i in range(200)], float)
    assert abs(_z(visible[0.0].sum(1), visible[1.0].sum(1))) < Z_MAX
    for k, c in enumerate(DRIVING_CLASSES):
        assert abs(_z(visible[0.0][:, k], visible[1.0][:, k])) < Z_MAX, c
