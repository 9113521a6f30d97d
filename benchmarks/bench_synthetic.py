"""Generation speed of the procedural benchmark on ONE CPU core.

Prints images/s per generator and image size, and the driving-scene rate at
64 px against the target of 500 images/s (the baseline this script checks).
Run on an otherwise idle machine (check ``uptime``):

    python benchmarks/bench_synthetic.py [--seconds 1.0] [--sizes 32 64 96 128 224]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

from dinosal.data.synthetic import (  # noqa: E402
    DrivingConfig,
    DrivingScenes,
    ObjectWorld,
    SingleVehicles,
    VehicleConfig,
    WorldConfig,
)

TARGET = 500.0  # driving scenes per second at 64 px on one core


def rate(generator, seconds: float) -> float:
    """Images per second, generating fresh indices for about ``seconds``."""
    generator[0]  # warm the texture bank for this size
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        generator.sample(1 + n)
        n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 96, 128, 224])
    args = ap.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    print(f"one core, {args.seconds:.1f} s per cell; images/s")
    print(f"{'generator':<16}" + "".join(f"{s:>9d}px" for s in args.sizes))
    results = {}
    for name, gen, cfg in (("DrivingScenes", DrivingScenes, DrivingConfig),
                           ("SingleVehicles", SingleVehicles, VehicleConfig),
                           ("ObjectWorld", ObjectWorld, WorldConfig)):
        row = [rate(gen(cfg(size=s)), args.seconds) for s in args.sizes]
        results[name] = dict(zip(args.sizes, row))
        print(f"{name:<16}" + "".join(f"{r:>11.0f}" for r in row))
    driving64 = results["DrivingScenes"].get(64) or rate(DrivingScenes(DrivingConfig(size=64)), args.seconds)
    print(f"\nbaseline (target) driving @64px: {TARGET:.0f}/s; candidate: {driving64:.0f}/s; "
          f"ratio {driving64 / TARGET:.2f} ({'meets' if driving64 >= TARGET else 'MISSES'} the target)")


if __name__ == "__main__":
    main()
