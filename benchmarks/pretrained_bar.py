"""Is the frozen pretraining recipe worth transferring from? Issue 14's bar, on the test split.

Scores the final teacher of each pretraining seed of the cpu ``dino_world``
recipe (the recipe's own seed and ``DinoRecipe.release_seeds``; released or in
the run cache, trained otherwise) on the **test** split (dataset seed + 3000),
on which no lever and no hyper-parameter was chosen:

* world images (200 at 128 px): LOST CorLoc (k = 100), CLS attention on the
  objects over their area share (mean head and best head), pointing;
* world categories: k-NN top-1 (k = 20, T = 0.07) of the CLS token, 500 train
  and 500 test images of the test split at the training size (24 classes);
* driving scenes (200 at 128 px, never seen in pretraining): attention ratio
  and LOST CorLoc;
* the baselines on the same images, in the same run: the same network at
  random init (the exact weights each seed started from), LOST on centred
  and on raw pixels, the best centred box.

``--with-search-base`` adds the recipe the search started from
(``dinosal.profiles.DINO_WORLD_SEARCH_BASE``, 1,500 steps of the weak
augmentation): what the extra compute and the curriculum bought. Each model
is one row of ``--out`` (a CSV, appended to); the bar
(:func:`dinosal.bars.pretrained_bar`) is printed per row.

Run:  python benchmarks/pretrained_bar.py --out benchmarks/pretrained_bar_results.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import os

import torch

from dinosal import release, zoo
from dinosal.pretrained_eval import score_run, test_sets
from dinosal.profiles import DINO_WORLD_SEARCH_BASE

EVAL_SIZE = 128
COLUMNS = ("model", "seed", "steps", "key", "corloc", "attn_ratio", "attn_ratio_best_head", "pointing", "knn",
           "random_corloc", "random_attn_ratio", "random_knn", "pixels_centred", "pixels_raw", "centre_box",
           "driving_corloc", "driving_attn_ratio", "driving_random_corloc", "driving_random_attn_ratio",
           "bar_passed")


def score_model(name: str, spec: zoo.TrainSpec, model, sets) -> dict:
    """One row of ``--out`` (:func:`dinosal.pretrained_eval.score_run`), its bar printed."""
    r = score_run(model, spec, sets)
    row = {"model": name, "seed": spec.dino.seed, "steps": spec.dino.epochs * spec.dino.steps_per_epoch,
           "key": zoo.model_key(spec), **{k: round(float(v), 4) for k, v in r.items() if k not in ("bar", "met")},
           "bar_passed": r["met"]}
    print(f"\n{name} (seed {row['seed']}, key {row['key']}):")
    for crit, value, thr, ok in r["bar"]:
        print(f"  {'PASS' if ok else 'miss'}  {crit}: {value:.3f}")
    return row


def write_rows(out: str, rows: list[dict]) -> None:
    """Append ``rows`` to ``out`` (header when new); a file with other columns is refused, nothing written."""
    if os.path.exists(out):
        with open(out, newline="") as fh:
            header = next(csv.reader(fh), [])
        if header != list(COLUMNS):
            raise SystemExit(f"--out {out}: its columns {header} are not {list(COLUMNS)}; nothing was written")
    new = not os.path.exists(out)
    with open(out, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        if new:
            w.writeheader()
        w.writerows([{k: r.get(k, "") for k in COLUMNS} for r in rows])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", nargs="*", type=int, default=None,
                    help="pretraining seeds (default: the recipe's own and its release_seeds)")
    ap.add_argument("--with-search-base", action="store_true", help="also the recipe the search started from")
    ap.add_argument("--n-loc", type=int, default=200, help="test images for localisation, per domain")
    ap.add_argument("--n-knn", type=int, default=500, help="k-NN train and test images each")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="CSV to append the rows to")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    r = zoo.recipe("dino_world", "cpu")
    seeds = args.seeds if args.seeds is not None else [r.train.get("seed", 0), *r.release_seeds]
    world_spec = zoo.train_spec(r)
    sets = test_sets(world_spec, "cpu", args.n_loc, EVAL_SIZE, args.n_knn)
    print("baselines on the test world images:", json.dumps(sets.baselines))
    print(f"k-NN: {len(sets.knn.train)} + {len(sets.knn.test)} images, {len(sets.knn.class_names)} classes")
    rows = []
    for s in seeds:
        model, card = zoo.get("dino_world", "cpu", seed=s, progress=False)
        rows.append(score_model("dino_world", zoo.train_spec(r, seed=s), model, sets))
    if args.with_search_base:
        spec = zoo.train_spec(DINO_WORLD_SEARCH_BASE)
        model = release.load_artifact_backbone(zoo.train_cached(spec)).eval()
        rows.append(score_model("search base (1,500 steps, weak augmentation)", spec, model, sets))
    if args.out:
        write_rows(args.out, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
