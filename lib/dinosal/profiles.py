"""The profile tables of every chapter: the one place where sizes live.

Each chapter has a frozen dataclass of parameters (``profile`` plus knobs a
reader may change) and a table ``{profile: {field: value}}``. Fields with a
default need no entry; a table entry overrides the default for that profile.
Add a chapter by writing its dataclass and one ``register_chapter`` call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .config import register_chapter


@dataclass(frozen=True)
class BenchmarkParams:
    """Chapter ``benchmark``: the procedural benchmark's gallery and statistics."""

    profile: str
    seed: int = 0
    image_size: int = 128          # px, square
    n_gallery: int = 8             # images drawn per generator in the gallery
    n_stats: int = 400             # images per set for the statistics
    n_contrast: int = 60           # images per camouflage level for the pixel-contrast proxy
    n_export: int = 8              # images per format in the export round trip
    data_root: Optional[str] = None  # where exported sets are written (None: temp dir)


register_chapter(
    "benchmark",
    BenchmarkParams,
    {
        "smoke": dict(image_size=64, n_gallery=4, n_stats=40, n_contrast=8, n_export=4),
        "cpu": dict(image_size=128, n_gallery=8, n_stats=400, n_contrast=60, n_export=8),
        "paper": dict(image_size=224, n_gallery=8, n_stats=2000, n_contrast=200, n_export=16),
    },
)


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
    """

    data: str
    data_config: dict = field(default_factory=dict)
    n_train: int = 0
    crops_preset: str = "weak"
    crops: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    weights: str = ""


# The tiny network of the smoke profile: seconds, code path only.
_SMOKE_NET = dict(arch=(32, 2, 2), patch=8, img_size=32, out_dim=64, head_hidden=64, head_bottleneck=32,
                  batch_size=8, epochs=2, steps_per_epoch=2, warmup_epochs=1, drop_path=0.0, snapshot_steps=(0, 2, 4))
_SMOKE_CROPS = dict(global_size=32, local_size=16, n_local=2)

# The cpu profile's network and schedule (issue 4's recipe research; see
# book/appendix_dino_log.md for what was tried and what it gave).
_CPU_NET = dict(arch=(128, 4, 4), patch=8, img_size=64, out_dim=1024, head_hidden=2048, head_bottleneck=256,
                batch_size=16, epochs=30, steps_per_epoch=50, warmup_epochs=1, lr=0.016, min_lr=1e-5,
                momentum_teacher=0.98, teacher_temp=0.04, warmup_teacher_temp=0.04, koleo_weight=0.1,
                drop_path=0.0, num_workers=1)
# ObjectWorld as trained: vivid objects (camouflage 0) over backgrounds that vary little (0.1), so that the
# objects, not the background, tell images apart; 6-12 clutter shapes keep raw-pixel LOST below 0.4.
_CPU_WORLD = dict(size=64, seed=0, camouflage=0.0, background_variability=0.1, n_clutter=(6, 12))
# DrivingScenes with a road, sky and roadside that vary little between scenes (the prototype's finding:
# with fully varied backgrounds, attention follows the road layout, which tells scenes apart best), and
# 1-3 objects drawn 1.6x larger (12 % of the image instead of 8 %; appendix runs d1 and d2).
_CPU_DRIVING = dict(size=64, seed=0, background_variability=0.2, object_scale=1.6, n_objects=(1, 3))
# Teacher snapshots for the training chapter's emergence strip (step 0 = the initial weights).
_CPU_SNAPSHOTS = (0, 50, 150, 300, 600, 1000, 1500)
_CPU_CROPS = dict(global_size=64, local_size=32, n_local=4)

DINO_RECIPES: dict[str, dict[str, DinoRecipe]] = {
    "smoke": {
        "dino_world": DinoRecipe("world", dict(size=32, seed=0), n_train=64, crops=_SMOKE_CROPS, train=_SMOKE_NET),
        "dino_driving": DinoRecipe("driving", dict(size=32, seed=0), n_train=64, crops=_SMOKE_CROPS,
                                   train=_SMOKE_NET),
    },
    "cpu": {
        "dino_world": DinoRecipe("world", _CPU_WORLD, n_train=20_000, crops=_CPU_CROPS,
                                 train=dict(_CPU_NET, snapshot_steps=_CPU_SNAPSHOTS)),
        "dino_driving": DinoRecipe("driving", _CPU_DRIVING, n_train=20_000, crops=_CPU_CROPS,
                                   train=dict(_CPU_NET, snapshot_steps=_CPU_SNAPSHOTS)),
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
    models: Optional[list] = None    # zoo names to train and show (None: every trained model of the profile)
    eval_size: int = 128             # px of the held-out images (a multiple of the patch)
    n_eval: int = 200                # held-out images with objects, per model, for the scores
    n_strip: int = 4                 # images in the attention-emergence strip
    n_knn: int = 500                 # images per k-NN split (train and test) for each monitor
    knn_k: int = 20
    k: int = 100                     # LOST: lowest-degree patches (clamped to the patch count)
    num_workers: int = 1             # data-loader workers while training (results do not depend on it)
    threads: Optional[int] = 1       # torch threads while training (None: torch's default)


register_chapter(
    "training",
    TrainingParams,
    {
        "smoke": dict(eval_size=48, n_eval=6, n_strip=2, n_knn=24, knn_k=5, k=10, num_workers=0),
        "cpu": dict(),
        "paper": dict(eval_size=480, n_eval=500, n_knn=2000, num_workers=8, threads=None),
    },
)


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
    seed: int = 0
    steps: int = 200                 # DINO steps per variant
    epochs: int = 4                  # step-based epochs (lr warmup, last-layer freeze: 1 epoch)
    image_size: int = 48             # global crop side = image side, px
    arch: tuple = (96, 4, 3)         # ViT (width, depth, heads) or "small"
    patch: int = 8
    out_dim: int = 512               # K, the head's output units
    head_hidden: int = 512
    head_bottleneck: int = 128
    batch_size: int = 32
    n_local: int = 4                 # local crops per image
    local_size: int = 24             # local crop side, px
    crops_preset: str = "weak"       # "weak" colour augmentation for small runs, "official" for the paper
    lr: float = 4e-3                 # base lr at batch 256
    momentum_teacher: float = 0.99   # EMA start, cosine to 1
    n_train: int = 20_000            # ObjectWorld images in the training set
    n_knn: int = 500                 # SingleVehicles images per k-NN set (train and test)
    knn_k: int = 20
    n_eval: int = 200                # held-out ObjectWorld images for localisation
    num_workers: int = 1             # data-loader workers (results do not depend on it)
    threads: Optional[int] = 1       # torch threads (None: torch's default); 1 leaves a core to the loader
    data_root: Optional[str] = None  # paper: folder holding data_folder (real training images)
    data_folder: str = "imagenet/train"


register_chapter(
    "theory",
    TheoryParams,
    {
        "smoke": dict(steps=4, epochs=2, image_size=32, arch=(32, 2, 2), out_dim=64, head_hidden=64,
                      head_bottleneck=32, batch_size=8, n_local=2, local_size=16, n_train=64, n_knn=24,
                      knn_k=5, n_eval=6, num_workers=0),
        "cpu": dict(),
        "paper": dict(steps=2000, epochs=10, image_size=224, arch="small", patch=16, out_dim=65536,
                      head_hidden=2048, head_bottleneck=256, batch_size=64, n_local=8, local_size=96,
                      crops_preset="official", lr=5e-4, momentum_teacher=0.996, n_train=100_000, n_knn=2000,
                      n_eval=500, num_workers=14, threads=None),
    },
)


# --------------------------------------------------------------------------
# Chapter "saliency": attention, LOST and TokenCut for every zoo model,
# scored on held-out images.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SaliencyParams:
    """Chapter ``saliency``: which images, which methods' settings.

    Held-out images are drawn with dataset seed ``seed`` (it must differ from
    the seeds the zoo's DINO models were trained with) at ``image_size`` px;
    in the paper profile they are BDD100K validation frames from
    ``data_root`` resized to a short side of ``image_size``. ``models``
    restricts the zoo names (None: every model of the profile).
    """

    profile: str
    seed: int = 1000                 # dataset seed of the held-out images
    n_eval: int = 200                # held-out images with objects, per set, for the metric tables
    n_show: int = 3                  # driving scenes drawn in the paper-style figures (world: n_show - 1)
    image_size: int = 128            # px, square synthetic images (paper: short side of BDD100K frames)
    k: int = 100                     # LOST: lowest-degree patches (clamped to the number of patches)
    tau: float = 0.2                 # TokenCut: graph threshold
    n_tau: int = 60                  # images per set in the tau sweep
    timing_side: int = 28            # TokenCut solver timing on a side x side grid (N = side**2)
    n_explorer: int = 6              # images offered by the explorer
    models: Optional[list] = None    # zoo names to show (None: zoo.names(profile))
    data_root: Optional[str] = None  # paper: folder holding bdd_labels and bdd_images
    bdd_labels: str = "bdd100k/labels/det_20/det_val.json"
    bdd_images: str = "bdd100k/images/100k/val"


register_chapter(
    "saliency",
    SaliencyParams,
    {
        "smoke": dict(n_eval=6, n_show=2, image_size=48, k=10, n_tau=4, timing_side=10, n_explorer=2),
        "cpu": dict(),
        "paper": dict(n_eval=500, image_size=480, n_tau=100, timing_side=60),
    },
)
