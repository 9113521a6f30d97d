"""DINO training: one loop for CPU, one GPU and many processes (torchrun).

The loop follows ``main_dino`` (reference notes section 1.4); what differs is
said where it differs:

* **Processes.** One process runs on CPU or one GPU. Under ``torchrun``
  (``WORLD_SIZE > 1``) the process group is initialised here (gloo on CPU,
  NCCL on GPU) and the student is wrapped in ``DistributedDataParallel``; the
  teacher is not wrapped (it has no gradients) and the DINO center is
  all-reduced by :class:`~dinosal.losses.DINOLoss`.
* **Data order.** Instead of a ``DistributedSampler`` the loop reads a
  :class:`StepSampler`: one seeded permutation per pass over the data, cut
  into global batches, each rank taking a contiguous share of every global
  batch (rank r gets rows ``[r*b, (r+1)*b)``), so the data seen at a step is
  a function of the step alone. Every sample's augmentation is seeded by its
  global position. Together these make a resumed run see exactly the images
  and crops an uninterrupted run would, and a 2-process run see the same
  global batch as a 1-process run.
* **Epochs.** Schedules are indexed by the global step; the teacher
  temperature, the lr warmup and the last-layer freeze count in epochs. An
  epoch is ``steps_per_epoch`` steps: ``len(dataset) // global_batch`` by
  default (a real pass over the data), or a fixed number of steps for small
  CPU runs on procedural data (a step-based epoch; the run then lasts
  ``train_steps = epochs * steps_per_epoch`` steps).
* **Precision.** ``amp="auto"`` runs forward passes under bf16 autocast on a
  GPU and in fp32 on CPU (on a CPU without native bf16 -- AVX2 only, like the
  2-core machine of this project -- autocast made a step about 14x slower);
  the loss is computed in fp32. No fp16/GradScaler path.
* **Monitoring.** Every step appends a row (loss, teacher entropy, KL, lr,
  wd, momentum, teacher temperature, ...) to the log; a
  :class:`CollapseMonitor` stops (or only records) a run whose teacher has
  collapsed to uniform or one-hot outputs. A non-finite loss stops the run
  with :class:`NonFiniteLossError`.
* **Checkpoints** (``checkpoint.pth`` in the run directory, written
  atomically every ``checkpoint_every`` steps and at the end) use the
  official layout (``'student'``/``'teacher'`` with ``backbone.``/``head.``
  keys), so :func:`dinosal.models.load_dino_backbone` reads them; a run
  started again in the same directory resumes at the saved step.

Ablation switches (used by the theory chapter): ``centering`` (off = center
stays 0), ``sharpening`` (off = teacher temperature equals the student's),
``teacher_update`` (``"ema"``, ``"copy"`` = teacher is the student each
step, ``"frozen"`` = teacher stays at its initialisation) and ``multicrop``
(off = the student sees the two global crops only).
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Sampler

from ..data.multicrop import MultiCropAugmentation, MultiCropConfig
from ..losses import DINOLoss, koleo_loss, teacher_temp_schedule
from ..models import DINOHead, MultiCropWrapper, create_vit
from ..runs import atomic_torch_save, atomic_write_text
from ..schedules import Schedules, dino_schedules

__all__ = [
    "CollapseConfig",
    "DinoConfig",
    "CollapseMonitor",
    "CollapseEvent",
    "TeacherCollapseError",
    "NonFiniteLossError",
    "StepSampler",
    "AugmentedDataset",
    "DinoTrainer",
    "DinoResult",
    "param_groups",
    "clip_gradients_per_tensor",
    "cancel_last_layer_grads",
    "ema_update",
    "train_dino",
    "config_help",
    "CHECKPOINT",
]

CHECKPOINT = "checkpoint.pth"
LOG_CSV = "log.csv"
RUN_MARKER = ".dinosal-run"
"""Marker file :func:`train_dino` writes into its ``run_dir``: a folder it may
write ``log.csv`` into even when no checkpoint is there yet."""
_CHECKPOINT_KEYS = ("student", "teacher", "optimizer", "dino_loss", "step", "steps_per_epoch", "world_size",
                    "config", "log", "monitor", "rng")


def _f(default, help: str, key_omit_default: bool = False, **kw):
    """A dataclass field with help text (kept in ``metadata['help']``).

    ``key_omit_default``: leave the field out of run-cache keys while it holds
    its default, so that adding it did not change the keys of existing runs.
    """
    meta = {"help": help, "key_omit_default": key_omit_default}
    if isinstance(default, (list, dict, set)) or dataclasses.is_dataclass(default):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass(frozen=True)
class CollapseConfig:
    """When to call the teacher collapsed.

    Uniform collapse: the mean per-image teacher entropy is at least
    ``(1 - uniform_tol) * log K`` (every image gets the same flat
    distribution; KL to the student goes to 0 and nothing is learned).
    One-hot collapse: the entropy of the batch-mean teacher distribution is at
    most ``onehot_tol * log K`` (every image gets the same one dimension).
    A collapse must hold for ``patience`` consecutive checks (every
    ``check_every`` steps) after ``grace_steps``.
    """

    action: str = _f("stop", "'stop' raises TeacherCollapseError, 'record' only logs the event, 'off' never checks")
    check_every: int = _f(10, "steps between checks")
    grace_steps: int = _f(50, "no check before this step: early training is often near-uniform by design")
    patience: int = _f(5, "consecutive collapsed checks needed; one noisy batch must not stop a run")
    uniform_tol: float = _f(0.02, "uniform when entropy >= (1 - tol) log K")
    onehot_tol: float = _f(0.02, "one-hot when the entropy of the mean teacher distribution <= tol log K")

    def __post_init__(self) -> None:
        if self.action not in ("stop", "record", "off"):
            raise ValueError(f"CollapseConfig.action must be 'stop', 'record' or 'off', got {self.action!r}")


@dataclass(frozen=True)
class DinoConfig:
    """Every hyper-parameter of a DINO run. Defaults are ``main_dino``'s
    (with the README's ViT-S recipe where noted); profiles override them."""

    # ---- model
    arch: Union[str, tuple] = _f("small", "ViT size: tiny/small/base or (width, depth, heads). Small nets learn faster per CPU-second; DINO's attention maps come from ViT-S and ViT-B")
    patch: int = _f(16, "patch size in px. 8 gives 4x the tokens (finer maps, as in the paper's ViT-S/8) at about 4x the cost")
    img_size: int = _f(224, "side of the stored position table; other input sizes interpolate it")
    pos_interp: str = _f("dino", "how the position table is resampled for another token grid (the local crops): 'dino' = main_dino's interpolate_pos_encoding (bicubic, scale factor (n + 0.1)/sqrt(N), no antialias), 'timm' = timm's resample (bicubic with antialias). The two tables differ by a few per cent")
    drop_path: float = _f(0.1, "stochastic depth of the student only (the teacher has none)")
    out_dim: int = _f(65536, "K, the dimension of the DINO head output. Large K matters for ImageNet; small data needs far fewer")
    head_hidden: int = _f(2048, "hidden width of the 3-layer head MLP")
    head_bottleneck: int = _f(256, "width of the L2-normalised bottleneck before the prototypes")
    head_layers: int = _f(3, "Linear layers in the head MLP")
    use_bn_in_head: bool = _f(False, "BatchNorm in the head (off for ViTs)")
    norm_last_layer: bool = _f(True, "freeze the weight-norm g at 1 (cosine prototypes); more stable. The README's boosted ViT-S turns it off")
    # ---- loss
    student_temp: float = _f(0.1, "student softmax temperature")
    teacher_temp: float = _f(0.04, "final teacher temperature; lower = sharper targets. Above 0.07 training is unstable; the boosted recipe uses 0.07")
    warmup_teacher_temp: float = _f(0.04, "initial teacher temperature; 0.04 is a safe start")
    warmup_teacher_temp_epochs: int = _f(0, "epochs of linear teacher-temperature warmup (the help text of main_dino says 30, the value is 0)")
    center_momentum: float = _f(0.9, "EMA rate of the center; the center removes the dimension every image favours (against one-hot collapse)")
    centering: bool = _f(True, "ablation: False keeps the center at 0 (no centering)")
    sharpening: bool = _f(True, "ablation: False sets the teacher temperature to the student's (no sharpening)")
    koleo_weight: float = _f(0.0, "weight of a KoLeo spreading term on the student's global CLS features. NOT in original DINO (DINOv2); 0 = off")
    # ---- teacher
    teacher_update: str = _f("ema", "'ema' (DINO), 'copy' (teacher = student every step) or 'frozen' (teacher never moves): ablations")
    momentum_teacher: float = _f(0.996, "initial EMA momentum of the teacher, raised to momentum_teacher_end by a cosine. Higher with small batches (0.9995 for batch 256)")
    momentum_teacher_end: float = _f(1.0, "final EMA momentum")
    # ---- optimisation
    batch_size: int = _f(64, "images per process per step; lr scales with the global batch")
    epochs: int = _f(100, "epochs; with steps_per_epoch set, an epoch is that many steps")
    steps_per_epoch: Optional[int] = _f(None, "None: len(dataset) // global batch (a pass over the data). An int gives a step-based epoch for procedural data")
    lr: float = _f(5e-4, "peak lr at batch 256; the actual peak is lr * global_batch / 256 (linear scaling rule)")
    min_lr: float = _f(1e-6, "lr at the end of the cosine")
    warmup_epochs: int = _f(10, "epochs of linear lr warmup from 0")
    weight_decay: float = _f(0.04, "initial weight decay (weights only: never biases or 1-D params)")
    weight_decay_end: float = _f(0.4, "final weight decay; a rising wd helps ViTs")
    clip_grad: float = _f(3.0, "max gradient norm of EACH parameter tensor (not the global norm); 0 = no clipping")
    freeze_last_layer: int = _f(1, "epochs during which the head's last layer gets no update; keeping it fixed early helps stability")
    # ---- augmentation
    crops: MultiCropConfig = _f(MultiCropConfig(), "multi-crop augmentation (official defaults; MultiCropConfig.weak() for small runs)")
    multicrop: bool = _f(True, "ablation: False = the student sees only the 2 global crops")
    # ---- system
    seed: int = _f(0, "seed of init, data order and augmentation")
    device: str = _f("auto", "'auto' (cuda if available), 'cpu' or 'cuda'")
    amp: str = _f("auto", "'auto' = bf16 autocast on GPU, fp32 on CPU; 'bf16' forces autocast (on CPUs without native bf16, e.g. AVX2-only, it is ~10x SLOWER: measured 73 s vs 5.3 s per step); 'off' = fp32")
    num_workers: int = _f(0, "DataLoader workers; results do not depend on it (per-sample seeding)")
    threads: Optional[int] = _f(None, "torch intra-op threads during the run (None: leave torch's setting). On a shared machine 1 thread per process avoids waiting for a busy core")
    checkpoint_every: int = _f(0, "steps between checkpoints (0: only at the end)")
    snapshot_steps: tuple = _f((), "steps after which the teacher's weights are also kept as snapshots/step_NNNNNN.pth in the run dir (0: the initial weights); the training chapter draws attention emergence from them", key_omit_default=True)
    stop_at_step: Optional[int] = _f(None, "stop after this global step (the schedules still span the whole run); resume later")
    progress: bool = _f(True, "tqdm progress bar (rank 0)")
    collapse: CollapseConfig = _f(CollapseConfig(), "collapse monitor settings")

    def __post_init__(self) -> None:
        if self.teacher_update not in ("ema", "copy", "frozen"):
            raise ValueError(f"DinoConfig.teacher_update must be 'ema', 'copy' or 'frozen', got {self.teacher_update!r}")
        if self.amp not in ("auto", "bf16", "off"):
            raise ValueError(f"DinoConfig.amp must be 'auto', 'bf16' or 'off', got {self.amp!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"DinoConfig.device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.batch_size < 2:
            raise ValueError("DinoConfig.batch_size must be >= 2")
        if self.pos_interp not in ("dino", "timm"):
            raise ValueError(f"DinoConfig.pos_interp must be 'dino' or 'timm', got {self.pos_interp!r}")

    def replace(self, **changes) -> "DinoConfig":
        return dataclasses.replace(self, **changes)

    @property
    def n_crops(self) -> int:
        """Crops the student sees."""
        return self.crops.n_crops if self.multicrop else self.crops.n_global

    @property
    def effective_teacher_temps(self) -> tuple[float, float]:
        """(warmup, final) teacher temperature after the sharpening switch."""
        if not self.sharpening:
            return self.student_temp, self.student_temp
        return self.warmup_teacher_temp, self.teacher_temp


# Fields that change how a run is executed or watched, not what it computes.
RUN_CONTROL_FIELDS = ("num_workers", "threads", "checkpoint_every", "stop_at_step", "progress", "device")


def config_help(cls=DinoConfig) -> str:
    """One line per field: name, default, help text (like ``--help``)."""
    lines = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if dataclasses.is_dataclass(default):
            default = type(default).__name__ + "(...)"
        lines.append(f"{f.name:28s} {default!s:14s} {f.metadata.get('help', '')}")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Small pieces (tested one by one)
# --------------------------------------------------------------------------


def param_groups(model: nn.Module) -> list[dict]:
    """Two AdamW groups: weight-decayed (``ndim > 1`` and not a bias) first,
    then biases and 1-D params (LayerNorm) with ``weight_decay = 0``. Frozen
    parameters are left out."""
    reg, not_reg = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (not_reg if name.endswith(".bias") or p.ndim == 1 else reg).append(p)
    return [{"params": reg}, {"params": not_reg, "weight_decay": 0.0}]


@torch.no_grad()
def clip_gradients_per_tensor(model: nn.Module, clip: float) -> list[float]:
    """Scale each parameter tensor's gradient so its L2 norm is at most
    ``clip`` (factor ``clip / (norm + 1e-6)`` when below 1). Returns the
    norms before clipping."""
    norms = []
    for p in model.parameters():
        if p.grad is None:
            continue
        n = float(p.grad.detach().norm(2))
        norms.append(n)
        coef = clip / (n + 1e-6)
        if coef < 1:
            p.grad.mul_(coef)
    return norms


def cancel_last_layer_grads(model: nn.Module, epoch: int, freeze_epochs: int) -> None:
    """While ``epoch < freeze_epochs``, set to None the grad of every
    parameter whose name contains ``"last_layer"`` (the head prototypes)."""
    if epoch >= freeze_epochs:
        return
    for name, p in model.named_parameters():
        if "last_layer" in name:
            p.grad = None


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """``theta_t <- m theta_t + (1 - m) theta_s`` over matching parameters
    (backbone and head)."""
    t_params = dict(teacher.named_parameters())
    s_params = dict(student.named_parameters())
    if t_params.keys() != s_params.keys():
        raise ValueError("ema_update: teacher and student parameter names differ")
    for name, pt in t_params.items():
        pt.mul_(momentum).add_(s_params[name].detach(), alpha=1.0 - momentum)


@dataclass(frozen=True)
class CollapseEvent:
    step: int
    kind: str  # "uniform" | "one-hot"
    teacher_entropy: float
    marginal_entropy: float
    log_k: float


class TeacherCollapseError(RuntimeError):
    """The teacher collapsed; ``event`` says how and ``log`` holds the rows so far."""

    def __init__(self, event: CollapseEvent, log: list[dict]):
        self.event = event
        self.log = log
        e = event
        super().__init__(
            f"DINO teacher collapsed to {e.kind} outputs at step {e.step}: teacher entropy "
            f"{e.teacher_entropy:.3f} and entropy of the mean teacher distribution {e.marginal_entropy:.3f} "
            f"nats (log K = {e.log_k:.3f}). Typical cures: weaker colour augmentation, lower teacher "
            "temperature, centering on. Set collapse=CollapseConfig(action='record') to train on anyway."
        )


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite."""


class CollapseMonitor:
    """Counts consecutive collapsed checks (see :class:`CollapseConfig`)."""

    def __init__(self, cfg: CollapseConfig, out_dim: int) -> None:
        self.cfg = cfg
        self.log_k = math.log(out_dim)
        self.streak = 0
        self.streak_kind: Optional[str] = None
        self.events: list[CollapseEvent] = []

    def classify(self, entropy: float, marginal_entropy: float) -> Optional[str]:
        """``"uniform"``, ``"one-hot"`` or None for one set of diagnostics."""
        if entropy >= (1.0 - self.cfg.uniform_tol) * self.log_k:
            return "uniform"
        if marginal_entropy <= self.cfg.onehot_tol * self.log_k:
            return "one-hot"
        return None

    def update(self, step: int, entropy: float, marginal_entropy: float) -> Optional[CollapseEvent]:
        """Feed the diagnostics of ``step``; returns an event when the
        collapse has lasted ``patience`` checks (once per streak)."""
        c = self.cfg
        if c.action == "off" or step < c.grace_steps or step % c.check_every:
            return None
        kind = self.classify(entropy, marginal_entropy)
        if kind is None or kind != self.streak_kind:
            self.streak = 1 if kind else 0
            self.streak_kind = kind
        else:
            self.streak += 1
        if kind and self.streak == c.patience:
            event = CollapseEvent(step, kind, entropy, marginal_entropy, self.log_k)
            self.events.append(event)
            return event
        return None

    def state_dict(self) -> dict:
        return {"streak": self.streak, "kind": self.streak_kind, "events": [dataclasses.asdict(e) for e in self.events]}

    def load_state_dict(self, s: dict) -> None:
        self.streak, self.streak_kind = s["streak"], s["kind"]
        self.events = [CollapseEvent(**e) for e in s["events"]]


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def _sample_seed(seed: int, position: int) -> int:
    return (seed * 0x9E3779B97F4A7C15 + position * 0xBF58476D1CE4E5B9 + 1) % (2**63 - 1)


class StepSampler(Sampler):
    """Yields ``(dataset index, augmentation seed)`` for this rank, step by step.

    Global position ``g = step * global_batch + rank * batch + j``; pass
    ``g // n`` over the data uses ``randperm(n)`` seeded by ``(seed, pass)``.
    Starts at ``start_step`` and ends before ``end_step``.
    """

    def __init__(self, n: int, batch: int, world: int, rank: int, seed: int, start_step: int, end_step: int):
        if n < 1:
            raise ValueError("StepSampler: empty dataset")
        self.n, self.batch, self.world, self.rank = n, batch, world, rank
        self.seed, self.start_step, self.end_step = seed, start_step, end_step
        self._perm_pass, self._perm = -1, None

    def _index(self, g: int) -> int:
        p = g // self.n
        if p != self._perm_pass:
            gen = torch.Generator().manual_seed(_sample_seed(self.seed, -1 - p))
            self._perm, self._perm_pass = torch.randperm(self.n, generator=gen), p
        return int(self._perm[g % self.n])

    def __iter__(self):
        gb = self.batch * self.world
        for step in range(self.start_step, self.end_step):
            for j in range(self.batch):
                g = step * gb + self.rank * self.batch + j
                yield self._index(g), _sample_seed(self.seed, g)

    def __len__(self) -> int:
        return max(self.end_step - self.start_step, 0) * self.batch


def _image_of(item):
    """The image of a dataset item: ``Sample.image``, ``item[0]`` of a tuple, or the item."""
    if hasattr(item, "image"):
        item = item.image
    elif isinstance(item, (tuple, list)):
        item = item[0]
    if isinstance(item, torch.Tensor) and item.is_floating_point():
        item = (item.clamp(0, 1) * 255).round().to(torch.uint8)
    return item


class AugmentedDataset(Dataset):
    """Wraps an image dataset for :class:`StepSampler` keys: item
    ``(index, seed)`` -> ``transform(image)`` with torch's RNG seeded by
    ``seed`` (inside ``fork_rng``, so the caller's RNG is untouched)."""

    def __init__(self, base, transform) -> None:
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key):
        index, seed = key
        threads = torch.get_num_threads()
        try:
            # Small-image ops are far slower with several intra-op threads on a
            # busy machine (measured 7x on 2 shared cores); one is enough here.
            torch.set_num_threads(1)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return self.transform(_image_of(self.base[index]))
        finally:
            torch.set_num_threads(threads)


# --------------------------------------------------------------------------
# Distributed
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Dist:
    rank: int
    world: int
    device: torch.device


def _setup_distributed(device_pref: str) -> _Dist:
    cuda = torch.cuda.is_available() and device_pref in ("auto", "cuda")
    if device_pref == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("DinoConfig.device='cuda' but no GPU is available")
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", rank))
        if cuda:
            torch.cuda.set_device(local)
        device = torch.device(f"cuda:{local}" if cuda else "cpu")
        return _Dist(rank, world, device)
    return _Dist(0, 1, torch.device("cuda" if cuda else "cpu"))


# --------------------------------------------------------------------------
# Trainer
# --------------------------------------------------------------------------


class DinoTrainer:
    """Student, teacher, loss, optimizer and schedules of one run.

    :meth:`train_step` does one iteration on a list of crops (each
    ``(B, 3, h, w)``, globals first) and returns its log row. Use
    :func:`train_dino` for a whole run with data, checkpoints and resume.
    """

    def __init__(self, cfg: DinoConfig, steps_per_epoch: int, dist_info: Optional[_Dist] = None) -> None:
        self.cfg = cfg
        self.dist = dist_info or _setup_distributed(cfg.device)
        self.device = self.dist.device
        self.steps_per_epoch = int(steps_per_epoch)
        if self.steps_per_epoch < 1:
            raise ValueError("DinoTrainer: steps_per_epoch must be >= 1 (dataset smaller than one global batch?)")
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.global_batch = cfg.batch_size * self.dist.world
        torch.manual_seed(cfg.seed)

        def build(drop_path):
            backbone = create_vit(cfg.arch, patch=cfg.patch, img_size=cfg.img_size, drop_path=drop_path,
                                  pos_interp=cfg.pos_interp)
            head = DINOHead(
                backbone.embed_dim, cfg.out_dim, use_bn=cfg.use_bn_in_head, norm_last_layer=cfg.norm_last_layer,
                nlayers=cfg.head_layers, hidden_dim=cfg.head_hidden, bottleneck_dim=cfg.head_bottleneck,
            )
            return MultiCropWrapper(backbone, head)

        self.student = build(cfg.drop_path).to(self.device)
        self.teacher = build(0.0).to(self.device)
        self.teacher.load_state_dict(self.student.state_dict())
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.student_ddp: nn.Module = self.student
        if self.dist.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.student_ddp = DistributedDataParallel(self.student, device_ids=ids)

        warm_t, final_t = cfg.effective_teacher_temps
        self.loss_fn = DINOLoss(
            cfg.out_dim, cfg.n_crops,
            teacher_temps=teacher_temp_schedule(warm_t, final_t, cfg.warmup_teacher_temp_epochs, cfg.epochs),
            student_temp=cfg.student_temp,
            center_momentum=cfg.center_momentum if cfg.centering else 1.0,
            n_global=cfg.crops.n_global,
        ).to(self.device)
        self.optimizer = torch.optim.AdamW(param_groups(self.student))
        self.schedules: Schedules = dino_schedules(
            lr=cfg.lr, min_lr=cfg.min_lr, global_batch=self.global_batch, warmup_epochs=cfg.warmup_epochs,
            weight_decay=cfg.weight_decay, weight_decay_end=cfg.weight_decay_end,
            momentum_teacher=cfg.momentum_teacher, momentum_teacher_end=cfg.momentum_teacher_end,
            epochs=cfg.epochs, iters_per_epoch=self.steps_per_epoch,
        )
        self.step = 0
        self.log: list[dict] = []
        self.monitor = CollapseMonitor(cfg.collapse, cfg.out_dim)

    # ---- one iteration
    def _autocast(self):
        amp = self.cfg.amp
        enabled = amp == "bf16" or (amp == "auto" and self.device.type == "cuda")
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def train_step(self, crops: Sequence[torch.Tensor]) -> dict:
        """One DINO iteration at ``self.step``; returns the log row (also
        appended to ``self.log``). Raises :class:`NonFiniteLossError` and,
        with ``collapse.action='stop'``, :class:`TeacherCollapseError`.
        Gradients are switched on for the step, so a caller inside
        ``torch.no_grad()`` trains as anywhere else; inside
        ``torch.inference_mode()`` it raises ``RuntimeError``."""
        if torch.is_inference_mode_enabled():
            raise RuntimeError("DinoTrainer.train_step needs autograd, which torch.inference_mode() disables; "
                               "call it outside the inference_mode block")
        with torch.enable_grad():
            return self._train_step(crops)

    def _train_step(self, crops: Sequence[torch.Tensor]) -> dict:
        cfg, it = self.cfg, self.step
        t0 = time.perf_counter()
        epoch = it // self.steps_per_epoch
        lr, wd = float(self.schedules.lr[it]), float(self.schedules.wd[it])
        for i, group in enumerate(self.optimizer.param_groups):
            group["lr"] = lr
            if i == 0:
                group["weight_decay"] = wd
        crops = [c.to(self.device, non_blocking=True) for c in crops[: cfg.n_crops]]
        self.student.train()
        with self._autocast():
            with torch.no_grad():
                teacher_out = self.teacher(crops[: cfg.crops.n_global])
            student_out, feats = self.student_ddp(crops, return_backbone=True)
        out = self.loss_fn(student_out.float(), teacher_out.float(), epoch)
        loss = out.loss
        koleo = torch.zeros((), device=self.device)
        if cfg.koleo_weight > 0:
            koleo = sum(koleo_loss(c) for c in feats.float().chunk(cfg.n_crops)[: cfg.crops.n_global]) / cfg.crops.n_global
            loss = loss + cfg.koleo_weight * koleo
        if not torch.isfinite(loss.detach()):
            raise NonFiniteLossError(f"DINO loss is {loss.item()} at step {it} (epoch {epoch}); stopping")

        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip_grad > 0:
            clip_gradients_per_tensor(self.student, cfg.clip_grad)
        cancel_last_layer_grads(self.student, epoch, cfg.freeze_last_layer)
        self.optimizer.step()

        momentum = float(self.schedules.momentum[it])
        if cfg.teacher_update == "ema":
            ema_update(self.teacher, self.student, momentum)
        elif cfg.teacher_update == "copy":
            momentum = 0.0
            ema_update(self.teacher, self.student, 0.0)
        else:
            momentum = 1.0

        stats = torch.tensor(
            [out.loss.item(), koleo.item(), out.teacher_entropy, out.teacher_marginal_entropy, out.kl, out.teacher_max_prob],
            dtype=torch.float64,
        )
        if self.dist.world > 1:
            stats = stats.to(self.device)
            dist.all_reduce(stats)
            stats = (stats / self.dist.world).cpu()
        s = stats.tolist()
        row = {
            "step": it, "epoch": epoch, "loss": s[0], "koleo": s[1], "teacher_entropy": s[2],
            "teacher_marginal_entropy": s[3], "kl": s[4], "teacher_max_prob": s[5],
            "lr": lr, "wd": wd, "momentum": momentum, "teacher_temp": out.teacher_temp,
            "step_seconds": time.perf_counter() - t0, "collapse": "",
        }
        self.step += 1
        event = self.monitor.update(it, row["teacher_entropy"], row["teacher_marginal_entropy"])
        if event is not None:
            row["collapse"] = event.kind
        self.log.append(row)
        if event is not None and cfg.collapse.action == "stop":
            raise TeacherCollapseError(event, self.log)
        return row

    # ---- state
    def state_dict(self) -> dict:
        """Checkpoint in the official layout (``student``/``teacher`` with
        ``backbone.``/``head.`` keys) plus what resuming needs."""
        rng = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "student": self.student.state_dict(),
            "teacher": self.teacher.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "dino_loss": self.loss_fn.state_dict(),
            "step": self.step,
            "epoch": self.step // self.steps_per_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "world_size": self.dist.world,
            "config": _result_config(self.cfg),
            "log": self.log,
            "monitor": self.monitor.state_dict(),
            "rng": rng,
        }

    def load_state_dict(self, ckpt: dict) -> None:
        if ckpt["config"] != _result_config(self.cfg):
            raise ValueError("cannot resume: the checkpoint was written by a run with another configuration")
        if ckpt["steps_per_epoch"] != self.steps_per_epoch or ckpt["world_size"] != self.dist.world:
            raise ValueError(
                f"cannot resume: checkpoint has steps_per_epoch={ckpt['steps_per_epoch']}, world={ckpt['world_size']}; "
                f"this run has {self.steps_per_epoch}, {self.dist.world}"
            )
        self.student.load_state_dict(ckpt["student"])
        self.teacher.load_state_dict(ckpt["teacher"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.loss_fn.load_state_dict(ckpt["dino_loss"])
        self.step = int(ckpt["step"])
        self.log = list(ckpt["log"])
        self.monitor.load_state_dict(ckpt["monitor"])
        torch.set_rng_state(ckpt["rng"]["cpu"])
        if "cuda" in ckpt["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])


def _result_config(cfg: DinoConfig) -> str:
    """JSON of the fields that change results (run-control fields left out)."""
    from ..runs import config_dict

    d = config_dict(cfg)
    for k in RUN_CONTROL_FIELDS:
        d.pop(k, None)
    return json.dumps(d, sort_keys=True)


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------


@dataclass
class DinoResult:
    """A finished (or stopped) run. ``teacher``/``student`` are
    :class:`~dinosal.models.MultiCropWrapper` (use ``.backbone``; DINO
    evaluates the teacher); ``log`` has one dict per step; ``stopped`` is
    ``"done"``, ``"stop_at_step"``; ``seconds`` is the wall time of this call;
    ``collapse_events`` lists recorded collapses."""

    teacher: nn.Module
    student: nn.Module
    log: list[dict]
    steps: int
    total_steps: int
    stopped: str
    seconds: float
    run_dir: Optional[Path]
    collapse_events: list[CollapseEvent]
    center: torch.Tensor

    def log_frame(self):
        import pandas as pd

        return pd.DataFrame(self.log)


def write_log_csv(log: list[dict], path) -> None:
    """The per-step log as CSV (atomic)."""
    if not log:
        return
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(log[0]))
    writer.writeheader()
    writer.writerows(log)
    atomic_write_text(path, buf.getvalue())


def _save(trainer: DinoTrainer, run_dir: Optional[Path]) -> None:
    if run_dir is None or trainer.dist.rank != 0:
        return
    atomic_torch_save(trainer.state_dict(), run_dir / CHECKPOINT)
    write_log_csv(trainer.log, run_dir / LOG_CSV)


SNAPSHOT_DIR = "snapshots"


def snapshot_path(run_dir, step: int) -> Path:
    """Where :func:`train_dino` keeps the teacher's weights after ``step`` steps."""
    return Path(run_dir) / SNAPSHOT_DIR / f"step_{step:06d}.pth"


def _snapshot(trainer: "DinoTrainer", run_dir, rank: int) -> None:
    """Keep the teacher (official checkpoint layout, loadable by
    :func:`~dinosal.models.load_dino_backbone`) if this step is listed."""
    if run_dir is None or rank != 0 or trainer.step not in trainer.cfg.snapshot_steps:
        return
    path = snapshot_path(run_dir, trainer.step)
    if not (path.is_file() or path.is_symlink()):  # never replace a file that is already there
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save({"teacher": trainer.teacher.state_dict(), "config": _result_config(trainer.cfg),
                           "step": trainer.step}, path)


def _run_marked(run_dir: Path) -> bool:
    marker = run_dir / RUN_MARKER
    if marker.is_symlink() or not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("written_by") == f"{__name__}.train_dino"
    except (OSError, ValueError, AttributeError):
        return False


def _claim_run_dir(run_dir: Path, info) -> Optional[dict]:
    """Check that ``run_dir`` holds nothing :func:`train_dino` would replace
    without having written it, then mark it (rank 0); returns the checkpoint
    to resume from, or None. Raises as :func:`train_dino` documents."""
    ckpt_path, log_path = run_dir / CHECKPOINT, run_dir / LOG_CSV
    for p in (ckpt_path, log_path):
        if p.is_symlink() or (p.exists() and not p.is_file()):
            raise FileExistsError(f"{p}: a link or a folder, not a file of a dinosal run; nothing was changed. "
                                  "Choose another run_dir.")
    ckpt = None
    if ckpt_path.exists():
        try:
            ckpt = torch.load(ckpt_path, map_location=info.device, weights_only=True)
        except Exception:  # noqa: BLE001 - any unreadable file is simply not ours
            ckpt = None
        if not (isinstance(ckpt, dict) and all(k in ckpt for k in _CHECKPOINT_KEYS)):
            raise ValueError(f"{ckpt_path}: not a checkpoint written by dinosal's train_dino, so it is neither "
                             "resumed nor overwritten; nothing was changed. Choose another run_dir (official "
                             "DINO weights load with dinosal.models.load_dino_backbone).")
    elif log_path.exists() and not _run_marked(run_dir):
        raise FileExistsError(f"{log_path}: not written by a dinosal run (no checkpoint and no {RUN_MARKER} "
                              "marker beside it); nothing was changed. Choose another run_dir.")
    if info.rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not _run_marked(run_dir):
            from .. import __version__

            atomic_write_text(run_dir / RUN_MARKER, json.dumps({
                "written_by": f"{__name__}.train_dino", "dinosal_version": __version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
    return ckpt


def train_dino(cfg: DinoConfig, dataset, run_dir=None, transform=None) -> DinoResult:
    """Train DINO on ``dataset`` (items: ``Sample``, ``(image, ...)`` tuples or
    images; uint8 ``(H, W, 3)`` arrays, PIL images or ``(3, H, W)`` tensors).

    ``run_dir``: where ``checkpoint.pth`` and ``log.csv`` go; if it already
    holds a checkpoint of the same configuration the run resumes there.
    Files there that this function did not write are never replaced: a
    ``checkpoint.pth`` that is not a dinosal training checkpoint raises
    ``ValueError``; a link at ``checkpoint.pth`` or ``log.csv``, or a
    ``log.csv`` in a folder that no run marked (``.dinosal-run``) and that has
    no checkpoint, raises ``FileExistsError``; nothing on disk changes then.
    ``transform`` defaults to ``MultiCropAugmentation(cfg.crops)``. Under
    torchrun every process calls this with the same arguments.
    """
    t_start = time.perf_counter()
    threads_before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, dataset, run_dir, transform, t_start)
    finally:
        torch.set_num_threads(threads_before)


def _train(cfg: DinoConfig, dataset, run_dir, transform, t_start: float) -> DinoResult:
    info = _setup_distributed(cfg.device)
    spe = cfg.steps_per_epoch or len(dataset) // (cfg.batch_size * info.world)
    trainer = DinoTrainer(cfg, spe, info)
    run_dir = Path(run_dir) if run_dir is not None else None
    if run_dir is not None:
        ckpt = _claim_run_dir(run_dir, info)
        if ckpt is not None:
            try:
                trainer.load_state_dict(ckpt)
            except ValueError as err:  # name the file the run would resume from
                raise ValueError(f"{run_dir / CHECKPOINT}: {err}") from None
    end = trainer.total_steps if cfg.stop_at_step is None else min(cfg.stop_at_step, trainer.total_steps)

    sampler = StepSampler(len(dataset), cfg.batch_size, info.world, info.rank, cfg.seed, trainer.step, end)
    data = AugmentedDataset(dataset, transform or MultiCropAugmentation(cfg.crops))
    loader = DataLoader(
        data, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
        pin_memory=info.device.type == "cuda", generator=torch.Generator().manual_seed(cfg.seed),
        persistent_workers=False,
    )
    from tqdm.auto import tqdm

    bar = tqdm(total=end, initial=trainer.step, desc="DINO", disable=not cfg.progress or info.rank != 0)
    _snapshot(trainer, run_dir, info.rank)
    try:
        for crops in loader:
            row = trainer.train_step(crops)
            _snapshot(trainer, run_dir, info.rank)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.3f}", H=f"{row['teacher_entropy']:.2f}", kl=f"{row['kl']:.3f}", refresh=False)
            if cfg.checkpoint_every and trainer.step % cfg.checkpoint_every == 0 and trainer.step < end:
                _save(trainer, run_dir)
    except (TeacherCollapseError, NonFiniteLossError):
        if run_dir is not None and info.rank == 0:
            write_log_csv(trainer.log, run_dir / LOG_CSV)
        raise
    finally:
        bar.close()
    _save(trainer, run_dir)
    stopped = "done" if trainer.step >= trainer.total_steps else "stop_at_step"
    return DinoResult(
        teacher=trainer.teacher, student=trainer.student, log=trainer.log, steps=trainer.step,
        total_steps=trainer.total_steps, stopped=stopped, seconds=time.perf_counter() - t_start,
        run_dir=run_dir, collapse_events=list(trainer.monitor.events), center=trainer.loss_fn.center.detach().cpu(),
    )


# --------------------------------------------------------------------------
# Command line (also the torchrun entry point)
# --------------------------------------------------------------------------


def _literal(text: str):
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m dinosal.train.dino --recipe PROFILE:NAME --run-dir DIR``.

    One process: CPU or one GPU. Several: ``torchrun --nproc_per_node=N -m
    dinosal.train.dino ...`` (every process runs this; NCCL on GPUs, gloo on
    CPU). ``--set field=value`` overrides :class:`DinoConfig` fields;
    ``--help-config`` lists them with their help text.
    """
    ap = argparse.ArgumentParser(prog="python -m dinosal.train.dino", description=main.__doc__.split("\n")[0])
    ap.add_argument("--recipe", help="PROFILE:NAME of dinosal.profiles.DINO_RECIPES, e.g. cpu:dino_world")
    ap.add_argument("--run-dir", help="checkpoint.pth and log.csv go here; an existing checkpoint is resumed")
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="DinoConfig overrides (python literals)")
    ap.add_argument("--help-config", action="store_true", help="list DinoConfig fields and exit")
    args = ap.parse_args(argv)
    if args.help_config:
        print(config_help())
        return 0
    if not args.recipe or not args.run_dir or ":" not in args.recipe:
        ap.error("--recipe PROFILE:NAME and --run-dir are required")
    from .. import zoo

    profile, name = args.recipe.split(":", 1)
    overrides = {}
    for item in args.set:
        if "=" not in item:
            ap.error(f"--set expects FIELD=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        overrides[k] = _literal(v)
    spec = zoo.train_spec(zoo.recipe(name, profile), **overrides)
    started_here = not dist.is_initialized()
    try:
        result = train_dino(spec.dino, zoo.training_set(spec), run_dir=args.run_dir)
        if not dist.is_initialized() or dist.get_rank() == 0:
            last = result.log[-1] if result.log else {}
            print(f"{result.stopped} after {result.steps}/{result.total_steps} steps in {result.seconds:.0f} s; "
                  f"loss {last.get('loss', float('nan')):.4f}, teacher entropy {last.get('teacher_entropy', float('nan')):.3f}")
    finally:
        if started_here and dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
