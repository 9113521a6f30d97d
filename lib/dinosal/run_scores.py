"""Per-image saliency scores of every run of the study, cached and released as tables.

The findings chapter judges the paper's claims on many training runs
(pretraining seed x transfer seed, controls, knob levels). Re-running
LOST and TokenCut on every run each time the chapter executes would cost
minutes, and releasing every fine-tuned network would cost megabytes each;
the released-checkpoints issue asks for sweeps to release their *score
tables* and only the models a figure shows. So each run's maps are scored
once, on the pre-registered test scenes (book/preregistration.md), into one
small table per run:

* :func:`score_maps` (pure): :class:`~dinosal.localisation.MethodMaps` and
  ground truths in, a ``pandas.DataFrame`` out, one row per image, columns
  (``|`` separates the fields of a name):

  - ``image`` (position in the test set), ``q`` (the image's share of
    positive off-diagonal key dot products, :func:`dinosal.parts.positive_share`),
    ``lost_hit`` and ``tokencut_hit`` (CorLoc hits, IoU >= 0.5);
  - ``area|<part>``: the part's share of the image's pixels;
  - for each map kind of :data:`KINDS`: ``share|<kind>|<part>`` (the map's
    mass share inside the part: relevance mass accuracy with 0 for an
    absent part), ``oa|<kind>`` (overall activation), ``rra|<kind>|<part>``
    and ``pointing|<kind>|<part>`` for the parts of :data:`RANKED_PARTS`
    (relevance rank accuracy and pointing game, NaN where absent);
  - ``label|<class>``: 1 where the scene holds an object of the class;
  - a multi-label classifier's (loss ``bce``) ``prob|<class>`` (its sigmoid
    output) and, for the classes of :data:`CLASS_MAP_CLASSES`,
    ``share|Grad-CAM <class>|<part>`` (the class's Grad-CAM map on every
    image, whether the class is present or not).

  The pooled relevance mass ratio RM of a part is ``sum(share) / sum(area)``
  over images (:func:`dinosal.stats.ratio_of_sums`), so these columns are all
  the hierarchical bootstrap needs.
* :class:`ScoreKey`: the run cache's key of one table: the model's identity
  (its kind and run-cache key) and the scoring set-up (test scenes, their
  number and size, LOST's ``k``, TokenCut's ``tau``, :data:`SCORE_VERSION`).
* :func:`scores`: the table of one model, resolved as everything else in
  the book: the run cache, then a released table of its key (kind
  ``"scores"``, sha256 checked), then computed (the model itself resolved
  through :mod:`dinosal.zoo` / :mod:`dinosal.transfers`: run cache, release,
  training).
* :class:`Run`, :func:`study_runs`: the runs of the findings chapter with its
  default parameters; :func:`catalogue`: their tables, as ``make release``
  publishes them (``<run name>__scores``).

Floor 3, above :mod:`dinosal.transfers`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from . import companions, release, runs, transfer_sets, transfers, zoo
from .localisation import MethodMaps, kind_map, run_methods, score
from .parts import part_scores, positive_share, regions_of

__all__ = ["SCORES_KIND", "SCORES_CSV", "SCORE_VERSION", "KINDS", "TRANSFORMS", "RANKED_PARTS", "ScoreKey",
           "score_maps", "Run", "backbone", "scores", "is_cached", "model_available", "manifest_block", "study_runs", "catalogue", "test_set"]

SCORES_KIND = "scores"
"""Run-cache and release kind of a score table."""
SCORES_CSV = "scores.csv"
"""The table's file in a ``scores`` artifact (one row per image; see :func:`score_maps`)."""
SCORE_VERSION = 2
"""Bumped when :func:`score_maps` changes what it writes (part of every :class:`ScoreKey`)."""

KINDS: tuple[str, ...] = ("inverse degree", "correlation", "composite", "attention", "TokenCut")
"""The map kinds scored (:data:`dinosal.localisation.MAP_KINDS`): LOST's inverse degree (the paper's
degree panel, the claims' map), its correlation and the composite, the mean-head CLS attention, TokenCut's
eigenvector."""
TRANSFORMS: dict[str, str] = {"inverse degree": "none", "correlation": "clip", "composite": "none",
                              "attention": "none", "TokenCut": "clip"}
"""How each kind becomes a non-negative mass (:func:`dinosal.parts.prepare_map`): the signed maps (LOST's
summed similarities, the Fiedler vector oriented to the foreground) keep their positive part."""
RANKED_PARTS: tuple[str, ...] = ("objects", "vehicles")
"""Parts that also get relevance rank accuracy and the pointing game (the others: mass and area only)."""
CLASS_MAP_CLASSES: tuple[str, ...] = ("pedestrian",)
"""Classes whose Grad-CAM map a multi-label classifier's table scores on every image (claim 4c's shortcut:
the pedestrian map's mass on trees in scenes without a pedestrian)."""


# ---------------------------------------------------------------- scoring (pure)


def score_maps(maps: Sequence[MethodMaps], truths: Sequence, kinds: Sequence[str] = KINDS,
               parts: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """The per-image table of one model (module docstring for the columns).

    maps: :func:`dinosal.localisation.run_methods` of the model on the test scenes (TokenCut run, i.e.
        ``tau`` not None, when ``"TokenCut"`` is in ``kinds``; attention present when ``"attention"`` is);
    truths: per image a :class:`~dinosal.data.sample.GroundTruth` with the pre-registered regions
        (:func:`dinosal.transfer_sets.scene_truth`), paired by position;
    parts: the parts scored (default: the first truth's regions, in order; every truth must have them).
    Raises ``ValueError`` for no images, lengths that disagree, a missing part, or a kind the maps lack
    (naming it).
    """
    if len(maps) == 0:
        raise ValueError("maps is empty")
    if len(maps) != len(truths):
        raise ValueError(f"maps has {len(maps)} images but truths has {len(truths)}")
    names = list(parts) if parts is not None else list(regions_of(truths[0]))
    ranked = [p for p in RANKED_PARTS if p in names]
    cols: dict[str, Any] = {"image": np.arange(len(maps))}
    cols["q"] = [positive_share(degree=m.lost.degree) for m in maps]
    hits = [score(m, t) for m, t in zip(maps, truths)]
    cols["lost_hit"] = [h["lost_hit"] for h in hits]
    cols["tokencut_hit"] = [h["tokencut_hit"] for h in hits]
    area_done = False
    for kind in kinds:
        pix = [kind_map(m, kind) for m in maps]
        full = part_scores(pix, truths, names, transform=TRANSFORMS.get(kind, "none"))
        if not area_done:
            cols.update({f"area|{p}": full.area[:, j] for j, p in enumerate(names)})
            area_done = True
        cols.update({f"share|{kind}|{p}": full.share[:, j] for j, p in enumerate(names)})
        cols[f"oa|{kind}"] = full.oa
        for p in ranked:
            j = names.index(p)
            cols[f"rra|{kind}|{p}"] = full.rra[:, j]
            cols[f"pointing|{kind}|{p}"] = full.pointing[:, j]
    return pd.DataFrame(cols)


# ---------------------------------------------------------------- the cached table of one model


@dataclass(frozen=True)
class ScoreKey:
    """What a score table depends on: the model (``model_kind``: ``"dino"``, ``"transfer"`` or
    ``"random"``; ``model_key``: its run-cache key, or the random network's identity), the test scenes
    (``scenes``: the task data whose test split is scored), ``n`` scenes with an object at ``size`` px,
    LOST's ``k``, TokenCut's ``tau`` and :data:`SCORE_VERSION`."""

    model_kind: str
    model_key: Any
    scenes: Any
    n: int
    size: int
    k: int
    tau: float
    version: int = SCORE_VERSION


@dataclass(frozen=True)
class Run:
    """One run of the study, as the findings chapter tabulates it.

    name: the model's name (a zoo model ``dino_world``, ``random``, a transfer / control
        ``dino_world__bce_driving``, or a companion ``mugs_driving``); role: ``"pretrained"``, ``"arm"``,
        ``"control"``, ``"knob"``, or in the Mugs/LEWEL chapter ``"dino"``, ``"companion"``, ``"random"``;
    pretrain_seed: the parent's (or the pretrained model's own) pretraining seed, 0 for the recipe's;
    transfer_seed: the transfer's seed (None for a pretrained model); spec: what resolves the model
    (a zoo ``TrainSpec``, a :class:`~dinosal.transfers.TransferSpec` or exposure spec, or the random
    init's ``DinoConfig``); release_name: the table's name in ``weights/``.
    """

    name: str
    role: str
    pretrain_seed: int
    transfer_seed: Optional[int]
    spec: Any
    release_name: str

    @property
    def parent(self) -> str:
        """The zoo model a transfer started from, the DINO recipe whose budget a companion shares (the model
        itself for a pretrained run)."""
        if isinstance(self.spec, companions.CompanionSpec):
            return self.spec.parent
        return transfers.parse(self.name)[0] if "__" in self.name else self.name

    @property
    def method(self) -> str:
        """How the run's backbone was pretrained: ``"mugs"``/``"lewel"`` (a companion), ``"random"`` (the
        random init, or a transfer from it) or ``"dino"``."""
        if isinstance(self.spec, companions.CompanionSpec):
            return self.spec.method
        return "random" if self.parent == "random" else "dino"


def _identity(spec) -> tuple[str, Any]:
    if isinstance(spec, zoo.TrainSpec):
        return "dino", zoo.model_key(spec)
    if isinstance(spec, companions.CompanionSpec):
        return "dino", companions.model_key(spec)
    if isinstance(spec, (transfers.TransferSpec, transfers.ExposureSpec)):
        return "transfer", transfers.model_key(spec)
    return "random", transfers.random_identity(spec)  # a random init's DinoConfig


def backbone(spec) -> torch.nn.Module:
    """The backbone (eval mode) whose maps a run's table scores: a zoo model's teacher, a transfer's
    backbone, the exposure control's teacher, or a random init (``spec``: see :attr:`Run.spec`); resolved
    through the run cache, the release, or training."""
    if isinstance(spec, zoo.TrainSpec):
        return release.load_artifact_backbone(zoo.train_cached(spec)).eval()
    if isinstance(spec, companions.CompanionSpec):
        return release.load_artifact_backbone(companions.train_cached(spec)).eval()
    if isinstance(spec, transfers.ExposureSpec):
        return transfers.load(spec)[0]
    if isinstance(spec, transfers.TransferSpec):
        return transfers.load(spec)[0].backbone
    return zoo.initial_backbone(spec).eval()


def test_set(profile: str, n: int, size: int, data_root=None) -> tuple[Any, list, list]:
    """``(task data, scenes, truths)``: the first ``n`` test driving scenes with an object at ``size`` px
    (the driving task's test split, the same for every model and every knob level) and their ground
    truths with the pre-registered regions."""
    data = _driving(profile, data_root)
    scenes = transfer_sets.test_scenes(data, n, size)
    return data, scenes, [transfer_sets.scene_truth(s) for s in scenes]


def _classifier_columns(model: torch.nn.Module, scenes: Sequence, truths: Sequence, batch: int = 50) -> dict:
    """``prob|<class>`` of a multi-label classifier on each scene and the Grad-CAM mass of the classes of
    :data:`CLASS_MAP_CLASSES` on every part."""
    from .features import to_batch
    from .saliency.classmaps import grad_cam

    names = list(scenes[0].class_names)
    images = [s.image for s in scenes]
    with torch.no_grad():
        probs = torch.cat([torch.sigmoid(model(to_batch(images[i:i + batch]))) for i in range(0, len(images), batch)])
    cols = {f"prob|{c}": probs[:, j].numpy().astype(np.float64) for j, c in enumerate(names)}
    parts = list(regions_of(truths[0]))
    for c in CLASS_MAP_CLASSES:
        if c not in names:
            continue
        j = names.index(c)
        pix = np.concatenate([grad_cam(model, images[i:i + batch], j).pixel_map for i in range(0, len(images), batch)])
        h, w = images[0].shape[:2]
        ps = part_scores(list(pix[:, :h, :w]), truths, parts, transform="clip")
        cols.update({f"share|Grad-CAM {c}|{p}": ps.share[:, k] for k, p in enumerate(parts)})
    return cols


def _driving(profile: str, data_root=None):
    """The driving task's data (its test split holds the scenes every model is scored on)."""
    return transfers.spec("random__bce_driving", profile, data_root=data_root).data


def _key(spec, data, n: int, size: int, k: int, tau: float) -> ScoreKey:
    kind, ident = _identity(spec)
    return ScoreKey(kind, ident, data, int(n), int(size), int(k), float(tau))


def _artifact_dir(cfg: ScoreKey) -> Path:
    """Where the run cache keeps (or will keep) the table of ``cfg``."""
    return runs.cache_root() / SCORES_KIND / runs.config_key(SCORES_KIND, cfg)


def scores(spec, profile: str, n: int = 200, size: int = 128, k: int = 100, tau: float = 0.2,
           data_root=None, rebuild: bool = False) -> pd.DataFrame:
    """The score table of one model on the test scenes (:func:`score_maps`), resolved as: the run cache,
    a released table of its key (:func:`dinosal.release.materialise`, sha256 checked), computing it
    (the model resolved by :mod:`dinosal.zoo` / :mod:`dinosal.transfers`; it may train). ``spec``: see
    :attr:`Run.spec`. The artifact's manifest keeps, under ``"scores"``, the model's test accuracy where
    it has a classifier (mAP or top-1 on its task's first 1,000 test images)."""
    cfg = _key(spec, _driving(profile, data_root), n, size, k, tau)
    path = _artifact_dir(cfg)
    if not rebuild and not (path / runs.MANIFEST).is_file():
        entry = release.find(path.name, kind=SCORES_KIND)
        if entry is not None:
            release.materialise(entry)

    def build(tmp: Path) -> dict:
        _, scenes, truths = test_set(profile, n, size, data_root)
        classifier = transfers.load(spec) if isinstance(spec, transfers.TransferSpec) else None  # loaded once
        net = classifier[0].backbone if classifier is not None else backbone(spec)
        table = score_maps(run_methods(net, [s.image for s in scenes], k=k, tau=tau), truths)
        names = scenes[0].class_names
        table = table.assign(**{f"label|{c}": [float(j in set(map(int, x.labels))) for x in scenes]
                                for j, c in enumerate(names)})
        if classifier is not None and spec.config.loss == "bce":
            table = table.assign(**_classifier_columns(classifier[0], scenes, truths))
        buf = io.StringIO()
        table.to_csv(buf, index=False, float_format="%.4g")
        runs.atomic_write_text(tmp / SCORES_CSV, buf.getvalue())
        block: dict[str, Any] = {"model_kind": cfg.model_kind, "n": len(table)}
        if classifier is not None:
            model, card = classifier
            acc = transfers.scores_on_test(model, spec, 1000)
            block.update({"name": card.name, "test_map": None if acc.map is None else float(acc.map),
                          "test_top1": None if acc.top1 is None else float(acc.top1)})
        return {"scores": block, "commit": release.git_commit()}

    path = runs.cached(SCORES_KIND, cfg, build, rebuild=rebuild)
    return pd.read_csv(path / SCORES_CSV)


def is_cached(spec, profile: str, n: int = 200, size: int = 128, k: int = 100, tau: float = 0.2,
              data_root=None) -> bool:
    """Whether the table of ``spec`` is in the run cache or released (so :func:`scores` computes nothing)."""
    path = _artifact_dir(_key(spec, _driving(profile, data_root), n, size, k, tau))
    return (path / runs.MANIFEST).is_file() or release.find(path.name, kind=SCORES_KIND) is not None


def model_available(spec) -> bool:
    """Whether the model of ``spec`` resolves without training: in the run cache, or released (a random
    init always does)."""
    kind, key = _identity(spec)
    if kind == "random":
        return True
    folder = zoo.artifact_dir(spec) if isinstance(spec, zoo.TrainSpec) else \
        companions.artifact_dir(spec) if isinstance(spec, companions.CompanionSpec) else transfers.artifact_dir(spec)
    release_kind = transfers.TRANSFER_KIND if isinstance(spec, transfers.TransferSpec) else zoo.DINO_KIND
    return (folder / runs.MANIFEST).is_file() or release.find(key, kind=release_kind) is not None


def manifest_block(spec, profile: str, n: int = 200, size: int = 128, k: int = 100, tau: float = 0.2,
                   data_root=None) -> dict:
    """The ``"scores"`` block of a cached table's manifest (its test accuracy, for a classifier); ``{}``
    when the table is not in the run cache."""
    path = _artifact_dir(_key(spec, _driving(profile, data_root), n, size, k, tau))
    return runs.read_manifest(path).get("scores", {}) if (path / runs.MANIFEST).is_file() else {}


# ---------------------------------------------------------------- the study's runs


def _parent_seeds(parent: str, profile: str, given: Optional[Sequence[int]]) -> list[int]:
    if given is not None:
        return [int(s) for s in given]
    if parent == "random":
        return [0]
    r = zoo.recipe(parent, profile)
    return [0] + [int(s) for s in r.release_seeds]


def _name(run_name: str, ps: int, seed: Optional[int]) -> str:
    return f"{run_name}{f'__p{ps}' if ps else ''}{'' if seed is None else f'__s{seed}'}__scores"


def study_runs(profile: str, P=None) -> list[Run]:
    """Every run the findings chapter scores with parameters ``P`` (default: the profile's
    :class:`~dinosal.profiles.FindingsParams`): the pretrained models (``dino_world``, ``dino_driving``
    over their released pretraining seeds, the random init), the claims' arms (fine-tuned) over the parent
    seeds x ``P.claim_seeds`` (the arms from DINO from scratch, ``P.pretrained[1]``: ``P.scratch_seeds``),
    the controls over ``P.control_seeds`` and the knob levels over ``P.knob_seeds``."""
    from .config import profile_params

    P = P or profile_params("findings", profile)
    out: list[Run] = []

    def add(name: str, role: str, seeds: Sequence[int]):
        parent = transfers.parse(name)[0]
        for ps in _parent_seeds(parent, profile, P.parent_seeds if parent != "random" else None):
            for seed in seeds:
                s = transfers.spec(name, profile, parent_seed=None if ps == 0 else ps, seed=seed,
                                   data_root=P.data_root, progress=False)
                out.append(Run(name, role, ps, seed, s, _name(name, ps, seed)))

    for m in P.pretrained:
        for ps in _parent_seeds(m, profile, P.parent_seeds if m != "random" else None):
            if m == "random":
                d = transfers.spec("random__bce_driving", profile, data_root=P.data_root).parent_source
                out.append(Run(m, "pretrained", 0, None, d, _name(m, 0, None)))
            else:
                r = zoo.recipe(m, profile)
                ts = zoo.train_spec(r, **({"seed": ps} if ps else {}))
                out.append(Run(m, "pretrained", ps, None, ts, _name(m, ps, None)))
    for name in P.arms:
        add(name, "arm", P.scratch_seeds if transfers.parse(name)[0] == P.pretrained[1] else P.claim_seeds)
    for name in P.controls:
        add(name, "control", P.control_seeds)
    for name in P.knobs:
        add(name, "knob", P.knob_seeds)
    return out


def companion_runs(profile: str) -> list[Run]:
    """The companions of ``profile`` (:mod:`dinosal.companions`: Mugs and LEWEL at each DINO recipe's budget,
    every seed) as runs of role ``"companion"``: name ``<method>_<domain>``, ``pretrain_seed`` the run's seed."""
    out = []
    for name, s in companions.catalogue(profile):
        base = name.split("__")[0]
        out.append(Run(base, "companion", s.seed, None, s, _name(base, s.seed, None)))
    return out


def comparison_runs(profile: str, seeds: Optional[Sequence[int]] = None) -> list[Run]:
    """The runs of the Mugs/LEWEL chapter: DINO at each parent recipe of :data:`~dinosal.profiles.COMPANIONS`
    (role ``"dino"``, the study's tables), Mugs and LEWEL at its budget (role ``"companion"``), over the
    parent's seeds in the profile (only those among ``seeds`` when given), and the random init (role ``"random"``, seed 0)."""
    from .profiles import COMPANIONS

    out = []
    for parent, own in COMPANIONS[profile]["parents"].items():
        r = zoo.recipe(parent, profile)
        out += [Run(parent, "dino", s, None, zoo.train_spec(r, **({"seed": s} if s else {})), _name(parent, s, None))
                for s in own if seeds is None or s in seeds]
    out += [r for r in companion_runs(profile) if seeds is None or r.pretrain_seed in seeds]
    d = transfers.spec("random__bce_driving", profile).parent_source
    return out + [Run("random", "random", 0, None, d, _name("random", 0, None))]


def catalogue(profile: str) -> list[tuple[str, Path]]:
    """``[(release name, run-cache dir)]`` of the score tables ``make release`` publishes for ``profile``:
    every run of :func:`study_runs` with the findings chapter's default parameters and every companion
    (:func:`companion_runs`). Real-data profiles
    release none (their scenes cannot be shipped)."""
    from .config import profile_params

    P = profile_params("findings", profile)
    if transfers.task("bce_driving", profile).data != "driving":
        return []
    data = _driving(profile, P.data_root)
    out = []
    for r in study_runs(profile, P) + companion_runs(profile):
        out.append((r.release_name, _artifact_dir(_key(r.spec, data, P.n_eval, P.eval_size, P.k, P.tau))))
    return out

