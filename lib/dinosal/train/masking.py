"""Which patches the student does not see: iBOT's masks (NOT in original DINO).

iBOT (Zhou et al., "iBOT: Image BERT Pre-Training with Online Tokenizer", ICLR
2022) hides some patches of the student's global crops behind a learnable mask
token and asks the student to predict, at those positions, the teacher's patch
distribution. The masks here follow ``ImageFolderMask`` (ibot:loader.py) with
the ViT-S recipe's arguments (``--pred_ratio 0 0.3 --pred_ratio_var 0 0.2
--pred_shape block``):

* each global crop of each image is masked with probability ``prob`` (the
  recipe picks between the ratios 0 and 0.3 +- 0.2 at random: 0.5), at a ratio
  drawn uniformly from ``ratio`` (0.1 .. 0.5), independently per crop;
* ``"block"``: BEiT's blockwise masking (Bao et al. 2021, which iBOT's loader
  follows): rectangles of area uniform in ``[(min(rows, cols) // 3)^2,
  still allowed]`` and log-uniform aspect ratio in ``[0.3, 1/0.3]``, placed at
  random, each adding at least one new patch and never going past ``ratio *
  rows * cols`` masked patches; up to 10 tries per rectangle, and masking
  stops when all 10 fail (so a mask can end below its target, as iBOT's);
  ``"rand"``: exactly ``int(ratio * rows * cols)`` patches at random.

What differs: iBOT draws masks in the data loader with Python's ``random``;
here they are drawn by the trainer from a generator seeded by ``(seed,
step)`` for the whole global batch (each process takes its rows), so a
resumed run and a run on more processes see the same masks.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

__all__ = ["MASK_SHAPES", "block_mask", "random_mask", "crop_masks", "step_masks"]

MASK_SHAPES = ("block", "rand")
_ASPECT = (0.3, 1 / 0.3)  # iBOT's pred_aspect_ratio
_TRIES = 10


def _uniform(rng: np.random.Generator, a: float, b: float) -> float:
    """Python's ``random.uniform``: ``a + (b - a) u``, also for ``b < a``."""
    return a + (b - a) * float(rng.random())


def block_mask(rows: int, cols: int, target: float, rng: np.random.Generator) -> np.ndarray:
    """A ``(rows, cols)`` bool mask of at most ``target`` patches made of rectangles
    (BEiT's ``MaskingGenerator`` as ibot:loader.py runs it; see the module doc)."""
    mask = np.zeros((rows, cols), dtype=bool)
    low = (min(rows, cols) // 3) ** 2
    log_lo, log_hi = math.log(_ASPECT[0]), math.log(_ASPECT[1])
    count = 0
    while count < target:
        room = target - count
        added = 0
        for _ in range(_TRIES):
            area = _uniform(rng, low, room)
            aspect = math.exp(_uniform(rng, log_lo, log_hi))
            h = int(round(math.sqrt(area * aspect)))
            w = int(round(math.sqrt(area / aspect)))
            if w < cols and h < rows:
                top = int(rng.integers(0, rows - h + 1))
                left = int(rng.integers(0, cols - w + 1))
                block = mask[top: top + h, left: left + w]
                new = h * w - int(block.sum())
                if 0 < new <= room:
                    block[...] = True
                    added = new
            if added > 0:
                break
        if added == 0:
            break
        count += added
    return mask


def random_mask(rows: int, cols: int, target: float, rng: np.random.Generator) -> np.ndarray:
    """A ``(rows, cols)`` bool mask of exactly ``int(target)`` patches at random (iBOT's ``'rand'``)."""
    flat = np.zeros(rows * cols, dtype=bool)
    flat[rng.permutation(rows * cols)[: int(target)]] = True
    return flat.reshape(rows, cols)


def crop_masks(n: int, rows: int, cols: int, prob: float, ratio: Sequence[float], shape: str,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` masks ``(n, rows, cols)`` bool, each made (with probability ``prob``) at a ratio
    uniform in ``ratio = (lo, hi)``; also returns the drawn ratios ``(n,)`` (0 where unmasked)."""
    if shape not in MASK_SHAPES:
        raise ValueError(f"crop_masks: shape must be one of {MASK_SHAPES}, got {shape!r}")
    make = block_mask if shape == "block" else random_mask
    lo, hi = (float(v) for v in ratio)
    masks = np.zeros((n, rows, cols), dtype=bool)
    drawn = np.zeros(n)
    for i in range(n):
        if rng.random() < prob:
            drawn[i] = _uniform(rng, lo, hi)
            masks[i] = make(rows, cols, drawn[i] * rows * cols, rng)
    return masks, drawn


def step_masks(seed: int, step: int, grid: Sequence[int], n_global: int, batch: int, world: int, rank: int,
               prob: float, ratio: Sequence[float], shape: str) -> torch.Tensor:
    """The masks of one training step for this process: ``(n_global*batch, rows, cols)`` bool,
    crop-major (rows ``[c*batch:(c+1)*batch]`` = global crop ``c``), as
    :class:`~dinosal.models.MultiCropWrapper` takes them. Drawn for the whole global batch
    (``world*batch`` images, ``n_global`` crops each, image-major as iBOT's loader) from a
    generator seeded by ``(seed, step)``; process ``rank`` takes images ``[rank*batch,
    (rank+1)*batch)``, the rows :class:`~dinosal.train.sampling.StepSampler` gives it."""
    rows, cols = (int(v) for v in grid)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(step), 0x1B07]))
    masks, _ = crop_masks(world * batch * n_global, rows, cols, prob, ratio, shape, rng)
    mine = masks.reshape(world * batch, n_global, rows, cols)[rank * batch: (rank + 1) * batch]
    return torch.from_numpy(np.ascontiguousarray(mine.transpose(1, 0, 2, 3))).reshape(n_global * batch, rows, cols)
