"""How well a backbone localises objects: run the saliency methods, score one image, summarise a set.

The instrument of the saliency, training and theory chapters: the same code
measures a random-init network, a DINO model, a transferred classifier or a
raw-pixel baseline, so their numbers compare. One path, three steps:

1. **run** -- :func:`run_methods`: CLS attention, LOST and TokenCut of each
   image as a :class:`MethodMaps`. The backbone is a timm ViT (features: the
   last block's keys, through :class:`~dinosal.features.LastBlockTap`) or any
   object with a ``patch`` and a ``features(image)`` method, such as
   :class:`dinosal.baselines.PixelFeatures` (each patch's normalised RGB
   values; no attention);
2. **score one image** -- :func:`score` (CorLoc hits, mask IoUs, attention
   and inverse-degree mass on the objects, pointing game),
   :func:`head_ratios` (the same mass ratio per attention head) and
   :func:`region_rows` (mass inside the objects and inside each background
   part, long format);
3. **summarise a set** -- :func:`summarise` into :class:`LocalisationScores`,
   and :func:`pooled_ratio` for the region rows (share over area pooled over
   images); per part, for any map kind of :data:`MAP_KINDS`
   (:func:`kind_map`): :func:`part_scores_of` (relevance mass and rank
   accuracy, pointing game, mass ratio, overall activation, as
   :class:`dinosal.parts.PartScores`) and :func:`measurability_of` (the
   share of positive key dot products, :class:`dinosal.parts.Measurability`).

:func:`localisation_scores` is the three steps on synthetic samples, LOST
only (no TokenCut); the DINO chapters and the recipe benchmark report it.
:func:`resize_short_side` brings a real frame and its boxes to the size the
chapters score at.

Ground truth is a :class:`~dinosal.data.sample.GroundTruth`
(:func:`~dinosal.data.sample.truth_of` for a synthetic sample,
:func:`~dinosal.data.sample.truth_from_boxes` for box-only real data).

Conventions: images ``(H, W, 3)`` uint8, padded at the bottom/right to a
multiple of the patch (LOST's choice), so grid maps are upsampled by the
patch and cropped to ``(H, W)`` before they meet pixel masks; boxes are xyxy
pixels with an exclusive max; a hit is IoU >= 0.5 with any ground-truth box
(LOST's CorLoc). Empty inputs raise ``ValueError``; no score is silently NaN
except where the docstrings say so (a method that was not run, a backbone
without attention).
"""

from __future__ import annotations

import warnings

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from .data.sample import GroundTruth, Sample, truth_of
from .features import LastBlockTap, to_batch
from .metrics import box_iou, mask_iou, mass_share, pointing_game
from .parts import Measurability, PartScores, measurability, part_scores
from .parts import pooled_ratio as _pooled_ratio
from .saliency.attention import AttentionMaps, cls_attention
from .saliency.grid import upsample
from .saliency.lost import LostResult, lost
from .saliency.tokencut import DegenerateCutWarning, TokenCutResult, tokencut

__all__ = [
    "MethodMaps",
    "run_methods",
    "maps_of_features",
    "score",
    "head_ratios",
    "MAPS",
    "OBJECTS",
    "region_rows",
    "pooled_ratio",
    "MAP_KINDS",
    "kind_map",
    "part_scores_of",
    "measurability_of",
    "LocalisationScores",
    "summarise",
    "localisation_scores",
    "resize_short_side",
]

OBJECTS = "objects"
"""Region name of the union of the object masks in :func:`region_rows`."""

MAPS = ("attention", "inverse degree", "LOST mask", "TokenCut mask")
"""The maps whose mass :func:`region_rows` splits over the regions."""


# ---------------------------------------------------------------- 1. run


@dataclass(frozen=True)
class MethodMaps:
    """The methods' results on one image.

    attention: CLS attention per head and mean (None for a backbone without
        attention, such as the pixel baseline)
    lost: LOST on the features; tokencut: TokenCut on the same features (None
        when it was not run, ``tau=None``)
    patch: p; image_size: (H, W) of the unpadded image
    """

    attention: Optional[AttentionMaps]
    lost: LostResult
    tokencut: Optional[TokenCutResult]
    patch: int
    image_size: tuple[int, int]

    def to_pixels(self, grid_map) -> np.ndarray:
        """A ``(rows, cols)`` (or ``(..., rows, cols)``) map upsampled by the patch and cropped to (H, W)."""
        h, w = self.image_size
        return upsample(np.asarray(grid_map), self.patch)[..., :h, :w]


def maps_of_features(feats, grid: tuple[int, int], patch: int, image_size: Sequence[int], k: int = 100,
                     tau: Optional[float] = 0.2, attention: Optional[AttentionMaps] = None) -> MethodMaps:
    """LOST and TokenCut on one image's ``(N, D)`` patch features (row-major ``grid``).

    k: LOST's lowest-degree patches, clamped to ``N``; tau: TokenCut's graph
    threshold (eps = 1e-5, the official value), or None to skip TokenCut.
    ``attention`` is stored as given. A degenerate TokenCut graph (no unique
    Fiedler vector) raises no warning here: ``tokencut.degenerate`` says so,
    and :func:`score` reports it as ``tokencut_degenerate``.
    """
    n = grid[0] * grid[1]
    cut = None
    if tau is not None:
        with warnings.catch_warnings():  # the result carries the flag; score() reports it per image
            warnings.simplefilter("ignore", DegenerateCutWarning)
            cut = tokencut(feats, grid, patch, image_size, tau=tau)
    return MethodMaps(
        attention=attention,
        lost=lost(feats, grid, patch, image_size, k=min(int(k), n)),
        tokencut=cut,
        patch=int(patch),
        image_size=tuple(int(s) for s in image_size),
    )


def _too_few(which: str, size, patch: int, n: int) -> ValueError:
    h, w = size
    return ValueError(f"{which}: an image of (H, W) = ({h}, {w}) px with patch {patch} gives {n} patch; "
                      f"LOST needs at least 2 (e.g. {patch} x {2 * patch} px)")


def _run_vit(model, images, k, tau, batch, what) -> list[MethodMaps]:
    out = []
    with LastBlockTap(model) as tap:
        for lo in range(0, len(images), batch):
            f = tap(to_batch(list(images[lo: lo + batch])))
            if f.grid[0] * f.grid[1] < 2:
                raise _too_few(f"{what}[{lo}]", f.image_size, f.patch_size, f.grid[0] * f.grid[1])
            keys = f.patches("k")
            for j in range(len(keys)):
                att = cls_attention(f.attn[j], f.grid) if f.attn is not None else None
                out.append(maps_of_features(keys[j], f.grid, f.patch_size, f.image_size, k, tau, att))
    return out


def _run_features(backbone, images, k, tau, what) -> list[MethodMaps]:
    out = []
    for i, im in enumerate(images):
        try:
            feats, grid = backbone.features(im)
        except ValueError as err:
            raise ValueError(f"{what}[{i}]: {err}") from None
        out.append(maps_of_features(feats, grid, backbone.patch, np.shape(im)[:2], k, tau))
    return out


def _run(backbone, images, k, tau, batch, what) -> list[MethodMaps]:
    if len(images) == 0:
        raise ValueError(f"{what} is empty")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if isinstance(backbone, torch.nn.Module):
        return _run_vit(backbone, images, k, tau, batch, what)
    if hasattr(backbone, "features") and hasattr(backbone, "patch"):
        return _run_features(backbone, images, k, tau, what)
    raise TypeError(f"backbone must be a timm ViT or have .patch and .features(image) "
                    f"(e.g. dinosal.baselines.PixelFeatures), got {type(backbone).__name__}")


def run_methods(backbone, images: Sequence[np.ndarray], k: int = 100, tau: Optional[float] = 0.2,
                batch: int = 32) -> list[MethodMaps]:
    """CLS attention, LOST and TokenCut of each image, in order.

    backbone: a timm ViT (``dynamic_img_size=True`` for sizes other than its
        own): the methods run on the last block's keys and the CLS attention
        is kept (None for a ViT without CLS token); or an object with
        ``patch`` (int) and ``features(image) -> ((N, D) features, (rows,
        cols))``, such as :class:`dinosal.baselines.PixelFeatures` (no attention).
    images: (H, W, 3) uint8 arrays; a ViT takes ``batch`` images at a time,
        which must share one size.
    k: LOST's lowest-degree patches, clamped to the number of patches.
    tau: TokenCut's graph threshold, or None to skip TokenCut (it costs an
        eigenvector per image).
    Raises ``ValueError`` for no images or an image of fewer than 2 patches
    (named ``images[i]``).
    """
    return _run(backbone, images, k, tau, batch, "images")


# ---------------------------------------------------------------- 2. score one image


def _hit(box, gt_boxes, thr: float = 0.5) -> float:
    return float(box_iou(box, gt_boxes).max() >= thr)


def _check_truth(m: MethodMaps, truth: GroundTruth) -> None:
    if len(truth.boxes) == 0:
        raise ValueError("truth has no boxes; drop images without objects first")
    if truth.objects.shape != tuple(m.image_size):
        raise ValueError(f"truth.objects is {truth.objects.shape}, the image is {m.image_size}")


def score(m: MethodMaps, truth: GroundTruth) -> dict[str, float]:
    """Scalar scores of one image: 1.0/0.0 for hits, NaN where undefined.

    lost_hit, tokencut_hit: box IoU >= 0.5 with any GT box (CorLoc per image)
    lost_mask_iou, tokencut_mask_iou: IoU of the method's mask (upsampled) with
        the object mask
    tokencut_degenerate: 1.0 when TokenCut's Fiedler vector was not unique
        (its box is then the documented canonical choice, not a finding)
    seed_on_object: LOST's seed (top-left pixel of its patch) on an object
    degree_ratio: share of the inverse-degree map's mass on the objects / the
        objects' area share (1 = no preference)
    attention_share, attention_ratio: the same for the mean-head CLS attention
    pointing: the mean-head attention maximum on an object
        (:func:`~dinosal.metrics.pointing_game`)
    object_area: objects' share of the image

    TokenCut's scores are NaN when it was not run, the attention's when the
    backbone has none. Raises ``ValueError`` for a truth without boxes or of
    another size than the image.
    """
    _check_truth(m, truth)
    obj = truth.objects
    nan = float("nan")
    deg = m.to_pixels(m.lost.inverse_degree)
    out = {
        "lost_hit": _hit(m.lost.box, truth.boxes),
        "tokencut_hit": _hit(m.tokencut.box, truth.boxes) if m.tokencut is not None else nan,
        "lost_mask_iou": mask_iou(m.to_pixels(m.lost.mask), obj),
        "tokencut_mask_iou": mask_iou(m.to_pixels(m.tokencut.mask), obj) if m.tokencut is not None else nan,
        "tokencut_degenerate": float(m.tokencut.degenerate) if m.tokencut is not None else nan,
        "seed_on_object": float(pointing_game(deg, obj)),
        "degree_ratio": mass_share(deg, {"o": obj})["o"].ratio,
        "object_area": float(obj.mean()),
    }
    if m.attention is not None:
        att = m.to_pixels(m.attention.mean)
        ms = mass_share(att, {"o": obj})["o"]
        out.update(attention_share=ms.share, attention_ratio=ms.ratio, pointing=float(pointing_game(att, obj)))
    else:
        out.update(attention_share=nan, attention_ratio=nan, pointing=nan)
    return out


def head_ratios(m: MethodMaps, truth: GroundTruth) -> np.ndarray:
    """``(heads,)`` float: each head's CLS-attention share on the objects / their
    area share (NaN for a head without mass); ``(0,)`` without attention."""
    _check_truth(m, truth)
    if m.attention is None:
        return np.zeros(0)
    heads = m.to_pixels(m.attention.heads)                        # (heads, H, W)
    masks = np.broadcast_to(truth.objects, heads.shape)
    return np.asarray(mass_share(heads, {"o": masks})["o"].ratio, dtype=np.float64).reshape(-1)


def region_rows(m: MethodMaps, truth: GroundTruth) -> list[dict]:
    """Rows ``{"map", "region", "share", "area"}`` for each map of :data:`MAPS`
    (attention and TokenCut only when present) and each region: ``"objects"``
    and every background part of ``truth``. A binary mask's "share" is the
    fraction of its pixels inside the region."""
    maps = {"inverse degree": m.lost.inverse_degree, "LOST mask": m.lost.mask.astype(np.float64)}
    if m.tokencut is not None:
        maps["TokenCut mask"] = m.tokencut.mask.astype(np.float64)
    if m.attention is not None:
        maps["attention"] = m.attention.mean
    regions = {OBJECTS: truth.objects, **dict(truth.parts)}
    rows = []
    for name in MAPS:
        if name not in maps:
            continue
        shares = mass_share(m.to_pixels(maps[name]), regions)
        rows += [{"map": name, "region": r, "share": s.share, "area": s.area} for r, s in shares.items()]
    return rows


# ---------------------------------------------------------------- 3. summarise a set


def pooled_ratio(share, area) -> float:
    """``mean(share) / mean(area)`` over images: how much more of the map's mass
    a region holds than its area (1 = as a uniform map). NaN if the region never appears.
    One implementation: :func:`dinosal.parts.pooled_ratio` (``ValueError`` for no images or
    lengths that disagree)."""
    return _pooled_ratio(np.asarray(share, dtype=np.float64).reshape(-1), np.asarray(area, dtype=np.float64).reshape(-1))


MAP_KINDS = ("inverse degree", "correlation", "LOST mask", "composite", "attention", "attention head",
             "TokenCut", "TokenCut mask")
"""The map kinds of a :class:`MethodMaps` that :func:`kind_map` returns (class maps come from
:mod:`dinosal.saliency.classmaps` and go to :func:`dinosal.parts.part_scores` directly).
"correlation" (LOST's summed similarities) and "TokenCut" (the Fiedler vector) take both signs:
score them with ``transform="clip"`` or ``"minmax"``."""


def kind_map(m: MethodMaps, kind: str, head: Optional[int] = None) -> np.ndarray:
    """One map of ``m`` as an (H, W) float64 pixel map (upsampled by the patch, cropped).

    kind: one of :data:`MAP_KINDS`: the LOST inverse degree ``1 / (deg + 1)``, its correlation
    ``M``, its region (``LOST mask``, the correlation region, 0/1), the composite (inverse degree
    inside the region), the mean-head CLS attention, one head's attention (``head``: its index,
    chosen on the validation split), TokenCut's eigenvector and its mask (0/1).
    Raises ``ValueError`` for an unknown kind, a kind that was not run (no attention, no
    TokenCut) or a missing/out-of-range ``head``.
    """
    if kind not in MAP_KINDS:
        raise ValueError(f"kind must be one of {MAP_KINDS}, got {kind!r}")
    if kind.startswith("attention") and m.attention is None:
        raise ValueError(f"kind {kind!r}: this backbone has no attention")
    if kind.startswith("TokenCut") and m.tokencut is None:
        raise ValueError(f"kind {kind!r}: TokenCut was not run (tau=None)")
    if kind == "attention head":
        if head is None or not 0 <= int(head) < m.attention.num_heads:
            raise ValueError(f"head must be an index in [0, {m.attention.num_heads}) for kind 'attention head', "
                             f"got {head!r}")
    grid = {
        "inverse degree": lambda: m.lost.inverse_degree,
        "correlation": lambda: m.lost.correlation,
        "LOST mask": lambda: m.lost.mask,
        "composite": lambda: m.lost.composite,
        "attention": lambda: m.attention.mean,
        "attention head": lambda: m.attention.heads[int(head)],
        "TokenCut": lambda: m.tokencut.eigvec,
        "TokenCut mask": lambda: m.tokencut.mask,
    }[kind]()
    return m.to_pixels(np.asarray(grid, dtype=np.float64))


def part_scores_of(maps: Sequence[MethodMaps], truths: Sequence, kind: str, head: Optional[int] = None,
                   parts: Optional[Sequence[str]] = None, transform: str = "none", rank_ties: str = "share",
                   point_ties: str = "any") -> PartScores:
    """Per-part scores of one map kind on a set: :func:`kind_map` of each image, then
    :func:`dinosal.parts.part_scores` (see it for ``truths``, ``parts``, ``transform`` and the tie
    rules; :func:`dinosal.transfer_sets.scene_truth` gives the pre-registered parts). ``maps`` and
    ``truths`` pair up by position. Raises ``ValueError`` for no images or lengths that disagree."""
    if len(maps) == 0:
        raise ValueError("maps is empty")
    if len(maps) != len(truths):
        raise ValueError(f"maps has {len(maps)} images but truths has {len(truths)}")
    return part_scores([kind_map(m, kind, head) for m in maps], truths, parts, transform, rank_ties, point_ties)


def measurability_of(maps: Sequence[MethodMaps], threshold: Optional[float] = None) -> Measurability:
    """The pre-registered measurability check of one model from its LOST degrees on a set
    (:func:`dinosal.parts.measurability`; ``threshold`` None: 0.95)."""
    if len(maps) == 0:
        raise ValueError("maps is empty")
    kw = {} if threshold is None else {"threshold": threshold}
    return measurability(degrees=[m.lost.degree for m in maps], **kw)


@dataclass(frozen=True)
class LocalisationScores:
    """Localisation of one backbone on ``n`` images.

    corloc: fraction of images whose LOST box (last-block keys) has IoU >= 0.5
        with a ground-truth box
    attn_ratio: mean over images of (share of the mean-head CLS attention on
        the objects) / (objects' share of the image); 1 = no preference
    attn_ratio_best_head: the same ratio per head (each head's map on its
        own), averaged over images; the largest over heads
    best_head: index of that head (-1 without attention)
    pointing: fraction of images whose mean-head attention maximum lies on an object
    object_area: mean fraction of the image covered by objects
    n: number of images

    The attention fields are NaN for a backbone without attention.
    """

    corloc: float
    attn_ratio: float
    attn_ratio_best_head: float
    best_head: int
    pointing: float
    object_area: float
    n: int


def _nanmean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


def summarise(maps: Sequence[MethodMaps], truths: Sequence[GroundTruth]) -> LocalisationScores:
    """:class:`LocalisationScores` of a set: :func:`score` and :func:`head_ratios`
    per image, then means over images (NaN ratios of images without attention
    mass are skipped). ``maps`` and ``truths`` pair up by position."""
    if len(maps) == 0:
        raise ValueError("maps is empty")
    if len(maps) != len(truths):
        raise ValueError(f"maps has {len(maps)} images but truths has {len(truths)}")
    scores = [score(m, t) for m, t in zip(maps, truths)]
    col = {k: np.array([s[k] for s in scores]) for k in ("lost_hit", "attention_ratio", "pointing", "object_area")}
    per_head = [head_ratios(m, t) for m, t in zip(maps, truths)]
    best, best_head = float("nan"), -1
    if all(len(h) for h in per_head) and len({len(h) for h in per_head}) == 1:
        head_means = np.array([_nanmean(c) for c in np.stack(per_head).T])
        if np.isfinite(head_means).any():
            best, best_head = float(np.nanmax(head_means)), int(np.nanargmax(head_means))
    return LocalisationScores(
        corloc=float(col["lost_hit"].mean()),
        attn_ratio=_nanmean(col["attention_ratio"]),
        attn_ratio_best_head=best,
        best_head=best_head,
        pointing=_nanmean(col["pointing"]),
        object_area=float(col["object_area"].mean()),
        n=len(maps),
    )


def localisation_scores(model: torch.nn.Module, samples: Sequence[Sample], k: int = 100,
                        batch: int = 32) -> LocalisationScores:
    """LOST CorLoc, CLS-attention mass ratios and pointing game of ``model`` on ``samples``.

    ``summarise(run_methods(model, images, k, tau=None, batch), [truth_of(s) for s in samples])``
    (TokenCut is not run), with the inputs checked first.

    model: a timm ViT with a CLS token (see :class:`~dinosal.features.LastBlockTap`).
    samples: :class:`~dinosal.data.sample.Sample` objects with at least one
        object each, one image size per ``batch``.
    k: LOST's number of lowest-degree patches (clamped to the patch count).
    Raises ``TypeError`` for an item that is not a Sample and ``ValueError``
    for no samples, a sample without objects, images of fewer than 2 patches
    or a model without CLS token, each naming ``samples[i]`` where it can.
    """
    if len(samples) == 0:
        raise ValueError("samples is empty")
    for i, s in enumerate(samples):
        if not isinstance(s, Sample):
            raise TypeError(f"samples[{i}] must be a Sample, got {type(s).__name__}")
        if len(s.boxes) == 0:
            raise ValueError(f"samples[{i}] has no object; CorLoc and attention ratios need one")
    maps = _run(model, [s.image for s in samples], k, None, batch, "samples")
    if maps[0].attention is None:
        raise ValueError("model has no CLS token; CLS attention is undefined")
    return summarise(maps, [truth_of(s) for s in samples])


def resize_short_side(image: np.ndarray, boxes, side: int, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize an (H, W, 3) uint8 image so its short side is about ``side`` px.

    Both sides are rounded to the nearest multiple of ``patch`` (at least one
    patch), so the image needs no padding; the image is resampled with
    Pillow's bicubic filter and the xyxy boxes (n, 4) are scaled per axis.
    Returns ``(image, boxes)`` with boxes as float64. Raises ``ValueError``
    for an image that is not (H, W, 3) uint8 or a ``side`` under one patch.
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
