"""The validation grid's table and its rule, apart from the transfers it ranks.

:func:`dinosal.transfers.select` runs a task's lr x epochs grid on the validation split and returns a
:class:`Selection`, cached under a :class:`SelectionKey` (the run cache, else a released table: kind
``"transfer_selection"`` of :mod:`dinosal.release`). Here: the metric of a loss (:func:`metric_of`), the
winner of a column of scores (:func:`choose`), and the two records. Plain data: nothing of the library is
imported; :mod:`dinosal.transfers` gives all four under its own name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

__all__ = ["metric_of", "choose", "Selection", "SelectionKey"]


def metric_of(loss: str) -> str:
    """The selection metric of a loss: ``"map"`` for bce, ``"top1"`` for ce (book/preregistration.md)."""
    return "top1" if loss == "ce" else "map"


def choose(values: Sequence[float]) -> int:
    """Index of the best candidate: the largest finite value, ties to the first in grid order.
    Raises ``ValueError`` when no value is finite."""
    v = np.asarray([np.nan if x is None else x for x in values], dtype=np.float64)
    ok = np.flatnonzero(np.isfinite(v))
    if not len(ok):
        raise ValueError("transfers: no candidate has a finite validation score")
    return int(ok[np.argmax(v[ok])])


@dataclass(frozen=True)
class Selection:
    """A finished grid: ``rows`` (lr, epochs, steps, the metric, the candidate's key) in grid order,
    ``best`` (the winner's ``lr`` and ``epochs``: :class:`TransferConfig` overrides), ``metric``;
    ``path``: the run-cache artifact holding the table (trained here or materialised from a release)."""

    task: str
    mode: str
    parent: str
    metric: str
    rows: tuple
    best: dict
    path: Optional[str]

    def frame(self):
        import pandas as pd

        return pd.DataFrame(list(self.rows))


@dataclass(frozen=True)
class SelectionKey:
    """The key of a grid: its metric and each candidate's :class:`~dinosal.transfers.TransferKey`."""

    metric: str
    candidates: tuple
