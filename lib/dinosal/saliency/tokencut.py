"""TokenCut (Wang et al., CVPR 2022): a normalised cut on the patch graph.

Input: patch features ``F`` (N, D) (by default the last block's keys without
CLS or register tokens), grid (rows, cols) row-major, ``N = rows * cols``.

1. L2-normalise each feature and take cosines ``C = F F^T`` (float64).
2. Graph: ``W_ij = 1`` if ``C_ij > tau`` else ``eps``, diagonal 1 (binary
   graph, the default). Ablation ``binary_graph=False``: ``W_ij = C_ij``
   where ``C_ij >= tau``, else ``eps``; diagonal 1.
3. ``d = W.sum(1)``, ``D = diag(d)``. ``v`` = the eigenvector of the
   second-smallest eigenvalue of ``(D - W) v = lambda D v``, normalised so
   that ``v^T D v = 1``.
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
is an eigenvector of the symmetric ``L_sym = I - D^-1/2 W D^-1/2``):

* ``"generalized"``: ``scipy.linalg.eigh(D - W, D, subset_by_index=[1, 2])``,
  the official dense O(N^3) call (kept as the reference);
* ``"dense"``: the second-smallest eigenpair of ``-S`` with
  ``S = D^-1/2 W D^-1/2 = I - L_sym`` by ``scipy.linalg.eigh(-S,
  subset_by_index=[1, 1], driver="evr")``: dense, but one standard problem;
* ``"lanczos"``: ARPACK (``scipy.sparse.linalg.eigsh``) on the operator
  ``S' = D^-1/2 W D^-1/2 - 3 u u^T`` with ``u = D^1/2 1 / |D^1/2 1|``, the
  known top eigenvector of ``S`` (eigenvalue 1) moved to -2, so the largest
  eigenpair of ``S'`` is the Fiedler pair; ``O(N^2)`` per step (about 20
  steps on DINO-like features), a fixed start vector (deterministic),
  converged to machine precision (``tol=0``); falls back to ``"dense"`` with
  a warning if ARPACK does not converge;
* ``"auto"``: ``"dense"`` for ``N <= 100`` (tiny problems, where ARPACK
  restarts cost more than a dense solve), otherwise ``"lanczos"``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.linalg
import scipy.sparse.linalg

from .grid import check_features, check_grid, check_image_size, mask_box, seed_component

__all__ = ["TokenCutResult", "tokencut", "cosine_graph", "fiedler_vector", "SOLVERS", "AUTO_DENSE_MAX_N"]

SOLVERS = ("auto", "generalized", "dense", "lanczos")
AUTO_DENSE_MAX_N = 100
SEED_RTOL = 1e-6


@dataclass(frozen=True)
class TokenCutResult:
    """TokenCut for one image. Maps are (rows, cols), row-major.

    seed: flat index of the seed patch (see the module docstring's tie rule)
    eigvec: (rows, cols) float64, the Fiedler vector with ``v^T D v = 1`` and
        the sign rule applied (``eigvec[seed] > 0``)
    eigenvalue: the second-smallest generalised eigenvalue lambda
    bipartition: (rows, cols) bool, ``eigvec > mean(eigvec)`` (holds the seed)
    mask: (rows, cols) bool, the seed's 4-connected component of the bipartition
    box: (4,) int64, xyxy px with exclusive max, clipped to ``image_size``
    solver: the solver that ran ("generalized", "dense" or "lanczos")
    grid, patch, image_size: the geometry used ((rows, cols), px, (H, W))
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

    @property
    def seed_rc(self) -> tuple[int, int]:
        """The seed as (row, col)."""
        return divmod(self.seed, self.grid[1])


def cosine_graph(feats, tau: float = 0.2, eps: float = 1e-5, binary_graph: bool = True) -> np.ndarray:
    """TokenCut's affinity matrix W (N, N) float64 from features (N, D).

    binary: ``W_ij = 1 if cos_ij > tau else eps``; ``binary_graph=False``:
    ``W_ij = cos_ij if cos_ij >= tau else eps``. The diagonal is 1 in both.
    """
    if not eps > 0:
        raise ValueError(f"eps must be > 0 (keeps the graph connected), got eps={eps}")
    f = check_features(feats)
    norms = np.linalg.norm(f, axis=1)
    if (norms == 0).any():
        raise ValueError(f"feats has {int((norms == 0).sum())} all-zero tokens; cosine undefined")
    f = f / norms[:, None]
    cos = f @ f.T
    if binary_graph:
        w = np.where(cos > tau, 1.0, eps)
    else:
        w = np.where(cos >= tau, cos, eps)
    np.fill_diagonal(w, 1.0)
    return w


def fiedler_vector(w: np.ndarray, solver: str = "auto") -> tuple[float, np.ndarray, str]:
    """Second-smallest generalised eigenpair of ``(D - W) v = lambda D v``.

    w: (N, N) symmetric, non-negative, positive row sums.
    Returns ``(lambda, v, solver_used)`` with ``v`` (N,) float64 normalised to
    ``v^T D v = 1``; the sign is whatever the solver returned (apply the sign
    rule afterwards).
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    n = w.shape[0]
    if n < 3:
        raise ValueError(f"need at least 3 patches for a Fiedler vector, got N={n}")
    d = w.sum(axis=1)
    if solver == "auto":
        solver = "dense" if n <= AUTO_DENSE_MAX_N else "lanczos"
    if solver == "generalized":
        vals, vecs = scipy.linalg.eigh(np.diag(d) - w, np.diag(d), subset_by_index=[1, 2])
        return float(vals[0]), vecs[:, 0].copy(), solver
    inv_sqrt = 1.0 / np.sqrt(d)
    s = w * inv_sqrt[:, None] * inv_sqrt[None, :]
    if solver == "lanczos":
        try:
            mu, y = _lanczos_second(s, d)
        except scipy.sparse.linalg.ArpackNoConvergence:
            warnings.warn("Lanczos (ARPACK) did not converge; falling back to the dense solver")
            solver = "dense"
    if solver == "dense":
        vals, vecs = scipy.linalg.eigh(-s, subset_by_index=[1, 1], driver="evr")
        mu, y = -float(vals[0]), vecs[:, 0]
    y = y / np.linalg.norm(y)
    return 1.0 - mu, y * inv_sqrt, solver


def _lanczos_second(s: np.ndarray, d: np.ndarray) -> tuple[float, np.ndarray]:
    """Second-largest eigenpair of ``S`` by ARPACK on the deflated operator."""
    u = np.sqrt(d)
    u /= np.linalg.norm(u)

    def matvec(x):
        x = np.asarray(x).reshape(-1)
        return s @ x - 3.0 * u * (u @ x)

    n = s.shape[0]
    op = scipy.sparse.linalg.LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(n)
    vals, vecs = scipy.sparse.linalg.eigsh(op, k=1, which="LA", v0=v0, ncv=min(n, 16), tol=0.0)
    return float(vals[0]), vecs[:, 0]


def _seed_and_sign(v: np.ndarray) -> tuple[int, np.ndarray]:
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
    Returns :class:`TokenCutResult`.
    """
    f = check_features(feats)
    rows, cols = check_grid(grid, f.shape[0])
    h, w_px = check_image_size(image_size, (rows, cols), patch)
    w = cosine_graph(f, tau=tau, eps=eps, binary_graph=binary_graph)
    lam, v, used = fiedler_vector(w, solver=solver)
    seed, v = _seed_and_sign(v)
    bip = (v > v.mean()).reshape(rows, cols)
    mask = seed_component(bip, seed)
    return TokenCutResult(
        seed=seed,
        eigvec=v.reshape(rows, cols),
        eigenvalue=lam,
        bipartition=bip,
        mask=mask,
        box=mask_box(mask, patch, (h, w_px)),
        solver=used,
        grid=(rows, cols),
        patch=int(patch),
        image_size=(h, w_px),
    )
