"""LEWEL training on DINO's machinery, the BYOL-style variant with EMAN (Huang et al. 2022;
github.com/LayneH/LEWEL ``models/lewel.py`` class ``LEWELB_EMAN``, ``main.py``; reference notes section 6).

:class:`LewelTrainer` is a :class:`~dinosal.train.dino.DinoTrainer` whose online (student) network is a
:class:`~dinosal.models.lewel.LewelWrapper` with predictors and whose target (teacher) network is one
without. For the two global crops v1, v2 of each image the loss is LEWEL's, symmetrised and summed:
``L(online(v1), target(v2)) + L(online(v2), target(v1))`` with
``L = w * byol(predictor(z_g), z_g') + (1 - w) * byol(predictor_obj(slots), slots')`` (``w`` =
``loss_weight``; each slot is matched with the same slot of the other view;
:func:`~dinosal.losses.byol_loss`). The target network is kept in eval mode and its BatchNorm statistics
follow the online ones by the same EMA as the weights (EMAN).

From the DINO recipe: data order, the global crops, AdamW groups and schedules, clipping, the teacher
momentum schedule (DINO's cosine from ``momentum_teacher`` to 1 is LEWEL's), checkpoints, resume,
snapshots, torchrun. Departures from LEWEL at equal compute: AdamW instead of LARS; a ViT instead of a
ResNet-50 (see :mod:`dinosal.models.lewel`); the two views pass the online network in one batch, so its
BatchNorm statistics are over both views (LEWEL runs them apart).
"""

from __future__ import annotations

import math
import time
from typing import Optional, Sequence

import torch
import torch.nn as nn

from ..losses import byol_loss
from ..models.lewel import LewelOutputs, LewelWrapper, NeckOutput
from .dino import DinoResult, DinoTrainer, result_config, run_trainer
from .dino_config import DinoConfig
from .method_config import LewelConfig, method_json
from .monitor import NonFiniteLossError
from .runtime import Dist

__all__ = ["LewelTrainer", "lewel_pair_loss", "train_lewel"]


def lewel_pair_loss(online: LewelOutputs, target: NeckOutput, weight: float) -> tuple[torch.Tensor, torch.Tensor,
                                                                                        torch.Tensor]:
    """LEWEL's ``loss_func`` for one (online view, target view) pair: ``(total, instance, object)``, total =
    ``weight * instance + (1 - weight) * object``; the object term compares slot j with slot j, over all
    images and slots (rows ``B * slots`` of width k)."""
    inst = byol_loss(online.predicted, target.global_embedding)
    b, k, n = online.predicted_slots.shape
    obj = byol_loss(online.predicted_slots.transpose(1, 2).reshape(b * n, k),
                    target.slots.transpose(1, 2).reshape(b * n, k))
    return weight * inst + (1 - weight) * obj, inst, obj


def _half(x: torch.Tensor, i: int) -> torch.Tensor:
    return x.chunk(2)[i]


def _view(o: LewelOutputs, i: int) -> LewelOutputs:
    """Rows of view ``i`` (0 or 1) of outputs computed on both views in one batch."""
    neck = NeckOutput(*(_half(t, i) for t in (o.neck.global_embedding, o.neck.slots, o.neck.maps)))
    return LewelOutputs(neck, *(None if t is None else _half(t, i) for t in (o.predicted, o.predicted_slots)))


class LewelTrainer(DinoTrainer):
    """Online and target networks, LEWEL's loss, optimizer and schedules of one run (see the module doc).
    :meth:`train_step` returns the log row: ``loss``, ``instance`` and ``object`` (both directions summed,
    unweighted), ``target_std`` (the per-dimension std over the batch of the target's normalised global
    embeddings, times sqrt(k): about 1 for spread embeddings, 0 when every image maps to one point --
    BYOL's collapse), ``map_entropy`` (mean entropy of the target's alignment maps over log N: 1 = flat,
    0 = one patch), lr, wd, momentum."""

    CHECKPOINT_KEYS = tuple(k for k in DinoTrainer.CHECKPOINT_KEYS if k != "dino_loss")
    WRITER = f"{__name__}.train_lewel"
    BAR = "LEWEL"

    def __init__(self, cfg: DinoConfig, lewel: LewelConfig, steps_per_epoch: int,
                 dist_info: Optional[Dist] = None) -> None:
        self.cfg, self.lewel = cfg, lewel
        self.refuse_dino_terms("LEWEL")
        if cfg.crops.n_global != 2:
            raise ValueError(f"LewelTrainer: LEWEL compares two views; the crops have n_global={cfg.crops.n_global}")
        super().__init__(cfg, steps_per_epoch, dist_info)

    def build_networks(self):
        m = self.lewel
        return tuple(LewelWrapper(self.new_backbone(drop_path), m.hidden, m.out_dim, m.num_heads, predictors=online)
                     for drop_path, online in ((self.cfg.drop_path, True), (0.0, False)))

    def build_losses(self, scale_balance: bool = False) -> None:
        self.loss_fn, self.ibot_loss = None, None

    def loss_states(self) -> dict:
        return {}

    def config_json(self) -> str:
        return method_json(result_config(self.cfg), "lewel", self.lewel)

    def postfix(self, row: dict) -> dict:
        return dict(loss=f"{row['loss']:.3f}", inst=f"{row['instance']:.3f}", obj=f"{row['object']:.3f}",
                    std=f"{row['target_std']:.2f}")

    @torch.no_grad()
    def update_teacher(self, it: int) -> float:
        """The EMA of the weights (:meth:`DinoTrainer.update_teacher`) and, with ``teacher_update='ema'``,
        EMAN's: BatchNorm running statistics by the same momentum, the batch counters copied."""
        momentum = super().update_teacher(it)
        if self.cfg.teacher_update != "frozen":
            online = dict(self.student.named_buffers())
            for name, buf in self.teacher.named_buffers():
                if name.endswith("num_batches_tracked"):
                    buf.copy_(online[name])
                elif buf.is_floating_point():
                    buf.mul_(momentum).add_(online[name], alpha=1.0 - momentum)
        return momentum

    def iteration(self, crops: Sequence[torch.Tensor]) -> dict:
        it, w = self.step, self.lewel.loss_weight
        t0 = time.perf_counter()
        epoch = it // self.steps_per_epoch
        lr, wd = self.set_schedules(it)
        both = torch.cat([c.to(self.device, non_blocking=True) for c in crops[:2]])
        self.student.train()
        self.teacher.eval()  # EMAN: the target normalises with its running statistics
        with self._autocast():
            with torch.no_grad():
                t = self.teacher(both)
            o = self.student_ddp(both)
        l12, i12, o12 = lewel_pair_loss(_view(o, 0), _view(t, 1).neck, w)
        l21, i21, o21 = lewel_pair_loss(_view(o, 1), _view(t, 0).neck, w)
        loss = l12 + l21
        if not torch.isfinite(loss.detach()):
            raise NonFiniteLossError(f"LEWEL loss is {loss.item()} at step {it} (epoch {epoch}); stopping")
        self.optimise(loss, epoch)
        momentum = self.update_teacher(it)
        with torch.no_grad():
            z = nn.functional.normalize(t.neck.global_embedding.float(), dim=1)
            spread = z.std(0).mean() * math.sqrt(z.shape[1])
            maps = t.neck.maps.float()
            ent = -(maps * maps.clamp_min(1e-30).log()).sum(-1).mean() / math.log(maps.shape[-1])
        v = self.reduce_stats([loss.item(), (i12 + i21).item(), (o12 + o21).item(), float(spread), float(ent)])
        row = {"step": it, "epoch": epoch, "loss": v[0], "instance": v[1], "object": v[2], "target_std": v[3],
               "map_entropy": v[4], "lr": lr, "wd": wd, "momentum": momentum,
               "step_seconds": time.perf_counter() - t0, "collapse": ""}
        return self.finish_row(row, watch=False)


def train_lewel(cfg: DinoConfig, lewel: LewelConfig, dataset, run_dir=None, transform=None) -> DinoResult:
    """Train LEWEL with the DINO recipe ``cfg`` (its two global crops; give it ``n_local=0`` so that no
    local crop is drawn) and LEWEL's additions ``lewel`` on ``dataset``, as
    :func:`~dinosal.train.dino.train_dino` (same items, run folder, resume and errors). The result's
    networks are :class:`~dinosal.models.lewel.LewelWrapper`; a checkpoint's teacher backbone loads with
    :func:`~dinosal.models.load_dino_backbone`."""
    return run_trainer(cfg, dataset, run_dir, transform,
                       make_trainer=lambda spe, info: LewelTrainer(cfg, lewel, spe, info))
