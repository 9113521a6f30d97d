"""CLS attention maps, DINO's mass threshold, nearest upsampling."""

import numpy as np
import pytest
import torch

from dinosal.saliency.attention import cls_attention, mass_threshold, upsample


def greedy_reference(weights, share):
    """Keep the largest weights while the mass kept *before* adding one is < share (ties: higher index first)."""
    w = np.asarray(weights, dtype=float).ravel()
    order = sorted(range(len(w)), key=lambda i: (-w[i], -i))
    total, kept, keep = w.sum(), 0.0, np.zeros(len(w), bool)
    for i in order:
        if kept / total < share - 1e-12:
            keep[i] = True
            kept += w[i]
    return keep


def test_cls_attention_shapes_and_mean():
    a = torch.arange(2 * 12, dtype=torch.float32).reshape(2, 12)
    maps = cls_attention(a, (3, 4))
    assert maps.heads.shape == (2, 3, 4) and maps.mean.shape == (3, 4) and maps.num_heads == 2
    assert maps.heads[1, 2, 1] == 12 + 2 * 4 + 1               # row-major: index r*cols + c
    np.testing.assert_allclose(maps.mean, (maps.heads[0] + maps.heads[1]) / 2)
    with pytest.raises(ValueError, match=r"grid \(rows, cols\) = \(4, 4\)"):
        cls_attention(a, (4, 4))
    with pytest.raises(ValueError, match="NaN"):
        cls_attention(torch.tensor([[np.nan, 1.0]]), (1, 2))


def test_mass_threshold_hand_made():
    w = np.array([[0.05, 0.5], [0.15, 0.3]])
    keep = mass_threshold(w, 0.6)
    # 0.5 alone holds 0.5 < 0.6, so 0.3 is added too (0.8 >= 0.6); 0.15 not needed
    np.testing.assert_array_equal(keep, [[False, True], [False, True]])
    np.testing.assert_array_equal(mass_threshold(w, 1.0), np.ones((2, 2), bool))
    np.testing.assert_array_equal(mass_threshold(w, 0.5), [[False, True], [False, False]])


def test_mass_threshold_tie_rule_keeps_higher_index():
    w = np.full((2, 2), 0.25)
    np.testing.assert_array_equal(mass_threshold(w, 0.5), [[False, False], [True, True]])
    np.testing.assert_array_equal(mass_threshold(w, 0.6), [[False, True], [True, True]])


def test_mass_threshold_per_map_matches_greedy_reference():
    g = np.random.default_rng(0)
    maps = g.random((3, 5, 7)) ** 3
    for share in (0.1, 0.6, 0.9):
        keep = mass_threshold(torch.tensor(maps), share)
        assert keep.shape == maps.shape
        for h in range(3):
            np.testing.assert_array_equal(keep[h].ravel(), greedy_reference(maps[h], share))
            assert maps[h][keep[h]].sum() >= share * maps[h].sum()
    # scaling one map does not change its mask (normalised per map)
    scaled = maps.copy()
    scaled[1] *= 100
    np.testing.assert_array_equal(mass_threshold(scaled, 0.6), mass_threshold(maps, 0.6))


def test_mass_threshold_bad_input():
    with pytest.raises(ValueError, match="share"):
        mass_threshold(np.ones((2, 2)), 0.0)
    with pytest.raises(ValueError, match="non-negative"):
        mass_threshold(-np.ones((2, 2)), 0.6)
    assert not mass_threshold(np.zeros((2, 2)), 0.6).any()


def test_upsample_nearest():
    m = np.array([[1, 2], [3, 4]])
    u = upsample(m, 3)
    assert u.shape == (6, 6)
    assert (u[:3, :3] == 1).all() and (u[3:, 3:] == 4).all() and u[2, 3] == 2
    assert upsample(np.zeros((5, 2, 3)), 2).shape == (5, 4, 6)
    with pytest.raises(ValueError, match="factor"):
        upsample(m, 0)
