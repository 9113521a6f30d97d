"""Drawing: random streams, colours, textures, and the two-layer canvas.

* :class:`_Rand`, :class:`_BackgroundRand`: the per-image random stream, and
  the background draws that fade to one canonical background as
  ``background_variability`` goes to 0;
* colour helpers (:func:`_hsv`, :func:`_mix`, :func:`_jitter`);
* the texture kinds (:data:`FLAT`, :data:`GRAIN`, :data:`BLOTCH`,
  :data:`LEAF`, :data:`STRIPE`) and the texture bank, precomputed once per
  image size (:func:`_texture_bank`);
* :class:`_Canvas`: every primitive painted twice with Pillow, in colour and
  into an element-id layer, in painter's order;
* :func:`_finish_image`: texture, light and noise on the colour layer, and
  the instance masks, labels and semantic map from the id layer;
  :func:`_make_sample` packs them into a :class:`~dinosal.data.sample.Sample`.

Nothing here touches global random state: every draw comes from a PCG64
stream fixed by ``(seed, index)`` (the texture bank from a fixed seed).
"""

from __future__ import annotations

import bisect
import colorsys
import functools
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..sample import IGNORE, Sample
from .config import CommonConfig

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



class _BackgroundRand:
    """Background randomness that fades to one canonical background.

    Each draw is ``canon + v * (own - canon)``, where ``own`` comes from the
    image's stream and ``canon`` from a stream fixed by ``(seed, group)``
    alone, ``v = config.background_variability``; discrete choices take the
    image's pick with probability ``v``. Call :meth:`group` before each group
    of draws (layout, buildings, trees, ...) so canonical values do not shift
    with the number of earlier draws. At ``v = 1`` the canonical stream is
    never touched (no cost).
    """

    def __init__(self, r: _Rand, cfg: CommonConfig, stream: int) -> None:
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
class _TextureBank:
    """Precomputed textures for one image size (shared by every image)."""

    textures: np.ndarray  # (5, 2S, 2S) float32, unit std (FLAT is zero)
    noise: np.ndarray  # (2S, 2S, 3) float32 standard normal
    ramp_x: np.ndarray  # (S, S) float32 in [-0.5, 0.5]
    ramp_y: np.ndarray  # (S, S) float32 in [-0.5, 0.5]


@functools.lru_cache(maxsize=16)
def _texture_bank(size: int) -> _TextureBank:
    """The textures, noise and light ramps for images of side ``size`` (cached; fixed seed)."""
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
    return _TextureBank(textures, noise, ramp_x, ramp_y)


# --------------------------------------------------------------------------
# The canvas: colour layer and element-id layer painted together
# --------------------------------------------------------------------------


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


def _finish_image(canvas: _Canvas, cfg: CommonConfig, r: _Rand, bg: _BackgroundRand, n_parts: int,
                  class_of: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Texture, light and noise; masks and labels from the id layer.

    Texture offsets are background draws (``bg``); light and noise are the
    image's own. ``class_of[k]`` is the class of instance ``k``. Returns
    ``(image, masks, labels, semantic)`` with dropped instances removed.
    """
    S = canvas.size
    bank = _texture_bank(S)
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


def _make_sample(image, masks, labels, semantic, class_names, semantic_names) -> Sample:
    """The :class:`Sample` of finished arrays: boxes are the tight boxes of ``masks``."""
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
