"""Watching a DINO run: the teacher-collapse monitor and the errors that stop a run."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

from .dino_config import CollapseConfig

__all__ = ["CollapseEvent", "CollapseMonitor", "TeacherCollapseError", "NonFiniteLossError"]


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

