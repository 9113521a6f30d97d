"""The configurations of DINO's two companions, Mugs and LEWEL: :class:`MugsConfig`, :class:`LewelConfig`.

A companion run is a :class:`~dinosal.train.dino_config.DinoConfig` (network, data order, crops, steps,
optimiser, schedules, teacher momentum: the budget and the recipe it shares with DINO) plus one of these,
which hold only what the companion adds. Each field's help gives the official default beside the one
used here; the profiles scale the sizes down for a CPU.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from .dino_config import _f

__all__ = ["MugsConfig", "LewelConfig", "METHODS", "method_json"]


@dataclass(frozen=True)
class MugsConfig:
    """What Mugs adds to a DINO recipe (Zhou et al. 2022; ``main.py`` argparse of github.com/sail-sg/mugs).
    The group term is DINO's head and loss as the DinoConfig sets them, with Mugs' crop weighting."""

    granularities: tuple = _f(("instance", "local_group", "group"), "the terms switched on (Mugs' loss_weights only switch a term on; the total is their plain mean)")
    head_hidden: int = _f(2048, "hidden width of the instance and local-group projectors (Mugs: 2048)")
    out_dim: int = _f(256, "embedding width of the instance and local-group heads and their queues (Mugs: instance_out_dim = local_group_out_dim = 256)")
    predictor_hidden: int = _f(4096, "hidden width of the student's predictors (Mugs: 4096)")
    queue_size: int = _f(65536, "negatives in each InfoNCE queue (Mugs: instance_queue_size = local_group_queue_size = 65536)")
    temperature: float = _f(0.2, "InfoNCE temperature of the instance and local-group terms (Mugs: 0.2)")
    memory_size: int = _f(65536, "entries of the local-group memory (Mugs: local_group_queue_size = 65536)")
    top_n: int = _f(8, "neighbours taken from the memory for the local group (Mugs: local_group_knn_top_n = 8)")

    def __post_init__(self) -> None:
        unknown = set(self.granularities) - {"instance", "local_group", "group"}
        if unknown or not self.granularities:
            raise ValueError(f"MugsConfig.granularities: {self.granularities!r}; use a non-empty subset of "
                             "('instance', 'local_group', 'group')")


@dataclass(frozen=True)
class LewelConfig:
    """What LEWEL adds to a DINO recipe (Huang et al. 2022; ``main.py`` and scripts of github.com/LayneH/LEWEL).
    LEWEL trains on the recipe's two global crops only (BYOL's two views); its target network follows the
    recipe's teacher momentum schedule (the same cosine as LEWEL's)."""

    hidden: int = _f(4096, "hidden width of the neck's and predictors' MLPs (LEWEL: 4096)")
    out_dim: int = _f(256, "k, the embedding width and the number of alignment maps (LEWEL: dim = 256)")
    num_heads: int = _f(4, "groups of alignment maps; slots per image = out_dim / num_heads (LEWEL scripts: 4; argparse: 8)")
    loss_weight: float = _f(0.5, "weight of the global (instance) term; the alignment (object) term gets 1 - it (LEWEL: 0.5)")
    scale: float = _f(1.0, "divides the normalised map logits before the softmax over positions (LEWEL: 1.0)")

    def __post_init__(self) -> None:
        if not 0.0 <= self.loss_weight <= 1.0:
            raise ValueError(f"LewelConfig.loss_weight must be in [0, 1], got {self.loss_weight}")


METHODS = {"mugs": MugsConfig, "lewel": LewelConfig}
"""Companion name -> its configuration class."""


def method_json(dino_json: str, method: str, options) -> str:
    """A companion checkpoint's config: the DINO config's JSON (``result_config``: ``arch`` and the rest at
    the top, where the backbone loader reads them) with ``"companion": {"method", "options"}`` added."""
    if not isinstance(options, METHODS[method]):
        raise TypeError(f"{method}: options must be a {METHODS[method].__name__}, got {type(options).__name__}")
    d = json.loads(dino_json)
    d["companion"] = {"method": method, "options": dataclasses.asdict(options)}
    return json.dumps(d, sort_keys=True)
