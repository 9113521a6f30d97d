"""The classifier-transfer tables: tasks, arms, controls and the co-occurrence knobs (plain data).

Split out of :mod:`dinosal.profiles` (which re-exports every name here): the
tasks a zoo model is transferred to (:data:`TRANSFER_TASKS` of
:class:`TransferTask`: data roles, recipes, validation grids), which parent
goes to which task (:data:`TRANSFER_ARMS`), and the findings chapter's
controls and knob levels (:data:`TRANSFER_CONTROLS` of
:class:`TransferControl`, :data:`KNOBS` of :class:`Knob`). Imports nothing
of :mod:`dinosal`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

# DrivingScenes with a road, sky and roadside that vary little between scenes (the prototype's finding:
# with fully varied backgrounds, attention follows the road layout, which tells scenes apart best), and
# 1-3 objects drawn 1.6x larger (12 % of the image instead of 8 %; appendix runs d1 and d2).
CPU_DRIVING = dict(size=64, seed=0, background_variability=0.2, object_scale=1.6, n_objects=(1, 3))
"""The cpu profile's DrivingScenes (the dino_driving recipe's data and the driving task's)."""

# --------------------------------------------------------------------------
# Classifier transfer (the paper's experiment): the tasks, their data roles
# and recipes, and the arms (parent zoo model x task) each profile trains.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferTask:
    """One classification task a zoo model is transferred to (:mod:`dinosal.transfers`).

    loss: ``"bce"`` (one sigmoid + binary cross-entropy per class on the
        multi-hot labels of the classes present) or ``"ce"`` (one class per
        image).
    data: ``"driving"`` -- DrivingScenes with ``data_config``, which is the
        exact generator configuration the profile's ``dino_driving`` was
        trained on (every field but ``length``; tests/test_transfers.py pins
        it), so its training images are the first ``n_train`` images DINO saw
        (the BDD100K role); ``"vehicles"`` -- SingleVehicles, one vehicle
        type per image (the Stanford Cars role); ``"bdd100k"`` /
        ``"stanford_cars"`` (paper) -- the real data through
        :func:`dinosal.data.readers.read_bdd100k` /
        :func:`~dinosal.data.readers.read_stanford_cars`, with ``data_config``
        naming the files under the data root (``$DINOSAL_DATA`` or the
        chapter's ``data_root``).
    n_train: training images: items ``0 .. n_train-1`` of the generator, or
        the first ``n_train`` of the training file after its last ``n_val``
        items are held out (real data).
    n_val: validation images (every choice: the lr / steps grid). Synthetic:
        the first ``n_val`` with an object of the validation split (dataset
        seed + 1000); real data: the last ``n_val`` items of the training file.
    img_size: side of the network input (training crops and evaluation resize), px.
    finetune, probe: :class:`~dinosal.train.transfer_config.TransferConfig`
        fields of each mode (over :meth:`TransferConfig.recipe`): batch,
        steps (``epochs * steps_per_epoch``), learning rates, snapshots.
    grid: ``{mode: {"lr": (...), "epochs": (...)}}``, the validation grid of
        :func:`dinosal.transfers.select` (at most 3 learning rates x 2 step
        counts, book/preregistration.md); ranked by mAP (bce) or top-1 (ce).
    select_parent: the zoo model the grid is run from; its winner serves every
        parent of the task, so the arms differ only in their parent.
    """

    loss: str
    data: str
    data_config: dict
    n_train: int
    n_val: int
    img_size: int
    finetune: dict = field(default_factory=dict)
    probe: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    select_parent: str = "dino_world"


# smoke: the tiny network at 32 px, four steps: the code path only.
_SMOKE_FINETUNE = dict(batch_size=8, epochs=2, steps_per_epoch=2, warmup_epochs=0, lr=4e-3, drop_path=0.0,
                       snapshot_steps=(0, 2, 4), eval_batch_size=32)
_SMOKE_PROBE = dict(batch_size=8, epochs=2, steps_per_epoch=2, lr=1.0, augment=False, precompute_features=True,
                    eval_batch_size=32)
_SMOKE_GRID = {"finetune": {"lr": (1e-3, 4e-3), "epochs": (2,)}, "probe": {"lr": (0.1, 1.0), "epochs": (2,)}}
# cpu: the zoo's cpu network (width 128, 4 blocks, patch 8) at its 64 px. A fine-tune step at batch 32
# took 0.15-0.18 s with one torch thread while both cores were busy with other trainings (0.37 s at
# batch 64), so 800 steps take 2-2.5 minutes, under 3 on two idle cores; the first run of a task also
# draws its training set once (4000 driving scenes, ~40 s; cached for every later run). The probe
# trains its head on features computed once (seconds). Fine-tune: DeiT's AdamW
# recipe with one warmup epoch of 100 steps; lr per 256 images (x 32/256 at batch 32). lr and epochs are
# the validation grid's winners for both tasks (from dino_world; released as dino_world__<task>[__probe]__s0__grid).
_CPU_FINETUNE = dict(batch_size=32, epochs=8, steps_per_epoch=100, warmup_epochs=1, lr=4e-3, min_lr=1e-6,
                     weight_decay=0.05, drop_path=0.1, snapshot_steps=(0, 50, 200, 400, 800), eval_batch_size=64)
_CPU_PROBE = dict(batch_size=64, epochs=8, steps_per_epoch=100, lr=4.0, augment=False, precompute_features=True,
                  eval_batch_size=64)
_CPU_GRID = {"finetune": {"lr": (1e-3, 4e-3, 1.6e-2), "epochs": (4, 8)},
             "probe": {"lr": (0.1, 1.0, 4.0), "epochs": (4, 8)}}
# paper: ViT-S/8 at 224 px on one GPU; DeiT's fine-tune (lr 5e-4 at batch 512 = 2.5e-4 per 256) and
# eval_linear's probe (SGD, lr 0.001 per 256, 100 epochs of one pass; here step-based).
_PAPER_FINETUNE = dict(batch_size=64, epochs=30, steps_per_epoch=500, warmup_epochs=3, lr=2.5e-4, min_lr=1e-6,
                       weight_decay=0.05, drop_path=0.1, layer_decay=0.75, num_workers=8,
                       snapshot_steps=(0, 500, 2000, 5000, 15000), checkpoint_every=1000)
_PAPER_PROBE = dict(batch_size=128, epochs=100, steps_per_epoch=200, lr=1e-3, num_workers=8, checkpoint_every=2000)
_PAPER_GRID = {"finetune": {"lr": (1e-4, 2.5e-4, 5e-4), "epochs": (15, 30)},
               "probe": {"lr": (1e-3, 1e-2, 1e-1), "epochs": (50, 100)}}

TRANSFER_TASKS: dict[str, dict[str, TransferTask]] = {
    "smoke": {
        "bce_driving": TransferTask("bce", "driving", dict(size=32, seed=0), n_train=32, n_val=16, img_size=32,
                                    finetune=_SMOKE_FINETUNE, probe=_SMOKE_PROBE, grid=_SMOKE_GRID),
        "ce_vehicles": TransferTask("ce", "vehicles", dict(size=32, seed=0), n_train=32, n_val=16, img_size=32,
                                    finetune=_SMOKE_FINETUNE, probe=_SMOKE_PROBE, grid=_SMOKE_GRID),
    },
    "cpu": {
        "bce_driving": TransferTask("bce", "driving", CPU_DRIVING, n_train=4000, n_val=500, img_size=64,
                                    finetune=_CPU_FINETUNE, probe=_CPU_PROBE, grid=_CPU_GRID),
        "ce_vehicles": TransferTask("ce", "vehicles", dict(size=64, seed=0), n_train=4000, n_val=500, img_size=64,
                                    finetune=_CPU_FINETUNE, probe=_CPU_PROBE, grid=_CPU_GRID),
    },
    "paper": {
        # BDD100K detection labels (det_20; the 2018 bdd100k_labels_images_*.json read the same way): the
        # classes present in a frame as its multi-hot label. BDD100K's test labels are not public, so the
        # claims' test set is the official val split and validation is held out of train.
        "bce_driving": TransferTask(
            "bce", "bdd100k", dict(labels="bdd100k/labels/det_20/det_train.json", images="bdd100k/images/100k/train",
                                   test_labels="bdd100k/labels/det_20/det_val.json",
                                   test_images="bdd100k/images/100k/val"),
            n_train=60_000, n_val=5_000, img_size=224, finetune=_PAPER_FINETUNE, probe=_PAPER_PROBE, grid=_PAPER_GRID,
            select_parent="dino_official"),
        # Stanford Cars through the devkit's .mat files (196 car models, one per image).
        "ce_vehicles": TransferTask(
            "ce", "stanford_cars", dict(annos="stanford_cars/devkit/cars_train_annos.mat",
                                        meta="stanford_cars/devkit/cars_meta.mat", images="stanford_cars/cars_train",
                                        test_annos="stanford_cars/devkit/cars_test_annos_withlabels.mat",
                                        test_images="stanford_cars/cars_test"),
            n_train=7_144, n_val=1_000, img_size=224, finetune=_PAPER_FINETUNE, probe=_PAPER_PROBE, grid=_PAPER_GRID,
            select_parent="dino_official"),
    },
}
"""Profile -> task name -> :class:`TransferTask`."""

_STUDY_ARMS = (("dino_world", "bce_driving"), ("dino_world", "ce_vehicles"), ("dino_driving", "bce_driving"),
               ("random", "bce_driving"), ("random", "ce_vehicles"))
TRANSFER_ARMS: dict[str, tuple[tuple[str, str], ...]] = {
    "smoke": _STUDY_ARMS,
    "cpu": _STUDY_ARMS,
    # the paper's pretrained DINO is the official ViT-S/8 (ImageNet)
    "paper": (("dino_official", "bce_driving"), ("dino_official", "ce_vehicles"), ("dino_driving", "bce_driving"),
              ("random", "bce_driving"), ("random", "ce_vehicles")),
}
"""Profile -> the arms of the study, ``(parent zoo name, task)``: the paper's two transfers and the controls
it lacks (random init: supervised from scratch; the from-scratch DINO transferred). Each is trained
fine-tuned (name ``<parent>__<task>``) and as a linear probe (``<parent>__<task>__probe``)."""

PROBE_SUFFIX = "__probe"


def transfer_names(profile: str, probes: bool = True) -> tuple[str, ...]:
    """The transfer models of ``profile``: ``<parent>__<task>`` for every arm, then (``probes``) the
    ``__probe`` variants; plain identifiers."""
    fine = tuple(f"{parent}__{task}" for parent, task in TRANSFER_ARMS[profile])
    return fine + (tuple(n + PROBE_SUFFIX for n in fine) if probes else ())


def _fine_tuned_names(profile: str) -> tuple[str, ...]:
    return transfer_names(profile, probes=False)


@dataclass(frozen=True)
class TransferControl:
    """A findings-chapter control ``<parent>__<name>``: the arm ``<parent>__<task>`` (parent, recipe, lr, steps) with
    ``changes`` to its task (``data_config``: entries added), its labels permuted across images (the seed
    ``shuffle_labels``), or (``dino``) DINO continued on the arm's training images for the arm's steps."""

    claim: str
    task: str
    changes: dict = field(default_factory=dict)
    shuffle_labels: Optional[int] = None
    dino: bool = False
    parent: str = "dino_world"


_CONTROLS = {  # name: TransferControl(the claim it serves, the task of the arm it controls, what changes)
    "bce_driving_shuffled": TransferControl("2 labels: multi-hots permuted", "bce_driving", shuffle_labels=0),
    "ce_driving_single": TransferControl("3a loss: CE on one-class scenes", "bce_driving",
                                         dict(loss="ce", data_config=dict(single_class_scenes=1.0))),
    "bce_vehicles": TransferControl("3a data: BCE on SingleVehicles", "ce_vehicles", dict(loss="bce")),
    "dense_driving": TransferControl("5 dense: image labels per patch", "bce_driving", dict(loss="patch_image_bce")),
    "box_driving": TransferControl("5 boxes: box labels per patch", "bce_driving", dict(loss="patch_bce")),
    "dino_driving_exposure": TransferControl("2 exposure: DINO on its images", "bce_driving", dino=True)}

# Claim 4's knobs (book/preregistration.md): each level is the BCE arm trained on driving scenes with one
# generator knob set; the arm itself is the level of the generator's defaults. DrivingConfig's part_prob
# replaces the whole table, so every level spells all five entries.
_PARTS_DEFAULT = {"building": 0.5, "lane_marking": 0.95, "pole": 0.6, "sign": 0.6, "tree": 0.85}


def _presence(p: float) -> dict:
    return dict(data_config=dict(part_prob={**_PARTS_DEFAULT, "lane_marking": p, "tree": p}))


_KNOB_CONTROLS = {
    "bce_driving_single_half": TransferControl("4a: half the scenes hold one class", "bce_driving",
                                               dict(data_config=dict(single_class_scenes=0.5))),
    "bce_driving_single": TransferControl("4a: every scene holds one class", "bce_driving",
                                          dict(data_config=dict(single_class_scenes=1.0))),
    "bce_driving_presence_half": TransferControl("4b: lanes and trees in half the scenes", "bce_driving",
                                                 _presence(0.5)),
    "bce_driving_presence_full": TransferControl("4b: lanes and trees in every scene", "bce_driving", _presence(1.0)),
    "bce_driving_tree_ped_050": TransferControl("4c: P(tree | pedestrian) = 0.5, P(tree) = 0.85", "bce_driving",
                                                dict(data_config=dict(part_given_class={"pedestrian": {"tree": 0.5}}))),
    "bce_driving_tree_ped_100": TransferControl("4c: P(tree | pedestrian) = 1, P(tree) = 0.85", "bce_driving",
                                                dict(data_config=dict(part_given_class={"pedestrian": {"tree": 1.0}}))),
}
TRANSFER_CONTROLS: dict[str, dict[str, TransferControl]] = {
    # smoke: 0-6 objects make P(pedestrian placed) 0.38, so q = 0.5 cannot keep P(tree) at 0.85 there
    "smoke": {**_CONTROLS, **{k: c for k, c in _KNOB_CONTROLS.items() if k != "bce_driving_tree_ped_050"}},
    "cpu": {**_CONTROLS, **_KNOB_CONTROLS}, "paper": {
        k: replace(c, parent="dino_official") for k, c in _CONTROLS.items() if not c.dino and k != "ce_driving_single"}}
"""Profile -> name -> :class:`TransferControl` (not arms), the knob levels among them. Paper: no one-class
BDD100K scenes, no DINO head, no knobs (real scenes cannot be regenerated)."""


@dataclass(frozen=True)
class Knob:
    """One knob of claim 4 at several levels (book/preregistration.md).

    reason: the paper's reason the knob tests
    x_label: what a level's value measures (the slope is per unit of it)
    levels: ``((task, {part: value}), ...)``: the task of each level (``"bce_driving"``, the arm, at the
        generator's defaults, or a control of :data:`TRANSFER_CONTROLS`) and the knob's value for each part
        whose mass ratio the knob should move; the paper's reasoning predicts more mass on a part as its
        value grows.
    """

    reason: str
    x_label: str
    levels: tuple


KNOBS: dict[str, Knob] = {
    "4a": Knob("objects co-occur, so image labels cannot be matched to objects", "share of scenes with mixed classes",
               (("bce_driving_single", {"tree": 0.0, "lane_marking": 0.0}),
                ("bce_driving_single_half", {"tree": 0.5, "lane_marking": 0.5}),
                ("bce_driving", {"tree": 1.0, "lane_marking": 1.0}))),
    "4b": Knob("lanes and trees are in (almost) every image", "P(part in a scene)",
               (("bce_driving_presence_half", {"tree": 0.5, "lane_marking": 0.5}),
                ("bce_driving", {"tree": 0.85, "lane_marking": 0.95}),
                ("bce_driving_presence_full", {"tree": 1.0, "lane_marking": 1.0}))),
    "4c": Knob("a labelled class co-occurs with a background part (a shortcut)", "P(tree | pedestrian placed)",
               (("bce_driving_tree_ped_050", {"tree": 0.5}), ("bce_driving", {"tree": 0.85}),
                ("bce_driving_tree_ped_100", {"tree": 1.0}))),
}
"""Claim 4's knobs (cpu and smoke): (a) label-object ambiguity, (b) ever-present background, (c) a
class-correlated shortcut with P(tree) held at the default 0.85 (independence is 0.85)."""
