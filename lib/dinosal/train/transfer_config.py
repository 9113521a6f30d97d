"""The configuration of a classifier transfer: :class:`TransferConfig`.

Every field carries its help text (``metadata['help']``; :func:`config_help`
lists them). As for DINO runs, the fields in :data:`RUN_CONTROL_FIELDS`
change only how a run is executed or watched, never what it computes: the
resume check (:func:`result_config`, stored in every checkpoint) leaves them
out, and a run-cache key should hold them at their defaults.

The defaults are DINO's linear evaluation (``eval_linear``, reference notes
section 1.7): SGD with momentum 0.9, no weight decay, lr ``0.001 * batch /
256`` on a cosine to 0, batch 128, 100 epochs, RandomResizedCrop + flip, a
linear head on the last block's CLS (``n_last_blocks=1``, the paper's
choice; DINO's ViT-S recipe uses 4). :meth:`TransferConfig.recipe` gives the
two starting points, ``"probe"`` (those defaults) and ``"finetune"`` (a
DeiT-style fine-tune: AdamW, lr 2.5e-4 per 256 images, weight decay 0.05,
warmup, drop path 0.1; DINO's fine-tuning used the DeiT code, dino issue
#31, which is not released).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Optional

from ..losses import PATCH_LOSSES, TRANSFER_LOSSES
from ..runs import config_dict
from .dino_config import _f, config_help

__all__ = ["TransferConfig", "RUN_CONTROL_FIELDS", "MODES", "OPTIMIZERS", "config_help", "result_config"]

MODES = ("probe", "finetune")
OPTIMIZERS = ("sgd", "adamw")

_FINETUNE = dict(optimizer="adamw", lr=2.5e-4, weight_decay=0.05, warmup_epochs=5, min_lr=1e-6, drop_path=0.1)


@dataclass(frozen=True)
class TransferConfig:
    """Every hyper-parameter of a transfer run (probe or fine-tune, CE or BCE).

    Errors on bad values are ``ValueError`` naming the field and the
    problem; some need the backbone (a patch size, a depth) and are raised
    when the run starts.
    """

    # ---- what is trained
    mode: str = _f("probe", "'probe': the backbone is frozen (eval mode, no gradients) and only the head learns, so attention and keys cannot change; 'finetune': the whole network learns")
    loss: str = _f("ce", "'ce': softmax cross-entropy, one class per image (the Stanford Cars role); 'bce': one sigmoid + binary cross-entropy per class on the image's multi-hot labels (the BDD100K role); 'patch_bce': the same per patch token, each patch labelled by the boxes covering its centre; 'patch_image_bce': the same per patch token, every patch labelled with its image's multi-hot (no boxes)")
    n_last_blocks: int = _f(1, "the head reads the CLS tokens of the last n blocks (each through the final norm), concatenated. 1 is the paper's classifier; 4 is eval_linear's ViT-S recipe")
    avgpool: bool = _f(False, "also feed the average of the last block's normed patch tokens (eval_linear's ViT-B recipe: n_last_blocks=1, avgpool on)")
    # ---- data
    img_size: int = _f(224, "side of the square network input in px (training crops and evaluation resize); a multiple of the backbone's patch")
    augment: bool = _f(True, "RandomResizedCrop(img_size, crop_scale) + horizontal flip on training images (eval_linear's train transform); False: the evaluation transform (resize only)")
    crop_scale: tuple = _f((0.08, 1.0), "area range of RandomResizedCrop (torchvision's and eval_linear's default). Image-level labels are kept for a crop that lost an object; per-patch labels follow the cropped boxes")
    flip_p: float = _f(0.5, "probability of the horizontal flip")
    precompute_features: bool = _f(False, "probe only, with augment=False: compute the frozen backbone's features of every training image once, then train the head on them (much faster; every process computes all of them)")
    # ---- optimisation
    optimizer: str = _f("sgd", "'sgd' (eval_linear: momentum, coupled weight decay) or 'adamw' (fine-tuning: decoupled weight decay). Biases and 1-D parameters never get weight decay")
    lr: float = _f(1e-3, "peak lr of the head per 256 images; the actual peak is lr * global_batch / 256 (eval_linear: 0.001)")
    backbone_lr: Optional[float] = _f(None, "finetune: peak lr of the backbone per 256 images (None: the head's lr). A smaller backbone lr keeps more of the pretrained features")
    layer_decay: float = _f(1.0, "finetune: layer-wise lr decay; block i of L gets backbone_lr * layer_decay^(L - i), the embeddings layer_decay^(L+1), the final norm 1 (BEiT's rule, 0.65-0.75 there). 1 = off")
    min_lr: float = _f(0.0, "lr at the end of the cosine, per 256 images like lr (eval_linear: 0)")
    warmup_epochs: int = _f(0, "epochs of linear lr warmup from 0")
    momentum: float = _f(0.9, "SGD momentum (unused by AdamW)")
    weight_decay: float = _f(0.0, "weight decay of weights (never biases or 1-D params); eval_linear: 0, DeiT fine-tuning: 0.05")
    clip_grad: float = _f(0.0, "max global L2 norm of the gradients (torch.nn.utils.clip_grad_norm_); 0 = off. DINO's pretraining clips per tensor instead")
    drop_path: float = _f(0.0, "finetune: stochastic depth of the backbone (linear over the blocks, as timm); removed again from the returned model")
    batch_size: int = _f(128, "images per process per step; lr scales with the global batch")
    epochs: int = _f(100, "epochs; with steps_per_epoch set, an epoch is that many steps")
    steps_per_epoch: Optional[int] = _f(None, "None: len(dataset) // global batch (a pass over the data). An int gives a step-based epoch")
    # ---- system
    seed: int = _f(0, "seed of the head's init, data order, augmentation and drop path")
    device: str = _f("auto", "'auto' (cuda if available), 'cpu' or 'cuda'")
    amp: str = _f("auto", "'auto' = bf16 autocast on GPU, fp32 on CPU; 'bf16' forces it; 'off' = fp32. The loss is computed in fp32")
    num_workers: int = _f(0, "DataLoader workers; results do not depend on it (per-sample seeding)")
    threads: Optional[int] = _f(None, "torch intra-op threads during the run (None: leave torch's setting)")
    eval_batch_size: int = _f(64, "images per forward pass when features are precomputed or a set is evaluated (other sizes may change the last bits of the features)")
    checkpoint_every: int = _f(0, "steps between checkpoints (0: only at the end)")
    snapshot_steps: tuple = _f((), "steps after which the whole model's weights are also kept as snapshots/step_NNNNNN.pth in the run dir (0: the start); for how maps move over fine-tuning")
    stop_at_step: Optional[int] = _f(None, "stop after this global step (the schedules still span the whole run); resume later")
    progress: bool = _f(True, "tqdm progress bar (rank 0)")

    def __post_init__(self) -> None:
        def bad(name, problem):
            raise ValueError(f"TransferConfig.{name} {problem}, got {getattr(self, name)!r}")

        for name, allowed in (("mode", MODES), ("loss", TRANSFER_LOSSES), ("optimizer", OPTIMIZERS),
                              ("device", ("auto", "cpu", "cuda")), ("amp", ("auto", "bf16", "off"))):
            if getattr(self, name) not in allowed:
                bad(name, f"must be one of {allowed}")
        for name in ("n_last_blocks", "img_size", "batch_size", "epochs", "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                bad(name, "must be >= 1")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            bad("steps_per_epoch", "must be None or >= 1")
        if not 0 <= self.warmup_epochs <= self.epochs:
            bad("warmup_epochs", f"must lie in [0, epochs={self.epochs}]")
        if not self.lr > 0:
            bad("lr", "must be > 0")
        for name in ("min_lr", "weight_decay", "clip_grad", "momentum"):
            if getattr(self, name) < 0:
                bad(name, "must be >= 0")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            bad("crop_scale", "must satisfy 0 < lo <= hi <= 1")
        if not 0 <= self.flip_p <= 1:
            bad("flip_p", "must lie in [0, 1]")
        if not 0 <= self.drop_path < 1:
            bad("drop_path", "must lie in [0, 1)")
        if not 0 < self.layer_decay <= 1:
            bad("layer_decay", "must lie in (0, 1]")
        if self.backbone_lr is not None and self.backbone_lr < 0:
            bad("backbone_lr", "must be None or >= 0")
        if self.mode == "probe":
            for name, off in (("drop_path", 0.0), ("layer_decay", 1.0), ("backbone_lr", None)):
                if getattr(self, name) != off:
                    bad(name, f"applies to mode='finetune' only (the probe's backbone is frozen); leave it at {off!r}")
        if self.precompute_features and (self.mode != "probe" or self.augment):
            raise ValueError("TransferConfig.precompute_features needs mode='probe' and augment=False (features "
                             f"of a frozen backbone on unaugmented images), got mode={self.mode!r}, augment={self.augment}")
        if self.loss in PATCH_LOSSES and (self.n_last_blocks != 1 or self.avgpool):
            raise ValueError(f"TransferConfig.loss={self.loss!r} reads the last block's patch tokens only; "
                             f"n_last_blocks must be 1 and avgpool False, got {self.n_last_blocks}, {self.avgpool}")

    @classmethod
    def recipe(cls, mode: str, **overrides) -> "TransferConfig":
        """A starting point per mode: ``"probe"`` = eval_linear (the field
        defaults); ``"finetune"`` = AdamW, lr 2.5e-4 per 256 images (DeiT's
        5e-4 at batch 512), weight decay 0.05, 5 warmup epochs, min lr 1e-6,
        drop path 0.1. ``overrides`` replace any field."""
        if mode not in MODES:
            raise ValueError(f"TransferConfig.recipe: mode must be one of {MODES}, got {mode!r}")
        base = dict(_FINETUNE) if mode == "finetune" else {}
        return cls(mode=mode, **{**base, **overrides})

    def replace(self, **changes) -> "TransferConfig":
        return dataclasses.replace(self, **changes)


# Fields that change how a run is executed or watched, not what it computes: the one list (see the module doc).
# eval_batch_size is not one of them: batched forward passes may differ in the last bits.
RUN_CONTROL_FIELDS = ("num_workers", "threads", "checkpoint_every", "stop_at_step", "progress", "device")


def result_config(cfg: TransferConfig) -> dict:
    """The fields that change results (:data:`RUN_CONTROL_FIELDS` left out), as a JSON-able dict."""
    d = config_dict(cfg)
    for k in RUN_CONTROL_FIELDS:
        d.pop(k, None)
    return json.loads(json.dumps(d, sort_keys=True))
