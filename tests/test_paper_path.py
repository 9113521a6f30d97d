"""The paper profile's code path, end to end at tiny size, on files in the real formats.

book/appendix_paper_scale.md says how to run the study at paper scale. This
module runs the same calls on a tiny copy of that setting, written into a
temporary folder in the layout the appendix names:

* ``$DINOSAL_DATA``: BDD100K frames (JPEG) under ``bdd100k/images/100k/{train,val}``
  with ``det_20`` labels, the 100K lane labels, 10K frames with their
  semantic-segmentation masks, and a Stanford Cars devkit (``.mat`` files);
* ``$DINOSAL_DINO_WEIGHTS``: ``dino_deitsmall8_pretrain.pth`` in the official
  layout (a plain backbone state dict with the official key names), or the
  official full training checkpoint (``teacher`` with ``backbone.`` / ``head.``
  keys and a pickled ``argparse.Namespace``) -- random weights of a 1-block ViT
  of DINO's tiny width (192, 3 heads), so that it loads like ViT-S/8 does;

then: the zoo's ``dino_official`` from that file; both transfer tasks through
their readers (a fine-tune with the spec's overrides, and a probe through the
appendix's ``python -m dinosal.cli transfers`` command); LOST and TokenCut on a
real-format frame; claim 2's per-part scores on lane and semantic-segmentation
masks; and ``python -m dinosal.train --recipe paper:dino_driving`` (DINO from
scratch on the BDD100K folder, the network shrunk by ``--set``). The recipes'
step counts are replaced; every call is the one the appendix names.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw
from scipy.io import savemat

from dinosal import cli, localisation, profiles, release, runs, transfer_sets, transfers, zoo
from dinosal.data.readers import (
    BDD_CLASSES,
    read_bdd100k,
    read_bdd100k_lanes,
    read_bdd100k_sem_seg,
    read_stanford_cars,
)
from dinosal.data.sample import part_masks, truth_from_boxes
from dinosal.models import DINO_WEIGHTS_ENV, load_dino_backbone

W, H = 64, 40  # a 16:10 frame whose sides are multiples of the patch (BDD100K's 1280 x 720 are too)
WIDTH, DEPTH, PATCH, GRID = 192, 1, 8, 28  # DINO's tiny width; the official table is 28 x 28 (224 px / 8)
N_TRAIN, N_VAL, N_TEST = 6, 2, 3
ROOT = Path(__file__).resolve().parents[1]
CAR_NAMES = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Audi TTS Coupe 2012"]


# ---------------------------------------------------------------- files in the real formats


def _frame(path, car, lane_x, seed):
    """A driving-like JPEG: sky, road, a tree on the left, a car in box ``car``, a lane line at ``lane_x``."""
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (W, H), (135, 180, 230))
    d = ImageDraw.Draw(im)
    d.rectangle((0, 16, W - 1, H - 1), fill=(90, 90, 95))
    d.ellipse((0, 4, 14, 22), fill=(40, 120, 40))
    d.line((lane_x, H - 1, lane_x + 6, 16), fill=(240, 240, 240), width=2)
    d.rectangle(car, fill=tuple(int(v) for v in rng.integers(60, 255, 3)))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, quality=90)


def _bdd_frames(folder, names, seed):
    """det_20 frames (Scalabel box2d: 0-based, inclusive max) for JPEGs written under ``folder``."""
    frames = []
    for i, name in enumerate(names):
        x1 = 30 + 3 * i
        car = (x1, 20, x1 + 14, 31)
        _frame(folder / name, car, 20 + i, seed + i)
        frame = {"name": name, "attributes": {"weather": "clear", "timeofday": "daytime", "scene": "city street"},
                 "timestamp": 10000}
        if i != 1:  # det_20 leaves "labels" out of a frame without boxes
            frame["labels"] = [{"id": str(i), "category": "car" if i % 2 == 0 else "truck",
                                "attributes": {"occluded": False, "truncated": False, "trafficLightColor": "NA"},
                                "box2d": {"x1": float(car[0]), "y1": float(car[1]),
                                          "x2": float(car[2]), "y2": float(car[3])}}]
            if i == 2:
                frame["labels"].append({"id": "p", "category": "pedestrian", "attributes": {},
                                        "box2d": {"x1": 50.0, "y1": 18.0, "x2": 54.0, "y2": 30.0}})
        frames.append(frame)
    return frames


def _cars_struct(rows):
    """A devkit ``annotations`` struct array (as scipy writes MATLAB structs)."""
    fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]
    ann = np.zeros((1, len(rows)), dtype=[(f, object) for f in fields])
    for i, row in enumerate(rows):
        for f, v in zip(fields, row):
            ann[0, i][f] = np.array([v]) if isinstance(v, str) else np.array([[v]], np.uint16)
    return ann


def _cars_split(root, folder, annos, n, seed):
    rows = []
    for i in range(n):
        name = f"{i + 1:05d}.jpg"
        im = Image.new("RGB", (48, 32), tuple(int(v) for v in np.random.default_rng(seed + i).integers(0, 255, 3)))
        ImageDraw.Draw(im).rectangle((6, 8, 40, 26), fill=(200, 30 * (i % 3), 30))
        (root / folder).mkdir(parents=True, exist_ok=True)
        im.save(root / folder / name, quality=90)
        rows.append((7, 9, 41, 27, i % len(CAR_NAMES) + 1, name))  # 1-based, inclusive (MATLAB)
    savemat(root / "devkit" / annos, {"annotations": _cars_struct(rows)})


def _lane(category, vertices):
    return {"id": "0", "category": category, "attributes": {"laneDirection": "parallel", "laneStyle": "solid"},
            "poly2d": [{"vertices": vertices, "types": "L" * len(vertices), "closed": False}]}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """``$DINOSAL_DATA`` in the appendix's layout, every file in its real format."""
    root = tmp_path_factory.mktemp("datasets")
    bdd = root / "bdd100k"
    labels = bdd / "labels"
    (labels / "det_20").mkdir(parents=True)
    train = [f"0000f77c-{i:08x}.jpg" for i in range(N_TRAIN)]
    val = [f"b1c66a42-{i:08x}.jpg" for i in range(N_TEST)]
    (labels / "det_20" / "det_train.json").write_text(json.dumps(_bdd_frames(bdd / "images/100k/train", train, 0)))
    (labels / "det_20" / "det_val.json").write_text(json.dumps(_bdd_frames(bdd / "images/100k/val", val, 100)))
    # 100K lane labels of the val frames: the frame's lane line, a curb, and a frame without lanes
    lanes = [{"name": n, "labels": [_lane("single white", [[20 + i, H - 1], [26 + i, 16]]),
                                    _lane("road curb", [[0, 30], [10, 16]])]} for i, n in enumerate(val[:2])]
    (labels / "lane" / "polygons").mkdir(parents=True)
    (labels / "lane" / "polygons" / "lane_val.json").write_text(json.dumps(lanes + [{"name": val[2], "labels": []}]))
    # the 10K semantic segmentation (another image set): ids road 0, vegetation 8, sky 10, car 13, unknown 255
    for i in range(2):
        stem = f"7d06fefd-{i:08x}"
        _frame(bdd / "images/10k/val" / f"{stem}.jpg", (30, 20, 44, 31), 20, 200 + i)
        ids = np.full((H, W), 10, np.uint8)
        ids[16:] = 0
        yy, xx = np.mgrid[:H, :W]
        ids[((xx - 7) / 7.0) ** 2 + ((yy - 13) / 9.0) ** 2 <= 1] = 8
        ids[20:32, 30:45] = 13
        ids[0, :4] = 255
        (labels / "sem_seg" / "masks" / "val").mkdir(parents=True, exist_ok=True)
        Image.fromarray(ids, mode="L").save(labels / "sem_seg" / "masks" / "val" / f"{stem}.png")
    cars = root / "stanford_cars"
    (cars / "devkit").mkdir(parents=True)
    names = np.empty((1, len(CAR_NAMES)), dtype=object)
    names[0, :] = CAR_NAMES
    savemat(cars / "devkit" / "cars_meta.mat", {"class_names": names})
    _cars_split(cars, "cars_train", "cars_train_annos.mat", N_TRAIN, 300)
    _cars_split(cars, "cars_test", "cars_test_annos_withlabels.mat", N_TEST, 400)
    return root


def official_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A backbone state dict with the keys and shapes of ``dino_deitsmall8_pretrain.pth`` (DINO's
    ``vision_transformer.py`` names), for a ViT of width 192 and DEPTH blocks: random weights."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.05

    d = WIDTH
    state = {"cls_token": r(1, 1, d), "pos_embed": r(1, 1 + GRID * GRID, d),
             "patch_embed.proj.weight": r(d, 3, PATCH, PATCH), "patch_embed.proj.bias": r(d)}
    for i in range(DEPTH):
        shapes = {"norm1.weight": (d,), "norm1.bias": (d,), "attn.qkv.weight": (3 * d, d), "attn.qkv.bias": (3 * d,),
                  "attn.proj.weight": (d, d), "attn.proj.bias": (d,), "norm2.weight": (d,), "norm2.bias": (d,),
                  "mlp.fc1.weight": (4 * d, d), "mlp.fc1.bias": (4 * d,), "mlp.fc2.weight": (d, 4 * d),
                  "mlp.fc2.bias": (d,)}
        state.update({f"blocks.{i}.{k}": (1 + r(*s)) if k.startswith("norm") and k.endswith("weight") else r(*s)
                      for k, s in shapes.items()})
    state.update({"norm.weight": 1 + r(d), "norm.bias": r(d)})
    return state


def full_checkpoint(state: dict) -> dict:
    """The layout of ``dino_deitsmall8_pretrain_full_checkpoint.pth``: student (DDP: ``module.``) and teacher
    (``backbone.`` and the DINO head, old weight-norm names), optimizer, epoch, the argparse Namespace."""
    head = {"head.mlp.0.weight": torch.zeros(16, WIDTH), "head.mlp.0.bias": torch.zeros(16),
            "head.last_layer.weight_g": torch.ones(32, 1), "head.last_layer.weight_v": torch.zeros(32, 16)}
    teacher = {**{f"backbone.{k}": v for k, v in state.items()}, **head}
    return {"student": {f"module.{k}": v for k, v in teacher.items()}, "teacher": teacher, "optimizer": {},
            "epoch": 800, "args": argparse.Namespace(arch="vit_small", patch_size=8), "dino_loss": {}}


@pytest.fixture
def paper_env(data_root, tmp_path, monkeypatch):
    """The appendix's environment, pointed at the tiny files; a fresh run cache and no release."""
    weights = tmp_path / "dino_deitsmall8_pretrain.pth"
    torch.save(official_state(), weights)
    monkeypatch.setenv(zoo.DATA_ENV, str(data_root))
    monkeypatch.setenv(DINO_WEIGHTS_ENV, str(weights))
    monkeypatch.setenv(runs.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(release.WEIGHTS_ENV, str(tmp_path / "no_release"))
    return weights


# ---------------------------------------------------------------- official weights through the zoo


@pytest.mark.parametrize("layout", ["backbone", "full checkpoint"])
def test_the_zoo_loads_the_official_layout_from_the_local_file(paper_env, layout):
    state = official_state()
    if layout == "full checkpoint":
        torch.save(full_checkpoint(state), paper_env)
    model, card = zoo.get("dino_official", "paper")
    assert (card.kind, card.source, card.path, card.patch) == ("official", "official", str(paper_env), PATCH)
    assert card.img_size == GRID * PATCH and not model.training
    assert model.blocks[0].attn.num_heads == 3  # the heads of DINO's width 192, read from the width
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # bit for bit, nothing renamed
    # a transfer's key holds the file's sha256, never the timm name
    s = transfers.spec("dino_official__ce_vehicles__probe", "paper")
    assert s.parent_ref.identity == {"sha256": release.sha256_file(paper_env)}


# ---------------------------------------------------------------- the transfers on the real readers


def _tiny_tasks(monkeypatch):
    """The paper tasks with n_val = 2 (spec() has no n_val) and a probe of two steps at 32 px (the CLI
    takes no recipe overrides); data files, losses and everything else as the table says."""
    probe = dict(profiles.TRANSFER_TASKS["paper"]["ce_vehicles"].probe, epochs=1, steps_per_epoch=2, batch_size=4,
                 num_workers=0, checkpoint_every=0, eval_batch_size=8)
    tasks = {k: dataclasses.replace(t, n_val=N_VAL, img_size=32, probe=probe)
             for k, t in profiles.TRANSFER_TASKS["paper"].items()}
    monkeypatch.setitem(profiles.TRANSFER_TASKS, "paper", tasks)


def test_a_fine_tune_on_bdd100k_frames_and_its_maps(paper_env, data_root, monkeypatch):
    _tiny_tasks(monkeypatch)
    s = transfers.spec("dino_official__bce_driving", "paper", img_size=32, epochs=1, steps_per_epoch=2,
                       batch_size=4, warmup_epochs=0, num_workers=0, checkpoint_every=0, eval_batch_size=8,
                       snapshot_steps=(0, 2), progress=False)
    assert (s.data.data, s.data.loss, s.config.mode, s.config.layer_decay) == ("bdd100k", "bce", "finetune", 0.75)
    assert s.data.identity["n_files"] == 2 + N_TRAIN + N_TEST  # both label files and every frame they name
    train = transfer_sets.task_set(s.data, "train")
    val = transfer_sets.task_set(s.data, "validation")
    assert (len(train), len(val)) == (N_TRAIN - N_VAL, N_VAL)
    assert train[1].multi_hot.sum() == 0 and train[2].multi_hot.sum() == 2  # no labels; car + pedestrian
    assert train[0].class_names == BDD_CLASSES and train[0].image.shape == (H, W, 3)
    model, card = transfers.load(s)
    assert (card.source, card.steps, card.class_names) == ("trained now", 2, BDD_CLASSES)
    manifest = runs.read_manifest(card.path)
    assert manifest["transfer"]["parent_source"] == "official"
    assert manifest["metrics"]["validation"]["n_images"] == N_VAL
    assert sorted(transfers.snapshots(card)) == [0, 2]
    test = transfers.scores_on_test(model, s, N_TEST)
    assert test.n_images == N_TEST and np.isfinite(test.map)
    # the frames the figures show: the first test frames with a vehicle, resized to a short side
    (i, scene), = transfer_sets.preregistered_scenes(s.data, 1, size=32, patch=PATCH)
    assert i == 0 and scene.image.shape == (32, 48, 3)
    truth = transfer_sets.scene_truth(scene)
    assert truth.parts["vehicles"].any() and set(truth.parts) == {"vehicles"}
    parent, source = transfers.parent_backbone(s)
    assert source == "official"
    tuned = model.backbone.state_dict()
    assert any(not torch.equal(v, tuned[k]) for k, v in parent.state_dict().items())  # the backbone learned
    for net in (parent, model.backbone):  # the transfer chapter's maps, before and after
        m, = localisation.run_methods(net, [scene.image], k=100, tau=0.2)
        assert m.lost.degree.shape == (4, 6) and 0.0 <= transfer_sets.overall_activation(
            localisation.kind_map(m, "inverse degree")) <= 1.0


def test_the_transfers_command_fills_the_cache_the_chapter_reads(paper_env, data_root, monkeypatch, capsys):
    _tiny_tasks(monkeypatch)
    name = "dino_official__ce_vehicles__probe"
    assert cli.release_main(["transfers", "--profile", "paper", "--names", name, "--seeds", "0",
                             "--data-root", str(data_root)]) == 0
    assert f"{name} (parent seed recipe, seed 0): trained now" in capsys.readouterr().out
    s = transfers.spec(name, "paper", data_root=data_root)
    assert (s.data.data, s.data.loss, s.config.mode) == ("stanford_cars", "ce", "probe")
    model, card = transfers.load(s)  # what the transfer chapter calls: found, not trained again
    assert card.source == "run cache" and card.class_names == tuple(CAR_NAMES)
    parent, _ = transfers.parent_backbone(s)
    tuned = model.backbone.state_dict()
    assert all(torch.equal(v, tuned[k]) for k, v in parent.state_dict().items())  # a probe leaves the backbone as it was
    assert 0.0 <= card.metrics["validation"]["top1"] <= 1.0
    cars = read_stanford_cars(data_root / "stanford_cars/devkit/cars_test_annos_withlabels.mat",
                              data_root / "stanford_cars/cars_test", data_root / "stanford_cars/devkit/cars_meta.mat")
    test = transfer_sets.task_set(s.data, "test", N_TEST)
    assert [int(f.labels[0]) for f in test] == [int(a.labels[0]) for a in cars]
    assert np.array_equal(test[0].boxes, [[6, 8, 41, 27]])  # 1-based inclusive -> 0-based exclusive
    assert transfers.scores_on_test(model, s, N_TEST).n_images == N_TEST


# ---------------------------------------------------------------- LOST, TokenCut and claim 2's parts


def test_lost_and_tokencut_on_a_bdd100k_frame(paper_env, data_root):
    model, _ = zoo.get("dino_official", "paper")
    bdd = read_bdd100k(data_root / "bdd100k/labels/det_20/det_val.json", data_root / "bdd100k/images/100k/val")
    image, boxes = localisation.resize_short_side(bdd.image(0), bdd[0].boxes, 32, PATCH)  # the saliency chapter's
    assert image.shape == (32, 48, 3)
    m, = localisation.run_methods(model, [image], k=100, tau=0.2)
    assert m.lost.degree.shape == (4, 6) and m.tokencut.eigvec.shape == (4, 6)
    assert m.attention.heads.shape == (3, 4, 6)
    scores = localisation.score(m, truth_from_boxes(image.shape, boxes))
    assert {scores["lost_hit"], scores["tokencut_hit"]} <= {0.0, 1.0} and np.isfinite(scores["degree_ratio"])


def _regions(frame, side=32, patch=PATCH):
    """The appendix's ``regions`` (there at a short side of 480 px)."""
    rgb = np.asarray(Image.open(frame.image).convert("RGB"))
    image, _ = localisation.resize_short_side(rgb, np.zeros((0, 4)), side, patch)
    small = frame.resized(image.shape[:2])
    present, empty = part_masks(small), np.zeros(image.shape[:2], bool)
    vehicles = np.logical_or.reduce([present.get(c, empty) for c in transfer_sets.VEHICLES])
    return image, {"objects": small.truth().objects, "vehicles": vehicles, **small.truth().parts}


def test_claim_2_parts_from_the_lane_and_sem_seg_labels(paper_env, data_root, monkeypatch):
    """The appendix's claim-2 recipe: parts from the lane and sem_seg readers, the maps of the parent and of its
    BCE fine-tune, their overall activation and relevance mass ratios."""
    _tiny_tasks(monkeypatch)
    bdd = data_root / "bdd100k"
    lanes = read_bdd100k_lanes(bdd / "labels/lane/polygons/lane_val.json", bdd / "images/100k/val", line_width=3)
    sem = read_bdd100k_sem_seg(bdd / "labels/sem_seg/masks/val", bdd / "images/10k/val")
    assert (len(lanes), len(sem)) == (N_TEST, 2)
    assert lanes[0].semantic[30, 22] == 1 and lanes[0].semantic[23, 5] == 0  # the painted line is in, the curb is not
    assert lanes[2].semantic.sum() == 0  # a frame without lanes keeps an empty mask
    f = sem[0]
    assert {"road", "sky", "tree", "car"} <= set(part_masks(f)) and f.truth().objects[25, 35]
    parent, _ = zoo.get("dino_official", "paper")
    tuned, _ = transfers.get("dino_official__bce_driving", "paper", img_size=32, epochs=1, steps_per_epoch=2,
                             batch_size=4, warmup_epochs=0, num_workers=0, checkpoint_every=0, snapshot_steps=(),
                             eval_batch_size=8, progress=False)
    rows = []
    for frames, names in ((lanes, ["lane_marking"]), (sem, ["tree", "road", "sky", "objects", "vehicles"])):
        images, truths = zip(*(_regions(fr) for fr in frames[:200]))
        assert all(t["lane_marking" if "lane_marking" in names else "tree"].shape == im.shape[:2]
                   for im, t in zip(images, truths))
        for name, net in (("parent", parent), ("after BCE", tuned.backbone)):
            maps = [localisation.run_methods(net, [im], tau=None)[0] for im in images]
            scores = localisation.part_scores_of(maps, truths, "inverse degree", parts=names)
            assert 0.0 <= scores.overall_activation <= 1.0 and np.isfinite(np.log2(scores.ratio)).all()
            rows += [{**r, "model": name} for r in scores.rows()]
    table = pd.DataFrame(rows).set_index(["model", "part"])
    assert table.loc[("parent", "lane_marking"), "present"] == 2 and table.loc[("parent", "tree"), "present"] == 2
    assert table.loc[("parent", "vehicles"), "area"] > 0
    assert table.loc[("parent", "sky"), "area"] > table.loc[("parent", "tree"), "area"]


def test_semantic_frames_resize_by_nearest_neighbour(data_root):
    f = read_bdd100k_sem_seg(data_root / "bdd100k/labels/sem_seg/masks/val")[0]
    small = f.resized((20, 32))
    assert small.semantic.shape == (20, 32) and small.semantic_names == f.semantic_names
    assert set(np.unique(small.semantic)) <= set(np.unique(f.semantic))  # ids are never blended
    assert np.array_equal(f.resized((H, W)).semantic, f.semantic)
    with pytest.raises(ValueError, match="size"):
        f.resized((0, 5))


# ---------------------------------------------------------------- DINO from scratch on the BDD100K folder


def test_the_training_command_of_the_paper_recipe(paper_env, data_root, tmp_path, capsys):
    run = tmp_path / "runs" / "dino_bdd"
    argv = ["--recipe", "paper:dino_driving", "--run-dir", str(run), "--set", f"arch=({WIDTH}, 1, 3)", "out_dim=64",
            "head_hidden=64", "head_bottleneck=32", "batch_size=2", "epochs=1", "warmup_epochs=0",
            "num_workers=0", "progress=False"]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.startswith("done after 3/3 steps")  # 6 frames / batch 2: one pass
    log = pd.read_csv(run / "log.csv")
    assert len(log) == 3 and {"loss", "teacher_entropy", "teacher_marginal_entropy", "kl", "collapse"} <= set(log)
    assert np.isfinite(log["loss"]).all()
    backbone, report = load_dino_backbone(run / "checkpoint.pth")  # the teacher, as the appendix says
    assert report.layout == "training:teacher" and backbone.patch_embed.patch_size == (PATCH, PATCH)
    spec = zoo.train_spec(zoo.recipe("dino_driving", "paper"))
    assert (spec.dino.crops.global_size, spec.dino.crops.n_local, spec.dino.img_size) == (224, 8, 224)


def test_a_dino_run_enters_a_transfer_as_a_file(paper_env, data_root, tmp_path, monkeypatch):
    """What the appendix says to do with a torchrun result: transfers.file_spec on its checkpoint."""
    _tiny_tasks(monkeypatch)
    run = tmp_path / "dino_bdd"
    assert cli.main(["--recipe", "paper:dino_driving", "--run-dir", str(run), "--set", f"arch=({WIDTH}, 1, 3)",
                     "out_dim=64", "head_hidden=64", "head_bottleneck=32", "batch_size=3", "epochs=1",
                     "warmup_epochs=0", "num_workers=0", "progress=False"]) == 0
    s = transfers.file_spec(run / "checkpoint.pth", "bce_driving", "paper", img_size=32, epochs=1, steps_per_epoch=1,
                            batch_size=2, warmup_epochs=0, num_workers=0, checkpoint_every=0, snapshot_steps=(),
                            eval_batch_size=8, progress=False)
    model, card = transfers.load(s)
    assert card.name.startswith("file_") and runs.read_manifest(card.path)["transfer"]["parent_source"] == "file"
    teacher, _ = load_dino_backbone(run / "checkpoint.pth")
    parent, _ = transfers.parent_backbone(s)
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in parent.state_dict().items())


def test_the_knn_of_the_appendix_on_stanford_cars(paper_env, monkeypatch):
    from dinosal import knn

    _tiny_tasks(monkeypatch)
    model, _ = zoo.get("dino_official", "paper")
    cars = transfers.spec("dino_official__ce_vehicles__probe", "paper").data
    train, test = transfer_sets.task_set(cars, "train"), transfer_sets.task_set(cars, "test", 8041)

    def square(frames, side=32):  # the appendix uses 224
        return [np.asarray(Image.fromarray(f.image).resize((side, side), Image.BICUBIC)) for f in frames]

    sets = knn.KnnSets(square(train), square(test), np.array([int(f.labels[0]) for f in train]),
                       np.array([int(f.labels[0]) for f in test]), train.class_names)
    assert len(sets.test) == N_TEST and sets.num_classes == len(CAR_NAMES)
    assert 0.0 <= knn.knn_eval(model, sets, k=3) <= 1.0


# ---------------------------------------------------------------- the appendix's numbers follow the recipes

BDD_TRAIN_FRAMES = 70_000  # BDD100K's published training split (images/100k/train)
IMAGENET_TRAIN = 1_281_167  # ImageNet-1k's training images: the DINO README's reference run


def _vit_s_flops(side: int, patch: int, width: int = 384, depth: int = 12) -> float:
    """Forward operations of a ViT-S on one side x side crop, as the appendix counts them."""
    n = (side // patch) ** 2 + 1
    return depth * n * (24 * width ** 2 + 4 * n * width) + (n - 1) * 6 * patch ** 2 * width


def _dino_image_flops(train) -> float:
    """The teacher's forward pass on the global crops, the student's forward and backward passes on all."""
    c = train.crops
    g, loc = _vit_s_flops(c.global_size, train.patch), _vit_s_flops(c.local_size, train.patch)
    return 3 * (c.n_global * g + c.n_local * loc) + c.n_global * g


def test_the_appendix_cost_table_follows_the_recipes():
    from dinosal.config import profile_params

    page = " ".join((ROOT / "book" / "appendix_paper_scale.md").read_text().split())  # line breaks as spaces

    def stated(text):
        assert text in page, f"the appendix should say {text!r}"

    def eflop(ops):
        return f"{ops / 1e18:.3f} EFLOP" if ops < 1e18 else f"{ops / 1e18:.2f} EFLOP"

    dino = zoo.train_spec(zoo.recipe("dino_driving", "paper")).dino
    assert dino.arch == "small" and dino.patch == 8 and dino.steps_per_epoch is None
    per_image = _dino_image_flops(dino)
    ref = IMAGENET_TRAIN * 100 * _dino_image_flops(dataclasses.replace(dino, patch=16))
    rate = ref / (8 * 1.75)  # operations per GPU-day of the README's run
    stated(f"{per_image / 1e9:.0f} GFLOP")
    stated(f"{ref / 1e18:.1f} EFLOP")
    stated(f"{rate / 1e18:.2f} EFLOP per GPU-day")
    for gpus in (1, 8):
        spe = BDD_TRAIN_FRAMES // (dino.batch_size * gpus)
        images = dino.epochs * spe * dino.batch_size * gpus
        stated(f"{dino.epochs} epochs x {spe:,} steps x {dino.batch_size * gpus} | {images:,} | "
               f"{eflop(images * per_image)} | {images * per_image / rate:.1f} GPU-days")
    fwd = _vit_s_flops(224, 8)
    stated(f"{fwd / 1e9:.1f} GFLOP")
    for task in profiles.TRANSFER_TASKS["paper"].values():
        assert task.img_size == 224
        for mode, ops in (("finetune", 3 * fwd), ("probe", fwd)):
            c = transfers.transfer_config(task, mode)
            steps = c.epochs * c.steps_per_epoch
            images = steps * c.batch_size
            stated(f"{steps:,} x {c.batch_size} | {images:,} | {eflop(images * ops)} | "
                   f"{images * ops / rate * 24:.1f} GPU-hours")
            grid = task.grid[mode]
            grid_steps = [e * c.steps_per_epoch for e in grid["epochs"]]
            images = len(grid["lr"]) * sum(grid_steps) * c.batch_size
            stated(f"{len(grid['lr'])} lr x ({' + '.join(f'{s:,}' for s in grid_steps)}) x {c.batch_size} | "
                   f"{images:,} | {eflop(images * ops)} | {images * ops / rate * 24:.1f} GPU-hours")
    theory = profile_params("theory", "paper")
    spec = zoo.ablation_specs(theory)["full DINO"].dino
    images = len(zoo.ABLATIONS) * theory.steps * theory.batch_size
    stated(f"{len(zoo.ABLATIONS)} x {theory.steps:,} x {theory.batch_size} (ViT-S/{spec.patch}) | {images:,} | "
           f"{eflop(images * _dino_image_flops(spec))} | {images * _dino_image_flops(spec) / rate * 24:.1f} GPU-hours")
    sal, tr = profile_params("saliency", "paper"), profile_params("transfer", "paper")
    rows, cols = sal.image_size // 8, round(sal.image_size * 16 / 9 / 8)  # a 16:9 frame, 8 px patches
    stated(f"scores the first {sal.n_eval} with a box, resized to a short side of {sal.image_size} px")
    stated(f"{rows} x {cols} = {rows * cols:,} patches")
    stated(f"(`n_test` {tr.n_test:,}). The maps are scored on the first {tr.n_eval} test frames with a")
    stated(f"box and drawn on the first six with a vehicle, at a short side of {tr.eval_size} px")
    assert tr.n_show == 6 and profile_params("training", "paper").eval_size == tr.eval_size
    arms = [a for a in profiles.TRANSFER_ARMS["paper"] if a[0] != "dino_driving"]
    seeds = profile_params("transfer", "paper").seeds
    stated(f"{len(arms)} arms, each fine-tuned and probed, for {len(seeds)} seeds")
    runs_ = len(arms) * len(seeds)
    hours = 0.0
    for _, task_name in arms:
        task = profiles.TRANSFER_TASKS["paper"][task_name]
        for mode, ops in (("finetune", 3 * fwd), ("probe", fwd)):
            c = transfers.transfer_config(task, mode)
            hours += len(seeds) * c.epochs * c.steps_per_epoch * c.batch_size * ops / rate * 24
    stated(f"trains {runs_} fine-tunes and {runs_} probes: about {hours:.0f} GPU-hours")
