"""A procedural benchmark whose every pixel is known.

Three generators, each a read-only sequence of :class:`Sample` (image plus
full ground truth), deterministic in ``(config.seed, index)``:

* :class:`DrivingScenes` (the BDD100K role): a road in perspective with lane
  markings, roadside trees, poles and signs, sky and buildings, and 0..N
  objects of six classes seen from a front camera;
* :class:`SingleVehicles` (the Stanford Cars role): one side-view vehicle of
  one of thirteen fine-grained types that differ in shape details;
* :class:`ObjectWorld` (the ImageNet role, DINO pre-training): one (or more)
  of twenty-four object categories on cluttered backgrounds.

Conventions: images are ``(H, W, 3)`` uint8 with ``H == W == config.size``;
boxes are ``xyxy`` pixels with an exclusive max, and each box is the tight box
of its instance mask; instance masks are the *visible* part of an object
after occlusion (the object's windows, wheels, stripes belong to it);
``semantic`` labels every pixel with an index into ``semantic_names``, whose
first entries are the background parts and whose tail equals
``class_names`` (so class ``k`` is semantic index ``n_parts + k``).

Objects whose visible area falls below ``max(config.min_visible_px,
config.min_visible_frac * H * W)`` pixels (almost fully hidden or cut by the
image border) are dropped from the ground truth: they get no box, no
instance mask and no multi-hot entry, and their pixels carry the value
:data:`IGNORE` (255) in ``semantic``.

How a scene is drawn: every primitive (polygon, ellipse, rectangle, line) is
painted twice with Pillow, once in colour and once into an element-id layer,
in painter's order (farther first). The id layer gives the masks; each
element's texture and amplitude are looked up per pixel from a texture bank
precomputed once per image size. Randomness comes from one PCG64 stream per
``(seed, index)``; no global state is touched.
"""

from __future__ import annotations

import bisect
import colorsys
import dataclasses
import functools
import json
import os
import tempfile
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Iterable, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..runs import AtomicWriteError, write_failed

IGNORE = 255
"""Semantic value of pixels of objects dropped from the ground truth."""

GENERATOR_VERSION = 1
"""Version of the drawing code. Every config carries it as its class attribute
``KEY_VERSION``, so it enters the run-cache key of every model trained or
scored on generated images (:mod:`dinosal.runs`): bump it with any change to
how a scene is drawn, and models trained on the old drawings are not reused.
``tests/test_synthetic.py`` pins a digest of a few images per generator, and
fails when the drawings change while this number does not."""

MIN_SIZE, MAX_SIZE = 32, 512

# --------------------------------------------------------------------------
# The sample
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Sample:
    """One image and its ground truth.

    Attributes:
        image: ``(H, W, 3)`` uint8.
        boxes: ``(n, 4)`` float32 ``xyxy`` pixels, exclusive max; the tight box
            of ``masks[i]``.
        labels: ``(n,)`` int64 indices into ``class_names``.
        masks: ``(n, H, W)`` bool, visible part of each object.
        semantic: ``(H, W)`` uint8 index into ``semantic_names``; :data:`IGNORE`
            on pixels of objects dropped from the ground truth.
        multi_hot: ``(C,)`` float32, 1 for every class with at least one object.
        class_names: the ``C`` object classes.
        semantic_names: background parts first, then ``class_names``.
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    semantic: np.ndarray
    multi_hot: np.ndarray
    class_names: tuple[str, ...]
    semantic_names: tuple[str, ...]

    @property
    def part_names(self) -> tuple[str, ...]:
        """The background parts: ``semantic_names`` without the object classes."""
        return self.semantic_names[: len(self.semantic_names) - len(self.class_names)]


def object_mask(sample: Sample) -> np.ndarray:
    """``(H, W)`` bool: union of the instance masks (False when there are none)."""
    if len(sample.masks) == 0:
        return np.zeros(sample.semantic.shape, dtype=bool)
    return sample.masks.any(axis=0)


def part_masks(sample: Sample) -> dict[str, np.ndarray]:
    """``{semantic name: (H, W) bool}`` for every semantic name present in the image.

    Object classes come from ``semantic`` too, so ignored pixels (dropped
    objects) belong to no entry.
    """
    present = np.unique(sample.semantic)
    return {
        sample.semantic_names[k]: sample.semantic == k
        for k in present.tolist()
        if k != IGNORE
    }


# --------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _CommonConfig:
    """Knobs shared by the three generators.

    Attributes:
        size: image side in px, 32..512; the same scene is drawn at any size.
        seed: the dataset seed; ``(seed, index)`` fixes an item's bytes.
        length: ``len(generator)``; items are generated on demand, so this only
            bounds indexing and iteration.
        camouflage: 0..1, how much objects share colour and texture statistics
            with the background. 0: objects get their own colours and smooth
            paint; 1: every colour of an object (body, windows, wheels,
            stripes) and its texture are drawn from the colours and textures
            of this image's own background (weighted by area), so only shape
            and part structure tell object from background (pixel contrast
            alone fails). It needs a background of several colours: on a
            one-colour background (no clutter) camouflage 1 hides the object.
        background_variability: 0..1, how much the background changes from
            image to image (layout, colours, textures). 0 gives every image
            the same canonical background. Self-supervised learning attends
            to what tells images apart, so this knob, set against
            ``object_variability``, decides whether DINO has a reason to look
            at objects or at the background.
        object_variability: 0..1, how much objects of one class differ (colour,
            proportions, pose); 0 draws every object of a class alike.
        texture: multiplier on every element's texture amplitude (0 = flat).
        noise: std of the additive per-pixel Gaussian noise, in grey levels.
        lighting: 0..1, strength of the random global gain and light gradient.
        min_visible_px, min_visible_frac: an object stays in the ground truth
            only if its visible area is at least
            ``max(min_visible_px, min_visible_frac * size**2)`` pixels.
    """

    KEY_VERSION: ClassVar[int] = GENERATOR_VERSION

    size: int = 96
    seed: int = 0
    length: int = 10_000
    camouflage: float = 0.0
    background_variability: float = 1.0
    object_variability: float = 1.0
    texture: float = 1.0
    noise: float = 4.0
    lighting: float = 1.0
    min_visible_px: int = 6
    min_visible_frac: float = 0.0008

    def __post_init__(self) -> None:
        if not isinstance(self.size, (int, np.integer)) or not MIN_SIZE <= self.size <= MAX_SIZE:
            raise ValueError(f"size must be an int in {MIN_SIZE}..{MAX_SIZE}, got {self.size!r}")
        if self.length < 0:
            raise ValueError(f"length must be >= 0, got {self.length}")
        for name in ("camouflage", "background_variability", "object_variability", "lighting"):
            _check_unit(name, getattr(self, name))
        for name in ("texture", "noise", "min_visible_frac"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def min_visible_area(self) -> float:
        return max(self.min_visible_px, self.min_visible_frac * self.size * self.size)


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")


def _check_range(name: str, pair, lo: float, hi: float) -> None:
    if len(pair) != 2 or not lo <= pair[0] <= pair[1] <= hi:
        raise ValueError(f"{name} must be a pair lo <= hi within [{lo}, {hi}], got {pair!r}")


def _check_keys(name: str, mapping: Mapping, valid: Sequence[str]) -> None:
    unknown = sorted(set(mapping) - set(valid))
    if unknown:
        raise ValueError(f"{name}: unknown name(s) {unknown}; valid: {list(valid)}")


DRIVING_CLASSES = ("car", "truck", "bus", "pedestrian", "bicycle", "motorcycle")
DRIVING_PARTS = ("sky", "roadside", "road", "lane_marking", "building", "tree", "pole", "sign")
OPTIONAL_DRIVING_PARTS = ("lane_marking", "building", "tree", "pole", "sign")


@dataclass(frozen=True)
class DrivingConfig(_CommonConfig):
    """Driving scenes (BDD100K role). See :class:`_CommonConfig` for shared knobs.

    Attributes:
        n_objects: inclusive range of objects placed per image (before the
            visibility filter drops hidden ones). The number of objects.
        object_scale: multiplier on every object's size relative to the road
            (1 = real proportions: a car is a third of a lane-triple wide).
        depth_range: range of the depth coordinate ``t`` (0 = horizon,
            1 = bottom of the image) where objects stand; near objects are big.
        class_weights: relative frequency of each class among placed objects
            (missing classes get weight 1; 0 removes a class).
        part_prob: probability that an optional background part appears in an
            image (``sky``, ``roadside`` and ``road`` always do). ``sign`` is
            the probability that poles carry signs (needs a pole).
        part_counts: inclusive range of instances of a part when it appears
            (trees, poles, buildings; lane lines are always two dashed lines
            and two edge lines).
        part_class_multiplier: co-occurrence of background parts with classes:
            ``{class: {part: m}}``. The probability of a part becomes
            ``min(1, part_prob[part] * prod(m for every class present))``, so
            ``{"pedestrian": {"tree": 3.0}}`` makes trees mostly appear with
            pedestrians. Objects are sampled first, parts second.
    """

    n_objects: tuple[int, int] = (0, 6)
    object_scale: float = 1.0
    depth_range: tuple[float, float] = (0.12, 0.95)
    class_weights: Mapping[str, float] = field(default_factory=dict)
    part_prob: Mapping[str, float] = field(
        default_factory=lambda: {
            "lane_marking": 0.95, "tree": 0.85, "pole": 0.6, "sign": 0.6, "building": 0.5,
        }
    )
    part_counts: Mapping[str, tuple[int, int]] = field(
        default_factory=lambda: {"tree": (1, 6), "pole": (1, 3), "building": (1, 4)}
    )
    part_class_multiplier: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range("n_objects", self.n_objects, 0, 40)
        _check_range("depth_range", self.depth_range, 0.02, 1.0)
        if self.object_scale <= 0:
            raise ValueError(f"object_scale must be > 0, got {self.object_scale}")
        _check_keys("class_weights", self.class_weights, DRIVING_CLASSES)
        if any(w < 0 for w in self.class_weights.values()):
            raise ValueError("class_weights must be >= 0")
        weights = [self.class_weights.get(c, 1.0) for c in DRIVING_CLASSES]
        if self.n_objects[1] > 0 and sum(weights) <= 0:
            raise ValueError("class_weights are all zero but n_objects allows objects")
        _check_keys("part_prob", self.part_prob, OPTIONAL_DRIVING_PARTS)
        for k, p in self.part_prob.items():
            _check_unit(f"part_prob[{k!r}]", p)
        _check_keys("part_counts", self.part_counts, ("tree", "pole", "building"))
        for k, pair in self.part_counts.items():
            _check_range(f"part_counts[{k!r}]", pair, 1, 40)
        _check_keys("part_class_multiplier", self.part_class_multiplier, DRIVING_CLASSES)
        for c, m in self.part_class_multiplier.items():
            _check_keys(f"part_class_multiplier[{c!r}]", m, OPTIONAL_DRIVING_PARTS)
            if any(x < 0 for x in m.values()):
                raise ValueError(f"part_class_multiplier[{c!r}] must be >= 0")


VEHICLE_TYPES = (
    "sedan", "hatchback", "coupe", "convertible", "wagon", "suv", "jeep",
    "pickup", "van", "minivan", "sports", "limousine", "box_truck",
)
VEHICLE_PARTS = ("backdrop", "clutter", "ground")


@dataclass(frozen=True)
class VehicleConfig(_CommonConfig):
    """Single vehicles (Stanford Cars role). See :class:`_CommonConfig`.

    Attributes:
        types: the fine-grained types to draw (labels index this tuple).
        type_weights: relative frequency of each type (missing: 1).
        object_size: range of the vehicle's length as a fraction of the image
            side (the object-size knob).
        n_clutter: inclusive range of background clutter shapes.
        flip: probability that the vehicle faces right instead of left.
    """

    types: tuple[str, ...] = VEHICLE_TYPES
    type_weights: Mapping[str, float] = field(default_factory=dict)
    object_size: tuple[float, float] = (0.6, 0.9)
    n_clutter: tuple[int, int] = (0, 5)
    flip: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.types or len(set(self.types)) != len(self.types):
            raise ValueError(f"types must be non-empty and distinct, got {self.types!r}")
        _check_keys("types", dict.fromkeys(self.types), VEHICLE_TYPES)
        _check_keys("type_weights", self.type_weights, self.types)
        _check_range("object_size", self.object_size, 0.1, 1.0)
        _check_range("n_clutter", self.n_clutter, 0, 40)
        _check_unit("flip", self.flip)


WORLD_CATEGORIES = (
    "car", "truck", "bus", "bicycle", "motorcycle", "airplane", "boat", "rocket",
    "house", "lamp", "cup", "bottle", "chair", "table", "flower", "fish", "bird",
    "mushroom", "umbrella", "clock", "key", "kite", "person", "guitar",
)
WORLD_PARTS = ("backdrop", "clutter")


@dataclass(frozen=True)
class WorldConfig(_CommonConfig):
    """Object world (ImageNet role). See :class:`_CommonConfig`.

    Attributes:
        categories: the categories drawn (labels index this tuple).
        category_weights: relative frequency of each category (missing: 1).
        n_objects: inclusive range of objects per image (1 = ImageNet-like).
        object_size: range of an object's longer side as a fraction of the
            image side.
        n_clutter: inclusive range of clutter shapes (ellipses, polygons,
            stripes) in the background; with ``camouflage=1`` they share the
            objects' colours and textures and only their shapes differ.
        n_palette: inclusive range of colours in an image's background palette.
    """

    categories: tuple[str, ...] = WORLD_CATEGORIES
    category_weights: Mapping[str, float] = field(default_factory=dict)
    n_objects: tuple[int, int] = (1, 1)
    object_size: tuple[float, float] = (0.4, 0.75)
    n_clutter: tuple[int, int] = (3, 9)
    n_palette: tuple[int, int] = (3, 5)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.categories or len(set(self.categories)) != len(self.categories):
            raise ValueError(f"categories must be non-empty and distinct, got {self.categories!r}")
        _check_keys("categories", dict.fromkeys(self.categories), WORLD_CATEGORIES)
        _check_keys("category_weights", self.category_weights, self.categories)
        _check_range("n_objects", self.n_objects, 0, 20)
        _check_range("object_size", self.object_size, 0.05, 1.0)
        _check_range("n_clutter", self.n_clutter, 0, 60)
        _check_range("n_palette", self.n_palette, 2, 12)


# --------------------------------------------------------------------------
# Randomness, colours, textures
# --------------------------------------------------------------------------


class _Rand:
    """Uniform numbers from one PCG64 stream, drawn in blocks (fast scalar access)."""

    __slots__ = ("_gen", "_buf", "_i")

    def __init__(self, *words: int) -> None:
        self._gen = np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(words))))
        self._refill()

    def _refill(self) -> None:
        self._buf = self._gen.random(256).tolist()
        self._i = 0

    def u(self, lo: float = 0.0, hi: float = 1.0) -> float:
        if self._i == 256:
            self._refill()
        x = self._buf[self._i]
        self._i += 1
        return lo + (hi - lo) * x

    def i(self, lo: int, hi: int) -> int:
        """Integer in ``lo..hi`` inclusive."""
        return min(hi, lo + int(self.u() * (hi - lo + 1)))

    def chance(self, p: float) -> bool:
        return self.u() < p

    def pick(self, seq):
        return seq[self.i(0, len(seq) - 1)]

    def weighted(self, cumulative: Sequence[float]) -> int:
        """Index drawn with probability proportional to the steps of ``cumulative``."""
        return min(len(cumulative) - 1, bisect.bisect_right(cumulative, self.u() * cumulative[-1]))



class _Canon:
    """Background randomness that fades to one canonical background.

    Each draw is ``canon + v * (own - canon)``, where ``own`` comes from the
    image's stream and ``canon`` from a stream fixed by ``(seed, group)``
    alone, ``v = config.background_variability``; discrete choices take the
    image's pick with probability ``v``. Call :meth:`group` before each group
    of draws (layout, buildings, trees, ...) so canonical values do not shift
    with the number of earlier draws. At ``v = 1`` the canonical stream is
    never touched (no cost).
    """

    def __init__(self, r: _Rand, cfg: "_CommonConfig", stream: int) -> None:
        self.r, self.v, self._key = r, float(cfg.background_variability), (cfg.seed, 0xB6, stream)
        self.c: _Rand | None = None

    def group(self, gid: int) -> None:
        if self.v < 1.0:
            self.c = _Rand(*self._key, gid)

    def u(self, lo: float, hi: float) -> float:
        own = self.r.u(lo, hi)
        if self.v >= 1.0:
            return own
        canon = self.c.u(lo, hi)
        return canon + self.v * (own - canon)

    def i(self, lo: int, hi: int) -> int:
        return min(hi, int(self.u(lo, hi + 1)))

    def pick(self, seq):
        own = self.r.pick(seq)
        if self.v >= 1.0:
            return own
        canon = self.c.pick(seq)
        return own if self.r.chance(self.v) else canon


def _cumulative(names: Sequence[str], weights: Mapping[str, float]) -> list[float]:
    return np.cumsum([float(weights.get(n, 1.0)) for n in names]).tolist()


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (int(r * 255), int(g * 255), int(b * 255))


def _mix(a: Sequence[float], b: Sequence[float], w: float) -> tuple[int, int, int]:
    return (
        int(a[0] + w * (b[0] - a[0])),
        int(a[1] + w * (b[1] - a[1])),
        int(a[2] + w * (b[2] - a[2])),
    )


def _jitter(r: _Rand, c: Sequence[int], amount: float) -> tuple[int, int, int]:
    return tuple(int(min(255, max(0, x + r.u(-amount, amount)))) for x in c)  # type: ignore[return-value]


# Texture kinds: index into the bank's first axis.
FLAT, GRAIN, BLOTCH, LEAF, STRIPE = range(5)


@dataclass(frozen=True, eq=False)
class _Bank:
    """Precomputed textures for one image size (shared by every image)."""

    textures: np.ndarray  # (5, 2S, 2S) float32, unit std (FLAT is zero)
    noise: np.ndarray  # (2S, 2S, 3) float32 standard normal
    ramp_x: np.ndarray  # (S, S) float32 in [-0.5, 0.5]
    ramp_y: np.ndarray  # (S, S) float32 in [-0.5, 0.5]


@functools.lru_cache(maxsize=16)
def _bank(size: int) -> _Bank:
    from scipy.ndimage import gaussian_filter

    gen = np.random.Generator(np.random.PCG64(20240917))
    n = 2 * size
    white = gen.standard_normal((4, n, n)).astype(np.float32)

    def unit(x: np.ndarray) -> np.ndarray:
        x = x - x.mean()
        return (x / (x.std() + 1e-6)).astype(np.float32)

    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    period = max(3.0, size / 12)
    stripes = np.sin(2 * np.pi * (yy + 0.25 * xx) / period) + 0.3 * white[3]
    textures = np.stack(
        [
            np.zeros((n, n), np.float32),
            unit(white[0]),
            unit(gaussian_filter(white[1], sigma=size / 14, mode="wrap")),
            unit(gaussian_filter(white[2], sigma=max(0.8, size / 80), mode="wrap")),
            unit(stripes),
        ]
    )
    noise = gen.standard_normal((n, n, 3)).astype(np.float32)
    ramp = (np.arange(size, dtype=np.float32) / max(size - 1, 1)) - 0.5
    ramp_x = np.broadcast_to(ramp[None, :], (size, size)).copy()
    ramp_y = np.broadcast_to(ramp[:, None], (size, size)).copy()
    return _Bank(textures, noise, ramp_x, ramp_y)


# --------------------------------------------------------------------------
# The canvas: colour layer and element-id layer painted together
# --------------------------------------------------------------------------

# Roles of an object's primitives; each object maps roles to colours.
BODY, DARK, LIGHT, ACCENT, TRIM = range(5)


class _Canvas:
    """Paints each primitive in colour and into the element-id layer."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.rgb = Image.new("RGB", (size, size))
        self.ids = Image.new("L", (size, size))
        self._dc = ImageDraw.Draw(self.rgb)
        self._di = ImageDraw.Draw(self.ids)
        self.sem: list[int] = [0]
        self.inst: list[int] = [-1]
        self.tex: list[int] = [FLAT]
        self.amp: list[float] = [0.0]
        self.n_instances = 0
        self.colour: list = [None]
        self.background: list[tuple[int, tuple[int, int, int], int, float]] = []

    def element(self, sem: int, tex: int, amp: float, instance: bool = False, colour=None) -> int:
        """A new element id (1..255); ``instance`` elements become objects."""
        eid = len(self.sem)
        if eid > 255:
            raise RuntimeError("more than 255 elements in one image")
        self.sem.append(sem)
        self.tex.append(tex)
        self.amp.append(amp)
        self.inst.append(self.n_instances if instance else -1)
        self.colour.append(colour)
        self.n_instances += instance
        return eid

    def part(self, sem: int, colour, tex: int, amp: float) -> int:
        """A background element whose colour and texture camouflage may reuse."""
        eid = self.element(sem, tex, amp, colour=colour)
        self.background.append((eid, colour, tex, amp))
        return eid

    def poly(self, pts, colour, eid: int) -> None:
        self._dc.polygon(pts, fill=colour)
        self._di.polygon(pts, fill=eid)

    def rect(self, box, colour, eid: int) -> None:
        self._dc.rectangle(box, fill=colour)
        self._di.rectangle(box, fill=eid)

    def ellipse(self, box, colour, eid: int) -> None:
        self._dc.ellipse(box, fill=colour)
        self._di.ellipse(box, fill=eid)

    def ring(self, box, width: int, colour, eid: int) -> None:
        self._dc.ellipse(box, outline=colour, width=width)
        self._di.ellipse(box, outline=eid, width=width)

    def line(self, pts, width: int, colour, eid: int) -> None:
        self._dc.line(pts, fill=colour, width=width)
        self._di.line(pts, fill=eid, width=width)

    def shade(self, box, colour) -> None:
        """Colour only (a shadow): the id layer keeps what was there."""
        self._dc.ellipse(box, fill=colour)


def _finish(canvas: _Canvas, cfg: _CommonConfig, r: _Rand, bg: "_Canon", n_parts: int,
            class_of: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Texture, light and noise; masks and labels from the id layer.

    Texture offsets are background draws (``bg``); light and noise are the
    image's own. ``class_of[k]`` is the class of instance ``k``. Returns
    ``(image, masks, labels, semantic)`` with dropped instances removed.
    """
    S = canvas.size
    bank = _bank(S)
    ids = np.asarray(canvas.ids)
    rgb = np.asarray(canvas.rgb).astype(np.float32)
    bg.group(9)
    oy, ox = bg.i(0, S - 1), bg.i(0, S - 1)
    ny, nx = r.i(0, S - 1), r.i(0, S - 1)
    tex_lut = np.asarray(canvas.tex, dtype=np.intp)
    amp_lut = np.asarray(canvas.amp, dtype=np.float32) * cfg.texture
    crops = bank.textures[:, oy : oy + S, ox : ox + S]
    tex = np.take_along_axis(crops, tex_lut[ids][None], axis=0)[0]
    light = cfg.lighting
    gain = 1.0 + light * r.u(-0.25, 0.2)
    grad = (light * r.u(-0.35, 0.35)) * bank.ramp_x + (light * r.u(-0.3, 0.3)) * bank.ramp_y
    lum = (1.0 + amp_lut[ids] * tex) * (gain + grad)
    img = rgb * lum[..., None]
    if cfg.noise > 0:
        img += cfg.noise * bank.noise[ny : ny + S, nx : nx + S]
    np.clip(img, 0, 255, out=img)
    image = img.astype(np.uint8)

    inst_lut = np.asarray(canvas.inst, dtype=np.int64)
    sem_lut = np.asarray(canvas.sem, dtype=np.uint8).copy()
    for eid in np.flatnonzero(inst_lut >= 0):
        sem_lut[eid] = n_parts + class_of[inst_lut[eid]]
    inst_eids = np.flatnonzero(inst_lut >= 0)
    semantic = sem_lut[ids]
    if len(inst_eids) == 0:
        return image, np.zeros((0, S, S), bool), np.zeros(0, np.int64), semantic
    masks = ids[None] == inst_eids[:, None, None].astype(np.uint8)
    areas = masks.sum(axis=(1, 2))
    keep = areas >= cfg.min_visible_area()
    if not keep.all():
        dropped = np.zeros(256, bool)
        dropped[inst_eids[~keep]] = True
        semantic[dropped[ids]] = IGNORE
    labels = np.asarray([class_of[inst_lut[e]] for e in inst_eids[keep]], dtype=np.int64)
    return image, masks[keep], labels, semantic


def _tight_boxes(masks: np.ndarray) -> np.ndarray:
    """``(n, 4)`` float32 xyxy exclusive-max boxes of non-empty ``(n, H, W)`` masks."""
    boxes = np.zeros((len(masks), 4), np.float32)
    for k, m in enumerate(masks):
        rows = np.flatnonzero(m.any(axis=1))
        cols = np.flatnonzero(m.any(axis=0))
        boxes[k] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return boxes


def _sample(image, masks, labels, semantic, class_names, semantic_names) -> Sample:
    multi_hot = np.zeros(len(class_names), np.float32)
    multi_hot[labels] = 1.0
    return Sample(
        image=image,
        boxes=_tight_boxes(masks),
        labels=labels,
        masks=masks,
        semantic=semantic,
        multi_hot=multi_hot,
        class_names=tuple(class_names),
        semantic_names=tuple(semantic_names),
    )


# --------------------------------------------------------------------------
# Object templates: primitives in a unit frame (x right, y down)
# --------------------------------------------------------------------------
# A primitive is (kind, coords, role[, width]) with kind in
# "poly" (flat list x0,y0,x1,y1,...), "rect"/"ellipse" (x0,y0,x1,y1),
# "line" (points; width as a fraction of the frame height), "ring" (box; width).

Prim = tuple


def _paint(canvas: _Canvas, prims: Iterable[Prim], x0: float, y0: float, w: float, h: float,
           flip: bool, colours: Sequence, eid: int) -> None:
    """Map unit-frame primitives to the pixel frame ``(x0, y0, w, h)`` and paint them."""
    for prim in prims:
        kind, c, role = prim[0], prim[1], prim[2]
        col = colours[role]
        xs = [x0 + (1.0 - v if flip else v) * w for v in c[0::2]]
        ys = [y0 + v * h for v in c[1::2]]
        if kind == "poly":
            canvas.poly(list(zip(xs, ys)), col, eid)
        elif kind == "line":
            width = max(1, int(round(prim[3] * h)))
            canvas.line(list(zip(xs, ys)), width, col, eid)
        else:
            box = (min(xs[0], xs[1]), min(ys[0], ys[1]), max(xs[0], xs[1]), max(ys[0], ys[1]))
            if kind == "rect":
                canvas.rect(box, col, eid)
            elif kind == "ellipse":
                canvas.ellipse(box, col, eid)
            else:  # ring
                canvas.ring(box, max(1, int(round(prim[3] * h))), col, eid)


def _j(r: _Rand, v: float, amount: float = 0.08) -> float:
    """A multiplicative shape jitter ``1 +- amount * v``."""
    return 1.0 + v * r.u(-amount, amount)


# ---- rear views (driving scenes): aspect = width / height -----------------


def _car_rear(r: _Rand, v: float):
    roof = 0.12 * _j(r, v, 0.5)
    belt = 0.45 * _j(r, v, 0.1)
    return 1.3 * _j(r, v, 0.08), [
        ("poly", (0.1 + roof, 0.04, 0.9 - roof, 0.04, 0.96, belt, 0.04, belt), BODY),
        ("poly", (0.16 + roof, 0.1, 0.84 - roof, 0.1, 0.88, belt - 0.04, 0.12, belt - 0.04), DARK),
        ("rect", (0.0, belt, 1.0, 0.86), BODY),
        ("rect", (0.04, belt + 0.06, 0.22, belt + 0.18), LIGHT),
        ("rect", (0.78, belt + 0.06, 0.96, belt + 0.18), LIGHT),
        ("rect", (0.38, belt + 0.2, 0.62, belt + 0.3), ACCENT),
        ("rect", (0.04, 0.82, 0.22, 1.0), DARK),
        ("rect", (0.78, 0.82, 0.96, 1.0), DARK),
    ]


def _truck_rear(r: _Rand, v: float):
    return 0.85 * _j(r, v, 0.1), [
        ("rect", (0.0, 0.0, 1.0, 0.86), BODY),
        ("line", (0.5, 0.03, 0.5, 0.82), TRIM, 0.025),
        ("rect", (0.0, 0.74, 1.0, 0.8), TRIM),
        ("rect", (0.03, 0.8, 0.16, 0.86), LIGHT),
        ("rect", (0.84, 0.8, 0.97, 0.86), LIGHT),
        ("rect", (0.05, 0.86, 0.3, 1.0), DARK),
        ("rect", (0.7, 0.86, 0.95, 1.0), DARK),
    ]


def _bus_rear(r: _Rand, v: float):
    win = 0.42 * _j(r, v, 0.2)
    return 0.9 * _j(r, v, 0.08), [
        ("rect", (0.0, 0.0, 1.0, 0.9), BODY),
        ("rect", (0.08, 0.06, 0.92, 0.12), ACCENT),
        ("rect", (0.06, 0.16, 0.94, win), DARK),
        ("rect", (0.05, 0.72, 0.2, 0.8), LIGHT),
        ("rect", (0.8, 0.72, 0.95, 0.8), LIGHT),
        ("rect", (0.06, 0.9, 0.28, 1.0), DARK),
        ("rect", (0.72, 0.9, 0.94, 1.0), DARK),
    ]


def _person(r: _Rand, v: float):
    legs = 0.1 * _j(r, v, 0.6)
    return 0.36 * _j(r, v, 0.1), [
        ("ellipse", (0.32, 0.0, 0.68, 0.14), LIGHT),
        ("rect", (0.18, 0.15, 0.82, 0.55), BODY),
        ("line", (0.2, 0.18, 0.04, 0.5), BODY, 0.06),
        ("line", (0.8, 0.18, 0.96, 0.5), BODY, 0.06),
        ("poly", (0.22, 0.54, 0.48, 0.54, 0.5 - legs, 1.0, 0.24 - legs, 1.0), DARK),
        ("poly", (0.52, 0.54, 0.78, 0.54, 0.76 + legs, 1.0, 0.5 + legs, 1.0), DARK),
    ]


def _bicycle(r: _Rand, v: float):
    wheel = 0.55 * _j(r, v, 0.1)
    t = wheel
    return 1.7 * _j(r, v, 0.06), [
        ("ring", (0.0, 1 - t, t / 1.7, 1.0), DARK, 0.07),
        ("ring", (1 - t / 1.7, 1 - t, 1.0, 1.0), DARK, 0.07),
        ("line", (t / 3.4, 1 - t / 2, 0.45, 0.45, 0.8, 0.45, 1 - t / 3.4, 1 - t / 2), BODY, 0.06),
        ("line", (0.45, 0.45, 0.5, 1 - t / 2, t / 3.4, 1 - t / 2), BODY, 0.06),
        ("line", (0.5, 1 - t / 2, 0.8, 0.45), BODY, 0.06),
        ("line", (0.8, 0.45, 0.82, 0.2, 0.9, 0.15), TRIM, 0.06),
        ("rect", (0.36, 0.32, 0.52, 0.4), TRIM),
    ]


def _motorcycle(r: _Rand, v: float):
    t = 0.5 * _j(r, v, 0.1)
    return 1.6 * _j(r, v, 0.06), [
        ("ellipse", (0.0, 1 - t, t / 1.6, 1.0), DARK),
        ("ellipse", (1 - t / 1.6, 1 - t, 1.0, 1.0), DARK),
        ("ellipse", (t / 6.4, 1 - 0.75 * t, 0.75 * t / 1.6, 1 - t / 4), LIGHT),
        ("ellipse", (1 - 0.75 * t / 1.6, 1 - 0.75 * t, 1 - t / 6.4, 1 - t / 4), LIGHT),
        ("poly", (0.25, 0.45, 0.75, 0.35, 0.82, 0.62, 0.3, 0.7), BODY),
        ("rect", (0.2, 0.35, 0.5, 0.45), TRIM),
        ("line", (0.8, 0.6, 0.86, 0.1, 0.95, 0.05), TRIM, 0.07),
        ("ellipse", (0.5, 0.5, 0.66, 0.7), ACCENT),
    ]


# ---- side-view vehicles (fine-grained types) -------------------------------

# Lengths in metres: L length, H roof height, c clearance, w wheel radius,
# af/ar axle distance from front/rear, hb belt line height, lh hood length,
# ws windshield run, rs rear-window run, lt trunk/bed length, nw side windows.
_VEHICLE_SPECS: dict[str, dict] = {
    "sedan": dict(L=4.6, H=1.45, c=0.18, w=0.33, af=0.9, ar=1.0, hb=0.9, lh=1.2, ws=0.65, rs=0.6, lt=0.9, nw=2),
    "hatchback": dict(L=4.0, H=1.5, c=0.17, w=0.31, af=0.8, ar=0.7, hb=0.92, lh=1.0, ws=0.6, rs=0.35, lt=0.15, nw=2),
    "coupe": dict(L=4.5, H=1.32, c=0.15, w=0.33, af=0.9, ar=0.9, hb=0.85, lh=1.45, ws=0.7, rs=1.1, lt=0.55, nw=1),
    "convertible": dict(L=4.4, H=1.3, c=0.15, w=0.33, af=0.9, ar=0.9, hb=0.86, lh=1.4, ws=0.35, rs=0.4, lt=0.9, nw=1, open=True),
    "wagon": dict(L=4.8, H=1.5, c=0.18, w=0.33, af=0.9, ar=1.0, hb=0.92, lh=1.2, ws=0.65, rs=0.12, lt=0.08, nw=3),
    "suv": dict(L=4.7, H=1.78, c=0.28, w=0.4, af=0.9, ar=1.0, hb=1.12, lh=1.15, ws=0.55, rs=0.2, lt=0.08, nw=3),
    "jeep": dict(L=4.1, H=1.85, c=0.32, w=0.42, af=0.7, ar=0.8, hb=1.15, lh=1.25, ws=0.15, rs=0.05, lt=0.05, nw=2, spare=True),
    "pickup": dict(L=5.3, H=1.8, c=0.3, w=0.4, af=0.9, ar=1.2, hb=1.12, lh=1.4, ws=0.55, rs=0.08, lt=2.0, nw=2, bed=True),
    "van": dict(L=5.2, H=2.3, c=0.2, w=0.36, af=0.8, ar=1.0, hb=1.1, lh=0.6, ws=0.6, rs=0.05, lt=0.05, nw=2, door=True),
    "minivan": dict(L=5.0, H=1.75, c=0.17, w=0.34, af=0.9, ar=0.9, hb=0.98, lh=0.9, ws=0.9, rs=0.25, lt=0.08, nw=3),
    "sports": dict(L=4.4, H=1.18, c=0.1, w=0.34, af=1.0, ar=0.8, hb=0.75, lh=1.6, ws=0.8, rs=1.0, lt=0.45, nw=1, spoiler=True),
    "limousine": dict(L=6.8, H=1.45, c=0.18, w=0.34, af=0.95, ar=1.05, hb=0.9, lh=1.25, ws=0.65, rs=0.6, lt=0.9, nw=4),
    "box_truck": dict(L=6.5, H=2.9, c=0.3, w=0.45, af=1.0, ar=1.3, hb=1.2, lh=0.5, ws=0.3, rs=0.05, lt=4.4, nw=1, box=True),
}


def _vehicle_side(kind: str, r: _Rand, v: float):
    """Side view of a vehicle type, front on the left; returns (aspect, prims)."""
    p = {k: (val * _j(r, v, 0.05) if isinstance(val, float) else val)
         for k, val in _VEHICLE_SPECS[kind].items()}
    L, H, c, w, hb = p["L"], p["H"], p["c"], p["w"], p["hb"]
    lh, ws, rs, lt = p["lh"], p["ws"], p["rs"], p["lt"]
    box_top = 3.2 * _j(r, v, 0.05) if p.get("box") else 0.0
    top = max(H, box_top)

    def P(*xy):  # metres (x from front, y up) -> unit frame
        out = []
        for x, y in zip(xy[0::2], xy[1::2]):
            out += [x / L, 1.0 - y / top]
        return tuple(out)

    prims = [
        ("poly", P(0.0, c + 0.15, 0.12, c, L - 0.1, c, L, c + 0.15, L, hb,
                   lh, hb + 0.03, 0.2, hb - 0.05, 0.0, hb - 0.2), BODY),
    ]
    gx0, gx1 = lh, L - lt          # greenhouse base
    rx0, rx1 = lh + ws, L - lt - rs  # roof
    if p.get("open"):
        prims += [("line", P(gx0, hb, rx0, H), DARK, 0.05),
                  ("ellipse", P(gx0 + 0.9, hb - 0.05, gx0 + 1.2, hb + 0.35), DARK),
                  ("ellipse", P(gx1 - 1.0, hb - 0.05, gx1 - 0.7, hb + 0.35), DARK)]
    else:
        prims.append(("poly", P(gx0, hb, rx0, H, rx1, H, gx1, hb), BODY))
        m = 0.07
        tx0, tx1 = rx0 + 0.05, rx1 - 0.05
        bx0, bx1 = gx0 + ws * 0.25 + m, gx1 - rs * 0.25 - m
        prims.append(("poly", P(bx0, hb + m, tx0, H - m, tx1, H - m, bx1, hb + m), DARK))
        for k in range(1, int(p["nw"])):
            x = bx0 + (bx1 - bx0) * k / p["nw"]
            prims.append(("line", P(x, hb, x + 0.1, H), BODY, 0.03))
    if p.get("box"):
        prims += [("rect", P(gx1 + 0.15, box_top, L, c + 0.3), ACCENT),
                  ("line", P(gx1 + 0.15, c + 0.6, L, c + 0.6), TRIM, 0.02)]
    if p.get("bed"):
        prims.append(("line", P(gx1 + 0.1, hb + 0.05, L, hb + 0.05), TRIM, 0.04))
    if p.get("door"):
        prims.append(("line", P(L * 0.45, c + 0.1, L * 0.45, H - 0.1), TRIM, 0.02))
    if p.get("spoiler"):
        prims.append(("poly", P(L - 0.45, hb, L - 0.35, hb + 0.2, L, hb + 0.24, L - 0.05, hb + 0.12), TRIM))
    if p.get("spare"):
        prims.append(("ellipse", P(L - 0.12, hb + 0.05, L, hb - 0.6), DARK))
    prims += [("rect", P(0.0, hb - 0.28, 0.15, hb - 0.14), LIGHT),
              ("rect", P(L - 0.12, hb - 0.3, L, hb - 0.12), ACCENT)]
    for ax in (p["af"], L - p["ar"]):
        prims += [("ellipse", P(ax - w, 2 * w, ax + w, 0.0), DARK),
                  ("ellipse", P(ax - 0.45 * w, 1.45 * w, ax + 0.45 * w, 0.55 * w), LIGHT)]
    return L / top, prims


# ---- the object world --------------------------------------------------------


def _w_car(r, v):
    return _vehicle_side(r.pick(("sedan", "hatchback", "suv", "wagon")), r, v)


def _w_truck(r, v):
    return _vehicle_side(r.pick(("box_truck", "pickup")), r, v)


def _w_bus(r, v):
    n = r.i(4, 6)
    prims = [("rect", (0.0, 0.05, 1.0, 0.82), BODY), ("rect", (0.0, 0.6, 1.0, 0.66), ACCENT)]
    for k in range(n):
        x = 0.12 + 0.84 * k / n
        prims.append(("rect", (x, 0.15, x + 0.84 / n - 0.03, 0.45), DARK))
    prims += [("rect", (0.02, 0.15, 0.09, 0.75), DARK),
              ("ellipse", (0.1, 0.68, 0.24, 1.0), DARK), ("ellipse", (0.74, 0.68, 0.88, 1.0), DARK)]
    return 3.2 * _j(r, v), prims


def _w_airplane(r, v):
    return 2.2 * _j(r, v), [
        ("ellipse", (0.0, 0.42, 1.0, 0.7), BODY),
        ("poly", (0.78, 0.5, 0.92, 0.0, 1.0, 0.0, 0.98, 0.5), BODY),
        ("poly", (0.35, 0.56, 0.62, 0.56, 0.5, 1.0, 0.42, 1.0), ACCENT),
        ("line", (0.15, 0.52, 0.7, 0.52), DARK, 0.04),
        ("ellipse", (0.02, 0.47, 0.1, 0.56), DARK),
    ]


def _w_boat(r, v):
    return 1.2 * _j(r, v), [
        ("poly", (0.0, 0.7, 1.0, 0.7, 0.85, 1.0, 0.12, 1.0), BODY),
        ("rect", (0.05, 0.74, 0.95, 0.78), ACCENT),
        ("line", (0.5, 0.0, 0.5, 0.7), TRIM, 0.03),
        ("poly", (0.52, 0.02, 0.52, 0.65, 0.92, 0.65), LIGHT),
        ("poly", (0.48, 0.12, 0.48, 0.65, 0.15, 0.65), ACCENT),
    ]


def _w_rocket(r, v):
    return 0.45 * _j(r, v), [
        ("rect", (0.3, 0.2, 0.7, 0.85), BODY),
        ("poly", (0.3, 0.2, 0.5, 0.0, 0.7, 0.2), ACCENT),
        ("poly", (0.3, 0.6, 0.0, 0.9, 0.3, 0.85), ACCENT),
        ("poly", (0.7, 0.6, 1.0, 0.9, 0.7, 0.85), ACCENT),
        ("ellipse", (0.38, 0.3, 0.62, 0.42), DARK),
        ("poly", (0.35, 0.85, 0.65, 0.85, 0.5, 1.0), LIGHT),
    ]


def _w_house(r, v):
    return 1.0 * _j(r, v), [
        ("rect", (0.1, 0.45, 0.9, 1.0), BODY),
        ("poly", (0.0, 0.47, 0.5, 0.0, 1.0, 0.47), ACCENT),
        ("rect", (0.42, 0.65, 0.58, 1.0), DARK),
        ("rect", (0.18, 0.55, 0.34, 0.72), LIGHT),
        ("rect", (0.66, 0.55, 0.82, 0.72), LIGHT),
    ]


def _w_lamp(r, v):
    return 0.55 * _j(r, v), [
        ("poly", (0.2, 0.0, 0.8, 0.0, 1.0, 0.35, 0.0, 0.35), BODY),
        ("line", (0.5, 0.35, 0.5, 0.92), TRIM, 0.05),
        ("rect", (0.2, 0.92, 0.8, 1.0), DARK),
        ("ellipse", (0.4, 0.3, 0.6, 0.42), LIGHT),
    ]


def _w_cup(r, v):
    return 1.1 * _j(r, v), [
        ("ring", (0.58, 0.25, 1.0, 0.7), ACCENT, 0.09),
        ("poly", (0.0, 0.05, 0.75, 0.05, 0.68, 1.0, 0.07, 1.0), BODY),
        ("ellipse", (0.0, 0.0, 0.75, 0.12), DARK),
        ("rect", (0.05, 0.45, 0.7, 0.55), LIGHT),
    ]


def _w_bottle(r, v):
    return 0.35 * _j(r, v), [
        ("rect", (0.0, 0.35, 1.0, 1.0), BODY),
        ("poly", (0.0, 0.36, 0.3, 0.2, 0.7, 0.2, 1.0, 0.36), BODY),
        ("rect", (0.32, 0.05, 0.68, 0.22), BODY),
        ("rect", (0.28, 0.0, 0.72, 0.07), DARK),
        ("rect", (0.0, 0.55, 1.0, 0.78), LIGHT),
    ]


def _w_chair(r, v):
    return 0.7 * _j(r, v), [
        ("rect", (0.05, 0.0, 0.2, 0.55), BODY),
        ("rect", (0.05, 0.48, 0.95, 0.58), ACCENT),
        ("line", (0.12, 0.55, 0.12, 1.0), TRIM, 0.05),
        ("line", (0.88, 0.55, 0.88, 1.0), TRIM, 0.05),
        ("rect", (0.05, 0.08, 0.2, 0.16), DARK),
    ]


def _w_table(r, v):
    return 1.6 * _j(r, v), [
        ("rect", (0.0, 0.0, 1.0, 0.14), BODY),
        ("rect", (0.05, 0.14, 0.95, 0.22), ACCENT),
        ("line", (0.1, 0.2, 0.08, 1.0), TRIM, 0.06),
        ("line", (0.9, 0.2, 0.92, 1.0), TRIM, 0.06),
    ]


def _w_flower(r, v):
    prims = [("line", (0.5, 0.5, 0.5, 1.0), TRIM, 0.05),
             ("ellipse", (0.5, 0.7, 0.8, 0.82), TRIM)]
    for k in range(r.i(5, 7)):
        a = 2 * np.pi * k / 6
        cx, cy = 0.5 + 0.25 * np.cos(a), 0.3 + 0.25 * np.sin(a)
        prims.append(("ellipse", (cx - 0.16, cy - 0.16, cx + 0.16, cy + 0.16), BODY))
    prims.append(("ellipse", (0.38, 0.18, 0.62, 0.42), LIGHT))
    return 0.8 * _j(r, v), prims


def _w_fish(r, v):
    return 1.8 * _j(r, v), [
        ("poly", (0.68, 0.5, 1.0, 0.1, 1.0, 0.9), ACCENT),
        ("ellipse", (0.0, 0.15, 0.78, 0.85), BODY),
        ("poly", (0.3, 0.2, 0.5, 0.0, 0.55, 0.22), ACCENT),
        ("line", (0.3, 0.3, 0.35, 0.7), LIGHT, 0.06),
        ("ellipse", (0.1, 0.35, 0.2, 0.48), DARK),
    ]


def _w_bird(r, v):
    return 1.2 * _j(r, v), [
        ("line", (0.45, 0.7, 0.42, 1.0), TRIM, 0.04),
        ("line", (0.58, 0.7, 0.6, 1.0), TRIM, 0.04),
        ("ellipse", (0.2, 0.3, 0.85, 0.78), BODY),
        ("ellipse", (0.0, 0.12, 0.35, 0.45), BODY),
        ("poly", (0.03, 0.24, -0.12, 0.3, 0.03, 0.36), ACCENT),
        ("poly", (0.35, 0.45, 0.8, 0.4, 1.0, 0.6, 0.55, 0.65), ACCENT),
        ("ellipse", (0.08, 0.2, 0.16, 0.28), DARK),
    ]


def _w_mushroom(r, v):
    return 1.0 * _j(r, v), [
        ("rect", (0.38, 0.45, 0.62, 1.0), LIGHT),
        ("poly", (0.0, 0.5, 0.1, 0.2, 0.3, 0.03, 0.5, 0.0, 0.7, 0.03, 0.9, 0.2, 1.0, 0.5), BODY),
        ("ellipse", (0.2, 0.2, 0.32, 0.32), ACCENT),
        ("ellipse", (0.55, 0.1, 0.67, 0.22), ACCENT),
        ("ellipse", (0.7, 0.3, 0.8, 0.4), ACCENT),
    ]


def _w_umbrella(r, v):
    return 1.0 * _j(r, v), [
        ("poly", (0.0, 0.45, 0.15, 0.15, 0.5, 0.0, 0.85, 0.15, 1.0, 0.45,
                  0.83, 0.4, 0.67, 0.45, 0.5, 0.4, 0.33, 0.45, 0.17, 0.4), BODY),
        ("line", (0.5, 0.0, 0.5, 0.45), ACCENT, 0.04),
        ("line", (0.5, 0.4, 0.5, 0.95, 0.42, 1.0, 0.36, 0.93), TRIM, 0.05),
    ]


def _w_clock(r, v):
    prims = [("ellipse", (0.0, 0.0, 1.0, 1.0), ACCENT),
             ("ellipse", (0.1, 0.1, 0.9, 0.9), BODY)]
    for k in range(4):
        a = np.pi / 2 * k
        prims.append(("line", (0.5 + 0.3 * np.cos(a), 0.5 + 0.3 * np.sin(a),
                               0.5 + 0.38 * np.cos(a), 0.5 + 0.38 * np.sin(a)), DARK, 0.04))
    prims += [("line", (0.5, 0.5, 0.5, 0.2), DARK, 0.05),
              ("line", (0.5, 0.5, 0.72, 0.6), DARK, 0.05)]
    return 1.0, prims


def _w_key(r, v):
    return 2.6 * _j(r, v), [
        ("ring", (0.0, 0.0, 0.38, 1.0), BODY, 0.28),
        ("rect", (0.36, 0.4, 1.0, 0.6), BODY),
        ("rect", (0.75, 0.6, 0.82, 0.85), ACCENT),
        ("rect", (0.88, 0.6, 0.95, 0.8), ACCENT),
    ]


def _w_kite(r, v):
    return 0.75 * _j(r, v), [
        ("line", (0.5, 0.6, 0.4, 0.8, 0.6, 0.9, 0.5, 1.0), TRIM, 0.025),
        ("poly", (0.5, 0.0, 1.0, 0.3, 0.5, 0.65, 0.0, 0.3), BODY),
        ("poly", (0.5, 0.0, 1.0, 0.3, 0.5, 0.3), ACCENT),
        ("poly", (0.5, 0.65, 0.0, 0.3, 0.5, 0.3), ACCENT),
        ("line", (0.5, 0.0, 0.5, 0.65), DARK, 0.02),
        ("line", (0.0, 0.3, 1.0, 0.3), DARK, 0.02),
    ]


def _w_person(r, v):
    return _person(r, v)


def _w_guitar(r, v):
    return 0.42 * _j(r, v), [
        ("rect", (0.42, 0.0, 0.58, 0.5), TRIM),
        ("rect", (0.36, 0.0, 0.64, 0.08), DARK),
        ("ellipse", (0.12, 0.38, 0.88, 0.66), BODY),
        ("ellipse", (0.0, 0.56, 1.0, 1.0), BODY),
        ("ellipse", (0.38, 0.54, 0.62, 0.66), DARK),
        ("rect", (0.3, 0.82, 0.7, 0.86), ACCENT),
    ]


_WORLD_TEMPLATES: dict[str, Callable] = {
    "car": _w_car, "truck": _w_truck, "bus": _w_bus, "bicycle": _bicycle,
    "motorcycle": _motorcycle, "airplane": _w_airplane, "boat": _w_boat,
    "rocket": _w_rocket, "house": _w_house, "lamp": _w_lamp, "cup": _w_cup,
    "bottle": _w_bottle, "chair": _w_chair, "table": _w_table, "flower": _w_flower,
    "fish": _w_fish, "bird": _w_bird, "mushroom": _w_mushroom, "umbrella": _w_umbrella,
    "clock": _w_clock, "key": _w_key, "kite": _w_kite, "person": _w_person,
    "guitar": _w_guitar,
}


# --------------------------------------------------------------------------
# Object colours (own palette vs camouflage)
# --------------------------------------------------------------------------

_CAR_PAINT = ((200, 200, 205), (30, 30, 35), (150, 150, 155), (240, 240, 240), (160, 30, 30),
              (30, 60, 140), (30, 80, 50), (200, 180, 140), (220, 180, 30), (220, 110, 30))
_DRIVING_CANON = {"car": (150, 150, 155), "truck": (235, 235, 235), "bus": (220, 180, 30),
                  "pedestrian": (40, 70, 150), "bicycle": (30, 30, 35), "motorcycle": (160, 30, 30)}


def _object_colours(r: _Rand, canvas: _Canvas, body, cfg: _CommonConfig, frame):
    """Five role colours and (texture kind, amplitude) for one object.

    ``body`` is the object's own body colour; ``frame`` its ``(x0, y0, x1, y1)``
    pixel frame. With camouflage ``c`` every role colour moves a fraction
    ``c`` towards a colour drawn from this image's background elements
    *weighted by their visible area* (so at ``c = 1`` an object's colours
    follow the background's own colour distribution), and with probability
    ``c`` the texture is that element's. The body never takes the colour of
    the element that covers most of its frame, and the parts never take the
    body's: the silhouette and the part structure stay visible, as the edges
    of background clutter are.
    """
    v = cfg.object_variability
    own = [
        body,
        _jitter(r, (35, 38, 45), 20 * v),
        _jitter(r, (235, 225, 200), 20 * v),
        _hsv(r.u(), 0.2 + 0.7 * r.u() * v, 0.8),
        _jitter(r, (70, 70, 75), 30 * v),
    ]
    tex, amp = GRAIN, 0.04
    cam = cfg.camouflage
    if cam > 0 and canvas.background:
        ids = np.asarray(canvas.ids)
        area = np.bincount(ids.ravel(), minlength=256)
        x0, y0, x1, y1 = (int(min(max(q, 0), canvas.size)) for q in frame)
        local = np.bincount(ids[y0:y1, x0:x1].ravel(), minlength=256) if x1 > x0 and y1 > y0 else area
        under = canvas.colour[int(local.argmax())]
        src = _by_area(r, canvas.background, area, exclude=under)
        targets = [src[1]] + [_by_area(r, canvas.background, area, exclude=src[1])[1] for _ in own[1:]]
        own = [_mix(col, tgt, cam) for col, tgt in zip(own, targets)]
        if r.chance(cam):
            tex = src[2]
        amp = amp + cam * (src[3] - amp)
    return own, tex, amp


def _by_area(r: _Rand, elements: list, area: np.ndarray, exclude) -> tuple:
    """A background element ``(eid, colour, tex, amp)`` drawn with probability ∝ visible area."""
    pool = [e for e in elements if e[1] != exclude and area[e[0]] > 0] or elements
    cum = np.cumsum([area[e[0]] + 1e-9 for e in pool]).tolist()
    return pool[r.weighted(cum)]


# --------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------


class _Generator(SequenceABC):
    """Common sequence behaviour: ``len``, indexing, iteration, ``sample``."""

    config: _CommonConfig
    class_names: tuple[str, ...]
    semantic_names: tuple[str, ...]
    _stream: int

    def __len__(self) -> int:
        return self.config.length

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {type(self).__name__} of length {len(self)}")
        return self.sample(index)

    def sample(self, index: int) -> Sample:
        """Item ``index`` (any non-negative int, also past ``len``)."""
        r = _Rand(self.config.seed, int(index), self._stream)
        return self._draw(r)

    @property
    def n_parts(self) -> int:
        """Number of background parts at the head of ``semantic_names``."""
        return len(self.semantic_names) - len(self.class_names)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    def _draw(self, r: _Rand) -> Sample:  # pragma: no cover - abstract
        raise NotImplementedError


# Real-world heights (m) of driving classes and where on the road they stand.
_DRIVING_HEIGHT = {"car": 1.5, "truck": 3.3, "bus": 3.2, "pedestrian": 1.75, "bicycle": 1.1, "motorcycle": 1.2}
_DRIVING_TEMPLATE = {"car": _car_rear, "truck": _truck_rear, "bus": _bus_rear,
                     "pedestrian": _person, "bicycle": _bicycle, "motorcycle": _motorcycle}
_HALF_ROAD_M = 5.25  # three lanes of 3.5 m


class DrivingScenes(_Generator):
    """Front-camera driving scenes (BDD100K role); items are :class:`Sample`.

    Parts: ``sky``, ``roadside``, ``road`` (always), ``lane_marking``,
    ``building``, ``tree``, ``pole``, ``sign`` (by ``part_prob`` and the
    co-occurrence multipliers). Objects stand on the ground plane; their size
    follows the road's perspective; farther things are drawn first, so
    masks are the visible parts.
    """

    _stream = 1

    def __init__(self, config: DrivingConfig | None = None) -> None:
        self.config = config or DrivingConfig()
        self.class_names = DRIVING_CLASSES
        self.semantic_names = DRIVING_PARTS + DRIVING_CLASSES
        self._cum = _cumulative(DRIVING_CLASSES, self.config.class_weights)
        self._pid = {n: k for k, n in enumerate(DRIVING_PARTS)}

    def part_probabilities(self, present: Iterable[str]) -> dict[str, float]:
        """Probability of each optional part given the classes ``present``."""
        cfg = self.config
        base = {**{p: 0.0 for p in OPTIONAL_DRIVING_PARTS}, **DrivingConfig().part_prob, **cfg.part_prob}
        present, out = set(present), {}
        for part, p in base.items():
            for c in present:
                p *= cfg.part_class_multiplier.get(c, {}).get(part, 1.0)
            out[part] = min(1.0, p)
        return out

    def _draw(self, r: _Rand) -> Sample:
        cfg, S = self.config, self.config.size
        # 1) objects first, so the parts can depend on them (co-occurrence)
        classes = [r.weighted(self._cum) for _ in range(r.i(*cfg.n_objects))]
        probs = self.part_probabilities(DRIVING_CLASSES[k] for k in classes)
        has = {p: r.chance(probs[p]) for p in OPTIONAL_DRIVING_PARTS}
        # 2) the ground plane, sky, buildings, lanes
        bg = _Canon(r, cfg, self._stream)
        road = _Road(S, bg)
        cv = _Canvas(S)
        road_c, side_c = self._draw_ground(cv, bg, road, has)
        # 3) things standing on the ground, drawn far to near
        things = self._roadside(bg, has)
        lo, hi = cfg.depth_range
        for k in classes:
            name, t = DRIVING_CLASSES[k], r.u(lo, hi)
            if name == "pedestrian" and r.chance(0.7):
                u = r.pick((-1, 1)) * r.u(1.03, 1.6)
            elif name in ("bicycle", "motorcycle") and r.chance(0.6):
                u = r.pick((-1, 1)) * r.u(0.6, 1.0)
            else:
                u = r.pick((-2 / 3, 0.0, 2 / 3)) + r.u(-0.15, 0.15)
            # keep the object's centre inside the frame (it may still be cut by the border)
            u = min(max(u, road.u_at(0.0, t)), road.u_at(S, t))
            things.append((t, len(things), ("object", u, k)))
        things.sort()  # by depth t, ties by insertion order (stable, documented)
        class_of: list[int] = []
        for t, _, spec in things:
            if spec[0] == "tree":
                _draw_tree(cv, road, t, spec, self._pid["tree"])
            elif spec[0] == "pole":
                _draw_pole(cv, road, t, spec, self._pid["pole"], self._pid["sign"])
            else:
                self._draw_object(cv, r, road, t, spec[1], spec[2], road_c, side_c)
                class_of.append(spec[2])
        image, masks, labels, semantic = _finish(cv, cfg, r, bg, len(DRIVING_PARTS), class_of)
        return _sample(image, masks, labels, semantic, self.class_names, self.semantic_names)

    def _draw_ground(self, cv: _Canvas, bg: "_Canon", road: "_Road", has: dict):
        """Sky, buildings, roadside, road and lane markings; returns (road colour, roadside colour)."""
        S, pid = self.config.size, self._pid
        bg.group(1)
        sky_c = _hsv(bg.u(0.53, 0.63), bg.u(0.05, 0.4), bg.u(0.65, 0.92))
        cv.rect((0, 0, S, S), sky_c, cv.part(pid["sky"], sky_c, BLOTCH, 0.06))
        side_c = _hsv(bg.u(0.12, 0.33), bg.u(0.1, 0.5), bg.u(0.3, 0.6))
        side_tex = bg.pick((BLOTCH, LEAF, GRAIN))
        grey = bg.u(55, 135)
        road_c = (int(grey), int(grey), int(grey) + 4)
        lane_c = bg.pick(((235, 235, 225), (235, 235, 225), (230, 190, 40)))
        phase = bg.u(0.0, 0.2)
        if has["building"]:
            bg.group(2)
            for _ in range(bg.i(*self.config.part_counts.get("building", (1, 4)))):
                bc = _hsv(bg.u(0.03, 0.13), bg.u(0.05, 0.4), bg.u(0.4, 0.8))
                e = cv.part(pid["building"], bc, bg.pick((GRAIN, STRIPE)), 0.08)
                bx, bw, bh = S * bg.u(-0.1, 0.95), S * bg.u(0.12, 0.35), S * bg.u(0.08, 0.3)
                cv.rect((bx, road.hy - bh, bx + bw, road.hy + 1), bc, e)
                pitch = max(4.0, S / 24)
                if bw > 3 * pitch and bh > 3 * pitch:  # a window grid, part of the building:
                    dark = _mix(bc, (20, 20, 30), 0.6)  # dark columns cut by wall-coloured floors
                    top, bottom = road.hy - bh + pitch / 2, road.hy - pitch / 2
                    for gx in np.arange(bx + pitch / 2, bx + bw - pitch, pitch):
                        cv.rect((gx, top, gx + pitch / 2, bottom), dark, e)
                    for gy in np.arange(top + pitch / 2, bottom, pitch):
                        cv.rect((bx + pitch / 4, gy, bx + bw - pitch / 4, gy + pitch / 2), bc, e)
        cv.rect((0, road.hy, S, S), side_c, cv.part(pid["roadside"], side_c, side_tex, 0.18))
        e = cv.part(pid["road"], road_c, GRAIN, 0.12)
        cv.poly([(road.vx - 0.01 * S, road.hy), (road.vx + 0.01 * S, road.hy),
                 (road.x(1, 1.0), S), (road.x(-1, 1.0), S)], road_c, e)
        if has["lane_marking"]:
            e = cv.part(pid["lane_marking"], lane_c, GRAIN, 0.05)
            for u in (-1 / 3, 1 / 3):  # dashed lines between the three lanes
                t = 0.02 + phase
                while t < 1.0:
                    t2 = min(1.0, t + 0.1 * t + 0.02)
                    w1, w2 = 0.08 * road.m2px(t), 0.08 * road.m2px(t2)
                    y1, y2 = road.y(t), road.y(t2)
                    cv.poly([(road.x(u, t) - w1, y1), (road.x(u, t) + w1, y1),
                             (road.x(u, t2) + w2, y2), (road.x(u, t2) - w2, y2)], lane_c, e)
                    t = t2 + 0.12 * t2 + 0.02
            w1 = 0.1 * road.m2px(1.0)
            for u in (-0.96, 0.96):  # solid edge lines
                cv.poly([(road.x(u, 0.02), road.y(0.02)), (road.x(u, 1.0) - w1, S),
                         (road.x(u, 1.0) + w1, S)], lane_c, e)
        return road_c, side_c

    def _roadside(self, bg: "_Canon", has: dict) -> list:
        """Trees and poles as ``(depth, order, spec)`` with every random choice made."""
        cfg, things = self.config, []
        if has["tree"]:
            bg.group(3)
            for k in range(bg.i(*cfg.part_counts.get("tree", (1, 6)))):
                t, side = bg.u(0.04, 1.0), bg.pick((-1, 1))
                u = side * bg.u(1.15, 2.6)
                trunk = (int(bg.u(60, 120)), int(bg.u(45, 80)), int(bg.u(25, 50)))
                crown = _hsv(bg.u(0.18, 0.36), bg.u(0.4, 0.8), bg.u(0.25, 0.6))
                rad = bg.u(1.3, 2.2)
                blobs = [(bg.u(-0.6, 0.6), bg.u(0.2, 1.2)) for _ in range(3)]
                things.append((t, len(things), ("tree", u, trunk, crown, rad, blobs)))
        if has["pole"]:
            bg.group(4)
            for k in range(bg.i(*cfg.part_counts.get("pole", (1, 3)))):
                t, side = bg.u(0.08, 1.0), bg.pick((-1, 1))
                u = side * bg.u(1.08, 1.5)
                g = int(bg.u(95, 150))
                sign = None
                if has["sign"]:
                    sign = (bg.pick(((200, 30, 30), (30, 80, 180), (230, 200, 40), (40, 140, 70),
                                     (235, 235, 235))), bg.i(0, 2))
                things.append((t, len(things), ("pole", u, (g, g, g + 5), sign)))
        return things

    def _draw_object(self, cv: _Canvas, r: _Rand, road: "_Road", t: float, u: float, k: int,
                     road_c, side_c) -> None:
        cfg = self.config
        ov, name = cfg.object_variability, DRIVING_CLASSES[k]
        aspect, prims = _DRIVING_TEMPLATE[name](r, ov)
        h = _DRIVING_HEIGHT[name] * road.m2px(t) * cfg.object_scale * _j(r, ov, 0.08)
        w, yb = aspect * h, road.y(t)
        x0 = road.x(u, t) - w / 2
        if name == "pedestrian":
            paint = _hsv(r.u(), 0.2 + 0.5 * ov, 0.3 + 0.5 * r.u()) if r.chance(ov) else _DRIVING_CANON[name]
        else:
            paint = _jitter(r, r.pick(_CAR_PAINT), 15) if r.chance(ov) else _DRIVING_CANON[name]
        colours, tex, amp = _object_colours(r, cv, paint, cfg, (x0, yb - h, x0 + w, yb))
        if name in ("car", "truck", "bus"):
            cv.shade((x0 - 0.05 * w, yb - 0.06 * h, x0 + 1.05 * w, yb + 0.05 * h), _mix(road_c, (0, 0, 0), 0.5))
        flip = r.chance(0.5) and name in ("bicycle", "motorcycle")
        _paint(cv, prims, x0, yb - h, w, h, flip, colours, cv.element(0, tex, amp, True, colours[BODY]))


class _Road:
    """Perspective of a flat road: depth ``t`` in (0, 1] (0 = horizon, 1 = image bottom),
    lateral ``u`` in road half-widths (|u| < 1 on the road)."""

    def __init__(self, S: int, bg: "_Canon") -> None:
        bg.group(0)
        self.S = S
        self.hy = S * bg.u(0.3, 0.5)
        self.vx = S * bg.u(0.35, 0.65)
        self.hw = S * bg.u(0.5, 0.85)

    def y(self, t: float) -> float:
        return self.hy + t * (self.S - self.hy)

    def x(self, u: float, t: float) -> float:
        return self.vx + u * self.hw * t

    def u_at(self, x: float, t: float) -> float:
        """The lateral position ``u`` whose pixel column at depth ``t`` is ``x``."""
        return (x - self.vx) / (self.hw * t)

    def m2px(self, t: float) -> float:
        """Pixels per metre at depth ``t``."""
        return self.hw * t / _HALF_ROAD_M


def _draw_tree(cv: _Canvas, road: _Road, t: float, spec, sem: int) -> None:
    _, u, trunk, crown, rad, blobs = spec
    x, yb, s = road.x(u, t), road.y(t), road.m2px(t)
    e = cv.part(sem, trunk, STRIPE, 0.12)
    cv.rect((x - 0.2 * s, yb - 3.0 * s, x + 0.2 * s, yb), trunk, e)
    e = cv.part(sem, crown, LEAF, 0.3)
    rad *= s
    for dx, dy in blobs:
        cx, cy = x + rad * dx, yb - 3.0 * s - rad * dy
        cv.ellipse((cx - rad, cy - rad, cx + rad, cy + rad), crown, e)


def _draw_pole(cv: _Canvas, road: _Road, t: float, spec, sem_pole: int, sem_sign: int) -> None:
    _, u, colour, sign = spec
    x, yb, s = road.x(u, t), road.y(t), road.m2px(t)
    top = yb - 6.0 * s
    half = max(0.5, 0.1 * s)  # at least one pixel wide
    cv.rect((x - half, top, x + half, yb), colour, cv.part(sem_pole, colour, FLAT, 0.0))
    if sign is not None:
        sc, shape = sign
        e = cv.part(sem_sign, sc, FLAT, 0.02)
        box = (x - 0.5 * s, top, x + 0.5 * s, top + 1.0 * s)
        if shape == 0:
            cv.rect(box, sc, e)
        elif shape == 1:
            cv.ellipse(box, sc, e)
        else:
            cv.poly([(box[0], box[1]), (box[2], box[1]), (x, box[3])], sc, e)


def _cluttered_backdrop(cv: _Canvas, bg: "_Canon", n_clutter, n_palette, sem_backdrop: int,
                        sem_clutter: int, y_limit: float = 1.1) -> list:
    """Backdrop plus clutter shapes coloured from one per-image palette; returns the palette."""
    S = cv.size
    bg.group(1)
    base_h = bg.u(0.0, 1.0)
    palette = [_hsv(base_h + bg.u(-0.5, 0.5), bg.u(0.15, 0.5), bg.u(0.35, 0.8)) for _ in range(bg.i(*n_palette))]
    kinds = (GRAIN, BLOTCH, LEAF, STRIPE)
    cv.rect((0, 0, S, S), palette[0], cv.part(sem_backdrop, palette[0], bg.pick(kinds), 0.12))
    bg.group(2)
    for _k in range(bg.i(*n_clutter)):
        col = bg.pick(palette[1:]) if len(palette) > 1 else palette[0]
        e = cv.part(sem_clutter, col, bg.pick(kinds), bg.u(0.05, 0.25))
        cx, cy = S * bg.u(-0.1, 1.1), S * bg.u(-0.1, y_limit)
        a, b = S * bg.u(0.05, 0.4), S * bg.u(0.05, 0.4)
        shape = bg.i(0, 3)
        if shape == 0:
            cv.ellipse((cx - a, cy - b, cx + a, cy + b), col, e)
        elif shape == 1:
            n = bg.i(3, 7)
            pts = [(cx + a * np.cos(th) * bg.u(0.5, 1), cy + b * np.sin(th) * bg.u(0.5, 1))
                   for th in np.linspace(0, 2 * np.pi, n, endpoint=False)]
            cv.poly(pts, col, e)
        elif shape == 2:
            cv.line([(cx - a, cy - b), (cx + a, cy + b)], max(1, int(S * bg.u(0.02, 0.1))), col, e)
        else:
            cv.rect((cx - a, cy - 0.3 * b, cx + a, cy + 0.3 * b), col, e)
    return palette


def _own_body(r: _Rand, v: float, canon_hue: float) -> tuple[int, int, int]:
    """A saturated object colour: the class's hue, varied by ``v``."""
    return _hsv(canon_hue + v * r.u(-0.5, 0.5), 0.75 + 0.2 * r.u(), 0.75 + 0.2 * r.u())


class SingleVehicles(_Generator):
    """One side-view vehicle per image (Stanford Cars role).

    The thirteen types differ in roof line, wheelbase, cab and bed, spoiler,
    spare wheel, number of side windows and proportions; colour is a
    nuisance drawn independently of the type. ``labels`` has one entry.
    """

    _stream = 2

    def __init__(self, config: VehicleConfig | None = None) -> None:
        self.config = config or VehicleConfig()
        self.class_names = tuple(self.config.types)
        self.semantic_names = VEHICLE_PARTS + self.class_names
        self._cum = _cumulative(self.class_names, self.config.type_weights)

    def _draw(self, r: _Rand) -> Sample:
        cfg, S = self.config, self.config.size
        k = r.weighted(self._cum)
        cv = _Canvas(S)
        bg = _Canon(r, cfg, self._stream)
        bg.group(0)
        horizon = S * bg.u(0.55, 0.8)
        g = bg.u(60, 160)
        gc = (int(g), int(g * bg.u(0.9, 1.05)), int(g * bg.u(0.8, 1.0)))
        _cluttered_backdrop(cv, bg, cfg.n_clutter, (3, 4), 0, 1, y_limit=horizon / S)
        cv.rect((0, horizon, S, S), gc, cv.part(2, gc, GRAIN, 0.1))
        aspect, prims = _vehicle_side(self.class_names[k], r, cfg.object_variability)
        w = S * r.u(*cfg.object_size)
        h = w / aspect
        if h > 0.9 * S:
            h, w = 0.9 * S, 0.9 * S * aspect
        x0 = S * 0.5 - w / 2 + r.u(-1, 1) * (S - w) / 2 * 0.8
        yb = max(h, min(S - 1.0, horizon + r.u(0.05, 0.9) * (S - horizon)))
        body = _jitter(r, r.pick(_CAR_PAINT), 20) if r.chance(cfg.object_variability) else _CAR_PAINT[4]
        colours, tex, amp = _object_colours(r, cv, body, cfg, (x0, yb - h, x0 + w, yb))
        cv.shade((x0, yb - 0.05 * h, x0 + w, yb + 0.04 * h), _mix(gc, (0, 0, 0), 0.5))
        e = cv.element(0, tex, amp, True, colours[BODY])
        _paint(cv, prims, x0, yb - h, w, h, r.chance(cfg.flip), colours, e)
        image, masks, labels, semantic = _finish(cv, cfg, r, bg, len(VEHICLE_PARTS), [k])
        return _sample(image, masks, labels, semantic, self.class_names, self.semantic_names)


class ObjectWorld(_Generator):
    """Objects of many categories on cluttered backgrounds (ImageNet role).

    Every object is built from parts (body, dark parts such as windows and
    wheels, light parts, accents, trim), so its shape and part structure are
    learnable even when ``camouflage=1`` takes all of its colours and its
    texture from the image's own background palette.
    """

    _stream = 3

    def __init__(self, config: WorldConfig | None = None) -> None:
        self.config = config or WorldConfig()
        self.class_names = tuple(self.config.categories)
        self.semantic_names = WORLD_PARTS + self.class_names
        self._cum = _cumulative(self.class_names, self.config.category_weights)
        self._hue = {c: k / len(WORLD_CATEGORIES) for k, c in enumerate(WORLD_CATEGORIES)}

    def _draw(self, r: _Rand) -> Sample:
        cfg, S = self.config, self.config.size
        cv = _Canvas(S)
        bg = _Canon(r, cfg, self._stream)
        palette = _cluttered_backdrop(cv, bg, cfg.n_clutter, cfg.n_palette, 0, 1)
        class_of = []
        for _n in range(r.i(*cfg.n_objects)):
            k = r.weighted(self._cum)
            name = self.class_names[k]
            aspect, prims = _WORLD_TEMPLATES[name](r, cfg.object_variability)
            side = S * r.u(*cfg.object_size)
            w, h = (side, side / aspect) if aspect >= 1 else (side * aspect, side)
            x0, y0 = r.u(0, max(0.0, S - w)), r.u(0, max(0.0, S - h))
            body = _own_body(r, cfg.object_variability, self._hue[name])
            colours, tex, amp = _object_colours(r, cv, body, cfg, (x0, y0, x0 + w, y0 + h))
            e = cv.element(0, tex, amp, True, colours[BODY])
            class_of.append(k)
            _paint(cv, prims, x0, y0, w, h, r.chance(0.5), colours, e)
        image, masks, labels, semantic = _finish(cv, cfg, r, bg, len(WORLD_PARTS), class_of)
        return _sample(image, masks, labels, semantic, self.class_names, self.semantic_names)


# --------------------------------------------------------------------------
# Training and evaluation wrappers
# --------------------------------------------------------------------------


class SampleDataset:
    """A map-style torch dataset over any sequence of :class:`Sample`.

    ``dataset[i]`` is ``(x, i)``: ``x`` is the image as a ``(3, H, W)``
    float32 tensor in ``[0, 1]``, or ``transform(PIL image)`` when a
    transform is given (e.g. a multi-crop). Generation happens on the fly,
    in the worker that asks, so a ``DataLoader`` with workers parallelises it.
    """

    def __init__(self, source: Sequence[Sample], transform: Callable | None = None) -> None:
        self.source = source
        self.transform = transform

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        import torch

        image = self.source[index].image
        if self.transform is not None:
            return self.transform(Image.fromarray(image)), index
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0), index


def _config_dict(config) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config), default=list))


_CACHED_KEYS = ("images", "semantic", "multi_hot", "counts", "boxes", "labels", "masks", "meta")


def _is_cached_set(path: Path) -> bool:
    """True if ``path`` is a set written by :func:`save_cached` (arrays and meta)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if not all(k in z.files for k in _CACHED_KEYS):
                return False
            meta = json.loads(str(z["meta"]))
    except Exception:  # noqa: BLE001 - unreadable means: not ours
        return False
    return isinstance(meta, dict) and all(k in meta for k in ("class_names", "semantic_names", "generator"))


def _check_cache_target(path: Path, overwrite: bool) -> None:
    if path.is_symlink():
        raise FileExistsError(f"{path}: is a symbolic link; save_cached neither writes through nor replaces "
                              "links (nothing was changed)")
    if not path.exists():
        return
    if not path.is_file() or not _is_cached_set(path):
        raise FileExistsError(f"{path}: exists and is not a set written by save_cached; nothing was changed. "
                              "Choose another path.")
    if not overwrite:
        raise FileExistsError(f"{path}: already holds a cached set (pass overwrite=True to replace it)")


def save_cached(generator: Sequence[Sample], n: int, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write items ``0..n-1`` of ``generator`` to one compressed ``.npz``.

    The file holds every array of every sample plus the names and the
    generator's config (for provenance). It is written to a temporary file in
    the same folder and renamed, so a crash never leaves a half-written set.
    Returns the path.

    An existing ``path`` is replaced only if it is a set written by this
    function and ``overwrite=True``; anything else there (another file, a
    folder, a symbolic link) raises ``FileExistsError`` and stays as it was.
    """
    path = Path(path)
    if n < 0 or n > len(generator):
        raise ValueError(f"n={n} outside 0..len(generator)={len(generator)}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: folder for the cached set does not exist")
    _check_cache_target(path, overwrite)
    samples = [generator[i] for i in range(n)]
    if not samples:
        raise ValueError("n=0: nothing to cache")
    first = samples[0]
    meta = {
        "class_names": list(first.class_names),
        "semantic_names": list(first.semantic_names),
        "generator": type(generator).__name__,
        "generator_version": GENERATOR_VERSION,
        "config": _config_dict(generator.config) if hasattr(generator, "config") else None,
    }
    arrays = dict(
        images=np.stack([s.image for s in samples]),
        semantic=np.stack([s.semantic for s in samples]),
        multi_hot=np.stack([s.multi_hot for s in samples]),
        counts=np.asarray([len(s.labels) for s in samples], np.int64),
        boxes=np.concatenate([s.boxes for s in samples]).reshape(-1, 4).astype(np.float32),
        labels=np.concatenate([s.labels for s in samples]).astype(np.int64),
        masks=np.concatenate([s.masks for s in samples]).reshape((-1,) + first.semantic.shape),
        meta=np.asarray(json.dumps(meta)),
    )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        _check_cache_target(path, overwrite)  # again: the path may have changed while the set was drawn
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, (FileExistsError, AtomicWriteError)):
            raise write_failed(path, tmp, err) from err  # a full disk names the file and the free space
        raise
    return path


class CachedSamples(SequenceABC):
    """A cached evaluation set loaded by :func:`load_cached`; items are :class:`Sample`."""

    def __init__(self, arrays: dict, meta: dict, path: Path) -> None:
        self._a = arrays
        self.path = path
        self.meta = meta
        self.class_names = tuple(meta["class_names"])
        self.semantic_names = tuple(meta["semantic_names"])
        self._offsets = np.concatenate([[0], np.cumsum(arrays["counts"])])

    def __len__(self) -> int:
        return len(self._a["images"])

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = range(len(self))[index]
        a, lo, hi = self._a, self._offsets[index], self._offsets[index + 1]
        return Sample(a["images"][index], a["boxes"][lo:hi], a["labels"][lo:hi], a["masks"][lo:hi],
                      a["semantic"][index], a["multi_hot"][index], self.class_names, self.semantic_names)


def load_cached(path: str | os.PathLike) -> CachedSamples:
    """Read a set written by :func:`save_cached`; every array is checked first."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: cached set not found")
    keys = ("images", "semantic", "multi_hot", "counts", "boxes", "labels", "masks", "meta")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise ValueError(f"{path}: not a cached sample set, missing arrays {missing}")
            arrays = {k: z[k] for k in keys}
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, EOFError) as err:
        if str(path) in str(err):
            raise
        raise ValueError(f"{path}: unreadable cached set ({err})") from None
    n, total = len(arrays["images"]), int(arrays["counts"].sum())
    shapes_ok = (
        arrays["images"].ndim == 4 and arrays["semantic"].shape == arrays["images"].shape[:3]
        and len(arrays["multi_hot"]) == n and len(arrays["counts"]) == n
        and len(arrays["boxes"]) == total and len(arrays["labels"]) == total and len(arrays["masks"]) == total
    )
    if not shapes_ok:
        raise ValueError(f"{path}: inconsistent array shapes in cached set")
    return CachedSamples(arrays, meta, path)


# --------------------------------------------------------------------------
# Diagnostics: how much does pixel colour alone give the object away?
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PixelContrast:
    """Pixel-contrast proxies over a set of images (NaN-free; images without objects skipped).

    Attributes:
        auc: ``(B,)`` per image, ROC AUC of a linear discriminant (LDA) fitted
            on the image's own RGB values to predict "pixel is object" — an
            optimistic, in-sample upper bound on what colour alone tells.
            0.5 = colour says nothing; 1 = colour separates perfectly.
        ring_delta: ``(B,)`` per image, mean absolute difference (grey
            levels, averaged over R, G, B) between the object's mean colour
            and the mean colour of a ``ring``-px band around it.
    """

    auc: np.ndarray
    ring_delta: np.ndarray

    @property
    def mean_auc(self) -> float:
        return float(self.auc.mean()) if len(self.auc) else float("nan")

    @property
    def mean_ring_delta(self) -> float:
        return float(self.ring_delta.mean()) if len(self.ring_delta) else float("nan")


def pixel_contrast(samples: Iterable[Sample], ring: int = 3) -> PixelContrast:
    """Measure :class:`PixelContrast` on ``samples`` (uses scikit-learn's LDA)."""
    from scipy.ndimage import binary_dilation
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.metrics import roc_auc_score

    aucs, deltas = [], []
    for s in samples:
        obj = object_mask(s)
        if obj.all() or not obj.any():
            continue
        x = s.image.reshape(-1, 3).astype(np.float64)
        y = obj.ravel()
        lda = LinearDiscriminantAnalysis().fit(x, y)
        aucs.append(roc_auc_score(y, lda.decision_function(x)))
        band = binary_dilation(obj, iterations=ring) & ~obj
        if band.any():
            deltas.append(np.abs(s.image[obj].mean(0) - s.image[band].mean(0)).mean())
    return PixelContrast(np.asarray(aucs), np.asarray(deltas))


def object_table(samples: Iterable[Sample]):
    """A pandas DataFrame with one row per ground-truth object.

    Columns: ``image`` (position in ``samples``), ``cls`` (class name),
    ``area`` (visible pixels / image pixels), ``box_w``, ``box_h`` (px).
    """
    import pandas as pd

    rows = []
    for i, s in enumerate(samples):
        hw = s.semantic.size
        for box, lab, m in zip(s.boxes, s.labels, s.masks):
            rows.append((i, s.class_names[lab], m.sum() / hw, box[2] - box[0], box[3] - box[1]))
    return pd.DataFrame(rows, columns=["image", "cls", "area", "box_w", "box_h"])


def presence_table(samples: Iterable[Sample]):
    """A pandas DataFrame with one row per image and one bool column per semantic name.

    A part or class counts as present when at least one pixel carries it;
    plus ``n_objects`` (ground-truth objects) and ``area_<part>`` columns
    with the fraction of the image each part covers.
    """
    import pandas as pd

    rows = []
    for s in samples:
        counts = np.bincount(s.semantic.ravel(), minlength=256)[: len(s.semantic_names)]
        row = {n: bool(c) for n, c in zip(s.semantic_names, counts)}
        row.update({f"area_{n}": c / s.semantic.size for n, c in zip(s.part_names, counts)})
        row["n_objects"] = len(s.labels)
        rows.append(row)
    return pd.DataFrame(rows)
