"""TokenCut against an analytic two-clique solution and a dense scipy reference."""

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy import ndimage

from dinosal.saliency.tokencut import SOLVERS, _seed_and_sign, cosine_graph, fiedler_vector, tokencut

SOLVER_LIST = [s for s in SOLVERS if s != "auto"]


def one_hot_layout(rows, cols, obj):
    f = np.zeros((rows * cols, 3))
    f[:, 0] = 1.0
    f[obj, :] = [0.0, 1.0, 0.0]
    return f


def reference_graph(f, tau, eps, binary=True):
    """Loop reference of TokenCut's graph; also returns the cosines."""
    n = len(f)
    u = f / np.linalg.norm(f, axis=1, keepdims=True)
    cos = np.array([[float(u[i] @ u[j]) for j in range(n)] for i in range(n)])
    w = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            if i == j:
                w[i, j] = 1.0
            elif binary:
                w[i, j] = 1.0 if cos[i, j] > tau else eps
            else:
                w[i, j] = cos[i, j] if cos[i, j] >= tau else eps
    return w, cos


def reference_tokencut(w, rows, cols, patch, h, wpx):
    """Dense generalised eigh, sign rule, mean bipartition, seed component (ndimage)."""
    d = w.sum(1)
    vals, vecs = scipy.linalg.eigh(np.diag(d) - w, np.diag(d))
    v = vecs[:, 1]
    a = np.abs(v)
    seed = int(np.flatnonzero(a >= (1 - 1e-6) * a.max())[0])
    if v[seed] < 0:
        v = -v
    bip = (v > v.mean()).reshape(rows, cols)
    lab, _ = ndimage.label(bip)
    mask = lab == lab.flat[seed]
    ys, xs = np.nonzero(mask)
    box = [xs.min() * patch, ys.min() * patch, min((xs.max() + 1) * patch, wpx), min((ys.max() + 1) * patch, h)]
    return dict(value=vals[1], v=v, seed=seed, bip=bip, mask=mask, box=box, d=d)


# ---------------------------------------------------------------------------
@pytest.mark.parametrize("solver", SOLVER_LIST)
def test_two_cliques_analytic(solver):
    rows, cols, p, eps = 4, 6, 16, 1e-5
    obj = [7, 8, 13, 14, 23]                  # a 2x2 block at rows 1-2, cols 1-2, and a lone patch
    f = one_hot_layout(rows, cols, obj)
    res = tokencut(f, (rows, cols), p, (60, 90), tau=0.2, eps=eps, solver=solver)
    # piecewise-constant Fiedler vector: a on S, b on L, D-orthogonal to 1, v^T D v = 1
    s, l = len(obj), rows * cols - len(obj)
    d_s, d_l = s + eps * l, l + eps * s
    ratio = -s * d_s / (l * d_l)                          # b = ratio * a
    a = 1.0 / np.sqrt(s * d_s + ratio**2 * l * d_l)
    b = ratio * a
    expected = np.full(rows * cols, b)
    expected[obj] = a
    np.testing.assert_allclose(res.eigvec.ravel(), expected, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(res.eigenvalue, eps * l * (a - b) / (d_s * a), rtol=1e-6)
    assert res.seed == 7                                   # |v| ties on S: lowest index
    np.testing.assert_array_equal(res.bipartition.ravel(), np.isin(np.arange(rows * cols), obj))
    m = np.zeros((rows, cols), bool)
    m[1:3, 1:3] = True                                     # the lone patch 23 is another component
    np.testing.assert_array_equal(res.mask, m)
    assert res.box.tolist() == [16, 16, 48, 48]


def test_seed_component_can_be_the_lone_patch_and_box_is_clipped():
    rows, cols = 4, 6
    obj = [5, 21, 22, 15, 16]                 # lone patch 5 (row 0, last col) has the lowest index
    f = one_hot_layout(rows, cols, obj)
    res = tokencut(f, (rows, cols), 16, (60, 90))
    assert res.seed == 5
    assert res.mask.sum() == 1 and res.box.tolist() == [80, 0, 90, 16]


def test_seed_tie_rule_and_sign():
    v = np.array([0.5, -1.0, 1.0 - 1e-8, 0.2, -0.3])
    seed, signed = _seed_and_sign(v)
    assert seed == 1                           # within 1e-6 of max|v|, lowest index
    assert signed[1] > 0 and np.allclose(signed, -v)
    v2 = np.array([0.1, 0.9, -0.999, 0.2])     # the max is negative: flip
    seed2, signed2 = _seed_and_sign(v2)
    assert seed2 == 2 and signed2[2] == pytest.approx(0.999)
    v3 = np.array([0.1, 0.99999, -1.0])        # 1e-5 apart: no tie
    assert _seed_and_sign(v3)[0] == 2


def structured(rows, cols, d, seed, noise=0.9):
    g = np.random.default_rng(seed)
    centers = g.standard_normal((3, d))
    lab = np.zeros((rows, cols), int)
    lab[rows // 3: rows // 3 + max(2, rows // 3), cols // 4: cols // 4 + max(2, cols // 3)] = 1
    lab[-1, :] = 2
    return centers[lab.ravel()] + noise * g.standard_normal((rows * cols, d))


@pytest.mark.parametrize("rows,cols,seed", [(8, 8, 0), (6, 11, 1), (12, 5, 2), (9, 9, 3)])
@pytest.mark.parametrize("binary", [True, False])
def test_structured_features_match_dense_reference(rows, cols, seed, binary):
    p, tau, eps = 8, 0.2, 1e-5
    f = structured(rows, cols, 24, seed)
    h, wpx = rows * p - 2, cols * p - 7
    w_ref, cos = reference_graph(f, tau, eps, binary)
    near = np.abs(cos - tau) < 1e-6
    np.fill_diagonal(near, False)
    w = cosine_graph(f, tau, eps, binary_graph=binary)
    np.testing.assert_allclose(w[~near], w_ref[~near], rtol=1e-12, atol=0)
    assert not near.any(), "pick another seed: an edge lies within 1e-6 of tau"
    ref = reference_tokencut(w_ref, rows, cols, p, h, wpx)
    for solver in SOLVER_LIST + ["auto"]:
        res = tokencut(torch.tensor(f), (rows, cols), p, (h, wpx), tau=tau, eps=eps,
                       solver=solver, binary_graph=binary)
        v = res.eigvec.ravel()
        assert v @ (ref["d"] * v) == pytest.approx(1.0, rel=1e-8)          # D-normalised
        np.testing.assert_allclose(v, ref["v"], atol=1e-8 * np.abs(ref["v"]).max())
        assert res.eigenvalue == pytest.approx(ref["value"], rel=1e-6, abs=1e-12)
        assert res.seed == ref["seed"]
        np.testing.assert_array_equal(res.bipartition, ref["bip"])
        np.testing.assert_array_equal(res.mask, ref["mask"])
        assert res.box.tolist() == ref["box"]
        assert res.eigvec.ravel()[res.seed] > 0 and res.bipartition.ravel()[res.seed]


def test_solvers_agree_on_a_larger_non_square_grid():
    f = structured(18, 25, 48, 7)
    results = {s: tokencut(f, (18, 25), 16, (18 * 16, 25 * 16), solver=s) for s in SOLVER_LIST}
    ref = results["generalized"]
    assert tokencut(f, (18, 25), 16, (288, 400)).solver == "lanczos"   # auto on N = 450
    for s, r in results.items():
        np.testing.assert_allclose(r.eigvec, ref.eigvec, atol=1e-8 * np.abs(ref.eigvec).max())
        np.testing.assert_array_equal(r.bipartition, ref.bipartition)
        assert r.seed == ref.seed and r.box.tolist() == ref.box.tolist()


def test_fiedler_vector_is_a_generalised_eigenvector():
    w = cosine_graph(structured(7, 7, 16, 11))
    d = w.sum(1)
    for s in SOLVER_LIST:
        lam, v, used = fiedler_vector(w, s)
        assert used == s
        np.testing.assert_allclose((np.diag(d) - w) @ v, lam * d * v, atol=1e-9)
        assert abs(v @ d) < 1e-9                                             # D-orthogonal to 1


def test_tau_changes_the_graph():
    f = structured(6, 6, 16, 4)
    w1, w2 = cosine_graph(f, tau=0.0), cosine_graph(f, tau=0.5)
    assert (w1 == 1).sum() > (w2 == 1).sum()
    assert set(np.unique(w1)) <= {1.0, 1e-5}


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(grid=(5, 5)), r"grid \(rows, cols\) = \(5, 5\) holds 25 patches.*24 tokens"),
        (dict(solver="eig"), r"solver must be one of"),
        (dict(eps=0.0), r"eps must be > 0"),
        (dict(image_size=(3, 3)), r"smaller than one patch"),
    ],
)
def test_bad_input(kwargs, match):
    args = dict(feats=structured(4, 6, 8, 0), grid=(4, 6), patch=8, image_size=(32, 48))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        tokencut(**args)


def test_nan_and_zero_features():
    f = structured(4, 6, 8, 0)
    f[3, 0] = np.nan
    with pytest.raises(ValueError, match="feats contains NaN/Inf"):
        tokencut(f, (4, 6), 8, (32, 48))
    f[3] = 0.0
    with pytest.raises(ValueError, match="all-zero tokens"):
        tokencut(f, (4, 6), 8, (32, 48))
