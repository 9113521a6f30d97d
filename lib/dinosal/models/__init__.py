"""Backbones, heads and official DINO weights.

Everything here is a thin layer over timm's ``VisionTransformer``: the study
never writes its own ViT. What this package adds:

* :func:`create_vit` builds the DINO sizes (``tiny``/``small``/``base``, 12
  blocks, mlp ratio 4, qkv bias, LayerNorm eps 1e-6) or a custom small
  config, with ``dynamic_img_size=True`` so any input whose sides are
  multiples of the patch size runs (position embeddings are interpolated) and
  ``num_classes=0`` so ``model(x)`` returns the final-normed CLS token
  ``(B, D)`` exactly as DINO's ``forward`` does.
* :class:`DINOHead` and :class:`MultiCropWrapper`, DINO's projection head and
  its "one backbone pass per resolution" wrapper.
* :class:`LinearHead`, the ``eval_linear`` classifier (multi-class CE or
  multi-label BCE is the trainer's choice; the head is the same Linear), put
  on a backbone by :class:`Classifier` (features: :func:`classifier_features`,
  the CLS of the last ``n`` blocks and optionally the pooled patch tokens) or
  :class:`PatchClassifier` (one prediction per patch token);
* :func:`set_drop_path`, stochastic depth of an existing ViT (fine-tuning).
* :func:`load_dino_backbone` / :func:`load_dino_state`, which read the
  official checkpoint layouts strictly: a key, shape or head-count mismatch
  raises :class:`CheckpointKeyError` naming the file, the keys and both
  shapes, never a silent partial load or a silent resize. The one documented
  exception is a position table of another grid, which is resampled (see
  :func:`load_dino_backbone`).

Modules:

* :mod:`.vit` -- the ViT (:func:`create_vit`, :func:`seeded_vit`, :class:`DinoVisionTransformer`)
  and position-embedding interpolation (``"dino"`` / ``"timm"``,
  :data:`POS_INTERP`; the two methods are explained there);
* :mod:`.heads` -- :class:`DINOHead`, :class:`MultiCropWrapper`,
  :class:`LinearHead`, :class:`Classifier`, :class:`PatchClassifier`;
* :mod:`.checkpoints` -- strict loading of official and dinosal checkpoints
  (weight-norm key names of the head explained there).
"""

from .checkpoints import (
    DINO_WEIGHTS_ENV,  # noqa: F401 - public, though not in __all__ (as before the split)
    CheckpointKeyError,
    LoadReport,
    dino_backbone_from,
    extract_backbone_state,
    load_dino_backbone,
    load_dino_state,
    load_dino_timm,
    official_head_keys_to_parametrized,
    official_weights_path,
)
from .heads import Classifier, DINOHead, LinearHead, MultiCropWrapper, PatchClassifier, classifier_features, feature_dim
from .vit import (
    POS_INTERP,
    VIT_SIZES,
    DinoVisionTransformer,
    create_vit,
    seeded_vit,
    dino_interpolate_pos_embed,
    resample_pos_embed,
    set_drop_path,
)

__all__ = [
    "VIT_SIZES",
    "POS_INTERP",
    "dino_interpolate_pos_embed",
    "resample_pos_embed",
    "set_drop_path",
    "DinoVisionTransformer",
    "create_vit",
    "seeded_vit",
    "DINOHead",
    "MultiCropWrapper",
    "LinearHead",
    "Classifier",
    "PatchClassifier",
    "classifier_features",
    "feature_dim",
    "CheckpointKeyError",
    "LoadReport",
    "extract_backbone_state",
    "official_head_keys_to_parametrized",
    "load_dino_state",
    "load_dino_backbone",
    "dino_backbone_from",
    "load_dino_timm",
    "official_weights_path",
]
