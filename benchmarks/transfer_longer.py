"""Have the cpu transfers plateaued? One fine-tune run 3x longer, against the study's run (issue 15).

Trains (or finds in the run cache) ``dino_world__bce_driving`` of the ``cpu``
profile with 3x the recipe's epochs (same lr, warmup and schedule shape,
transfer seed 0, the parent's own pretraining seed) and compares it with the
study's run on the **test** split, in the pre-registered form of the transfer
chapter: test mAP (1,000 test scenes), then on the first 200 test scenes with
an object at 128 px the change from the parent -- overall activation of the
inverse-degree map (difference) and, per part, log2 of the ratio of the
inverse degree's pooled mass ratios (fine-tune over parent) -- each with its
word against the pre-registered margins (``transfer_sets.OA_MARGIN``,
``RATIO_MARGIN``). "Plateaued" means every word is the same for both runs.

Run:  python benchmarks/transfer_longer.py --threads 1 [--out benchmarks/transfer_longer_results.csv]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

from dinosal import chapter, localisation, transfer_sets, transfers, viz

ARM = "dino_world__bce_driving"
PARTS = ("vehicles", "objects", "lane_marking", "tree")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--factor", type=int, default=3, help="how many times the recipe's epochs")
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--n-eval", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="CSV for the comparison table")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    short = transfers.spec(ARM, "cpu", threads=args.threads)
    long_ = transfers.spec(ARM, "cpu", threads=args.threads, epochs=short.config.epochs * args.factor)
    runs = {}
    for label, s in (("study", short), (f"{args.factor}x longer", long_)):
        model, card = transfers.load(s)
        runs[label] = (model, s, card)
        print(f"{label}: {card.steps} steps, {card.source}, {card.train_seconds / 60:.1f} min")
    parent, _ = transfers.parent_backbone(short)
    scenes = transfer_sets.test_scenes(short.data, args.n_eval, 128)
    truths = [transfer_sets.scene_truth(s) for s in scenes]
    rows, oa = [], {}
    for label, backbone in [("parent", parent)] + [(k, m.backbone) for k, (m, _, _) in runs.items()]:
        maps = localisation.run_methods(backbone, [s.image for s in scenes], tau=None)
        rows += [{"set": "test", "model": label, "image": i, **row}
                 for i, (r, t) in enumerate(zip(maps, truths)) for row in localisation.region_rows(r, t)]
        oa[label] = float(np.mean([transfer_sets.overall_activation(r.lost.inverse_degree) for r in maps]))
    inv = chapter.ratio_table(chapter.pooled_region_ratios(pd.DataFrame(rows)), "test", "inverse degree",
                              ["parent", *runs])
    table = []
    for label, (model, s, card) in runs.items():
        row = {"run": label, "steps": card.steps, "test mAP": transfers.scores_on_test(model, s, args.n_test).map,
               "Δ overall activation": oa[label] - oa["parent"]}
        row.update({f"log2 change, {p}": float(np.log2(inv.loc[label, p] / inv.loc["parent", p]))
                    for p in PARTS if p in inv.columns})
        table.append(row)
    table = pd.DataFrame(table).set_index("run")
    words = ("up", "within the margin", "down")
    for col in table.columns[2:]:
        margin = transfer_sets.OA_MARGIN if "activation" in col else transfer_sets.RATIO_MARGIN
        table[col + " (word)"] = [viz.compare_word(v, 0.0, margin, words=words) for v in table[col]]
    print(table.T.to_string())
    same = all(table[c].nunique() == 1 for c in table.columns if c.endswith("(word)"))
    print("\nevery pre-registered word the same for both runs:", same)
    if args.out:
        table.to_csv(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
