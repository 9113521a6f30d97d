"""Classifier transfer: a linear head on a pretrained ViT, trained as a probe or fine-tuned.

This is the paper's experiment: a DINO-pretrained ViT gets a classifier fed
from its last block, in the manner of DINO's linear evaluation
(``eval_linear.py``, reference notes section 1.7), and is trained with
cross-entropy (one class per image) or one binary cross-entropy per class
(multi-label); the saliency maps of the result are then compared with the
starting model's.

* **Head** (:class:`~dinosal.models.Classifier`): ``Linear(F, C)`` with
  weights N(0, 0.01) and bias 0 on ``F = D * (n_last_blocks + avgpool)``
  features -- the CLS tokens of the last ``n_last_blocks`` blocks, each
  through the final norm, and optionally the average of the last block's
  patch tokens. ``loss="patch_bce"`` puts the same layer on every patch
  token instead (:class:`~dinosal.models.PatchClassifier`), each patch
  labelled by the boxes covering its centre
  (:func:`~dinosal.losses.patch_targets`); ``"patch_image_bce"`` is the same
  dense head with the image's labels on every patch.
* **Modes.** ``"probe"``: the backbone is frozen (``requires_grad=False``)
  and stays in eval mode, as in eval_linear, so its weights, keys and
  attention -- everything LOST, TokenCut and the CLS maps read -- are
  bit-identical after training (reference notes section 2); features may be
  computed once (``precompute_features``). ``"finetune"``: every parameter
  learns, with its own backbone lr, optional layer-wise lr decay and drop
  path (removed again from the returned model).
* **Starting point**: any backbone module (a zoo model such as ``random``,
  ``dino_world``, ``dino_driving``, or :func:`backbone_from_file` for a
  checkpoint the reader names). It is copied: the caller's module is never
  changed.
* **Optimisation.** eval_linear's recipe by default (SGD, momentum 0.9, lr
  ``0.001 * global_batch / 256``, cosine to 0); the schedule is indexed by
  the global step (DINO's ``cosine_scheduler``), where eval_linear steps a
  ``CosineAnnealingLR`` once per epoch. Parameter groups: no weight decay on
  biases and 1-D parameters (:func:`~dinosal.train.updates.scaled_param_groups`).
* **Machinery shared with the DINO trainer**: step-indexed data order and
  per-sample seeded augmentation (:mod:`~dinosal.train.sampling`: a resumed
  run sees the crops an uninterrupted run would, and ``k`` processes the
  global batch one process would), torchrun/DDP (:mod:`~dinosal.train.runtime`:
  gloo on CPU, NCCL on GPU; losses averaged over processes), atomic
  checkpoints in a run folder that is never taken over from someone else,
  resume at the saved step, a tqdm bar, :class:`NonFiniteLossError`.

Checkpoints (``checkpoint.pth``) hold the classifier's state under
``'model'`` (``backbone.*``/``head.*`` keys) and, under ``'config'``, the
run's configuration plus the backbone's arch, patch, position mode and the
sha256 of its starting weights (a resume from another starting point is
refused). :func:`load_transfer` rebuilds the classifier from one, and
:func:`dinosal.models.load_dino_backbone` reads its backbone (for LOST and
TokenCut on the transferred model). Configuration: :mod:`~dinosal.train.transfer_config`;
transforms, targets and evaluation: :mod:`~dinosal.train.transfer_data`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ..losses import PATCH_LOSSES, transfer_loss
from ..metrics import ClassificationScores
from ..models import (Classifier, LinearHead, PatchClassifier, dino_backbone_from, feature_dim, load_dino_backbone,
                      set_drop_path)
from ..runs import atomic_torch_save
from ..schedules import cosine_schedule, scaled_lr
from .monitor import NonFiniteLossError
from .runtime import Dist, autocast, claim_run_dir, rng_state, set_rng_state, setup_distributed, snapshot_path
from .runtime import save_run, write_log_csv
from .sampling import AugmentedDataset, StepSampler
from .transfer_config import RUN_CONTROL_FIELDS, TransferConfig, config_help, result_config
from .transfer_data import TransferTransform, class_names_of, evaluate_transfer, precompute_features
from .updates import scaled_param_groups, vit_layer_id

__all__ = [
    "TransferConfig",
    "RUN_CONTROL_FIELDS",
    "config_help",
    "TransferTrainer",
    "TransferResult",
    "TransferCheckpoint",
    "NonFiniteLossError",
    "build_classifier",
    "backbone_from_file",
    "train_transfer",
    "transfer_loader",
    "load_transfer",
    "transfer_from_checkpoint",
    "evaluate_transfer",
    "CHECKPOINT",
    "LOG_CSV",
]

CHECKPOINT = "checkpoint.pth"
LOG_CSV = "log.csv"
_WRITER = f"{__name__}.train_transfer"
_CHECKPOINT_KEYS = ("model", "optimizer", "step", "steps_per_epoch", "world_size", "config", "class_names", "log",
                    "rng")
AnyClassifier = Union[Classifier, PatchClassifier]


def build_classifier(backbone: nn.Module, num_classes: int, loss: str = "ce", n_last_blocks: int = 1,
                     avgpool: bool = False) -> AnyClassifier:
    """``backbone`` (used as is, not copied) with a fresh :class:`~dinosal.models.LinearHead`:
    a :class:`~dinosal.models.Classifier` for ``"ce"``/``"bce"``, a
    :class:`~dinosal.models.PatchClassifier` for the patch losses. The head's
    init draws from torch's global generator."""
    width = int(backbone.embed_dim)
    if loss in PATCH_LOSSES:
        return PatchClassifier(backbone, LinearHead(width, num_classes, multi_label=True))
    head = LinearHead(feature_dim(width, n_last_blocks, avgpool), num_classes, multi_label=loss == "bce")
    return Classifier(backbone, head, n_last_blocks=n_last_blocks, avgpool=avgpool)


def backbone_from_file(path, which: str = "teacher", heads: Optional[int] = None,
                       pos_interp: str = "dino") -> nn.Module:
    """A starting point the reader names: the ViT in a checkpoint file, read
    strictly by :func:`dinosal.models.load_dino_backbone` (official DINO
    weights, a dinosal DINO run -- its ``which`` network --, or a transfer
    checkpoint, whose backbone is taken). Errors are that function's."""
    model, _ = load_dino_backbone(path, which=which, heads=heads, pos_interp=pos_interp)
    return model


def _backbone_identity(backbone: nn.Module) -> dict:
    """Arch, patch, position mode and sha256 of the starting weights."""
    digest = hashlib.sha256()
    for name, t in sorted(backbone.state_dict().items()):
        t = t.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    blocks = getattr(backbone, "blocks", None)
    heads = getattr(getattr(blocks[0], "attn", None), "num_heads", None) if blocks else None
    patch = getattr(getattr(backbone, "patch_embed", None), "patch_size", None)
    return {"arch": [int(backbone.embed_dim), len(blocks) if blocks else None, heads],
            "patch": int(patch[0]) if isinstance(patch, (tuple, list)) else patch,
            "pos_interp": getattr(backbone, "pos_interp", "timm"), "start_sha256": digest.hexdigest()}


class TransferTrainer:
    """The classifier, optimizer and lr schedule of one transfer run.

    ``backbone`` is copied; ``class_names`` fix the head's width.
    :meth:`train_step` does one iteration on a batch and returns its log
    row; use :func:`train_transfer` for a whole run with data, checkpoints
    and resume. Raises ``ValueError`` naming the field for a configuration
    the backbone cannot serve (an ``img_size`` that is not a multiple of its
    patch, more ``n_last_blocks`` than it has blocks).
    """

    def __init__(self, cfg: TransferConfig, backbone: nn.Module, class_names: Sequence[str], steps_per_epoch: int,
                 dist_info: Optional[Dist] = None) -> None:
        self.cfg = cfg
        self.dist = dist_info or setup_distributed(cfg.device, where="TransferConfig.device")
        self.device = self.dist.device
        self.class_names = tuple(str(c) for c in class_names)
        self.steps_per_epoch = int(steps_per_epoch)
        if self.steps_per_epoch < 1:
            raise ValueError("TransferTrainer: steps_per_epoch must be >= 1 (dataset smaller than one global batch?)")
        if not self.class_names:
            raise ValueError("TransferTrainer: class_names is empty")
        self.identity = _backbone_identity(backbone)
        depth, patch = self.identity["arch"][1] or 0, self.identity["patch"]
        if patch and cfg.img_size % patch:
            raise ValueError(f"TransferConfig.img_size {cfg.img_size} is not a multiple of the backbone's patch {patch}")
        if cfg.n_last_blocks > depth:
            raise ValueError(f"TransferConfig.n_last_blocks {cfg.n_last_blocks} exceeds the backbone's {depth} blocks")
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.global_batch = cfg.batch_size * self.dist.world
        self.patch = patch

        torch.manual_seed(cfg.seed)
        self.model = build_classifier(copy.deepcopy(backbone), len(self.class_names), cfg.loss, cfg.n_last_blocks,
                                      cfg.avgpool).to(self.device)
        if cfg.mode == "probe":
            self.model.freeze_backbone()
            self.trainable: nn.Module = self.model.head
        else:
            for p in self.model.parameters():
                p.requires_grad_(True)
            set_drop_path(self.model.backbone, cfg.drop_path)
            self.trainable = self.model
        self.trainable_ddp: nn.Module = self.trainable
        if self.dist.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.trainable_ddp = DistributedDataParallel(self.trainable, device_ids=ids)

        ratio = 1.0 if cfg.backbone_lr is None else cfg.backbone_lr / cfg.lr

        def lr_scale(name: str) -> float:
            if not name.startswith("backbone."):
                return 1.0
            return ratio * cfg.layer_decay ** (depth + 1 - vit_layer_id(name, depth))

        groups = scaled_param_groups(self.trainable, lr_scale)
        if cfg.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(groups, lr=0.0, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        else:
            self.optimizer = torch.optim.AdamW(groups, lr=0.0, weight_decay=cfg.weight_decay)
        self.backbone_lr_ratio = ratio
        self.lr_schedule = cosine_schedule(scaled_lr(cfg.lr, self.global_batch), scaled_lr(cfg.min_lr, self.global_batch),
                                           cfg.epochs, self.steps_per_epoch, cfg.warmup_epochs)
        self.step = 0
        self.log: list[dict] = []

    # ---- one iteration
    def _logits(self, x: torch.Tensor, features: bool) -> torch.Tensor:
        if self.cfg.mode == "finetune":
            return self.trainable_ddp(x)
        if not features:
            with torch.no_grad():
                x = self.model.features(x)
        if x.ndim == 3:  # patch tokens (B, N, D): one head for every token
            b, n, d = x.shape
            return self.trainable_ddp(x.reshape(b * n, d)).reshape(b, n, -1)
        return self.trainable_ddp(x)

    def train_step(self, x: torch.Tensor, target: torch.Tensor, features: bool = False) -> dict:
        """One iteration at ``self.step`` on images ``x`` ``(B, 3, S, S)`` (or,
        in a probe with ``features=True``, precomputed features) and their
        targets (see :func:`~dinosal.losses.transfer_loss`); returns the log
        row (also appended to ``self.log``). Raises
        :class:`NonFiniteLossError`; gradients are switched on for the step
        (a caller inside ``torch.no_grad()`` trains as anywhere else), and
        inside ``torch.inference_mode()`` it raises ``RuntimeError``."""
        if torch.is_inference_mode_enabled():
            raise RuntimeError("TransferTrainer.train_step needs autograd, which torch.inference_mode() disables; "
                               "call it outside the inference_mode block")
        if features and self.cfg.mode != "probe":
            raise ValueError("TransferTrainer.train_step: features=True needs mode='probe'")
        with torch.enable_grad():
            return self._train_step(x, target, features)

    def _train_step(self, x: torch.Tensor, target: torch.Tensor, features: bool) -> dict:
        cfg, it = self.cfg, self.step
        t0 = time.perf_counter()
        lr = float(self.lr_schedule[it])
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
            group["weight_decay"] = cfg.weight_decay if group["apply_wd"] else 0.0
        x, target = x.to(self.device, non_blocking=True), target.to(self.device, non_blocking=True)
        self.model.train()  # a frozen backbone stays in eval mode
        with autocast(self.device, cfg.amp):
            logits = self._logits(x, features)
        loss = transfer_loss(logits.float(), target, cfg.loss)
        if not torch.isfinite(loss.detach()):
            raise NonFiniteLossError(f"transfer loss is {loss.item()} at step {it}; stopping")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_([p for p in self.trainable.parameters() if p.requires_grad], cfg.clip_grad)
        self.optimizer.step()
        value = loss.detach().double().reshape(1)
        if self.dist.world > 1:
            dist.all_reduce(value)
            value = value / self.dist.world
        row = {"step": it, "epoch": it // self.steps_per_epoch, "loss": float(value.item()), "lr": lr,
               "backbone_lr": lr * self.backbone_lr_ratio if cfg.mode == "finetune" else 0.0,
               "step_seconds": time.perf_counter() - t0}
        self.step += 1
        self.log.append(row)
        return row

    # ---- state
    def config_json(self) -> str:
        """What a checkpoint stores under ``'config'`` (JSON) and a resume must
        match: the result-changing fields of the configuration and the
        backbone's arch, patch, position mode and starting sha256."""
        return json.dumps({**result_config(self.cfg), **self.identity}, sort_keys=True)

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "step": self.step,
            "epoch": self.step // self.steps_per_epoch, "steps_per_epoch": self.steps_per_epoch,
            "world_size": self.dist.world, "config": self.config_json(), "class_names": list(self.class_names),
            "log": self.log, "rng": rng_state(),
        }

    def load_state_dict(self, ckpt: dict) -> None:
        """Resume from :meth:`state_dict`; ``ValueError`` names what differs."""
        if ckpt["config"] != self.config_json():
            raise ValueError("cannot resume: the checkpoint was written by a run with another configuration "
                             "or another starting backbone")
        if tuple(ckpt["class_names"]) != self.class_names:
            raise ValueError(f"cannot resume: the checkpoint's classes {ckpt['class_names']} differ from "
                             f"{list(self.class_names)}")
        if ckpt["steps_per_epoch"] != self.steps_per_epoch or ckpt["world_size"] != self.dist.world:
            raise ValueError(
                f"cannot resume: checkpoint has steps_per_epoch={ckpt['steps_per_epoch']}, world={ckpt['world_size']}; "
                f"this run has {self.steps_per_epoch}, {self.dist.world}")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.step = int(ckpt["step"])
        self.log = list(ckpt["log"])
        set_rng_state(ckpt["rng"])


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------


@dataclass
class TransferResult:
    """A finished (or stopped) transfer. ``model``: the
    :class:`~dinosal.models.Classifier` (or ``PatchClassifier``) in eval mode,
    without drop path, on the training device (a probe's backbone stays
    frozen); ``log``: one dict per step (step, epoch, loss, lr, backbone_lr,
    step_seconds); ``stopped``: ``"done"`` or ``"stop_at_step"``;
    ``seconds``: wall time of this call; ``scores``: the evaluation of
    ``eval_set`` at the end, or None."""

    model: nn.Module
    log: list[dict]
    steps: int
    total_steps: int
    stopped: str
    seconds: float
    run_dir: Optional[Path]
    class_names: tuple[str, ...]
    config: TransferConfig
    scores: Optional[ClassificationScores]

    def log_frame(self):
        import pandas as pd

        return pd.DataFrame(self.log)


def _save(trainer: TransferTrainer, run_dir: Optional[Path]) -> None:
    save_run(trainer, run_dir, CHECKPOINT, LOG_CSV)


def _snapshot(trainer: TransferTrainer, run_dir: Optional[Path]) -> None:
    """Keep the classifier's weights (a file :func:`load_transfer` reads) if this step is listed."""
    if run_dir is None or trainer.dist.rank != 0 or trainer.step not in trainer.cfg.snapshot_steps:
        return
    path = snapshot_path(run_dir, trainer.step)
    if not (path.is_file() or path.is_symlink()):  # never replace a file that is already there
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save({"model": trainer.model.state_dict(), "config": trainer.config_json(),
                           "class_names": list(trainer.class_names), "step": trainer.step}, path)


def transfer_loader(cfg: TransferConfig, dataset, transform, start_step: int, end_step: int,
                    dist_info: Optional[Dist] = None) -> DataLoader:
    """The batches ``(x, target)`` of steps ``start_step .. end_step-1``:
    :class:`StepSampler` order, each sample transformed with torch's RNG
    seeded by its global position (:class:`AugmentedDataset` with the whole
    ``Sample``), ``cfg.num_workers`` workers."""
    info = dist_info or Dist(0, 1, torch.device("cpu"))
    sampler = StepSampler(len(dataset), cfg.batch_size, info.world, info.rank, cfg.seed, start_step, end_step)
    return DataLoader(AugmentedDataset(dataset, transform, whole_item=True), batch_size=cfg.batch_size,
                      sampler=sampler, num_workers=cfg.num_workers, pin_memory=info.device.type == "cuda",
                      generator=torch.Generator().manual_seed(cfg.seed), persistent_workers=False)


def _feature_batches(cfg: TransferConfig, feats: torch.Tensor, targets: torch.Tensor, start: int, end: int,
                     info: Dist):
    sampler = StepSampler(len(feats), cfg.batch_size, info.world, info.rank, cfg.seed, start, end)
    order = [i for i, _ in sampler]
    for k in range(0, len(order), cfg.batch_size):
        idx = torch.tensor(order[k:k + cfg.batch_size], device=feats.device)
        yield feats[idx], targets[idx]


def train_transfer(cfg: TransferConfig, backbone: nn.Module, dataset, run_dir=None, eval_set=None,
                   class_names: Optional[Sequence[str]] = None) -> TransferResult:
    """Transfer ``backbone`` to the labels of ``dataset`` (a sequence of
    ``Sample``, see :mod:`~dinosal.train.transfer_data`).

    ``backbone``: a timm ViT (copied, never changed). ``run_dir``: where
    ``checkpoint.pth`` and ``log.csv`` go; a checkpoint of the same
    configuration and starting backbone there is resumed. Files this function
    did not write are never replaced (``ValueError`` for a foreign checkpoint,
    ``FileExistsError`` for a link or an unmarked log; nothing changes on
    disk then). ``eval_set``: scored at the end into ``TransferResult.scores``.
    ``class_names`` default to the data's. Under torchrun every process calls
    this with the same arguments.
    """
    t_start = time.perf_counter()
    threads_before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, backbone, dataset, run_dir, eval_set, class_names, t_start)
    finally:
        torch.set_num_threads(threads_before)


def _train(cfg, backbone, dataset, run_dir, eval_set, class_names, t_start) -> TransferResult:
    info = setup_distributed(cfg.device, where="TransferConfig.device")
    names = tuple(class_names) if class_names is not None else class_names_of(dataset)
    spe = cfg.steps_per_epoch or len(dataset) // (cfg.batch_size * info.world)
    trainer = TransferTrainer(cfg, backbone, names, spe, info)
    run_dir = Path(run_dir) if run_dir is not None else None
    if run_dir is not None:
        ckpt = claim_run_dir(run_dir, info, writer=_WRITER, checkpoint=CHECKPOINT, log=LOG_CSV, keys=_CHECKPOINT_KEYS)
        if ckpt is not None:
            try:
                trainer.load_state_dict(ckpt)
            except ValueError as err:  # name the file the run would resume from
                raise ValueError(f"{run_dir / CHECKPOINT}: {err}") from None
    end = trainer.total_steps if cfg.stop_at_step is None else min(cfg.stop_at_step, trainer.total_steps)

    train = cfg.augment and not cfg.precompute_features
    transform = TransferTransform(cfg.loss, len(names), cfg.img_size, trainer.patch, train=train,
                                  crop_scale=cfg.crop_scale, flip_p=cfg.flip_p)
    if cfg.precompute_features:
        feats, targets = precompute_features(trainer.model, dataset, transform, cfg.eval_batch_size)
        batches = _feature_batches(cfg, feats, targets, trainer.step, end, info)
    else:
        batches = transfer_loader(cfg, dataset, transform, trainer.step, end, info)
    from tqdm.auto import tqdm

    bar = tqdm(total=end, initial=trainer.step, desc=f"transfer ({cfg.mode}, {cfg.loss})",
               disable=not cfg.progress or info.rank != 0)
    _snapshot(trainer, run_dir)
    try:
        for x, target in batches:
            row = trainer.train_step(x, target, features=cfg.precompute_features)
            _snapshot(trainer, run_dir)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.4f}", refresh=False)
            if cfg.checkpoint_every and trainer.step % cfg.checkpoint_every == 0 and trainer.step < end:
                _save(trainer, run_dir)
    except NonFiniteLossError:
        if run_dir is not None and info.rank == 0:
            write_log_csv(trainer.log, run_dir / LOG_CSV)
        raise
    finally:
        bar.close()
    _save(trainer, run_dir)
    model = trainer.model
    if cfg.mode == "finetune":
        set_drop_path(model.backbone, 0.0)
    model.eval()
    scores = None
    if eval_set is not None:
        scores = evaluate_transfer(model, eval_set, cfg.img_size, cfg.loss, cfg.eval_batch_size, names)
    stopped = "done" if trainer.step >= trainer.total_steps else "stop_at_step"
    return TransferResult(model=model, log=trainer.log, steps=trainer.step, total_steps=trainer.total_steps,
                          stopped=stopped, seconds=time.perf_counter() - t_start, run_dir=run_dir,
                          class_names=names, config=cfg, scores=scores)


# --------------------------------------------------------------------------
# Reading a transferred model back
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferCheckpoint:
    """A classifier read back by :func:`load_transfer`: the model (eval mode;
    a probe's backbone frozen), its classes, the stored configuration (the
    run's fields plus the backbone's arch, patch, position mode and starting
    sha256) and the step it was saved at."""

    model: nn.Module
    class_names: tuple[str, ...]
    config: dict
    step: int


def load_transfer(path) -> TransferCheckpoint:
    """Rebuild the classifier of a transfer checkpoint or snapshot.

    The backbone comes from :func:`dinosal.models.load_dino_backbone` (strict;
    its errors name the file), the head from the ``head.*`` entries. Raises
    ``ValueError`` naming the file when the entries of a transfer checkpoint
    are missing.
    """
    backbone, _ = load_dino_backbone(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return _classifier_of(ckpt, backbone, str(path))


def transfer_from_checkpoint(ckpt: Mapping, source: str = "checkpoint") -> TransferCheckpoint:
    """:func:`load_transfer` of a checkpoint already read: ``ckpt`` holds
    ``model`` (``backbone.*``/``head.*`` tensors), ``config`` (the JSON
    string of :meth:`TransferTrainer.config_json`), ``class_names`` and
    ``step`` (e.g. rebuilt from a released safetensors file); ``source``
    names it in every error. Same strictness and errors."""
    backbone, _ = dino_backbone_from(ckpt, source)
    return _classifier_of(ckpt, backbone, source)


def _classifier_of(ckpt, backbone: nn.Module, source: str) -> TransferCheckpoint:
    if not (isinstance(ckpt, Mapping) and all(k in ckpt for k in ("model", "config", "class_names", "step"))):
        raise ValueError(f"{source}: not a transfer checkpoint of dinosal (needs model, config, class_names, step)")
    cfg = json.loads(ckpt["config"])
    names = tuple(ckpt["class_names"])
    model = build_classifier(backbone, len(names), cfg["loss"], cfg["n_last_blocks"], cfg["avgpool"])
    head = {k[len("head."):]: v for k, v in ckpt["model"].items() if k.startswith("head.")}
    model.head.load_state_dict(head, strict=True)
    if cfg["mode"] == "probe":
        model.freeze_backbone()
    return TransferCheckpoint(model=model.eval(), class_names=names, config=cfg, step=int(ckpt["step"]))
