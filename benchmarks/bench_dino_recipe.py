"""Does the profile's DINO recipe learn to localise? (issue 4's bar)

Trains (or finds in the run cache) the zoo's ``dino_world`` and
``dino_driving`` models of a profile and measures, on held-out images (same
generator config, another seed):

* LOST CorLoc (IoU >= 0.5 with any GT box) of the last block's keys;
* CLS-attention mass on the objects divided by their area share (mean over
  heads of the last block; also the best single head, chosen per set);
* pointing game of the mean-head attention map;

against baselines computed in the same run: the same network at random init
(the exact weights DINO started from, :func:`dinosal.zoo.initial_backbone`),
LOST on raw pixels (each patch's normalised RGB values as its feature,
per-image centred and raw) and a centred box (the best of
:data:`dinosal.baselines.CENTRE_BOX_FRACTIONS` on these images, ties to the
smallest, so the baseline is, if anything, too strong). Then it checks the bar:

* world: LOST CorLoc >= 0.5 and >= 0.15 above every baseline; attention
  ratio >= 2;
* driving: LOST CorLoc >= 2x the random-init network; attention ratio >= 1.5.

Beside them, with ``--supervised``: the same ViT trained with labels for the
same number of steps (not a baseline of the bar, a reference point).

Run:  python benchmarks/bench_dino_recipe.py [--profile cpu] [--n-eval 200] [--eval-size 128] [--supervised]
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
from dinosal.baselines import baseline_corlocs
from dinosal.data.sample import object_mask
from dinosal.localisation import localisation_scores


def evaluate_model(model, samples, batch: int = 32, k: int = 100) -> dict:
    """LOST CorLoc, attention/area ratios and pointing of one network
    (:func:`dinosal.localisation.localisation_scores`, the scorer the book uses)."""
    return dataclasses.asdict(localisation_scores(model, samples, k=k, batch=batch))


def _baselines(samples, patch: int) -> dict:
    b = baseline_corlocs(samples, patch)
    return {"pixels_centred": {"corloc": b["pixels_centred"]}, "pixels_raw": {"corloc": b["pixels_raw"]},
            "centre_box": {"corloc": b["centre_box"], "fraction": b["centre_box_fraction"]}}


@dataclasses.dataclass(frozen=True)
class SupervisedSpec:
    """A supervised reference: the DINO recipe's ViT, data, batch, step count,
    peak lr and first global-crop augmentation, trained end to end with labels
    (world: the object's category, softmax + cross-entropy; driving: the
    classes present, one sigmoid per class + BCE) through a linear head on the
    last block's CLS token. Same size, same number of steps as DINO."""

    dino: zoo.TrainSpec
    what: str = "supervised-v2"  # v2: the lr schedule from dinosal.schedules


def train_supervised(spec: SupervisedSpec, threads: int | None = 1) -> torch.nn.Module:
    """Train (or find in the run cache) the supervised reference; returns its backbone."""
    from tqdm.auto import tqdm

    from dinosal.data.multicrop import MultiCropAugmentation
    from dinosal.models import Classifier, LinearHead, create_vit
    from dinosal.schedules import cosine_schedule, scaled_lr

    d = spec.dino.dino
    data = zoo.training_set(spec.dino)
    multi = spec.dino.data == "driving"

    def build(tmp):
        before = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            torch.manual_seed(d.seed)
            backbone = create_vit(d.arch, patch=d.patch, img_size=d.img_size)
            n_cls = len(data.class_names)
            model = Classifier(backbone, LinearHead(backbone.embed_dim, n_cls, multi_label=multi)).train()
            aug = MultiCropAugmentation(dataclasses.replace(d.crops, n_local=0))
            steps = d.epochs * d.steps_per_epoch
            lrs = cosine_schedule(scaled_lr(d.lr, d.batch_size), d.min_lr, d.epochs, d.steps_per_epoch,
                                  d.warmup_epochs)  # DINO's lr schedule
            opt = torch.optim.AdamW(model.parameters(), lr=float(lrs[0]), weight_decay=d.weight_decay)
            rng = np.random.default_rng(d.seed)
            t0 = time.time()
            for it in tqdm(range(steps), desc="supervised"):
                for g in opt.param_groups:
                    g["lr"] = float(lrs[it])
                items = [data[int(i)] for i in rng.integers(0, len(data), d.batch_size)]
                x = torch.stack([aug(s.image)[0] for s in items])
                logits = model(x)
                if multi:
                    y = torch.as_tensor(np.stack([s.multi_hot for s in items]))
                    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
                else:
                    y = torch.as_tensor([int(s.labels[0]) for s in items])
                    loss = torch.nn.functional.cross_entropy(logits, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            torch.save(backbone.state_dict(), tmp / "backbone.pth")
            return {"training": {"steps": steps, "seconds": round(time.time() - t0, 1), "final_loss": float(loss.detach())}}
        finally:
            torch.set_num_threads(before)

    path = runs.cached("supervised", spec, build)
    backbone = create_vit(d.arch, patch=d.patch, img_size=d.img_size)
    backbone.load_state_dict(torch.load(path / "backbone.pth", weights_only=True))
    return backbone.eval()


def evaluate_domain(name: str, profile: str, n_eval: int, eval_size: int | None, supervised: bool = False,
                    **overrides) -> dict:
    model, card = zoo.get(name, profile, **overrides)
    spec = zoo.train_spec(zoo.recipe(name, profile), **overrides)
    random_model, _ = zoo.get("random", profile)
    samples = zoo.held_out_samples(spec, n_eval, eval_size)  # the "validation" split: seed + 1000
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
        **({"supervised": evaluate_model(train_supervised(SupervisedSpec(zoo._canonical(spec))), samples)}
           if supervised else {}),
    }


def check_bar(world: dict | None, driving: dict | None) -> list[tuple[str, float, float, bool]]:
    """(criterion, value, threshold, passed) rows of issue 4's bar (:func:`dinosal.zoo.recipe_bar`)."""
    def flat(r):
        if not r:
            return None
        return {"corloc": r["dino"]["corloc"], "attn_ratio": r["dino"]["attn_ratio"],
                **{m: r[m]["corloc"] for m in ("random", "pixels_centred", "pixels_raw", "centre_box")}}
    return zoo.recipe_bar(flat(world), flat(driving))


def print_table(results: dict) -> None:
    for domain, r in results.items():
        c = r["card"]
        print(f"\n== {domain}: {c['trained_on']}; {c['steps']} steps, {c['train_seconds'] / 60:.1f} min training; "
              f"eval {r['n_eval']} held-out images at {r['eval_size']} px, objects cover {r['object_area']:.1%}")
        print(f"{'method':26s} {'CorLoc':>7s} {'attn/area':>10s} {'best head':>10s} {'pointing':>9s}")
        for m in ("dino", "random", "pixels_centred", "pixels_raw", "centre_box", "supervised"):
            if m not in r:
                continue
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
    ap.add_argument("--json", default=None, help="also write the results to this new file (an existing one is refused)")
    ap.add_argument("--supervised", action="store_true",
                    help="also train (once, cached) and score a supervised network of the same size and steps")
    args = ap.parse_args(argv)
    if args.json and os.path.lexists(args.json):  # refuse before hours of work, not after
        ap.error(f"--json {args.json}: exists; the results go to a new file only (nothing was changed)")
    t0 = time.time()
    load0 = os.getloadavg()
    results = {}
    for domain in args.domains.split(","):
        results[domain] = evaluate_domain(f"dino_{domain}", args.profile, args.n_eval, args.eval_size,
                                          supervised=args.supervised)
    print(f"machine: {json.dumps(runs.machine())}; load at start {load0}")
    print_table(results)
    print("\nbar (issue 4):")
    ok = True
    for crit, value, thr, passed in check_bar(results.get("world"), results.get("driving")):
        ok &= passed
        print(f"  {'PASS' if passed else 'FAIL'}  {crit:40s} {value:7.3f} (needs {thr})")
    print(f"\nbenchmark wall time {time.time() - t0:.0f} s (training included when it was not cached)")
    if args.json:
        with open(args.json, "x") as fh:  # never replace a file
            json.dump(results, fh, indent=2, default=str)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
