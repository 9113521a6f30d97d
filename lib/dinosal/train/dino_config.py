"""The configuration of a DINO run: :class:`DinoConfig`, :class:`CollapseConfig`.

Every field carries its help text (``metadata['help']``; :func:`config_help`
lists them, as ``python -m dinosal.train --help-config`` does). Most fields
change what a run computes; the few in :data:`RUN_CONTROL_FIELDS` change only
how it is executed or watched. That tuple is the one definition of the
difference: the resume check (:func:`result_config`, stored in every
checkpoint) leaves those fields out, and the run-cache key of a zoo model
(``dinosal.zoo.model_key``) holds them at their defaults; nothing else lists
them.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Optional, Union

from ..data.multicrop import MultiCropConfig
from ..runs import config_dict

__all__ = ["CollapseConfig", "DinoConfig", "RUN_CONTROL_FIELDS", "config_help", "result_config"]


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
    # ---- iBOT's masked patch-token term (NOT in original DINO: Zhou et al., "iBOT", ICLR 2022; github.com/bytedance/ibot)
    ibot_weight: float = _f(0.0, "weight of iBOT's masked patch-token self-distillation (NOT in original DINO; iBOT, Zhou et al. 2022, main_ibot.py's lambda2, 1.0 there): the student sees its global crops with some patches replaced by a learnable mask token and predicts, at those patches, the teacher's (unmasked) patch distribution through the same head (iBOT's shared_head). 0 = pure DINO", key_omit_default=True)
    ibot_mask_prob: float = _f(0.5, "iBOT (not in DINO): share of the global crops that get a mask, drawn per crop (the ViT-S recipe's --pred_ratio 0 0.3 picks ratio 0 or 0.3 +- 0.2 at random: 0.5)", key_omit_default=True)
    ibot_mask_ratio: tuple = _f((0.1, 0.5), "iBOT (not in DINO): (lo, hi), the share of a masked crop's patches to mask, uniform per crop (--pred_ratio 0.3 --pred_ratio_var 0.2)", key_omit_default=True)
    ibot_mask_shape: str = _f("block", "iBOT (not in DINO): 'block' = BEiT's blockwise masking (iBOT's --pred_shape block, its default; rectangles of aspect 0.3..3.3 up to the ratio, which may stop short of it) or 'rand' = exactly ratio * patches at random", key_omit_default=True)
    ibot_teacher_temp: float = _f(0.07, "iBOT (not in DINO): final teacher temperature of the patch distributions (--teacher_patch_temp 0.07), reached after warmup_teacher_temp_epochs", key_omit_default=True)
    ibot_warmup_teacher_temp: float = _f(0.04, "iBOT (not in DINO): initial teacher patch temperature (--warmup_teacher_patch_temp 0.04)", key_omit_default=True)
    ibot_center_momentum: float = _f(0.9, "iBOT (not in DINO): EMA rate of the separate center of the teacher's patch outputs (iBOTLoss's center_momentum2)", key_omit_default=True)
    ibot_teacher_patches: str = _f("all", "iBOT (not in DINO): which patches the teacher's head scores: 'all' (iBOT: every patch of the global crops; the patch center is their mean) or 'masked' (only the masked ones, which alone enter the loss; the center is their mean): a cheaper teacher, not iBOT's -- on the cpu recipe's net the head on every patch token about doubles a step", key_omit_default=True)
    ibot_start_epoch: int = _f(0, "iBOT (not in DINO): no patch is masked before this epoch, and the patch temperature stays at its warmup value until then (--pred_start_epoch, 0 for ViTs)", key_omit_default=True)
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
    crops_start: Optional[MultiCropConfig] = _f(None, "a curriculum (not in original DINO): the augmentation at step 0. With crops_ramp_steps > 0 an image at step t is cropped by `crops` with probability t / crops_ramp_steps (at most 1), by crops_start otherwise. None: `crops` from the first step", key_omit_default=True)
    crops_ramp_steps: int = _f(0, "steps over which the curriculum moves from crops_start to crops (0: no curriculum)", key_omit_default=True)
    # ---- system
    seed: int = _f(0, "seed of init, data order and augmentation")
    device: str = _f("auto", "'auto' (cuda if available), 'cpu' or 'cuda'")
    amp: str = _f("auto", "'auto' = bf16 autocast on GPU, fp32 on CPU; 'bf16' forces autocast (on CPUs without native bf16, e.g. AVX2-only, it is ~10x SLOWER: measured 73 s vs 5.3 s per step); 'off' = fp32")
    num_workers: int = _f(0, "DataLoader workers; results do not depend on it (per-sample seeding)")
    threads: Optional[int] = _f(None, "torch intra-op threads during the run (None: leave torch's setting). On a shared machine 1 thread per process avoids waiting for a busy core")
    update_impl: str = _f("loop", "how clip, AdamW and the teacher's EMA run over the parameter tensors: 'loop' (one call per tensor), 'foreach' (torch._foreach_*, all tensors per call; bit-identical to 'loop' on CPU, no faster there) or 'fused' (foreach, with AdamW's fused kernel: ~9% faster per step on the cpu recipe, the same losses up to float rounding). Speed only", key_omit_default=True)
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
        if self.update_impl not in ("loop", "foreach", "fused"):
            raise ValueError(f"DinoConfig.update_impl must be 'loop', 'foreach' or 'fused', got {self.update_impl!r}")
        if self.crops_ramp_steps < 0:
            raise ValueError(f"DinoConfig.crops_ramp_steps must be >= 0, got {self.crops_ramp_steps}")
        if self.crops_ramp_steps > 0 and self.crops_start is None:
            raise ValueError("DinoConfig.crops_ramp_steps > 0 needs crops_start (the augmentation at step 0)")
        if self.pos_interp not in ("dino", "timm"):
            raise ValueError(f"DinoConfig.pos_interp must be 'dino' or 'timm', got {self.pos_interp!r}")
        self._check_ibot()

    def _check_ibot(self) -> None:
        object.__setattr__(self, "ibot_mask_ratio", tuple(self.ibot_mask_ratio))  # a list from JSON keys as the default
        lo, hi = (float(v) for v in self.ibot_mask_ratio) if len(self.ibot_mask_ratio) == 2 else (-1.0, -1.0)
        checks = [
            (self.ibot_weight >= 0, "ibot_weight", "must be >= 0"),
            (0.0 <= self.ibot_mask_prob <= 1.0, "ibot_mask_prob", "must lie in [0, 1]"),
            (0.0 <= lo <= hi <= 1.0, "ibot_mask_ratio", "must be (lo, hi) with 0 <= lo <= hi <= 1"),
            (self.ibot_mask_shape in ("block", "rand"), "ibot_mask_shape", "must be 'block' or 'rand'"),
            (self.ibot_teacher_patches in ("all", "masked"), "ibot_teacher_patches", "must be 'all' or 'masked'"),
            (self.ibot_teacher_temp > 0 and self.ibot_warmup_teacher_temp > 0, "ibot_teacher_temp",
             "and ibot_warmup_teacher_temp must be > 0"),
            (0.0 <= self.ibot_center_momentum <= 1.0, "ibot_center_momentum", "must lie in [0, 1]"),
            (self.ibot_start_epoch >= 0, "ibot_start_epoch", "must be >= 0"),
        ]
        for ok, name, rule in checks:
            if not ok:
                raise ValueError(f"DinoConfig.{name} {rule}, got {getattr(self, name)!r}")

    def replace(self, **changes) -> "DinoConfig":
        return dataclasses.replace(self, **changes)

    @property
    def n_crops(self) -> int:
        """Crops the student sees."""
        return self.crops.n_crops if self.multicrop else self.crops.n_global

    @property
    def ibot(self) -> bool:
        """Whether iBOT's patch term is on (``ibot_weight > 0``)."""
        return self.ibot_weight > 0

    @property
    def effective_ibot_teacher_temps(self) -> tuple[float, float]:
        """(warmup, final) teacher patch temperature after the sharpening switch."""
        if not self.sharpening:
            return self.student_temp, self.student_temp
        return self.ibot_warmup_teacher_temp, self.ibot_teacher_temp

    @property
    def effective_teacher_temps(self) -> tuple[float, float]:
        """(warmup, final) teacher temperature after the sharpening switch."""
        if not self.sharpening:
            return self.student_temp, self.student_temp
        return self.warmup_teacher_temp, self.teacher_temp



# Fields that change how a run is executed or watched, not what it computes: the one list (see the module doc).
RUN_CONTROL_FIELDS = ("num_workers", "threads", "checkpoint_every", "stop_at_step", "progress", "device",
                      "update_impl")


def config_help(cls=DinoConfig) -> str:
    """One line per field: name, default, help text (like ``--help``)."""
    lines = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if dataclasses.is_dataclass(default):
            default = type(default).__name__ + "(...)"
        lines.append(f"{f.name:28s} {default!s:14s} {f.metadata.get('help', '')}")
    return "\n".join(lines)


def result_config(cfg: DinoConfig) -> str:
    """JSON of the fields that change results (:data:`RUN_CONTROL_FIELDS` left out): what a checkpoint
    stores, and what a run must match to resume from it."""
    d = config_dict(cfg)
    for k in RUN_CONTROL_FIELDS:
        d.pop(k, None)
    return json.dumps(d, sort_keys=True)
