"""The transferred classifiers of the study, named, trained on demand and cached by config.

A transfer is a zoo model (the *parent*) with a linear head, trained on one
task of :data:`dinosal.profiles.TRANSFER_TASKS` by
:func:`dinosal.train.transfer.train_transfer`, fine-tuned or as a linear
probe. Names are plain identifiers: ``<parent>__<task>`` (fine-tuned) and
``<parent>__<task>__probe``, e.g. ``dino_world__bce_driving``,
``random__ce_vehicles__probe``; :func:`names` lists the arms of a profile
(:data:`~dinosal.profiles.TRANSFER_ARMS`), :func:`spec` accepts any zoo
parent, :func:`file_spec` a checkpoint file the reader names.

* **Key.** A transfer is a :func:`dinosal.runs.cached` artifact of kind
  ``"transfer"`` keyed by :class:`TransferKey`: the parent's identity
  (:class:`ParentRef`: the zoo's model key of a DINO parent, which holds its
  pretraining seed; the network and seed of a random init; the weights of
  official or file parents), the task's data (:class:`TaskData`) and every
  field of the :class:`~dinosal.train.transfer_config.TransferConfig` that
  changes results (the seed among them; run-control fields held at their
  defaults). The parent's *name* is not in the key.
* **Resolution**, as :func:`dinosal.zoo.train_cached`: the run cache, then a
  released checkpoint of that key (:func:`dinosal.release.find` with kind
  ``"transfer"``, sha256 checked, copied into the cache by
  :func:`dinosal.release.materialise`: ``classifier.safetensors``; a linear
  probe is released head-only, its frozen backbone being its parent's bit for
  bit, and rebuilt whole from :func:`parent_backbone` and the released head), then
  training (``checkpoint.pth``, ``log.csv``, ``snapshots/``; its manifest
  records the validation scores). :func:`load`, :func:`snapshots` and
  :func:`load_snapshot` read either artifact alike.
* **Release** (``make release``): :func:`catalogue` lists the transfers the
  chapter trains with its default parameters, named ``<name>__s<seed>``;
  they are released when the run cache holds them (they are trained by
  ``python -m dinosal.cli transfers``), with their snapshots only where the
  chapter draws its fine-tuning strip (:func:`release_snapshots`).
* **Seeds.** ``parent_seed``: the pretraining seed of a DINO parent (the
  recipe with ``DinoConfig.seed`` replaced, trained or found like any zoo
  model) or the init seed of ``random``; ``seed``: the transfer's own.
* **Splits** (book/preregistration.md): train = the task's generator config,
  validation = dataset seed + 1000 (every choice: :func:`select`), test =
  seed + 3000 (the claims; :func:`scores_on_test`,
  :func:`~dinosal.transfer_sets.preregistered_scenes`).
* :func:`select`: the lr x steps grid of a task on the validation split,
  ranked by mAP (bce) or top-1 (ce) only (:mod:`dinosal.transfer_grid`), resolved as a transfer: the run
  cache, a released table of its key (:func:`selection_catalogue`: the tables, never the candidates), the grid.
* **Controls** (:func:`controls`, :data:`~dinosal.profiles.TRANSFER_CONTROLS`), not in :func:`names`
  nor :func:`catalogue`: ``<parent>__<control>``, resolved like the arms, each its arm with one change
  (same parent, recipe, lr and steps; :func:`select` of a control is its arm's). The exposure control
  is a DINO run (:mod:`dinosal.exposure`): :func:`load` gives its backbone.

Floor 3, above :mod:`dinosal.zoo` (parents, splits) and :mod:`dinosal.release`.
Data loading of the tasks (generated sets, the paper's BDD100K and Stanford
Cars readers) is in :mod:`dinosal.transfer_sets`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from . import exposure, release, runs, transfer_sets, zoo
from .exposure import ExposureSpec
from .profiles import PROBE_SUFFIX, TRANSFER_ARMS, TRANSFER_CONTROLS, TRANSFER_TASKS, TransferControl, TransferTask
from .profiles import transfer_names
from .train.runtime import adopt_run
from .train.transfer import CHECKPOINT, LOG_CSV, backbone_from_file, train_transfer
from .train.transfer_config import RUN_CONTROL_FIELDS, TransferConfig
from .train.transfer_data import evaluate_transfer
from .transfer_grid import Selection, SelectionKey, choose, metric_of
from .transfer_sets import TaskData

__all__ = ["TRANSFER_KIND", "SELECTION_KIND", "ParentRef", "TaskData", "TransferSpec", "TransferKey", "TransferCard",
           "Selection", "names", "controls", "control", "parse", "task", "transfer_config", "spec", "file_spec",
           "key_view", "model_key", "artifact_dir", "parent_backbone", "train_cached", "resolve", "load", "get",
           "snapshots", "load_snapshot", "metric_of", "grid", "choose", "select", "scores_on_test", "recipe_table",
           "release_name", "catalogue", "release_snapshots", "selection_catalogue"]

TRANSFER_KIND = release.TRANSFER_KIND
SELECTION_KIND = release.SELECTION_KIND  # "transfer_selection"


# ---------------------------------------------------------------- names and tables


def names(profile: str, probes: bool = True) -> list[str]:
    """The transfer models of ``profile``: every arm fine-tuned, then (``probes``) its linear probe."""
    _arms(profile)
    return list(transfer_names(profile, probes))


def controls(profile: str) -> list[str]:
    """The findings chapter's controls of ``profile`` (:data:`~dinosal.profiles.TRANSFER_CONTROLS`), named
    ``<parent>__<control>``, each the arm ``<parent>__<task>`` with one change (:func:`control`)."""
    _arms(profile)
    return [f"{c.parent}__{name}" for name, c in TRANSFER_CONTROLS.get(profile, {}).items()]


def control(task_name: str, profile: str) -> Optional[TransferControl]:
    """The :class:`~dinosal.profiles.TransferControl` of a control's task name (``"bce_driving_shuffled"``),
    None for any other task."""
    return TRANSFER_CONTROLS.get(profile, {}).get(task_name)


def _arms(profile: str):
    if profile not in TRANSFER_ARMS:
        raise KeyError(f"transfers: unknown profile {profile!r}; valid: {sorted(TRANSFER_ARMS)}")
    return TRANSFER_ARMS[profile]


def parse(name: str) -> tuple[str, str, str]:
    """``(parent, task, mode)`` of a transfer name: ``"dino_world__bce_driving__probe"`` ->
    ``("dino_world", "bce_driving", "probe")``. The task is the part after the last ``__`` (a parent's
    own name may hold ``__``). Raises ``ValueError`` for a name without parent or task."""
    base, mode = (name[: -len(PROBE_SUFFIX)], "probe") if name.endswith(PROBE_SUFFIX) else (name, "finetune")
    parent, sep, task_name = base.rpartition("__")
    if not sep or not parent or not task_name:
        raise ValueError(f"transfers: {name!r} is not <parent>__<task>[{PROBE_SUFFIX}]")
    return parent, task_name, mode


def task(name: str, profile: str) -> TransferTask:
    """The :class:`~dinosal.profiles.TransferTask` ``name`` of ``profile``; a control's: its arm's task with
    the control's ``changes`` (``data_config`` entries added to the arm's)."""
    _arms(profile)
    tasks, c = TRANSFER_TASKS[profile], control(name, profile)
    if c is not None:
        changes = dict(c.changes)
        data_config = {**tasks[c.task].data_config, **changes.pop("data_config", {})}
        return dataclasses.replace(tasks[c.task], data_config=data_config, **changes)
    if name not in tasks:
        raise KeyError(f"transfers: no task {name!r} in profile {profile!r}; available: "
                       f"{sorted(tasks) + sorted(TRANSFER_CONTROLS.get(profile, {}))}")
    return tasks[name]


def transfer_config(t: TransferTask, mode: str, seed: int = 0, **overrides) -> TransferConfig:
    """The :class:`TransferConfig` of task ``t`` in ``mode``: :meth:`TransferConfig.recipe` with the
    task's loss, image size and mode fields, the ``seed``, then ``overrides`` (e.g. a selection's
    ``lr`` and ``epochs``)."""
    fields = t.finetune if mode == "finetune" else t.probe
    return TransferConfig.recipe(mode, **{"loss": t.loss, "img_size": t.img_size, **fields, "seed": int(seed),
                                          **overrides})


# ---------------------------------------------------------------- what a transfer is: spec and key


@dataclass(frozen=True)
class ParentRef:
    """What a transfer starts from, as it enters the key. kind: ``"dino"`` (identity: the zoo's model
    key), ``"random"`` (the network and its init seed), ``"official"`` (the weights' name or the
    local file's sha256) or ``"file"`` (the file's sha256 and which network of it)."""

    kind: str
    identity: dict


@dataclass(frozen=True)
class TransferKey:
    """The run-cache key of a transfer: parent identity, task data, result-changing config."""

    parent: ParentRef
    data: TaskData
    transfer: TransferConfig


@dataclass(frozen=True)
class TransferSpec:
    """A resolved transfer: its name and roles, its key parts, and how to get its parent.

    parent_source: a zoo ``TrainSpec`` (DINO parent), a ``DinoConfig``
    (random init), the zoo name (official weights) or a file path (``file``).
    """

    name: str
    profile: str
    parent: str
    task: str
    mode: str
    parent_seed: Optional[int]
    parent_ref: ParentRef
    data: TaskData
    config: TransferConfig
    parent_source: Any = None


def random_identity(d) -> dict:
    """A random-init network's identity (a ``"random"`` :class:`ParentRef`'s): net, patch, size, position mode, seed."""
    return {"arch": d.arch, "patch": d.patch, "img_size": d.img_size, "pos_interp": d.pos_interp, "seed": d.seed}


def _parent(parent: str, profile: str, parent_seed: Optional[int]) -> tuple[ParentRef, Any]:
    if parent == "random":
        trained = [n for n in zoo.names(profile)[1:] if zoo.recipe(n, profile).data != "official"]
        if not trained:
            raise KeyError(f"transfers: profile {profile!r} has no trained recipe to take the random network from")
        d = zoo.train_spec(zoo.recipe(trained[0], profile)).dino
        if parent_seed is not None:
            d = dataclasses.replace(d, seed=int(parent_seed))
        return ParentRef("random", random_identity(d)), d
    r = zoo.recipe(parent, profile)
    if r.data == "official":
        if parent_seed is not None:
            raise ValueError(f"transfers: {parent!r} is released weights; it has no pretraining seed to choose")
        from .models import official_weights_path

        local = official_weights_path()
        ident = {"sha256": release.sha256_file(local)} if local is not None else {"weights": r.weights}
        return ParentRef("official", ident), parent
    ts = zoo.train_spec(r, **({"seed": int(parent_seed)} if parent_seed is not None else {}))
    return ParentRef("dino", {"key": zoo.model_key(ts)}), ts


def spec(name: str, profile: str, parent_seed: Optional[int] = None, seed: int = 0, data_root=None,
         n_train: Optional[int] = None, **overrides) -> TransferSpec | ExposureSpec:
    """The :class:`TransferSpec` of transfer ``name`` (``<parent>__<task>[__probe]``; any zoo model of
    ``profile`` as parent; a control's name too). ``parent_seed``: see the module doc (None: the recipe's
    own); ``seed``: the transfer's; ``data_root``: the paper's data folder (None: ``$DINOSAL_DATA``);
    ``n_train``: fewer training images than the table's (a dry run); ``overrides``: :class:`TransferConfig`
    fields. The exposure control gives an :class:`~dinosal.exposure.ExposureSpec` (the fine-tune's steps)."""
    parent, task_name, mode = parse(name)
    t, c = task(task_name, profile), control(task_name, profile)
    data = transfer_sets.task_data(task_name, t, data_root, n_train, c.shuffle_labels if c else None)
    if c is not None and c.dino:
        if mode != "finetune":
            raise ValueError(f"transfers: {name!r}: the exposure control is a DINO run; it has no probe")
        return exposure.spec(name, profile, parent, task_name, parent_seed, data,
                             transfer_config(t, "finetune", seed, **overrides), overrides)
    ref, source = _parent(parent, profile, parent_seed)
    return TransferSpec(name, profile, parent, task_name, mode, parent_seed, ref, data,
                        transfer_config(t, mode, seed, **overrides), source)


def file_spec(path, task_name: str, profile: str, mode: str = "finetune", seed: int = 0, which: str = "teacher",
              heads: Optional[int] = None, data_root=None, n_train: Optional[int] = None, **overrides) -> TransferSpec:
    """A transfer of the network in a checkpoint file the reader names (read by
    :func:`~dinosal.train.transfer.backbone_from_file`: its ``which`` network; ``heads`` for a width
    that is not a DINO size). Its name is ``file_<8 hex of the file's sha256>__<task>[__probe]``; the
    key holds the file's sha256, ``which`` and ``heads``."""
    path, t, c = Path(path), task(task_name, profile), control(task_name, profile)
    if c is not None and c.dino:
        raise ValueError(f"transfers: {task_name!r} is a DINO run from a zoo parent, not a transfer of a file")
    digest = release.sha256_file(path)
    name = f"file_{digest[:8]}__{task_name}" + (PROBE_SUFFIX if mode == "probe" else "")
    return TransferSpec(name, profile, "file", task_name, mode, None,
                        ParentRef("file", {"sha256": digest, "which": which, "heads": heads}),
                        transfer_sets.task_data(task_name, t, data_root, n_train, c.shuffle_labels if c else None),
                        transfer_config(t, mode, seed, **overrides), str(path))


def key_view(s: TransferSpec) -> TransferKey:
    """What the key hashes: the spec's parent identity, data, and config with the run-control fields
    (:data:`~dinosal.train.transfer_config.RUN_CONTROL_FIELDS`) at their defaults. An exposure run's:
    :func:`dinosal.exposure.key_view`."""
    if isinstance(s, ExposureSpec):
        return exposure.key_view(s)
    defaults = {f.name: f.default for f in dataclasses.fields(TransferConfig) if f.name in RUN_CONTROL_FIELDS}
    return TransferKey(s.parent_ref, s.data, dataclasses.replace(s.config, **defaults))


def model_key(s: TransferSpec) -> str:
    """The run-cache key of transfer ``s`` (16 hex digits; an exposure run's: :func:`dinosal.exposure.model_key`)."""
    if isinstance(s, ExposureSpec):
        return exposure.model_key(s)
    return runs.config_key(TRANSFER_KIND, key_view(s))


def artifact_dir(s: TransferSpec) -> Path:
    """Where the run cache keeps (or will keep) transfer ``s``."""
    return exposure.artifact_dir(s) if isinstance(s, ExposureSpec) else runs.cache_root() / TRANSFER_KIND / model_key(s)


# ---------------------------------------------------------------- training and loading


def parent_backbone(s: TransferSpec) -> tuple[torch.nn.Module, str]:
    """The parent's backbone (eval mode) and where it came from (the zoo's words: ``"released"``,
    ``"run cache"``, ``"trained now"``, ``"random init"``, ``"official"``; ``"file"``)."""
    kind = "dino" if isinstance(s, ExposureSpec) else s.parent_ref.kind
    if kind == "dino":
        path, source = zoo.resolve(s.parent_source)
        return release.load_artifact_backbone(path).eval(), source
    if kind == "random":
        return zoo.initial_backbone(s.parent_source), "random init"
    if kind == "official":
        model, card = zoo.get(s.parent_source, s.profile)
        return model.eval(), card.source
    ident = s.parent_ref.identity
    return backbone_from_file(s.parent_source, which=ident["which"], heads=ident["heads"]).eval(), "file"


def _scores_dict(scores) -> dict:
    def plain(x):
        return None if x is None or not np.isfinite(x) else float(x)

    return {"map": plain(scores.map), "top1": plain(scores.top1), "n_images": scores.n_images,
            "ap": {c: plain(a) for c, a in zip(scores.class_names, scores.ap)}}


def train_cached(s: TransferSpec, rebuild: bool = False, use_release: bool = True) -> Path:
    """The run-cache directory of transfer ``s``: the run cache, then a released checkpoint of its key
    (verified, copied into the cache; a linear probe, released head-only, rebuilt whole with its parent's
    backbone from :func:`parent_backbone`: run cache -> release -> train), then training. ``rebuild=True``
    or ``use_release=False`` skip the release. The trained artifact holds ``checkpoint.pth``, ``log.csv``,
    ``snapshots/`` and a manifest with the training's steps and time, the parent (name, identity, source),
    the class names and the validation scores (``metrics``: map, top1, per-class AP on the task's ``n_val`` validation images).
    A config with ``stop_at_step`` is refused: a cached model is a finished run. An exposure run:
    :func:`dinosal.exposure.train_cached`."""
    if isinstance(s, ExposureSpec):
        return exposure.train_cached(s, rebuild, use_release)
    if s.config.stop_at_step is not None:
        raise ValueError("transfers: stop_at_step would cache an unfinished run; train it with train_transfer")
    key = model_key(s)
    if use_release and not rebuild and not (runs.cache_root() / TRANSFER_KIND / key / runs.MANIFEST).is_file():
        entry = release.find(key, kind=TRANSFER_KIND)
        if entry is not None and entry.head_only:  # a probe's head: the parent's backbone back
            return release.materialise(entry, backbone=lambda: parent_backbone(s))
        if entry is not None:
            return release.materialise(entry)

    def build(tmp: Path) -> dict:
        work = tmp.parent / f"{key}.work"
        backbone, source = parent_backbone(s)
        train = transfer_sets.task_set(s.data, "train")
        result = train_transfer(s.config, backbone, train, run_dir=work)
        adopt_run(work, tmp, CHECKPOINT, LOG_CSV)
        val = transfer_sets.task_set(s.data, "validation", s.data.n_val)
        scores = evaluate_transfer(result.model, val, s.config.img_size, s.config.loss, s.config.eval_batch_size,
                                   result.class_names)
        return {"training": {"steps": result.steps, "seconds_this_call": round(result.seconds, 1)},
                "transfer": {"name": s.name, "parent": s.parent, "parent_seed": s.parent_seed, "task": s.task,
                             "mode": s.mode, "parent_source": source, "class_names": list(result.class_names)},
                "metrics": {"validation": _scores_dict(scores)}, "commit": release.git_commit()}

    return runs.cached(TRANSFER_KIND, key_view(s), build, rebuild=rebuild)


def resolve(s: TransferSpec) -> tuple[Path, str]:
    """:func:`train_cached` of ``s`` and where it came from: ``"released"``, ``"run cache"`` or ``"trained now"``."""
    if isinstance(s, ExposureSpec):
        return exposure.resolve(s)
    existed = (artifact_dir(s) / runs.MANIFEST).is_file()
    path = train_cached(s)
    return path, release.where_from(path, existed)


@dataclass(frozen=True)
class TransferCard:
    """What a transfer model is: its name and roles, ``key``, ``path`` (the artifact), ``source``
    (:func:`resolve`), training ``steps`` and ``train_seconds``, ``class_names`` and the validation
    ``metrics`` recorded when it was trained."""

    name: str
    profile: str
    parent: str
    task: str
    mode: str
    parent_seed: Optional[int]
    seed: int
    key: str
    path: str
    source: str
    steps: int
    train_seconds: float
    class_names: tuple[str, ...]
    metrics: dict


def load(s: TransferSpec) -> tuple[torch.nn.Module, TransferCard]:
    """``(classifier in eval mode, TransferCard)`` of transfer ``s`` (resolved as :func:`resolve`; trained
    or materialised from a release, read by :func:`dinosal.release.load_artifact_classifier`). The exposure
    control gives its teacher backbone (no classes; ``mode`` ``"dino"``)."""
    path, source = resolve(s)
    manifest = runs.read_manifest(path)
    if isinstance(s, ExposureSpec):
        model, class_names, seed = release.load_artifact_backbone(path), (), s.seed
    else:
        ck = release.load_artifact_classifier(path)  # checkpoint.pth, or classifier.safetensors of a release
        model, class_names, seed = ck.model, ck.class_names, s.config.seed
    card = TransferCard(s.name, s.profile, s.parent, s.task, s.mode, s.parent_seed, seed, model_key(s), str(path),
                        source, int(manifest.get("training", {}).get("steps", 0)),
                        float(manifest["timings"]["build_seconds"]), class_names, manifest.get("metrics", {}))
    return model.eval(), card


def get(name: str, profile: str, parent_seed: Optional[int] = None, seed: int = 0, data_root=None,
        **overrides) -> tuple[torch.nn.Module, TransferCard]:
    """``(classifier in eval mode, TransferCard)`` of transfer ``name`` (arguments as :func:`spec`)."""
    return load(spec(name, profile, parent_seed, seed, data_root, **overrides))


def snapshots(card: TransferCard) -> dict[int, Path]:
    """``{step: path}`` of the snapshots the transfer kept (its config's ``snapshot_steps``): ``.pth`` when
    trained here, ``.safetensors`` when released; empty for a release without snapshots
    (:func:`release_snapshots`)."""
    return release.snapshot_paths(card.path)


def load_snapshot(card: TransferCard, step: int) -> torch.nn.Module:
    """The classifier (eval mode; the exposure control: its teacher backbone) of ``card``'s snapshot at
    ``step``; ``KeyError`` for a step not kept."""
    paths = snapshots(card)
    if step not in paths:
        raise KeyError(f"transfers: {card.name} kept no snapshot of step {step}; kept: {sorted(paths)}")
    if card.mode == "dino":
        return release.load_artifact_backbone(card.path, snapshot=step)
    return release.load_classifier(paths[step]).model.eval()


def scores_on_test(model: torch.nn.Module, s: TransferSpec, n: int):
    """:class:`~dinosal.metrics.ClassificationScores` of ``model`` on the first ``n`` test images of
    ``s``'s task (generated: dataset seed + 3000, images with an object; real: the test file)."""
    test = transfer_sets.task_set(s.data, "test", n)
    return evaluate_transfer(model, test, s.config.img_size, s.config.loss, s.config.eval_batch_size)


# ---------------------------------------------------------------- hyper-parameters on the validation split


def grid(task_name: str, profile: str, mode: str = "finetune") -> list[dict]:
    """The validation grid of a task and mode: ``{"lr", "epochs"}`` for every pair, lr-major."""
    g = task(task_name, profile).grid.get(mode)
    if not g:
        raise KeyError(f"transfers: task {task_name!r} of profile {profile!r} has no {mode} grid")
    return [{"lr": float(lr), "epochs": int(e)} for lr, e in itertools.product(g["lr"], g["epochs"])]


def _validation(s: TransferSpec) -> dict:
    return runs.read_manifest(train_cached(s))["metrics"]["validation"]


def _grid_key(task_name: str, profile: str, mode: str, parent: Optional[str], parent_seed: Optional[int],
              seed: int, data_root) -> tuple:
    """``(task, parent, candidates, their specs, metric, SelectionKey, run-cache dir)`` of a :func:`select`."""
    task_name = c.task if (c := control(task_name, profile)) else task_name
    t = task(task_name, profile)
    parent = parent or t.select_parent
    name = f"{parent}__{task_name}" + (PROBE_SUFFIX if mode == "probe" else "")
    cands = grid(task_name, profile, mode)
    specs = [spec(name, profile, parent_seed, seed, data_root, **c) for c in cands]
    key_cfg = SelectionKey(metric_of(t.loss), tuple(key_view(s) for s in specs))
    final = runs.cache_root() / SELECTION_KIND / runs.config_key(SELECTION_KIND, key_cfg)
    return task_name, parent, cands, specs, key_cfg.metric, key_cfg, final


def select(task_name: str, profile: str, mode: str = "finetune", parent: Optional[str] = None,
           parent_seed: Optional[int] = None, seed: int = 0, data_root=None, only_cached: bool = False,
           evaluate: Optional[Callable[[TransferSpec], dict]] = None) -> Optional[Selection]:
    """Choose lr and steps of a task on its validation split, by mAP (bce) or top-1 (ce) only.

    Every candidate of :func:`grid` is the transfer of ``parent`` (default: the task's
    ``select_parent``) with that lr and epochs; ``evaluate(spec) -> {"map", "top1"}`` scores it
    (default: train it through :func:`train_cached` and read its validation scores). The table is
    cached (kind ``"transfer_selection"``, keyed by the metric and every candidate's key), so a second
    call trains and scores nothing; a table not in the run cache is taken from a release of its key
    (:func:`dinosal.release.materialise`, sha256 checked: a changed file raises
    :class:`~dinosal.release.ReleaseIntegrityError`), the same :class:`Selection` as the run cache's.
    ``only_cached``: return None instead of running a grid that neither holds. Ties go to the first
    candidate in grid order (:func:`choose`). A control's task selects as its arm's: the same grid,
    the same winners.
    """
    task_name, parent, cands, specs, metric, key_cfg, final = _grid_key(task_name, profile, mode, parent,
                                                                         parent_seed, seed, data_root)
    if not (final / runs.MANIFEST).is_file() and (entry := release.find(final.name, kind=SELECTION_KIND)):
        release.materialise(entry)  # the released table of this key
    if only_cached and not (final / runs.MANIFEST).is_file():
        return None

    def build(tmp: Path) -> dict:
        rows = []
        for c, s in zip(cands, specs):
            value = (evaluate or _validation)(s)[metric]
            rows.append({**c, "steps": s.config.epochs * (s.config.steps_per_epoch or 0), metric: value,
                         "key": model_key(s)})
        best = rows[choose([r[metric] for r in rows])]
        runs.atomic_write_text(tmp / "selection.json", json.dumps({"rows": rows, "best": best}, indent=1))
        return {"selection": {"task": task_name, "mode": mode, "parent": parent, "metric": metric, "best": best},
                "commit": release.git_commit()}

    path = runs.cached(SELECTION_KIND, key_cfg, build)
    doc = json.loads((path / "selection.json").read_text())
    best = {"lr": doc["best"]["lr"], "epochs": doc["best"]["epochs"]}
    return Selection(task_name, mode, parent, metric, tuple(doc["rows"]), best, str(path))


# ---------------------------------------------------------------- what the chapter tabulates


def recipe_table(profile: str):
    """The tasks of ``profile`` and their recipes, one column per task (pandas)."""
    import pandas as pd

    cols = {}
    for name, t in TRANSFER_TASKS[profile].items():
        col = {"loss": t.loss, "data": t.data, "training images": t.n_train, "validation images": t.n_val,
               "image size (px)": t.img_size, "grid parent": t.select_parent}
        for mode in ("finetune", "probe"):
            c = transfer_config(t, mode)
            steps = c.epochs * (c.steps_per_epoch or 0)
            col[f"{mode}: optimizer"] = c.optimizer
            col[f"{mode}: batch x steps"] = f"{c.batch_size} x {steps or 'one pass per epoch'}"
            col[f"{mode}: lr per 256 images"] = c.lr
            g = t.grid.get(mode, {})
            col[f"{mode}: grid lr x epochs"] = f"{tuple(g.get('lr', ()))} x {tuple(g.get('epochs', ()))}"
        cols[name] = col
    return pd.DataFrame(cols)


# ---------------------------------------------------------------- what the release publishes


def release_name(s: TransferSpec) -> str:
    """The release entry name of ``s``: ``<name>__s<seed>`` (``dino_world__bce_driving__s0``), with the
    parent's pretraining seed when one is chosen, ``<name>__p<parent seed>__s<seed>``; plain identifiers,
    unique over the catalogue and apart from the zoo's names (no zoo name ends in ``__s<digits>``)."""
    return _release_name(s.name, s.parent_seed, s.seed if isinstance(s, ExposureSpec) else s.config.seed)


def _release_name(name: str, parent_seed: Optional[int], seed: int) -> str:
    return f"{name}{'' if parent_seed is None else f'__p{parent_seed}'}__s{seed}"


def _chapter_runs(profile: str) -> tuple[list[str], list[Optional[int]], list[int], dict]:
    """The transfer chapter's runs with its default parameters (``profile_params("transfer", profile)``):
    fine-tuned arms then their probes, parent seeds, seeds, and the lr/epochs of each (task, mode) -- the
    validation grid's winners when the chapter selects and the grid is in the run cache, else the table's."""
    from .config import profile_params

    P = profile_params("transfer", profile)
    arms = list(P.arms) if P.arms else names(profile, probes=False)
    run_names = arms + ([n + PROBE_SUFFIX for n in arms] if P.probes else [])
    chosen = {}
    for task_name, mode in dict.fromkeys(parse(n)[1:] for n in run_names) if P.select else ():
        sel = select(task_name, profile, mode, data_root=P.data_root, only_cached=True)
        chosen[task_name, mode] = sel.best if sel is not None else {}
    return run_names, list(P.parent_seeds) if P.parent_seeds else [None], list(P.seeds), chosen


def catalogue(profile: str) -> list[tuple[str, TransferSpec]]:
    """Every transfer model ``make release`` publishes for ``profile``, as ``(release name, TransferSpec)``:
    those the transfer chapter trains with its default parameters -- each arm fine-tuned, then its probe
    (:func:`names`), for every parent seed (None: the recipe's own) and transfer seed of
    :class:`~dinosal.profiles.TransferParams` (``TRANSFER_TABLE``) --, then the findings chapter's arms
    that its figure draws and the transfer chapter does not (parent and transfer seed 0: the box-supervised
    fine-tune), all with the lr and epochs the chapter uses (:func:`_chapter_runs`). Names:
    :func:`release_name`. The study's other runs (more pretraining and transfer seeds, controls, knob levels)
    are released as score tables only (:func:`dinosal.run_scores.catalogue`), as the release budget asks of
    sweeps; ``python -m dinosal.cli transfers`` retrains any of them. Transfers on real data (the paper's
    tasks) are left out: they cannot be released from here (as :func:`dinosal.zoo.catalogue`)."""
    from .config import profile_params

    run_names, parent_seeds, seeds, chosen = _chapter_runs(profile)
    todo = list(itertools.product(run_names, parent_seeds, seeds))
    shown = [n for n in profile_params("findings", profile).arms if n not in run_names]
    todo += [(n, None, 0) for n in shown]
    out = []
    for name, ps, seed in todo:
        _, task_name, mode = parse(name)
        if task(task_name, profile).data not in ("driving", "vehicles"):
            continue
        s = spec(name, profile, parent_seed=ps, seed=seed, **chosen.get((task_name, mode), {}))
        out.append((release_name(s), s))
    return out


def release_snapshots(name: str, profile: str) -> bool:
    """Whether ``make release`` publishes the snapshots of catalogue transfer ``name``: only for the run
    the chapter draws its fine-tuning strip from (the pretrained parent's ``__bce_driving`` fine-tune, else
    the first ``__bce_driving`` arm; first parent seed, first seed, as book/transfer.ipynb picks it). Each
    snapshot costs a whole classifier file; the other runs are released with their final weights only."""
    run_names, parent_seeds, seeds, _ = _chapter_runs(profile)
    arms = [n for n in run_names if n.endswith("__bce_driving")]
    pretrained = next((p for p in ("dino_world", "dino_official") if any(parse(n)[0] == p for n in run_names)), None)
    strip = f"{pretrained}__bce_driving" if f"{pretrained}__bce_driving" in arms else (arms or [None])[0]
    return strip is not None and name == _release_name(strip, parent_seeds[0], seeds[0])


def selection_catalogue(profile: str) -> list[tuple[str, Path]]:
    """The validation grids the transfer chapter of ``profile`` asks :func:`select` for, as ``(release name,
    run-cache dir)``: each task of :func:`names` fine-tuned and probed, with the chapter's defaults (the
    task's grid parent, its own pretraining seed, seed 0); named ``<grid parent>__<task>[__probe]__s0__grid``.
    Tasks on real data are left out (as :func:`catalogue`). ``make release`` publishes the tables the run
    cache holds; :func:`select` finds them by key."""
    out = []
    for task_name, mode in dict.fromkeys(parse(n)[1:] for n in names(profile)):
        if task(task_name, profile).data in ("driving", "vehicles"):
            _, _, _, specs, _, _, final = _grid_key(task_name, profile, mode, None, None, 0, None)
            out.append((_release_name(specs[0].name, None, 0) + "__grid", final))
    return out
