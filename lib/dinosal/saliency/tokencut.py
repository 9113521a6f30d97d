"""TokenCut (Wang et al., CVPR 2022): a normalised cut on the patch graph.

Input: patch features ``F`` (N, D) (by default the last block's keys without
CLS or register tokens), grid (rows, cols) row-major, ``N = rows * cols``.

1. L2-normalise each feature and take cosines ``C = F F^T``. Binary graph:
   a float32 Gram matrix, with every entry within its rounding bound of
   ``tau`` recomputed in float64, so the edges are those of float64 cosines
   (:func:`_edges`); ablation: float64.
2. Graph: ``W_ij = 1`` if ``C_ij > tau`` else ``eps``, diagonal 1 (binary
   graph, the default). Ablation ``binary_graph=False``: ``W_ij = C_ij``
   where ``C_ij >= tau``, else ``eps``; diagonal 1.
3. ``d = W.sum(1)``, ``D = diag(d)``. ``v`` = the eigenvector of the
   second-smallest eigenvalue ``lambda_1`` of ``(D - W) v = lambda D v``
   (the smallest, ``lambda_0 = 0``, belongs to the constant vector),
   normalised so that ``v^T D v = 1``. If that eigenvalue is (nearly)
   multiple, see "Degenerate cuts" below.
4. Seed = ``argmax |v|``. Tie rule: the lowest index among the entries with
   ``|v_i| >= (1 - 1e-6) * max|v|`` (ties are common: patches with identical
   graph neighbourhoods get identical ``|v|``; the official ``np.argmax``
   leaves the choice to float rounding).
5. Sign rule: ``v`` is flipped so that ``v[seed] > 0``. Bipartition:
   ``v > mean(v)``, which then contains the seed. (The official code
   thresholds the raw LAPACK vector and negates the bipartition, so entries
   exactly equal to the mean may fall on the other side; nothing else
   differs.)
6. Mask = the seed's 4-connected component of the bipartition; box = its
   bounding box times the patch, clipped to the unpadded image (as LOST).

Solvers (all give the same ``v`` up to round-off; ``v = D^-1/2 y`` where ``y``
is a unit eigenvector of ``S = D^-1/2 W D^-1/2 = I - L_sym``, eigenvalue
``1 - lambda``; ``u = D^1/2 1 / |D^1/2 1|`` is the trivial one, eigenvalue 1):

* ``"generalized"``: ``scipy.linalg.eigh(D - W, D, subset_by_index=[1, 2])``,
  the official dense O(N^3) call (kept as the reference);
* ``"dense"``: the same eigenpairs of the standard problem ``-S`` by
  ``scipy.linalg.eigh(-S, subset_by_index=[1, 2], driver="evr")``;
* ``"lanczos"``: block Lanczos on ``S`` restricted to the complement of
  ``u`` (:func:`_lanczos_second`): a Krylov basis grown by ``KRYLOV_BLOCK``
  = 2 vectors per step, ``S x = d^-1/2 * (W @ (d^-1/2 * x))`` (``O(N^2)``,
  about 11 steps on DINO-like features; ``S`` is never formed), kept
  orthogonal to ``u`` and to itself (two Gram-Schmidt passes), with
  Rayleigh-Ritz after every step.
  It stops when the Ritz pairs of the smallest eigenvalue's cluster have
  residuals ``|S y - mu y| <= max(1e-10 * gap, 1e-13)`` (``gap``: the
  distance from the cluster to the next Ritz value; ``v`` is then accurate to
  about 1e-10) and the next pair, whose eigenvalue only is used, has
  ``<= max(1e-3 * gap, 1e-13)``; or when the basis spans an invariant
  subspace (the Ritz pairs are then exact). Falls back to ``"dense"`` with a
  warning if the basis reaches ``KRYLOV_MAX_DIM`` = 400 vectors first;
* ``"auto"``: ``"dense"`` for ``N <= 200`` (small problems, where it is as
  fast or faster: measured crossover about N = 200 on 2 cores), otherwise
  ``"lanczos"``.

Determinism. Every solver is a fixed sequence of floating-point operations:
identical input gives bit-identical output on one machine and thread count.
The Lanczos start block is fixed: ``KRYLOV_BLOCK`` columns of
``numpy.random.default_rng(KRYLOV_SEED=0).standard_normal``, projected off
``u``. (A constant start would be useless: it is the trivial eigenvector
``D^-1/2 u`` itself. A pseudo-random block has a component on every
eigenvector, so no eigenvalue is missed, and a block of two sees two copies
of a multiple eigenvalue, which a single start vector cannot: in exact
arithmetic its Krylov space holds one vector of each eigenspace.) ARPACK (``scipy.sparse.linalg.eigsh``), which the
library used before, is not used: when its Krylov space becomes invariant,
as on structureless graphs, it restarts from a random vector drawn from its
own internal state, so identical calls returned different vectors.

Degenerate cuts. With ``lambda_1 <= lambda_2`` the two smallest non-trivial
eigenvalues, the result reports ``eigengap = lambda_2 - lambda_1`` and is
*degenerate* when ``eigengap <= GAP_RTOL * lambda_1 + GAP_ATOL`` (1e-6
relative, 1e-12 absolute: eigenvalues lie in [0, 2] and every solver gets
them to about 1e-15). Then the Fiedler vector is not unique: any unit vector
of the eigenspace ``E`` of the cluster ``{lambda_j : lambda_j - lambda_1 <=
GAP_RTOL * lambda_1 + GAP_ATOL}`` (size ``multiplicity``) is one, and each
solver returns whatever basis its algorithm produced. The deterministic
choice (the same for every solver): ``v`` = the unit (``v^T D v = 1``)
vector of ``E`` with the **largest entry at the anchor patch** ``t``, the
lowest flat index whose projection on ``E`` is not zero (norm of row ``t`` of
an orthonormal basis of ``E`` in ``y`` coordinates ``> CANON_RTOL = 1e-6``
times the largest row norm). It is ``P_E e_t`` (the ``D``-orthogonal
projection of the indicator of patch ``t``), normalised; it does not depend
on the basis a solver returned. Steps 4-6 then run as usual. Examples: on
constant features (a uniform image) ``W`` is constant, ``E`` is everything
orthogonal to the constant vector, ``t = 0`` and the mask is the single
top-left patch; with three equal, mutually dissimilar stripes the mask is the
stripe holding patch 0. A degenerate result has ``degenerate=True`` and
``tokencut`` / :func:`fiedler_vector` emit :class:`DegenerateCutWarning`. The
dense solvers first make the official call (eigenpairs 1 and 2); only when
these two form a cluster do they size it from all eigenvalues and compute
its eigenvectors (or, when it holds more than half the spectrum, the others':
``P_E = I - u u^T - (others)``). The Lanczos solver detects the cluster (its
two start vectors find two copies) and hands it to ``"dense"`` (an
``O(N^3)`` solve, reported as ``solver="dense"``); degenerate graphs are
rare in practice.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import scipy.linalg

from .grid import check_features, check_grid, check_image_size, mask_box, seed_component

__all__ = [
    "TokenCutResult", "tokencut", "cosine_graph", "fiedler_vector", "fiedler", "FiedlerPair",
    "DegenerateCutWarning", "seed_and_sign", "SOLVERS", "AUTO_DENSE_MAX_N",
]

SOLVERS = ("auto", "generalized", "dense", "lanczos")
AUTO_DENSE_MAX_N = 200
SEED_RTOL = 1e-6
GAP_RTOL = 1e-6
GAP_ATOL = 1e-12
CANON_RTOL = 1e-6
KRYLOV_BLOCK = 2
KRYLOV_SEED = 0
KRYLOV_RTOL = 1e-10
KRYLOV_ATOL = 1e-13
KRYLOV_NEXT_RTOL = 1e-3
KRYLOV_DROP = 1e-14
KRYLOV_MAX_DIM = 400


class DegenerateCutWarning(UserWarning):
    """The smallest non-trivial eigenvalue of TokenCut's graph is (nearly) multiple.

    The Fiedler vector is then not unique; TokenCut returns the documented
    canonical vector of the eigenspace (module docstring, "Degenerate cuts"),
    and the box says nothing about an object.
    """


@dataclass(frozen=True)
class FiedlerPair:
    """The Fiedler pair of ``(D - W) v = lambda D v`` and how it was found.

    value: lambda_1, the second-smallest generalised eigenvalue
    vector: (N,) float64 ``v`` with ``v^T D v = 1`` and ``v^T D 1 = 0``; the
        sign is the solver's (TokenCut's sign rule comes later); if
        degenerate, the canonical vector of the cluster's eigenspace
    solver: the solver that ran ("generalized", "dense" or "lanczos")
    eigengap: lambda_2 - lambda_1 (the next eigenvalue, which may lie in the
        cluster), >= 0 up to round-off
    multiplicity: number of eigenvalues in lambda_1's cluster (1: unique)
    anchor: the patch t of the canonical choice, None when unique
    """

    value: float
    vector: np.ndarray
    solver: str
    eigengap: float
    multiplicity: int
    anchor: Optional[int]

    @property
    def degenerate(self) -> bool:
        """True when the Fiedler vector is not unique (``multiplicity > 1``)."""
        return self.multiplicity > 1


@dataclass(frozen=True)
class TokenCutResult:
    """TokenCut for one image. Maps are (rows, cols), row-major.

    seed: flat index of the seed patch (see the module docstring's tie rule)
    eigvec: (rows, cols) float64, the Fiedler vector with ``v^T D v = 1`` and
        the sign rule applied (``eigvec[seed] > 0``)
    eigenvalue: the second-smallest generalised eigenvalue lambda_1
    bipartition: (rows, cols) bool, ``eigvec > mean(eigvec)`` (holds the seed)
    mask: (rows, cols) bool, the seed's 4-connected component of the bipartition
    box: (4,) int64, xyxy px with exclusive max, clipped to ``image_size``
    solver: the solver that ran ("generalized", "dense" or "lanczos")
    grid, patch, image_size: the geometry used ((rows, cols), px, (H, W))
    degenerate: the Fiedler vector is not unique (a cluster of eigenvalues at
        lambda_1, see the module docstring); ``eigvec`` is then the canonical
        vector and the box is arbitrary
    eigengap: lambda_2 - lambda_1, the third minus the second-smallest eigenvalue
    multiplicity: number of eigenvalues in lambda_1's cluster (1 unless degenerate)
    """

    seed: int
    eigvec: np.ndarray
    eigenvalue: float
    bipartition: np.ndarray
    mask: np.ndarray
    box: np.ndarray
    solver: str
    grid: tuple[int, int]
    patch: int
    image_size: tuple[int, int]
    degenerate: bool = False
    eigengap: float = float("nan")
    multiplicity: int = 1

    @property
    def seed_rc(self) -> tuple[int, int]:
        """The seed as (row, col)."""
        return divmod(self.seed, self.grid[1])


def _nonzero_2d(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a sparse C-contiguous 2-D bool array, scanning 8 bytes at a time."""
    flat = mask.reshape(-1)
    k = flat.size // 8 * 8
    words = np.flatnonzero(flat[:k].view(np.uint64))
    idx = (words[:, None] * 8 + np.arange(8)).ravel()
    idx = np.concatenate([idx[flat[idx]], k + np.flatnonzero(flat[k:])])
    return np.divmod(idx, mask.shape[1])


def _edges(f: np.ndarray, tau: float) -> np.ndarray:
    """(N, N) bool ``cos_ij > tau`` for unit rows ``f`` (N, D) float64, decided as in float64.

    The Gram matrix is computed in float32 (half the time and memory of
    float64). With ``u = 2^-24``, its entries are within ``(D + 3) u`` of the
    exact cosines (the dot-product error bound ``gamma_D sum|x_k y_k|``,
    ``gamma_D = D u / (1 - D u)``, for unit vectors, plus ``2u`` for rounding
    the inputs to float32); ``delta = (D + 8) u`` also covers the rounding of
    ``tau +- delta`` to float32 (``|tau| <= 1``). The pairs with
    ``|c_ij - tau| <= delta`` (about 1e-4 of them for D = 384) are recomputed
    in float64 (Higham, Accuracy and Stability of Numerical Algorithms, 3.1).
    """
    f32 = f.astype(np.float32)
    c = f32 @ f32.T
    delta = (f.shape[1] + 8) * 2.0**-24
    edge = c > tau + delta
    band = c > tau - delta
    del c
    band &= ~edge
    i, j = _nonzero_2d(band)
    if i.size:
        edge[i, j] = np.einsum("ij,ij->i", f[i], f[j]) > tau
    np.fill_diagonal(edge, True)
    return edge


def _graph(feats, tau: float, eps: float, binary_graph: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(W, d)``: TokenCut's affinity (N, N) and its row sums (N,), float64.

    Binary graph: the edges come from :func:`_edges` (float32 Gram matrix,
    float64 decisions near ``tau``) and ``d_i = n_i + eps (N - n_i)`` with
    ``n_i`` the edge count of row ``i`` (diagonal included). Ablation: float64
    cosines, built in place, ``d = W.sum(1)``.
    """
    if not eps > 0:
        raise ValueError(f"eps must be > 0 (keeps the graph connected), got eps={eps}")
    f = check_features(feats)
    norms = np.linalg.norm(f, axis=1)
    if (norms == 0).any():
        raise ValueError(f"feats has {int((norms == 0).sum())} all-zero tokens; cosine undefined")
    f = f / norms[:, None]
    if binary_graph:
        edge = _edges(f, tau)
        count = np.count_nonzero(edge, axis=1)
        return np.where(edge, 1.0, eps), count + eps * (len(f) - count)
    w = f @ f.T
    np.copyto(w, eps, where=~(w >= tau))
    np.fill_diagonal(w, 1.0)
    return w, w.sum(axis=1)


def cosine_graph(feats, tau: float = 0.2, eps: float = 1e-5, binary_graph: bool = True) -> np.ndarray:
    """TokenCut's affinity matrix W (N, N) float64 from features (N, D).

    binary: ``W_ij = 1 if cos_ij > tau else eps``; ``binary_graph=False``:
    ``W_ij = cos_ij if cos_ij >= tau else eps``. The diagonal is 1 in both.
    ``ValueError`` for ``eps <= 0`` or an all-zero token.
    """
    return _graph(feats, tau, eps, binary_graph)[0]


def _cluster_size(lam: np.ndarray) -> int:
    """How many of the ascending eigenvalues ``lam`` lie in ``lam[0]``'s cluster."""
    return int(np.count_nonzero(lam - lam[0] <= GAP_RTOL * abs(lam[0]) + GAP_ATOL))


def _anchor(rows: np.ndarray) -> int:
    """The anchor patch: the lowest index with ``rows[t] > CANON_RTOL * max(rows)``."""
    return int(np.flatnonzero(rows > CANON_RTOL * rows.max())[0])


def _canonical(y: np.ndarray) -> tuple[np.ndarray, Optional[int]]:
    """The unit vector of ``E = span(y)`` with the largest entry at the anchor patch.

    y: (N, m) orthonormal columns (``y`` coordinates). For m == 1 returns
    ``(y[:, 0], None)``; otherwise ``(P e_t / |P e_t|, t)`` with ``P = y y^T``
    the projector on ``E`` and ``t`` the anchor of the row norms of ``y``
    (``|P e_t|``; module docstring, "Degenerate cuts"). Basis-independent.
    """
    if y.shape[1] == 1:
        return y[:, 0], None
    t = _anchor(np.linalg.norm(y, axis=1))
    z = y @ y[t]
    return z / np.linalg.norm(z), t


def _canonical_complement(u: np.ndarray, rest: np.ndarray) -> tuple[np.ndarray, int]:
    """As :func:`_canonical` for ``E`` = the orthogonal complement of ``[u, rest]``.

    u: (N,) unit; rest: (N, r) orthonormal columns orthogonal to ``u``. Used
    when ``E`` is large (on constant features ``rest`` is empty):
    ``P = I - u u^T - rest rest^T``.
    """
    t = _anchor(np.sqrt(np.maximum(1.0 - u**2 - (rest**2).sum(axis=1), 0.0)))
    z = -u * u[t] - rest @ rest[t]
    z[t] += 1.0
    return z / np.linalg.norm(z), t


def _dense_eigh(w: np.ndarray, d: np.ndarray, solver: str, lo: int, hi: int, values_only: bool = False):
    """Eigenpairs ``lo..hi`` (ascending lambda; index 0 is the trivial one) by LAPACK.

    Returns ``lam`` (k,) when ``values_only``, else ``(lam, y)`` with ``y``
    (N, k) orthonormal in ``y`` coordinates (``y = D^1/2 v``).
    "generalized": ``eigh(D - W, D)``; "dense": ``eigh(-S)``, ``lam = 1 + eig``.
    """
    sqrt_d = np.sqrt(d)
    if solver == "generalized":
        out = scipy.linalg.eigh(np.diag(d) - w, np.diag(d), subset_by_index=[lo, hi], eigvals_only=values_only)
        return out if values_only else (out[0], out[1] * sqrt_d[:, None])
    s = w / np.outer(sqrt_d, sqrt_d)
    np.negative(s, out=s)
    out = scipy.linalg.eigh(s, subset_by_index=[lo, hi], driver="evr", eigvals_only=values_only)
    return 1.0 + out if values_only else (1.0 + out[0], out[1])


def _dense_fiedler(w: np.ndarray, d: np.ndarray, solver: str) -> tuple[float, float, int, np.ndarray, Optional[int]]:
    """Dense Fiedler pair: ``(lambda_1, lambda_2, multiplicity, y, anchor)``.

    First the official call (eigenpairs 1 and 2). Only if they form a cluster:
    all eigenvalues (values only) to size it, then the cluster's eigenpairs,
    or, when it holds more than half of them, the others' (:func:`_canonical_complement`).
    """
    n = len(d)
    lam, y = _dense_eigh(w, d, solver, 1, 2)
    if _cluster_size(lam) == 1:
        return float(lam[0]), float(lam[1]), 1, y[:, 0], None
    size = _cluster_size(_dense_eigh(w, d, solver, 1, n - 1, values_only=True))
    if 2 * size <= n - 1:
        if size > 2:
            y = _dense_eigh(w, d, solver, 1, size)[1]
        vec, anchor = _canonical(y[:, :size])
    else:
        u = np.sqrt(d) / np.linalg.norm(np.sqrt(d))
        rest = _dense_eigh(w, d, solver, size + 1, n - 1)[1] if size < n - 1 else np.empty((n, 0))
        vec, anchor = _canonical_complement(u, rest)
    return float(lam[0]), float(lam[1]), size, vec, anchor


def _orthonormalise(z: np.ndarray, basis: np.ndarray) -> Optional[np.ndarray]:
    """Columns of ``z`` orthogonal to ``basis`` (orthonormal columns) and to each other, unit norm.

    Two classical Gram-Schmidt passes per column; a column whose remainder
    has norm ``<= KRYLOV_DROP`` (absolute: every column here has norm <= 1)
    lies in the span already and is dropped. ``None`` if none is left.
    """
    out = []
    for j in range(z.shape[1]):
        x = z[:, j].copy()
        for _ in range(2):
            x -= basis @ (basis.T @ x)
            for q in out:
                x -= q * (q @ x)
        nx = np.sqrt(x @ x)
        if nx > KRYLOV_DROP:
            out.append(x / nx)
    return np.column_stack(out) if out else None


class _NoConvergence(RuntimeError):
    pass


def _lanczos_second(w: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Block Lanczos for the Fiedler cluster of ``S = D^-1/2 W D^-1/2``.

    w: (N, N) affinity, d: (N,) its row sums. Works on the complement of the
    trivial eigenvector ``u = D^1/2 1 / |D^1/2 1|``. Start block: the fixed
    ``KRYLOV_BLOCK`` Gaussian columns of seed ``KRYLOV_SEED``. Each step
    multiplies the newest block by ``S`` (``r * (W @ (r * q))``, ``r =
    d^-1/2``, one matrix-vector product per column: faster than one skinny
    matrix product in OpenBLAS), orthonormalises the products against ``u``
    and the basis, and does Rayleigh-Ritz on the whole basis.
    Returns ``(lam, y, complete)``: ascending ``lam = 1 - mu`` (p,) and unit
    Ritz vectors (N, p) for lambda_1's cluster plus the next pair when the
    basis has one; ``complete`` is False when the cluster may hold more
    eigenvalues than the block could see (size ``>= KRYLOV_BLOCK`` in a
    basis short of the whole complement). Raises ``_NoConvergence`` past
    ``KRYLOV_MAX_DIM`` basis vectors.
    """
    n = len(d)
    r = 1.0 / np.sqrt(d)
    cap = min(n - 1, KRYLOV_MAX_DIM)
    basis = np.empty((n, 1 + cap + KRYLOV_BLOCK))       # column 0: u, then the Krylov vectors
    basis[:, 0] = np.sqrt(d) / np.sqrt(d.sum())
    aqbuf = np.empty((n, cap + KRYLOV_BLOCK))
    t = np.empty((cap + KRYLOV_BLOCK,) * 2)
    start = np.random.default_rng(KRYLOV_SEED).standard_normal((n, KRYLOV_BLOCK))
    q = _orthonormalise(start, basis[:, :1])
    m = 0
    while True:
        b = q.shape[1]
        for j in range(b):
            aqbuf[:, m + j] = r * (w @ (r * q[:, j]))
        basis[:, 1 + m:1 + m + b] = q
        qm, aq = basis[:, 1:1 + m + b], aqbuf[:, m:m + b]
        t[:m + b, m:m + b] = qm.T @ aq
        t[m:m + b, :m] = t[:m, m:m + b].T
        m += b
        mu, c = np.linalg.eigh((t[:m, :m] + t[:m, :m].T) / 2)
        lam, c = 1.0 - mu[::-1], c[:, ::-1]
        size = _cluster_size(lam)
        p = min(size + 1, m)
        y = qm @ c[:, :p]
        res = np.linalg.norm(aqbuf[:, :m] @ c[:, :p] - y * (1.0 - lam[:p]), axis=0)
        gap = lam[size] - lam[size - 1] if size < m else 0.0
        converged = p == size + 1 and bool((res[:size] <= max(KRYLOV_RTOL * gap, KRYLOV_ATOL)).all()
                                           and res[size] <= max(KRYLOV_NEXT_RTOL * gap, KRYLOV_ATOL))
        q = None if converged or m >= n - 1 else _orthonormalise(aq, basis[:, :1 + m])
        if q is None:                      # converged, or the basis spans an invariant subspace
            return lam[:p], y, m >= n - 1 or size < KRYLOV_BLOCK
        if m >= cap:
            raise _NoConvergence(f"block Lanczos: no convergence in {m} basis vectors (residuals {res})")


def fiedler(w: np.ndarray, solver: str = "auto", d: Optional[np.ndarray] = None) -> FiedlerPair:
    """The Fiedler pair of ``(D - W) v = lambda D v``, with degeneracy detection.

    w: (N, N) symmetric, non-negative, positive row sums; d: its row sums
    (computed when None). solver: one of ``SOLVERS`` (module docstring).
    Returns :class:`FiedlerPair`; when degenerate, the vector is the
    canonical one of the module docstring ("Degenerate cuts"), the same for
    every solver. No warning here (see :func:`fiedler_vector`, :func:`tokencut`).
    ``ValueError`` for an unknown solver or N < 3.
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    n = w.shape[0]
    if n < 3:
        raise ValueError(f"need at least 3 patches for a Fiedler vector, got N={n}")
    if d is None:
        d = w.sum(axis=1)
    if solver == "auto":
        solver = "dense" if n <= AUTO_DENSE_MAX_N else "lanczos"
    if solver == "lanczos":
        try:
            lam, y, complete = _lanczos_second(w, d)
        except _NoConvergence:
            warnings.warn("block Lanczos did not converge; falling back to the dense solver")
            solver = "dense"
        else:
            if complete:
                size = _cluster_size(lam)
                vec, anchor = _canonical(y[:, :size])
                return FiedlerPair(float(lam[0]), vec / np.sqrt(d), solver, float(lam[1] - lam[0]), size, anchor)
            solver = "dense"               # a cluster as large as the block: solve it densely
    lam1, lam2, size, vec, anchor = _dense_fiedler(w, d, solver)
    return FiedlerPair(lam1, vec / np.sqrt(d), solver, lam2 - lam1, size, anchor)


def _warn_degenerate(pair: FiedlerPair, stacklevel: int) -> None:
    warnings.warn(
        f"TokenCut: degenerate cut, {pair.multiplicity} eigenvalues within tolerance of lambda_1 = "
        f"{pair.value:.6g} (eigengap {pair.eigengap:.3g}); the Fiedler vector is not unique, returning the "
        f"canonical one (largest entry at patch {pair.anchor}); the box is arbitrary",
        DegenerateCutWarning, stacklevel=stacklevel + 1,
    )


def fiedler_vector(w: np.ndarray, solver: str = "auto") -> tuple[float, np.ndarray, str]:
    """Second-smallest generalised eigenpair of ``(D - W) v = lambda D v``.

    w: (N, N) symmetric, non-negative, positive row sums.
    Returns ``(lambda, v, solver_used)`` with ``v`` (N,) float64 normalised to
    ``v^T D v = 1``; the sign is whatever the solver returned (apply the sign
    rule afterwards). Emits :class:`DegenerateCutWarning` when the eigenvalue
    is (nearly) multiple; ``v`` is then the canonical vector. See
    :func:`fiedler` for the gap and multiplicity.
    """
    pair = fiedler(w, solver)
    if pair.degenerate:
        _warn_degenerate(pair, stacklevel=2)
    return pair.value, pair.vector, pair.solver


def seed_and_sign(v: np.ndarray) -> tuple[int, np.ndarray]:
    """TokenCut's seed and sign rule (``object_discovery.py``: the patch of
    largest absolute eigenvector entry is the foreground seed, and the
    vector is flipped so that the seed is positive). ``v``: ``(N,)``;
    returns ``(seed index, signed copy of v)``. Ties, entries within a
    relative ``SEED_RTOL`` of the largest, go to the lowest index (the
    official ``argmax`` gives no such guarantee once values are rounded)."""
    a = np.abs(v)
    seed = int(np.flatnonzero(a >= (1.0 - SEED_RTOL) * a.max())[0])
    return seed, (v if v[seed] > 0 else -v)


def tokencut(
    feats,
    grid: Sequence[int],
    patch: int,
    image_size: Sequence[int],
    tau: float = 0.2,
    eps: float = 1e-5,
    solver: str = "auto",
    binary_graph: bool = True,
) -> TokenCutResult:
    """Run TokenCut on the patch features of one image.

    feats: (N, D) patch features, no CLS/register tokens ((1, N, D) accepted).
    grid: (rows, cols), rows * cols == N.
    patch: patch size in px; image_size: (H, W) before padding.
    tau, eps: graph threshold and weight of non-edges (official 0.2, 1e-5).
    solver: see the module docstring; binary_graph=False is the ablation.
    Returns :class:`TokenCutResult`; emits :class:`DegenerateCutWarning` when
    the Fiedler vector is not unique (``result.degenerate``).
    """
    f = check_features(feats)
    rows, cols = check_grid(grid, f.shape[0])
    h, w_px = check_image_size(image_size, (rows, cols), patch)
    w, d = _graph(f, tau, eps, binary_graph)
    pair = fiedler(w, solver=solver, d=d)
    del w
    if pair.degenerate:
        _warn_degenerate(pair, stacklevel=2)
    seed, v = seed_and_sign(pair.vector)
    bip = (v > v.mean()).reshape(rows, cols)
    mask = seed_component(bip, seed)
    return TokenCutResult(
        seed=seed,
        eigvec=v.reshape(rows, cols),
        eigenvalue=pair.value,
        bipartition=bip,
        mask=mask,
        box=mask_box(mask, patch, (h, w_px)),
        solver=pair.solver,
        grid=(rows, cols),
        patch=int(patch),
        image_size=(h, w_px),
        degenerate=pair.degenerate,
        eigengap=pair.eigengap,
        multiplicity=pair.multiplicity,
    )
