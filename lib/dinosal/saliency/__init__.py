"""Saliency maps and object discovery on the token grid.

* :mod:`.attention`: DINO's CLS attention per head, mean, mass threshold;
* :mod:`.lost`: LOST (degree, seed, correlation, box);
* :mod:`.tokencut`: TokenCut (normalised cut, Fiedler vector, box);
* :mod:`.classmaps`: Grad-CAM and attention rollouts for classifiers, and
  the map of a per-patch head
  (imported on first use: ``pytorch_grad_cam`` is slow to import);
* :mod:`.grid`: shared checks, connected components and boxes.

All take one image's features and a grid ``(rows, cols)`` (row-major) and
return frozen dataclasses; boxes are xyxy pixels with an exclusive max.
"""

from .attention import AttentionMaps, cls_attention, mass_threshold, upsample
from .lost import LostResult, lost
from .tokencut import DegenerateCutWarning, TokenCutResult, seed_and_sign, tokencut

__all__ = [
    "AttentionMaps", "cls_attention", "mass_threshold", "upsample",
    "LostResult", "lost", "TokenCutResult", "tokencut", "DegenerateCutWarning", "seed_and_sign",
    "ClassMap", "grad_cam", "attention_rollout", "gradient_rollout", "patch_head_map",
]

_LAZY = {"ClassMap", "grad_cam", "attention_rollout", "gradient_rollout", "patch_head_map"}


def __getattr__(name):
    if name in _LAZY:
        from . import classmaps
        return getattr(classmaps, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
