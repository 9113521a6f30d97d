"""The findings chapter's controls: named like the arms, resolved like them, each one change from its arm."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch

from dinosal import profiles, release, runs, transfer_sets, transfers, zoo
from dinosal.data.synthetic import DrivingScenes
from dinosal import exposure as dinosal_exposure
from dinosal.exposure import ExposureSpec
from dinosal.losses import transfer_loss
from dinosal.models import PatchClassifier
from dinosal.train.transfer import build_classifier
from dinosal.train.transfer_data import TransferTransform, evaluate_transfer, sample_target


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh run cache and no release, so nothing of the machine's cache or weights/ is used."""
    monkeypatch.setenv(runs.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(release.WEIGHTS_ENV, str(tmp_path / "weights"))
    return tmp_path / "cache"


# The keys of the transfers of the study (released models are found by them), so no refactor may move one;
# a recipe change renews this table on purpose (cpu probes: lr 4.0, the validation grid's winner).
PINNED_TRANSFER_KEYS = {
    ("smoke", "dino_world__bce_driving"): "f37a904ee41e5cd4",
    ("smoke", "dino_world__ce_vehicles"): "7f97ec9e59f67146",
    ("smoke", "dino_driving__bce_driving"): "1ed374556946f5b2",
    ("smoke", "random__bce_driving"): "133e97c9e9e0d38f",
    ("smoke", "random__ce_vehicles"): "752a866f789d2fbd",
    ("smoke", "dino_world__bce_driving__probe"): "cb315f36142daf46",
    ("smoke", "dino_world__ce_vehicles__probe"): "c5de61d95499ae2b",
    ("smoke", "dino_driving__bce_driving__probe"): "7ddfb949054b63bf",
    ("smoke", "random__bce_driving__probe"): "e8c61c22d8e3af9c",
    ("smoke", "random__ce_vehicles__probe"): "86d763f2ec22fbc9",
    ("cpu", "dino_world__bce_driving"): "2496f425cb34a9e9",
    ("cpu", "dino_world__ce_vehicles"): "acfd1dcaecf74389",
    ("cpu", "dino_driving__bce_driving"): "e08c695ded560910",
    ("cpu", "random__bce_driving"): "209a702e84601582",
    ("cpu", "random__ce_vehicles"): "3a1a41a4ccd403fa",
    ("cpu", "dino_world__bce_driving__probe"): "f10ed5576aae3b37",
    ("cpu", "dino_world__ce_vehicles__probe"): "dc424033a858862a",
    ("cpu", "dino_driving__bce_driving__probe"): "4756df129a0e914b",
    ("cpu", "random__bce_driving__probe"): "b640b5dcb2b6266f",
    ("cpu", "random__ce_vehicles__probe"): "4f42de7ba69e30c9",
}


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_the_keys_of_the_study_transfers_are_pinned(profile):
    pinned = {n: k for (p, n), k in PINNED_TRANSFER_KEYS.items() if p == profile}
    assert set(pinned) == set(transfers.names(profile)), "a new arm: pin its key here"
    assert {n: transfers.model_key(transfers.spec(n, profile)) for n in pinned} == pinned


# ---------------------------------------------------------------- names and what each control is


@pytest.mark.parametrize("profile", ["smoke", "cpu", "paper"])
def test_controls_are_named_apart_from_the_arms_and_the_release(profile):
    names = transfers.controls(profile)
    table = profiles.TRANSFER_CONTROLS[profile]
    assert len(names) == len(table) and not set(names) & set(transfers.names(profile))
    assert not set(table) & set(profiles.TRANSFER_TASKS[profile])           # a control's name is not a task's
    for name in names:
        parent, task_name, mode = transfers.parse(name)
        c = transfers.control(task_name, profile)
        assert mode == "finetune" and parent == c.parent and (parent, c.task) in profiles.TRANSFER_ARMS[profile]
        assert c.claim
    if profile != "paper":
        knob_levels = {f"dino_world__{task}" for k in profiles.KNOBS.values() for task, _ in k.levels
                       if task != "bce_driving" and task in table}
        assert set(names) == {f"dino_world__{n}" for n in ("bce_driving_shuffled", "ce_driving_single", "bce_vehicles",
                                                           "dense_driving", "box_driving", "dino_driving_exposure")
                              } | knob_levels
        assert len(knob_levels) == (6 if profile == "cpu" else 5)  # smoke: no q = 0.5 level (infeasible there)
        # the findings figure draws the box-label fine-tune: the one control released as a model
        assert {s.name for _, s in transfers.catalogue(profile)} & set(names) == {"dino_world__box_driving"}


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_each_control_is_its_arm_with_one_change(profile):
    overrides = dict(lr=1e-3, epochs=2)                                       # e.g. the grid's winners
    for name in transfers.controls(profile):
        parent, task_name, _ = transfers.parse(name)
        c = transfers.control(task_name, profile)
        s, arm = (transfers.spec(n, profile, seed=1, **overrides) for n in (name, f"{parent}__{c.task}"))
        assert transfers.model_key(s) != transfers.model_key(arm)
        if c.dino:
            assert isinstance(s, ExposureSpec) and s.data.config == arm.data.config
            assert (s.dino.epochs, s.dino.steps_per_epoch, s.dino.seed) == (2, arm.config.steps_per_epoch, 1)
            continue
        assert s.parent_ref == arm.parent_ref
        loss = c.changes.get("loss", arm.config.loss)
        assert s.config == arm.config.replace(loss=loss) and s.data.loss == loss
        extra = c.changes.get("data_config", {})
        assert s.data.config == dataclasses.replace(arm.data.config, **extra) and s.data.n_train == arm.data.n_train
        assert s.data.shuffle_labels == c.shuffle_labels


def test_a_control_selects_as_its_arm(cache):
    def evaluate(s):
        return {"map": {1e-3: 0.3, 4e-3: 0.5}[s.config.lr], "top1": s.config.lr}

    arm = transfers.select("bce_driving", "smoke", evaluate=evaluate)
    for name in ("bce_driving_shuffled", "dense_driving", "dino_driving_exposure"):
        assert transfers.select(name, "smoke", only_cached=True) == arm
    assert transfers.select("bce_vehicles", "smoke", only_cached=True) is None     # ce_vehicles' grid: not run


# ---------------------------------------------------------------- the data of the controls


def test_shuffled_labels_keep_the_histogram_and_change_the_pairing(cache):
    s = transfers.spec("dino_world__bce_driving_shuffled", "smoke", n_train=24)
    arm = transfers.spec("dino_world__bce_driving", "smoke", n_train=24)
    shuffled, true = transfer_sets.task_set(s.data, "train"), transfer_sets.task_set(arm.data, "train")
    assert isinstance(shuffled, transfer_sets.ShuffledLabels) and len(shuffled) == len(true) == 24
    a = np.stack([x.multi_hot for x in shuffled])
    b = np.stack([x.multi_hot for x in true])
    assert sorted(map(tuple, a)) == sorted(map(tuple, b))                      # the same labels
    assert (a != b).any(axis=1).sum() >= 5                                     # on other images
    assert all(np.array_equal(x.image, y.image) and np.array_equal(x.boxes, y.boxes) for x, y in zip(shuffled, true))
    perm = np.random.default_rng(0).permutation(24)
    assert np.array_equal(a, b[perm]) and shuffled.class_names == true.class_names
    again = transfer_sets.task_set(s.data, "train")
    assert np.array_equal(np.stack([x.multi_hot for x in again]), a)           # a fixed seed
    val = transfer_sets.task_set(s.data, "validation")                         # held-out labels stay true
    ref = transfer_sets.task_set(arm.data, "validation")
    assert all(np.array_equal(x.multi_hot, y.multi_hot) for x, y in zip(val, ref))
    with pytest.raises(ValueError, match="shuffle_labels"):
        transfer_sets.task_data("x", transfers.task("ce_vehicles", "smoke"), shuffle_labels=0)


def test_the_single_class_ce_set_has_one_class_per_image_the_scene_class(cache):
    s = transfers.spec("dino_world__ce_driving_single", "smoke", n_train=32)
    assert s.data.config.single_class_scenes == 1.0 and s.config.loss == "ce"
    train = transfer_sets.task_set(s.data, "train")
    plan = DrivingScenes(s.data.config)
    assert 16 <= len(train) < 32                                               # the scenes with an object
    for i, item in enumerate(train):
        k = train.indices[i]
        placed = set(plan.scene_plan(k).classes)
        assert len(item.labels) >= 1 and len(set(item.labels.tolist())) == 1 and len(placed) == 1
        label = int(sample_target(item, "ce", len(item.class_names)))
        assert item.class_names[label] == placed.pop() and item.multi_hot.sum() == 1


def test_dense_image_level_targets_are_the_image_multi_hot_on_every_patch(samples):
    item = next(x for x in samples if x.multi_hot.sum() >= 1)
    c = len(item.multi_hot)
    for train in (True, False):
        x, t = TransferTransform("patch_image_bce", c, img_size=32, patch=8, train=train)(item)
        assert x.shape == (3, 32, 32) and t.shape == (16, c)
        assert torch.equal(t, torch.from_numpy(item.multi_hot).expand(16, c))
    box = TransferTransform("patch_bce", c, img_size=32, patch=8, train=False)(item)[1]
    assert not torch.equal(box, t)                                             # boxes label fewer patches
    assert transfer_loss(torch.zeros(2, 16, c), torch.stack([t, t]), "patch_image_bce").item() == pytest.approx(np.log(2))


# ---------------------------------------------------------------- each control resolves and trains on smoke data


def test_each_classifier_control_resolves_and_trains(cache):
    heads = {}
    for name in transfers.controls("smoke"):
        s = transfers.spec(name, "smoke", n_train=16, progress=False)
        if isinstance(s, ExposureSpec):
            continue
        path, source = transfers.resolve(s)
        assert source == "trained now" and transfers.resolve(s) == (path, "run cache")
        model, card = transfers.load(s)
        assert card.key == transfers.model_key(s) and card.steps == 4 and set(transfers.snapshots(card)) == {0, 2, 4}
        val = card.metrics["validation"]
        assert 0 <= val["map"] <= 1 and (val["top1"] is not None) == (s.config.loss == "ce")
        heads[s.task] = model
    assert isinstance(heads["dense_driving"], PatchClassifier) and isinstance(heads["box_driving"], PatchClassifier)
    assert heads["bce_vehicles"].head.multi_label and not heads["ce_driving_single"].head.multi_label
    # the dense head trained on image labels is scored as the box head: per patch against the boxes
    val = transfer_sets.task_set(transfers.spec("dino_world__box_driving", "smoke").data, "validation", 4)
    scores = evaluate_transfer(heads["dense_driving"], val, 32, "patch_image_bce")
    assert scores.loss == "patch_bce" and scores.n_items == 4 * 16
    assert isinstance(build_classifier(heads["dense_driving"].backbone, 3, "patch_image_bce"), PatchClassifier)


def test_the_exposure_run_starts_from_the_parent_bit_for_bit(cache, monkeypatch):
    asked = []
    real_find = release.find
    monkeypatch.setattr(release.store, "find", lambda key, root=None, kind="dino": asked.append((key, kind))
                        or real_find(key, root, kind))  # what release.released_artifact asks
    s = transfers.spec("dino_world__dino_driving_exposure", "smoke", n_train=16, progress=False)
    backbone, card = transfers.load(s)
    assert transfers.key_view(s) == dinosal_exposure.key_view(s)
    assert (transfers.model_key(s), "dino") in asked                         # run cache, release, then training
    assert card.mode == "dino" and card.steps == 4 and card.class_names == () and card.source == "trained now"
    parent, _ = zoo.get("dino_world", "smoke")
    assert transfers.parent_backbone(s)[1] == "run cache" and all(
        torch.equal(v, parent.state_dict()[k]) for k, v in transfers.parent_backbone(s)[0].state_dict().items())
    step0 = transfers.load_snapshot(card, 0)
    assert set(transfers.snapshots(card)) == {0, 2, 4}
    assert all(torch.equal(v, step0.state_dict()[k]) for k, v in parent.state_dict().items())
    assert not all(torch.equal(v, backbone.state_dict()[k]) for k, v in parent.state_dict().items())
    manifest = runs.read_manifest(card.path)
    assert manifest["exposure"]["parent_key"] == zoo.model_key(zoo.train_spec(zoo.recipe("dino_world", "smoke")))
    assert transfers.resolve(s)[1] == "run cache"
    # the key follows the parent (its pretraining seed), the images, the steps and the seed; not run control
    k = transfers.model_key
    other = {k(transfers.spec(s.name, "smoke", **{"n_train": 16, **kw})) for kw in
             (dict(parent_seed=1), dict(seed=1), dict(epochs=3), dict(n_train=8))}
    assert len(other) == 4 and k(s) not in other
    assert k(transfers.spec(s.name, "smoke", n_train=16, threads=1, num_workers=1, progress=True)) == k(s)
    assert k(s) not in {zoo.model_key(zoo.train_spec(zoo.recipe(n, "smoke"))) for n in ("dino_world", "dino_driving")}
    with pytest.raises(ValueError, match="DINO recipe"):
        transfers.spec("random__dino_driving_exposure", "smoke")
    with pytest.raises(ValueError, match="no probe"):
        transfers.spec("dino_world__dino_driving_exposure__probe", "smoke")


def test_the_exposure_run_is_released_and_materialised_like_a_dino_model(cache):
    s = transfers.spec("dino_world__dino_driving_exposure", "smoke", n_train=16, progress=False)
    trained, card = transfers.load(s)
    entry = release.export_artifact(card.path, "dino_world__dino_driving_exposure__s0", "smoke", dtype="float32",
                                    snapshots=False)
    assert entry.kind == "dino" and entry.key == transfers.model_key(s)
    shutil.rmtree(card.path)                                                   # not in the run cache any more
    backbone, again = transfers.load(s)
    assert again.source == "released" and again.key == card.key
    assert transfers.release_name(transfers.spec(s.name, "smoke", parent_seed=1, seed=2)) == f"{s.name}__p1__s2"
    assert all(torch.equal(v, backbone.state_dict()[k]) for k, v in trained.state_dict().items())


def test_the_command_line_trains_a_control_by_name(cache, capsys):
    from dinosal.cli import release_main

    assert release_main(["transfers", "--profile", "smoke", "--names", "dino_world__bce_driving_shuffled", "--seeds",
                         "0", "--threads", "1"]) == 0
    assert (transfers.artifact_dir(transfers.spec("dino_world__bce_driving_shuffled", "smoke")) / runs.MANIFEST).is_file()
    assert "dino_world__bce_driving_shuffled (parent seed recipe, seed 0): trained now" in "".join(capsys.readouterr())


def test_the_paper_controls_read_the_real_data(tmp_path, monkeypatch):
    from dinosal.data.export import export_bdd100k, export_stanford_cars
    from dinosal.data.synthetic import DrivingConfig, SingleVehicles, VehicleConfig

    drive = [s for s in DrivingScenes(DrivingConfig(size=48, n_objects=(1, 3), seed=2))[:16] if len(s.labels)][:12]
    cars = SingleVehicles(VehicleConfig(size=48, seed=2))[:10]
    root = tmp_path / "data"
    root.mkdir()
    export_bdd100k(drive[:10], root / "bdd100k", split="train")
    val = export_bdd100k(drive[10:], tmp_path / "bdd_val", split="val")
    val.images.rename(root / "bdd100k" / "images" / "100k" / "val")
    val.annotations.rename(root / "bdd100k" / "labels" / "det_20" / "det_val.json")
    export_stanford_cars(cars[:8], root / "stanford_cars")
    test = export_stanford_cars(cars[8:], tmp_path / "cars_test", split="test")
    test.annotations.rename(root / "stanford_cars" / "devkit" / "cars_test_annos_withlabels.mat")
    test.images.rename(root / "stanford_cars" / "cars_test")
    tasks = {k: dataclasses.replace(t, n_val=2, n_train=100) for k, t in profiles.TRANSFER_TASKS["paper"].items()}
    monkeypatch.setitem(profiles.TRANSFER_TASKS, "paper", tasks)
    arm = transfers.spec("dino_official__bce_driving", "paper", data_root=root)
    s = transfers.spec("dino_official__bce_driving_shuffled", "paper", data_root=root)
    true, shuffled = (transfer_sets.task_set(x.data, "train") for x in (arm, s))
    a, b = (np.stack([x.multi_hot for x in t]) for t in (shuffled, true))
    assert len(a) == 8 and sorted(map(tuple, a)) == sorted(map(tuple, b)) and not np.array_equal(a, b)
    assert np.array_equal(shuffled.multi_hot_of(3), a[3]) and np.array_equal(shuffled[3].boxes, true[3].boxes)
    assert transfers.model_key(s) != transfers.model_key(arm) and s.parent_ref == arm.parent_ref
    cars = transfers.spec("dino_official__bce_vehicles", "paper", data_root=root)
    item = transfer_sets.task_set(cars.data, "train")[0]
    assert cars.config.loss == "bce" and item.multi_hot.sum() == 1 and item.multi_hot[item.labels[0]] == 1
    for name, loss in (("dense_driving", "patch_image_bce"), ("box_driving", "patch_bce")):
        d = transfers.spec(f"dino_official__{name}", "paper", data_root=root)
        assert (d.config.loss, d.data.data, d.data.identity) == (loss, "bdd100k", arm.data.identity)
