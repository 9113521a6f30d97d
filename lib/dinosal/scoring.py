"""Every saliency method of one backbone, run on images with ground truth and scored.

The instrument of the saliency and transfer chapters: the same code measures
a random-init network, a DINO model, a transferred classifier or a raw-pixel
baseline, so their numbers compare.

* :class:`GroundTruth`: the boxes, the object mask and the background-part
  masks of one image (:func:`truth_of` for a synthetic
  :class:`~dinosal.data.synthetic.Sample`, :func:`truth_from_boxes` for real
  data that has boxes only: the objects are then the union of the boxes and
  there are no parts);
* :class:`MethodMaps`: CLS attention, LOST and TokenCut of one image
  (:func:`run_methods` for a timm ViT through
  :class:`~dinosal.features.LastBlockTap`, :func:`run_pixel_methods` for the
  raw-pixel baseline, whose "features" are each patch's normalised RGB values);
* :func:`score`: the scalar scores of one image (CorLoc hits, mask IoUs,
  mass on the objects, pointing game);
* :func:`region_rows`: long-format rows ``(map, region, share, area)`` of the
  mass of each map inside the objects and inside each background part;
* :func:`pooled_ratio`: share over area pooled over images (the ratio of the
  means, which stays finite for parts that are small or often absent);
* :func:`centre_box_hits`: the centred-box baseline;
* :func:`resize_short_side`: a real frame and its boxes brought to a given
  short side (and both sides to multiples of the patch).

Conventions: images ``(H, W, 3)`` uint8, padded to a multiple of the patch
(LOST's choice) so grid maps are upsampled by the patch and cropped to
``(H, W)`` before they are compared with pixel masks; boxes xyxy pixels with
an exclusive max.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np
import torch

from .data.synthetic import Sample, object_mask, part_masks
from .features import LastBlockTap, to_batch
from .metrics import box_iou, mask_iou, mass_share, pointing_game
from .saliency.attention import AttentionMaps, cls_attention
from .saliency.grid import upsample
from .saliency.lost import LostResult, lost
from .saliency.tokencut import TokenCutResult, tokencut

__all__ = [
    "GroundTruth",
    "truth_of",
    "truth_from_boxes",
    "MethodMaps",
    "run_methods",
    "pixel_features",
    "run_pixel_methods",
    "score",
    "MAPS",
    "region_rows",
    "pooled_ratio",
    "centre_box_hits",
    "resize_short_side",
]

OBJECTS = "objects"
"""Region name of the union of the object masks in :func:`region_rows`."""


@dataclass(frozen=True)
class GroundTruth:
    """What is where in one image.

    boxes: (n, 4) float xyxy px, exclusive max (n >= 1 for CorLoc)
    objects: (H, W) bool, union of the object masks
    parts: background part name -> (H, W) bool (empty for box-only data)
    """

    boxes: np.ndarray
    objects: np.ndarray
    parts: Mapping[str, np.ndarray]


def truth_of(sample: Sample) -> GroundTruth:
    """The ground truth of a synthetic sample; ``parts`` holds every background
    part of the generator (absent parts as all-False masks), so rows of
    :func:`region_rows` line up across images."""
    present = part_masks(sample)
    empty = np.zeros(sample.semantic.shape, dtype=bool)
    parts = {name: present.get(name, empty) for name in sample.part_names}
    return GroundTruth(np.asarray(sample.boxes, dtype=np.float64), object_mask(sample), parts)


def truth_from_boxes(image_shape: Sequence[int], boxes) -> GroundTruth:
    """Ground truth of box-only data: objects = union of the (integer-rounded) boxes, no parts."""
    h, w = int(image_shape[0]), int(image_shape[1])
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    objects = np.zeros((h, w), dtype=bool)
    for x1, y1, x2, y2 in np.round(b).astype(int):
        objects[max(y1, 0):min(y2, h), max(x1, 0):min(x2, w)] = True
    return GroundTruth(b, objects, {})


@dataclass(frozen=True)
class MethodMaps:
    """The methods' results on one image.

    attention: CLS attention per head and mean (None for the pixel baseline)
    lost: LOST on the keys (or pixels); tokencut: TokenCut on the same features
    patch: p; image_size: (H, W) of the unpadded image
    """

    attention: Optional[AttentionMaps]
    lost: LostResult
    tokencut: TokenCutResult
    patch: int
    image_size: tuple[int, int]

    def to_pixels(self, grid_map) -> np.ndarray:
        """A (rows, cols) map upsampled by the patch and cropped to (H, W)."""
        h, w = self.image_size
        return upsample(np.asarray(grid_map), self.patch)[:h, :w]


def _one(feats, grid, patch, size, k, tau, attention) -> MethodMaps:
    n = grid[0] * grid[1]
    return MethodMaps(
        attention=attention,
        lost=lost(feats, grid, patch, size, k=min(int(k), n)),
        tokencut=tokencut(feats, grid, patch, size, tau=tau),
        patch=int(patch),
        image_size=tuple(int(s) for s in size),
    )


def run_methods(model: torch.nn.Module, images: Sequence[np.ndarray], k: int = 100, tau: float = 0.2,
                batch: int = 32) -> list[MethodMaps]:
    """CLS attention, LOST and TokenCut on the last block's keys, per image.

    model: a timm ViT (``dynamic_img_size=True`` for sizes other than its own).
    images: (H, W, 3) uint8 arrays; one size per batch of ``batch`` images.
    k: LOST's lowest-degree patches, clamped to the number of patches.
    tau: TokenCut's graph threshold (eps = 1e-5, the official value).
    """
    if len(images) == 0:
        raise ValueError("images is empty")
    out = []
    with LastBlockTap(model) as tap:
        for lo in range(0, len(images), batch):
            f = tap(to_batch(list(images[lo: lo + batch])))
            keys = f.patches("k")
            for j in range(len(keys)):
                att = cls_attention(f.attn[j], f.grid) if f.attn is not None else None
                out.append(_one(keys[j], f.grid, f.patch_size, f.image_size, k, tau, att))
    return out


def pixel_features(image: np.ndarray, patch: int, centred: bool = False) -> tuple[torch.Tensor, tuple[int, int]]:
    """Raw-pixel "features": ``((N, 3*p*p) tensor, (rows, cols))``.

    Each patch's ImageNet-normalised RGB values (channel-major), after
    zero-padding to a multiple of the patch as for the network;
    ``centred=True`` subtracts the image's mean feature, so that dot products
    can be negative (LOST's degree counts positive ones). An image smaller
    than one patch per side, or of fewer than 2 patches, raises ``ValueError``
    naming its size, the patch and the minimum.
    """
    p = int(patch)
    x = to_batch(image)
    h, w = x.shape[-2:]
    if p < 1 or h < p or w < p or -(-h // p) * -(-w // p) < 2:
        raise ValueError(f"image of (H, W) = ({h}, {w}) px is too small for the pixel baseline with patch {p}: "
                         f"it needs at least one patch per side and 2 patches in all (at least {p} x {2 * p} "
                         f"or {2 * p} x {p} px)")
    x = torch.nn.functional.pad(x, (0, -w % p, 0, -h % p))
    grid = (x.shape[-2] // p, x.shape[-1] // p)
    f = torch.nn.functional.unfold(x, kernel_size=p, stride=p)[0].T  # (N, 3pp), row-major patches
    if centred:
        f = f - f.mean(0, keepdim=True)
    return f, grid


def run_pixel_methods(images: Sequence[np.ndarray], patch: int, k: int = 100, tau: float = 0.2,
                      centred: bool = False) -> list[MethodMaps]:
    """LOST and TokenCut on :func:`pixel_features` (the no-learning baseline)."""
    out = []
    for im in images:
        f, grid = pixel_features(im, patch, centred)
        out.append(_one(f, grid, patch, im.shape[:2], k, tau, None))
    return out


def _hit(box, gt_boxes, thr: float = 0.5) -> float:
    return float(box_iou(box, gt_boxes).max() >= thr)


def score(m: MethodMaps, truth: GroundTruth) -> dict[str, float]:
    """Scalar scores of one image (1.0/0.0 for hits, NaN where undefined).

    lost_hit, tokencut_hit: box IoU >= 0.5 with any GT box (CorLoc per image)
    lost_mask_iou, tokencut_mask_iou: IoU of the method's mask (upsampled) with
        the object mask
    seed_on_object: LOST's seed (top-left pixel of its patch) on an object
    degree_ratio: share of the inverse-degree map's mass on the objects / the
        objects' area share
    attention_share, attention_ratio: the same for the mean-head CLS attention
    pointing: the mean-head attention maximum on an object
    (:func:`~dinosal.metrics.pointing_game`); object_area: objects' area share
    """
    if len(truth.boxes) == 0:
        raise ValueError("truth has no boxes; drop images without objects first")
    obj = truth.objects
    if obj.shape != tuple(m.image_size):
        raise ValueError(f"truth.objects is {obj.shape}, the image is {m.image_size}")
    deg = m.to_pixels(m.lost.inverse_degree)
    out = {
        "lost_hit": _hit(m.lost.box, truth.boxes),
        "tokencut_hit": _hit(m.tokencut.box, truth.boxes),
        "lost_mask_iou": mask_iou(m.to_pixels(m.lost.mask), obj),
        "tokencut_mask_iou": mask_iou(m.to_pixels(m.tokencut.mask), obj),
        "seed_on_object": float(pointing_game(deg, obj)),
        "degree_ratio": mass_share(deg, {"o": obj})["o"].ratio,
        "object_area": float(obj.mean()),
    }
    nan = float("nan")
    if m.attention is not None:
        att = m.to_pixels(m.attention.mean)
        ms = mass_share(att, {"o": obj})["o"]
        out.update(attention_share=ms.share, attention_ratio=ms.ratio, pointing=float(pointing_game(att, obj)))
    else:
        out.update(attention_share=nan, attention_ratio=nan, pointing=nan)
    return out


MAPS = ("attention", "inverse degree", "LOST mask", "TokenCut mask")
"""The maps whose mass :func:`region_rows` splits over the regions."""


def region_rows(m: MethodMaps, truth: GroundTruth) -> list[dict]:
    """Rows ``{"map", "region", "share", "area"}`` for each map of :data:`MAPS`
    (attention only when present) and each region: ``"objects"`` and every
    background part of ``truth``. A binary mask's "share" is the fraction of
    its pixels inside the region."""
    maps = {
        "inverse degree": m.lost.inverse_degree,
        "LOST mask": m.lost.mask.astype(np.float64),
        "TokenCut mask": m.tokencut.mask.astype(np.float64),
    }
    if m.attention is not None:
        maps = {"attention": m.attention.mean, **maps}
    regions = {OBJECTS: truth.objects, **dict(truth.parts)}
    rows = []
    for name in MAPS:
        if name not in maps:
            continue
        shares = mass_share(m.to_pixels(maps[name]), regions)
        rows += [{"map": name, "region": r, "share": s.share, "area": s.area} for r, s in shares.items()]
    return rows


def pooled_ratio(share, area) -> float:
    """``mean(share) / mean(area)`` over images: how much more of the map's mass
    a region holds than its area (1 = as a uniform map). NaN if the region never appears."""
    a = float(np.mean(area))
    return float(np.mean(share)) / a if a > 0 else float("nan")


def centre_box_hits(truths: Sequence[GroundTruth], fraction: float) -> np.ndarray:
    """(n,) CorLoc hits of a centred box covering ``fraction`` of each side of the image."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    hits = []
    for t in truths:
        h, w = t.objects.shape
        box = np.array([w * (1 - fraction) / 2, h * (1 - fraction) / 2, w * (1 + fraction) / 2, h * (1 + fraction) / 2])
        hits.append(_hit(box, t.boxes))
    return np.asarray(hits)


def resize_short_side(image: np.ndarray, boxes, side: int, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize an (H, W, 3) uint8 image so its short side is about ``side`` px.

    Both sides are rounded to the nearest multiple of ``patch`` (at least one
    patch), so the image needs no padding; the image is resampled with
    Pillow's bicubic filter and the xyxy boxes (n, 4) are scaled per axis.
    Returns ``(image, boxes)`` with boxes as float64.
    """
    from PIL import Image

    img = np.asarray(image)
    if img.ndim != 3 or img.shape[-1] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
    if side < patch:
        raise ValueError(f"side ({side}) must be at least one patch ({patch})")
    h, w = img.shape[:2]
    scale = side / min(h, w)
    new_h = max(patch, round(h * scale / patch) * patch)
    new_w = max(patch, round(w * scale / patch) * patch)
    out = np.array(Image.fromarray(img).resize((new_w, new_h), Image.BICUBIC))  # a writable copy
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * np.array([new_w / w, new_h / h, new_w / w, new_h / h])
    return out, b
