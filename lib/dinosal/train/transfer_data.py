"""What a transferred classifier reads and how it is scored: transforms, targets, features, evaluation.

Items are :class:`~dinosal.data.sample.Sample` objects (or anything with
their attributes ``image`` ``(H, W, 3)`` uint8, ``labels`` ``(n,)``,
``boxes`` ``(n, 4)`` xyxy px with an exclusive max, ``multi_hot`` ``(C,)``),
as :class:`~dinosal.data.synthetic.DrivingScenes` (multi-label, the BDD100K
role) and :class:`~dinosal.data.synthetic.SingleVehicles` (one vehicle type
per image, the Stanford Cars role) yield them.

* :class:`TransferTransform`: ``Sample -> (x, target)``. Training:
  RandomResizedCrop to ``img_size`` (bicubic, antialiased) and a horizontal
  flip (eval_linear's train transform); evaluation: a resize to
  ``img_size x img_size``. Both end with ImageNet normalisation. Boxes go
  through the same geometry (torchvision v2 moves and clips them), so the
  per-patch targets follow the crop; image-level labels do not (an object
  cropped away keeps its label, as in eval_linear).
* :func:`sample_target`: the target of one sample for a loss of
  :data:`~dinosal.losses.TRANSFER_LOSSES`.
* :func:`precompute_features`: the frozen backbone's features of a whole
  set, once (linear probe).
* :func:`predict` and :func:`evaluate_transfer`: scores on a set, and
  :class:`~dinosal.metrics.ClassificationScores` from them.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..data.multicrop import IMAGENET_MEAN, IMAGENET_STD
from ..features import patch_size_of
from ..losses import PATCH_LOSSES, TRANSFER_LOSSES, patch_targets
from ..metrics import ClassificationScores, classification_scores
from ..models import PatchClassifier

__all__ = [
    "TransferTransform",
    "class_names_of",
    "sample_target",
    "precompute_features",
    "loss_of",
    "predict",
    "evaluate_transfer",
]


def class_names_of(dataset) -> tuple[str, ...]:
    """The classes of a set: its ``class_names`` attribute, else its first item's.
    Raises ``ValueError`` for an empty set or one that names no classes."""
    names = getattr(dataset, "class_names", None)
    if names is None and len(dataset):
        names = getattr(dataset[0], "class_names", None)
    if not names:
        raise ValueError(f"dataset: {type(dataset).__name__} names no classes (no class_names on it or on its "
                         "first item); pass class_names")
    return tuple(str(c) for c in names)


def sample_target(sample, loss: str, num_classes: int, grid=None, patch: Optional[int] = None,
                  boxes=None) -> torch.Tensor:
    """The target of one sample: ``"ce"`` -> int64 scalar (its one class);
    ``"bce"`` -> ``(C,)`` float32 multi-hot; ``"patch_bce"`` -> ``(rows*cols,
    C)`` float32 from :func:`~dinosal.losses.patch_targets` of ``boxes``
    (default ``sample.boxes``; pass the boxes after the image's geometric
    transform) on ``grid`` with ``patch``; ``"patch_image_bce"`` -> ``(rows*cols,
    C)``, the image's multi-hot on every patch (a crop keeps it, as for ``"bce"``).

    Raises ``ValueError`` naming the problem: for ``"ce"`` a sample with no
    object or objects of several classes (one class per image is the rule of
    the multi-class task); a multi-hot of the wrong length.
    """
    if loss not in TRANSFER_LOSSES:
        raise ValueError(f"loss must be one of {TRANSFER_LOSSES}, got {loss!r}")
    labels = np.asarray(sample.labels, dtype=np.int64).reshape(-1)
    if loss == "ce":
        if len(labels) == 0 or (labels != labels[0]).any():
            raise ValueError(f"loss='ce' needs exactly one class per image; this sample has labels {labels.tolist()} "
                             "(use loss='bce' for multi-label images)")
        if not 0 <= labels[0] < num_classes:
            raise ValueError(f"sample label {int(labels[0])} is outside 0..{num_classes - 1}")
        return torch.tensor(int(labels[0]), dtype=torch.int64)
    if loss in ("bce", "patch_image_bce"):
        mh = np.asarray(sample.multi_hot, dtype=np.float32).reshape(-1)
        if len(mh) != num_classes:
            raise ValueError(f"sample multi_hot has {len(mh)} entries for {num_classes} classes")
        if loss == "bce":
            return torch.from_numpy(mh.copy())
    if grid is None or patch is None:
        raise ValueError(f"loss={loss!r} needs the token grid and the patch size")
    if loss == "patch_image_bce":
        return torch.from_numpy(mh.copy()).expand(int(grid[0]) * int(grid[1]), num_classes).clone()
    return patch_targets(sample.boxes if boxes is None else boxes, labels, num_classes, grid, patch)


class TransferTransform:
    """Callable ``Sample -> (x (3, img_size, img_size) float32, target)`` (see the module doc).

    ``train``: random crop and flip (``crop_scale``, ``flip_p``) or the
    evaluation resize. ``patch``: the backbone's patch size (needed for
    the patch losses; ``img_size`` must be a multiple of it). Randomness comes
    from torch's global generator, which the trainer seeds per sample.
    """

    def __init__(self, loss: str, num_classes: int, img_size: int, patch: int, train: bool,
                 crop_scale: Sequence[float] = (0.08, 1.0), flip_p: float = 0.5) -> None:
        if loss not in TRANSFER_LOSSES:
            raise ValueError(f"loss must be one of {TRANSFER_LOSSES}, got {loss!r}")
        if int(img_size) < 1 or int(patch) < 1 or int(img_size) % int(patch):
            raise ValueError(f"img_size {img_size} must be a positive multiple of the patch size {patch}")
        self.loss, self.num_classes, self.img_size, self.patch = loss, int(num_classes), int(img_size), int(patch)
        self.grid = (self.img_size // self.patch,) * 2
        bicubic = v2.InterpolationMode.BICUBIC
        if train:
            geo = [v2.RandomResizedCrop(self.img_size, scale=tuple(crop_scale), interpolation=bicubic, antialias=True),
                   v2.RandomHorizontalFlip(p=flip_p)]
        else:
            geo = [v2.Resize((self.img_size, self.img_size), interpolation=bicubic, antialias=True)]
        self.geometry = v2.Compose(geo)
        self.to_float = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def __call__(self, sample) -> tuple[torch.Tensor, torch.Tensor]:
        arr = np.ascontiguousarray(np.asarray(sample.image))
        if arr.ndim != 3 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
            raise ValueError(f"sample.image must be (H, W, 3) uint8, got {arr.shape} {arr.dtype}")
        image = tv_tensors.Image(torch.from_numpy(arr).permute(2, 0, 1))
        boxes = None
        if self.loss == "patch_bce":
            b = torch.as_tensor(np.asarray(sample.boxes, dtype=np.float32)).reshape(-1, 4)
            boxes = tv_tensors.BoundingBoxes(b, format="XYXY", canvas_size=tuple(arr.shape[:2]))
            image, boxes = self.geometry(image, boxes)
            boxes = boxes.as_subclass(torch.Tensor)
        else:
            image = self.geometry(image)
        x = self.to_float(image).as_subclass(torch.Tensor)
        return x, sample_target(sample, self.loss, self.num_classes, self.grid, self.patch, boxes)


def _batches(dataset, transform, batch_size: int):
    for start in range(0, len(dataset), batch_size):
        items = [transform(dataset[i]) for i in range(start, min(start + batch_size, len(dataset)))]
        yield torch.stack([x for x, _ in items]), torch.stack([t for _, t in items])


def _param_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def precompute_features(model: nn.Module, dataset, transform, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """``model.features`` (a :class:`~dinosal.models.Classifier` or
    :class:`~dinosal.models.PatchClassifier`) of every item of ``dataset``
    under ``transform`` (the evaluation transform), in eval mode without
    gradients. Returns ``(features, targets)`` on the model's device:
    ``(n, F)`` or ``(n, N, D)``, and the stacked targets. The model's train
    mode is restored."""
    device = _param_device(model)
    feats, targets = _eval_outputs(model, model.features, dataset, transform, batch_size, device)
    return feats, targets.to(device)


@torch.no_grad()
def _eval_outputs(model: nn.Module, fn, dataset, transform, batch_size: int, out_device) -> tuple[torch.Tensor, torch.Tensor]:
    """``fn`` (the model's forward or its ``features``) over ``dataset`` in eval mode, batch by batch:
    ``(outputs as float on out_device, stacked targets)``; the model's train mode is restored."""
    was = model.training
    model.eval()
    device = _param_device(model)
    outs, targets = [], []
    try:
        for x, t in _batches(dataset, transform, batch_size):
            outs.append(fn(x.to(device)).float().to(out_device))
            targets.append(t)
    finally:
        model.train(was)
    return torch.cat(outs), torch.cat(targets)


def loss_of(model: nn.Module) -> str:
    """``"patch_bce"`` for a model whose output has a patch axis (a
    :class:`~dinosal.models.PatchClassifier`, whether trained on box or on
    image-level labels), else ``"bce"`` when its head says ``multi_label``,
    else ``"ce"``."""
    if isinstance(model, PatchClassifier):
        return "patch_bce"
    return "bce" if getattr(getattr(model, "head", None), "multi_label", False) else "ce"


@torch.no_grad()
def predict(model: nn.Module, dataset, img_size: int, loss: Optional[str] = None,
            batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Logits and targets of a set under the evaluation transform, in eval mode.

    Returns ``(scores, targets)`` as numpy: ``(n, C)`` and ``(n,)`` class
    indices for ``"ce"``; ``(n, C)`` and ``(n, C)`` for ``"bce"``; ``(n, N,
    C)`` twice for the patch losses. ``loss`` defaults to :func:`loss_of`.
    Raises ``ValueError`` for an empty set."""
    if len(dataset) == 0:
        raise ValueError("dataset is empty; nothing to evaluate")
    loss = loss or loss_of(model)
    backbone = getattr(model, "backbone", model)
    n_classes = int(model.head.linear.out_features) if hasattr(model, "head") else None
    transform = TransferTransform(loss, n_classes, img_size, patch_size_of(backbone), train=False)
    scores, targets = _eval_outputs(model, model, dataset, transform, batch_size, "cpu")
    return scores.numpy(), targets.numpy()


def evaluate_transfer(model: nn.Module, dataset, img_size: int, loss: Optional[str] = None,
                      batch_size: int = 64, class_names: Optional[Sequence[str]] = None) -> ClassificationScores:
    """Score a transferred classifier on ``dataset`` (evaluation transform at
    ``img_size``): top-1 and confusion matrix for ``"ce"``; per-class AP and
    mAP for every loss (classes with no positive in the set are left out of
    the mean and listed, see :func:`~dinosal.metrics.classification_scores`).
    A dense head is scored against the boxes whatever labels it was trained
    on (``"patch_image_bce"`` is evaluated as ``"patch_bce"``: AP of its
    patches against the box labels, so both dense heads share one measure).
    ``class_names`` default to the set's."""
    loss = loss or loss_of(model)
    if loss in PATCH_LOSSES:
        loss = "patch_bce"
    scores, targets = predict(model, dataset, img_size, loss, batch_size)
    names = tuple(class_names) if class_names is not None else class_names_of(dataset)
    return classification_scores(loss, targets, scores, names)
