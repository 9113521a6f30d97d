"""The named models of the study, trained on demand and cached by config.

``zoo.names(profile)`` lists the models a profile offers; ``zoo.get(name,
profile)`` returns ``(backbone in eval mode, ModelCard)``:

* ``"random"``: the profile's network at random init (seeded), the baseline
  every saliency number is compared with;
* ``"dino_world"``: DINO trained on ObjectWorld -- the "pretrained DINO"
  role of the paper (ImageNet DINO);
* ``"dino_driving"``: DINO trained from scratch on DrivingScenes -- the
  "bdd100k base" role;
* ``"dino_official"`` (paper profile): the official ViT-S/8 weights, from the
  local file named by ``$DINOSAL_DINO_WEIGHTS`` or through timm's hub;
* ``"theory__full_dino"``, ``"theory__no_centering"``,
  ``"theory__no_sharpening"``, ``"theory__teacher_copies_student"``,
  ``"theory__frozen_teacher"``, ``"theory__two_global_crops_only"``: the
  theory chapter's ablation runs (:data:`ABLATIONS`), named in
  :func:`catalogue` and in the release.

Every name is a plain identifier (letters, digits, ``_``; a double ``__``
separates a chapter from its variant), usable in a shell, a papermill ``-p``
and a folder name under ``weights/``.

Recipes live in :data:`dinosal.profiles.DINO_RECIPES` (one place). A trained
model is a :func:`dinosal.runs.cached` artifact of kind ``"dino"`` keyed by
the resolved training configuration (data config + :class:`DinoConfig`), so
a chapter that asks again gets the same weights without training, and two
profiles with the same recipe share them. An interrupted training resumes
from ``<cache>/dino/<key>.work/``. The DINO teacher's backbone is returned
(DINO evaluates the teacher).

The zoo also owns what the models are started from and scored on:

* :func:`initial_backbone` -- the seeding rule of a network at random init,
  written once: the weights DINO starts from (``"random"``, step 0 of every
  run, the theory chapter's reference row);
* :func:`held_out_samples` -- evaluation images of a generated training set:
  the same generator configuration with the dataset seed raised by a named
  offset (:data:`SPLIT_SEED_OFFSETS`: ``"validation"`` +1000 for the
  localisation scores, ``"knn"`` +2000 for the k-NN sets);
  :func:`evaluation_spec` and :func:`domain_spec` say which generated data
  a model is scored on (its own, or that of its role);
* :func:`knn_sets` -- the k-NN train and test sets, one rule for every chapter;
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from . import knn, release, runs
from .data.multicrop import MultiCropConfig
from .models import load_dino_backbone, load_dino_timm, official_weights_path, seeded_vit
from .profiles import DINO_RECIPES, DinoRecipe
from .train.runtime import adopt_run
from .train.dino import RUN_CONTROL_FIELDS, DinoConfig, train_dino

__all__ = ["ModelCard", "TrainSpec", "names", "recipe", "train_spec", "train_cached", "model_key", "data_identity",
           "get", "initial_backbone", "snapshots", "SPLIT_SEED_OFFSETS", "split_config", "held_out_samples",
           "domain", "domain_spec", "evaluation_spec", "knn_sets", "describe", "DATA_ENV",
           "artifact_dir", "resolve", "held_out_metrics", "load_snapshot", "catalogue", "release_snapshots",
           "ABLATIONS", "ablation_recipe", "ablation_specs"]

DATA_ENV = "DINOSAL_DATA"
DINO_KIND = "dino"


@dataclass(frozen=True)
class ModelCard:
    """What a zoo model is. ``kind``: ``"random"``, ``"dino"`` or
    ``"official"``; ``trained_on``: a short data description; ``steps`` and
    ``train_seconds`` from the training run (0 when not trained here);
    ``path``: the cached artifact directory or weights file; ``source``:
    where the weights came from (:func:`resolve`): ``"released"`` (the
    repository's ``weights/``), ``"run cache"`` (trained earlier on this
    machine), ``"trained now"``, ``"random init"`` or ``"official"``."""

    name: str
    profile: str
    kind: str
    arch: Any
    patch: int
    img_size: int
    trained_on: str
    steps: int
    train_seconds: float
    path: Optional[str]
    source: str = "none"


@dataclass(frozen=True)
class TrainSpec:
    """The resolved training configuration: the cache key of a DINO model.

    ``data_identity``: what the training data is, beyond its config. For
    generated data the config itself carries the generator's version (see
    :data:`dinosal.data.synthetic.GENERATOR_VERSION`), so this stays ``None``;
    for an image folder it is :func:`dinosal.runs.files_fingerprint` of the
    files training reads (resolved path, names, sizes, mtimes), filled in by
    :func:`train_cached`. Two folders of one name under different roots, or a
    folder with files added, give different keys.
    """

    data: str
    data_config: Any
    n_train: int
    dino: DinoConfig
    data_identity: Optional[dict] = None


def names(profile: str) -> list[str]:
    """Model names of ``profile`` (``"random"`` first)."""
    table = _table(profile)
    return ["random"] + list(table)


def recipe(name: str, profile: str) -> DinoRecipe:
    table = _table(profile)
    if name not in table:
        raise KeyError(f"zoo: no model {name!r} in profile {profile!r}; available: {names(profile)}")
    return table[name]


def _table(profile: str) -> dict[str, DinoRecipe]:
    if profile not in DINO_RECIPES:
        raise KeyError(f"zoo: unknown profile {profile!r}; valid: {sorted(DINO_RECIPES)}")
    return DINO_RECIPES[profile]


def _data_config(r: DinoRecipe):
    from .data.synthetic import DrivingConfig, WorldConfig

    if r.data == "world":
        return WorldConfig(**{"length": r.n_train, **r.data_config})
    if r.data == "driving":
        return DrivingConfig(**{"length": r.n_train, **r.data_config})
    if r.data == "image_folder":
        return dict(r.data_config)
    raise ValueError(f"zoo: unknown data {r.data!r} (world, driving, image_folder, official)")


def train_spec(r: DinoRecipe, **train_overrides) -> TrainSpec:
    """Resolve a recipe into a :class:`TrainSpec` (``train_overrides`` win; a ``crops`` override, a
    :class:`MultiCropConfig` or a dict of its fields, is merged over the recipe's crops; an unknown
    crop field raises ``ValueError``)."""
    base = MultiCropConfig.weak() if r.crops_preset == "weak" else MultiCropConfig()
    if r.crops_preset not in ("weak", "official"):
        raise ValueError(f"zoo: crops_preset must be 'weak' or 'official', got {r.crops_preset!r}")
    over = dict(train_overrides)
    crops = _crops(base, {**r.crops, **_crop_fields(over.pop("crops", None))})
    start = {} if r.crops_start is None else {"crops_start": _crops(base, r.crops_start)}
    dino = DinoConfig(**{**r.train, **start, **over, "crops": crops})
    return TrainSpec(r.data, _data_config(r), r.n_train, dino)


def _crop_fields(c) -> dict:
    """A ``crops`` override: a :class:`MultiCropConfig` (all its fields) or a dict of some of them."""
    return {} if c is None else dataclasses.asdict(c) if isinstance(c, MultiCropConfig) else dict(c)


def _crops(base: MultiCropConfig, fields: dict) -> MultiCropConfig:
    unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(MultiCropConfig)})
    if unknown:
        raise ValueError(f"zoo: crops has no field(s) {unknown}; MultiCropConfig's are "
                         f"{[f.name for f in dataclasses.fields(MultiCropConfig)]}")
    return dataclasses.replace(base, **fields)


def _canonical(spec: TrainSpec) -> TrainSpec:
    """The spec with the run-control fields (:data:`~dinosal.train.dino.RUN_CONTROL_FIELDS`,
    which do not change results) at their defaults, and the data identity filled in."""
    defaults = {f.name: f.default for f in dataclasses.fields(DinoConfig) if f.name in RUN_CONTROL_FIELDS}
    dino = dataclasses.replace(spec.dino, **defaults)
    return dataclasses.replace(spec, dino=dino, data_identity=data_identity(spec))


def _folder_root(spec: TrainSpec) -> Path:
    root = os.environ.get(DATA_ENV)
    if not root:
        raise RuntimeError(f"zoo: data 'image_folder' needs ${DATA_ENV} (the folder holding the datasets)")
    return Path(root) / spec.data_config["folder"]


def data_identity(spec: TrainSpec) -> Optional[dict]:
    """What enters a key besides the configs: ``None`` for generated data
    (the generator version rides on the data config), the files'
    fingerprint for an image folder (see :class:`TrainSpec`)."""
    if spec.data != "image_folder":
        return None
    from .data.readers import image_files

    folder = _folder_root(spec)
    return runs.files_fingerprint(folder, image_files(folder, recursive=True))


class _FolderImages:
    """Images of an :class:`~dinosal.data.readers.AnnotatedSet` as uint8 arrays."""

    def __init__(self, annotated) -> None:
        self.annotated = annotated

    def __len__(self) -> int:
        return len(self.annotated)

    def __getitem__(self, i):
        return self.annotated.image(i)


def training_set(spec: TrainSpec):
    """The training images of a spec (a sequence whose items carry an image)."""
    from .data.synthetic import DrivingScenes, ObjectWorld

    if spec.data == "world":
        return ObjectWorld(spec.data_config)
    if spec.data == "driving":
        return DrivingScenes(spec.data_config)
    from .data.readers import read_image_folder

    # decode every image once before training: a corrupt file is named now, not hours in
    return _FolderImages(read_image_folder(_folder_root(spec), recursive=True, verify="decode"))


def train_cached(spec: TrainSpec, rebuild: bool = False, use_release: bool = True) -> Path:
    """The run-cache directory of the DINO model of ``spec``, resolved in order:

    1. the run cache (``<cache>/dino/<key>/``, see :mod:`dinosal.runs`);
    2. a released checkpoint in the repository's ``weights/`` whose key is
       ``key`` (:func:`dinosal.release.find`): its files are checked against
       their sha256 (a mismatch raises
       :class:`~dinosal.release.ReleaseIntegrityError`, never a silent
       retrain) and copied into the run cache (``backbone.safetensors``,
       ``config.json``, ``log.csv``, ``snapshots/``);
    3. training (``checkpoint.pth``, ``log.csv``, ``snapshots/``), whose
       manifest records the code's commit and the held-out metrics of
       :func:`held_out_metrics` measured right after training.

    ``rebuild=True`` or ``use_release=False`` skip step 2 (``make weights``
    retrains what was released).
    """
    key_spec = _canonical(spec)
    key = runs.config_key(DINO_KIND, key_spec)
    found = release.released_artifact(DINO_KIND, key) if use_release and not rebuild else None
    if found is not None:
        return found

    def build(tmp: Path) -> dict:
        work = tmp.parent / f"{key}.work"
        images = training_set(spec)
        if spec.data == "image_folder" and data_identity(spec) != key_spec.data_identity:
            raise RuntimeError(f"zoo: the files under {_folder_root(spec)} changed while the run was being "
                               "keyed; run again")
        result = train_dino(spec.dino, images, run_dir=work)
        adopt_run(work, tmp)
        last = result.log[-1] if result.log else {}
        extra = {"machine": {**runs.machine(), "torch_threads": spec.dino.threads or torch.get_num_threads()},
                 "training": {"steps": result.steps, "seconds_this_call": round(result.seconds, 1),
                              "final": {k: last.get(k) for k in ("loss", "teacher_entropy", "kl")}},
                 "commit": release.git_commit()}
        if spec.data in ("world", "driving") and result.stopped == "done":
            extra["metrics"] = held_out_metrics(spec, release.load_artifact_backbone(tmp))
        return extra

    return runs.cached(DINO_KIND, key_spec, build, rebuild=rebuild)


def model_key(spec: TrainSpec) -> str:
    """The run-cache key of the DINO model ``spec`` trains: everything that
    changes the weights (data config with the generator version, or the image
    folder's fingerprint; every :class:`DinoConfig` field but the run-control
    ones), nothing else."""
    return runs.config_key(DINO_KIND, _canonical(spec))


def initial_backbone(dino: DinoConfig | TrainSpec) -> torch.nn.Module:
    """The ViT of ``dino`` at random init, in eval mode: the weights DINO starts from.

    The seeding rule of :class:`~dinosal.train.dino.DinoTrainer`
    (:func:`~dinosal.models.seeded_vit`: ``torch.manual_seed(dino.seed)``, then
    :func:`~dinosal.models.create_vit` with the config's ``arch``, ``patch``,
    ``img_size`` and ``pos_interp``; the caller's RNG state is left as it was). ``tests/test_runs.py`` checks it against
    the trainer's student, the training chapter against step 0 of each run.
    """
    d = dino.dino if isinstance(dino, TrainSpec) else dino
    return seeded_vit(d.seed, d.arch, patch=d.patch, img_size=d.img_size, pos_interp=d.pos_interp)


def get(name: str, profile: str, **train_overrides) -> tuple[torch.nn.Module, ModelCard]:
    """``(backbone in eval mode, ModelCard)`` of a zoo model (see module doc).

    ``train_overrides`` change :class:`DinoConfig` fields of the recipe (e.g.
    ``progress=False`` or ``num_workers=0``); fields that change results give
    another cache entry.
    """
    if name == "random":
        trained = [r for r in _table(profile).values() if r.data not in ("official",)]
        if not trained:
            raise KeyError(f"zoo: profile {profile!r} has no trained recipe to take the network from")
        d = train_spec(trained[0]).dino
        return initial_backbone(d), ModelCard(name, profile, "random", d.arch, d.patch, d.img_size,
                                              "nothing (random init)", 0, 0.0, None, "random init")
    r = recipe(name, profile)
    if r.data == "official":
        return _official(name, profile, r)
    spec = train_spec(r, **train_overrides)
    path, source = resolve(spec)
    model = release.load_artifact_backbone(path)
    manifest = runs.read_manifest(path)
    d = spec.dino
    card = ModelCard(
        name, profile, "dino", d.arch, d.patch, d.img_size, describe(spec),
        int(manifest.get("training", {}).get("steps", 0)),
        float(manifest["timings"]["build_seconds"]), str(path), source,
    )
    return model.eval(), card


def artifact_dir(spec: TrainSpec) -> Path:
    """Where the run cache keeps (or will keep) the DINO model of ``spec``."""
    return runs.cache_root() / DINO_KIND / model_key(spec)


def resolve(spec: TrainSpec) -> tuple[Path, str]:
    """:func:`train_cached` of ``spec`` and where its weights came from:
    ``"released"`` (copied from the repository's ``weights/``), ``"run cache"``
    (trained earlier on this machine) or ``"trained now"`` (by this call)."""
    existed = (artifact_dir(spec) / runs.MANIFEST).is_file()
    path = train_cached(spec)
    return path, release.where_from(path, existed)


HELD_OUT_METRICS_N = 100
"""Held-out images of :func:`held_out_metrics` (validation split)."""


def held_out_metrics(spec: TrainSpec, model: torch.nn.Module) -> dict[str, float]:
    """The numbers a release records for a model trained on generated data:
    :func:`~dinosal.localisation.localisation_scores` of ``model`` on
    :data:`HELD_OUT_METRICS_N` validation images of its own training
    generator, drawn at twice the training resolution (``corloc``,
    ``attn_ratio``, ``attn_ratio_best_head``, ``pointing``). Taken right
    after training and again by ``make weights``, so that a retrained model
    can be set beside the released one."""
    from .localisation import localisation_scores

    samples = held_out_samples(spec, HELD_OUT_METRICS_N, size=2 * spec.dino.img_size)
    scores = localisation_scores(model, samples)
    return {k: float(getattr(scores, k)) for k in ("corloc", "attn_ratio", "attn_ratio_best_head", "pointing")}


# --------------------------------------------------------------------------
# The theory chapter's ablations and the catalogue of a profile's trained models
# --------------------------------------------------------------------------

ABLATIONS: dict[str, dict] = {
    "full DINO": {},
    "no centering": dict(centering=False),
    "no sharpening": dict(sharpening=False),
    "teacher copies student": dict(teacher_update="copy"),
    "frozen teacher": dict(teacher_update="frozen"),
    "two global crops only": dict(multicrop=False),
}
"""The theory chapter's variants: :class:`DinoConfig` changes to the full recipe."""


def ablation_recipe(params) -> DinoRecipe:
    """The theory chapter's full DINO recipe from its parameters
    (:class:`~dinosal.profiles.TheoryParams`): ObjectWorld at ``image_size``
    px, or the images under ``$DINOSAL_DATA/<data_folder>`` when
    ``data_root`` is given; the collapse monitor records, it does not stop
    (the ablations are meant to collapse)."""
    from .train.dino import CollapseConfig

    P = params
    if P.data_root:
        data, data_config = "image_folder", dict(folder=P.data_folder)
    else:
        data, data_config = "world", dict(size=P.image_size, seed=P.seed)
    return DinoRecipe(
        data, data_config, n_train=P.n_train, crops_preset=P.crops_preset,
        crops=dict(global_size=P.image_size, local_size=P.local_size, n_local=P.n_local),
        train=dict(arch=P.arch, patch=P.patch, img_size=P.image_size, out_dim=P.out_dim, head_hidden=P.head_hidden,
                   head_bottleneck=P.head_bottleneck, batch_size=P.batch_size, epochs=P.epochs,
                   steps_per_epoch=P.steps // P.epochs, warmup_epochs=1, lr=P.lr, min_lr=1e-5,
                   momentum_teacher=P.momentum_teacher, teacher_temp=0.04, warmup_teacher_temp=0.04,
                   drop_path=0.0, seed=P.seed, num_workers=P.num_workers, progress=False,
                   collapse=CollapseConfig(action="record")),
    )


def ablation_specs(params) -> dict[str, TrainSpec]:
    """``{variant: TrainSpec}`` of the theory chapter's runs (:data:`ABLATIONS`)."""
    r = ablation_recipe(params)
    return {name: train_spec(r, **changes) for name, changes in ABLATIONS.items()}


def catalogue(profile: str) -> list[tuple[str, TrainSpec]]:
    """Every DINO model the chapters of ``profile`` train, as ``(name,
    TrainSpec)``: the zoo's recipes (``dino_world``, ``dino_driving``), the
    extra seeds of a recipe (``dino_world__seed1``, ... from
    ``DinoRecipe.release_seeds``) and
    the theory chapter's ablations (``theory__full_dino``,
    ``theory__no_centering``, ...; plain identifiers). This is what ``make
    weights`` retrains and ``make release`` publishes. Models on real data
    (``image_folder``) and official weights are left out: they cannot be
    released from here."""
    from .config import profile_params

    out = []
    for name, r in _table(profile).items():
        if r.data in ("world", "driving"):
            out += [(name, train_spec(r))] + [(f"{name}__seed{s}", train_spec(r, seed=s)) for s in r.release_seeds]
    theory = profile_params("theory", profile)
    if not theory.data_root:
        out += [("theory__" + name.lower().replace(" ", "_"), spec) for name, spec in ablation_specs(theory).items()]
    return out


def release_snapshots(name: str, profile: str) -> bool:
    """Whether ``make release`` publishes the snapshots of catalogue model ``name``: not for the extra
    seeds of a recipe (``<recipe>__seed<s>``, ``DinoRecipe.release_seeds``; the chapters draw the
    emergence strip from the recipe's own seed, and each snapshot costs a backbone file); for every
    other model, yes (those without ``snapshot_steps`` have none anyway)."""
    base, sep, seed = name.rpartition("__seed")
    r = _table(profile).get(base) if sep and seed.isdigit() else None
    return not (r is not None and int(seed) in r.release_seeds)


SPLIT_SEED_OFFSETS = {"validation": 1000, "knn": 2000, "test": 3000}
"""Evaluation split -> what is added to the training data's dataset seed.
``"validation"``: every choice and the chapters' localisation scores;
``"knn"``: the k-NN train and test sets; ``"test"``: the pre-registered
claims only (book/preregistration.md)."""


def _generator_config(spec):
    """The generator config of a synthetic :class:`TrainSpec` or a config itself."""
    from .data.synthetic import DrivingConfig, VehicleConfig, WorldConfig

    if isinstance(spec, TrainSpec):
        if spec.data not in ("world", "driving"):
            raise ValueError(f"zoo: held-out samples need a synthetic spec (world or driving), got {spec.data!r}")
        return spec.data_config
    if isinstance(spec, (WorldConfig, DrivingConfig, VehicleConfig)):
        return spec
    raise TypeError(f"zoo: spec must be a TrainSpec or a WorldConfig / DrivingConfig / VehicleConfig, "
                    f"got {type(spec).__name__}")


def split_config(spec, split: str = "validation", size: Optional[int] = None, length: Optional[int] = None):
    """The generator config of an evaluation ``split`` of ``spec`` (a synthetic
    :class:`TrainSpec` or a generator config): the same config with the dataset
    seed raised by ``SPLIT_SEED_OFFSETS[split]``, the side ``size`` px (None:
    the training size) and ``length`` (None: unchanged)."""
    if split not in SPLIT_SEED_OFFSETS:
        raise ValueError(f"zoo: unknown split {split!r}; valid: {sorted(SPLIT_SEED_OFFSETS)}")
    cfg = _generator_config(spec)
    return dataclasses.replace(cfg, seed=cfg.seed + SPLIT_SEED_OFFSETS[split], size=size or cfg.size,
                               length=cfg.length if length is None else length)


def held_out_samples(spec, n: int, size: Optional[int] = None, split: str = "validation") -> list:
    """The first ``n`` samples with at least one object of an evaluation split.

    spec: a synthetic :class:`TrainSpec` (``world`` or ``driving``) or a
        generator config (``WorldConfig``, ``DrivingConfig``, ``VehicleConfig``).
    split: a key of :data:`SPLIT_SEED_OFFSETS`; the images are those of
        :func:`split_config` (dataset seed + the split's offset, so never a
        training image of ``spec``), rendered at ``size`` px (None: the
        training size). Images without objects are skipped, as LOST's
        evaluation does. Items depend on ``(seed, index)`` only, so a smaller
        ``n`` gives a prefix of a larger one.
    Raises ``ValueError`` if fewer than ``n`` of the first ``10 n + 100``
    images have an object, and for an image-folder spec.
    """
    from .data.synthetic import DrivingConfig, DrivingScenes, ObjectWorld, SingleVehicles, WorldConfig

    if n < 1:
        raise ValueError(f"zoo: n must be >= 1, got {n}")
    cfg = split_config(spec, split, size, length=10 * n + 100)
    gen = (ObjectWorld if isinstance(cfg, WorldConfig) else DrivingScenes if isinstance(cfg, DrivingConfig)
           else SingleVehicles)(cfg)
    out = []
    for i in range(len(gen)):
        s = gen[i]
        if len(s.boxes):
            out.append(s)
            if len(out) == n:
                return out
    raise ValueError(f"zoo: only {len(out)} of {len(gen)} held-out images have objects; asked for {n}")


def domain(name: str, profile: str) -> str:
    """``"world"`` or ``"driving"``: the role of zoo model ``name``. A model
    trained on generated data has its data's; official DINO weights play the
    ImageNet role (world), a model trained on an image folder the BDD100K role
    (driving)."""
    r = recipe(name, profile)
    if r.data in ("world", "driving"):
        return r.data
    return "world" if r.data == "official" else "driving"


def domain_spec(domain: str, profile: str) -> TrainSpec:
    """The synthetic training spec of ``profile``'s model ``dino_<domain>``
    (``domain``: ``"world"`` or ``"driving"``), or of the cpu profile's when
    ``profile`` has none trained on generated data (paper). Raises ``KeyError``
    when neither has one."""
    role = f"dino_{domain}"
    for p in (profile, "cpu"):
        r = _table(p).get(role)
        if r is not None and r.data in ("world", "driving"):
            return train_spec(r)
    raise KeyError(f"zoo: no model {role!r} trained on generated data in profile {profile!r} or 'cpu'")


def evaluation_spec(name: str, profile: str) -> TrainSpec:
    """The synthetic training spec whose :func:`held_out_samples` score zoo model
    ``name``: its own for a model trained on generated data, otherwise the
    :func:`domain_spec` of its :func:`domain` (official weights: world;
    an image-folder model: driving)."""
    r = recipe(name, profile)
    if r.data in ("world", "driving"):
        return train_spec(r)
    return domain_spec(domain(name, profile), profile)


def knn_sets(spec, n: int, size: Optional[int] = None, split: str = "knn") -> knn.KnnSets:
    """The k-NN train and test sets of ``spec`` (a :class:`~dinosal.knn.KnnSets`), one rule for every chapter.

    spec: as for :func:`held_out_samples` -- the DINO model's synthetic
        :class:`TrainSpec`, or a generator config such as
        ``VehicleConfig(size=..., seed=<the training data's seed>)``.
    The images are the first ``2 n`` with an object of ``split`` (default
    ``"knn"``: dataset seed + 2000; a final judgement uses ``"test"``),
    rendered at ``size`` px (None: the training size):
    the first ``n`` train, the next ``n`` test. The label of an image is the
    class of its first object: meant for one-object sets (SingleVehicles,
    ObjectWorld with ``n_objects=(1, 1)``).
    """
    items = held_out_samples(spec, 2 * n, size, split=split)
    labels = np.array([int(s.labels[0]) for s in items], dtype=np.int64)
    return knn.KnnSets(items[:n], items[n:], labels[:n], labels[n:], tuple(items[0].class_names))


def snapshots(card: ModelCard) -> dict[int, Path]:
    """``{step: path}`` of the teacher snapshots kept by a trained zoo model
    (its recipe's ``snapshot_steps``), in step order (``.pth`` when trained
    here, ``.safetensors`` when released); load one with
    :func:`load_snapshot`. Empty for models without."""
    if card.path is None:
        return {}
    return release.snapshot_paths(card.path)


def load_snapshot(card: ModelCard, step: int) -> torch.nn.Module:
    """The teacher backbone (eval mode) of ``card``'s snapshot at ``step``
    (see :func:`snapshots`); ``KeyError`` for a step that was not kept."""
    if card.path is None:
        raise KeyError(f"zoo: {card.name} has no snapshots (not a trained model)")
    return release.load_artifact_backbone(card.path, snapshot=step)


def describe(spec: TrainSpec) -> str:
    """One line on what a spec trains on (the model card's ``trained_on``)."""
    if spec.data in ("world", "driving"):
        c = spec.data_config
        return f"{spec.data} ({spec.n_train} images, {c.size} px, camouflage {c.camouflage})"
    return f"{spec.data} {spec.data_config}"


def _official(name: str, profile: str, r: DinoRecipe):
    local = official_weights_path()
    if local is not None:
        model, report = load_dino_backbone(local, which="teacher")
        src = str(local)
    else:
        model = load_dino_timm(r.weights)
        src = r.weights
    p = int(model.patch_embed.patch_size[0])
    img = int(model.patch_embed.img_size[0])
    return model.eval(), ModelCard(name, profile, "official", f"width {model.embed_dim}", p, img,
                                   "ImageNet (official DINO)", 0, 0.0, src, "official")
