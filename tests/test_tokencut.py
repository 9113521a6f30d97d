"""TokenCut against an analytic two-clique solution and a dense scipy reference;
determinism, degenerate cuts (multiple Fiedler eigenvalue) and solver agreement."""

import importlib
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy import ndimage

from dinosal.saliency.tokencut import (
    SOLVERS, DegenerateCutWarning, _canonical, _canonical_complement, _nonzero_2d, seed_and_sign, cosine_graph,
    fiedler, fiedler_vector, tokencut,
)

tc = importlib.import_module("dinosal.saliency.tokencut")   # the package re-exports a function of that name
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
    seed, signed = seed_and_sign(v)
    assert seed == 1                           # within 1e-6 of max|v|, lowest index
    assert signed[1] > 0 and np.allclose(signed, -v)
    v2 = np.array([0.1, 0.9, -0.999, 0.2])     # the max is negative: flip
    seed2, signed2 = seed_and_sign(v2)
    assert seed2 == 2 and signed2[2] == pytest.approx(0.999)
    v3 = np.array([0.1, 0.99999, -1.0])        # 1e-5 apart: no tie
    assert seed_and_sign(v3)[0] == 2


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


# ---------------------------------------------------------------------------
# determinism and degenerate cuts
def run_all(f, grid, patch, size, expect_warning, **kw):
    """tokencut with every solver (and auto); checks the DegenerateCutWarning is (not) emitted."""
    out = {}
    for solver in SOLVER_LIST + ["auto"]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out[solver] = tokencut(f, grid, patch, size, solver=solver, **kw)
        flagged = [w for w in caught if issubclass(w.category, DegenerateCutWarning)]
        assert len(flagged) == (1 if expect_warning else 0), (solver, [str(w.message) for w in caught])
    return out


def assert_same_cut(results, atol=1e-8):
    ref = results["generalized"]
    for s, r in results.items():
        assert r.box.tolist() == ref.box.tolist(), (s, r.box, ref.box)
        assert r.seed == ref.seed, s
        np.testing.assert_array_equal(r.mask, ref.mask)
        np.testing.assert_allclose(r.eigvec, ref.eigvec, atol=atol * np.abs(ref.eigvec).max(), err_msg=s)
        assert (r.degenerate, r.multiplicity) == (ref.degenerate, ref.multiplicity), s


def test_uniform_grey_image_same_box_every_call_and_every_solver():
    from dinosal.baselines import pixel_features
    f, grid = pixel_features(np.full((96, 96, 3), 128, np.uint8), 8)
    assert grid == (12, 12) and float(f.std(0).max()) == 0.0          # constant features, W constant
    calls = []
    for _ in range(20):
        with pytest.warns(DegenerateCutWarning, match="degenerate cut"):
            calls.append(tokencut(f, grid, 8, (96, 96)))                # auto: N = 144 -> dense
    for r in calls:
        assert r.box.tolist() == calls[0].box.tolist() and r.seed == calls[0].seed
        assert r.eigvec.tobytes() == calls[0].eigvec.tobytes()          # bit-identical
    results = run_all(f, grid, 8, (96, 96), expect_warning=True)
    assert_same_cut(results)
    n = 144
    for r in results.values():
        assert r.degenerate and r.multiplicity == n - 1 and abs(r.eigengap) < 1e-12
        assert r.eigenvalue == pytest.approx(1.0)
    # lanczos detects the cluster and hands it to the dense solver
    assert results["lanczos"].solver == results["auto"].solver == "dense"
    # the documented choice: the unit vector of E with the largest entry at patch 0,
    # v = (e_0 - 1/N) / sqrt(N - 1) with v^T D v = 1 (d = N): the top-left patch alone
    expected = np.full(n, -1.0 / n)
    expected[0] += 1.0
    np.testing.assert_allclose(calls[0].eigvec.ravel(), expected / np.sqrt(n - 1), atol=1e-12)
    assert calls[0].seed == 0 and calls[0].box.tolist() == [0, 0, 8, 8]


def test_constant_features_fiedler_vector_warns_and_is_canonical():
    w = cosine_graph(np.ones((30, 5)))
    assert (w == 1.0).all()
    vectors = []
    for s in SOLVER_LIST:
        with pytest.warns(DegenerateCutWarning):
            lam, v, used = fiedler_vector(w, s)
        assert lam == pytest.approx(1.0)
        vectors.append(v)
    for v in vectors:
        np.testing.assert_allclose(v, vectors[0], atol=1e-12)


def stripes(rows, cols, n, axis):
    """One-hot features, ``n`` equal stripes along ``axis``: W = 1 within a stripe, eps across."""
    idx = np.indices((rows, cols))[axis].ravel() * n // (rows if axis == 0 else cols)
    return np.eye(n)[idx]


@pytest.mark.parametrize("axis", [0, 1])
def test_three_equal_stripes_all_solvers_same_box_and_flagged(axis):
    f = stripes(12, 12, 3, axis)
    results = run_all(f, (12, 12), 8, (96, 96), expect_warning=True)
    assert_same_cut(results)
    for r in results.values():
        assert r.degenerate and r.multiplicity == 2 and abs(r.eigengap) < 1e-12
    # E = stripe-constant vectors orthogonal to 1; the largest entry at patch 0: (2, -1, -1) per stripe
    d = 48 + 1e-5 * 96
    lab = np.indices((12, 12))[axis].ravel() // 4
    expected = np.where(lab == 0, 2.0, -1.0) / np.sqrt(288 * d)
    np.testing.assert_allclose(results["lanczos"].eigvec.ravel(), expected, rtol=1e-9)
    assert results["lanczos"].box.tolist() == ([0, 0, 96, 32] if axis == 0 else [0, 0, 32, 96])


def symmetric_stripes(noise, seed, rows=12, cols=12, dim=24):
    """Three stripes with the same inner noise pattern, their centres on orthogonal axes:
    the graph is invariant under permuting the stripes, so the Fiedler eigenvalue is double,
    while the spectrum has many distinct eigenvalues (no early Krylov breakdown)."""
    g = np.random.default_rng(seed)
    pattern = noise * g.standard_normal((rows // 3, cols, dim))
    pattern[..., :3] = 0.0
    f = np.concatenate([pattern + 1.5 * np.eye(dim)[k] for k in range(3)])
    return f.reshape(rows * cols, dim)


def test_symmetric_stripes_with_inner_structure():
    f = symmetric_stripes(0.35, 7)
    w = cosine_graph(f)
    d = w.sum(1)
    vals = scipy.linalg.eigh(np.diag(d) - w, np.diag(d), eigvals_only=True)
    assert vals[2] - vals[1] < 1e-12 and vals[3] - vals[2] > 0.1 and np.unique(vals.round(9)).size > 50
    results = run_all(f, (12, 12), 8, (96, 96), expect_warning=True)
    assert_same_cut(results)
    assert all(r.multiplicity == 2 for r in results.values())
    assert results["lanczos"].solver == "dense"             # lanczos detected the cluster, dense sized it


@pytest.mark.parametrize("rows,cols,seed", [(18, 25, 7), (12, 12, 3)])
def test_unique_fiedler_vector_solvers_agree_and_not_flagged(rows, cols, seed):
    f = structured(rows, cols, 48, seed)
    results = run_all(f, (rows, cols), 16, (rows * 16, cols * 16), expect_warning=False)
    assert_same_cut(results)
    w = cosine_graph(f)
    d = w.sum(1)
    vals = scipy.linalg.eigh(np.diag(d) - w, np.diag(d), eigvals_only=True)
    for s, r in results.items():
        assert not r.degenerate and r.multiplicity == 1
        assert r.eigengap == pytest.approx(vals[2] - vals[1], rel=1e-6), s
    again = [tokencut(f, (rows, cols), 16, (rows * 16, cols * 16), solver="lanczos") for _ in range(5)]
    assert all(a.eigvec.tobytes() == results["lanczos"].eigvec.tobytes() for a in again)


def three_cliques(size, a, delta):
    """W of three cliques of ``size`` nodes; cross weights a (0-1, 0-2) and a * (1 + delta) (1-2)."""
    lab = np.repeat(np.arange(3), size)
    cross = np.array([[1, a, a], [a, 1, a * (1 + delta)], [a, a * (1 + delta), 1]])
    return cross[lab][:, lab]


@pytest.mark.parametrize("delta,degenerate", [(1e-3, False), (1e-9, True)])
def test_eigengap_tolerance(delta, degenerate):
    w = three_cliques(20, 1e-3, delta)
    pairs = {s: fiedler(w, s) for s in SOLVER_LIST}
    ref = pairs["generalized"]
    assert ref.degenerate is degenerate
    rel_gap = ref.eigengap / ref.value
    assert (rel_gap <= tc.GAP_RTOL) is degenerate and rel_gap == pytest.approx(2 * delta / 3, rel=0.01)
    for s, p in pairs.items():
        assert (p.degenerate, p.multiplicity) == (ref.degenerate, ref.multiplicity), s
        sign = 1.0 if p.vector @ ref.vector > 0 else -1.0
        np.testing.assert_allclose(sign * p.vector, ref.vector, atol=1e-6 * np.abs(ref.vector).max(), err_msg=s)
    if degenerate:
        assert ref.anchor == 0 and ref.vector[0] > 0                        # canonical, no sign ambiguity


def test_canonical_vector_does_not_depend_on_the_basis():
    g = np.random.default_rng(0)
    a = g.standard_normal((40, 3))
    a[:2] = 0.0                                           # no vector of E touches patches 0 and 1
    y = np.linalg.qr(a)[0]
    rot = np.linalg.qr(g.standard_normal((3, 3)))[0]
    v1, t1 = _canonical(y)
    v2, t2 = _canonical(y @ rot)
    assert t1 == t2 == 2
    np.testing.assert_allclose(v1, v2, atol=1e-14)
    assert v1[2] == pytest.approx(np.linalg.norm(y[2]))   # the largest entry a unit vector of E can have there
    # the same E given by its complement [u, rest]
    q = np.linalg.qr(np.column_stack([y, g.standard_normal((40, 37))]))[0]
    v3, t3 = _canonical_complement(q[:, 3], q[:, 4:])
    assert t3 == 2
    np.testing.assert_allclose(v3, v1, atol=1e-12)


def test_lanczos_falls_back_to_dense_when_it_does_not_converge(monkeypatch):
    f = structured(18, 25, 48, 7)
    ref = tokencut(f, (18, 25), 16, (288, 400), solver="generalized")
    monkeypatch.setattr(tc, "KRYLOV_MAX_DIM", 8)
    with pytest.warns(UserWarning, match="did not converge"):
        r = tokencut(f, (18, 25), 16, (288, 400), solver="lanczos")
    assert r.solver == "dense" and r.box.tolist() == ref.box.tolist()


def test_edges_near_tau_are_decided_in_float64():
    # cos(f_0, f_j) = tau + k * 1e-9: float32 cannot tell these apart, float64 can
    tau, dim = 0.2, 384
    ks = np.arange(-5, 6)
    c = tau + ks * 1e-9
    f = np.zeros((len(ks) + 1, dim))
    f[0, 0] = 1.0
    f[1:, 0] = c
    f[1:, 1:len(ks) + 1] = np.diag(np.sqrt(1 - c**2))
    w = cosine_graph(f, tau=tau)
    cos = (f / np.linalg.norm(f, axis=1, keepdims=True)) @ (f[0] / np.linalg.norm(f[0]))
    np.testing.assert_array_equal(w[0, 1:], np.where(cos[1:] > tau, 1.0, 1e-5))
    assert (w[0, 1:] == 1.0).sum() == 5


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (3, 5), (7, 9), (16, 16), (13, 40)])
def test_nonzero_2d_matches_numpy(shape):
    g = np.random.default_rng(sum(shape))
    for density in (0.0, 0.05, 0.5, 1.0):
        m = g.random(shape) < density
        for a, b in zip(_nonzero_2d(m), np.nonzero(m)):
            np.testing.assert_array_equal(a, b)
