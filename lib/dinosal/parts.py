"""Per-part saliency scores of any map: how much of a map falls on each semantic part of a scene.

The scores of the findings chapter (book/preregistration.md), for every map
kind the book draws (inverse degree, LOST correlation and its region, the
composite, CLS attention, TokenCut, class maps): the map is one non-negative
number per pixel, a part is a boolean mask (``vehicles``, ``objects``,
``background``, ``lane_marking``, ``tree``, ...).

Per image and part (the field's names, as Quantus 0.6 computes them;
Hedström et al., 2023, JMLR 24(34)):

* :func:`relevance_mass_accuracy` -- the share of the map's mass inside the
  mask (Arras et al., 2022, CLEVR-XAI; Quantus ``RelevanceMassAccuracy``);
* :func:`relevance_rank_accuracy` -- the share of the ``|mask|`` highest
  pixels that lie in the mask (Arras et al., 2022; Quantus
  ``RelevanceRankAccuracy``);
* :func:`pointing_game_score` -- is the map's maximum on the mask (Zhang et
  al., 2018, "Top-down neural attention by excitation backprop"; Quantus
  ``PointingGame``).

Per image, whatever the part:

* :func:`overall_activation` -- the pre-registered OA: the mean of the map
  after min--max normalisation within the image.

Over a set of images (:func:`part_scores` into :class:`PartScores`): the
per-image scores above, their means over the images where the part is present,
and the pre-registered **relevance mass ratio** ``RM(part) = mean(share) /
mean(area)`` pooled over all images (:func:`pooled_ratio`).

Per model (:func:`positive_share`, :func:`measurability` into
:class:`Measurability`): the share ``q`` of positive off-diagonal key dot
products and the pre-registered verdict: ``q >`` :data:`MEASURABLE_MAX`
(0.95) means the degree map cannot separate parts ("not measurable").

Conventions: maps and masks are pixel arrays ``(H, W)`` or batches ``(B, H,
W)`` on one grid (upsample a ``(rows, cols)`` map by the patch and crop it to
the image first, :meth:`dinosal.localisation.MethodMaps.to_pixels`; for an
image whose sides are multiples of the patch, pixel means equal patch means).
A map with negative values (the LOST correlation, a TokenCut eigenvector) must
be given a ``transform`` (``"clip"``: its positive part; ``"minmax"``:
``(s - min) / (max - min)`` within the image, what a per-image normalised
figure shows); the default ``"none"`` refuses it. A part absent from an image
(an all-False mask) scores NaN for that image, as in Quantus, and adds zero
mass and zero area to the pooled ratio. Bad inputs raise ``ValueError``
naming the argument.

Floor 2, under :mod:`dinosal.localisation`, over :mod:`dinosal.saliency` and
:mod:`dinosal.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np

from .data.sample import GroundTruth
from .metrics import mass_share
from .saliency.lost import similarity_degree

__all__ = [
    "TRANSFORMS",
    "MEASURABLE_MAX",
    "prepare_map",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
    "pointing_game_score",
    "overall_activation",
    "pooled_ratio",
    "regions_of",
    "PartScores",
    "part_scores",
    "positive_share",
    "Measurability",
    "measurability",
]

TRANSFORMS = ("none", "clip", "minmax")
"""What :func:`prepare_map` does to a map before it is scored (see the module docstring)."""

MEASURABLE_MAX = 0.95
"""The pre-registered bound: a model whose share of positive key dot products exceeds it is "not measurable"."""

_RANK_TIES = ("share", "first")
_POINT_TIES = ("any", "share", "first")


# ---------------------------------------------------------------- inputs


def _as_map(saliency, name: str) -> np.ndarray:
    s = np.asarray(saliency, dtype=np.float64)
    if s.ndim not in (2, 3) or 0 in s.shape:
        raise ValueError(f"{name} must be a non-empty (H, W) or (B, H, W) map, got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError(f"{name} contains NaN/Inf")
    return s


def prepare_map(saliency, transform: str = "none", name: str = "saliency") -> np.ndarray:
    """A map as float64 ``(H, W)`` or ``(B, H, W)``, ready to score.

    transform: ``"none"`` (must already be >= 0), ``"clip"`` (``max(s, 0)``)
        or ``"minmax"`` (``(s - min) / (max - min)`` per image; a constant
        image becomes all zeros, a map of no mass).
    name: the argument named in errors.
    Raises ``ValueError`` for another shape, NaN/Inf, an unknown transform or
    negative values under ``"none"``.
    """
    s = _as_map(saliency, name)
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
    if transform == "clip":
        return np.maximum(s, 0.0)
    if transform == "minmax":
        lo = s.min(axis=(-2, -1), keepdims=True)
        span = s.max(axis=(-2, -1), keepdims=True) - lo
        return np.divide(s - lo, span, out=np.zeros_like(s), where=span > 0)
    if (s < 0).any():
        raise ValueError(f"{name} has negative values ({s.min():.4g}); pass transform='clip' or 'minmax'")
    return s


def _mask(mask, s: np.ndarray, name: str = "mask") -> np.ndarray:
    m = np.asarray(mask)
    if m.dtype != bool and not np.isin(m, (0, 1)).all():
        raise ValueError(f"{name} must be boolean (or 0/1), got values other than 0 and 1")
    m = m.astype(bool)
    if m.shape != s.shape:
        if m.ndim == 2 and s.ndim == 3 and m.shape == s.shape[1:]:
            return np.broadcast_to(m, s.shape)
        raise ValueError(f"{name} has shape {m.shape}, the map has {s.shape}")
    return m


def _out(x: np.ndarray, single: bool):
    return float(x[0]) if single else x


def _flat(saliency, mask, transform: str) -> tuple[np.ndarray, np.ndarray, bool]:
    s = prepare_map(saliency, transform)
    m = _mask(mask, s)
    b = 1 if s.ndim == 2 else len(s)
    return s.reshape(b, -1), m.reshape(b, -1), s.ndim == 2


# ---------------------------------------------------------------- per image and part


def relevance_mass_accuracy(saliency, mask, transform: str = "none"):
    """Relevance mass accuracy: the share of the map's mass inside the mask, in [0, 1].

    ``sum(s * mask) / sum(s)`` (Arras et al., 2022, CLEVR-XAI; Quantus'
    ``RelevanceMassAccuracy``, which agrees on maps >= 0: its default
    max-normalisation does not change the share). The ``share`` of
    :func:`dinosal.metrics.mass_share`, which computes it.

    saliency: (H, W) or (B, H, W) map (see :func:`prepare_map` for ``transform``).
    mask: bool of the same shape, or (H, W) for every map of a batch.
    Returns a float, or (B,) float64 for a batch; NaN for an empty mask or a
    map of zero mass.
    """
    s = prepare_map(saliency, transform)
    m = _mask(mask, s)
    share = np.asarray(mass_share(s, {"part": m})["part"].share, dtype=np.float64).reshape(-1)
    share[m.reshape(len(share), -1).sum(axis=1) == 0] = np.nan
    return _out(share, s.ndim == 2)


def relevance_rank_accuracy(saliency, mask, transform: str = "none", ties: str = "share"):
    """Relevance rank accuracy: of the ``K = |mask|`` highest pixels, the share inside the mask, in [0, 1].

    Arras et al., 2022 (CLEVR-XAI); Quantus' ``RelevanceRankAccuracy``, which
    agrees wherever the K-th and (K+1)-th values differ. Ties at the cut
    (common: a patch map upsampled to pixels repeats each value patch x patch
    times; an inverse-degree map takes few values) are broken by ``ties``:

    * ``"share"`` (default): the expected score when ties are broken at
      random: the pixels above the cut count fully, the ``r`` pixels needed
      from the tied group count by the group's share inside the mask;
    * ``"first"``: a stable sort, the lower row-major index first
      (deterministic, but it favours the top of the image).

    Quantus sorts with ``np.argsort(-a)``, whose order among ties is not
    specified. saliency, mask, transform: as :func:`relevance_mass_accuracy`.
    Returns a float, or (B,) float64; NaN for an empty mask.
    """
    if ties not in _RANK_TIES:
        raise ValueError(f"ties must be one of {_RANK_TIES}, got {ties!r}")
    s, m, single = _flat(saliency, mask, transform)
    out = np.full(len(s), np.nan)
    for i in range(len(s)):
        k = int(m[i].sum())
        if k == 0:
            continue
        if ties == "first":
            top = np.argsort(-s[i], kind="stable")[:k]
            out[i] = m[i, top].mean()
            continue
        cut = np.sort(s[i])[::-1][k - 1]
        above, tied = s[i] > cut, s[i] == cut
        need = k - int(above.sum())
        out[i] = (m[i, above].sum() + need * m[i, tied].mean()) / k
    return _out(out, single)


def pointing_game_score(saliency, mask, transform: str = "none", ties: str = "any"):
    """Pointing game: is the map's maximum on the mask? 1.0 or 0.0 (a share for ``ties="share"``).

    Zhang et al., 2018 ("Top-down neural attention by excitation backprop",
    IJCV); Quantus' ``PointingGame`` (``weighted=False``). When several pixels
    share the maximum (every pixel of an upsampled patch does), ``ties``:

    * ``"any"`` (default, Quantus): a hit if any maximal pixel is on the mask;
      a constant map then hits every present part, so read it beside
      ``"share"``;
    * ``"share"``: the share of the maximal pixels on the mask (the hit rate
      when ties are broken at random);
    * ``"first"``: the first maximum in row-major order, as
      :func:`dinosal.metrics.pointing_game` with tolerance 0.

    saliency, mask, transform: as :func:`relevance_mass_accuracy`. Returns a
    float, or (B,) float64; NaN for an empty mask.
    """
    if ties not in _POINT_TIES:
        raise ValueError(f"ties must be one of {_POINT_TIES}, got {ties!r}")
    s, m, single = _flat(saliency, mask, transform)
    top = s == s.max(axis=1, keepdims=True)
    if ties == "any":
        out = (top & m).any(axis=1).astype(np.float64)
    elif ties == "share":
        out = (top & m).sum(axis=1) / top.sum(axis=1)
    else:
        out = m[np.arange(len(s)), np.argmax(s, axis=1)].astype(np.float64)
    out[m.sum(axis=1) == 0] = np.nan
    return _out(out, single)


def overall_activation(saliency):
    """The pre-registered overall activation OA of one map: ``mean((s - min) / (max - min))``, in [0, 1].

    What a per-image normalised figure shows: 1 is a map that is bright
    everywhere, near 0 one bright spot. saliency: (H, W) or (B, H, W), any
    sign (the min--max normalisation is part of the definition). Returns a
    float, or (B,) float64; NaN for a constant map (no contrast to
    normalise). Pooled over images the pre-registration takes the mean over
    images (:attr:`PartScores.overall_activation`).
    """
    s = _as_map(saliency, "saliency")
    flat = s.reshape(1 if s.ndim == 2 else len(s), -1)
    lo, hi = flat.min(axis=1, keepdims=True), flat.max(axis=1, keepdims=True)
    span = hi - lo
    out = np.divide(flat - lo, span, out=np.zeros_like(flat), where=span > 0).mean(axis=1)
    out[span[:, 0] == 0] = np.nan
    return _out(out, s.ndim == 2)


def pooled_ratio(share, area, axis: int = 0):
    """The pre-registered relevance mass ratio: ``mean(share) / mean(area)`` over images.

    share, area: per-image mass shares and area shares of one part (or (n, P)
    arrays of P parts, images along ``axis``). Above 1 the map favours the
    part; 1 is a uniform map. NaN where the part never appears (mean area 0)
    or a share is NaN (a map of zero mass). Used by
    :func:`dinosal.localisation.pooled_ratio`.
    """
    sh = np.asarray(share, dtype=np.float64)
    ar = np.asarray(area, dtype=np.float64)
    if sh.shape != ar.shape or sh.size == 0:
        raise ValueError(f"share and area must share a non-empty shape, got {sh.shape} and {ar.shape}")
    a = ar.mean(axis=axis)
    r = np.divide(sh.mean(axis=axis), a, out=np.full(np.shape(a), np.nan), where=a > 0)
    return float(r) if np.ndim(r) == 0 else r


# ---------------------------------------------------------------- a set of images


def regions_of(truth) -> dict[str, np.ndarray]:
    """The named part masks of one image: a :class:`~dinosal.data.sample.GroundTruth` gives
    ``{"objects": objects, **parts}`` (with :func:`dinosal.transfer_sets.scene_truth`: also
    ``vehicles`` and ``background``); a mapping ``{name: (H, W) bool}`` is taken as it is."""
    if isinstance(truth, GroundTruth):
        return {"objects": np.asarray(truth.objects, dtype=bool), **dict(truth.parts)}
    if isinstance(truth, Mapping):
        return dict(truth)
    raise TypeError(f"truth must be a GroundTruth or a mapping of part masks, got {type(truth).__name__}")


@dataclass(frozen=True)
class PartScores:
    """Per-part scores of one map kind on ``n`` images and ``P`` parts.

    parts: the P part names, the columns of the (n, P) arrays
    share: (n, P) share of the map's mass inside the part
        (:func:`relevance_mass_accuracy`, but 0.0 where the part is absent;
        NaN for a map of zero mass)
    area: (n, P) share of the image's pixels inside the part
    rma: (n, P) relevance mass accuracy, NaN where the part is absent
    rra: (n, P) relevance rank accuracy (ties: ``rank_ties``), NaN where absent
    pointing: (n, P) pointing game (ties: ``point_ties``), NaN where absent
    oa: (n,) overall activation of each map as scored (NaN for a constant map)
    transform, rank_ties, point_ties: the options the scores were computed with

    Pooled: :attr:`ratio` (the pre-registered RM per part), :attr:`overall_activation`,
    :meth:`pooled` and :meth:`rows` (one dict per part).
    """

    parts: tuple[str, ...]
    share: np.ndarray
    area: np.ndarray
    rma: np.ndarray
    rra: np.ndarray
    pointing: np.ndarray
    oa: np.ndarray
    transform: str = "none"
    rank_ties: str = "share"
    point_ties: str = "any"

    @property
    def n(self) -> int:
        """Number of images."""
        return int(self.area.shape[0])

    @property
    def ratio(self) -> np.ndarray:
        """(P,) relevance mass ratio RM: ``mean(share) / mean(area)`` over all images (:func:`pooled_ratio`)."""
        return np.atleast_1d(pooled_ratio(self.share, self.area))

    @property
    def overall_activation(self) -> float:
        """Mean of :attr:`oa` over the images where it is defined (NaN if none is)."""
        return _nanmean(self.oa)

    def pooled(self, part: str) -> dict[str, float]:
        """The pooled scores of one part: ``ratio`` (RM), ``rma``, ``rra`` and ``pointing`` (means over
        the images where the part is present), ``area`` (mean area share) and ``present`` (images)."""
        if part not in self.parts:
            raise ValueError(f"part {part!r} was not scored; scored: {', '.join(self.parts)}")
        j = self.parts.index(part)
        return {"ratio": float(self.ratio[j]), "rma": _nanmean(self.rma[:, j]), "rra": _nanmean(self.rra[:, j]),
                "pointing": _nanmean(self.pointing[:, j]), "area": float(self.area[:, j].mean()),
                "present": int((self.area[:, j] > 0).sum())}

    def rows(self) -> list[dict]:
        """One row per part: ``{"part", **pooled(part), "n", "overall_activation"}`` (long format)."""
        oa = self.overall_activation
        return [{"part": p, **self.pooled(p), "n": self.n, "overall_activation": oa} for p in self.parts]


def _nanmean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


def _image_scores(s: np.ndarray, regions: dict, parts: Sequence[str], i: int, rank_ties: str, point_ties: str):
    masks = {}
    for p in parts:
        if p not in regions:
            raise ValueError(f"truths[{i}] has no part {p!r}; it has: {', '.join(regions)}")
        masks[p] = _mask(regions[p], s, f"truths[{i}][{p!r}]")
    ms = mass_share(s, masks)
    share = np.array([ms[p].share for p in parts], dtype=np.float64)
    area = np.array([ms[p].area for p in parts], dtype=np.float64)
    rma = np.where(area > 0, share, np.nan)
    rra = np.array([relevance_rank_accuracy(s, masks[p], ties=rank_ties) for p in parts])
    point = np.array([pointing_game_score(s, masks[p], ties=point_ties) for p in parts])
    return share, area, rma, rra, point


def part_scores(maps: Sequence, truths: Sequence, parts: Optional[Sequence[str]] = None, transform: str = "none",
                rank_ties: str = "share", point_ties: str = "any") -> PartScores:
    """Score one map kind on a set of images, per part: :class:`PartScores`.

    maps: one pixel map per image, each (H_i, W_i) (sizes may differ between
        images), or a (B, H, W) array.
    truths: per image a :class:`~dinosal.data.sample.GroundTruth` or a
        mapping ``{part: (H_i, W_i) bool}`` (:func:`regions_of`); paired with
        ``maps`` by position.
    parts: the parts to score, each present as a key of every truth (an absent
        part is an all-False mask); default: the first truth's names, in order.
    transform: see :func:`prepare_map`; rank_ties: see
        :func:`relevance_rank_accuracy`; point_ties: see :func:`pointing_game_score`.
    Raises ``ValueError`` for no images, lengths that disagree, a missing
    part or a mask of another shape (naming ``maps[i]`` or ``truths[i][part]``).
    """
    if len(maps) == 0:
        raise ValueError("maps is empty")
    if len(maps) != len(truths):
        raise ValueError(f"maps has {len(maps)} images but truths has {len(truths)}")
    if rank_ties not in _RANK_TIES:
        raise ValueError(f"rank_ties must be one of {_RANK_TIES}, got {rank_ties!r}")
    if point_ties not in _POINT_TIES:
        raise ValueError(f"point_ties must be one of {_POINT_TIES}, got {point_ties!r}")
    names = tuple(parts) if parts is not None else tuple(regions_of(truths[0]))
    if not names:
        raise ValueError("parts is empty")
    cols: list[list] = [[], [], [], [], []]
    oa = []
    for i, (m, t) in enumerate(zip(maps, truths)):
        s = prepare_map(m, transform, f"maps[{i}]")
        if s.ndim != 2:
            raise ValueError(f"maps[{i}] must be one (H, W) map, got shape {s.shape}")
        for col, v in zip(cols, _image_scores(s, regions_of(t), names, i, rank_ties, point_ties)):
            col.append(v)
        oa.append(overall_activation(s))
    share, area, rma, rra, point = (np.stack(c) for c in cols)
    return PartScores(names, share, area, rma, rra, point, np.asarray(oa, dtype=np.float64),
                      transform, rank_ties, point_ties)


# ---------------------------------------------------------------- per model: measurability


def positive_share(keys=None, degree=None) -> float:
    """The share of positive off-diagonal key dot products of one image, in [0, 1].

    ``#{(i, j), i != j : k_i . k_j > 0} / (N (N - 1))`` = ``sum(degree) / (N (N - 1))``
    with LOST's degree (:func:`dinosal.saliency.lost.similarity_degree`).
    Give exactly one of keys: (N, D) patch keys (tensor or array, finite);
    degree: (rows, cols) or (N,) integer LOST degrees
    (:attr:`dinosal.saliency.lost.LostResult.degree`), each in [0, N - 1].
    Raises ``ValueError`` for neither or both, fewer than 2 patches, or
    degrees out of range.
    """
    d = _degree(keys, degree)
    n = d.size
    return float(d.sum()) / (n * (n - 1))


def _degree(keys, degree, where: str = "") -> np.ndarray:
    if (keys is None) == (degree is None):
        raise ValueError("give exactly one of keys and degree")
    if keys is not None:
        degree = similarity_degree(keys)[1]
    d = np.asarray(degree).reshape(-1)
    n = d.size
    name = f"degree{where}"
    if n < 2:
        raise ValueError(f"{name} covers {n} patch; the share needs at least 2")
    if not np.issubdtype(d.dtype, np.integer) or d.min() < 0 or d.max() > n - 1:
        raise ValueError(f"{name} must hold integers in [0, N - 1] = [0, {n - 1}]")
    return d


@dataclass(frozen=True)
class Measurability:
    """Can a model's degree maps separate parts? (book/preregistration.md)

    q: share of positive off-diagonal key dot products over all images (pairs
        pooled: each image weighs by its N (N - 1) pairs)
    per_image: (n,) the share of each image
    threshold: the bound (:data:`MEASURABLE_MAX`, 0.95)
    measurable: ``q <= threshold``; False means every claim using the model's
        degree-based maps gets the verdict "not measurable"
    """

    q: float
    per_image: np.ndarray
    threshold: float
    measurable: bool

    @property
    def verdict(self) -> str:
        """``"measurable"`` or ``"not measurable"``."""
        return "measurable" if self.measurable else "not measurable"


def measurability(keys: Optional[Sequence] = None, degrees: Optional[Sequence] = None,
                  threshold: float = MEASURABLE_MAX) -> Measurability:
    """The pre-registered measurability check of one model on its test images.

    keys: per image (N_i, D) patch keys; or degrees: per image the LOST
    degree map (exactly one of the two, see :func:`positive_share`).
    threshold: in (0, 1]. Raises ``ValueError`` for no images, both or
    neither input, or a threshold outside (0, 1].
    """
    if (keys is None) == (degrees is None):
        raise ValueError("give exactly one of keys and degrees")
    items = keys if keys is not None else degrees
    if len(items) == 0:
        raise ValueError(f"{'keys' if keys is not None else 'degrees'} is empty")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    per, pairs = [], []
    for i, x in enumerate(items):
        d = _degree(x, None, f" of keys[{i}]") if keys is not None else _degree(None, x, f"s[{i}]")
        n = d.size
        per.append(float(d.sum()) / (n * (n - 1)))
        pairs.append(n * (n - 1))
    per_image = np.asarray(per, dtype=np.float64)
    q = float(np.dot(per_image, pairs) / np.sum(pairs))
    return Measurability(q, per_image, float(threshold), q <= threshold)
