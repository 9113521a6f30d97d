"""LOST against hand-derived values and a brute-force loop reference."""

from collections import deque

import numpy as np
import pytest
import torch

from dinosal.saliency.lost import lost


# ---------------------------------------------------------------------------
# an independent, deliberately naive reference (loops, no library code)
def reference_lost(f, rows, cols, patch, h, w, k):
    n = len(f)
    a = [[float(np.dot(f[i], f[j])) for j in range(n)] for i in range(n)]
    deg = [sum(1 for j in range(n) if j != i and a[i][j] > 0) for i in range(n)]
    order = sorted(range(n), key=lambda i: (deg[i], i))
    seed = order[0]
    sims = [q for q in order[:k] if a[seed][q] > 0]
    m = [sum(a[q][j] for q in sims) for j in range(n)]
    # flood fill of m > 0 from the seed, 4-neighbours
    comp, todo = {seed}, deque([seed])
    while todo:
        i = todo.popleft()
        r, c = divmod(i, cols)
        for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            j = rr * cols + cc
            if 0 <= rr < rows and 0 <= cc < cols and j not in comp and m[j] > 0:
                comp.add(j)
                todo.append(j)
    rs = [i // cols for i in comp]
    cs = [i % cols for i in comp]
    box = [min(cs) * patch, min(rs) * patch, min((max(cs) + 1) * patch, w), min((max(rs) + 1) * patch, h)]
    mask = np.zeros(n, bool)
    mask[list(comp)] = True
    return dict(seed=seed, deg=np.array(deg), potentials=np.array(order[:k]), similars=np.array(sims),
                m=np.array(m), mask=mask.reshape(rows, cols), box=np.array(box))


def two_cluster_features(rows, cols, obj_cells, scale=None):
    """One-hot features: background e0, object e1 (exactly orthogonal)."""
    f = np.zeros((rows * cols, 4))
    f[:, 0] = 1.0
    for r, c in obj_cells:
        f[r * cols + c] = [0, 1, 0, 0]
    if scale is not None:
        f *= np.asarray(scale)[:, None]
    return f


# ---------------------------------------------------------------------------
def test_hand_made_two_clusters_non_square():
    rows, cols, p = 5, 7, 8
    block = [(r, c) for r in (1, 2) for c in (4, 5, 6)]
    lone = [(4, 0)]  # same feature as the object, not connected to the block
    f = two_cluster_features(rows, cols, block + lone)
    res = lost(torch.tensor(f), (rows, cols), p, (40, 52), k=10)

    obj = [r * cols + c for r, c in block + lone]
    deg = np.full(rows * cols, rows * cols - len(obj) - 1)
    deg[obj] = len(obj) - 1          # 6 object neighbours, the rest orthogonal (not > 0)
    assert res.degree.tolist() == deg.reshape(rows, cols).tolist()
    assert res.seed == 11 and res.seed_rc == (1, 4)            # lowest index of minimal degree
    assert res.potentials.tolist() == [11, 12, 13, 18, 19, 20, 28, 0, 1, 2]
    assert res.similars.tolist() == [11, 12, 13, 18, 19, 20, 28]
    corr = np.zeros(rows * cols)
    corr[obj] = 7.0
    np.testing.assert_array_equal(res.correlation.ravel(), corr)
    expected_mask = np.zeros((rows, cols), bool)
    expected_mask[1:3, 4:7] = True                             # the lone patch is another component
    np.testing.assert_array_equal(res.mask, expected_mask)
    assert res.box.tolist() == [32, 8, 52, 24]                 # x2 = 7*8 = 56 clipped to W = 52
    inv = np.where(deg == 6, 1 / 7, 1 / 28).reshape(rows, cols)
    np.testing.assert_allclose(res.inverse_degree, inv)
    np.testing.assert_allclose(res.composite, np.where(expected_mask, 1 / 7, 0.0))
    np.testing.assert_array_equal(res.seed_similarity.ravel(), np.where(np.isin(np.arange(35), obj), 1.0, 0.0))


def test_weighted_correlation_and_small_k():
    rows, cols = 4, 4
    block = [(0, 0), (0, 1), (1, 0), (1, 1)]
    scale = np.ones(16)
    scale[[0, 1, 4, 5]] = [1.0, 2.0, 3.0, 4.0]
    f = two_cluster_features(rows, cols, block, scale)
    res = lost(f, (rows, cols), 16, (64, 64), k=2)
    assert res.seed == 0
    assert res.potentials.tolist() == [0, 1]
    assert res.similars.tolist() == [0, 1]
    # M_j = A[0, j] + A[1, j] = (1 + 2) * scale_j on the object
    np.testing.assert_allclose(res.correlation.ravel()[[0, 1, 4, 5]], 3.0 * np.array([1, 2, 3, 4]))
    assert res.box.tolist() == [0, 0, 32, 32]


def test_negative_similarity_is_not_an_edge():
    # background = -object feature: similarities are -1, which must not count
    f = np.tile([1.0, 0.0], (9, 1))
    f[4] = [-1.0, 0.0]
    res = lost(f, (3, 3), 8, (24, 24), k=9)
    assert res.degree.ravel()[4] == 0 and res.seed == 4
    assert res.mask.sum() == 1 and res.box.tolist() == [8, 8, 16, 16]


def test_tie_rule_lowest_index():
    # identical features: every degree is N - 1; the order must be 0, 1, 2, ...
    f = np.ones((12, 3))
    res = lost(f, (3, 4), 8, (24, 32), k=5)
    assert res.seed == 0 and res.potentials.tolist() == [0, 1, 2, 3, 4]
    assert res.mask.all() and res.box.tolist() == [0, 0, 32, 24]
    # two groups of equal minimal degree: the group holding the lower index wins
    rows, cols = 4, 5
    f = two_cluster_features(rows, cols, [(3, 3), (3, 4)])
    f[[2 * cols + 0, 2 * cols + 1]] = [0, 0, 1, 0]
    res = lost(f, (rows, cols), 8, (32, 40), k=3)
    assert res.seed == 10 and res.potentials.tolist() == [10, 11, 18]
    assert res.similars.tolist() == [10, 11]
    assert res.box.tolist() == [0, 16, 16, 24]


@pytest.mark.parametrize("rows,cols,d,seed", [(6, 6, 8, 0), (5, 9, 16, 1), (9, 4, 5, 2), (7, 7, 3, 3)])
def test_random_features_match_loop_reference(rows, cols, d, seed):
    g = np.random.default_rng(seed)
    f = g.standard_normal((rows * cols, d)) + 0.3  # a mean offset makes degrees spread
    p = 8
    h, w = rows * p - 3, cols * p - 5
    for k in (1, 7, rows * cols):
        ref = reference_lost(f, rows, cols, p, h, w, k)
        res = lost(torch.tensor(f, dtype=torch.float32), (rows, cols), p, (h, w), k=k)
        assert res.degree.ravel().tolist() == ref["deg"].tolist()
        assert res.seed == ref["seed"]
        assert res.potentials.tolist() == ref["potentials"].tolist()
        assert res.similars.tolist() == ref["similars"].tolist()
        f32 = torch.tensor(f, dtype=torch.float32).double().numpy()
        ref32 = reference_lost(f32, rows, cols, p, h, w, k)
        np.testing.assert_allclose(res.correlation.ravel(), ref32["m"], rtol=1e-10, atol=1e-10)
        np.testing.assert_array_equal(res.mask, ref["mask"])
        assert res.box.tolist() == ref["box"].tolist()


def test_batch_axis_and_dtypes_accepted():
    f = np.random.default_rng(0).standard_normal((20, 6))
    a = lost(f, (4, 5), 8, (32, 40), k=5)
    b = lost(torch.tensor(f)[None], (4, 5), 8, (32, 40), k=5)
    assert a.seed == b.seed and a.box.tolist() == b.box.tolist()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(grid=(4, 6)), r"grid \(rows, cols\) = \(4, 6\) holds 24 patches.*20 tokens"),
        (dict(k=21), r"k must be .*\[1, 20\].*k=21"),
        (dict(k=0), r"k must be"),
        (dict(image_size=(7, 40)), r"smaller than one patch"),
        (dict(image_size=(100, 40)), r"does not fit grid"),
        (dict(patch=0), r"patch must be"),
    ],
)
def test_bad_input(kwargs, match):
    args = dict(feats=np.ones((20, 3)), grid=(4, 5), patch=8, image_size=(32, 40), k=5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        lost(**args)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf_features(bad):
    f = np.ones((20, 3))
    f[7, 1] = bad
    with pytest.raises(ValueError, match=r"feats contains NaN/Inf in 1 of 20 tokens \(first: token 7\)"):
        lost(f, (4, 5), 8, (32, 40))


def test_wrong_rank():
    with pytest.raises(ValueError, match=r"feats must have shape \(N, D\)"):
        lost(np.ones((2, 20, 3)), (4, 5), 8, (32, 40))
