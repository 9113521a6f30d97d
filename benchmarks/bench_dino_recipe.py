"""Does the profile's DINO recipe learn to localise? (issue 4's bar)

Trains (or finds in the run cache) the zoo's ``dino_world`` and
``dino_driving`` models of a profile and measures, on held-out images (same
generator config, another seed):

* LOST CorLoc (IoU >= 0.5 with any GT box) of the last block's keys;
* CLS-attention mass on the objects divided by their area share (mean over
  heads of the last block; also the best single head, chosen per set);
* pointing game of the mean-head attention map;

against baselines computed in the same run: the same network at random init
(the exact weights DINO started from), LOST on raw pixels (each patch's
normalised RGB values as its feature, per-image centred and raw) and a
centred box (the best of several sizes, so the baseline is, if anything,
too strong). Then it checks the bar:

* world: LOST CorLoc >= 0.5 and >= 0.15 above every baseline; attention
  ratio >= 2;
* driving: LOST CorLoc >= 2x the random-init network; attention ratio >= 1.5.

Run:  python benchmarks/bench_dino_recipe.py [--profile cpu] [--n-eval 200]
(the first run trains both models: up to ~2 x 30 min on 2 cores).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import numpy as np

from dinosal import runs, zoo
from dinosal.data.synthetic import object_mask
from dinosal.evaluate import baseline_corlocs, localisation_scores, recipe_bar


def eval_samples(spec, n: int, size: int | None = None):
    """``n`` held-out samples with at least one object (seed + 1000)."""
    return zoo.held_out_samples(spec, n, size)


def evaluate_model(model, samples, batch: int = 32, k: int = 100) -> dict:
    """LOST CorLoc, attention/area ratios and pointing of one network
    (:func:`dinosal.evaluate.localisation_scores`, the scorer the book uses)."""
    return dataclasses.asdict(localisation_scores(model, samples, k=k, batch=batch))


def _baselines(samples, patch: int) -> dict:
    b = baseline_corlocs(samples, patch)
    return {"pixels_centred": {"corloc": b["pixels_centred"]}, "pixels_raw": {"corloc": b["pixels_raw"]},
            "centre_box": {"corloc": b["centre_box"], "fraction": b["centre_box_fraction"]}}


def evaluate_domain(name: str, profile: str, n_eval: int, eval_size: int | None, **overrides) -> dict:
    model, card = zoo.get(name, profile, **overrides)
    spec = zoo.train_spec(zoo.recipe(name, profile), **overrides)
    random_model, _ = zoo.get("random", profile)
    samples = eval_samples(spec, n_eval, eval_size)
    p = spec.dino.patch
    area = float(np.mean([object_mask(s).mean() for s in samples]))
    return {
        "card": dataclasses.asdict(card),
        "n_eval": len(samples),
        "eval_size": samples[0].image.shape[0],
        "object_area": area,
        "dino": evaluate_model(model, samples),
        "random": evaluate_model(random_model, samples),
        **_baselines(samples, p),
    }


def check_bar(world: dict | None, driving: dict | None) -> list[tuple[str, float, float, bool]]:
    """(criterion, value, threshold, passed) rows of issue 4's bar (:func:`dinosal.evaluate.recipe_bar`)."""
    def flat(r):
        if not r:
            return None
        return {"corloc": r["dino"]["corloc"], "attn_ratio": r["dino"]["attn_ratio"],
                **{m: r[m]["corloc"] for m in ("random", "pixels_centred", "pixels_raw", "centre_box")}}
    return recipe_bar(flat(world), flat(driving))


def print_table(results: dict) -> None:
    for domain, r in results.items():
        c = r["card"]
        print(f"\n== {domain}: {c['trained_on']}; {c['steps']} steps, {c['train_seconds'] / 60:.1f} min training; "
              f"eval {r['n_eval']} held-out images at {r['eval_size']} px, objects cover {r['object_area']:.1%}")
        print(f"{'method':26s} {'CorLoc':>7s} {'attn/area':>10s} {'best head':>10s} {'pointing':>9s}")
        for m in ("dino", "random", "pixels_centred", "pixels_raw", "centre_box"):
            v = r[m]
            extra = "" if m != "centre_box" else f"  (side fraction {v['fraction']})"
            print(f"{m:26s} {v['corloc']:7.3f} {v.get('attn_ratio', float('nan')):10.2f} "
                  f"{v.get('attn_ratio_best_head', float('nan')):10.2f} {v.get('pointing', float('nan')):9.2f}{extra}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--n-eval", type=int, default=200)
    ap.add_argument("--eval-size", type=int, default=None, help="render held-out images at this size (default: training size)")
    ap.add_argument("--domains", default="world,driving")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args(argv)
    t0 = time.time()
    load0 = os.getloadavg()
    results = {}
    for domain in args.domains.split(","):
        results[domain] = evaluate_domain(f"dino_{domain}", args.profile, args.n_eval, args.eval_size)
    print(f"machine: {json.dumps(runs.machine())}; load at start {load0}")
    print_table(results)
    print("\nbar (issue 4):")
    ok = True
    for crit, value, thr, passed in check_bar(results.get("world"), results.get("driving")):
        ok &= passed
        print(f"  {'PASS' if passed else 'FAIL'}  {crit:40s} {value:7.3f} (needs {thr})")
    print(f"\nbenchmark wall time {time.time() - t0:.0f} s (training included when it was not cached)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2, default=str)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
