"""The three generators of the procedural benchmark, and the torch wrapper.

* :class:`DrivingScenes` (the BDD100K role): a road in perspective
  (:class:`_Road`), sky, buildings, lane markings, roadside trees, poles and
  signs, and objects of six classes seen from a front camera;
* :class:`SingleVehicles` (the Stanford Cars role): one side-view vehicle of
  a fine-grained type on a cluttered backdrop and a ground;
* :class:`ObjectWorld` (the ImageNet role): objects of twenty-four
  categories on cluttered backdrops;
* :class:`SampleDataset`: any sequence of samples as a map-style torch dataset.

Each generator is a read-only sequence (:class:`_Generator`) whose item
``index`` is drawn from the stream ``(config.seed, index, stream)``. How an
object is coloured against its background (own palette or camouflage) is
:func:`_object_colours`.
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceABC
from typing import Callable, Iterable, NamedTuple, Sequence

import numpy as np
from PIL import Image

from ..sample import Sample
from .canvas import (
    BLOTCH,
    FLAT,
    GRAIN,
    LEAF,
    STRIPE,
    _BackgroundRand,
    _Canvas,
    _cumulative,
    _finish_image,
    _hsv,
    _jitter,
    _make_sample,
    _mix,
    _Rand,
)
from .config import (
    DEFAULT_PART_PROB,
    DRIVING_CLASSES,
    DRIVING_PARTS,
    OPTIONAL_DRIVING_PARTS,
    VEHICLE_PARTS,
    WORLD_CATEGORIES,
    WORLD_PARTS,
    DrivingConfig,
    VehicleConfig,
    WorldConfig,
    CommonConfig,
)
from .shapes import (
    _DRIVING_TEMPLATES,
    _WORLD_TEMPLATES,
    BODY,
    _paint,
    _shape_jitter,
    _vehicle_side,
)

# --------------------------------------------------------------------------
# Object colours (own palette vs camouflage)
# --------------------------------------------------------------------------

_CAR_PAINT = ((200, 200, 205), (30, 30, 35), (150, 150, 155), (240, 240, 240), (160, 30, 30),
              (30, 60, 140), (30, 80, 50), (200, 180, 140), (220, 180, 30), (220, 110, 30))
_DRIVING_CANON = {"car": (150, 150, 155), "truck": (235, 235, 235), "bus": (220, 180, 30),
                  "pedestrian": (40, 70, 150), "bicycle": (30, 30, 35), "motorcycle": (160, 30, 30)}


def _object_colours(r: _Rand, canvas: _Canvas, body, cfg: CommonConfig, frame):
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
        src = _pick_by_area(r, canvas.background, area, exclude=under)
        targets = [src[1]] + [_pick_by_area(r, canvas.background, area, exclude=src[1])[1] for _ in own[1:]]
        own = [_mix(col, tgt, cam) for col, tgt in zip(own, targets)]
        if r.chance(cam):
            tex = src[2]
        amp = amp + cam * (src[3] - amp)
    return own, tex, amp


def _pick_by_area(r: _Rand, elements: list, area: np.ndarray, exclude) -> tuple:
    """A background element ``(eid, colour, tex, amp)`` drawn with probability ∝ visible area."""
    pool = [e for e in elements if e[1] != exclude and area[e[0]] > 0] or elements
    cum = np.cumsum([area[e[0]] + 1e-9 for e in pool]).tolist()
    return pool[r.weighted(cum)]


# --------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------


class _Generator(SequenceABC):
    """Common sequence behaviour: ``len``, indexing, iteration, ``sample``."""

    config: CommonConfig
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


class ScenePlan(NamedTuple):
    """What a driving scene places (:meth:`DrivingScenes.scene_plan`): its objects'
    classes in placement order (before the visibility filter) and its optional parts."""

    classes: tuple[str, ...]
    parts: tuple[str, ...]


# Real-world heights (m) of driving classes; the road is three lanes wide.
_DRIVING_HEIGHT = {"car": 1.5, "truck": 3.3, "bus": 3.2, "pedestrian": 1.75, "bicycle": 1.1, "motorcycle": 1.2}
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
        self._conditional = self.config.conditional_parts()

    def part_probabilities(self, present: Iterable[str]) -> dict[str, float]:
        """Probability of each optional part given the classes ``present``."""
        cfg = self.config
        base = {**{p: 0.0 for p in OPTIONAL_DRIVING_PARTS}, **DEFAULT_PART_PROB, **cfg.part_prob}
        present, out = set(present), {}
        for part, p in base.items():
            for c in present:
                p *= cfg.part_class_multiplier.get(c, {}).get(part, 1.0)
            out[part] = min(1.0, p)
        for part, (c, with_c, without_c) in self._conditional.items():
            out[part] = with_c if c in present else without_c
        return out

    def scene_plan(self, index: int) -> ScenePlan:
        """What item ``index`` places, without drawing it: the classes of its
        objects (before the visibility filter drops hidden ones) and its
        optional parts. It draws nothing, so the statistics of the co-occurrence
        knobs are measured on plans."""
        classes, has = self._plan(_Rand(self.config.seed, int(index), self._stream))
        return ScenePlan(tuple(DRIVING_CLASSES[k] for k in classes),
                         tuple(p for p in OPTIONAL_DRIVING_PARTS if has[p]))

    def _plan(self, r: _Rand) -> tuple[list[int], dict[str, bool]]:
        """Objects first, so the parts can depend on them (co-occurrence)."""
        cfg = self.config
        n = r.i(*cfg.n_objects)
        if cfg.single_class_scenes > 0 and n > 0 and r.chance(cfg.single_class_scenes):
            classes = [r.weighted(self._cum)] * n  # one class for the whole scene
        else:
            classes = [r.weighted(self._cum) for _ in range(n)]
        probs = self.part_probabilities(DRIVING_CLASSES[k] for k in classes)
        return classes, {p: r.chance(probs[p]) for p in OPTIONAL_DRIVING_PARTS}

    def _draw(self, r: _Rand) -> Sample:
        cfg, S = self.config, self.config.size
        # 1) objects and which parts appear
        classes, has = self._plan(r)
        # 2) the ground plane, sky, buildings, lanes
        bg = _BackgroundRand(r, cfg, self._stream)
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
        image, masks, labels, semantic = _finish_image(cv, cfg, r, bg, len(DRIVING_PARTS), class_of)
        return _make_sample(image, masks, labels, semantic, self.class_names, self.semantic_names)

    def _draw_ground(self, cv: _Canvas, bg: _BackgroundRand, road: "_Road", has: dict):
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

    def _roadside(self, bg: _BackgroundRand, has: dict) -> list:
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
        aspect, prims = _DRIVING_TEMPLATES[name](r, ov)
        h = _DRIVING_HEIGHT[name] * road.m2px(t) * cfg.object_scale * _shape_jitter(r, ov, 0.08)
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

    def __init__(self, S: int, bg: _BackgroundRand) -> None:
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


def _cluttered_backdrop(cv: _Canvas, bg: _BackgroundRand, n_clutter, n_palette, sem_backdrop: int,
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


def _own_body_colour(r: _Rand, v: float, canon_hue: float) -> tuple[int, int, int]:
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
        bg = _BackgroundRand(r, cfg, self._stream)
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
        image, masks, labels, semantic = _finish_image(cv, cfg, r, bg, len(VEHICLE_PARTS), [k])
        return _make_sample(image, masks, labels, semantic, self.class_names, self.semantic_names)


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
        bg = _BackgroundRand(r, cfg, self._stream)
        _cluttered_backdrop(cv, bg, cfg.n_clutter, cfg.n_palette, 0, 1)
        class_of = []
        for _n in range(r.i(*cfg.n_objects)):
            k = r.weighted(self._cum)
            name = self.class_names[k]
            aspect, prims = _WORLD_TEMPLATES[name](r, cfg.object_variability)
            side = S * r.u(*cfg.object_size)
            w, h = (side, side / aspect) if aspect >= 1 else (side * aspect, side)
            x0, y0 = r.u(0, max(0.0, S - w)), r.u(0, max(0.0, S - h))
            body = _own_body_colour(r, cfg.object_variability, self._hue[name])
            colours, tex, amp = _object_colours(r, cv, body, cfg, (x0, y0, x0 + w, y0 + h))
            e = cv.element(0, tex, amp, True, colours[BODY])
            class_of.append(k)
            _paint(cv, prims, x0, y0, w, h, r.chance(0.5), colours, e)
        image, masks, labels, semantic = _finish_image(cv, cfg, r, bg, len(WORLD_PARTS), class_of)
        return _make_sample(image, masks, labels, semantic, self.class_names, self.semantic_names)


# --------------------------------------------------------------------------
# Training wrapper
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
