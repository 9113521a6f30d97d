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
import torch

from dinosal import runs, zoo
from dinosal.data.synthetic import DrivingConfig, DrivingScenes, ObjectWorld, WorldConfig, object_mask
from dinosal.features import LastBlockTap, to_batch
from dinosal.metrics import box_hits, mass_share, pointing_game
from dinosal.saliency.attention import cls_attention, upsample
from dinosal.saliency.lost import lost

EVAL_SEED_OFFSET = 1000


def eval_samples(spec, n: int, size: int | None = None):
    """``n`` held-out samples with at least one object (seed + 1000)."""
    cfg = spec.data_config
    cfg = dataclasses.replace(cfg, seed=cfg.seed + EVAL_SEED_OFFSET, length=10 * n + 100,
                              size=size or cfg.size)
    gen = ObjectWorld(cfg) if isinstance(cfg, WorldConfig) else DrivingScenes(cfg)
    out = []
    for i in range(len(gen)):
        s = gen[i]
        if len(s.boxes):
            out.append(s)
        if len(out) == n:
            break
    return out


def _patch_pixels(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, N, 3*p*p) normalised pixels per patch (row-major grid)."""
    b = images.shape[0]
    cols = torch.nn.functional.unfold(images, kernel_size=patch, stride=patch)  # (B, 3pp, N)
    return cols.transpose(1, 2).reshape(b, -1, 3 * patch * patch)


def evaluate_model(model, samples, batch: int = 32, k: int = 100) -> dict:
    """LOST CorLoc, attention/area ratios and pointing of one network."""
    boxes, ratios_mean, ratios_heads, points = [], [], [], []
    with LastBlockTap(model) as tap:
        for lo in range(0, len(samples), batch):
            chunk = samples[lo: lo + batch]
            feats = tap(to_batch([s.image for s in chunk]))
            keys = feats.patches("k")
            rows, cols = feats.grid
            p = feats.patch_size
            h, w = feats.image_size
            for j, s in enumerate(chunk):
                res = lost(keys[j], feats.grid, p, (h, w), k=min(k, rows * cols))
                boxes.append(res.box)
                maps = cls_attention(feats.attn[j], feats.grid)
                mask = object_mask(s)
                heads = upsample(maps.heads, p)[:, :h, :w]
                mean = upsample(maps.mean, p)[:h, :w]
                ratios_mean.append(mass_share(mean, {"o": mask})["o"].ratio)
                ratios_heads.append([mass_share(hm, {"o": mask})["o"].ratio for hm in heads])
                points.append(pointing_game(mean, mask))
    hits = box_hits(np.stack(boxes), [s.boxes for s in samples])
    per_head = np.nanmean(np.asarray(ratios_heads), axis=0)
    return {
        "corloc": float(hits.mean()),
        "attn_ratio": float(np.nanmean(ratios_mean)),
        "attn_ratio_best_head": float(per_head.max()),
        "pointing": float(np.mean(points)),
    }


def evaluate_pixels(samples, patch: int, centred: bool, k: int = 100) -> dict:
    """LOST on each patch's normalised pixels (optionally minus the image mean)."""
    boxes = []
    for s in samples:
        x = to_batch(s.image)
        h, w = s.image.shape[:2]
        pad = torch.nn.functional.pad(x, (0, -w % patch, 0, -h % patch))
        f = _patch_pixels(pad, patch)[0]
        if centred:
            f = f - f.mean(0, keepdim=True)
        grid = (pad.shape[-2] // patch, pad.shape[-1] // patch)
        boxes.append(lost(f, grid, patch, (h, w), k=min(k, grid[0] * grid[1])).box)
    return {"corloc": float(box_hits(np.stack(boxes), [s.boxes for s in samples]).mean())}


def evaluate_centre_box(samples, fractions=(0.4, 0.5, 0.6, 0.7, 0.8, 0.9)) -> dict:
    """Best CorLoc of a centred box covering ``f`` of each side, over ``fractions``."""
    best = (-1.0, None)
    for f in fractions:
        boxes = []
        for s in samples:
            h, w = s.image.shape[:2]
            boxes.append([w * (1 - f) / 2, h * (1 - f) / 2, w * (1 + f) / 2, h * (1 + f) / 2])
        c = float(box_hits(np.asarray(boxes, np.float32), [s.boxes for s in samples]).mean())
        best = max(best, (c, f))
    return {"corloc": best[0], "fraction": best[1]}


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
        "pixels_centred": evaluate_pixels(samples, p, centred=True),
        "pixels_raw": evaluate_pixels(samples, p, centred=False),
        "centre_box": evaluate_centre_box(samples),
    }


def check_bar(world: dict | None, driving: dict | None) -> list[tuple[str, float, float, bool]]:
    """(criterion, value, threshold, passed) rows of issue 4's bar."""
    rows = []
    if world:
        d = world["dino"]["corloc"]
        base = max(world["random"]["corloc"], world["pixels_centred"]["corloc"],
                   world["pixels_raw"]["corloc"], world["centre_box"]["corloc"])
        rows += [("world LOST CorLoc >= 0.5", d, 0.5, d >= 0.5),
                 ("world CorLoc - best baseline >= 0.15", d - base, 0.15, d - base >= 0.15),
                 ("world attention ratio >= 2", world["dino"]["attn_ratio"], 2.0, world["dino"]["attn_ratio"] >= 2)]
    if driving:
        d, r = driving["dino"]["corloc"], driving["random"]["corloc"]
        rows += [("driving CorLoc / random-init >= 2", d / max(r, 1e-9), 2.0, d >= 2 * r and d > 0),
                 ("driving attention ratio >= 1.5", driving["dino"]["attn_ratio"], 1.5,
                  driving["dino"]["attn_ratio"] >= 1.5)]
    return rows


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
