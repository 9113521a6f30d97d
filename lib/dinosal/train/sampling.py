"""The data order of a run (DINO or transfer): step-indexed sampling and per-sample seeded augmentation.

:class:`StepSampler` makes the data seen at a step a function of the step
alone (one seeded permutation per pass, each rank a contiguous share of every
global batch), and :class:`AugmentedDataset` seeds every sample's
augmentation by its global position, so a resumed run sees exactly the
images and crops an uninterrupted run would (see :mod:`dinosal.train.dino`).
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, Sampler

__all__ = ["StepSampler", "AugmentedDataset"]


def _sample_seed(seed: int, position: int) -> int:
    return (seed * 0x9E3779B97F4A7C15 + position * 0xBF58476D1CE4E5B9 + 1) % (2**63 - 1)


class StepSampler(Sampler):
    """Yields ``(dataset index, augmentation seed)`` for this rank, step by step.

    Global position ``g = step * global_batch + rank * batch + j``; pass
    ``g // n`` over the data uses ``randperm(n)`` seeded by ``(seed, pass)``.
    Starts at ``start_step`` and ends before ``end_step``. ``with_step=True``
    yields ``(index, seed, step)``, for a transform that changes over the run
    (:class:`~dinosal.data.multicrop.RampedAugmentation`).
    """

    def __init__(self, n: int, batch: int, world: int, rank: int, seed: int, start_step: int, end_step: int,
                 with_step: bool = False):
        if n < 1:
            raise ValueError("StepSampler: empty dataset")
        self.n, self.batch, self.world, self.rank = n, batch, world, rank
        self.seed, self.start_step, self.end_step = seed, start_step, end_step
        self.with_step = bool(with_step)  # yield (index, seed, step): for a transform that ramps over steps
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
                key = (self._index(g), _sample_seed(self.seed, g))
                yield key + (step,) if self.with_step else key

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
    ``seed`` (inside ``fork_rng``, so the caller's RNG is untouched).

    ``whole_item=True`` hands the transform the dataset item itself (a
    :class:`~dinosal.data.sample.Sample` with its boxes and labels, as the
    transfer trainer needs) instead of its image."""

    def __init__(self, base, transform, whole_item: bool = False) -> None:
        self.base, self.transform, self.whole_item = base, transform, bool(whole_item)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key):
        index, seed, *step = key  # (index, seed) or (index, seed, step) from StepSampler(with_step=True)
        threads = torch.get_num_threads()
        try:
            # Small-image ops are far slower with several intra-op threads on a
            # busy machine (measured 7x on 2 shared cores); one is enough here.
            torch.set_num_threads(1)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                item = self.base[index]
                x = item if self.whole_item else _image_of(item)
                return self.transform(x, step[0]) if step else self.transform(x)
        finally:
            torch.set_num_threads(threads)

