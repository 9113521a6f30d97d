"""Mugs training on DINO's machinery (Zhou et al. 2022; github.com/sail-sg/mugs ``main.py``; reference
notes section 5).

:class:`MugsTrainer` is a :class:`~dinosal.train.dino.DinoTrainer` whose networks are
:class:`~dinosal.models.mugs.MugsWrapper` and whose loss is the plain mean of the switched-on terms
(:class:`~dinosal.train.method_config.MugsConfig`):

* **group**: DINO's centred self-distillation on the group head, crops weighted as Mugs does
  (:func:`~dinosal.losses.balanced_pair_mean`);
* **instance**: :class:`~dinosal.losses.QueueInfoNCE` on the instance head;
* **local group**: the same on the local-group head; after the step the student's memory takes the mean
  patch token of the student's first global crop and the teacher's memory the teacher's (Mugs,
  ``main.py`` step 4).

Everything else is the DINO recipe's: data order and crops, AdamW groups and schedules, clipping, the
last-layer freeze, the EMA teacher (backbone, relation block and the three heads; the student's
predictors have no teacher copy), checkpoints, resume, snapshots, torchrun.

Where this departs from Mugs at equal compute: the teacher and the student see the same two global crops
(Mugs gives the teacher two weak crops and the student two more, strong with probability 0.5, plus ten
local crops), so every global crop is "weak" and enters the memory; DINO's optimiser settings stand in for
Mugs' (no patch-embedding lr multiplier of 0.2).
"""

from __future__ import annotations

import time
from typing import Optional, Sequence

import torch

from ..losses import QueueInfoNCE, gather_rows
from ..models.mugs import MugsWrapper
from .dino import DinoResult, DinoTrainer, result_config, run_trainer
from .dino_config import DinoConfig
from .method_config import MugsConfig, method_json
from .monitor import NonFiniteLossError
from .runtime import Dist

__all__ = ["MugsTrainer", "train_mugs"]


class MugsTrainer(DinoTrainer):
    """Student, teacher, Mugs' three losses, optimizer and schedules of one run (see the module doc).
    :meth:`train_step` returns the log row: ``loss`` (the mean of the terms), ``group``, ``instance``,
    ``local_group`` (each term), DINO's teacher diagnostics of the group term, ``instance_accuracy`` and
    ``local_group_accuracy`` (share of positives ranked above every queue entry), lr, wd, momentum."""

    CHECKPOINT_KEYS = DinoTrainer.CHECKPOINT_KEYS + ("instance_loss", "local_group_loss")
    WRITER = f"{__name__}.train_mugs"
    BAR = "Mugs"

    def __init__(self, cfg: DinoConfig, mugs: MugsConfig, steps_per_epoch: int,
                 dist_info: Optional[Dist] = None) -> None:
        self.cfg, self.mugs = cfg, mugs
        self.refuse_dino_terms("Mugs")
        super().__init__(cfg, steps_per_epoch, dist_info)

    def build_networks(self):
        m = self.mugs

        def build(drop_path: float, student: bool) -> MugsWrapper:
            backbone = self.new_backbone(drop_path)
            return MugsWrapper(backbone, self.dino_head(backbone.embed_dim), m.head_hidden, m.out_dim,
                               m.predictor_hidden if student else 0, m.memory_size, m.top_n)

        return build(self.cfg.drop_path, True), build(0.0, False)

    def build_losses(self, scale_balance: bool = True) -> None:
        super().build_losses(scale_balance=True)
        m, cfg = self.mugs, self.cfg
        self.instance_loss, self.local_group_loss = (
            QueueInfoNCE(m.out_dim, m.queue_size, m.temperature, cfg.n_crops, cfg.crops.n_global).to(self.device)
            for _ in range(2))

    def loss_states(self) -> dict:
        return {**super().loss_states(), "instance_loss": self.instance_loss, "local_group_loss": self.local_group_loss}

    def config_json(self) -> str:
        return method_json(result_config(self.cfg), "mugs", self.mugs)

    def postfix(self, row: dict) -> dict:
        return dict(loss=f"{row['loss']:.3f}", inst=f"{row['instance']:.2f}", lg=f"{row['local_group']:.2f}",
                    H=f"{row['teacher_entropy']:.2f}")

    def iteration(self, crops: Sequence[torch.Tensor]) -> dict:
        cfg, it = self.cfg, self.step
        t0 = time.perf_counter()
        epoch = it // self.steps_per_epoch
        lr, wd = self.set_schedules(it)
        n_g = cfg.crops.n_global
        crops = [c.to(self.device, non_blocking=True) for c in crops[: cfg.n_crops]]
        self.student.train()
        with self._autocast():
            with torch.no_grad():
                t = self.teacher(crops[:n_g])
            s = self.student_ddp(crops)
        group = self.loss_fn(s.group.float(), t.group.float(), epoch)
        inst = self.instance_loss(s.instance.float(), t.instance.float())
        local = self.local_group_loss(s.local_group.float(), t.local_group.float())
        terms = {"group": group.loss, "instance": inst.loss, "local_group": local.loss}
        loss = sum(terms[k] for k in self.mugs.granularities) / len(self.mugs.granularities)
        if not torch.isfinite(loss.detach()):
            raise NonFiniteLossError(f"Mugs loss is {loss.item()} at step {it} (epoch {epoch}); stopping")
        # step 4 of Mugs' loop: each memory takes its own network's first global crop
        self.student.head["memory"].enqueue(gather_rows(s.memory_tokens.chunk(n_g)[0]))
        self.teacher.head["memory"].enqueue(gather_rows(t.memory_tokens.chunk(n_g)[0]))
        self.optimise(loss, epoch)
        momentum = self.update_teacher(it)

        v = self.reduce_stats([loss.item(), group.loss.item(), inst.loss.item(), local.loss.item(),
                               group.teacher_entropy, group.teacher_marginal_entropy, group.kl, group.teacher_max_prob,
                               inst.accuracy, local.accuracy])
        row = {"step": it, "epoch": epoch, "loss": v[0], "group": v[1], "instance": v[2], "local_group": v[3],
               "teacher_entropy": v[4], "teacher_marginal_entropy": v[5], "kl": v[6], "teacher_max_prob": v[7],
               "instance_accuracy": v[8], "local_group_accuracy": v[9], "lr": lr, "wd": wd, "momentum": momentum,
               "teacher_temp": group.teacher_temp, "step_seconds": time.perf_counter() - t0, "collapse": ""}
        return self.finish_row(row, watch="group" in self.mugs.granularities)


def train_mugs(cfg: DinoConfig, mugs: MugsConfig, dataset, run_dir=None, transform=None) -> DinoResult:
    """Train Mugs with the DINO recipe ``cfg`` and Mugs' additions ``mugs`` on ``dataset`` (as
    :func:`~dinosal.train.dino.train_dino`: same items, run folder, resume and errors). The result's
    ``teacher``/``student`` are :class:`~dinosal.models.mugs.MugsWrapper`; a checkpoint's teacher backbone
    loads with :func:`~dinosal.models.load_dino_backbone`."""
    return run_trainer(cfg, dataset, run_dir, transform, make_trainer=lambda spe, info: MugsTrainer(cfg, mugs, spe, info))
