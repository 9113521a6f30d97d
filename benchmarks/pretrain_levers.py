"""Which lever makes the cpu DINO recipe learn categories? (issue 14's diagnosis and levers)

Each lever is one change to the cpu profile's ``dino_world`` recipe as it
was when the search began (``dinosal.profiles.DINO_WORLD_SEARCH_BASE``; the
frozen recipe that came out of the search is ``colour_ramp_t02`` at 3,000
steps) (:data:`LEVERS`). A run trains the changed recipe through the zoo's run cache
(``dinosal.zoo.train_cached``: keyed, resumable from its checkpoints after an
interruption), keeps a teacher snapshot every ``--every`` steps, and scores
each snapshot on the **validation** split (dataset seed + 1000) -- never on the
test split on which the frozen model is finally judged:

* ``knn``: k-NN top-1 over the 24 ObjectWorld categories of the teacher
  backbone's CLS token (DINO's ``eval_knn``: k = 20, T = 0.07), 500 train and
  500 test images of the k-NN split at the training size;
* ``knn_head``: the same vote over the teacher head's bottleneck output (the
  L2-normalised vector before the prototypes): does the part DINO's loss sees
  group categories earlier than the backbone?
* ``instance``: instance discrimination without categories -- 200 validation
  images, two global crops of each drawn with the run's own augmentation;
  the share of first views whose nearest second view (cosine of the CLS
  tokens) is the same image (chance: 1/200);
* ``corloc``, ``attn_ratio``, ``attn_ratio_best_head``, ``pointing``: LOST and
  CLS attention (:func:`dinosal.localisation.localisation_scores`) on 100
  validation images rendered at 128 px.

Step 0 is the random-init network (the exact weights DINO started from).
``--supervised`` instead trains the same ViT with labels (cross-entropy on the
categories, one global crop, the recipe's batch and lr schedule) and scores it
every ``--every`` steps: the ceiling curve. ``--baselines`` prints LOST on
centred/raw pixels and the centred box on the same validation images.

Rows go to ``--out`` (a CSV that is appended to, one row per snapshot).

Run:  python benchmarks/pretrain_levers.py --lever base --steps 3000 --every 500 --out levers.csv
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dinosal import knn, release, runs, zoo
from dinosal.baselines import baseline_corlocs
from dinosal.data.multicrop import MultiCropAugmentation
from dinosal.features import prepare, to_batch
from dinosal.localisation import localisation_scores
from dinosal.models import DINOHead, create_vit
from dinosal.profiles import DINO_WORLD_SEARCH_BASE, DinoRecipe
from dinosal.train.dino import CollapseConfig, train_dino

# Colour made useless for telling two views apart: DINO's own jitter (hue included) and grayscale in half the views.
_COLOUR = dict(jitter=(0.4, 0.4, 0.2, 0.1), jitter_p=0.8, grayscale_p=0.5)

LEVERS: dict[str, dict] = {
    "base": {},
    # colour invariance, stabilised by a sharper teacher (e7's 0.02 left the near-uniform phase at once)
    "colour_t02": dict(crops=_COLOUR, train=dict(teacher_temp=0.02, warmup_teacher_temp=0.02)),
    # colour invariance alone (the quick try collapsed at step 130 with the monitor stopping it; here it records)
    "colour": dict(crops=_COLOUR),
    # colour invariance with a larger KoLeo weight (spreads the batch's CLS features against uniform outputs)
    "colour_koleo": dict(crops=_COLOUR, train=dict(koleo_weight=0.5)),
    # colour_t02 collapsed to uniform outputs at ~1,600 steps: KoLeo 0.5 (against constant features) on top
    "colour_t02_koleo": dict(crops=_COLOUR, train=dict(teacher_temp=0.02, warmup_teacher_temp=0.02, koleo_weight=0.5)),
    # a two-stage curriculum: start from today's dino_world (1,500 steps of weak augmentation), then colour_t02
    "warm_colour_t02": dict(init="dino_world", crops=_COLOUR,
                            train=dict(teacher_temp=0.02, warmup_teacher_temp=0.02)),
    # the same curriculum with the teacher temperature of the first stage (0.04)
    "warm_colour": dict(init="dino_world", crops=_COLOUR),
    # colour_t02 with a slow teacher: DINO's own EMA momentum 0.996 instead of the cpu recipe's 0.98
    "colour_t02_slow": dict(crops=_COLOUR, train=dict(teacher_temp=0.02, warmup_teacher_temp=0.02,
                                                      momentum_teacher=0.996)),
    # colour_t02 with a quarter of the learning rate (peak 2.5e-4 at batch 16 instead of 1e-3)
    "colour_t02_lr": dict(crops=_COLOUR, train=dict(teacher_temp=0.02, warmup_teacher_temp=0.02, lr=0.004)),
    # colour_t02 with 64 prototypes instead of 1024: fewer outputs than a batch can give one to each image
    "colour_t02_k64": dict(crops=_COLOUR, train=dict(teacher_temp=0.02, warmup_teacher_temp=0.02, out_dim=64)),
    # colour_t02 ramped in: each image is cropped by the colour augmentation with probability step / 2000
    # (capped at 1) and by the recipe's weak one otherwise
    "colour_ramp_t02": dict(ramp=2000, crops=_COLOUR, train=dict(teacher_temp=0.02, warmup_teacher_temp=0.02)),
    # the same curriculum at the recipe's own teacher temperature (0.04)
    "colour_ramp": dict(ramp=2000, crops=_COLOUR),
    # the curriculum with iBOT's masked patch-token self-distillation added (Zhou et al. 2022; beyond DINO, a
    # marked variant), the teacher's patch head scoring the masked patches only (about 1.35x a DINO step)
    "colour_ramp_t02_ibot": dict(ramp=2000, crops=_COLOUR, train=dict(teacher_temp=0.02, warmup_teacher_temp=0.02,
                                                                     ibot_weight=1.0, ibot_teacher_patches="masked")),
    # colour_t02 with DINO's own grayscale probability (0.2 instead of 0.5)
    "colour_mild_t02": dict(crops={**_COLOUR, "grayscale_p": 0.2},
                            train=dict(teacher_temp=0.02, warmup_teacher_temp=0.02)),
}
"""Lever name -> changes to the search base (``DINO_WORLD_SEARCH_BASE``): ``crops``, ``data``
(generator config) and ``train`` (:class:`DinoConfig` fields) dicts."""

COLUMNS = ("lever", "seed", "step", "knn", "knn_head", "instance", "corloc", "attn_ratio", "attn_ratio_best_head",
           "pointing", "key", "train_s")
"""The columns of ``--out``: one row per scored snapshot."""

EVAL_SIZE = 128
N_LOC = 100
N_KNN = 500
N_INSTANCE = 200


def lever_spec(lever: str, steps: int, every: int, seed: int, threads: int) -> zoo.TrainSpec:
    base = DINO_WORLD_SEARCH_BASE
    ch = LEVERS[lever]
    spe = base.train["steps_per_epoch"]
    if steps % spe:
        raise SystemExit(f"--steps must be a multiple of {spe}")
    snaps = tuple(sorted({0, *range(every, steps + 1, every)}))
    train = {**base.train, **ch.get("train", {}), "epochs": steps // spe, "snapshot_steps": snaps, "seed": seed,
             "checkpoint_every": every, "threads": threads, "collapse": CollapseConfig(action="record")}
    if ch.get("ramp"):  # a curriculum from the recipe's own augmentation to the lever's
        train.update(crops_start=zoo.train_spec(base).dino.crops, crops_ramp_steps=ch["ramp"])
    r = DinoRecipe(base.data, {**base.data_config, **ch.get("data", {})}, n_train=base.n_train,
                   crops={**base.crops, **ch.get("crops", {})}, train=train)
    return zoo.train_spec(r)


@dataclasses.dataclass
class EvalSets:
    loc: list
    knn: knn.KnnSets
    inst_a: torch.Tensor
    inst_b: torch.Tensor


def eval_sets(spec: zoo.TrainSpec) -> EvalSets:
    loc = zoo.held_out_samples(spec, N_LOC, size=EVAL_SIZE)
    sets = zoo.knn_sets(spec, N_KNN)
    aug = MultiCropAugmentation(dataclasses.replace(spec.dino.crops, n_local=0))
    items = zoo.held_out_samples(spec, N_INSTANCE)
    a, b = [], []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(12345)
        for s in items:
            v = aug(s.image)
            a.append(v[0])
            b.append(v[1])
    return EvalSets(loc, sets, torch.stack(a), torch.stack(b))


@torch.no_grad()
def head_features(backbone, head, items) -> torch.Tensor:
    """``(n, bottleneck)``: the head MLP's L2-normalised output on the raw CLS token of each sample."""
    p = backbone.patch_embed.patch_size[0]
    out = []
    for lo in range(0, len(items), 64):
        x = prepare(to_batch([s.image for s in items[lo: lo + 64]]), p, "pad").pixels
        out.append(F.normalize(head.mlp(backbone(x)), dim=-1))
    return torch.cat(out)


def instance_top1(backbone, a: torch.Tensor, b: torch.Tensor) -> float:
    fa, fb = knn.cls_features(backbone, a), knn.cls_features(backbone, b)
    return float(((fa @ fb.T).argmax(1) == torch.arange(len(fa))).float().mean())


def score(backbone, head, sets: EvalSets) -> dict:
    out = {"knn": knn.knn_eval(backbone, sets.knn)}
    if head is not None:
        tr = head_features(backbone, head, sets.knn.train)
        te = head_features(backbone, head, sets.knn.test)
        out["knn_head"] = knn.knn_accuracy(tr, sets.knn.train_labels, te, sets.knn.test_labels)
    out["instance"] = instance_top1(backbone, sets.inst_a, sets.inst_b)
    loc = localisation_scores(backbone, sets.loc)
    out.update({k: float(getattr(loc, k)) for k in ("corloc", "attn_ratio", "attn_ratio_best_head", "pointing")})
    return out


def load_teacher(path: Path, d) -> tuple[torch.nn.Module, torch.nn.Module]:
    sd = torch.load(path, map_location="cpu", weights_only=True)["teacher"]
    bb = create_vit(d.arch, patch=d.patch, img_size=d.img_size, pos_interp=d.pos_interp)
    bb.load_state_dict({k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")})
    head = DINOHead(bb.embed_dim, d.out_dim, use_bn=d.use_bn_in_head, norm_last_layer=d.norm_last_layer,
                    nlayers=d.head_layers, hidden_dim=d.head_hidden, bottleneck_dim=d.head_bottleneck)
    head.load_state_dict({k[len("head."):]: v for k, v in sd.items() if k.startswith("head.")})
    return bb.eval(), head.eval()


def write_rows(out: str, rows: list[dict]) -> None:
    """Append ``rows`` to the CSV ``out`` (created with a header when missing). Every row has the
    columns of :data:`COLUMNS` (a score a run does not measure is empty), so runs of any kind share
    one file; a file with other columns is refused, and nothing is written then."""
    rows = [{k: r.get(k, "") for k in COLUMNS} for r in rows]
    new = not os.path.exists(out)
    if not new:
        with open(out, newline="") as fh:
            header = next(csv.reader(fh), [])
        if header != list(COLUMNS):
            raise SystemExit(f"--out {out}: its columns {header} are not this script's {list(COLUMNS)}; "
                             "nothing was written. Choose another file.")
    keys = list(COLUMNS)
    with open(out, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        if new:
            w.writeheader()
        w.writerows(rows)


@dataclasses.dataclass(frozen=True)
class WarmStart:
    """The identity of a warm-started lever run: its recipe's key and its parent's."""

    recipe_key: str
    parent_key: str


def _unfinished(path: Path, spec) -> bool:
    ckpt = torch.load(path / "checkpoint.pth", map_location="cpu", weights_only=True)
    return int(ckpt["step"]) < spec.dino.epochs * spec.dino.steps_per_epoch


def run_lever(args) -> list[dict]:
    if args.zoo:  # a zoo model's own snapshots (released or cached), e.g. today's dino_world
        spec = zoo.train_spec(zoo.recipe(args.zoo, "cpu"))
        t0 = time.time()
        path, _ = zoo.resolve(spec)
        args.lever = f"zoo:{args.zoo}"
    elif "init" in LEVERS[args.lever]:  # a warm start: trained here, keyed by the recipe and the parent's key
        spec = lever_spec(args.lever, args.steps, args.every, args.seed, args.threads)
        parent = zoo.train_spec(DINO_WORLD_SEARCH_BASE)  # the search's dino_world (the recipe before the freeze)
        key = runs.config_key("lever", WarmStart(zoo.model_key(spec), zoo.model_key(parent)))
        path = runs.cache_root() / "levers" / key
        print("key", key, "from", zoo.model_key(parent), flush=True)
        t0 = time.time()
        if not (path / "log.csv").is_file() or (path / "checkpoint.pth").is_file() and _unfinished(path, spec):
            init = release.load_artifact_backbone(zoo.train_cached(parent))
            train_dino(spec.dino, zoo.training_set(spec), run_dir=path,
                       init_backbone={k: v.float() for k, v in init.state_dict().items()})
    else:
        spec = lever_spec(args.lever, args.steps, args.every, args.seed, args.threads)
        print("key", zoo.model_key(spec), flush=True)
        t0 = time.time()
        path = zoo.train_cached(spec, use_release=False)
    train_s = time.time() - t0
    torch.set_num_threads(args.threads)
    sets = eval_sets(spec)
    rows = []
    for snap in sorted((path / "snapshots").glob("step_*.pth")):
        step = int(snap.stem.split("_")[1])
        bb, head = load_teacher(snap, spec.dino)
        r = {"lever": args.lever, "seed": args.seed, "step": step, **score(bb, head, sets),
             "key": zoo.model_key(spec), "train_s": round(train_s)}
        print(json.dumps(r), flush=True)
        rows.append(r)
    return rows


def run_supervised(args) -> list[dict]:
    """The ceiling: the same ViT trained with labels, scored every ``--every`` steps (cached per run)."""
    from tqdm.auto import tqdm

    from dinosal.models import Classifier, LinearHead
    from dinosal.schedules import cosine_schedule, scaled_lr

    spec = lever_spec("base", args.steps, args.every, args.seed, args.threads)
    d = spec.dino
    torch.set_num_threads(args.threads)
    sets = eval_sets(spec)
    data = zoo.training_set(spec)
    torch.manual_seed(d.seed)
    backbone = create_vit(d.arch, patch=d.patch, img_size=d.img_size, pos_interp=d.pos_interp)
    model = Classifier(backbone, LinearHead(backbone.embed_dim, len(data.class_names))).train()
    aug = MultiCropAugmentation(dataclasses.replace(d.crops, n_local=0))
    spe = d.steps_per_epoch
    lrs = cosine_schedule(scaled_lr(d.lr, d.batch_size), d.min_lr, args.steps // spe, spe, d.warmup_epochs)
    opt = torch.optim.AdamW(model.parameters(), lr=float(lrs[0]), weight_decay=d.weight_decay)
    rng = np.random.default_rng(d.seed)
    rows = []
    t0 = time.time()
    for it in tqdm(range(args.steps + 1), desc="supervised"):
        if it % args.every == 0:
            r = {"lever": "supervised", "seed": args.seed, "step": it, **score(backbone, None, sets),
                 "key": "", "train_s": round(time.time() - t0)}
            model.train()
            print(json.dumps(r), flush=True)
            rows.append(r)
        if it == args.steps:
            break
        for g in opt.param_groups:
            g["lr"] = float(lrs[it])
        items = [data[int(i)] for i in rng.integers(0, len(data), d.batch_size)]
        x = torch.stack([aug(s.image)[0] for s in items])
        y = torch.as_tensor([int(s.labels[0]) for s in items])
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lever", choices=sorted(LEVERS), default="base")
    ap.add_argument("--zoo", default=None, help="score the snapshots of this cpu zoo model instead of training")
    ap.add_argument("--supervised", action="store_true", help="the supervised ceiling curve instead of a DINO lever")
    ap.add_argument("--baselines", action="store_true", help="only print the baselines on the validation images")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="CSV to append the rows to")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.baselines:
        spec = lever_spec("base", args.steps, args.every, args.seed, args.threads)
        samples = zoo.held_out_samples(spec, N_LOC, size=EVAL_SIZE)
        print(json.dumps(baseline_corlocs(samples, spec.dino.patch)))
        return 0
    rows = run_supervised(args) if args.supervised else run_lever(args)
    if args.out:
        write_rows(args.out, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
