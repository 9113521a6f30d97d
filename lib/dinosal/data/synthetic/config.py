"""Configs and class tables of the procedural benchmark.

One frozen dataclass per generator (:class:`DrivingConfig`,
:class:`VehicleConfig`, :class:`WorldConfig`) on a common base
(:class:`CommonConfig`, the knobs every generator shares), the class and
part names each generator draws, and :data:`GENERATOR_VERSION`, which every
config carries as its class attribute ``KEY_VERSION``.

The class names and fields of the configs enter the run-cache key of every
model trained or scored on generated images (:mod:`dinosal.runs`): renaming
one retires those models. Configs check their values on construction and
raise ``ValueError`` with the offending name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Mapping, Optional, Sequence

import numpy as np

GENERATOR_VERSION = 1
"""Version of the drawing code. Every config carries it as its class attribute
``KEY_VERSION``, so it enters the run-cache key of every model trained or
scored on generated images (:mod:`dinosal.runs`): bump it with any change to
how a scene is drawn, and models trained on the old drawings are not reused.
``tests/test_run_identity.py`` pins a digest of a few images per generator, and
fails when the drawings change while this number does not."""

MIN_SIZE, MAX_SIZE = 32, 512
"""Limits of ``config.size`` (image side in px)."""


@dataclass(frozen=True)
class CommonConfig:
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
DEFAULT_PART_PROB = {"lane_marking": 0.95, "tree": 0.85, "pole": 0.6, "sign": 0.6, "building": 0.5}
"""The default ``DrivingConfig.part_prob`` (a part missing from a config's ``part_prob`` gets this)."""


@dataclass(frozen=True)
class DrivingConfig(CommonConfig):
    """Driving scenes (BDD100K role). See :class:`CommonConfig` for shared knobs.

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
            pedestrians. Objects are sampled first, parts second. This also
            raises how often the part appears overall; to couple a part to a
            class at a fixed overall rate use ``part_given_class``.
        single_class_scenes: 0..1, the label–object ambiguity knob (claim 4a):
            the probability that all objects of a scene share one class (drawn
            by ``class_weights``); otherwise each object's class is drawn
            independently (0, the default). The number of objects and the
            expected number of objects of each class per scene do not depend
            on it (both are ``E[n] * w_c / sum(w)``), only how classes mix
            within a scene: at 1 every image-level label names every object of
            its image; at 0 objects of several classes co-occur.
        part_given_class: the class-correlated shortcut (claim 4c):
            ``{class: {part: q}}`` makes ``P(part | class placed) = q`` while
            ``P(part)`` over scenes stays ``part_prob[part]``: scenes without
            the class get ``(p - q * pi) / (1 - pi)``, with
            ``pi = class_presence(class)``. ``q = p`` is independence. The
            feasible ``q`` lie in ``[(p - 1 + pi) / pi, p / pi]`` within
            [0, 1] (an error names the range): with the default ``n_objects``
            and uniform classes a pedestrian is placed in 38 % of scenes, so
            ``part_prob={"tree": 0.5}`` allows every ``q`` in [0, 1]. A part
            can follow one class only, and not also ``part_class_multiplier``.
            None (default) couples nothing.

    Ever-present background (claim 4b) needs no extra knob:
    ``part_prob={"lane_marking": 1.0, "tree": 1.0}`` puts lane markings and
    trees in every scene, ``0.5`` in half of them (independently of the
    objects while ``part_class_multiplier`` and ``part_given_class`` leave
    them alone). "In the scene" means placed: a tree may still be hidden by
    objects or fall outside the frame; :meth:`DrivingScenes.scene_plan`
    lists what was placed.
    """

    n_objects: tuple[int, int] = (0, 6)
    object_scale: float = 1.0
    depth_range: tuple[float, float] = (0.12, 0.95)
    class_weights: Mapping[str, float] = field(default_factory=dict)
    part_prob: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_PART_PROB))
    part_counts: Mapping[str, tuple[int, int]] = field(
        default_factory=lambda: {"tree": (1, 6), "pole": (1, 3), "building": (1, 4)}
    )
    part_class_multiplier: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    # added for claim 4: left out of run-cache keys at their defaults, so older models keep their keys
    single_class_scenes: float = field(default=0.0, metadata={"key_omit_default": True})
    part_given_class: Optional[Mapping[str, Mapping[str, float]]] = field(
        default=None, metadata={"key_omit_default": True})

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
        _check_unit("single_class_scenes", self.single_class_scenes)
        self.conditional_parts()  # checks part_given_class

    def class_presence(self, name: str) -> float:
        """P(at least one object of class ``name`` is placed in a scene).

        Exact, from ``n_objects`` (uniform), ``class_weights`` and
        ``single_class_scenes``; before the visibility filter.
        """
        weights = [float(self.class_weights.get(c, 1.0)) for c in DRIVING_CLASSES]
        total = sum(weights)
        w = weights[DRIVING_CLASSES.index(name)] / total if total > 0 else 0.0
        ns = range(self.n_objects[0], self.n_objects[1] + 1)
        mixed = float(np.mean([1.0 - (1.0 - w) ** n for n in ns]))
        single = float(np.mean([w if n > 0 else 0.0 for n in ns]))
        s = float(self.single_class_scenes)
        return s * single + (1.0 - s) * mixed

    def conditional_parts(self) -> dict[str, tuple[str, float, float]]:
        """``{part: (class, P(part | class placed), P(part | class not placed))}`` of
        ``part_given_class``; raises ``ValueError`` naming the entry that is invalid."""
        out: dict[str, tuple[str, float, float]] = {}
        if self.part_given_class is None:
            return out
        if not isinstance(self.part_given_class, Mapping):
            raise ValueError(f"part_given_class must be a mapping {{class: {{part: q}}}} or None, "
                             f"got {self.part_given_class!r}")
        _check_keys("part_given_class", self.part_given_class, DRIVING_CLASSES)
        probs = {**DEFAULT_PART_PROB, **self.part_prob}
        for c, m in self.part_given_class.items():
            _check_keys(f"part_given_class[{c!r}]", m, OPTIONAL_DRIVING_PARTS)
            for part, q in m.items():
                name = f"part_given_class[{c!r}][{part!r}]"
                _check_unit(name, q)
                if part in out:
                    raise ValueError(f"{name}: part {part!r} already follows {out[part][0]!r}; "
                                     "a part can follow one class only")
                if any(part in mm for mm in self.part_class_multiplier.values()):
                    raise ValueError(f"{name}: part {part!r} is also in part_class_multiplier; use one of the two")
                out[part] = (c, float(q), self._absent_prob(name, c, part, float(probs[part]), float(q)))
        return out

    def _absent_prob(self, name: str, cls: str, part: str, p: float, q: float) -> float:
        pi = self.class_presence(cls)
        if pi <= 0.0:
            raise ValueError(f"{name}: class {cls!r} is never placed (n_objects / class_weights)")
        if pi >= 1.0 - 1e-12:
            if abs(q - p) > 1e-9:
                raise ValueError(f"{name}: {cls!r} is in every scene, so q must equal part_prob {p}")
            return p
        absent = (p - q * pi) / (1.0 - pi)
        if not -1e-9 <= absent <= 1.0 + 1e-9:
            lo, hi = max(0.0, (p - 1.0 + pi) / pi), min(1.0, p / pi)
            raise ValueError(f"{name}={q} cannot keep P({part}) = part_prob {p} with "
                             f"P({cls} placed) = {pi:.4f}: feasible q in [{lo:.4f}, {hi:.4f}]")
        return min(1.0, max(0.0, absent))


VEHICLE_TYPES = (
    "sedan", "hatchback", "coupe", "convertible", "wagon", "suv", "jeep",
    "pickup", "van", "minivan", "sports", "limousine", "box_truck",
)
VEHICLE_PARTS = ("backdrop", "clutter", "ground")


@dataclass(frozen=True)
class VehicleConfig(CommonConfig):
    """Single vehicles (Stanford Cars role). See :class:`CommonConfig`.

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
class WorldConfig(CommonConfig):
    """Object world (ImageNet role). See :class:`CommonConfig`.

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
