"""Named transfer models: names, keys, data roles, the image rule, the validation grid, cache resolution."""

from __future__ import annotations

import dataclasses
import json
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dinosal import profiles, release, runs, transfer_sets, transfers, zoo
from dinosal.data.export import export_bdd100k, export_stanford_cars
from dinosal.data.sample import Sample
from dinosal.data.synthetic import DrivingConfig, DrivingScenes, SingleVehicles, VehicleConfig
from dinosal.models import create_vit
from dinosal.train.transfer_config import RUN_CONTROL_FIELDS


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh run cache and no release, so nothing of the machine's cache or weights/ is used."""
    monkeypatch.setenv(runs.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(release.WEIGHTS_ENV, str(tmp_path / "weights"))
    return tmp_path / "cache"


def key(name, profile="smoke", **kw):
    return transfers.model_key(transfers.spec(name, profile, **kw))


# ---------------------------------------------------------------- names and keys


@pytest.mark.parametrize("profile", ["smoke", "cpu", "paper"])
def test_names_are_plain_identifiers_that_parse_back(profile):
    names = transfers.names(profile)
    assert len(names) == 2 * len(profiles.TRANSFER_ARMS[profile]) and len(set(names)) == len(names)
    for name in names:
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name), name
        parent, task, mode = transfers.parse(name)
        assert (parent, task) in profiles.TRANSFER_ARMS[profile]
        assert mode == ("probe" if name.endswith("__probe") else "finetune")
        assert parent in zoo.names(profile) and task in profiles.TRANSFER_TASKS[profile]
    assert "dino_world__bce_driving" in transfers.names("cpu") and "random__ce_vehicles__probe" in transfers.names("cpu")
    assert transfers.parse("theory__full_dino__ce_vehicles") == ("theory__full_dino", "ce_vehicles", "finetune")
    with pytest.raises(ValueError, match="<parent>__<task>"):
        transfers.parse("dino_world")


def test_key_changes_with_parent_task_config_and_seeds_not_with_run_control(cache):
    base = key("dino_world__bce_driving")
    assert key("dino_world__bce_driving", progress=False, threads=1, num_workers=2, checkpoint_every=3,
               device="cpu") == base
    assert set(RUN_CONTROL_FIELDS) == {"num_workers", "threads", "checkpoint_every", "stop_at_step", "progress", "device"}
    changed = {
        "parent": key("dino_driving__bce_driving"),
        "parent seed": key("dino_world__bce_driving", parent_seed=1),
        "task": key("dino_world__ce_vehicles"),
        "mode": key("dino_world__bce_driving__probe"),
        "config": key("dino_world__bce_driving", lr=1e-2),
        "steps": key("dino_world__bce_driving", epochs=3),
        "transfer seed": key("dino_world__bce_driving", seed=1),
        "training images": key("dino_world__bce_driving", n_train=16),
        "random init": key("random__bce_driving"),
        "random init seed": key("random__bce_driving", parent_seed=5),
    }
    values = [base] + list(changed.values())
    assert len(set(values)) == len(values), changed
    # the parent enters by its identity: the zoo's key of the DINO spec with that pretraining seed
    s = transfers.spec("dino_world__bce_driving", "smoke", parent_seed=1)
    assert s.parent_ref.identity == {"key": zoo.model_key(zoo.train_spec(zoo.recipe("dino_world", "smoke"), seed=1))}
    assert transfers.spec("random__bce_driving", "smoke", parent_seed=5).parent_ref.identity["seed"] == 5
    with pytest.raises(ValueError, match="stop_at_step"):
        transfers.train_cached(transfers.spec("random__bce_driving", "smoke", stop_at_step=1))


def test_a_reader_named_checkpoint_is_keyed_by_its_file(cache, tmp_path):
    torch.manual_seed(0)
    vit = create_vit((32, 2, 2), patch=8, img_size=32)
    a, b = tmp_path / "a.pth", tmp_path / "b.pth"
    torch.save(vit.state_dict(), a)
    torch.save({k: v + 1 for k, v in vit.state_dict().items()}, b)
    sa, sb = (transfers.file_spec(p, "bce_driving", "smoke", heads=2) for p in (a, b))
    assert sa.name == f"file_{release.sha256_file(a)[:8]}__bce_driving" and sa.parent_ref.kind == "file"
    assert transfers.model_key(sa) != transfers.model_key(sb)
    backbone, source = transfers.parent_backbone(sa)
    assert source == "file" and all(torch.equal(v, vit.state_dict()[k]) for k, v in backbone.state_dict().items())


# ---------------------------------------------------------------- data roles


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_data_roles_are_pinned_to_the_zoo_recipes(profile):
    tasks = profiles.TRANSFER_TASKS[profile]
    drive = transfers.spec("dino_world__bce_driving", profile).data
    dino = zoo.train_spec(zoo.recipe("dino_driving", profile)).data_config
    assert (drive.data, drive.loss) == ("driving", "bce")
    assert dataclasses.replace(drive.config, length=dino.length) == dino      # every field but the length
    assert drive.config.length == tasks["bce_driving"].n_train
    cars = transfers.spec("dino_world__ce_vehicles", profile).data
    assert (cars.data, cars.loss) == ("vehicles", "ce") and isinstance(cars.config, VehicleConfig)
    for name, t in tasks.items():
        for mode in ("finetune", "probe"):
            cfg = transfers.transfer_config(t, mode)
            assert cfg.img_size % 8 == 0 and cfg.loss == t.loss and cfg.mode == mode
            assert 1 <= len(t.grid[mode]["lr"]) <= 3 and 1 <= len(t.grid[mode]["epochs"]) <= 2  # pre-registered size
    paper = profiles.TRANSFER_TASKS["paper"]
    assert paper["bce_driving"].data == "bdd100k" and "det_20" in paper["bce_driving"].data_config["labels"]
    assert paper["ce_vehicles"].data == "stanford_cars"
    assert all(v.endswith(".mat") for k, v in paper["ce_vehicles"].data_config.items() if "annos" in k or k == "meta")


def test_cpu_finetune_fits_three_minutes_at_the_measured_step_speed():
    # measured on this project's machine (a busy core, batch 32): 0.18 s per fine-tune step
    for t in profiles.TRANSFER_TASKS["cpu"].values():
        for epochs in t.grid["finetune"]["epochs"] + (t.finetune["epochs"],):
            assert epochs * t.finetune["steps_per_epoch"] * 0.18 <= 180


def test_synthetic_splits_are_the_zoo_splits(cache):
    data = transfers.spec("random__bce_driving", "smoke", n_train=8).data
    train = transfer_sets.task_set(data, "train")
    gen = DrivingScenes(data.config)
    assert len(train) == 8 and all(np.array_equal(train[i].image, gen[i].image) for i in range(8))
    assert transfer_sets.task_set(data, "train")[3].image.tobytes() == gen[3].image.tobytes()  # cached, same
    val = transfer_sets.task_set(data, "validation")
    ref = zoo.held_out_samples(data.config, data.n_val, split="validation")
    assert len(val) == data.n_val and all(np.array_equal(a.image, b.image) for a, b in zip(val, ref))
    test = transfer_sets.task_set(data, "test", 3)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(test, zoo.held_out_samples(data.config, 3, split="test")))
    with pytest.raises(ValueError, match="how many"):
        transfer_sets.task_set(data, "test")


def test_the_paper_tasks_read_bdd100k_and_stanford_cars(tmp_path, monkeypatch):
    drive = [s for s in DrivingScenes(DrivingConfig(size=48, n_objects=(1, 3), seed=2))[:12] if len(s.labels)]
    cars = SingleVehicles(VehicleConfig(size=48, seed=2))[:10]
    root = tmp_path / "data"
    root.mkdir()
    export_bdd100k(drive[:8], root / "bdd100k", split="train")
    val = export_bdd100k(drive[8:], tmp_path / "bdd_val", split="val")
    val.images.rename(root / "bdd100k" / "images" / "100k" / "val")
    val.annotations.rename(root / "bdd100k" / "labels" / "det_20" / "det_val.json")
    export_stanford_cars(cars[:7], root / "stanford_cars")
    test = export_stanford_cars(cars[7:], tmp_path / "cars_test", split="test")
    test.annotations.rename(root / "stanford_cars" / "devkit" / "cars_test_annos_withlabels.mat")
    test.images.rename(root / "stanford_cars" / "cars_test")
    tasks = {k: dataclasses.replace(t, n_val=2, n_train=100) for k, t in profiles.TRANSFER_TASKS["paper"].items()}
    monkeypatch.setitem(profiles.TRANSFER_TASKS, "paper", tasks)
    s = transfers.spec("random__bce_driving", "paper", data_root=root)
    assert s.data.identity["n_files"] == 2 + len(drive)
    train, val = transfer_sets.task_set(s.data, "train"), transfer_sets.task_set(s.data, "validation")
    assert (len(train), len(val), len(transfer_sets.task_set(s.data, "test", 50))) == (6, 2, len(drive) - 8)
    item = val[1]
    assert item.image.shape == drive[7].image.shape and item.multi_hot.shape == (10,)
    names = {item.class_names[k] for k in np.flatnonzero(item.multi_hot)}
    assert names == {drive[7].class_names[k] for k in drive[7].labels}
    c = transfers.spec("random__ce_vehicles", "paper", data_root=root).data
    assert [int(x.labels[0]) for x in transfer_sets.task_set(c, "test", 9)] == [int(v.labels[0]) for v in cars[7:]]
    assert len(transfer_sets.task_set(c, "train")) == 5
    shown = transfer_sets.preregistered_scenes(s.data, 1, size=64)
    assert shown[0][1].image.shape[0] == 64 and transfer_sets.scene_truth(shown[0][1]).parts.keys() == {"vehicles"}


# ---------------------------------------------------------------- the pre-registered images and regions


def test_preregistered_scenes_are_the_first_that_follow_the_rule():
    cfg = DrivingConfig(size=48, seed=7)
    shown = transfer_sets.preregistered_scenes(transfers.TaskData("t", "bce", "driving", cfg, 1, 1), n=4, size=48)
    gen = DrivingScenes(zoo.split_config(cfg, "test", 48, length=1000))
    wanted = [i for i in range(200) if transfer_sets.shows_preregistered(gen[i])][:4]
    assert [i for i, _ in shown] == wanted and len(wanted) == 4
    for i, s in shown:
        names = {s.class_names[k] for k in s.labels}
        parts = set(np.asarray(s.semantic_names)[np.unique(s.semantic[s.semantic != 255])])
        assert names & set(transfer_sets.VEHICLES) and parts & {"lane_marking", "tree"}
        assert np.array_equal(s.image, gen[i].image)
    with pytest.raises(ValueError, match="driving scenes"):
        transfer_sets.preregistered_scenes(transfers.TaskData("t", "ce", "vehicles", VehicleConfig(), 1, 1))


def _scene(labels, parts):
    names = ("sky", "road", "lane_marking", "tree")
    classes = ("car", "truck", "bus", "pedestrian", "bicycle", "motorcycle")
    semantic = np.zeros((8, 8), np.uint8)
    for j, p in enumerate(parts):
        semantic[j] = names.index(p)
    masks = np.zeros((len(labels), 8, 8), bool)
    for j in range(len(labels)):
        masks[j, 6 + j % 2, j] = True
        semantic[6 + j % 2, j] = len(names) + labels[j]
    return Sample(np.zeros((8, 8, 3), np.uint8), np.zeros((len(labels), 4), np.float32), np.asarray(labels, np.int64),
                  masks, semantic, np.zeros(6, np.float32), classes, names + classes)


def test_the_rule_and_the_regions_on_hand_made_scenes():
    assert transfer_sets.shows_preregistered(_scene([0], ["road", "tree"]))
    assert transfer_sets.shows_preregistered(_scene([5, 3], ["lane_marking"]))          # motorcycle
    assert not transfer_sets.shows_preregistered(_scene([3, 4], ["tree"]))               # no vehicle
    assert not transfer_sets.shows_preregistered(_scene([0], ["road", "sky"]))           # no lane, no tree
    s = _scene([0, 3], ["sky", "road", "tree"])
    t = transfer_sets.scene_truth(s)
    assert np.array_equal(t.parts["vehicles"], s.masks[0]) and not (t.parts["vehicles"] & s.masks[1]).any()
    assert np.array_equal(t.parts["background"], ~t.objects)
    assert transfer_sets.overall_activation(np.array([[0.0, 1.0], [0.5, 0.5]])) == 0.5
    assert np.isnan(transfer_sets.overall_activation(np.ones((2, 2))))


# ---------------------------------------------------------------- the validation grid


def test_select_ranks_by_the_task_metric_caches_and_breaks_ties_by_grid_order(cache):
    calls = []

    def evaluate(s):
        calls.append((s.config.lr, s.config.epochs))
        return {"map": {1e-3: 0.3, 4e-3: 0.5}[s.config.lr], "top1": 1.0 - s.config.lr, "corloc": 99.0}

    sel = transfers.select("bce_driving", "smoke", evaluate=evaluate)
    assert sel.metric == "map" and sel.best == {"lr": 4e-3, "epochs": 2} and len(calls) == 2
    assert [r["lr"] for r in sel.rows] == [1e-3, 4e-3] and {r["key"] for r in sel.rows} == {
        key("dino_world__bce_driving", lr=lr, epochs=2) for lr in (1e-3, 4e-3)}
    assert transfers.select("bce_driving", "smoke", evaluate=evaluate) == sel and len(calls) == 2   # cached
    assert transfers.select("bce_driving", "smoke", only_cached=True) == sel
    assert transfers.select("bce_driving", "smoke", "probe", only_cached=True) is None              # not run
    ce = transfers.select("ce_vehicles", "smoke", evaluate=lambda s: {"top1": 0.5, "map": s.config.lr})
    assert ce.metric == "top1" and ce.best == {"lr": 1e-3, "epochs": 2}                              # a tie: first
    assert transfers.choose([np.nan, 0.2, 0.2, None]) == 1
    with pytest.raises(ValueError, match="finite"):
        transfers.choose([np.nan, None])
    assert transfers.grid("bce_driving", "cpu") == [{"lr": lr, "epochs": e} for lr in (1e-3, 4e-3, 1.6e-2) for e in (4, 8)]


# ---------------------------------------------------------------- resolution: run cache -> release -> training


def test_resolution_order_run_cache_then_release_then_training(cache, monkeypatch):
    from dinosal import transfers as tr

    s = transfers.spec("random__bce_driving", "smoke", n_train=16, progress=False)
    trained, found = [], []
    real_train = tr.train_transfer
    monkeypatch.setattr(tr, "train_transfer", lambda *a, **k: trained.append(1) or real_train(*a, **k))
    monkeypatch.setattr(release, "find", lambda key, root=None, kind="dino": found.append((key, kind)))
    path, source = transfers.resolve(s)                                  # nothing anywhere: trained
    assert source == "trained now" and trained == [1] and found == [(transfers.model_key(s), "transfer")]
    manifest = runs.read_manifest(path)
    assert manifest["transfer"]["parent_source"] == "random init" and 0 <= manifest["metrics"]["validation"]["map"] <= 1
    assert set(transfers.snapshots(transfers.load(s)[1])) == {0, 2, 4}
    path2, source2 = transfers.resolve(s)                                # the run cache: nothing else is asked
    assert (path2, source2, trained, len(found)) == (path, "run cache", [1], 1)

    other = transfers.spec("random__bce_driving", "smoke", n_train=16, seed=3, progress=False)
    released = cache / "released_copy"
    entry = SimpleNamespace(head_only=False)  # a whole released classifier
    monkeypatch.setattr(release, "find", lambda key, root=None, kind="dino": entry if kind == "transfer" else None)
    monkeypatch.setattr(release, "materialise", lambda e: released if e is entry else None)
    assert transfers.train_cached(other) == released and trained == [1]   # a released checkpoint: no training
    assert transfers.train_cached(other, use_release=False) != released and trained == [1, 1]


def test_probe_keeps_the_parent_bit_identical_and_the_fine_tune_moves_it(cache):
    probe = transfers.spec("random__bce_driving__probe", "smoke", n_train=16, progress=False)
    model, card = transfers.load(probe)
    parent, source = transfers.parent_backbone(probe)
    assert source == "random init" and card.mode == "probe" and card.class_names[0] == "car"
    assert all(torch.equal(v, model.backbone.state_dict()[k]) for k, v in parent.state_dict().items())
    fine, _ = transfers.get("random__bce_driving", "smoke", n_train=16, progress=False)
    assert not all(torch.equal(v, fine.backbone.state_dict()[k]) for k, v in parent.state_dict().items())
    step0 = transfers.load_snapshot(transfers.load(transfers.spec("random__bce_driving", "smoke", n_train=16))[1], 0)
    assert all(torch.equal(v, step0.backbone.state_dict()[k]) for k, v in parent.state_dict().items())
    table = transfers.recipe_table("cpu")
    assert list(table.columns) == ["bce_driving", "ce_vehicles"] and table.loc["finetune: batch x steps", "bce_driving"] == "32 x 800"
    assert json.loads(json.dumps(card.metrics))["validation"]["n_images"] == 16


def test_command_line_trains_the_transfers_into_the_run_cache(cache, capsys):
    from dinosal.cli import release_main

    assert release_main(["transfers", "--profile", "smoke", "--names", "random__ce_vehicles", "--seeds", "0",
                         "--threads", "1"]) == 0
    captured = capsys.readouterr()
    out = captured.out + captured.err
    s = transfers.spec("random__ce_vehicles", "smoke")
    assert (transfers.artifact_dir(s) / runs.MANIFEST).is_file()
    assert release_main(["transfers", "--profile", "smoke", "--names", "nosuch__ce_vehicles"]) == 1
    assert "random__ce_vehicles (parent seed recipe, seed 0): trained now" in out
