"""DINO's companions as named models: Mugs and LEWEL at a DINO recipe's budget.

Names: ``<method>_<domain>`` for the pretraining seed 0 and ``<method>_<domain>__seed<s>`` for the others
(``mugs_driving``, ``lewel_world__seed2``), one per parent recipe and seed of
:data:`~dinosal.profiles.COMPANIONS`; the domain is the parent's (``dino_world`` -> ``world``).

* **Equal compute** (:func:`spec`): the parent's resolved :class:`~dinosal.zoo.TrainSpec` -- network,
  training images, batch, crops and their curriculum, steps, AdamW with its schedules, teacher momentum --
  with the run's seed, and two changes that belong to the methods, not the budget: KoLeo (DINOv2's term in
  this project's DINO recipe) is off, and LEWEL draws no local crop (it compares two views).
  :class:`~dinosal.train.method_config.MugsConfig` / ``LewelConfig`` come from the profile.
* **Key** (:class:`CompanionKey`): the method, its options, the training data and the DINO config with
  its run-control fields at their defaults. Kind ``"dino"``: the release finds, writes and reads a
  companion like a DINO model (its teacher backbone; the heads are not released).
* **Resolution**, as :func:`dinosal.zoo.train_cached`: the run cache, a released checkpoint of the key,
  then training (:func:`~dinosal.train.mugs.train_mugs`, :func:`~dinosal.train.lewel.train_lewel`); the
  manifest records the held-out metrics of :func:`dinosal.zoo.held_out_metrics`.

Floor 3, beside :mod:`dinosal.exposure`, over :mod:`dinosal.zoo` and :mod:`dinosal.release`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import torch

from . import release, runs, zoo
from .features import patch_size_of, to_batch
from .parts import regions_of
from .profiles import COMPANIONS
from .models.lewel import LewelWrapper
from .train.runtime import adopt_run
from .train.dino import LOG_CSV, RUN_CONTROL_FIELDS, DinoConfig
from .train.lewel import train_lewel
from .train.method_config import METHODS, LewelConfig, MugsConfig
from .train.mugs import train_mugs

__all__ = ["CompanionKey", "CompanionSpec", "names", "spec", "key_view", "model_key", "artifact_dir",
           "train_cached", "resolve", "get", "lewel_network", "alignment_grid", "alignment_ratios", "catalogue", "log", "METHOD_NAMES"]

KIND = zoo.DINO_KIND
METHOD_NAMES = {"mugs": "Mugs", "lewel": "LEWEL", "dino": "DINO"}
"""How the book writes each method's name."""


@dataclass(frozen=True)
class CompanionKey:
    """The run-cache key of a companion run: method, options, training data, DINO config."""

    method: str
    options: Any
    data: str
    data_config: Any
    n_train: int
    dino: DinoConfig
    data_identity: Optional[dict] = None


@dataclass(frozen=True)
class CompanionSpec:
    """A resolved companion: ``name``, ``profile``, ``method`` (``"mugs"``/``"lewel"``), ``parent`` (the
    DINO recipe whose budget it shares), ``seed``, ``train`` (the parent's TrainSpec at this seed, as DINO
    trains it), ``dino`` (the config the companion trains with) and ``options``."""

    name: str
    profile: str
    method: str
    parent: str
    seed: int
    train: zoo.TrainSpec
    dino: DinoConfig
    options: MugsConfig | LewelConfig


def _table(profile: str) -> dict:
    if profile not in COMPANIONS:
        raise KeyError(f"companions: profile {profile!r} has none; profiles: {sorted(COMPANIONS)}")
    return COMPANIONS[profile]


def _name(method: str, parent: str, seed: int) -> str:
    base = f"{method}_{parent.removeprefix('dino_')}"
    return base if seed == 0 else f"{base}__seed{seed}"


def names(profile: str, method: Optional[str] = None, parent: Optional[str] = None) -> list[str]:
    """Every companion of ``profile`` (optionally one method's, one parent's), seeds in order."""
    t = _table(profile)
    return [_name(m, p, s) for m in METHODS for p, seeds in t["parents"].items() for s in seeds
            if (method is None or m == method) and (parent is None or p == parent)]


def spec(name: str, profile: str, **run_control) -> CompanionSpec:
    """The :class:`CompanionSpec` of ``name`` (see the module doc); ``run_control``: DinoConfig run-control
    fields (threads, progress, num_workers, ...). ``KeyError`` for a name the profile does not have,
    ``ValueError`` for a field that is not run control."""
    t = _table(profile)
    found = {_name(m, p, s): (m, p, s) for m in METHODS for p, seeds in t["parents"].items() for s in seeds}
    if name not in found:
        raise KeyError(f"companions: {name!r} is not a companion of profile {profile!r}; it has {sorted(found)}")
    bad = set(run_control) - set(RUN_CONTROL_FIELDS)
    if bad:
        raise ValueError(f"companions: {sorted(bad)} are not run-control fields ({RUN_CONTROL_FIELDS})")
    method, parent, seed = found[name]
    ts = zoo.train_spec(zoo.recipe(parent, profile), seed=seed, **run_control)
    change: dict = {"koleo_weight": 0.0}
    if method == "lewel":
        change["crops"] = dataclasses.replace(ts.dino.crops, n_local=0)
        if ts.dino.crops_start is not None:
            change["crops_start"] = dataclasses.replace(ts.dino.crops_start, n_local=0)
    options = METHODS[method](**t[method])
    return CompanionSpec(name, profile, method, parent, seed, ts, dataclasses.replace(ts.dino, **change), options)


def key_view(s: CompanionSpec) -> CompanionKey:
    """What the key hashes (run-control fields at their defaults; an image folder's fingerprint)."""
    defaults = {f.name: f.default for f in dataclasses.fields(DinoConfig) if f.name in RUN_CONTROL_FIELDS}
    return CompanionKey(s.method, s.options, s.train.data, s.train.data_config, s.train.n_train,
                        dataclasses.replace(s.dino, **defaults), zoo.data_identity(s.train))


def model_key(s: CompanionSpec) -> str:
    """The run-cache key of ``s`` (16 hex digits, kind ``"dino"``)."""
    return runs.config_key(KIND, key_view(s))


def artifact_dir(s: CompanionSpec) -> Path:
    return runs.cache_root() / KIND / model_key(s)


def train_cached(s: CompanionSpec, rebuild: bool = False, use_release: bool = True) -> Path:
    """The run-cache directory of ``s``: the run cache, then a released checkpoint of its key, then
    training. A config with ``stop_at_step`` is refused (a cached model is a finished run)."""
    if s.dino.stop_at_step is not None:
        raise ValueError("companions: stop_at_step would cache an unfinished run")
    key = model_key(s)
    found = release.released_artifact(KIND, key) if use_release and not rebuild else None
    if found is not None:
        return found

    def build(tmp: Path) -> dict:
        work = tmp.parent / f"{key}.work"
        images = zoo.training_set(s.train)
        trainer = train_mugs if s.method == "mugs" else train_lewel
        result = trainer(s.dino, s.options, images, run_dir=work)
        adopt_run(work, tmp)
        last = result.log[-1] if result.log else {}
        extra = {"machine": {**runs.machine(), "torch_threads": s.dino.threads or torch.get_num_threads()},
                 "training": {"steps": result.steps, "seconds_this_call": round(result.seconds, 1),
                              "final": {k: v for k, v in last.items() if isinstance(v, float)}},
                 "companion": {"name": s.name, "method": s.method, "parent": s.parent, "seed": s.seed},
                 "commit": release.git_commit()}
        if s.train.data in ("world", "driving") and result.stopped == "done":
            extra["metrics"] = zoo.held_out_metrics(s.train, release.load_artifact_backbone(tmp))
        return extra

    return runs.cached(KIND, key_view(s), build, rebuild=rebuild)


def resolve(s: CompanionSpec) -> tuple[Path, str]:
    """:func:`train_cached` of ``s`` and where it came from: ``"released"``, ``"run cache"`` or ``"trained now"``."""
    existed = (artifact_dir(s) / runs.MANIFEST).is_file()
    path = train_cached(s)
    return path, release.where_from(path, existed)


def get(name: str, profile: str, **run_control) -> tuple[torch.nn.Module, zoo.ModelCard]:
    """``(teacher backbone in eval mode, ModelCard)`` of companion ``name`` (kind ``"mugs"``/``"lewel"``)."""
    s = spec(name, profile, **run_control)
    path, source = resolve(s)
    model = release.load_artifact_backbone(path)
    manifest = runs.read_manifest(path)
    d = s.dino
    card = zoo.ModelCard(name, profile, s.method, d.arch, d.patch, d.img_size,
                         f"{METHOD_NAMES[s.method]} at {s.parent}'s budget: {zoo.describe(s.train)}",
                         int(manifest.get("training", {}).get("steps", 0)),
                         float(manifest["timings"]["build_seconds"]), str(path), source)
    return model.eval(), card


def lewel_network(name: str, profile: str) -> LewelWrapper:
    """The teacher of LEWEL companion ``name`` with its neck (eval mode): ``.alignment_maps(images)`` gives
    its alignment maps. The neck comes from the training checkpoint (whole) or the release (its map
    projection only: a ``maps_only`` neck, whose ``forward`` refuses to give slots;
    :func:`dinosal.release.load_artifact_neck`). ``ValueError`` for a Mugs companion."""
    s = spec(name, profile)
    if s.method != "lewel":
        raise ValueError(f"companions: {name!r} is a {METHOD_NAMES[s.method]} run; only LEWEL has alignment maps")
    path, _ = resolve(s)
    neck = release.load_artifact_neck(path)
    net = LewelWrapper(release.load_artifact_backbone(path), s.options.hidden, s.options.out_dim, s.options.num_heads,
                       predictors=False, maps_only=not any(k.startswith("proj_obj.") for k in neck))
    net.head["neck"].load_state_dict(neck)
    return net.eval()


def alignment_grid(net: LewelWrapper, images, batch: int = 50) -> np.ndarray:
    """LEWEL's alignment maps of ``images`` (``(H, W, 3)`` uint8 of one size, sides multiples of the patch)
    on the patch grid, ``(B, k, rows, cols)``, each summing to 1 over the grid."""
    return np.concatenate([net.alignment_maps(to_batch(list(images[lo: lo + batch]))).numpy()
                           for lo in range(0, len(images), batch)])


def alignment_ratios(net: LewelWrapper, images, truths, parts) -> pd.DataFrame:
    """For each alignment map (rows, by index) and part (columns): the pooled relevance mass ratio over the
    scenes -- the map's mass share inside the part over the part's area share, summed over the images (as
    :attr:`dinosal.parts.PartScores.ratio` pools; 1: the map covers the part as its area would). A map is
    constant on each patch, so its mass in a part is its patch weights times the share of each patch's pixels
    in the part. ``truths``: per image a ground truth with the parts (:func:`dinosal.transfer_sets.scene_truth`;
    an absent part counts with area and share 0). Raises ``ValueError`` for lengths that disagree."""
    if len(images) != len(truths):
        raise ValueError(f"images has {len(images)} scenes but truths has {len(truths)}")
    grid, p = alignment_grid(net, images), patch_size_of(net.backbone)
    b, k, rows, cols = grid.shape
    share, area = np.zeros((k, len(parts))), np.zeros(len(parts))
    for i, t in enumerate(truths):
        regions = regions_of(t)
        masks = np.stack([np.asarray(regions[q], dtype=np.float64) for q in parts])  # (P, H, W)
        frac = masks[:, : rows * p, : cols * p].reshape(len(parts), rows, p, cols, p).mean((2, 4))
        share += grid[i].reshape(k, -1) @ frac.reshape(len(parts), -1).T
        area += masks.mean((1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(area > 0, share / area, np.nan)
    return pd.DataFrame(ratio, columns=list(parts)).rename_axis("map")


def catalogue(profile: str) -> list[tuple[str, CompanionSpec]]:
    """``[(name, spec)]`` of every companion ``profile`` releases (none for a profile without any)."""
    return [(n, spec(n, profile)) for n in names(profile)] if profile in COMPANIONS else []


def log(name: str, profile: str):
    """The training log of companion ``name`` (a DataFrame, one row per step), from its run-cache folder."""
    import pandas as pd

    path, _ = resolve(spec(name, profile))
    return pd.read_csv(path / LOG_CSV)
