"""What a backbone has learned: k-NN accuracy of its CLS features and how well it localises.

* :func:`cls_features` -- the backbone's output for each image (for a
  :func:`~dinosal.models.create_vit` network, the final-normed CLS token),
  L2-normalised, computed in eval mode without gradients. Images of any size
  (at least one patch per side) are padded to a multiple of the patch by
  :func:`~dinosal.features.prepare`, as the feature tap does.
* :func:`knn_predict` / :func:`knn_accuracy` -- the weighted k-nearest-neighbour
  classifier with which DINO reports its k-NN accuracy: for each test feature,
  the ``k`` training features of highest cosine similarity vote for their
  class with weight ``exp(similarity / T)``; the class with the largest sum of
  weights wins (ties: the lowest class index, as ``torch.argmax``).
* :func:`localisation_scores` -- on held-out images with ground-truth objects:
  LOST CorLoc of the last block's keys, the CLS attention's mass on the
  objects divided by their area share (mean over heads, and the best single
  head), and the pointing game of the mean-head attention map.
* :func:`baseline_corlocs` -- the no-learning baselines of the same CorLoc:
  LOST on raw pixels (centred and not) and a centred box.

Images are ``(H, W, 3)`` uint8 arrays (normalised with ImageNet statistics,
as DINO does) or :class:`~dinosal.data.synthetic.Sample` objects, or one
already-normalised ``(B, 3, H, W)`` float tensor.

Empty inputs (no images, no training or test features) and inputs whose
lengths disagree raise ``ValueError`` naming the argument; no score is
silently NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .data.synthetic import Sample, object_mask
from .features import LastBlockTap, check_input_size, patch_size_of, prepare, to_batch
from .metrics import box_hits, mass_share, pointing_game
from .saliency.attention import cls_attention, upsample
from .saliency.lost import lost
from .scoring import centre_box_hits, pixel_features, truth_of

__all__ = ["cls_features", "knn_predict", "knn_accuracy", "LocalisationScores", "localisation_scores",
           "baseline_corlocs", "recipe_bar"]


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
    or ``test_feats`` raise ``ValueError``.
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
class LocalisationScores:
    """Localisation of one backbone on ``n`` images.

    corloc: fraction of images whose LOST box (last-block keys) has IoU >= 0.5
        with a ground-truth box
    attn_ratio: mean over images of (share of the mean-head CLS attention on
        the objects) / (objects' share of the image); 1 = no preference
    attn_ratio_best_head: the same ratio per head (each head's map on its
        own), averaged over images; the largest over heads
    best_head: index of that head
    pointing: fraction of images whose mean-head attention maximum lies on an object
    object_area: mean fraction of the image covered by objects
    n: number of images
    """

    corloc: float
    attn_ratio: float
    attn_ratio_best_head: float
    best_head: int
    pointing: float
    object_area: float
    n: int


def localisation_scores(model: torch.nn.Module, samples: Sequence[Sample], k: int = 100,
                        batch: int = 32) -> LocalisationScores:
    """LOST CorLoc, CLS-attention mass ratio and pointing game of ``model`` on ``samples``.

    model: a timm ViT with a CLS token (see :class:`~dinosal.features.LastBlockTap`).
    samples: Samples with at least one object each, one image size.
    k: LOST's number of lowest-degree patches (clamped to the patch count).
    Images are padded to a multiple of the patch; maps are upsampled by the
    patch and cropped to the image.
    """
    if len(samples) == 0:
        raise ValueError("samples is empty")
    for i, s in enumerate(samples):
        if not isinstance(s, Sample):
            raise TypeError(f"samples[{i}] must be a Sample, got {type(s).__name__}")
        if len(s.boxes) == 0:
            raise ValueError(f"samples[{i}] has no object; CorLoc and attention ratios need one")
    boxes, mean_maps, head_maps = [], [], []
    with LastBlockTap(model) as tap:
        for lo in range(0, len(samples), batch):
            chunk = samples[lo: lo + batch]
            f = tap(to_batch([s.image for s in chunk]))
            if f.attn is None:
                raise ValueError("model has no CLS token; CLS attention is undefined")
            (h, w), p, n_patch = f.image_size, f.patch_size, f.grid[0] * f.grid[1]
            if n_patch < 2:
                raise ValueError(f"samples[{lo}]: an image of (H, W) = ({h}, {w}) px with patch {p} gives "
                                 f"{n_patch} patch; LOST needs at least 2 (e.g. {p} x {2 * p} px)")
            keys = f.patches("k")
            for j in range(len(chunk)):
                boxes.append(lost(keys[j], f.grid, p, (h, w), k=min(k, n_patch)).box)
                maps = cls_attention(f.attn[j], f.grid)
                head_maps.append(upsample(maps.heads, p)[:, :h, :w])
                mean_maps.append(upsample(maps.mean, p)[:h, :w])
    masks = np.stack([object_mask(s) for s in samples])              # (B, H, W)
    mean_maps, head_maps = np.stack(mean_maps), np.stack(head_maps)  # (B, H, W), (B, heads, H, W)
    ratio_mean = mass_share(mean_maps, {"o": masks})["o"].ratio
    b, nh = head_maps.shape[:2]
    per_head = mass_share(head_maps.reshape(b * nh, *head_maps.shape[2:]),
                          {"o": np.repeat(masks, nh, axis=0)})["o"].ratio.reshape(b, nh)
    head_means = np.nanmean(per_head, axis=0)
    hits = box_hits(np.stack(boxes), [s.boxes for s in samples])
    return LocalisationScores(
        corloc=float(hits.mean()),
        attn_ratio=float(np.nanmean(ratio_mean)),
        attn_ratio_best_head=float(np.nanmax(head_means)),
        best_head=int(np.nanargmax(head_means)),
        pointing=float(np.mean(pointing_game(mean_maps, masks))),
        object_area=float(masks.mean()),
        n=len(samples),
    )


def baseline_corlocs(samples: Sequence[Sample], patch: int, k: int = 100,
                     fractions: Sequence[float] = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)) -> dict[str, float]:
    """CorLoc of three baselines that learn nothing, on the same ``samples``.

    ``pixels_centred`` / ``pixels_raw``: LOST (``k`` clamped to the patch
    count) on each ``patch`` x ``patch`` patch's normalised RGB values, with
    the image's mean patch subtracted or not. Without centring nearly all dot
    products are positive and LOST's degree says little.
    ``centre_box``: the best CorLoc over ``fractions`` of a centred box
    covering that fraction of each side (chosen on these samples, so the
    baseline errs towards being too strong); ``centre_box_fraction`` is the
    fraction that won (ties: the largest).
    """
    if len(samples) == 0:
        raise ValueError("samples is empty")
    gts = [s.boxes for s in samples]
    out: dict[str, float] = {}
    for name, centred in (("pixels_centred", True), ("pixels_raw", False)):
        boxes = []
        for i, s in enumerate(samples):
            try:
                f, grid = pixel_features(s.image, patch, centred)
            except ValueError as err:
                raise ValueError(f"samples[{i}]: {err}") from None
            boxes.append(lost(f, grid, patch, s.image.shape[:2], k=min(k, grid[0] * grid[1])).box)
        out[name] = float(box_hits(np.stack(boxes), gts).mean())
    truths = [truth_of(s) for s in samples]
    best = max((float(centre_box_hits(truths, frac).mean()), float(frac)) for frac in fractions)
    out["centre_box"], out["centre_box_fraction"] = best
    return out


def recipe_bar(world: dict | None = None, driving: dict | None = None) -> list[tuple[str, float, float, bool]]:
    """The bar a cpu DINO recipe is held to (the book's issue 4), as
    ``(criterion, value, threshold, passed)`` rows.

    ``world`` / ``driving``: flat dicts with the DINO model's ``corloc`` and
    ``attn_ratio`` and the CorLoc of the baselines measured on the same images:
    ``random`` (the same network at random init), ``pixels_centred``,
    ``pixels_raw`` and ``centre_box`` (world only needs all four; driving
    needs ``random``).

    * world: CorLoc >= 0.5, and >= 0.15 above every baseline; attention ratio >= 2;
    * driving: CorLoc >= 2x the random-init network's; attention ratio >= 1.5.
    """
    rows = []
    if world:
        d = world["corloc"]
        base = max(world[b] for b in ("random", "pixels_centred", "pixels_raw", "centre_box"))
        rows += [("world: LOST CorLoc >= 0.5", d, 0.5, d >= 0.5),
                 ("world: CorLoc minus the best baseline >= 0.15", d - base, 0.15, d - base >= 0.15),
                 ("world: attention on objects / their area >= 2", world["attn_ratio"], 2.0,
                  world["attn_ratio"] >= 2.0)]
    if driving:
        d, r = driving["corloc"], driving["random"]
        rows += [("driving: CorLoc / random-init CorLoc >= 2", d / r if r > 0 else float("inf") if d > 0 else 0.0,
                  2.0, d > 0 and d >= 2 * r),
                 ("driving: attention on objects / their area >= 1.5", driving["attn_ratio"], 1.5,
                  driving["attn_ratio"] >= 1.5)]
    return rows
