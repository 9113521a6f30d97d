"""k-NN accuracy of a backbone's CLS features: DINO's ``eval_knn.py`` in three steps.

* :func:`cls_features` -- the backbone's output for each image (for a
  :func:`~dinosal.models.create_vit` network, the final-normed CLS token),
  L2-normalised, computed in eval mode without gradients. Images of any size
  (at least one patch per side) are padded to a multiple of the patch by
  :func:`~dinosal.features.prepare`, as the feature tap does.
* :func:`knn_predict` -- the weighted k-nearest-neighbour vote with which
  DINO reports its k-NN accuracy: for each test feature, the ``k`` training
  features of highest cosine similarity vote for their class with weight
  ``exp(similarity / T)``; the class with the largest sum of weights wins
  (ties: the lowest class index, as ``torch.argmax``).
* :func:`knn_accuracy` -- top-1 accuracy of that vote; :func:`knn_eval` --
  features and accuracy of one backbone on a :class:`KnnSets` (train and
  test images with their labels) in one call.

Images are ``(H, W, 3)`` uint8 arrays (normalised with ImageNet statistics,
as DINO does) or :class:`~dinosal.data.sample.Sample` objects, or one
already-normalised ``(B, 3, H, W)`` float tensor. The train/test sets of the
book are built by :func:`dinosal.zoo.knn_sets`.

Empty inputs (no images, no training or test features) and inputs whose
lengths disagree raise ``ValueError`` naming the argument; no score is
silently NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .data.sample import Sample
from .features import check_input_size, patch_size_of, prepare, to_batch

__all__ = ["KnnSets", "cls_features", "knn_predict", "knn_accuracy", "knn_eval"]


def _image_of(item, i: int) -> np.ndarray:
    image = item.image if isinstance(item, Sample) else item
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[-1] == 3 and image.dtype == np.uint8):
        raise TypeError(
            f"images[{i}] must be a Sample or an (H, W, 3) uint8 array, got "
            f"{type(image).__name__} {getattr(image, 'shape', '')} {getattr(image, 'dtype', '')}"
        )
    return image


def _vit_in(model: torch.nn.Module):
    """The first submodule with a ``patch_embed`` (the ViT), or None (a backbone without patches)."""
    return next((m for m in model.modules() if hasattr(m, "patch_embed")), None)


def _runs(images, n: int, batch: int):
    """``(lo, hi, batch tensor)``: up to ``batch`` consecutive images of one size at a time."""
    if torch.is_tensor(images):
        for lo in range(0, n, batch):
            yield lo, min(lo + batch, n), to_batch(images[lo: lo + batch])
        return
    lo, run = 0, []
    for i in range(n):
        im = _image_of(images[i], i)
        if run and (len(run) == batch or im.shape != run[0].shape):
            yield lo, i, to_batch(run)
            lo, run = i, []
        run.append(im)
    yield lo, n, to_batch(run)


@torch.no_grad()
def cls_features(model: torch.nn.Module, images, batch: int = 64, mode: str = "pad") -> torch.Tensor:
    """``(n, D)`` float32 CPU tensor of L2-normalised ``model(x)`` outputs.

    model: a backbone whose ``forward`` maps ``(B, 3, H, W)`` to ``(B, D)``
        (a timm ViT with ``num_classes=0``: the normed CLS token). It runs in
        eval mode; its previous mode is restored afterwards.
    images: a sequence of Samples or ``(H, W, 3)`` uint8 arrays of any sizes
        (consecutive images of one size share a forward pass), or a
        normalised float tensor ``(n, 3, H, W)``.
    batch: images per forward pass.
    mode: how a ViT's input is brought to a multiple of its patch, as the
        feature tap does (:func:`~dinosal.features.prepare`): ``"pad"``
        (zeros at the bottom/right after normalisation) or ``"resize"``.
        An image smaller than one patch, or a size a fixed-``img_size`` model
        cannot take, raises ``ValueError`` naming the image.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    n = len(images)
    if n == 0:
        raise ValueError("images is empty")
    vit = _vit_in(model)
    patch = patch_size_of(vit) if vit is not None else None
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    out = []
    try:
        for lo, hi, x in _runs(images, n, batch):
            if patch is not None:
                try:
                    prep = prepare(x, patch, mode)
                    check_input_size(vit, prep)
                except ValueError as err:
                    which = f"images[{lo}]" if hi - lo == 1 else f"images[{lo}:{hi}]"
                    raise ValueError(f"{which}: {err}") from None
                x = prep.pixels
            y = model(x.to(param.device, param.dtype))
            if y.ndim != 2:
                raise ValueError(f"model output must be (B, D), got {tuple(y.shape)}; is num_classes=0?")
            out.append(F.normalize(y.float(), dim=-1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


def _feats(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).float()
    if t.ndim != 2:
        raise ValueError(f"{name} must be (n, D) features, got shape {tuple(t.shape)}")
    if len(t) == 0:
        raise ValueError(f"{name} is empty (0 rows); k-NN needs at least one {name.split('_')[0]} feature")
    return t


def _labels(y, n: int, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(y) if not torch.is_tensor(y) else y)
    if t.ndim != 1 or len(t) != n:
        raise ValueError(f"{name} must be a 1-D array of {n} labels, got shape {tuple(t.shape)}")
    if t.is_floating_point() or (len(t) and int(t.min()) < 0):
        raise ValueError(f"{name} must hold non-negative integer class indices")
    return t.long()


def knn_predict(train_feats, train_labels, test_feats, k: int = 20, T: float = 0.07,
                num_classes: int | None = None, chunk: int = 1024) -> torch.Tensor:
    """``(m,)`` int64 predicted class of each test row by the weighted k-NN vote.

    train_feats ``(n, D)``, test_feats ``(m, D)``: rows are L2-normalised
    here, so the similarity is the cosine. train_labels ``(n,)`` int class
    indices. For each test row: the ``k`` training rows of highest cosine
    (``torch.topk``), each votes ``exp(cos / T)`` for its class, and the
    class with the largest total wins; ties go to the lowest class index.
    ``num_classes`` defaults to ``max(train_labels) + 1``; ``chunk`` test
    rows are scored at a time (memory ``chunk * n``). Empty ``train_feats``
    or ``test_feats`` raise ``ValueError``. Source: DINO's ``eval_knn.py``
    (``knn_classifier``), without its distributed gathering.
    """
    a = _feats(train_feats, "train_feats")
    b = _feats(test_feats, "test_feats")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"train_feats (n, D) and test_feats (m, D) must share D, "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")
    y = _labels(train_labels, len(a), "train_labels")
    if not 1 <= k <= len(a):
        raise ValueError(f"k must be in [1, n_train] = [1, {len(a)}], got {k}")
    if T <= 0:
        raise ValueError(f"T must be > 0, got {T}")
    c = int(num_classes) if num_classes is not None else int(y.max()) + 1
    if int(y.max()) >= c:
        raise ValueError(f"train_labels has class {int(y.max())} but num_classes is {c}")
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    preds = []
    for lo in range(0, len(b), chunk):
        sim, idx = (b[lo: lo + chunk] @ a.T).topk(k, dim=1)
        votes = torch.zeros(len(sim), c).scatter_add_(1, y[idx], (sim / T).exp())
        preds.append(votes.argmax(dim=1))
    return torch.cat(preds)


def knn_accuracy(train_feats, train_labels, test_feats, test_labels, k: int = 20, T: float = 0.07,
                 num_classes: int | None = None) -> float:
    """Top-1 accuracy in [0, 1] of :func:`knn_predict` against ``test_labels`` ``(m,)``.

    An empty test set raises ``ValueError`` (an accuracy over no images is undefined);
    ``test_labels`` must have one label per row of ``test_feats``.
    """
    b = _feats(test_feats, "test_feats")
    y_test = _labels(test_labels, len(b), "test_labels")
    pred = knn_predict(train_feats, train_labels, b, k=k, T=T, num_classes=num_classes)
    return float((pred == y_test).float().mean())


@dataclass(frozen=True)
class KnnSets:
    """Train and test images of a k-NN evaluation, with their labels.

    train, test: sequences of images (Samples or ``(H, W, 3)`` uint8 arrays);
    train_labels, test_labels: ``(len(train),)`` and ``(len(test),)`` int
    class indices into ``class_names``.
    """

    train: list
    test: list
    train_labels: np.ndarray
    test_labels: np.ndarray
    class_names: tuple

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def knn_eval(model: torch.nn.Module, sets: KnnSets, k: int = 20, T: float = 0.07, batch: int = 64) -> float:
    """k-NN top-1 accuracy of ``model`` on ``sets``: the :func:`cls_features` of
    the training images vote for the classes of the test images
    (:func:`knn_accuracy` with ``num_classes = sets.num_classes``)."""
    f_train = cls_features(model, sets.train, batch=batch)
    f_test = cls_features(model, sets.test, batch=batch)
    return knn_accuracy(f_train, sets.train_labels, f_test, sets.test_labels, k=k, T=T, num_classes=sets.num_classes)
