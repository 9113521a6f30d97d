"""What a training step of Mugs and of LEWEL costs against DINO's, at the cpu recipes' sizes (issue 17).

Equal compute in the Mugs/LEWEL chapter means the same steps, batch, network and data; the heads, the
queues and the memory of the companions add work per step. This benchmark runs the three trainers of one
parent recipe (``--parent``, default ``dino_driving``) on the same images with the trainers' own data
pipeline (:func:`dinosal.train.dino.training_loader`), each for ``--warmup`` + ``--steps`` steps from its
initial weights, interleaved ``--rounds`` times (DINO, Mugs, LEWEL, DINO, ...) so that a change in the
machine's load falls on all three, and prints seconds per step (median over rounds of each round's mean)
and the ratio to DINO's measured in the same run. LEWEL draws no local crops (its spec says so), so its
loader does less augmentation work too: the ratio is of the whole step as each method trains.

    python benchmarks/bench_companions_step.py [--parent dino_world] [--steps 20] [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from dinosal import companions, zoo
from dinosal.train.dino import DinoTrainer, training_loader
from dinosal.train.lewel import LewelTrainer
from dinosal.train.mugs import MugsTrainer


def _seconds_per_step(trainer, cfg, data, warmup: int, steps: int) -> float:
    loader = iter(training_loader(cfg, data, 0, warmup + steps))
    for _ in range(warmup):
        trainer.train_step(next(loader))
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(next(loader))
    return (time.perf_counter() - t0) / steps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parent", default="dino_driving", help="the DINO recipe whose budget the companions share")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per round")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: the release's trainings)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    spec = zoo.train_spec(zoo.recipe(args.parent, args.profile), progress=False)
    data = zoo.training_set(spec)
    domain = args.parent.removeprefix("dino_")
    mugs, lewel = (companions.spec(f"{m}_{domain}", args.profile) for m in ("mugs", "lewel"))
    spe = spec.dino.steps_per_epoch
    make = {"DINO": (lambda: DinoTrainer(spec.dino, spe), spec.dino),
            "Mugs": (lambda: MugsTrainer(mugs.dino, mugs.options, spe), mugs.dino),
            "LEWEL": (lambda: LewelTrainer(lewel.dino, lewel.options, spe), lewel.dino)}
    times: dict[str, list[float]] = {k: [] for k in make}
    for _ in range(args.rounds):
        for name, (build, cfg) in make.items():
            times[name].append(_seconds_per_step(build(), cfg,
                                                 data, args.warmup, args.steps))
    base = float(np.median(times["DINO"]))
    print(f"{args.parent} budget, {args.steps} steps x {args.rounds} rounds, {args.threads} thread(s)")
    print(f"{'method':8s} {'s/step (median)':>16s} {'min':>7s} {'max':>7s} {'vs DINO':>8s}")
    for name, t in times.items():
        print(f"{name:8s} {np.median(t):16.3f} {min(t):7.3f} {max(t):7.3f} {np.median(t) / base:7.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
