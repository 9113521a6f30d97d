"""The exposure control: DINO continued from a transfer's parent on the transfer's training images.

A fine-tune changes its parent's maps for two reasons at once: the labels, and
the images it is shown. The exposure control of
:data:`~dinosal.profiles.TRANSFER_CONTROLS` (``dino_world__dino_driving_exposure``)
keeps the images and drops the labels: DINO continues from the parent on the
training images of the arm it controls, for as many steps as that arm's
fine-tune. :mod:`dinosal.transfers` names and resolves it like any transfer
(:func:`dinosal.transfers.spec` returns an :class:`ExposureSpec` for it).

* **Start.** The parent's teacher backbone (the zoo model, trained or
  released) is ``init_backbone`` of :func:`dinosal.train.dino.train_dino`:
  student and teacher both start from it, bit for bit (the step-0 snapshot).
  The DINO heads start fresh: a released parent keeps no head.
* **Recipe** (:func:`exposure_config`): the parent's own
  :class:`~dinosal.train.dino.DinoConfig` (network, batch, lr per 256 images,
  temperatures, teacher momentum, augmentation), with the fine-tune's
  ``epochs`` and ``steps_per_epoch`` (so the same number of steps; the lr
  warmup and the frozen last layer span one fine-tune epoch), the parent's
  augmentation curriculum when it has one (``crops_start`` to ``crops`` over
  the same share of the run: a fresh head under the final colour augmentation
  from the first step collapsed to uniform outputs on cpu), the fine-tune's
  ``snapshot_steps`` and the control's ``seed`` (heads, data order, crops).
  Images per step are DINO's batch, not the fine-tune's.
* **Key**: :class:`ExposureKey` -- the parent's zoo key (which holds its
  pretraining seed), the images (:class:`~dinosal.transfer_sets.TaskData` of
  the arm's task) and the DINO config with its run-control fields at their
  defaults. Kind ``"dino"``, so the release finds, writes and reads it like
  any DINO model (its config names the network under ``"dino"``).
* **Resolution**, as :func:`dinosal.zoo.train_cached`: the run cache, a
  released checkpoint of the key, then training.

Floor 3, under :mod:`dinosal.transfers`, over :mod:`dinosal.transfer_sets`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from . import release, runs, transfer_sets, zoo
from .train.runtime import adopt_run
from .train.dino import RUN_CONTROL_FIELDS, DinoConfig, train_dino
from .train.transfer_config import TransferConfig
from .transfer_sets import TaskData

__all__ = ["ExposureKey", "ExposureSpec", "exposure_config", "spec", "key_view", "model_key", "artifact_dir",
           "train_cached", "resolve"]

KIND = zoo.DINO_KIND
_RUN_CONTROL_OVERRIDES = ("threads", "num_workers", "progress", "device", "checkpoint_every")


@dataclass(frozen=True)
class ExposureKey:
    """The run-cache key of an exposure run: the parent's zoo key, the images, the DINO config."""

    parent: dict
    data: TaskData
    dino: DinoConfig


@dataclass(frozen=True)
class ExposureSpec:
    """A resolved exposure control: its name and roles (``mode`` is ``"dino"``), the parent's zoo
    ``TrainSpec`` (``parent_source``), the images (``data``) and the DINO config (``dino``)."""

    name: str
    profile: str
    parent: str
    task: str
    parent_seed: Optional[int]
    seed: int
    parent_source: zoo.TrainSpec
    data: TaskData
    dino: DinoConfig
    mode: str = "dino"


def exposure_config(parent: DinoConfig, finetune: TransferConfig, **run_control) -> DinoConfig:
    """The DINO config of an exposure run (see the module doc): ``parent``'s, for the steps of the
    fine-tune config ``finetune``; ``run_control``: DinoConfig run-control fields (threads, ...).
    Raises ``ValueError`` for a fine-tune without ``steps_per_epoch`` (its steps would depend on the data)."""
    if finetune.steps_per_epoch is None:
        raise ValueError("exposure: the fine-tune has no steps_per_epoch, so no fixed number of steps to match")
    steps = finetune.epochs * finetune.steps_per_epoch
    return dataclasses.replace(
        parent, epochs=finetune.epochs, steps_per_epoch=finetune.steps_per_epoch,
        warmup_epochs=min(parent.warmup_epochs, finetune.epochs),
        warmup_teacher_temp_epochs=min(parent.warmup_teacher_temp_epochs, finetune.epochs),
        freeze_last_layer=min(parent.freeze_last_layer, finetune.epochs),
        # the parent's curriculum, scaled to this run's length (a fresh head under the final colour
        # augmentation from step 0 went uniform on cpu at step 470 of 800)
        crops_ramp_steps=round(parent.crops_ramp_steps * steps / (parent.epochs * parent.steps_per_epoch))
        if parent.crops_ramp_steps else 0,
        snapshot_steps=tuple(s for s in finetune.snapshot_steps if s <= steps), seed=finetune.seed, **run_control)


def spec(name: str, profile: str, parent: str, task: str, parent_seed: Optional[int], data: TaskData,
         finetune: TransferConfig, overrides: dict) -> ExposureSpec:
    """The :class:`ExposureSpec` of control ``name``: DINO continued from zoo model ``parent`` (a DINO
    recipe; ``parent_seed`` as :func:`dinosal.transfers.spec`) on ``data``'s training images for the
    steps of ``finetune`` (the controlled arm's config with the caller's ``overrides``, whose run-control
    fields carry over). ``ValueError`` for a parent that is not a DINO recipe of ``profile``."""
    r = zoo.recipe(parent, profile) if parent != "random" else None
    if r is None or r.data == "official":
        raise ValueError(f"exposure: {name!r} continues DINO from its parent; {parent!r} is not a DINO recipe of "
                         f"profile {profile!r} (random init: that is DINO from scratch, the zoo's dino_driving)")
    ts = zoo.train_spec(r, **({"seed": int(parent_seed)} if parent_seed is not None else {}))
    control = {k: overrides[k] for k in _RUN_CONTROL_OVERRIDES if k in overrides}
    return ExposureSpec(name, profile, parent, task, parent_seed, finetune.seed, ts, data,
                        exposure_config(ts.dino, finetune, **control))


def key_view(s: ExposureSpec) -> ExposureKey:
    """What the key hashes: the parent's zoo key, the data, the DINO config with the run-control
    fields (:data:`~dinosal.train.dino.RUN_CONTROL_FIELDS`) at their defaults."""
    defaults = {f.name: f.default for f in dataclasses.fields(DinoConfig) if f.name in RUN_CONTROL_FIELDS}
    return ExposureKey({"key": zoo.model_key(s.parent_source)}, s.data, dataclasses.replace(s.dino, **defaults))


def model_key(s: ExposureSpec) -> str:
    """The run-cache key of exposure run ``s`` (16 hex digits, kind ``"dino"``)."""
    return runs.config_key(KIND, key_view(s))


def artifact_dir(s: ExposureSpec) -> Path:
    return runs.cache_root() / KIND / model_key(s)


def train_cached(s: ExposureSpec, rebuild: bool = False, use_release: bool = True) -> Path:
    """The run-cache directory of exposure run ``s``: the run cache, then a released checkpoint of its key,
    then training (``checkpoint.pth``, ``log.csv``, ``snapshots/``; the manifest records the steps, the
    parent's name, key and source). A config with ``stop_at_step`` is refused."""
    if s.dino.stop_at_step is not None:
        raise ValueError("exposure: stop_at_step would cache an unfinished run")
    key = model_key(s)
    found = release.released_artifact(KIND, key) if use_release and not rebuild else None
    if found is not None:
        return found

    def build(tmp: Path) -> dict:
        work = tmp.parent / f"{key}.work"
        parent_path, source = zoo.resolve(s.parent_source)
        init = release.load_artifact_backbone(parent_path).state_dict()
        result = train_dino(s.dino, transfer_sets.task_set(s.data, "train"), run_dir=work, init_backbone=init)
        adopt_run(work, tmp)
        last = result.log[-1] if result.log else {}
        return {"training": {"steps": result.steps, "seconds_this_call": round(result.seconds, 1),
                             "final": {k: last.get(k) for k in ("loss", "teacher_entropy", "kl")}},
                "exposure": {"name": s.name, "parent": s.parent, "parent_seed": s.parent_seed, "task": s.task,
                             "parent_key": zoo.model_key(s.parent_source), "parent_source": source},
                "commit": release.git_commit()}

    return runs.cached(KIND, key_view(s), build, rebuild=rebuild)


def resolve(s: ExposureSpec) -> tuple[Path, str]:
    """:func:`train_cached` of ``s`` and where it came from: ``"released"``, ``"run cache"`` or ``"trained now"``."""
    existed = (artifact_dir(s) / runs.MANIFEST).is_file()
    path = train_cached(s)
    return path, release.where_from(path, existed)
