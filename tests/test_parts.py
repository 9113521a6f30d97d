"""Per-part saliency scores (dinosal.parts, and their MethodMaps front in dinosal.localisation):
hand-computed cases, errors that name the argument, and agreement with Quantus' metric classes."""

import numpy as np
import pytest

from dinosal import localisation as loc
from dinosal import parts
from dinosal.data.sample import GroundTruth
from dinosal.metrics import pointing_game


def one_hot(shape, *cells):
    m = np.zeros(shape, dtype=bool)
    for rc in cells:
        m[rc] = True
    return m


# ------------------------------------------------ relevance mass accuracy


def test_relevance_mass_accuracy_is_the_share_of_the_mass_inside_the_mask():
    s = np.zeros((4, 4))
    s[0, 0], s[1, 1], s[3, 3] = 3.0, 1.0, 4.0                         # mass 8
    mask = one_hot((4, 4), (0, 0), (0, 1), (3, 3))
    assert parts.relevance_mass_accuracy(s, mask) == pytest.approx(7 / 8)
    assert parts.relevance_mass_accuracy(s, ~mask) == pytest.approx(1 / 8)
    # a batch, with one (H, W) mask for every map; an empty mask is NaN, as in Quantus
    out = parts.relevance_mass_accuracy(np.stack([s, np.ones((4, 4))]), mask)
    np.testing.assert_allclose(out, [7 / 8, 3 / 16])
    assert np.isnan(parts.relevance_mass_accuracy(s, np.zeros((4, 4), bool)))
    assert np.isnan(parts.relevance_mass_accuracy(np.zeros((4, 4)), mask))  # no mass


def test_transforms_of_a_signed_map():
    s = np.array([[-1.0, 1.0], [3.0, -1.0]])
    mask = one_hot((2, 2), (1, 0))
    with pytest.raises(ValueError, match="saliency has negative values.*transform"):
        parts.relevance_mass_accuracy(s, mask)
    assert parts.relevance_mass_accuracy(s, mask, transform="clip") == pytest.approx(3 / 4)
    # min-max: (s + 1) / 4 = [[0, .5], [1, 0]] -> 1 / 1.5
    assert parts.relevance_mass_accuracy(s, mask, transform="minmax") == pytest.approx(2 / 3)
    np.testing.assert_allclose(parts.prepare_map(np.full((2, 2), 5.0), "minmax"), 0.0)  # constant: no mass
    with pytest.raises(ValueError, match="transform must be one of"):
        parts.prepare_map(s, "abs")


# ------------------------------------------------ relevance rank accuracy


def test_relevance_rank_accuracy_counts_the_top_pixels_inside_the_mask():
    s = np.arange(16, dtype=float).reshape(4, 4)                      # 15 is the top pixel, 0 the lowest
    mask = one_hot((4, 4), (3, 3), (0, 0))                            # |mask| = 2: top-2 are 15 and 14
    assert parts.relevance_rank_accuracy(s, mask) == pytest.approx(0.5)
    assert parts.relevance_rank_accuracy(s, mask, ties="first") == pytest.approx(0.5)
    assert parts.relevance_rank_accuracy(s, one_hot((4, 4), (3, 3), (3, 2))) == 1.0
    assert np.isnan(parts.relevance_rank_accuracy(s, np.zeros((4, 4), bool)))


def test_relevance_rank_accuracy_ties_at_the_cut():
    s = np.array([[2.0, 1.0, 1.0, 1.0]])
    mask = np.array([[True, False, False, True]])                     # K = 2: pixel 0, then one of three 1s
    # expected under random tie-breaking: (1 + 1 * 1/3) / 2; the stable order takes pixel 1 (off the mask)
    assert parts.relevance_rank_accuracy(s, mask) == pytest.approx(2 / 3)
    assert parts.relevance_rank_accuracy(s, mask, ties="first") == pytest.approx(0.5)
    with pytest.raises(ValueError, match="ties must be one of"):
        parts.relevance_rank_accuracy(s, mask, ties="random")


# ------------------------------------------------ pointing game


def test_pointing_game_hits_where_the_maximum_is():
    s = np.arange(16, dtype=float).reshape(4, 4)
    assert parts.pointing_game_score(s, one_hot((4, 4), (3, 3))) == 1.0
    assert parts.pointing_game_score(s, one_hot((4, 4), (0, 0), (3, 2))) == 0.0
    assert np.isnan(parts.pointing_game_score(s, np.zeros((4, 4), bool)))


def test_pointing_game_ties():
    s = np.array([[1.0, 1.0, 0.0, 0.0]])
    mask = np.array([[False, True, True, False]])
    assert parts.pointing_game_score(s, mask) == 1.0                  # Quantus: any maximum on the mask
    assert parts.pointing_game_score(s, mask, ties="share") == 0.5
    assert parts.pointing_game_score(s, mask, ties="first") == 0.0
    # "first" is dinosal.metrics.pointing_game with tolerance 0
    assert parts.pointing_game_score(s, mask, ties="first") == float(pointing_game(s, mask))
    with pytest.raises(ValueError, match="ties must be one of"):
        parts.pointing_game_score(s, mask, ties="random")


# ------------------------------------------------ overall activation, pooled ratio


def test_overall_activation_is_the_mean_of_the_min_max_normalised_map():
    assert parts.overall_activation(np.array([[0.0, 1.0], [0.5, 0.5]])) == pytest.approx(0.5)
    assert parts.overall_activation(np.array([[2.0, 4.0], [3.0, 3.0]])) == pytest.approx(0.5)  # shift/scale free
    assert parts.overall_activation(np.array([[-1.0, 0.0], [0.0, 0.0]])) == pytest.approx(0.75)  # any sign
    assert np.isnan(parts.overall_activation(np.ones((3, 3))))
    np.testing.assert_allclose(parts.overall_activation(np.stack([np.eye(2), np.ones((2, 2))])), [0.5, np.nan])


def test_pooled_ratio_is_mean_share_over_mean_area():
    assert parts.pooled_ratio([0.2, 0.0], [0.1, 0.0]) == pytest.approx(2.0)   # the part is absent in image 2
    assert np.isnan(parts.pooled_ratio([0.0, 0.0], [0.0, 0.0]))
    np.testing.assert_allclose(parts.pooled_ratio([[0.2, 0.3], [0.0, 0.1]], [[0.1, 0.1], [0.0, 0.3]]), [2.0, 1.0])
    assert loc.pooled_ratio([0.3, 0.1], [0.1, 0.3]) == pytest.approx(1.0)     # one implementation
    with pytest.raises(ValueError, match="share and area"):
        parts.pooled_ratio([0.1, 0.2], [0.1])


# ------------------------------------------------ a set of images


def two_images():
    """Two 4x4 maps with objects / tree / road masks; image 2 has no tree."""
    s1 = np.zeros((4, 4))
    s1[0, :2] = 2.0                                                   # mass 4 on the object (row 0, cols 0-1)
    s1[3, 3] = 4.0                                                    # mass 4 on the tree; total 8
    obj1, tree1 = one_hot((4, 4), (0, 0), (0, 1)), one_hot((4, 4), (3, 3))
    road = np.zeros((4, 4), bool)
    road[2:] = True
    road[3, 3] = False                                                # 7 px of road in image 1
    t1 = GroundTruth(np.array([[0.0, 0, 2, 1]]), obj1, {"tree": tree1, "road": road})
    s2 = np.ones((4, 4))                                              # uniform: share = area everywhere
    obj2 = one_hot((4, 4), (1, 1), (1, 2), (2, 1), (2, 2))
    road2 = np.zeros((4, 4), bool)
    road2[3] = True
    t2 = {"objects": obj2, "tree": np.zeros((4, 4), bool), "road": road2}
    return [s1, s2], [t1, t2]


def test_part_scores_by_hand():
    maps, truths = two_images()
    ps = parts.part_scores(maps, truths)
    assert ps.parts == ("objects", "tree", "road") and ps.n == 2
    np.testing.assert_allclose(ps.share, [[0.5, 0.5, 0.0], [0.25, 0.0, 0.25]])
    np.testing.assert_allclose(ps.area, [[2 / 16, 1 / 16, 7 / 16], [4 / 16, 0.0, 4 / 16]])
    np.testing.assert_allclose(ps.rma, [[0.5, 0.5, 0.0], [0.25, np.nan, 0.25]])
    # image 1: the K = 2 top px are the 4.0 and one 2.0 (1 of 2 on the object); road (K = 7): the 3
    # non-zero px are off the road, then 4 of the 13 tied zeros, 7 of which are road -> 4 * 7/13 / 7
    np.testing.assert_allclose(ps.rra[0], [0.5, 1.0, 4 / 13])
    np.testing.assert_allclose(ps.pointing, [[0.0, 1.0, 0.0], [1.0, np.nan, 1.0]])  # a uniform map hits anything
    # RM = mean share / mean area, over both images (the absent tree adds zero to both)
    np.testing.assert_allclose(ps.ratio, [0.375 / (6 / 32), 0.25 / (1 / 32), 0.125 / (11 / 32)])
    np.testing.assert_allclose(ps.oa, [(2 * 0.5 + 1.0) / 16, np.nan])
    assert ps.overall_activation == pytest.approx(1 / 8)                # the constant map is skipped
    tree = ps.pooled("tree")
    assert tree["present"] == 1 and tree["rma"] == pytest.approx(0.5) and tree["ratio"] == pytest.approx(8.0)
    rows = ps.rows()
    assert [r["part"] for r in rows] == ["objects", "tree", "road"] and rows[0]["n"] == 2
    assert parts.part_scores(maps, truths, parts=["road"]).parts == ("road",)
    share_only = parts.part_scores(maps, truths, point_ties="share")
    assert share_only.pointing[1, 0] == pytest.approx(4 / 16)


def test_part_scores_errors_name_the_argument():
    maps, truths = two_images()
    with pytest.raises(ValueError, match="maps is empty"):
        parts.part_scores([], [])
    with pytest.raises(ValueError, match="maps has 2 images but truths has 1"):
        parts.part_scores(maps, truths[:1])
    with pytest.raises(ValueError, match=r"truths\[1\] has no part 'tree'; it has: objects, road"):
        parts.part_scores(maps, [truths[0], {k: v for k, v in truths[1].items() if k != "tree"}])
    bad = dict(truths[1], road=np.zeros((3, 4), bool))
    with pytest.raises(ValueError, match=r"truths\[1\]\['road'\] has shape \(3, 4\)"):
        parts.part_scores(maps, [truths[0], bad])
    with pytest.raises(ValueError, match=r"maps\[0\] has negative values"):
        parts.part_scores([-maps[0], maps[1]], truths)
    with pytest.raises(ValueError, match=r"maps\[1\] contains NaN"):
        parts.part_scores([maps[0], maps[1] * np.nan], truths)
    with pytest.raises(ValueError, match="part 'sky' was not scored"):
        parts.part_scores(maps, truths).pooled("sky")
    with pytest.raises(ValueError, match="mask has shape"):
        parts.relevance_mass_accuracy(maps[0], np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match="mask must be boolean"):
        parts.relevance_mass_accuracy(maps[0], np.full((4, 4), 0.5))
    with pytest.raises(TypeError, match="truth must be a GroundTruth"):
        parts.regions_of([1, 2])


# ------------------------------------------------ measurability


def test_positive_share_and_measurability():
    e0 = np.array([1.0, 0.0])
    keys = np.stack([e0, e0, -e0])                                    # positive pairs: (0, 1) and (1, 0) of 6
    assert parts.positive_share(keys=keys) == pytest.approx(1 / 3)
    assert parts.positive_share(degree=np.array([1, 1, 0])) == pytest.approx(1 / 3)
    flat = np.ones((4, 2))                                            # every pair positive: q = 1
    m = parts.measurability(keys=[keys, flat])
    assert m.per_image.tolist() == pytest.approx([1 / 3, 1.0])
    assert m.q == pytest.approx((2 + 12) / (6 + 12))                  # pairs pooled over images
    assert m.measurable and m.verdict == "measurable"
    flat_model = parts.measurability(keys=[flat, flat])
    assert flat_model.q == 1.0 and not flat_model.measurable and flat_model.verdict == "not measurable"
    # q > threshold, not >=: exactly at the bound is still measurable
    assert parts.measurability(degrees=[np.array([1, 1, 0])], threshold=1 / 3).measurable


def test_measurability_errors():
    with pytest.raises(ValueError, match="exactly one of keys and degree"):
        parts.positive_share()
    with pytest.raises(ValueError, match="exactly one of keys and degrees"):
        parts.measurability(keys=[np.ones((2, 2))], degrees=[np.array([1, 1])])
    with pytest.raises(ValueError, match="degrees is empty"):
        parts.measurability(degrees=[])
    with pytest.raises(ValueError, match="threshold must be in"):
        parts.measurability(degrees=[np.array([1, 1])], threshold=0.0)
    with pytest.raises(ValueError, match=r"degrees\[1\] must hold integers in \[0, N - 1\] = \[0, 1\]"):
        parts.measurability(degrees=[np.array([1, 1]), np.array([2, 0])])
    with pytest.raises(ValueError, match="at least 2"):
        parts.positive_share(degree=np.array([0]))


# ------------------------------------------------ the MethodMaps front (dinosal.localisation)


def block_maps(tau=0.2):
    """LOST and TokenCut on a 4x4 grid whose object is the centre 2x2 block (patch 8, 32 px)."""
    f = np.zeros((4, 4, 8))
    f[..., 0], f[..., 1] = -1.0, 1.0
    f[1:3, 1:3] = 0.0
    f[1:3, 1:3, 0], f[1:3, 1:3, 2] = 1.0, 0.5
    return loc.maps_of_features(f.reshape(16, 8), (4, 4), 8, (32, 32), k=4, tau=tau)


def test_kind_maps_and_part_scores_of_method_maps():
    m = block_maps()
    obj = np.zeros((32, 32), bool)
    obj[8:24, 8:24] = True
    truth = GroundTruth(np.array([[8.0, 8, 24, 24]]), obj, {"background": ~obj})
    deg = loc.kind_map(m, "inverse degree")
    assert deg.shape == (32, 32)
    np.testing.assert_allclose(deg, m.to_pixels(m.lost.inverse_degree))
    # the object's 4 patches link to 3 others (1/4), the 12 background patches to 11 (1/12)
    ps = loc.part_scores_of([m, m], [truth, truth], "inverse degree")
    share = 4 * (1 / 4) / (4 * (1 / 4) + 12 * (1 / 12))
    np.testing.assert_allclose(ps.share[:, 0], share)
    np.testing.assert_allclose(ps.ratio, [share / 0.25, (1 - share) / 0.75])
    assert loc.part_scores_of([m], [truth], "LOST mask").pooled("objects")["rma"] == pytest.approx(1.0)
    assert loc.part_scores_of([m], [truth], "composite").pooled("objects")["pointing"] == 1.0
    with pytest.raises(ValueError, match="saliency has negative|maps\\[0\\] has negative"):
        loc.part_scores_of([m], [truth], "correlation")
    assert loc.part_scores_of([m], [truth], "correlation", transform="clip").pooled("objects")["rma"] == 1.0
    assert loc.part_scores_of([m], [truth], "TokenCut", transform="minmax").n == 1
    meas = loc.measurability_of([m])
    assert meas.q == pytest.approx((4 * 3 + 12 * 11) / (16 * 15)) and meas.verdict == "measurable"


def test_kind_map_errors():
    m = block_maps(tau=None)
    with pytest.raises(ValueError, match="kind must be one of"):
        loc.kind_map(m, "degree")
    with pytest.raises(ValueError, match="TokenCut was not run"):
        loc.kind_map(m, "TokenCut")
    with pytest.raises(ValueError, match="no attention"):
        loc.kind_map(m, "attention head", head=0)
    with pytest.raises(ValueError, match="maps is empty"):
        loc.part_scores_of([], [], "inverse degree")
    with pytest.raises(ValueError, match="maps is empty"):
        loc.measurability_of([])


# ------------------------------------------------ agreement with Quantus


def quantus_scores(metric, a, s):
    """A Quantus localisation metric on explicit attributions and masks (no model is called)."""
    b = len(a)
    x, y = np.zeros((b, 1) + a.shape[1:]), np.zeros(b, dtype=int)
    out = metric(disable_warnings=True, display_progressbar=False)(
        model=None, x_batch=x, y_batch=y, a_batch=a[:, None], s_batch=s[:, None].astype(float))
    return np.asarray(out, dtype=np.float64)


def test_agrees_with_quantus():
    import quantus  # a pinned test dependency (the book extra): a missing install fails, never skips
    rng = np.random.default_rng(0)
    a = rng.random((8, 12, 10))                                       # continuous: no ties
    a[3] **= 6                                                        # a peaked map
    s = np.zeros((8, 12, 10), bool)
    for i in range(8):                                                # boxes of different sizes and places
        r, c = rng.integers(0, 8), rng.integers(0, 6)
        s[i, r: r + 1 + i % 4, c: c + 2 + i % 3] = True
    s[5] = a[5] > np.quantile(a[5], 0.7)                              # an irregular mask
    np.testing.assert_allclose(parts.relevance_mass_accuracy(a, s), quantus_scores(quantus.RelevanceMassAccuracy, a, s))
    np.testing.assert_allclose(parts.relevance_rank_accuracy(a, s), quantus_scores(quantus.RelevanceRankAccuracy, a, s))
    np.testing.assert_allclose(parts.pointing_game_score(a, s), quantus_scores(quantus.PointingGame, a, s))
    # on ties at the maximum (an upsampled patch map) the pointing game agrees with Quantus' rule too
    tied = np.kron(rng.integers(0, 3, (8, 3, 2)).astype(float), np.ones((4, 5)))[:, :12, :10]
    np.testing.assert_allclose(parts.pointing_game_score(tied, s), quantus_scores(quantus.PointingGame, tied, s))
    # and part_scores computes the same per image
    ps = parts.part_scores(list(a), [{"part": m} for m in s])
    np.testing.assert_allclose(ps.rma[:, 0], quantus_scores(quantus.RelevanceMassAccuracy, a, s))
