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
  local file named by ``$DINOSAL_DINO_WEIGHTS`` or through timm's hub.

Recipes live in :data:`dinosal.profiles.DINO_RECIPES` (one place). A trained
model is a :func:`dinosal.runs.cached` artifact of kind ``"dino"`` keyed by
the resolved training configuration (data config + :class:`DinoConfig`), so
a chapter that asks again gets the same weights without training, and two
profiles with the same recipe share them. An interrupted training resumes
from ``<cache>/dino/<key>.work/``. The DINO teacher's backbone is returned
(DINO evaluates the teacher).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from . import runs
from .data.multicrop import MultiCropConfig
from .models import create_vit, load_dino_backbone, load_dino_timm, official_weights_path
from .profiles import DINO_RECIPES, DinoRecipe
from .train.dino import CHECKPOINT, LOG_CSV, RUN_CONTROL_FIELDS, SNAPSHOT_DIR, DinoConfig, train_dino

__all__ = ["ModelCard", "TrainSpec", "names", "recipe", "train_spec", "train_cached", "model_key", "data_identity", "get",
           "snapshots", "held_out_samples", "describe", "DATA_ENV"]

DATA_ENV = "DINOSAL_DATA"
DINO_KIND = "dino"


@dataclass(frozen=True)
class ModelCard:
    """What a zoo model is. ``kind``: ``"random"``, ``"dino"`` or
    ``"official"``; ``trained_on``: a short data description; ``steps`` and
    ``train_seconds`` from the training run (0 when not trained here);
    ``path``: the cached artifact directory or weights file."""

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
    """Resolve a recipe into a :class:`TrainSpec` (``train_overrides`` win)."""
    base = MultiCropConfig.weak() if r.crops_preset == "weak" else MultiCropConfig()
    if r.crops_preset not in ("weak", "official"):
        raise ValueError(f"zoo: crops_preset must be 'weak' or 'official', got {r.crops_preset!r}")
    crops = dataclasses.replace(base, **r.crops)
    dino = DinoConfig(**{**r.train, **train_overrides, "crops": crops})
    return TrainSpec(r.data, _data_config(r), r.n_train, dino)


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


def train_cached(spec: TrainSpec, rebuild: bool = False) -> Path:
    """Train (or find) the DINO model of ``spec``; returns its cache directory
    (``checkpoint.pth``, ``log.csv``, ``manifest.json``)."""
    key_spec = _canonical(spec)
    key = runs.config_key(DINO_KIND, key_spec)

    def build(tmp: Path) -> dict:
        work = tmp.parent / f"{key}.work"
        images = training_set(spec)
        if spec.data == "image_folder" and data_identity(spec) != key_spec.data_identity:
            raise RuntimeError(f"zoo: the files under {_folder_root(spec)} changed while the run was being "
                               "keyed; run again")
        result = train_dino(spec.dino, images, run_dir=work)
        for f in (CHECKPOINT, LOG_CSV, SNAPSHOT_DIR):
            if (work / f).exists():
                shutil.move(str(work / f), str(tmp / f))
        shutil.rmtree(work, ignore_errors=True)
        last = result.log[-1] if result.log else {}
        return {"training": {"steps": result.steps, "seconds_this_call": round(result.seconds, 1),
                             "final": {k: last.get(k) for k in ("loss", "teacher_entropy", "kl")}}}

    return runs.cached(DINO_KIND, key_spec, build, rebuild=rebuild)


def model_key(spec: TrainSpec) -> str:
    """The run-cache key of the DINO model ``spec`` trains: everything that
    changes the weights (data config with the generator version, or the image
    folder's fingerprint; every :class:`DinoConfig` field but the run-control
    ones), nothing else."""
    return runs.config_key(DINO_KIND, _canonical(spec))


def _net(r: DinoRecipe) -> dict:
    t = DinoConfig(**{k: v for k, v in r.train.items()})
    return dict(arch=t.arch, patch=t.patch, img_size=t.img_size, seed=t.seed, pos_interp=t.pos_interp)


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
        net = _net(trained[0])
        with torch.random.fork_rng(devices=[]):
            # the same seed as DinoTrainer: these are the weights DINO starts from
            torch.manual_seed(net["seed"])
            model = create_vit(net["arch"], patch=net["patch"], img_size=net["img_size"],
                               pos_interp=net["pos_interp"]).eval()
        return model, ModelCard(name, profile, "random", net["arch"], net["patch"], net["img_size"],
                                "nothing (random init)", 0, 0.0, None)
    r = recipe(name, profile)
    if r.data == "official":
        return _official(name, profile, r)
    spec = train_spec(r, **train_overrides)
    path = train_cached(spec)
    model, _ = load_dino_backbone(path / CHECKPOINT, which="teacher")
    manifest = runs.read_manifest(path)
    d = spec.dino
    card = ModelCard(
        name, profile, "dino", d.arch, d.patch, d.img_size, describe(spec),
        int(manifest.get("training", {}).get("steps", 0)),
        float(manifest["timings"]["build_seconds"]), str(path),
    )
    return model.eval(), card


HELD_OUT_SEED_OFFSET = 1000


def held_out_samples(spec: TrainSpec, n: int, size: Optional[int] = None) -> list:
    """``n`` held-out samples of a synthetic training spec, each with at least
    one object: the same generator configuration with the dataset seed
    raised by 1000, rendered at ``size`` px (default: the training size)."""
    from .data.synthetic import DrivingScenes, ObjectWorld, WorldConfig

    if spec.data not in ("world", "driving"):
        raise ValueError(f"zoo: held-out samples need a synthetic spec (world or driving), got {spec.data!r}")
    cfg = dataclasses.replace(spec.data_config, seed=spec.data_config.seed + HELD_OUT_SEED_OFFSET,
                              length=10 * n + 100, size=size or spec.data_config.size)
    gen = ObjectWorld(cfg) if isinstance(cfg, WorldConfig) else DrivingScenes(cfg)
    out = []
    for i in range(len(gen)):
        s = gen[i]
        if len(s.boxes):
            out.append(s)
            if len(out) == n:
                return out
    raise ValueError(f"zoo: only {len(out)} of {len(gen)} held-out images have objects; asked for {n}")


def snapshots(card: ModelCard) -> dict[int, Path]:
    """``{step: path}`` of the teacher snapshots kept by a trained zoo model
    (its recipe's ``snapshot_steps``), in step order; load one with
    :func:`~dinosal.models.load_dino_backbone`. Empty for models without."""
    if card.path is None:
        return {}
    found = sorted(Path(card.path, SNAPSHOT_DIR).glob("step_*.pth"))
    return {int(p.stem.split("_")[1]): p for p in found}


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
                                   "ImageNet (official DINO)", 0, 0.0, src)
