"""The hierarchical bootstrap on designs with a known answer; p-values, Holm and verdicts on hand-made cases."""

import numpy as np
import pandas as pd
import pytest

from dinosal.stats import (
    DRAW,
    VERDICTS,
    BootstrapResult,
    claims_table,
    equivalence_p_value,
    hierarchical_bootstrap,
    holm,
    joint_bootstrap,
    p_value,
    ratio_of_sums,
    verdict,
)


def design(n_pre=3, n_tr=2, n_img=4, models=("a",)):
    """One row per (model, pretrain_seed, transfer_seed, image)."""
    idx = pd.MultiIndex.from_product(
        [list(models), range(n_pre), range(n_tr), range(n_img)],
        names=["model", "pretrain_seed", "transfer_seed", "image"],
    )
    return idx.to_frame(index=False)


def mean_of(col):
    return lambda t: t[col].mean()


def test_all_variance_between_pretraining_seeds_sets_the_ci_width():
    n_pre = 12
    df = design(n_pre=n_pre, n_tr=3, n_img=20)
    seed_values = np.random.default_rng(1).normal(0.0, 1.0, n_pre)
    df["y"] = seed_values[df["pretrain_seed"]]          # constant within a seed
    df["row"] = np.arange(len(df))
    hier = hierarchical_bootstrap(df, mean_of("y"), n_resamples=2000, rng=0)
    flat = hierarchical_bootstrap(df, mean_of("y"), levels=("row",), n_resamples=2000, rng=0)

    assert isinstance(hier, BootstrapResult) and hier.n_resamples == 2000
    assert hier.estimate == pytest.approx(seed_values.mean())
    assert hier.n_units == {"pretrain_seed": n_pre, "transfer_seed": n_pre * 3, "image": n_pre * 60}
    # the mean of n_pre seeds drawn with replacement: sd = population sd / sqrt(n_pre)
    expected_sd = seed_values.std() / np.sqrt(n_pre)
    assert hier.resamples.std() == pytest.approx(expected_sd, rel=0.1)
    assert hier.ci_high - hier.ci_low == pytest.approx(2 * 1.96 * expected_sd, rel=0.15)
    # an image-level bootstrap treats 720 rows as independent: sqrt(60) ~ 7.7 times too narrow
    assert hier.ci_high - hier.ci_low > 5 * (flat.ci_high - flat.ci_low)


def test_zero_variance_gives_a_zero_width_ci():
    df = design()
    df["y"] = 0.25
    r = hierarchical_bootstrap(df, mean_of("y"), n_resamples=200, rng=3)
    assert r.ci_low == r.ci_high == r.estimate == pytest.approx(0.25)
    assert np.allclose(r.resamples, 0.25)


def test_reproducible_with_a_seed_and_a_generator():
    df = design()
    df["y"] = np.random.default_rng(0).normal(size=len(df))
    a = hierarchical_bootstrap(df, mean_of("y"), n_resamples=100, rng=7)
    b = hierarchical_bootstrap(df, mean_of("y"), n_resamples=100, rng=np.random.default_rng(7))
    c = hierarchical_bootstrap(df, mean_of("y"), n_resamples=100, rng=8)
    np.testing.assert_array_equal(a.resamples, b.resamples)
    assert not np.array_equal(a.resamples, c.resamples)


def test_every_level_is_resampled_with_replacement_and_nested():
    df = design(n_pre=3, n_tr=2, n_img=4)
    seen = []

    def record(t):
        seen.append(t)
        return 0.0

    hierarchical_bootstrap(df, record, n_resamples=50, rng=0)
    full, resamples = seen[0], seen[1:]
    assert len(full) == len(df) and full[DRAW].nunique() == 24
    for t in resamples:
        assert len(t) == 24                                        # 3 x 2 x 4 units, one row each
        assert t[DRAW].tolist() == list(range(24))
    # some resample repeats a pretraining seed, and images are drawn within their own run
    assert any(t["pretrain_seed"].nunique() < 3 for t in resamples)
    assert any(t.groupby(["pretrain_seed", "transfer_seed"])["image"].nunique().min() < 4 for t in resamples)


def test_pooled_ratio_is_recomputed_on_every_resample():
    df = design(n_pre=3, n_tr=2, n_img=5)
    rng = np.random.default_rng(0)
    df["area"] = rng.integers(1, 100, len(df)).astype(float)
    df["mass"] = df["area"] * rng.uniform(0.5, 2.0, len(df))
    seen = []

    def pooled(t):
        seen.append(t)
        return ratio_of_sums(t, "mass", "area")

    r = hierarchical_bootstrap(df, pooled, n_resamples=100, rng=0)
    assert r.estimate == pytest.approx(df["mass"].sum() / df["area"].sum())
    assert r.estimate != pytest.approx((df["mass"] / df["area"]).mean())   # not the mean of per-image ratios
    for value, t in zip(r.resamples, seen[1:]):
        assert value == pytest.approx(t["mass"].sum() / t["area"].sum())
    assert np.unique(r.resamples).size > 50


def test_paired_models_share_each_resample_and_strata_unpair_them():
    df = design(n_pre=4, n_tr=3, n_img=10, models=("before", "after"))
    base = np.random.default_rng(2).normal(0, 1, (4, 3, 10))
    df["y"] = base[df["pretrain_seed"], df["transfer_seed"], df["image"]] + (df["model"] == "after")
    stats = {
        "before": lambda t: t.loc[t["model"] == "before", "y"].mean(),
        "after": lambda t: t.loc[t["model"] == "after", "y"].mean(),
        "effect": lambda t: t.loc[t["model"] == "after", "y"].mean() - t.loc[t["model"] == "before", "y"].mean(),
    }
    paired = joint_bootstrap(df, stats, n_resamples=300, rng=0)
    assert set(paired) == {"before", "after", "effect"}
    assert paired["before"].ci_high - paired["before"].ci_low > 0.3
    np.testing.assert_allclose(paired["effect"].resamples, 1.0)          # the pairing cancels all variance
    np.testing.assert_allclose(paired["after"].resamples - paired["before"].resamples, 1.0)
    unpaired = joint_bootstrap(df, stats, n_resamples=300, rng=0, strata="model")
    assert unpaired["effect"].ci_high - unpaired["effect"].ci_low > 0.3


def test_a_mapping_of_arrays_is_accepted():
    df = design()
    df["y"] = np.arange(len(df), dtype=float)
    cols = {c: df[c].to_numpy() for c in df.columns}
    a = hierarchical_bootstrap(cols, mean_of("y"), n_resamples=20, rng=1)
    b = hierarchical_bootstrap(df, mean_of("y"), n_resamples=20, rng=1)
    np.testing.assert_array_equal(a.resamples, b.resamples)


@pytest.mark.parametrize(
    "change, kwargs, match",
    [
        (lambda d: d.drop(columns="image"), {}, "levels: column 'image'"),
        (lambda d: d, {"strata": "arm"}, "strata: column 'arm'"),
        (lambda d: d[d["pretrain_seed"] == 0], {}, "level 'pretrain_seed' has fewer than 2 units"),
        (lambda d: d[d["transfer_seed"] == 0], {}, "level 'transfer_seed' has fewer than 2 units under pretrain_seed=0"),
        (lambda d: d.assign(transfer_seed=d["transfer_seed"].where(d["image"] > 0)), {}, "levels: column 'transfer"),
        (lambda d: d, {"n_resamples": 0}, "n_resamples"),
        (lambda d: d, {"confidence": 1.0}, "confidence"),
        (lambda d: d, {"levels": "image"}, "levels must be"),
        (lambda d: d.iloc[:0], {}, "table is empty"),
        (lambda d: d.assign(draw=1), {}, "'draw' is reserved"),
    ],
)
def test_bad_bootstrap_input_names_the_argument(change, kwargs, match):
    df = design()
    df["y"] = 1.0
    with pytest.raises(ValueError, match=match):
        hierarchical_bootstrap(change(df), mean_of("y"), **{"n_resamples": 5, **kwargs})


def test_a_statistic_must_return_a_scalar():
    df = design()
    with pytest.raises(ValueError, match="'bad' must return a scalar"):
        joint_bootstrap(df, {"bad": lambda t: t["image"].to_numpy()}, n_resamples=2)


def test_p_values_on_constructed_distributions():
    B = 999
    v = np.concatenate([np.full(29, -1.0), np.full(B - 29, 1.0)])      # 29 of 999 at or below 0
    assert p_value(v) == pytest.approx(2 * 30 / 1000)
    assert p_value(np.zeros(B)) == 1.0
    assert p_value(np.full(B, 3.0)) == pytest.approx(2 / 1000)         # never exactly 0
    assert p_value(BootstrapResult(0.0, -v, 0.0, 0.0, 0.95, {})) == pytest.approx(2 * 30 / 1000)
    inside = np.linspace(-0.04, 0.04, B)
    assert equivalence_p_value(inside, margin=0.05) == pytest.approx(1 / 1000)
    w = np.concatenate([np.full(100, 0.06), np.full(20, -0.07), np.zeros(B - 120)])
    assert equivalence_p_value(w, margin=0.05) == pytest.approx(101 / 1000)
    for margin in (0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="margin"):
            equivalence_p_value(inside, margin)
    with pytest.raises(ValueError, match="resamples"):
        p_value([0.1, float("nan")])


def test_holm_against_a_hand_computed_family():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> max(0.04, 0.06) = 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])          # capped at 1
    for bad in ([], [0.1, 1.5], [float("nan")]):
        with pytest.raises(ValueError, match="pvalues"):
            holm(bad)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(estimate=0.5, p_adjusted=0.001, p_equivalence_adjusted=0.001, measurable=False), "not measurable"),
        (dict(estimate=0.01, p_adjusted=0.001, p_equivalence_adjusted=0.01), "no meaningful change"),
        (dict(estimate=0.5, p_adjusted=0.01, p_equivalence_adjusted=0.9), "holds"),
        (dict(estimate=-0.5, p_adjusted=0.01, p_equivalence_adjusted=0.9), "reversed"),
        (dict(estimate=0.5, p_adjusted=0.2, p_equivalence_adjusted=0.2), "inconclusive"),
        (dict(estimate=0.5, p_adjusted=0.05, p_equivalence_adjusted=0.05), "inconclusive"),   # strict "below"
    ],
)
def test_each_verdict_branch(kwargs, expected):
    assert verdict(expected_sign=+1, **kwargs) == expected
    assert expected in VERDICTS


def test_expected_sign_decides_holds_or_reversed():
    kw = dict(estimate=-0.5, p_adjusted=0.01, p_equivalence_adjusted=0.9)
    assert verdict(expected_sign=-1, **kw) == "holds"
    for bad in (0, 2):
        with pytest.raises(ValueError, match="expected_sign"):
            verdict(expected_sign=bad, **kw)
    with pytest.raises(ValueError, match="p_adjusted"):
        verdict(expected_sign=1, estimate=0.1, p_adjusted=float("nan"), p_equivalence_adjusted=0.5)


def test_claims_table_decides_each_row_from_constructed_distributions():
    rng = np.random.default_rng(0)

    def effect(centre, spread):
        v = centre + spread * rng.standard_normal(2000)
        return BootstrapResult(float(centre), v, *np.quantile(v, [0.025, 0.975]), 0.95, {})

    effects = {
        "holds": effect(0.5, 0.1),
        "reversed": effect(-0.5, 0.1),
        "no change": effect(0.0, 0.01),
        "inconclusive": effect(0.05, 0.5),
        "unmeasurable": effect(0.5, 0.1),
    }
    table = claims_table(
        effects,
        margins={n: 0.1 for n in effects},
        expected_signs={n: +1 for n in effects},
        measurable={n: n != "unmeasurable" for n in effects},
    )
    assert table["verdict"].to_dict() == {
        "holds": "holds", "reversed": "reversed", "no change": "no meaningful change",
        "inconclusive": "inconclusive", "unmeasurable": "not measurable",
    }
    np.testing.assert_allclose(table["p_holm"], holm(table["p"]))
    np.testing.assert_allclose(table["p_equivalence_holm"], holm(table["p_equivalence"]))
    with pytest.raises(ValueError, match="margins"):
        claims_table(effects, margins={}, expected_signs={n: 1 for n in effects})
