"""Object templates: every object as primitives in a unit frame.

A template is a function ``(r, v) -> (aspect, prims)``: ``r`` the image's
random stream, ``v`` the config's ``object_variability`` (0 draws every object
of a kind alike), ``aspect`` the frame's width / height, and ``prims`` the
primitives in painter's order, in a unit frame (x right, y down, 0..1).
Each primitive carries a colour *role* (:data:`BODY`, :data:`DARK`,
:data:`LIGHT`, :data:`ACCENT`, :data:`TRIM`); the scene gives every object
five role colours, so shape and part structure stay visible whatever the
colours are. :func:`_paint` maps a template into a pixel frame on a canvas.

* rear views of the six driving classes (:data:`_DRIVING_TEMPLATES`);
* side views of the thirteen fine-grained vehicle types, built from
  measurements in metres (:data:`_VEHICLE_SPECS`, :func:`_vehicle_side`);
* the twenty-four object-world categories (:data:`_WORLD_TEMPLATES`).

Templates draw from ``r`` in a fixed order; changing a template changes the
drawings (bump :data:`~dinosal.data.synthetic.config.GENERATOR_VERSION`).
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np

from .canvas import _Canvas, _Rand

# Roles of an object's primitives; each object maps roles to colours.
BODY, DARK, LIGHT, ACCENT, TRIM = range(5)

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


def _shape_jitter(r: _Rand, v: float, amount: float = 0.08) -> float:
    """A multiplicative shape jitter ``1 +- amount * v``."""
    return 1.0 + v * r.u(-amount, amount)


# ---- rear views (driving scenes): aspect = width / height -----------------


def _car_rear(r: _Rand, v: float):
    roof = 0.12 * _shape_jitter(r, v, 0.5)
    belt = 0.45 * _shape_jitter(r, v, 0.1)
    return 1.3 * _shape_jitter(r, v, 0.08), [
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
    return 0.85 * _shape_jitter(r, v, 0.1), [
        ("rect", (0.0, 0.0, 1.0, 0.86), BODY),
        ("line", (0.5, 0.03, 0.5, 0.82), TRIM, 0.025),
        ("rect", (0.0, 0.74, 1.0, 0.8), TRIM),
        ("rect", (0.03, 0.8, 0.16, 0.86), LIGHT),
        ("rect", (0.84, 0.8, 0.97, 0.86), LIGHT),
        ("rect", (0.05, 0.86, 0.3, 1.0), DARK),
        ("rect", (0.7, 0.86, 0.95, 1.0), DARK),
    ]


def _bus_rear(r: _Rand, v: float):
    win = 0.42 * _shape_jitter(r, v, 0.2)
    return 0.9 * _shape_jitter(r, v, 0.08), [
        ("rect", (0.0, 0.0, 1.0, 0.9), BODY),
        ("rect", (0.08, 0.06, 0.92, 0.12), ACCENT),
        ("rect", (0.06, 0.16, 0.94, win), DARK),
        ("rect", (0.05, 0.72, 0.2, 0.8), LIGHT),
        ("rect", (0.8, 0.72, 0.95, 0.8), LIGHT),
        ("rect", (0.06, 0.9, 0.28, 1.0), DARK),
        ("rect", (0.72, 0.9, 0.94, 1.0), DARK),
    ]


def _person(r: _Rand, v: float):
    legs = 0.1 * _shape_jitter(r, v, 0.6)
    return 0.36 * _shape_jitter(r, v, 0.1), [
        ("ellipse", (0.32, 0.0, 0.68, 0.14), LIGHT),
        ("rect", (0.18, 0.15, 0.82, 0.55), BODY),
        ("line", (0.2, 0.18, 0.04, 0.5), BODY, 0.06),
        ("line", (0.8, 0.18, 0.96, 0.5), BODY, 0.06),
        ("poly", (0.22, 0.54, 0.48, 0.54, 0.5 - legs, 1.0, 0.24 - legs, 1.0), DARK),
        ("poly", (0.52, 0.54, 0.78, 0.54, 0.76 + legs, 1.0, 0.5 + legs, 1.0), DARK),
    ]


def _bicycle(r: _Rand, v: float):
    wheel = 0.55 * _shape_jitter(r, v, 0.1)
    t = wheel
    return 1.7 * _shape_jitter(r, v, 0.06), [
        ("ring", (0.0, 1 - t, t / 1.7, 1.0), DARK, 0.07),
        ("ring", (1 - t / 1.7, 1 - t, 1.0, 1.0), DARK, 0.07),
        ("line", (t / 3.4, 1 - t / 2, 0.45, 0.45, 0.8, 0.45, 1 - t / 3.4, 1 - t / 2), BODY, 0.06),
        ("line", (0.45, 0.45, 0.5, 1 - t / 2, t / 3.4, 1 - t / 2), BODY, 0.06),
        ("line", (0.5, 1 - t / 2, 0.8, 0.45), BODY, 0.06),
        ("line", (0.8, 0.45, 0.82, 0.2, 0.9, 0.15), TRIM, 0.06),
        ("rect", (0.36, 0.32, 0.52, 0.4), TRIM),
    ]


def _motorcycle(r: _Rand, v: float):
    t = 0.5 * _shape_jitter(r, v, 0.1)
    return 1.6 * _shape_jitter(r, v, 0.06), [
        ("ellipse", (0.0, 1 - t, t / 1.6, 1.0), DARK),
        ("ellipse", (1 - t / 1.6, 1 - t, 1.0, 1.0), DARK),
        ("ellipse", (t / 6.4, 1 - 0.75 * t, 0.75 * t / 1.6, 1 - t / 4), LIGHT),
        ("ellipse", (1 - 0.75 * t / 1.6, 1 - 0.75 * t, 1 - t / 6.4, 1 - t / 4), LIGHT),
        ("poly", (0.25, 0.45, 0.75, 0.35, 0.82, 0.62, 0.3, 0.7), BODY),
        ("rect", (0.2, 0.35, 0.5, 0.45), TRIM),
        ("line", (0.8, 0.6, 0.86, 0.1, 0.95, 0.05), TRIM, 0.07),
        ("ellipse", (0.5, 0.5, 0.66, 0.7), ACCENT),
    ]


_DRIVING_TEMPLATES: dict[str, Callable] = {
    "car": _car_rear, "truck": _truck_rear, "bus": _bus_rear,
    "pedestrian": _person, "bicycle": _bicycle, "motorcycle": _motorcycle,
}


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
    p = {k: (val * _shape_jitter(r, v, 0.05) if isinstance(val, float) else val)
         for k, val in _VEHICLE_SPECS[kind].items()}
    L, H, c, w, hb = p["L"], p["H"], p["c"], p["w"], p["hb"]
    lh, ws, rs, lt = p["lh"], p["ws"], p["rs"], p["lt"]
    box_top = 3.2 * _shape_jitter(r, v, 0.05) if p.get("box") else 0.0
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


def _car_side(r, v):
    """A passenger car in side view: one of four of the fine-grained types."""
    return _vehicle_side(r.pick(("sedan", "hatchback", "suv", "wagon")), r, v)


def _truck_side(r, v):
    """A truck in side view: box truck or pickup."""
    return _vehicle_side(r.pick(("box_truck", "pickup")), r, v)


def _bus_side(r, v):
    """A bus in side view with four to six windows."""
    n = r.i(4, 6)
    prims = [("rect", (0.0, 0.05, 1.0, 0.82), BODY), ("rect", (0.0, 0.6, 1.0, 0.66), ACCENT)]
    for k in range(n):
        x = 0.12 + 0.84 * k / n
        prims.append(("rect", (x, 0.15, x + 0.84 / n - 0.03, 0.45), DARK))
    prims += [("rect", (0.02, 0.15, 0.09, 0.75), DARK),
              ("ellipse", (0.1, 0.68, 0.24, 1.0), DARK), ("ellipse", (0.74, 0.68, 0.88, 1.0), DARK)]
    return 3.2 * _shape_jitter(r, v), prims


def _airplane(r, v):
    return 2.2 * _shape_jitter(r, v), [
        ("ellipse", (0.0, 0.42, 1.0, 0.7), BODY),
        ("poly", (0.78, 0.5, 0.92, 0.0, 1.0, 0.0, 0.98, 0.5), BODY),
        ("poly", (0.35, 0.56, 0.62, 0.56, 0.5, 1.0, 0.42, 1.0), ACCENT),
        ("line", (0.15, 0.52, 0.7, 0.52), DARK, 0.04),
        ("ellipse", (0.02, 0.47, 0.1, 0.56), DARK),
    ]


def _boat(r, v):
    return 1.2 * _shape_jitter(r, v), [
        ("poly", (0.0, 0.7, 1.0, 0.7, 0.85, 1.0, 0.12, 1.0), BODY),
        ("rect", (0.05, 0.74, 0.95, 0.78), ACCENT),
        ("line", (0.5, 0.0, 0.5, 0.7), TRIM, 0.03),
        ("poly", (0.52, 0.02, 0.52, 0.65, 0.92, 0.65), LIGHT),
        ("poly", (0.48, 0.12, 0.48, 0.65, 0.15, 0.65), ACCENT),
    ]


def _rocket(r, v):
    return 0.45 * _shape_jitter(r, v), [
        ("rect", (0.3, 0.2, 0.7, 0.85), BODY),
        ("poly", (0.3, 0.2, 0.5, 0.0, 0.7, 0.2), ACCENT),
        ("poly", (0.3, 0.6, 0.0, 0.9, 0.3, 0.85), ACCENT),
        ("poly", (0.7, 0.6, 1.0, 0.9, 0.7, 0.85), ACCENT),
        ("ellipse", (0.38, 0.3, 0.62, 0.42), DARK),
        ("poly", (0.35, 0.85, 0.65, 0.85, 0.5, 1.0), LIGHT),
    ]


def _house(r, v):
    return 1.0 * _shape_jitter(r, v), [
        ("rect", (0.1, 0.45, 0.9, 1.0), BODY),
        ("poly", (0.0, 0.47, 0.5, 0.0, 1.0, 0.47), ACCENT),
        ("rect", (0.42, 0.65, 0.58, 1.0), DARK),
        ("rect", (0.18, 0.55, 0.34, 0.72), LIGHT),
        ("rect", (0.66, 0.55, 0.82, 0.72), LIGHT),
    ]


def _lamp(r, v):
    return 0.55 * _shape_jitter(r, v), [
        ("poly", (0.2, 0.0, 0.8, 0.0, 1.0, 0.35, 0.0, 0.35), BODY),
        ("line", (0.5, 0.35, 0.5, 0.92), TRIM, 0.05),
        ("rect", (0.2, 0.92, 0.8, 1.0), DARK),
        ("ellipse", (0.4, 0.3, 0.6, 0.42), LIGHT),
    ]


def _cup(r, v):
    return 1.1 * _shape_jitter(r, v), [
        ("ring", (0.58, 0.25, 1.0, 0.7), ACCENT, 0.09),
        ("poly", (0.0, 0.05, 0.75, 0.05, 0.68, 1.0, 0.07, 1.0), BODY),
        ("ellipse", (0.0, 0.0, 0.75, 0.12), DARK),
        ("rect", (0.05, 0.45, 0.7, 0.55), LIGHT),
    ]


def _bottle(r, v):
    return 0.35 * _shape_jitter(r, v), [
        ("rect", (0.0, 0.35, 1.0, 1.0), BODY),
        ("poly", (0.0, 0.36, 0.3, 0.2, 0.7, 0.2, 1.0, 0.36), BODY),
        ("rect", (0.32, 0.05, 0.68, 0.22), BODY),
        ("rect", (0.28, 0.0, 0.72, 0.07), DARK),
        ("rect", (0.0, 0.55, 1.0, 0.78), LIGHT),
    ]


def _chair(r, v):
    return 0.7 * _shape_jitter(r, v), [
        ("rect", (0.05, 0.0, 0.2, 0.55), BODY),
        ("rect", (0.05, 0.48, 0.95, 0.58), ACCENT),
        ("line", (0.12, 0.55, 0.12, 1.0), TRIM, 0.05),
        ("line", (0.88, 0.55, 0.88, 1.0), TRIM, 0.05),
        ("rect", (0.05, 0.08, 0.2, 0.16), DARK),
    ]


def _table(r, v):
    return 1.6 * _shape_jitter(r, v), [
        ("rect", (0.0, 0.0, 1.0, 0.14), BODY),
        ("rect", (0.05, 0.14, 0.95, 0.22), ACCENT),
        ("line", (0.1, 0.2, 0.08, 1.0), TRIM, 0.06),
        ("line", (0.9, 0.2, 0.92, 1.0), TRIM, 0.06),
    ]


def _flower(r, v):
    prims = [("line", (0.5, 0.5, 0.5, 1.0), TRIM, 0.05),
             ("ellipse", (0.5, 0.7, 0.8, 0.82), TRIM)]
    for k in range(r.i(5, 7)):
        a = 2 * np.pi * k / 6
        cx, cy = 0.5 + 0.25 * np.cos(a), 0.3 + 0.25 * np.sin(a)
        prims.append(("ellipse", (cx - 0.16, cy - 0.16, cx + 0.16, cy + 0.16), BODY))
    prims.append(("ellipse", (0.38, 0.18, 0.62, 0.42), LIGHT))
    return 0.8 * _shape_jitter(r, v), prims


def _fish(r, v):
    return 1.8 * _shape_jitter(r, v), [
        ("poly", (0.68, 0.5, 1.0, 0.1, 1.0, 0.9), ACCENT),
        ("ellipse", (0.0, 0.15, 0.78, 0.85), BODY),
        ("poly", (0.3, 0.2, 0.5, 0.0, 0.55, 0.22), ACCENT),
        ("line", (0.3, 0.3, 0.35, 0.7), LIGHT, 0.06),
        ("ellipse", (0.1, 0.35, 0.2, 0.48), DARK),
    ]


def _bird(r, v):
    return 1.2 * _shape_jitter(r, v), [
        ("line", (0.45, 0.7, 0.42, 1.0), TRIM, 0.04),
        ("line", (0.58, 0.7, 0.6, 1.0), TRIM, 0.04),
        ("ellipse", (0.2, 0.3, 0.85, 0.78), BODY),
        ("ellipse", (0.0, 0.12, 0.35, 0.45), BODY),
        ("poly", (0.03, 0.24, -0.12, 0.3, 0.03, 0.36), ACCENT),
        ("poly", (0.35, 0.45, 0.8, 0.4, 1.0, 0.6, 0.55, 0.65), ACCENT),
        ("ellipse", (0.08, 0.2, 0.16, 0.28), DARK),
    ]


def _mushroom(r, v):
    return 1.0 * _shape_jitter(r, v), [
        ("rect", (0.38, 0.45, 0.62, 1.0), LIGHT),
        ("poly", (0.0, 0.5, 0.1, 0.2, 0.3, 0.03, 0.5, 0.0, 0.7, 0.03, 0.9, 0.2, 1.0, 0.5), BODY),
        ("ellipse", (0.2, 0.2, 0.32, 0.32), ACCENT),
        ("ellipse", (0.55, 0.1, 0.67, 0.22), ACCENT),
        ("ellipse", (0.7, 0.3, 0.8, 0.4), ACCENT),
    ]


def _umbrella(r, v):
    return 1.0 * _shape_jitter(r, v), [
        ("poly", (0.0, 0.45, 0.15, 0.15, 0.5, 0.0, 0.85, 0.15, 1.0, 0.45,
                  0.83, 0.4, 0.67, 0.45, 0.5, 0.4, 0.33, 0.45, 0.17, 0.4), BODY),
        ("line", (0.5, 0.0, 0.5, 0.45), ACCENT, 0.04),
        ("line", (0.5, 0.4, 0.5, 0.95, 0.42, 1.0, 0.36, 0.93), TRIM, 0.05),
    ]


def _clock(r, v):
    prims = [("ellipse", (0.0, 0.0, 1.0, 1.0), ACCENT),
             ("ellipse", (0.1, 0.1, 0.9, 0.9), BODY)]
    for k in range(4):
        a = np.pi / 2 * k
        prims.append(("line", (0.5 + 0.3 * np.cos(a), 0.5 + 0.3 * np.sin(a),
                               0.5 + 0.38 * np.cos(a), 0.5 + 0.38 * np.sin(a)), DARK, 0.04))
    prims += [("line", (0.5, 0.5, 0.5, 0.2), DARK, 0.05),
              ("line", (0.5, 0.5, 0.72, 0.6), DARK, 0.05)]
    return 1.0, prims


def _key(r, v):
    return 2.6 * _shape_jitter(r, v), [
        ("ring", (0.0, 0.0, 0.38, 1.0), BODY, 0.28),
        ("rect", (0.36, 0.4, 1.0, 0.6), BODY),
        ("rect", (0.75, 0.6, 0.82, 0.85), ACCENT),
        ("rect", (0.88, 0.6, 0.95, 0.8), ACCENT),
    ]


def _kite(r, v):
    return 0.75 * _shape_jitter(r, v), [
        ("line", (0.5, 0.6, 0.4, 0.8, 0.6, 0.9, 0.5, 1.0), TRIM, 0.025),
        ("poly", (0.5, 0.0, 1.0, 0.3, 0.5, 0.65, 0.0, 0.3), BODY),
        ("poly", (0.5, 0.0, 1.0, 0.3, 0.5, 0.3), ACCENT),
        ("poly", (0.5, 0.65, 0.0, 0.3, 0.5, 0.3), ACCENT),
        ("line", (0.5, 0.0, 0.5, 0.65), DARK, 0.02),
        ("line", (0.0, 0.3, 1.0, 0.3), DARK, 0.02),
    ]


def _guitar(r, v):
    return 0.42 * _shape_jitter(r, v), [
        ("rect", (0.42, 0.0, 0.58, 0.5), TRIM),
        ("rect", (0.36, 0.0, 0.64, 0.08), DARK),
        ("ellipse", (0.12, 0.38, 0.88, 0.66), BODY),
        ("ellipse", (0.0, 0.56, 1.0, 1.0), BODY),
        ("ellipse", (0.38, 0.54, 0.62, 0.66), DARK),
        ("rect", (0.3, 0.82, 0.7, 0.86), ACCENT),
    ]


_WORLD_TEMPLATES: dict[str, Callable] = {
    "car": _car_side, "truck": _truck_side, "bus": _bus_side, "bicycle": _bicycle,
    "motorcycle": _motorcycle, "airplane": _airplane, "boat": _boat,
    "rocket": _rocket, "house": _house, "lamp": _lamp, "cup": _cup,
    "bottle": _bottle, "chair": _chair, "table": _table, "flower": _flower,
    "fish": _fish, "bird": _bird, "mushroom": _mushroom, "umbrella": _umbrella,
    "clock": _clock, "key": _key, "kite": _kite, "person": _person,
    "guitar": _guitar,
}
