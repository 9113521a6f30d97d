"""The profile tables of every chapter: the one place where sizes live.

Plain data: importing this module registers nothing and imports nothing of
:mod:`dinosal` but :mod:`dinosal.params` (how a field is declared) and
:mod:`dinosal.transfer_tables`.
:mod:`dinosal.config` imports it and checks every table when it is imported.

Each chapter has a frozen dataclass of parameters (``profile`` plus knobs a
reader may change) and a table ``{profile: {field: value}}``; :data:`CHAPTERS`
maps the chapter's name to both. Fields with a default need no entry; a table
entry overrides the default for that profile. Every field is declared with
:func:`dinosal.params.param`: its annotation is its type, and it carries a
help text and the range or choices it accepts; checks between fields are in
the dataclass's ``__post_init__`` (through :func:`dinosal.params.require`).
Add a chapter by writing its dataclass and table and one entry of
:data:`CHAPTERS`.

The DINO models of the study (the zoo's recipes) are here too:
:data:`DINO_RECIPES` of :class:`DinoRecipe`. The classifier transfers'
tables (:data:`TRANSFER_TASKS`, :data:`TRANSFER_ARMS`, the controls and the
knobs) are in :mod:`dinosal.transfer_tables`, re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from .params import param, require
from .transfer_tables import (  # noqa: F401  (re-exported: the transfer tables live in their own module)
    KNOBS, PROBE_SUFFIX, TRANSFER_ARMS, TRANSFER_CONTROLS, TRANSFER_TASKS, Knob, TransferControl, TransferTask,
    _fine_tuned_names, transfer_names)
from .transfer_tables import CPU_DRIVING as _CPU_DRIVING

# Side limits of the procedural benchmark's images (dinosal.data.synthetic.MIN_SIZE, MAX_SIZE; importing
# the generators here would make every parameters cell import them; tests/test_config.py checks they agree).
SYNTHETIC_SIZE = (32, 512)
# The named ViT sizes of dinosal.models.create_vit (models.VIT_SIZES; checked in tests/test_config.py).
VIT_NAMES = ("tiny", "small", "base")


def _image_size(default: int, help: str):
    return param(default, help, min=SYNTHETIC_SIZE[0], max=SYNTHETIC_SIZE[1])


@dataclass(frozen=True)
class BenchmarkParams:
    """Chapter ``benchmark``: the procedural benchmark's gallery and statistics."""

    profile: str
    seed: int = param(0, "dataset seed of every generator", min=0)
    image_size: int = _image_size(128, "px, square")
    n_gallery: int = param(8, "images drawn per generator in the gallery", min=1)
    n_stats: int = param(400, "images per set for the statistics", min=1)
    n_contrast: int = param(60, "images per camouflage level for the pixel-contrast proxy", min=1)
    n_export: int = param(8, "images per format in the export round trip", min=1)
    export_dir: Optional[str] = param(None, "output folder the book owns for exported sets; None: a fresh "
                                            "temporary folder")


BENCHMARK_TABLE: dict[str, dict] = {
    "smoke": dict(image_size=64, n_gallery=4, n_stats=40, n_contrast=8, n_export=4),
    "cpu": dict(image_size=128, n_gallery=8, n_stats=400, n_contrast=60, n_export=8),
    "paper": dict(image_size=224, n_gallery=8, n_stats=2000, n_contrast=200, n_export=16),
}


# --------------------------------------------------------------------------
# DINO models of the study (the zoo): one recipe per (profile, model name).
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DinoRecipe:
    """How the zoo trains (or loads) one DINO model.

    data: ``"world"`` (ObjectWorld, the ImageNet role), ``"driving"``
        (DrivingScenes, the BDD100K role) or ``"image_folder"`` (real images
        under ``$DINOSAL_DATA/<data_config['folder']>``, paper profile).
    data_config: keyword arguments of the generator config (``WorldConfig``
        / ``DrivingConfig``: size, seed, camouflage, ...).
    n_train: images in the training set (indices ``0..n_train-1``).
    crops_preset: ``"official"`` (MultiCropConfig defaults) or ``"weak"``
        (:meth:`MultiCropConfig.weak`); ``crops`` overrides its fields.
    train: :class:`~dinosal.train.dino.DinoConfig` fields.
    weights: for ``data="official"``: a timm name; the local file in
        ``$DINOSAL_DINO_WEIGHTS`` wins when set.
    crops_start: a curriculum (not in original DINO): the preset's fields
        with these overrides are the augmentation at step 0, moving to
        ``crops`` over ``train["crops_ramp_steps"]`` steps (see
        :class:`~dinosal.train.dino_config.DinoConfig`); None: no curriculum.
    release_seeds: pretraining seeds trained and released beside the
        recipe's own (``train["seed"]``), as ``<name>__seed<s>``: the
        replications of the study (the training run is the unit).
    """

    data: str
    data_config: dict = field(default_factory=dict)
    n_train: int = 0
    crops_preset: str = "weak"
    crops: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    weights: str = ""
    crops_start: Optional[dict] = None
    release_seeds: tuple = ()


# The tiny network of the smoke profile: seconds, code path only.
_SMOKE_NET = dict(arch=(32, 2, 2), patch=8, img_size=32, out_dim=64, head_hidden=64, head_bottleneck=32,
                  batch_size=8, epochs=2, steps_per_epoch=2, warmup_epochs=1, drop_path=0.0, snapshot_steps=(0, 2, 4))
_SMOKE_CROPS = dict(global_size=32, local_size=16, n_local=2)

# The cpu profile's network and schedule (issue 4's recipe research; see
# book/appendix_dino_log.md for what was tried and what it gave). threads, num_workers and
# update_impl are run control (no key change, the same losses up to float rounding): two
# torch threads for the step and one worker for the crops, with fused AdamW, were the
# fastest whole step on two idle cores (issue 13, benchmarks/bench_dino_step.py). On a
# machine whose cores are busy with other work, one thread waits less (make weights --threads 1).
_CPU_NET = dict(arch=(128, 4, 4), patch=8, img_size=64, out_dim=1024, head_hidden=2048, head_bottleneck=256,
                batch_size=16, epochs=30, steps_per_epoch=50, warmup_epochs=1, lr=0.016, min_lr=1e-5,
                momentum_teacher=0.98, teacher_temp=0.04, warmup_teacher_temp=0.04, koleo_weight=0.1,
                drop_path=0.0, num_workers=1, threads=2, update_impl="fused")
# ObjectWorld as trained: vivid objects (camouflage 0) over backgrounds that vary little (0.1), so that the
# objects, not the background, tell images apart; 6-12 clutter shapes keep raw-pixel LOST below 0.4.
_CPU_WORLD = dict(size=64, seed=0, camouflage=0.0, background_variability=0.1, n_clutter=(6, 12))
# Teacher snapshots for the training chapter's emergence strip (step 0 = the initial weights).
_CPU_SNAPSHOTS = (0, 50, 150, 300, 600, 1000, 1500)
_CPU_CROPS = dict(global_size=64, local_size=32, n_local=4)

# The cpu dino_world recipe before issue 14's freeze (1,500 steps of the weak augmentation at teacher
# temperature 0.04): the base every lever of benchmarks/pretrain_levers.py changes, kept so that the
# search's log stays reproducible.
DINO_WORLD_SEARCH_BASE = DinoRecipe("world", _CPU_WORLD, n_train=20_000, crops=_CPU_CROPS,
                                    train=dict(_CPU_NET, snapshot_steps=_CPU_SNAPSHOTS))
# The frozen pretraining recipe (issue 14; book/appendix_dino_log.md, "the second search"): DINO's colour
# augmentation (jitter 0.4/0.4/0.2/0.1 at p 0.8, grayscale at p 0.5) ramped in over 2,000 steps from the weak
# one, with the teacher temperature at 0.02, for 3,000 steps. Chosen on the validation split by k-NN, then
# CorLoc (0.080 and 0.104 at 3,000 steps over two seeds, against at most 0.082 for the search base).
_CPU_COLOUR = dict(jitter=(0.4, 0.4, 0.2, 0.1), jitter_p=0.8, grayscale_p=0.5)
_CPU_WORLD_SNAPSHOTS = (0, 50, 100, 150, 300, 600, 1000, 1500, 2000, 2500, 3000)
_CPU_WORLD_TRAIN = dict(_CPU_NET, epochs=60, teacher_temp=0.02, warmup_teacher_temp=0.02, crops_ramp_steps=2000,
                        snapshot_steps=_CPU_WORLD_SNAPSHOTS)

DINO_RECIPES: dict[str, dict[str, DinoRecipe]] = {
    "smoke": {
        "dino_world": DinoRecipe("world", dict(size=32, seed=0), n_train=64, crops=_SMOKE_CROPS, train=_SMOKE_NET),
        "dino_driving": DinoRecipe("driving", dict(size=32, seed=0), n_train=64, crops=_SMOKE_CROPS,
                                   train=_SMOKE_NET),
    },
    "cpu": {
        "dino_world": DinoRecipe("world", _CPU_WORLD, n_train=20_000, crops={**_CPU_CROPS, **_CPU_COLOUR},
                                 crops_start=_CPU_CROPS, train=_CPU_WORLD_TRAIN, release_seeds=(1, 2)),
        "dino_driving": DinoRecipe("driving", _CPU_DRIVING, n_train=20_000, crops=_CPU_CROPS,
                                   train=dict(_CPU_NET, snapshot_steps=_CPU_SNAPSHOTS), release_seeds=(1, 2)),
    },
    "paper": {
        # the official ViT-S/8 used for the DINO paper's figures, LOST and TokenCut
        "dino_official": DinoRecipe("official", weights="vit_small_patch8_224.dino"),
        # DINO from scratch on BDD100K images (main_dino's ViT-S/8 recipe, one GPU or torchrun)
        "dino_driving": DinoRecipe(
            "image_folder", dict(folder="bdd100k/images/100k/train"), crops_preset="official",
            train=dict(arch="small", patch=8, img_size=224, out_dim=65536, batch_size=64, epochs=100,
                       teacher_temp=0.04, warmup_teacher_temp_epochs=0, num_workers=8, checkpoint_every=1000),
        ),
    },
}
"""Profile -> model name -> recipe. ``"random"`` (the same network at random
init) is implied for every profile; its network is that of the profile's
first trained recipe."""


RELEASE_FLOAT32: dict[str, str] = {
    "theory__full_dino": "float16 storage moves one LOST box: the theory chapter's CorLoc 0.120 becomes 0.125",
    "theory__frozen_teacher": "the theory chapter checks that it is the random init bit for bit",
    "theory__two_global_crops_only": "its mean cosine between images, 0.37750, sits on a rounding boundary: "
                                     "float16 storage prints 0.377 instead of 0.378",
}
"""The released models stored in float32, each with the reason (every other one is float16, which changes no
number its chapter prints: measured for the zoo models, and for the three other theory ablations by executing
the theory chapter from the release and from the float32 run cache: every printed number the same, the largest
difference of a glued value 6e-5)."""


# DINO's companions (dinosal.companions): Mugs and LEWEL trained with a DINO recipe's network, data, crops,
# steps and optimiser, for each parent below and each seed. Fields of MugsConfig / LewelConfig, scaled down
# for the CPU beside the official defaults those classes record (heads 2048/4096 wide, queues and memory
# of 65,536). benchmarks/bench_companions_step.py prints what a step of each costs against DINO's.
COMPANIONS: dict[str, dict] = {
    "smoke": {"parents": {"dino_world": (0,), "dino_driving": (0,)},
              "mugs": dict(head_hidden=64, out_dim=32, predictor_hidden=64, queue_size=64, memory_size=32, top_n=4),
              "lewel": dict(hidden=64, out_dim=32, num_heads=4)},
    "cpu": {"parents": {"dino_world": (0, 1, 2), "dino_driving": (0, 1, 2)},
            "mugs": dict(head_hidden=1024, out_dim=128, predictor_hidden=1024, queue_size=2048, memory_size=1024,
                         top_n=8),
            "lewel": dict(hidden=1024, out_dim=128, num_heads=4)},
}
"""Profile -> ``parents`` (DINO recipe whose budget the companions share -> its pretraining seeds, each a
run of each companion) and each companion's configuration fields."""


def zoo_models(profile: str) -> tuple[str, ...]:
    """The recipes of ``profile``: the models the zoo trains or loads (``zoo.names`` without ``"random"``)."""
    return tuple(DINO_RECIPES[profile])


def zoo_names(profile: str) -> tuple[str, ...]:
    """Every zoo name of ``profile``, ``"random"`` first (what ``zoo.names(profile)`` returns)."""
    return ("random",) + zoo_models(profile)


def _patches(profile: str, models) -> set[int]:
    """Patch sizes of the trained recipes among ``models`` (None: all) of ``profile``."""
    return {r.train["patch"] for name, r in DINO_RECIPES[profile].items()
            if (models is None or name in models) and "patch" in r.train}


# --------------------------------------------------------------------------
# Chapter "training": the zoo's DINO models, trained (or found in the run
# cache), their curves, attention emergence and the recipe's bar.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingParams:
    """Chapter ``training``: which zoo models, and how they are evaluated.

    Held-out images: the training generator's configuration with the dataset
    seed raised by 1000 (:func:`dinosal.zoo.held_out_samples`), rendered at
    ``eval_size`` px. A ViT trained at 64 px runs at any multiple of its
    patch (position embeddings interpolated), so a larger ``eval_size`` gives
    a finer token grid, as DINO's own figures use 480 px for a 224 px model.
    """

    profile: str
    models: Optional[list[str]] = param(None, "zoo names to train and show (None: every model of the profile "
                                              "but 'random')", choices=zoo_models)
    eval_size: int = _image_size(128, "px of the held-out images (a multiple of the models' patch)")
    n_eval: int = param(200, "held-out images with objects, per model, for the scores", min=1)
    n_strip: int = param(4, "images in the attention-emergence strip (at most n_eval)", min=1)
    n_knn: int = param(500, "images per k-NN split (train and test) for each monitor", min=1)
    knn_k: int = param(20, "neighbours of the k-NN classifier (at most n_knn)", min=1)
    k: int = param(100, "LOST: lowest-degree patches (clamped to the patch count)", min=1)
    num_workers: int = param(1, "data-loader workers while training (results do not depend on it)", min=0)
    threads: Optional[int] = param(1, "torch threads while training (None: torch's default)", min=1)

    def __post_init__(self):
        require(self.n_strip <= self.n_eval, "n_strip", self.n_strip,
                f"at most n_eval = {self.n_eval} (the strip shows held-out images)")
        require(self.knn_k <= self.n_knn, "knn_k", self.knn_k, f"at most n_knn = {self.n_knn}")
        for p in sorted(_patches(self.profile, self.models)):
            require(self.eval_size % p == 0, "eval_size", self.eval_size,
                    f"a multiple of the models' patch ({p} px) in {SYNTHETIC_SIZE[0]}..{SYNTHETIC_SIZE[1]}")


TRAINING_TABLE: dict[str, dict] = {
    "smoke": dict(eval_size=48, n_eval=6, n_strip=2, n_knn=24, knn_k=5, k=10, num_workers=0),
    "cpu": dict(),
    "paper": dict(eval_size=480, n_eval=500, n_knn=2000, num_workers=8, threads=None),
}


# --------------------------------------------------------------------------
# Chapter "theory": DINO's ablations (centering, sharpening, teacher update,
# multi-crop), each trained once through the run cache.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class TheoryParams:
    """Chapter ``theory``: the network, data and schedule of the ablation runs.

    Every variant trains ``steps`` DINO steps (``epochs`` step-based epochs)
    on ObjectWorld images of ``image_size`` px, or on the images under
    ``data_root/data_folder`` when ``data_root`` is given (paper profile).
    ``lr`` is the base rate at batch 256 (scaled by ``batch_size / 256``).
    Evaluation: k-NN on ``n_knn`` + ``n_knn`` SingleVehicles images (train /
    test) and localisation on ``n_eval`` held-out ObjectWorld images.
    """

    profile: str
    seed: int = param(0, "seed of the networks, the data and the toy examples", min=0)
    steps: int = param(200, "DINO steps per variant", min=1)
    epochs: int = param(4, "step-based epochs (lr warmup, last-layer freeze: 1 epoch); at most steps", min=1)
    image_size: int = _image_size(48, "global crop side = image side, px (a multiple of patch)")
    arch: Union[str, tuple[int, int, int]] = param(
        (96, 4, 3), "ViT (width, depth, heads), width divisible by heads, or a named size",
        choices=VIT_NAMES, min=1)
    patch: int = param(8, "ViT patch side, px", min=1)
    out_dim: int = param(512, "K, the head's output units", min=2)
    head_hidden: int = param(512, "hidden width of the head MLP", min=1)
    head_bottleneck: int = param(128, "width of the head's bottleneck", min=1)
    batch_size: int = param(32, "images per step (DINO needs at least 2; at most n_train)", min=2)
    n_local: int = param(4, "local crops per image (0: global crops only)", min=0)
    local_size: int = param(24, "local crop side, px (a multiple of patch, at most image_size)", min=1)
    crops_preset: str = param("weak", "'weak' colour augmentation for small runs, 'official' for the paper",
                              choices=("weak", "official"))
    lr: float = param(4e-3, "base lr at batch 256", gt=0)
    momentum_teacher: float = param(0.99, "EMA start, cosine to 1", min=0, max=1)
    n_train: int = param(20_000, "ObjectWorld images in the training set", min=1)
    n_knn: int = param(500, "SingleVehicles images per k-NN set (train and test)", min=1)
    knn_k: int = param(20, "neighbours of the k-NN classifier (at most n_knn)", min=1)
    n_eval: int = param(200, "held-out ObjectWorld images for localisation", min=1)
    num_workers: int = param(1, "data-loader workers (results do not depend on it)", min=0)
    threads: Optional[int] = param(1, "torch threads (None: torch's default); 1 leaves a core to the loader",
                                   min=1)
    data_root: Optional[str] = param(None, "paper: folder holding data_folder (real training images; input "
                                           "only)")
    data_folder: str = param("imagenet/train", "folder of training images under data_root")

    def __post_init__(self):
        require(self.epochs <= self.steps, "epochs", self.epochs,
                f"at most steps = {self.steps} (every epoch needs a step)")
        require(self.image_size % self.patch == 0, "image_size", self.image_size,
                f"a multiple of patch = {self.patch} in {SYNTHETIC_SIZE[0]}..{SYNTHETIC_SIZE[1]}")
        require(self.local_size % self.patch == 0 and self.local_size <= self.image_size, "local_size",
                self.local_size, f"a multiple of patch = {self.patch}, at most image_size = {self.image_size}")
        if isinstance(self.arch, tuple):
            width, _, heads = self.arch
            require(width % heads == 0, "arch", self.arch, "(width, depth, heads) with width divisible by heads")
        require(self.batch_size <= self.n_train, "batch_size", self.batch_size, f"at most n_train = {self.n_train}")
        require(self.knn_k <= self.n_knn, "knn_k", self.knn_k, f"at most n_knn = {self.n_knn}")


THEORY_TABLE: dict[str, dict] = {
    "smoke": dict(steps=4, epochs=2, image_size=32, arch=(32, 2, 2), out_dim=64, head_hidden=64,
                  head_bottleneck=32, batch_size=8, n_local=2, local_size=16, n_train=64, n_knn=24,
                  knn_k=5, n_eval=6, num_workers=0),
    "cpu": dict(),
    "paper": dict(steps=2000, epochs=10, image_size=224, arch="small", patch=16, out_dim=65536,
                  head_hidden=2048, head_bottleneck=256, batch_size=64, n_local=8, local_size=96,
                  crops_preset="official", lr=5e-4, momentum_teacher=0.996, n_train=100_000, n_knn=2000,
                  n_eval=500, num_workers=14, threads=None),
}


# --------------------------------------------------------------------------
# Chapter "saliency": attention, LOST and TokenCut for every zoo model,
# scored on held-out images.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SaliencyParams:
    """Chapter ``saliency``: which images, which methods' settings.

    Held-out images are the zoo's validation split of each DINO model's
    training generator (:func:`dinosal.zoo.held_out_samples`: dataset seed +
    1000) at ``image_size`` px, so every chapter scores the same images;
    ``seed`` only draws the driving scene of the speed measurement. In the
    paper profile the held-out images are BDD100K validation frames from
    ``data_root`` resized to a short side of ``image_size``. ``models``
    restricts the zoo names (None: every model of the profile).
    """

    profile: str
    seed: int = param(1000, "dataset seed of the driving scene timed in the speed section (the held-out "
                            "images are the zoo's validation split)", min=0)
    n_eval: int = param(200, "held-out images with objects, per set, for the metric tables", min=1)
    n_show: int = param(3, "driving scenes drawn in the paper-style figures (world: n_show - 1)", min=1)
    image_size: int = param(128, "px, square synthetic images (at most 512; with data_root: short side of "
                                 "BDD100K frames)", min=SYNTHETIC_SIZE[0])
    k: int = param(100, "LOST: lowest-degree patches (clamped to the number of patches)", min=1)
    tau: float = param(0.2, "TokenCut: graph threshold on cosine similarity", min=0, max=1)
    n_tau: int = param(60, "images per set in the tau sweep", min=1)
    timing_side: int = param(28, "TokenCut solver timing on a side x side grid (N = side**2)", min=2)
    n_explorer: int = param(6, "images offered by the explorer", min=1)
    models: Optional[list[str]] = param(None, "zoo names to show (None: zoo.names(profile))", choices=zoo_names)
    data_root: Optional[str] = param(None, "paper: folder holding bdd_labels and bdd_images (input only)")
    bdd_labels: str = param("bdd100k/labels/det_20/det_val.json", "BDD100K detection labels under data_root")
    bdd_images: str = param("bdd100k/images/100k/val", "BDD100K images under data_root")

    def __post_init__(self):
        if self.data_root is None:
            require(self.image_size <= SYNTHETIC_SIZE[1], "image_size", self.image_size,
                    f"{SYNTHETIC_SIZE[0]}..{SYNTHETIC_SIZE[1]} px for generated images (larger only for "
                    "BDD100K frames, with data_root)")


SALIENCY_TABLE: dict[str, dict] = {
    "smoke": dict(n_eval=6, n_show=2, image_size=48, k=10, n_tau=4, timing_side=10, n_explorer=2),
    "cpu": dict(),
    "paper": dict(n_eval=500, image_size=480, n_tau=100, timing_side=60),
}




# --------------------------------------------------------------------------
# Chapter "transfer": the arms trained (or found in the run cache), their
# accuracy, and their saliency maps before and after.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferParams:
    """Chapter ``transfer``: which arms, seeds and images.

    Every model is a named transfer of :mod:`dinosal.transfers` (recipes:
    :data:`TRANSFER_TASKS`). Classification is scored on the test split of
    each task (dataset seed + 3000, book/preregistration.md), maps on the
    first ``n_eval`` test driving scenes with an object rendered at
    ``eval_size`` px; the figures show the pre-registered scenes
    (:func:`dinosal.transfers.preregistered_scenes`).
    """

    profile: str
    arms: Optional[list[str]] = param(None, "fine-tuned arms to train and show, <parent>__<task> (None: every arm "
                                            "of the profile)", choices=_fine_tuned_names)
    probes: bool = param(True, "also the linear probe of each arm (<arm>__probe)")
    parent_seeds: Optional[list[int]] = param(None, "pretraining seeds of the parents (None: each recipe's own "
                                                    "seed; the study: the 3 seeds of the frozen recipe)", min=0)
    seeds: list[int] = param([0, 1], "transfer seeds (head init, data order, augmentation)", min=0)
    select: bool = param(False, "run the validation grid (lr x steps, cached) and train with its winners instead "
                                "of the table's values")
    n_test: int = param(1000, "test images per task for the accuracy table", min=1)
    n_eval: int = param(200, "test driving scenes with an object for the maps' mass ratios "
                             "(pre-registered: 200)", min=1)
    n_show: int = param(6, "pre-registered scenes in the figures (pre-registered: 6)", min=1)
    n_strip: int = param(3, "scenes in the fine-tuning strip (at most n_show)", min=1)
    n_class_maps: int = param(2, "scenes whose class maps are drawn (at most n_show)", min=1)
    eval_size: int = param(128, "px of the scenes the maps are computed on (pre-registered: 128)",
                           min=SYNTHETIC_SIZE[0])
    k: int = param(100, "LOST: lowest-degree patches (clamped to the patch count)", min=1)
    threads: Optional[int] = param(None, "torch threads (None: torch's default)", min=1)
    data_root: Optional[str] = param(None, "paper: folder holding bdd100k/ and stanford_cars/ (input only; None: "
                                           "$DINOSAL_DATA)")
    out_dir: Optional[str] = param(None, "folder for the chapter's CSV files (None: _build/transfer/<profile> "
                                         "of the checkout)")

    def __post_init__(self):
        require(self.n_strip <= self.n_show, "n_strip", self.n_strip, f"at most n_show = {self.n_show}")
        require(self.n_class_maps <= self.n_show, "n_class_maps", self.n_class_maps,
                f"at most n_show = {self.n_show}")
        require(len(self.seeds) >= 1 and len(set(self.seeds)) == len(self.seeds), "seeds", self.seeds,
                "one or more distinct seeds")
        require(self.arms is None or any(a.endswith("__bce_driving") for a in self.arms), "arms", self.arms,
                "None, or a list holding a <parent>__bce_driving arm (the maps and the strip are drawn from it)")
        for p in sorted(_patches(self.profile, None)):
            require(self.eval_size % p == 0, "eval_size", self.eval_size, f"a multiple of the models' patch ({p} px)")


TRANSFER_TABLE: dict[str, dict] = {
    "smoke": dict(select=True, n_test=24, n_eval=6, n_show=2, n_strip=1, n_class_maps=1, eval_size=48, k=10),
    "cpu": dict(threads=2),
    "paper": dict(n_test=8041, n_eval=500, eval_size=480),
}


# --------------------------------------------------------------------------
# Chapter "findings": the paper's claims, measured on the study's runs (their
# score tables: dinosal.run_scores), judged by the pre-registered rule.
# --------------------------------------------------------------------------

_CLAIM_ARMS = ["dino_world__bce_driving", "dino_world__ce_vehicles", "dino_world__box_driving",
               "dino_driving__bce_driving"]
_CONTROL_RUNS = ["dino_world__bce_driving_shuffled", "dino_world__ce_driving_single", "dino_world__bce_vehicles",
                 "dino_world__dense_driving", "dino_world__dino_driving_exposure", "random__bce_driving"]
_KNOB_RUNS = ["dino_world__bce_driving_single", "dino_world__bce_driving_single_half",
              "dino_world__bce_driving_presence_half", "dino_world__bce_driving_presence_full",
              "dino_world__bce_driving_tree_ped_050", "dino_world__bce_driving_tree_ped_100"]


@dataclass(frozen=True)
class FindingsParams:
    """Chapter ``findings``: which runs are scored, on which scenes, and the bootstrap.

    Every run is a zoo model or a named transfer (:mod:`dinosal.transfers`, controls and knob levels
    included); its maps are scored once on the first ``n_eval`` test driving scenes with an object
    (:mod:`dinosal.run_scores`, cached and released as tables), and the claims are decided on those tables
    by book/preregistration.md's rule (:mod:`dinosal.findings`).
    """

    profile: str
    pretrained: list[str] = param(["dino_world", "dino_driving", "random"], "pretrained models whose maps are "
                                  "scored (the first is the paper's pretrained DINO; dino_driving: DINO from "
                                  "scratch on the driving scenes)")
    arms: list[str] = param(_CLAIM_ARMS, "fine-tuned transfers the claims rest on, trained over every parent seed x "
                            "claim_seeds")
    controls: list[str] = param(_CONTROL_RUNS, "controls (each an arm with one change) over control_seeds")
    knobs: list[str] = param(_KNOB_RUNS, "claim 4's knob levels (BCE on scenes with one generator knob set)")
    parent_seeds: Optional[list[int]] = param(None, "pretraining seeds (None: each recipe's own and its "
                                                    "released ones)", min=0)
    claim_seeds: list[int] = param([0, 1, 2, 3], "transfer seeds of the claims' arms (the pilot's rule raised "
                                                 "them to 4)", min=0)
    scratch_seeds: list[int] = param([0, 1], "transfer seeds of the arms from DINO from scratch (claim 2 measured "
                                             "from that parent, a second family)", min=0)
    control_seeds: list[int] = param([0], "transfer seeds of the controls", min=0)
    knob_seeds: list[int] = param([0], "transfer seeds of the knob levels", min=0)
    n_eval: int = param(200, "test driving scenes with an object (pre-registered: 200)", min=1)
    eval_size: int = param(128, "px of the scenes the maps are computed on (pre-registered: 128)",
                           min=SYNTHETIC_SIZE[0])
    k: int = param(100, "LOST: lowest-degree patches (clamped to the patch count)", min=1)
    tau: float = param(0.2, "TokenCut's graph threshold", gt=0, lt=1)
    n_show: int = param(6, "pre-registered scenes in the figures (pre-registered: 6)", min=1)
    n_boot: int = param(2000, "hierarchical bootstrap resamples (pre-registered: 2000)", min=10)
    checkpoint: Optional[str] = param(None, "a DINO checkpoint file of yours (main_dino's checkpoint.pth or a "
                                            "backbone state dict, read by dinosal.models.load_dino_backbone): its "
                                            "maps are scored and drawn beside the pretrained models")
    threads: Optional[int] = param(None, "torch threads (None: torch's default)", min=1)
    data_root: Optional[str] = param(None, "paper: folder holding bdd100k/ (input only; None: $DINOSAL_DATA)")
    out_dir: Optional[str] = param(None, "folder for the chapter's CSV files (None: _build/findings/<profile> "
                                         "of the checkout)")

    def __post_init__(self):
        require(len(self.pretrained) >= 2, "pretrained", self.pretrained,
                "the paper's pretrained DINO first, then at least dino_driving")
        for name in ("claim_seeds", "scratch_seeds", "control_seeds", "knob_seeds"):
            seeds = getattr(self, name)
            require(len(seeds) >= 1 and len(set(seeds)) == len(seeds), name, seeds, "one or more distinct seeds")
        for p in sorted(_patches(self.profile, None)):
            require(self.eval_size % p == 0, "eval_size", self.eval_size, f"a multiple of the models' patch ({p} px)")


FINDINGS_TABLE: dict[str, dict] = {
    "smoke": dict(claim_seeds=[0, 1], n_eval=6, eval_size=48, k=10, n_show=2, n_boot=50,
                  knobs=[k for k in _KNOB_RUNS if k != "dino_world__bce_driving_tree_ped_050"]),
    "cpu": dict(threads=2),
    "paper": dict(pretrained=["dino_official", "dino_driving"],
                  arms=["dino_official__bce_driving", "dino_official__ce_vehicles", "dino_driving__bce_driving"],
                  controls=["dino_official__bce_driving_shuffled", "dino_official__bce_vehicles",
                            "dino_official__dense_driving", "dino_official__box_driving", "random__bce_driving"],
                  knobs=[], claim_seeds=[0, 1], n_eval=500, eval_size=480),
}


# --------------------------------------------------------------------------
# Chapter "mugs_lewel": DINO's companions beside DINO at equal compute.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class CompanionsParams:
    """Chapter ``mugs_lewel``: Mugs and LEWEL (:mod:`dinosal.companions`) beside DINO, per parent recipe and seed.

    Maps, CorLoc and per-part mass on the findings chapter's pre-registered test driving scenes (the same
    score tables, :mod:`dinosal.run_scores`); k-NN on each domain's test split against the random init."""

    profile: str
    seeds: Optional[list[int]] = param(None, "pretraining seeds (None: the profile's, profiles.COMPANIONS)", min=0)
    n_eval: int = param(200, "test driving scenes with an object (the findings chapter's: 200)", min=1)
    eval_size: int = param(128, "px of the scenes the maps are computed on", min=SYNTHETIC_SIZE[0])
    k: int = param(100, "LOST: lowest-degree patches (clamped to the patch count)", min=1)
    tau: float = param(0.2, "TokenCut's graph threshold", gt=0, lt=1)
    n_knn: int = param(500, "images per k-NN split (train and test), test split", min=1)
    knn_k: int = param(20, "neighbours of the k-NN classifier", min=1)
    n_show: int = param(2, "pre-registered test scenes in the figures", min=1)
    threads: Optional[int] = param(None, "torch threads (None: torch's default)", min=1)
    data_root: Optional[str] = param(None, "paper: folder holding bdd100k/ (input only; None: $DINOSAL_DATA)")

    def __post_init__(self):
        require(self.knn_k <= self.n_knn, "knn_k", self.knn_k, f"at most n_knn ({self.n_knn})")
        for p in sorted(_patches(self.profile, None)):
            require(self.eval_size % p == 0, "eval_size", self.eval_size, f"a multiple of the models' patch ({p} px)")


COMPANIONS_TABLE: dict[str, dict] = {
    "smoke": dict(n_eval=6, eval_size=48, k=10, n_knn=24, knn_k=5),
    "cpu": dict(threads=2),
    "paper": dict(),
}


# --------------------------------------------------------------------------
# Every chapter: name -> (parameter dataclass, {profile: {field: value}}).
# --------------------------------------------------------------------------

CHAPTERS: dict[str, tuple[type, dict[str, dict]]] = {
    "benchmark": (BenchmarkParams, BENCHMARK_TABLE),
    "training": (TrainingParams, TRAINING_TABLE),
    "theory": (TheoryParams, THEORY_TABLE),
    "saliency": (SaliencyParams, SALIENCY_TABLE),
    "transfer": (TransferParams, TRANSFER_TABLE),
    "findings": (FindingsParams, FINDINGS_TABLE),
    "mugs_lewel": (CompanionsParams, COMPANIONS_TABLE),
}
"""Chapter name -> (its parameter dataclass, its table ``{profile: {field: value}}``);
:mod:`dinosal.config` checks and resolves them."""
