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

Beyond original DINO, as marked variants (off by default): a KoLeo term
(``koleo_weight``, DINOv2) and iBOT's masked patch-token self-distillation
(``ibot_weight``; Zhou et al., ICLR 2022, github.com/bytedance/ibot): the
student sees its global crops with some patches replaced by a learnable mask
token (:mod:`~dinosal.train.masking` draws the masks from ``(seed, step)``),
the teacher sees them whole, and at the masked patches the student predicts the
teacher's centred, sharpened patch distribution through the same head
(:class:`~dinosal.losses.IBOTPatchLoss`); the step's log row then has the
columns ``ibot`` (the patch term, unweighted), ``ibot_masked`` (the share of
masked patches) and ``ibot_teacher_temp``.

Ablation switches (used by the theory chapter): ``centering`` (off = center
stays 0), ``sharpening`` (off = teacher temperature equals the student's),
``teacher_update`` (``"ema"``, ``"copy"`` = teacher is the student each
step, ``"frozen"`` = teacher stays at its initialisation) and ``multicrop``
(off = the student sees the two global crops only).

Where the pieces live: the configuration in :mod:`~dinosal.train.dino_config`
(with :data:`RUN_CONTROL_FIELDS`, the fields that do not change a result),
the collapse monitor in :mod:`~dinosal.train.monitor`, the data order in
:mod:`~dinosal.train.sampling`, the update pieces in
:mod:`~dinosal.train.updates` and the process and run-folder pieces it shares
with the transfer trainer in :mod:`~dinosal.train.runtime`; this module
re-exports their public names.
The command line (``python -m dinosal.train``, also under ``torchrun``) is
:mod:`dinosal.cli`: it resolves a zoo recipe, and the trainer knows nothing
of the zoo.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ..data.multicrop import MultiCropAugmentation, RampedAugmentation
from ..losses import DINOLoss, IBOTPatchLoss, koleo_loss, teacher_temp_schedule
from ..models import DINOHead, MultiCropWrapper, create_vit
from ..runs import atomic_torch_save
from ..schedules import Schedules, dino_schedules
from .dino_config import RUN_CONTROL_FIELDS, CollapseConfig, DinoConfig, config_help, result_config
from .masking import step_masks
from .monitor import CollapseEvent, CollapseMonitor, NonFiniteLossError, TeacherCollapseError
from .runtime import RUN_MARKER, SNAPSHOT_DIR, Dist, autocast, claim_run_dir, rng_state, set_rng_state
from .runtime import save_run, setup_distributed, snapshot_path, write_log_csv
from .sampling import AugmentedDataset, StepSampler
from .updates import cancel_last_layer_grads, clip_gradients_per_tensor, ema_update, param_groups

__all__ = ["CollapseConfig", "DinoConfig", "RUN_CONTROL_FIELDS", "CollapseMonitor", "CollapseEvent",
           "TeacherCollapseError", "NonFiniteLossError", "StepSampler", "AugmentedDataset", "DinoTrainer",
           "DinoResult", "param_groups", "clip_gradients_per_tensor", "cancel_last_layer_grads", "ema_update",
           "train_dino", "run_trainer", "training_loader", "config_help", "result_config", "write_log_csv",
           "snapshot_path", "CHECKPOINT", "LOG_CSV", "SNAPSHOT_DIR", "RUN_MARKER"]

CHECKPOINT = "checkpoint.pth"
LOG_CSV = "log.csv"
_CHECKPOINT_KEYS = ("student", "teacher", "optimizer", "dino_loss", "step", "steps_per_epoch", "world_size",
                    "config", "log", "monitor", "rng")


def _ibot_temps(cfg: DinoConfig):
    """iBOT's teacher patch temperature per epoch: the warmup value until ``ibot_start_epoch``, then a
    linear warmup over ``warmup_teacher_temp_epochs`` to the final value (iBOTLoss's teacher_temp2_schedule)."""
    warm, final = cfg.effective_ibot_teacher_temps
    start = min(cfg.ibot_start_epoch, cfg.epochs)
    rest = teacher_temp_schedule(warm, final, cfg.warmup_teacher_temp_epochs, cfg.epochs - start) \
        if cfg.epochs > start else []
    return np.concatenate([np.full(start, warm), rest])


# --------------------------------------------------------------------------
# Distributed (the pieces live in dinosal.train.runtime)
# --------------------------------------------------------------------------

_Dist = Dist


def _setup_distributed(device_pref: str) -> Dist:
    return setup_distributed(device_pref, where="DinoConfig.device")


# --------------------------------------------------------------------------
# Trainer
# --------------------------------------------------------------------------


class DinoTrainer:
    """Student, teacher, loss, optimizer and schedules of one run.

    Other objectives on the same machinery (:mod:`~dinosal.train.mugs`,
    :mod:`~dinosal.train.lewel`) subclass it and replace :meth:`build_networks`,
    :meth:`build_losses`, :meth:`iteration`, :meth:`loss_states`,
    :meth:`config_json` and :meth:`postfix`; ``CHECKPOINT_KEYS`` and ``WRITER``
    say what their checkpoints hold and which function writes their run folders.

    :meth:`train_step` does one iteration on a list of crops (each
    ``(B, 3, h, w)``, globals first) and returns its log row. Use
    :func:`train_dino` for a whole run with data, checkpoints and resume.
    """

    CHECKPOINT_KEYS = _CHECKPOINT_KEYS
    WRITER = f"{__name__}.train_dino"
    BAR = "DINO"

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
        self.student, self.teacher = (m.to(self.device) for m in self.build_networks())
        self.sync_teacher()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        teacher_names = {n for n, _ in self.teacher.named_parameters()}
        # parameters of the student alone, never averaged into the teacher (iBOT's mask token, predictors)
        self.student_only = tuple(n for n, _ in self.student.named_parameters() if n not in teacher_names)
        self.student_ddp: nn.Module = self.student
        if self.dist.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.student_ddp = DistributedDataParallel(self.student, device_ids=ids)
        self.build_losses()
        self._foreach = cfg.update_impl != "loop"  # clip and EMA over all tensors at once
        impl = {"loop": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}[cfg.update_impl]
        self.optimizer = torch.optim.AdamW(param_groups(self.student), **impl)
        self.schedules: Schedules = dino_schedules(
            lr=cfg.lr, min_lr=cfg.min_lr, global_batch=self.global_batch, warmup_epochs=cfg.warmup_epochs,
            weight_decay=cfg.weight_decay, weight_decay_end=cfg.weight_decay_end,
            momentum_teacher=cfg.momentum_teacher, momentum_teacher_end=cfg.momentum_teacher_end,
            epochs=cfg.epochs, iters_per_epoch=self.steps_per_epoch,
        )
        self.step = 0
        self.log: list[dict] = []
        self.monitor = CollapseMonitor(cfg.collapse, cfg.out_dim)

    # ---- what a subclass (another objective on the same machinery) replaces
    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        """Student and teacher (in that order, drawn from the RNG in that order): backbone + DINO head
        each; the student carries iBOT's mask token when the patch term is on."""

        def build(drop_path, mask_token=False):
            backbone = self.new_backbone(drop_path)
            return MultiCropWrapper(backbone, self.dino_head(backbone.embed_dim), mask_token=mask_token)

        return build(self.cfg.drop_path, mask_token=self.cfg.ibot), build(0.0)

    def new_backbone(self, drop_path: float) -> nn.Module:
        """A ViT of this config at random init (the RNG's next draws)."""
        cfg = self.cfg
        return create_vit(cfg.arch, patch=cfg.patch, img_size=cfg.img_size, drop_path=drop_path,
                          pos_interp=cfg.pos_interp)

    def refuse_dino_terms(self, method: str) -> None:
        """``ValueError`` when the config switches on a DINO-only term (iBOT, KoLeo) another objective lacks."""
        if self.cfg.ibot or self.cfg.koleo_weight > 0:
            raise ValueError(f"{type(self).__name__}: the DINO config switches on iBOT or KoLeo; {method} has neither")

    def dino_head(self, embed_dim: int) -> nn.Module:
        """The DINO projection head of this config (also Mugs' group head)."""
        cfg = self.cfg
        return DINOHead(embed_dim, cfg.out_dim, use_bn=cfg.use_bn_in_head, norm_last_layer=cfg.norm_last_layer,
                        nlayers=cfg.head_layers, hidden_dim=cfg.head_hidden, bottleneck_dim=cfg.head_bottleneck)

    def build_losses(self, scale_balance: bool = False) -> None:
        """``loss_fn`` (DINO's; ``scale_balance``: Mugs' 0.5*(global + local) weighting) and ``ibot_loss``."""
        cfg = self.cfg
        warm_t, final_t = cfg.effective_teacher_temps
        self.loss_fn = DINOLoss(
            cfg.out_dim, cfg.n_crops,
            teacher_temps=teacher_temp_schedule(warm_t, final_t, cfg.warmup_teacher_temp_epochs, cfg.epochs),
            student_temp=cfg.student_temp,
            center_momentum=cfg.center_momentum if cfg.centering else 1.0,
            n_global=cfg.crops.n_global, scale_balance=scale_balance,
        ).to(self.device)
        self.ibot_loss: Optional[IBOTPatchLoss] = None
        if cfg.ibot:  # iBOT's patch term (not in original DINO)
            self.ibot_loss = IBOTPatchLoss(
                cfg.out_dim, teacher_temps=_ibot_temps(cfg), student_temp=cfg.student_temp,
                center_momentum=cfg.ibot_center_momentum if cfg.centering else 1.0,
            ).to(self.device)

    def config_json(self) -> str:
        """What a checkpoint stores as its config and a resumed run must match."""
        return result_config(self.cfg)

    def set_schedules(self, it: int) -> tuple[float, float]:
        """lr and weight decay of step ``it`` into the optimizer's groups (decay: the first group only)."""
        lr, wd = float(self.schedules.lr[it]), float(self.schedules.wd[it])
        for i, group in enumerate(self.optimizer.param_groups):
            group["lr"] = lr
            if i == 0:
                group["weight_decay"] = wd
        return lr, wd

    def optimise(self, loss: torch.Tensor, epoch: int) -> None:
        """Backward, per-tensor clipping, last-layer freeze, AdamW step."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.clip_grad > 0:
            clip_gradients_per_tensor(self.student, self.cfg.clip_grad, foreach=self._foreach)
        cancel_last_layer_grads(self.student, epoch, self.cfg.freeze_last_layer)
        self.optimizer.step()

    def update_teacher(self, it: int) -> float:
        """The teacher update of ``cfg.teacher_update`` at step ``it``; returns the momentum used."""
        momentum = float(self.schedules.momentum[it])
        if self.cfg.teacher_update == "ema":
            ema_update(self.teacher, self.student, momentum, foreach=self._foreach, student_only=self.student_only)
            return momentum
        if self.cfg.teacher_update == "copy":
            ema_update(self.teacher, self.student, 0.0, foreach=self._foreach, student_only=self.student_only)
            return 0.0
        return 1.0

    def postfix(self, row: dict) -> dict:
        """What the progress bar shows of a log row."""
        return dict(loss=f"{row['loss']:.3f}", H=f"{row['teacher_entropy']:.2f}", kl=f"{row['kl']:.3f}")

    def sync_teacher(self) -> None:
        """Set the teacher to the student's weights (the student-only ``mask_token`` left out)."""
        keys = self.teacher.state_dict().keys()
        self.teacher.load_state_dict({k: v for k, v in self.student.state_dict().items() if k in keys})

    # ---- one iteration
    def _autocast(self):
        return autocast(self.device, self.cfg.amp)

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
            return self.iteration(crops)

    def iteration(self, crops: Sequence[torch.Tensor]) -> dict:
        """The body of :meth:`train_step` (call that: it switches autograd on
        and checks the mode): schedules, forward passes, loss, center,
        last-layer freeze, clipping, AdamW, EMA, log row."""
        cfg, it = self.cfg, self.step
        t0 = time.perf_counter()
        epoch = it // self.steps_per_epoch
        lr, wd = self.set_schedules(it)
        crops = [c.to(self.device, non_blocking=True) for c in crops[: cfg.n_crops]]
        self.student.train()
        patch = None  # iBOT: the student's and teacher's patch outputs and the masks
        if cfg.ibot:
            student_out, teacher_out, feats, patch = self._ibot_forward(crops, it, epoch)
        else:
            with self._autocast():
                with torch.no_grad():
                    teacher_out = self.teacher(crops[: cfg.crops.n_global])
                student_out, feats = self.student_ddp(crops, return_backbone=True)
        out = self.loss_fn(student_out.float(), teacher_out.float(), epoch)
        loss = out.loss
        koleo = torch.zeros((), device=self.device)
        if cfg.koleo_weight > 0:
            globals_ = feats.float().chunk(cfg.n_crops)[: cfg.crops.n_global]
            koleo = sum(koleo_loss(c) for c in globals_) / cfg.crops.n_global
            loss = loss + cfg.koleo_weight * koleo
        extra = []
        if patch is not None:
            p_out = self.ibot_loss(patch[0].float(), patch[1].float(), patch[2], epoch)
            loss = loss + cfg.ibot_weight * p_out.loss
            extra = [p_out.loss.item(), p_out.masked_share]
        if not torch.isfinite(loss.detach()):
            raise NonFiniteLossError(
                f"DINO loss is {loss.item()} at step {it} (epoch {epoch}); stopping")

        self.optimise(loss, epoch)
        momentum = self.update_teacher(it)

        s = self.reduce_stats([out.loss.item(), koleo.item(), out.teacher_entropy,
                               out.teacher_marginal_entropy, out.kl, out.teacher_max_prob] + extra)
        row = {
            "step": it, "epoch": epoch, "loss": s[0], "koleo": s[1],
            "teacher_entropy": s[2], "teacher_marginal_entropy": s[3], "kl": s[4],
            "teacher_max_prob": s[5], "lr": lr, "wd": wd, "momentum": momentum,
            "teacher_temp": out.teacher_temp,
            "step_seconds": time.perf_counter() - t0, "collapse": "",
        }
        if patch is not None:  # iBOT: the patch term (unweighted), the share of masked patches, its temperature
            row.update(ibot=s[6], ibot_masked=s[7], ibot_teacher_temp=p_out.teacher_temp)
        return self.finish_row(row)

    def reduce_stats(self, values: Sequence[float]) -> list[float]:
        """The step's scalar diagnostics averaged over every process (themselves in one process)."""
        stats = torch.tensor(list(values), dtype=torch.float64)
        if self.dist.world > 1:
            stats = stats.to(self.device)
            dist.all_reduce(stats)
            stats = (stats / self.dist.world).cpu()
        return stats.tolist()

    def finish_row(self, row: dict, watch: bool = True) -> dict:
        """Close step ``row["step"]``: advance the step, let the collapse monitor read the row's teacher
        entropies (``watch``; a row without a teacher softmax passes False), append the row to the log.
        Raises :class:`TeacherCollapseError` for a collapse under ``collapse.action='stop'``."""
        self.step += 1
        event = self.monitor.update(row["step"], row["teacher_entropy"], row["teacher_marginal_entropy"]) \
            if watch else None
        if event is not None:
            row["collapse"] = event.kind
        self.log.append(row)
        if event is not None and self.cfg.collapse.action == "stop":
            raise TeacherCollapseError(event, self.log)
        return row

    def _ibot_forward(self, crops, it: int, epoch: int):
        """iBOT's forward passes (not in original DINO): the teacher's CLS and patch outputs of the
        whole global crops, the student's of its masked global crops (and the CLS of the rest)."""
        cfg, n_g = self.cfg, self.cfg.crops.n_global
        prob = cfg.ibot_mask_prob if epoch >= cfg.ibot_start_epoch else 0.0
        grid = (crops[0].shape[-2] // cfg.patch, crops[0].shape[-1] // cfg.patch)
        masks = step_masks(cfg.seed, it, grid, n_g, crops[0].shape[0], self.dist.world, self.dist.rank, prob,
                           cfg.ibot_mask_ratio, cfg.ibot_mask_shape).to(self.device)
        with self._autocast():
            with torch.no_grad():
                teacher_out, teacher_patch = self.teacher(crops[:n_g], patch_crops=n_g, hide=False,
                                                          masks=masks if cfg.ibot_teacher_patches == "masked" else None)
            student_out, feats, student_patch = self.student_ddp(crops, return_backbone=True, patch_crops=n_g,
                                                                 masks=masks)
        return student_out, teacher_out, feats, (student_patch, teacher_patch, masks)

    # ---- state
    def loss_states(self) -> dict[str, nn.Module]:
        """The stateful loss modules (centres, queues) a checkpoint keeps, by checkpoint key."""
        return {"dino_loss": self.loss_fn, **({"ibot_loss": self.ibot_loss} if self.ibot_loss is not None else {})}

    def state_dict(self) -> dict:
        """Checkpoint in the official layout (``student``/``teacher`` with
        ``backbone.``/``head.`` keys) plus what resuming needs."""
        return {
            "student": self.student.state_dict(),
            "teacher": self.teacher.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            **{k: m.state_dict() for k, m in self.loss_states().items()},
            "step": self.step,
            "epoch": self.step // self.steps_per_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "world_size": self.dist.world,
            "config": self.config_json(),
            "log": self.log,
            "monitor": self.monitor.state_dict(),
            "rng": rng_state(),
        }

    def load_state_dict(self, ckpt: dict) -> None:
        if ckpt["config"] != self.config_json():
            raise ValueError("cannot resume: the checkpoint was written by a run with another configuration")
        if ckpt["steps_per_epoch"] != self.steps_per_epoch or ckpt["world_size"] != self.dist.world:
            raise ValueError(
                f"cannot resume: checkpoint has steps_per_epoch={ckpt['steps_per_epoch']}, world={ckpt['world_size']}; "
                f"this run has {self.steps_per_epoch}, {self.dist.world}"
            )
        self.student.load_state_dict(ckpt["student"])
        self.teacher.load_state_dict(ckpt["teacher"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        for k, m in self.loss_states().items():
            m.load_state_dict(ckpt[k])
        self.step = int(ckpt["step"])
        self.log = list(ckpt["log"])
        self.monitor.load_state_dict(ckpt["monitor"])
        set_rng_state(ckpt["rng"])


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
    center: Optional[torch.Tensor]

    def log_frame(self):
        import pandas as pd

        return pd.DataFrame(self.log)


def _save(trainer: DinoTrainer, run_dir: Optional[Path]) -> None:
    save_run(trainer, run_dir, CHECKPOINT, LOG_CSV)


def _snapshot(trainer: "DinoTrainer", run_dir, rank: int) -> None:
    """Keep the teacher (official checkpoint layout, loadable by
    :func:`~dinosal.models.load_dino_backbone`) if this step is listed."""
    if run_dir is None or rank != 0 or trainer.step not in trainer.cfg.snapshot_steps:
        return
    path = snapshot_path(run_dir, trainer.step)
    if not (path.is_file() or path.is_symlink()):  # never replace a file that is already there
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save({"teacher": trainer.teacher.state_dict(), "config": trainer.config_json(),
                           "step": trainer.step}, path)


def _claim_run_dir(run_dir: Path, info, trainer_cls=None) -> Optional[dict]:
    """:func:`~dinosal.train.runtime.claim_run_dir` for :func:`train_dino` (and the trainers of other
    objectives: ``trainer_cls``). Raises as :func:`train_dino` documents."""
    cls = trainer_cls or DinoTrainer
    return claim_run_dir(run_dir, info, writer=cls.WRITER, checkpoint=CHECKPOINT, log=LOG_CSV,
                         keys=cls.CHECKPOINT_KEYS, hint=" (official DINO weights load with dinosal.models.load_dino_backbone)")


def training_loader(cfg: DinoConfig, dataset, start_step: int, end_step: int, transform=None,
                    dist_info: Optional[_Dist] = None) -> DataLoader:
    """The batches of steps ``start_step .. end_step-1`` as :func:`train_dino`
    reads them: :class:`StepSampler` order, :class:`AugmentedDataset` crops
    (``transform`` defaults to ``MultiCropAugmentation(cfg.crops)``, or to
    :class:`~dinosal.data.multicrop.RampedAugmentation` with ``cfg.crops_ramp_steps > 0``),
    ``cfg.num_workers`` worker processes. Each batch is a list of crops
    ``(B, 3, h, w)``, globals first (what :meth:`DinoTrainer.train_step` takes)."""
    info = dist_info or _Dist(0, 1, torch.device("cpu"))
    ramp = transform is None and cfg.crops_ramp_steps > 0
    if ramp:  # the curriculum: the transform is told each sample's step
        transform = RampedAugmentation(cfg.crops_start, cfg.crops, cfg.crops_ramp_steps)
    sampler = StepSampler(len(dataset), cfg.batch_size, info.world, info.rank, cfg.seed, start_step, end_step,
                          with_step=ramp)
    data = AugmentedDataset(dataset, transform or MultiCropAugmentation(cfg.crops))
    return DataLoader(
        data, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
        pin_memory=info.device.type == "cuda", generator=torch.Generator().manual_seed(cfg.seed),
        persistent_workers=False,
    )


def train_dino(cfg: DinoConfig, dataset, run_dir=None, transform=None,
               init_backbone: Optional[dict] = None) -> DinoResult:
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

    ``init_backbone``: a warm start -- the state dict of a backbone of this
    config's architecture that the student and the teacher both start from
    (their heads start fresh). A resumed run takes its weights from the
    checkpoint instead. What the run started from is the caller's to record
    (the zoo keys it); a mismatched state dict raises ``RuntimeError``.
    """
    return run_trainer(cfg, dataset, run_dir, transform, init_backbone=init_backbone)


def run_trainer(cfg: DinoConfig, dataset, run_dir=None, transform=None, init_backbone: Optional[dict] = None,
                make_trainer=None) -> DinoResult:
    """:func:`train_dino` with another objective's trainer: ``make_trainer(steps_per_epoch, dist_info)``
    returns a :class:`DinoTrainer` subclass (None: DINO's). Same loop, data order, checkpoints, resume,
    threads and errors."""
    t_start = time.perf_counter()
    threads_before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, dataset, run_dir, transform, t_start, init_backbone, make_trainer)
    finally:
        torch.set_num_threads(threads_before)


def _train(cfg: DinoConfig, dataset, run_dir, transform, t_start: float, init_backbone=None,
           make_trainer=None) -> DinoResult:
    """The run of :func:`train_dino`; ``make_trainer(steps_per_epoch, dist_info)``: another objective's
    trainer (a :class:`DinoTrainer` subclass) on the same loop, data order, checkpoints and resume."""
    info = _setup_distributed(cfg.device)
    spe = cfg.steps_per_epoch or len(dataset) // (cfg.batch_size * info.world)
    trainer = make_trainer(spe, info) if make_trainer is not None else DinoTrainer(cfg, spe, info)
    if init_backbone is not None:
        trainer.student.backbone.load_state_dict(init_backbone)
        trainer.sync_teacher()
    run_dir = Path(run_dir) if run_dir is not None else None
    if run_dir is not None:
        ckpt = _claim_run_dir(run_dir, info, type(trainer))
        if ckpt is not None:
            try:
                trainer.load_state_dict(ckpt)
            except ValueError as err:  # name the file the run would resume from
                raise ValueError(f"{run_dir / CHECKPOINT}: {err}") from None
    end = trainer.total_steps if cfg.stop_at_step is None else min(cfg.stop_at_step, trainer.total_steps)

    loader = training_loader(cfg, dataset, trainer.step, end, transform, info)
    from tqdm.auto import tqdm

    bar = tqdm(total=end, initial=trainer.step, desc=trainer.BAR, disable=not cfg.progress or info.rank != 0)
    _snapshot(trainer, run_dir, info.rank)
    try:
        for crops in loader:
            row = trainer.train_step(crops)
            _snapshot(trainer, run_dir, info.rank)
            bar.update(1)
            bar.set_postfix(**trainer.postfix(row), refresh=False)
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
        run_dir=run_dir, collapse_events=list(trainer.monitor.events), center=trainer.loss_fn.center.detach().cpu() if trainer.loss_fn is not None else None,
    )



if __name__ == "__main__":  # the command line moved out of the trainer (it resolves zoo recipes)
    raise SystemExit("python -m dinosal.train.dino is now: python -m dinosal.train (torchrun ... -m dinosal.train)")
