"""The findings' machinery on tables with a known answer: pairing, effects, verdicts, knob slopes, score tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dinosal import findings, run_scores
from dinosal.data.sample import GroundTruth
from dinosal.localisation import maps_of_features

KIND = findings.CLAIM_MAP


def _rows(model, share, pretrain_seeds=(0, 1, 2), transfer_seeds=(0, 1), n=20, q=0.7, oa=0.5, rng=None,
          noise=0.0):
    """A model's per-image rows: the part "tree" covers 0.2 of every image and holds ``share`` of the map's mass
    (times 1 + noise); transfer_seeds None: a pretrained model."""
    rng = rng or np.random.default_rng(0)
    out = []
    for ps in pretrain_seeds:
        for ts in (transfer_seeds or (-1,)):
            for i in range(n):
                s = share * (1 + noise * rng.standard_normal())
                out.append({"model": model, "pretrain_seed": ps, "transfer_seed": ts, "image": i, "q": q,
                            "area|tree": 0.2, f"share|{KIND}|tree": s, f"oa|{KIND}": oa})
    return out


def _study(*blocks):
    return pd.DataFrame([r for b in blocks for r in b])


def test_pair_table_repeats_the_parent_under_each_transfer_seed():
    study = _study(_rows("p", 0.2, transfer_seeds=None), _rows("p__t", 0.4))
    table, strata = findings.pair_table(study, "p", "p__t")
    assert strata is None
    parent = table[table.model == "p"]
    assert len(parent) == 3 * 2 * 20 and set(parent.transfer_seed) == {0, 1}
    both_pre = _study(_rows("a", 0.2, transfer_seeds=None), _rows("b", 0.3, transfer_seeds=None))
    assert findings.pair_table(both_pre, "a", "b")[1] == "model"
    with pytest.raises(ValueError, match="'nobody'"):
        findings.pair_table(study, "p", "nobody")


def test_effect_is_the_log2_ratio_of_pooled_mass_ratios():
    study = _study(_rows("p", 0.2, transfer_seeds=None), _rows("p__t", 0.4))
    r = findings.effect_of(study, "p", "p__t", "tree", n_resamples=50)
    assert r["a"].estimate == pytest.approx(0.0)  # RM = 0.2 / 0.2 = 1
    assert r["effect"].estimate == pytest.approx(1.0)  # RM 2 vs 1
    assert r["effect"].ci_low == pytest.approx(1.0) and r["effect"].ci_high == pytest.approx(1.0)
    o = findings.effect_of(study, "p", "p__t", None, n_resamples=20)
    assert o["effect"].estimate == pytest.approx(0.0)


def test_run_to_run_spread_widens_the_interval():
    rng = np.random.default_rng(1)
    # the child's runs differ a lot between seeds, images hardly: the CI must reflect the runs
    child = []
    for ps in range(3):
        for ts in range(2):
            child += _rows("p__t", 0.3 * (1 + 0.4 * rng.standard_normal()), pretrain_seeds=(ps,), transfer_seeds=(ts,))
    study = _study(_rows("p", 0.2, transfer_seeds=None), child)
    r = findings.effect_of(study, "p", "p__t", "tree", n_resamples=300)["effect"]
    assert r.ci_high - r.ci_low > 0.2


def test_decide_gives_the_preregistered_verdicts():
    rng = np.random.default_rng(2)
    study = _study(_rows("p", 0.2, transfer_seeds=None, noise=0.05, rng=rng), _rows("up", 0.4, noise=0.05, rng=rng),
                   _rows("same", 0.2, noise=0.01, rng=rng), _rows("down", 0.1, noise=0.05, rng=rng),
                   _rows("flat", 0.2, q=0.97, rng=rng))
    m = findings.RATIO_MARGIN
    rows = [findings.Claim("x1", "goes up", "p", "up", "tree", 1, m), findings.Claim("x2", "goes up", "p", "down", "tree", 1, m),
            findings.Claim("x3", "changes", "p", "same", "tree", 1, m), findings.Claim("x4", "up", "p", "flat", "tree", 1, m),
            findings.Claim("x5", "missing", "p", "absent", "tree", 1, m)]
    table = findings.decide(study, rows, n_resamples=300)
    assert list(table.index) == ["x1", "x2", "x3", "x4"]  # x5's model was not scored
    assert table.loc["x1", "verdict"] == "holds"
    assert table.loc["x2", "verdict"] == "reversed"
    assert table.loc["x3", "verdict"] == "no meaningful change"
    assert table.loc["x4", "verdict"] == "not measurable"
    assert table.loc["x1", "estimate"] == pytest.approx(1.0, abs=0.05)
    # the units the bootstrap drew, in words a page can print: 3 seeds x 2 transfer seeds x 20 images
    assert table.loc["x1", "resampled"] == "3 pretraining seeds, 6 transfer runs and 120 (run, scene) pairs"


def test_units_in_words():
    assert findings.units_in_words({"pretrain_seed": 3, "transfer_seed": 12, "image": 2400}) == \
        "3 pretraining seeds, 12 transfer runs and 2400 (run, scene) pairs"
    assert findings.units_in_words({"transfer_seed": 1, "image": 200}) == "1 transfer run and 200 (run, scene) pairs"
    assert findings.units_in_words({"image": 1}) == "1 (run, scene) pair"
    assert findings.units_in_words({"other": 4}) == "4 other"  # a level without words keeps its name
    with pytest.raises(ValueError):
        findings.units_in_words({})


def test_one_pretraining_seed_drops_that_level():
    study = _study(_rows("p", 0.2, pretrain_seeds=(0,), transfer_seeds=None),
                   _rows("p__t", 0.4, pretrain_seeds=(0,), noise=0.1))
    r = findings.effect_of(study, "p", "p__t", "tree", n_resamples=30)
    assert "pretrain_seed" not in r["effect"].n_units and r["effect"].n_units["transfer_seed"] == 2
    assert r["effect"].estimate == pytest.approx(1.0, abs=0.1)


def test_knob_slope_and_effect_over_the_range():
    # log2 RM = log2(share / 0.2) = 0, 0.5, 1 at x = 0, 0.5, 1: slope 1, effect over the range 1
    study = _study(_rows("k0", 0.2, transfer_seeds=(0,)), _rows("k1", 0.2 * 2 ** 0.5, transfer_seeds=(0,)),
                   _rows("k2", 0.4, transfer_seeds=(0, 1, 2)))
    r = findings.knob_effect(study, [("k0", 0.0), ("k1", 0.5), ("k2", 1.0)], "tree", n_resamples=30)
    assert r["slope"].estimate == pytest.approx(1.0)
    assert r["effect"].estimate == pytest.approx(1.0)
    r2 = findings.knob_effect(study, [("k0", 0.0), ("k2", 0.5)], "tree", n_resamples=10)
    assert r2["slope"].estimate == pytest.approx(2.0) and r2["effect"].estimate == pytest.approx(1.0)
    with pytest.raises(ValueError, match="two distinct"):
        findings.knob_effect(study, [("k0", 0.0), ("k1", 0.0)], "tree")
    with pytest.raises(ValueError, match="k9"):
        findings.knob_effect(study, [("k0", 0.0), ("k9", 1.0)], "tree")


def test_claims_follow_the_preregistration():
    rows = findings.claims("dino_world", "dino_driving")
    main = [c for c in rows if c.family == "claims"]
    assert [c.id for c in main] == ["1", "2a", "2b", "2c", "2d", "3a", "3b", "5"]
    signs = {c.id: c.sign for c in main}
    assert signs["2d"] == -1 and all(v == 1 for k, v in signs.items() if k != "2d")
    assert {c.id: c.margin for c in main}["2a"] == pytest.approx(0.02)
    assert all(c.margin == pytest.approx(np.log2(1.1)) for c in main if c.part is not None)
    assert [c.a for c in rows if c.family != "claims"] == ["dino_driving"] * 4


def test_score_maps_columns_and_conservation():
    rng = np.random.default_rng(3)
    grid, patch, size = (4, 4), 8, (32, 32)
    feats = rng.standard_normal((16, 12)).astype(np.float32)
    m = maps_of_features(feats, grid, patch, size, k=5, tau=0.2)
    left = np.zeros(size, bool)
    left[:, :16] = True
    obj = np.zeros(size, bool)
    obj[8:16, 8:16] = True
    truth = GroundTruth(np.array([[8, 8, 16, 16]]), obj, {"left": left & ~obj, "right": ~left & ~obj})
    t = run_scores.score_maps([m, m], [truth, truth], kinds=("inverse degree", "correlation"))
    assert len(t) == 2 and list(t["image"]) == [0, 1]
    parts = ["objects", "left", "right"]
    assert t[[f"area|{p}" for p in parts]].sum(axis=1).to_numpy() == pytest.approx([1.0, 1.0])
    for kind in ("inverse degree", "correlation"):
        assert t[[f"share|{kind}|{p}" for p in parts]].sum(axis=1).to_numpy() == pytest.approx([1.0, 1.0])
        assert {f"rra|{kind}|objects", f"pointing|{kind}|objects", f"oa|{kind}"} <= set(t.columns)
    assert t["area|objects"].iloc[0] == pytest.approx(64 / 1024)
    assert 0 <= t["q"].iloc[0] <= 1
    with pytest.raises(ValueError, match="TokenCut"):
        run_scores.score_maps([maps_of_features(feats, grid, patch, size, k=5, tau=None)], [truth], kinds=("TokenCut",))
    with pytest.raises(ValueError, match="2 images"):
        run_scores.score_maps([m, m], [truth])


def test_the_study_runs_follow_the_findings_parameters():
    from dinosal import transfers
    from dinosal.config import profile_params
    from dinosal.profiles import KNOBS

    P = profile_params("findings", "cpu")
    runs = run_scores.study_runs("cpu", P)
    names = [r.release_name for r in runs]
    assert len(names) == len(set(names)) and all(n.endswith("__scores") for n in names)
    by = {}
    for r in runs:
        by.setdefault(r.name, set()).add((r.pretrain_seed, r.transfer_seed))
    assert by["dino_world"] == {(0, None), (1, None), (2, None)} and by["dino_driving"] == {(0, None), (1, None), (2, None)}
    assert by["dino_world__bce_driving"] == {(p, s) for p in (0, 1, 2) for s in P.claim_seeds}
    assert by["dino_driving__bce_driving"] == {(p, s) for p in (0, 1, 2) for s in P.scratch_seeds}
    for kid, knob in KNOBS.items():  # every knob level is a scored run, or the arm itself
        for task, values in knob.levels:
            assert f"dino_world__{task}" in by, (kid, task)
            assert set(values) <= {"tree", "lane_marking"}
    keys = {run_scores.catalogue("cpu")[i][1].name for i in range(len(runs))}
    assert len(keys) == len(runs)  # one table per run
    assert run_scores.catalogue("paper") == []
    # a run's table is keyed by its model: two seeds of one arm never share a table
    a = [r for r in runs if r.name == "dino_world__bce_driving"][:2]
    assert transfers.model_key(a[0].spec) != transfers.model_key(a[1].spec)


def test_a_control_with_fewer_seeds_is_paired_on_the_runs_both_have():
    study = _study(_rows("arm", 0.2, transfer_seeds=(0, 1, 2, 3), noise=0.05),
                   _rows("ctrl", 0.4, transfer_seeds=(0,), noise=0.05, rng=np.random.default_rng(5)))
    r = findings.effect_of(study, "arm", "ctrl", "tree", n_resamples=100)["effect"]
    assert np.isfinite([r.ci_low, r.ci_high]).all() and r.estimate == pytest.approx(1.0, abs=0.1)
    assert r.n_units.get("transfer_seed", 3) == 3  # seed 0 under each pretraining seed: that level is not resampled
