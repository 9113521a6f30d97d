"""Training schedules as numpy arrays indexed by the global iteration.

They behave like DINO's ``cosine_scheduler`` (reference notes section 1.4):
a linear warmup ``linspace(start_warmup_value, base, warmup_iters)`` (so the
warmup *ends at* ``base``), then ``final + 0.5 (base - final) (1 + cos(pi i /
I))`` for ``i = 0 .. I-1``: the cosine restarts from ``base`` and its last
value is close to, but never exactly, ``final``. Arrays are easy to plot, to
test, and to resume from (the step is the index).

The teacher-temperature schedule is per *epoch* and lives with the loss
(:func:`dinosal.losses.teacher_temp_schedule`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["cosine_schedule", "scaled_lr", "Schedules", "dino_schedules"]


def cosine_schedule(
    base: float,
    final: float,
    epochs: int,
    iters_per_epoch: int,
    warmup_epochs: int = 0,
    start_warmup_value: float = 0.0,
) -> np.ndarray:
    """Warmup + cosine, shape ``(epochs * iters_per_epoch,)`` float64.

    ``warmup_epochs`` epochs of linear warmup from ``start_warmup_value`` to
    ``base`` (endpoint included), then a half cosine from ``base`` towards
    ``final`` over the remaining iterations (``final`` itself is not reached).
    """
    if epochs < 1 or iters_per_epoch < 1:
        raise ValueError(f"cosine_schedule: epochs ({epochs}) and iters_per_epoch ({iters_per_epoch}) must be >= 1")
    if not 0 <= warmup_epochs <= epochs:
        raise ValueError(f"cosine_schedule: warmup_epochs {warmup_epochs} must lie in [0, epochs={epochs}]")
    warmup_iters = int(warmup_epochs * iters_per_epoch)
    warmup = np.linspace(start_warmup_value, base, warmup_iters)
    n = epochs * iters_per_epoch - warmup_iters
    i = np.arange(n)
    cosine = final + 0.5 * (base - final) * (1.0 + np.cos(np.pi * i / max(n, 1)))
    out = np.concatenate([warmup, cosine])
    assert len(out) == epochs * iters_per_epoch
    return out


def scaled_lr(lr: float, global_batch: int, reference_batch: int = 256) -> float:
    """DINO's linear scaling rule: ``lr * global_batch / 256``."""
    return float(lr) * int(global_batch) / reference_batch


@dataclass(frozen=True)
class Schedules:
    """Per-iteration arrays of one run, each ``(epochs * iters_per_epoch,)``."""

    lr: np.ndarray
    wd: np.ndarray
    momentum: np.ndarray

    def __len__(self) -> int:
        return len(self.lr)


def dino_schedules(
    *,
    lr: float,
    min_lr: float,
    global_batch: int,
    warmup_epochs: int,
    weight_decay: float,
    weight_decay_end: float,
    momentum_teacher: float,
    momentum_teacher_end: float = 1.0,
    epochs: int,
    iters_per_epoch: int,
) -> Schedules:
    """The three schedules of ``main_dino``: lr (scaled by ``global_batch/256``,
    warmup then cosine to ``min_lr``), weight decay (cosine, no warmup) and
    teacher momentum (cosine from ``momentum_teacher`` to
    ``momentum_teacher_end``, 1 officially)."""
    return Schedules(
        lr=cosine_schedule(scaled_lr(lr, global_batch), min_lr, epochs, iters_per_epoch, warmup_epochs),
        wd=cosine_schedule(weight_decay, weight_decay_end, epochs, iters_per_epoch),
        momentum=cosine_schedule(momentum_teacher, momentum_teacher_end, epochs, iters_per_epoch),
    )
