"""DINO's multi-crop augmentation with torchvision transforms v2.

:class:`MultiCropConfig` defaults are the official ones (reference notes
section 1.5): 2 global crops (224 px, scale 0.4-1) and 8 local crops (96 px,
scale 0.05-0.4), bicubic; for every crop a horizontal flip (p 0.5), colour
jitter (0.4, 0.4, 0.2, 0.1) with p 0.8, grayscale with p 0.2; Gaussian blur
(sigma U(0.1, 2)) with p 1.0 on global crop 1, 0.1 on global crop 2 and 0.5
on local crops; solarize (threshold 128) with p 0.2 on global crop 2 only;
then ImageNet mean/std normalisation.

:meth:`MultiCropConfig.weak` is the preset the small-scale prototype needed:
with the official colour augmentation a small ViT trained for a few hundred
steps on the procedural images had its teacher collapse to the uniform
distribution (the colour changes are as large as the differences between the
images, so there is little left to agree on); weaker jitter, no grayscale, no
solarize and larger local crops (scale 0.1-0.5) avoided it.

:class:`MultiCropAugmentation` maps one image (PIL, ``(H, W, 3)`` uint8 array
or ``(3, H, W)`` uint8 tensor) to a list of ``n_global + n_local`` float
tensors ``(3, h, w)``: global crops first, then local crops (crop-major order
once collated, which :class:`~dinosal.models.MultiCropWrapper` and
:class:`~dinosal.losses.DINOLoss` expect).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torchvision.transforms import v2

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "MultiCropConfig", "MultiCropAugmentation", "RampedAugmentation"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class MultiCropConfig:
    """Knobs of the multi-crop augmentation; defaults = official DINO.

    Sizes are output sides in px (square crops). ``*_scale`` are the area
    fractions of RandomResizedCrop. ``jitter`` = (brightness, contrast,
    saturation, hue) applied with probability ``jitter_p``. ``blur_p`` =
    (global crop 1, global crop 2); ``solarize_p`` likewise. ``blur_sigma`` is
    the sigma range in px of the output crop. ``n_local = 0`` turns
    multi-crop off (the README then recommends ``global_scale=(0.14, 1)``).
    """

    global_size: int = 224
    local_size: int = 96
    n_global: int = 2
    n_local: int = 8
    global_scale: tuple[float, float] = (0.4, 1.0)
    local_scale: tuple[float, float] = (0.05, 0.4)
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1)
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: tuple[float, float] = (1.0, 0.1)
    local_blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: tuple[float, float] = (0.0, 0.2)
    solarize_threshold: int = 128
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @classmethod
    def weak(cls, **overrides) -> "MultiCropConfig":
        """The weak-colour preset for small procedural runs (see module doc):
        jitter (0.2, 0.2, 0.1, 0) with p 0.5 (no hue shift: colour is part of
        an object's identity in the procedural sets, and hue is the costliest op), no grayscale, no solarize,
        blur p (0.5, 0.1) / 0.2 local, local scale (0.1, 0.5)."""
        base = dict(
            jitter=(0.2, 0.2, 0.1, 0.0),
            jitter_p=0.5,
            grayscale_p=0.0,
            blur_p=(0.5, 0.1),
            local_blur_p=0.2,
            solarize_p=(0.0, 0.0),
            local_scale=(0.1, 0.5),
        )
        base.update(overrides)
        return cls(**base)

    def replace(self, **changes) -> "MultiCropConfig":
        return dataclasses.replace(self, **changes)

    @property
    def n_crops(self) -> int:
        return self.n_global + self.n_local

    def __post_init__(self) -> None:
        if self.n_global != 2:
            raise ValueError(f"MultiCropConfig: n_global must be 2 (DINO's two teacher views), got {self.n_global}")
        if self.n_local < 0:
            raise ValueError(f"MultiCropConfig: n_local must be >= 0, got {self.n_local}")
        for name in ("global_scale", "local_scale"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi <= 1:
                raise ValueError(f"MultiCropConfig: {name} must satisfy 0 < lo <= hi <= 1, got {(lo, hi)}")


def _blur(p: float, size: int, sigma: tuple[float, float]) -> v2.Transform:
    k = min(2 * math.ceil(3 * sigma[1]) + 1, size if size % 2 else size - 1)
    return v2.RandomApply([v2.GaussianBlur(kernel_size=k, sigma=sigma)], p=p)


class MultiCropAugmentation:
    """Callable: image -> list of crops (see module doc). Randomness comes from
    torch's global generator (torchvision v2), so seed it per sample for
    reproducible crops (the DINO trainer does)."""

    def __init__(self, cfg: MultiCropConfig = MultiCropConfig()) -> None:
        self.cfg = cfg
        c = cfg
        bicubic = v2.InterpolationMode.BICUBIC
        colour = [
            v2.RandomHorizontalFlip(p=c.flip_p),
            v2.RandomApply([v2.ColorJitter(*c.jitter)], p=c.jitter_p),
            v2.RandomGrayscale(p=c.grayscale_p),
        ]
        to_float = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(c.mean, c.std)]

        def pipeline(size, scale, blur_p, sol_p):
            steps = [v2.RandomResizedCrop(size, scale=scale, interpolation=bicubic, antialias=True), *colour]
            if blur_p > 0:
                steps.append(_blur(blur_p, size, c.blur_sigma))
            if sol_p > 0:
                steps.append(v2.RandomSolarize(threshold=c.solarize_threshold, p=sol_p))
            return v2.Compose([v2.ToImage(), *steps, *to_float])

        self.global_views = [
            pipeline(c.global_size, c.global_scale, c.blur_p[i], c.solarize_p[i]) for i in range(c.n_global)
        ]
        self.local_view = pipeline(c.local_size, c.local_scale, c.local_blur_p, 0.0)

    def __call__(self, image) -> list[torch.Tensor]:
        crops = [t(image) for t in self.global_views]
        crops.extend(self.local_view(image) for _ in range(self.cfg.n_local))
        return [torch.as_tensor(x).as_subclass(torch.Tensor) for x in crops]

    def __repr__(self) -> str:
        return f"MultiCropAugmentation({self.cfg})"


class RampedAugmentation:
    """Callable ``(image, step)`` -> crops: a curriculum from one multi-crop
    augmentation to another.

    At training step ``t`` an image is cropped by ``end`` with probability
    ``min(1, t / steps)`` and by ``start`` otherwise; the choice is one draw
    from torch's generator, so a per-sample seed (the DINO trainer's) makes it
    reproducible. ``steps <= 0`` always uses ``end``. Both configs must give
    the same number and sizes of crops (the loss pairs them by position);
    ``ValueError`` otherwise. Not in the original DINO, which applies one
    augmentation from the first step.
    """

    def __init__(self, start: MultiCropConfig, end: MultiCropConfig, steps: int) -> None:
        for name in ("n_global", "n_local", "global_size", "local_size"):
            if getattr(start, name) != getattr(end, name):
                raise ValueError(f"RampedAugmentation: start.{name} = {getattr(start, name)} but end.{name} = "
                                 f"{getattr(end, name)}; the two augmentations must give the same crops")
        self.start, self.end, self.steps = MultiCropAugmentation(start), MultiCropAugmentation(end), int(steps)

    def probability(self, step: int) -> float:
        """Chance that an image at ``step`` is cropped by ``end``."""
        return 1.0 if self.steps <= 0 else min(1.0, max(step, 0) / self.steps)

    def __call__(self, image, step: int) -> list[torch.Tensor]:
        use_end = bool(torch.rand(()) < self.probability(step))
        return (self.end if use_end else self.start)(image)

