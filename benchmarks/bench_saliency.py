"""Speed of TokenCut and LOST against same-run baselines.

TokenCut: the official dense generalised solve ``scipy.linalg.eigh(D - W, D,
subset_by_index=[1, 2])`` (``solver="generalized"``) against ``solver="auto"``
(dense symmetric for N <= 200, block Lanczos on the normalised operator
otherwise); the whole ``tokencut()`` call is timed (graph included, the same
graph code for both). Agreement: the same bipartition, seed, box and
degeneracy flag, eigenvectors within 1e-8 of each other (relative to their
largest entry), and two candidate calls bit-identical. The time of the graph
alone (cosines, threshold, degrees) is printed too: it is the floor of any
solver.
LOST: a straightforward reference (numpy similarity, Python loops for degree,
order, seed expansion and a BFS flood fill) against ``lost()``; seed, mask
and box must agree.

Features have a realistic structure: a spatial layout of an object, a second
object and two background regions, each with its own centre, plus a common
offset and Gaussian noise, D = 384. Grids 14x14, 28x28, 60x60 (N = 196, 784,
3600; the last is a 480-px image with patch 8).

Run:  python benchmarks/bench_saliency.py [--threads 2] [--repeats 5]
Do not time while other heavy jobs run (the load average is printed).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections import deque

import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from dinosal.saliency.lost import lost
from dinosal.saliency.tokencut import cosine_graph, tokencut


def layout_features(side: int, dim: int = 384, seed: int = 0) -> np.ndarray:
    """(side*side, dim) float32 features with a spatial cluster layout."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side] / side
    label = np.where(yy < 0.3, 1, 2)                                    # sky / ground
    label[((yy - 0.55) / 0.22) ** 2 + ((xx - 0.45) / 0.18) ** 2 < 1] = 3  # main object
    label[(yy > 0.7) & (yy < 0.85) & (xx > 0.75) & (xx < 0.9)] = 4      # small object
    centres = g.standard_normal((5, dim))
    offset = 0.6 * g.standard_normal(dim)
    f = offset + centres[label.ravel()] + 1.2 * g.standard_normal((side * side, dim))
    return f.astype(np.float32)


def reference_lost(f: np.ndarray, side: int, patch: int, k: int):
    """Straightforward LOST: numpy similarity, Python loops for the rest."""
    a = f.astype(np.float64) @ f.astype(np.float64).T
    n = len(f)
    deg = [int((a[i] > 0).sum()) - int(a[i, i] > 0) for i in range(n)]
    order = sorted(range(n), key=lambda i: (deg[i], i))
    seed = order[0]
    sims = [q for q in order[:k] if a[seed, q] > 0]
    m = np.zeros(n)
    for q in sims:
        m += a[q]
    comp, todo = {seed}, deque([seed])
    while todo:
        r, c = divmod(todo.popleft(), side)
        for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            j = rr * side + cc
            if 0 <= rr < side and 0 <= cc < side and j not in comp and m[j] > 0:
                comp.add(j)
                todo.append(j)
    rs, cs = [i // side for i in comp], [i % side for i in comp]
    box = [min(cs) * patch, min(rs) * patch, (max(cs) + 1) * patch, (max(rs) + 1) * patch]
    mask = np.zeros(n, bool)
    mask[list(comp)] = True
    return seed, mask, box


def timed(fn, repeats: int):
    out, times = None, []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5, help="repeats per timing (N=3600 baseline: 1)")
    ap.add_argument("--patch", type=int, default=8)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    with threadpool_limits(args.threads):
        libs = ", ".join(f"{i['internal_api']}={i['num_threads']}" for i in threadpool_info())
        print(f"python {platform.python_version()}, torch {torch.__version__}, torch threads "
              f"{torch.get_num_threads()}, BLAS/OpenMP pools: {libs}")
        load = os.getloadavg()
        print(f"cpu count {os.cpu_count()}, load average {load}")
        if load[0] > 0.5 * (os.cpu_count() or 1):
            print("WARNING: other jobs are running; timings (not the agreement checks) are unreliable")
        rows, floors = [], []
        for side in (14, 28, 60):
            n, p = side * side, args.patch
            f = layout_features(side)
            size = (side * p, side * p)
            reps = args.repeats if n < 3600 else max(1, args.repeats // 5)
            tokencut(f, (side, side), p, size)                      # warm-up (imports, caches)
            base, t_base = timed(lambda: tokencut(f, (side, side), p, size, solver="generalized"), reps)
            cand, t_cand = timed(lambda: tokencut(f, (side, side), p, size, solver="auto"), args.repeats)
            again = tokencut(f, (side, side), p, size, solver="auto")
            scale = np.abs(base.eigvec).max()
            agree = (np.array_equal(base.bipartition, cand.bipartition) and base.seed == cand.seed
                     and base.box.tolist() == cand.box.tolist() and base.degenerate == cand.degenerate
                     and np.abs(base.eigvec - cand.eigvec).max() <= 1e-8 * scale
                     and again.eigvec.tobytes() == cand.eigvec.tobytes())
            rows.append(("TokenCut", n, "dense generalized eigh", t_base, f"auto ({cand.solver})", t_cand, agree))
            _, t_graph = timed(lambda: cosine_graph(f), args.repeats)
            floors.append((n, t_graph, t_cand, cand.eigengap, cand.degenerate))

            k = 100
            ref, t_ref = timed(lambda: reference_lost(f, side, p, k), reps)
            mine, t_mine = timed(lambda: lost(f, (side, side), p, size, k=k), args.repeats)
            agree = (ref[0] == mine.seed and np.array_equal(ref[1], mine.mask.ravel())
                     and ref[2] == mine.box.tolist())
            rows.append(("LOST", n, "numpy + python loops", t_ref, "dinosal lost", t_mine, agree))
        print()
        print(f"{'method':9s} {'N':>5s}  {'baseline':24s} {'time s':>8s}  {'candidate':18s} {'time s':>8s} "
              f"{'ratio':>7s}  same result")
        for m, n, bname, tb, cname, tc, ok in rows:
            print(f"{m:9s} {n:5d}  {bname:24s} {tb:8.4f}  {cname:18s} {tc:8.4f} {tb / tc:7.1f}x  {ok}")
        print("\nTokenCut graph alone (cosine_graph: similarity, threshold) vs the whole auto call:")
        for n, tg, tc, gap, degenerate in floors:
            print(f"  N {n:5d}  graph {tg:8.4f} s = {100 * tg / tc:3.0f}% of {tc:.4f} s  "
                  f"(eigengap {gap:.3g}, degenerate {degenerate})")
        print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
