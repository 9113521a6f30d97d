"""BDD100K readers: detection labels, lane markings, and the 10K semantic segmentation.

* :func:`read_bdd100k`: detection boxes (2018 ``bdd100k_labels_images_*.json`` or
  2020 ``det_20``). Scalabel ``box2d`` is 0-based with an *inclusive* max (the
  BDD100K toolkit computes widths as ``x2 - x1 + 1``): read as
  ``(x1, y1, x2 + 1, y2 + 1)``.
* :func:`read_bdd100k_lanes`: lane-marking polylines rasterised to a lane mask
  of a stated line width;
* :func:`read_bdd100k_sem_seg`: the 19-class masks, mapped to the book's part
  names (:data:`BDD_SEM_SEG_TO_BOOK`).

The last two return a :class:`SemanticSet` of :class:`SemanticFrame`: a
``semantic`` mask and ``semantic_names`` laid out as a synthetic
:class:`~dinosal.data.sample.Sample` (parts first, then classes), with
:meth:`SemanticFrame.truth` in the form the per-part scores use.
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from ..sample import IGNORE, GroundTruth, part_masks

from .common import (
    AnnotatedSet,
    Annotation,
    BoxIssues,
    DatasetError,
    _check_boxes,
    _check_images,
    _check_policy,
    _check_verify,
    _err,
    _read_json,
    _require_dir,
    parse_flag,
)

__all__ = [
    "BDD_ALIASES", "BDD_CLASSES", "BDD_LANE_CATEGORIES", "BDD_LANE_PAINTED", "BDD_SEM_SEG_CLASSES",
    "BDD_SEM_SEG_TO_BOOK", "BDD_SKIPPED", "LANE_NAMES", "SEM_SEG_CLASSES", "SEM_SEG_NAMES", "SEM_SEG_PARTS",
    "SemanticFrame", "SemanticSet", "bdd_category", "read_bdd100k", "read_bdd100k_lanes", "read_bdd100k_sem_seg",
]

BDD_CLASSES = (
    "pedestrian", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle", "traffic light", "traffic sign",
)
"""The ten BDD100K detection categories (2020 ``det_20`` names), label order."""

BDD_ALIASES = {"person": "pedestrian", "bike": "bicycle", "motor": "motorcycle"}
"""Names of the 2018 label files mapped to the 2020 names."""

BDD_SKIPPED = frozenset({"other person", "other vehicle", "trailer", "drivable area", "lane"})
"""Categories read and dropped: BDD's evaluation ignores the first three; the
last two are polygons (``poly2d``) without boxes in the 2018 label files."""


def bdd_category(name: str) -> str | None:
    """The canonical BDD100K category of ``name`` (aliases resolved); None if skipped."""
    name = BDD_ALIASES.get(name, name)
    if name in BDD_SKIPPED:
        return None
    if name not in BDD_CLASSES:
        raise KeyError(name)
    return name


def read_bdd100k(labels_json, images_dir, *, verify: str = "header", allow_empty: bool = True,
                 box_tolerance: float = 1.0, bad_boxes: str = "raise",
                 progress: bool | None = None) -> AnnotatedSet:
    """Read BDD100K detection labels (2018 ``bdd100k_labels_images_*.json`` or 2020 ``det_20``).

    The file is a list of frames ``{"name", "labels": [{"category", "box2d":
    {x1, y1, x2, y2}, "attributes": {...}}]}``. Categories map onto
    :data:`BDD_CLASSES` through :data:`BDD_ALIASES`; :data:`BDD_SKIPPED`
    ones are dropped; any other name is an error. A frame with no
    ``labels`` (or an empty list) is kept with no boxes (an all-zero
    multi-hot) when ``allow_empty``, and is an error otherwise; an empty
    frame list is always an error. The label attributes ``occluded``,
    ``truncated`` and ``crowd`` (absent: false) become ``flags``, read by
    :func:`parse_flag`.

    Args:
        labels_json: the label file.
        images_dir: folder holding the frames' ``name`` files.
        verify: ``"exists"`` (path only), ``"header"`` (size from the header,
            boxes checked against it), ``"decode"`` (also decode every image,
            catching truncated files up front).
        box_tolerance: pixels a box may stick out of the image (it is clipped).
        bad_boxes: ``"raise"`` (default), ``"clip"`` or ``"skip"``
            (:mod:`.common`): a dropped box takes its label and flags with it, so the
            frame's multi-hot no longer counts that object; the frame stays.
            Counts in the result's ``box_issues``.
        progress: a progress bar over the images (None: with ``verify="decode"``).
    """
    _check_verify(verify)
    _check_policy(bad_boxes)
    labels_json, images_dir = Path(labels_json), _require_dir(Path(images_dir), "BDD100K images")
    frames = _read_json(labels_json, "BDD100K label")
    if not isinstance(frames, list):
        raise _err(labels_json, "expected a JSON list of frames")
    if not frames:
        raise _err(labels_json, "empty label list (no frames)")
    records, seen = [], set()
    cls_index = {c: k for k, c in enumerate(BDD_CLASSES)}
    for i, fr in enumerate(frames):
        where = f"{labels_json}: frame {i}"
        if not isinstance(fr, dict) or not isinstance(fr.get("name"), str):
            raise DatasetError(f"{where}: expected an object with a string 'name'")
        if fr["name"] in seen:
            raise DatasetError(f"{where}: duplicate image name {fr['name']!r}")
        seen.add(fr["name"])
        where = f"{labels_json}: frame {i} ({fr['name']})"
        labels = fr.get("labels") or []
        if not isinstance(labels, list):
            raise DatasetError(f"{where}: 'labels' must be a list")
        boxes, labs, names = [], [], []
        flags: dict[str, list] = {"occluded": [], "truncated": [], "crowd": []}
        for j, lab in enumerate(labels):
            cat = lab.get("category") if isinstance(lab, dict) else None
            if not isinstance(cat, str):
                raise DatasetError(f"{where}: label {j} has no string 'category'")
            try:
                canon = bdd_category(cat)
            except KeyError:
                raise DatasetError(f"{where}: label {j} has unknown category {cat!r}; "
                                   f"known: {list(BDD_CLASSES)} (+ aliases {sorted(BDD_ALIASES)})") from None
            if canon is None:
                continue
            b = lab.get("box2d")
            try:
                boxes.append([float(b["x1"]), float(b["y1"]), float(b["x2"]) + 1.0, float(b["y2"]) + 1.0])
            except (TypeError, KeyError, ValueError):
                raise DatasetError(f"{where}: label {j} ({cat}) lacks a numeric box2d x1/y1/x2/y2") from None
            labs.append(cls_index[canon])
            names.append(f"label {j}, {cat}")
            attrs = lab.get("attributes")
            attrs = {} if attrs is None else attrs
            if not isinstance(attrs, dict):
                raise DatasetError(f"{where}: label {j} ({cat}) has 'attributes' that is not an object")
            for key, column in flags.items():
                column.append(parse_flag(attrs.get(key, False), f"{where}: label {j} ({cat})", key))
        if not labs and not allow_empty:
            raise DatasetError(f"{where}: no detection labels (allow_empty=False)")
        records.append((images_dir / fr["name"], where, boxes, labs, names, flags))
    sizes, _ = _check_images([r[0] for r in records], verify, labels_json, progress=progress)
    issues, items = BoxIssues(bad_boxes), []
    for (path, where, boxes, labs, names, flags), size in zip(records, sizes):
        b, keep = _check_boxes(boxes, size, where, box_tolerance, bad_boxes, issues, names)
        items.append(Annotation(path, b, np.asarray(labs, np.int64).reshape(-1)[keep], size,
                                {k: np.asarray(v, bool).reshape(-1)[keep] for k, v in flags.items()}))
    return AnnotatedSet(items, BDD_CLASSES, labels_json, "bdd100k", box_issues=issues)


# --------------------------------------------------------------------------
# Per-pixel labels: lane markings and the 10K semantic segmentation subset
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SemanticFrame:
    """Per-pixel ground truth of one real image, in the layout of :class:`~dinosal.data.sample.Sample`.

    Attributes:
        image: the image file (it need not exist when the set was read without images).
        semantic: ``(H, W)`` uint8 index into ``semantic_names``; :data:`IGNORE` on unlabelled pixels.
        semantic_names: background parts first, then ``class_names``.
        class_names: the object classes (the tail of ``semantic_names``; empty for lanes).
        source: the label file the mask came from (JSON or PNG).
    """

    image: Path
    semantic: np.ndarray
    semantic_names: tuple[str, ...]
    class_names: tuple[str, ...]
    source: Path

    @property
    def part_names(self) -> tuple[str, ...]:
        return self.semantic_names[: len(self.semantic_names) - len(self.class_names)]

    def part_masks(self) -> dict[str, np.ndarray]:
        """``{name: (H, W) bool}`` for every semantic name present (as :func:`~dinosal.data.sample.part_masks`)."""
        return part_masks(self)  # type: ignore[arg-type]  # reads .semantic and .semantic_names only

    def truth(self) -> GroundTruth:
        """The form scoring uses: no boxes, objects = pixels of ``class_names``, every part
        of ``part_names`` (absent ones all False, so rows line up across images)."""
        n_parts = len(self.part_names)
        objects = (self.semantic >= n_parts) & (self.semantic != IGNORE)
        parts = {name: self.semantic == k for k, name in enumerate(self.part_names)}
        return GroundTruth(np.zeros((0, 4)), objects, parts)

    def resized(self, size: tuple[int, int]) -> "SemanticFrame":
        """This frame with its mask resampled to ``size`` = ``(H, W)`` px by nearest neighbour (ids are
        never blended; :data:`IGNORE` stays), to score a map computed on the image resized to that size
        (e.g. the image of :func:`dinosal.localisation.resize_short_side`: pass ``image.shape[:2]``).
        A lane drawn ``line_width`` px wide at the label's size gets narrower with the image."""
        h, w = (int(v) for v in size)
        if h < 1 or w < 1:
            raise ValueError(f"size must be (H, W) with both >= 1 px, got {size!r}")
        mask = np.asarray(Image.fromarray(self.semantic).resize((w, h), Image.NEAREST), np.uint8)
        return SemanticFrame(self.image, mask, self.semantic_names, self.class_names, self.source)


class SemanticSet(SequenceABC):
    """A sequence of :class:`SemanticFrame`, built on access (a mask is rasterised or
    decoded when indexed, so a set of 70,000 frames costs no memory up front).
    Everything that can be checked without decoding was checked when the set was read."""

    def __init__(self, items: list, load, semantic_names, class_names, source: Path, kind: str) -> None:
        self._items, self._load = items, load
        self.semantic_names, self.class_names = tuple(semantic_names), tuple(class_names)
        self.source, self.kind = Path(source), kind

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self._load(self._items[index])

    @property
    def images(self) -> list[Path]:
        return [it[0] for it in self._items]

    def __repr__(self) -> str:
        return f"SemanticSet({self.kind}, {len(self)} frames, from {self.source})"


BDD_LANE_CATEGORIES = (
    "crosswalk", "double other", "double white", "double yellow",
    "road curb", "single other", "single white", "single yellow",
)
"""The eight BDD100K lane-marking categories (ids 0..7 of the official lane masks)."""

BDD_LANE_PAINTED = tuple(c for c in BDD_LANE_CATEGORIES if c != "road curb")
"""The default of :func:`read_bdd100k_lanes`: painted markings, as the synthetic
``lane_marking`` part (a road curb is a kerb, not paint)."""

LANE_NAMES = ("other", "lane_marking")
"""``semantic_names`` of lane frames: ``other`` is every pixel off the drawn lines (its
content is unknown: road, cars, sky...), ``lane_marking`` the drawn lines."""


def read_bdd100k_lanes(labels_json, images_dir=None, *, image_size: tuple[int, int] = (1280, 720),
                       line_width: int = 8, categories=BDD_LANE_PAINTED, verify: str = "header") -> SemanticSet:
    """Read BDD100K lane-marking labels and rasterise them into per-pixel lane masks.

    Accepts the 100K lane file (``labels/lane/polygons/lane_{train,val}.json``:
    frames ``{"name", "labels": [{"category": <lane category>, "attributes":
    {"laneDirection", "laneStyle", ...}, "poly2d": [{"vertices": [[x, y], ...],
    "types": "LL" | "LCCC" ..., "closed": false}]}]}``) and the 2018 combined
    label files, whose lanes are ``category: "lane"`` with the type in
    ``attributes.laneType`` (their detection boxes and drivable areas are
    skipped). ``poly2d`` is Scalabel's path: ``types`` has one letter per
    vertex, ``L`` a vertex and ``C`` a cubic-Bezier point; a run ``C C X``
    after a vertex is one cubic segment (two control points and its end
    point ``X``), as matplotlib's ``CURVE4`` that the official converter uses.
    A ``closed`` path gets its closing segment. Every line is drawn
    ``line_width`` pixels wide with round joints (the official
    ``bdd100k.label.to_mask`` strokes open paths with a one-point
    matplotlib line, about 1.4 px at 100 dpi: too thin to score a map of
    16-px patches; state the width with any number). Only ``categories`` are
    drawn (default :data:`BDD_LANE_PAINTED`); an unknown lane category is an
    error. Frames without lanes are kept with an empty mask.

    Args:
        labels_json: the label file.
        images_dir: folder of the frames' images; None: every frame is
            ``image_size`` = ``(W, H)`` (BDD100K's 1280 x 720).
        verify: as :func:`read_bdd100k` (``"exists"`` then uses ``image_size``).

    Returns:
        a :class:`SemanticSet` of :class:`SemanticFrame` with ``semantic_names`` =
        :data:`LANE_NAMES` (0 other, 1 lane_marking) and no classes.
    """
    _check_verify(verify)
    line_width = int(line_width)
    if line_width < 1:
        raise ValueError(f"line_width must be >= 1 px, got {line_width}")
    unknown = sorted(set(categories) - set(BDD_LANE_CATEGORIES))
    if unknown:
        raise ValueError(f"categories: unknown lane categories {unknown}; known: {list(BDD_LANE_CATEGORIES)}")
    keep_cats = frozenset(categories)
    labels_json = Path(labels_json)
    frames = _read_json(labels_json, "BDD100K lane label")
    if not isinstance(frames, list) or not frames:
        raise _err(labels_json, "expected a non-empty JSON list of frames")
    records, seen = [], set()
    for i, fr in enumerate(frames):
        if not isinstance(fr, dict) or not isinstance(fr.get("name"), str):
            raise _err(labels_json, f"frame {i}: expected an object with a string 'name'")
        if fr["name"] in seen:
            raise _err(labels_json, f"frame {i}: duplicate image name {fr['name']!r}")
        seen.add(fr["name"])
        where = f"{labels_json}: frame {i} ({fr['name']})"
        labels = fr.get("labels") or []
        if not isinstance(labels, list):
            raise DatasetError(f"{where}: 'labels' must be a list")
        lines = [line for j, lab in enumerate(labels) for line in _lane_lines(lab, f"{where}: label {j}", keep_cats)]
        records.append((fr["name"], lines))
    if images_dir is None:
        paths, sizes = [Path(r[0]) for r in records], [(int(image_size[1]), int(image_size[0]))] * len(records)
    else:
        images_dir = _require_dir(Path(images_dir), "BDD100K images")
        paths = [images_dir / r[0] for r in records]
        sizes, _ = _check_images(paths, verify, labels_json)
        sizes = [s or (int(image_size[1]), int(image_size[0])) for s in sizes]
    items = [(p, size, lines) for p, size, (_, lines) in zip(paths, sizes, records)]

    def load(item) -> SemanticFrame:
        path, (h, w), lines = item
        canvas = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(canvas)
        for pts in lines:
            draw.line([tuple(p) for p in pts.tolist()], fill=1, width=line_width, joint="curve")
            if line_width > 2:  # round caps, as a stroked path has
                r = line_width / 2
                for x, y in (pts[0], pts[-1]):
                    draw.ellipse((x - r, y - r, x + r, y + r), fill=1)
        return SemanticFrame(path, np.asarray(canvas, np.uint8), LANE_NAMES, (), labels_json)

    return SemanticSet(items, load, LANE_NAMES, (), labels_json, "bdd100k_lanes")


def _lane_lines(lab, where: str, keep: frozenset) -> list[np.ndarray]:
    """The polylines (``(n, 2)`` float arrays, Beziers flattened) of one label to draw."""
    cat = lab.get("category") if isinstance(lab, dict) else None
    if not isinstance(cat, str):
        raise DatasetError(f"{where}: no string 'category'")
    attrs = lab.get("attributes") or {}
    if not isinstance(attrs, dict):
        raise DatasetError(f"{where} ({cat}): 'attributes' is not an object")
    if cat == "lane":  # the 2018 files: the lane type is an attribute
        cat = attrs.get("laneType", attrs.get("laneTypes"))
        if not isinstance(cat, str):
            raise DatasetError(f"{where}: a 'lane' label without a string attributes.laneType")
    elif cat not in BDD_LANE_CATEGORIES:
        if cat == "drivable area" or cat in BDD_ALIASES or cat in BDD_SKIPPED or cat in BDD_CLASSES:
            return []  # the 2018 combined files also hold boxes and drivable areas
        raise DatasetError(f"{where}: unknown category {cat!r}; lane categories: {list(BDD_LANE_CATEGORIES)}")
    if cat not in BDD_LANE_CATEGORIES:
        raise DatasetError(f"{where}: unknown lane type {cat!r}; known: {list(BDD_LANE_CATEGORIES)}")
    polys = lab.get("poly2d")
    if not isinstance(polys, list) or not polys:
        raise DatasetError(f"{where} ({cat}): a lane needs a non-empty 'poly2d' list")
    lines = [_poly2d_points(p, f"{where} ({cat}): poly2d {k}") for k, p in enumerate(polys)]
    return lines if cat in keep else []


def _poly2d_points(poly, where: str) -> np.ndarray:
    """A Scalabel ``poly2d`` (vertices, types, closed) as an ``(n, 2)`` polyline, cubic Beziers sampled."""
    if not isinstance(poly, dict):
        raise DatasetError(f"{where}: expected an object with 'vertices' and 'types'")
    try:
        v = np.asarray(poly.get("vertices"), dtype=np.float64)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: 'vertices' must be a list of [x, y] numbers") from None
    if v.ndim != 2 or v.shape[1] != 2 or len(v) < 2 or not np.isfinite(v).all():
        raise DatasetError(f"{where}: 'vertices' must be at least two finite [x, y] pairs, got shape {v.shape}")
    types = poly.get("types", "L" * len(v))
    if not isinstance(types, str) or len(types) != len(v) or set(types) - {"L", "C"}:
        raise DatasetError(f"{where}: 'types' must be a string of L/C, one per vertex ({len(v)}), got {types!r}")
    if types[0] != "L":
        raise DatasetError(f"{where}: 'types' must start at a vertex (L), got {types!r}")
    out, i = [v[0]], 1
    while i < len(v):
        if types[i] == "L":
            out.append(v[i])
            i += 1
            continue
        if i + 2 > len(v) - 1 or types[i + 1] != "C":
            raise DatasetError(f"{where}: a cubic segment needs two C control points and an end point "
                               f"(types {types!r} at {i})")
        p0, c1, c2, p3 = out[-1], v[i], v[i + 1], v[i + 2]
        t = np.linspace(0.0, 1.0, 17)[1:, None]
        out.extend((1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * c1 + 3 * (1 - t) * t ** 2 * c2 + t ** 3 * p3)
        i += 3
    closed = poly.get("closed", False)
    if not isinstance(closed, bool):
        raise DatasetError(f"{where}: 'closed' must be true or false, got {closed!r}")
    if closed:
        out.append(out[0])
    return np.asarray(out)


BDD_SEM_SEG_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)
"""The 19 BDD100K semantic-segmentation classes, in id order (the mask value; 255 = unknown)."""

BDD_SEM_SEG_TO_BOOK = {
    "road": "road", "sidewalk": "roadside", "building": "building", "wall": "wall", "fence": "fence",
    "pole": "pole", "traffic light": "traffic_light", "traffic sign": "sign", "vegetation": "tree",
    "terrain": "roadside", "sky": "sky", "person": "pedestrian", "rider": "rider", "car": "car",
    "truck": "truck", "bus": "bus", "train": "train", "motorcycle": "motorcycle", "bicycle": "bicycle",
}
"""BDD100K class -> the book's name. The synthetic benchmark's parts keep their names
(``road``, ``sky``, ``building``, ``pole``); ``vegetation`` is ``tree``, ``traffic sign`` is
``sign``, and ``sidewalk`` and ``terrain`` (the ground beside the road) are both ``roadside``;
``person`` is the class ``pedestrian``. ``wall``, ``fence``, ``traffic_light``, ``rider`` and
``train`` have no synthetic counterpart and keep their own names. BDD100K has no
``lane_marking`` class here (its pixels are ``road``): lanes come from :func:`read_bdd100k_lanes`."""

SEM_SEG_PARTS = ("sky", "roadside", "road", "building", "tree", "pole", "sign", "wall", "fence", "traffic_light")
SEM_SEG_CLASSES = ("car", "truck", "bus", "pedestrian", "bicycle", "motorcycle", "rider", "train")
SEM_SEG_NAMES = SEM_SEG_PARTS + SEM_SEG_CLASSES
"""``semantic_names`` of :func:`read_bdd100k_sem_seg` frames: parts, then classes."""

_SEM_LUT = np.full(256, -1, np.int16)
_SEM_LUT[IGNORE] = IGNORE
for _k, _name in enumerate(BDD_SEM_SEG_CLASSES):
    _SEM_LUT[_k] = SEM_SEG_NAMES.index(BDD_SEM_SEG_TO_BOOK[_name])


def read_bdd100k_sem_seg(masks_dir, images_dir=None, *, verify: str = "header",
                         image_suffix: str = ".jpg") -> SemanticSet:
    """Read the BDD100K 10K semantic-segmentation masks (``labels/sem_seg/masks/{train,val}/*.png``).

    Each mask is a one-channel PNG (mode ``L``, or ``P`` read as its indices)
    holding a class id of :data:`BDD_SEM_SEG_CLASSES` per pixel (0..18) or 255
    (unknown); ids are mapped to the book's names by :data:`BDD_SEM_SEG_TO_BOOK`
    (``semantic_names`` = :data:`SEM_SEG_NAMES`; 255 stays :data:`IGNORE`). Any
    other value is an error naming the file and the values. The image of
    ``<stem>.png`` is ``images_dir/<stem><image_suffix>`` (``images/10k/{train,val}``).

    Args:
        masks_dir: the folder of mask PNGs (not recursive).
        images_dir: the images' folder; each must exist and, unless ``verify="exists"``,
            have the mask's size. None: images are not checked.
        verify: ``"exists"`` (paths only), ``"header"`` (mask mode and size from the
            header), ``"decode"`` (also decode every mask and check its values up front;
            otherwise values are checked when a frame is indexed).
    """
    _check_verify(verify)
    masks_dir = _require_dir(Path(masks_dir), "BDD100K sem_seg masks")
    masks = sorted(p for p in masks_dir.iterdir() if p.is_file() and p.suffix.lower() == ".png")
    if not masks:
        raise _err(masks_dir, "no .png masks in this folder")
    sizes = [None] * len(masks)
    if verify != "exists":
        sizes = [_mask_header(m) for m in masks]
    if verify == "decode":
        for m in masks:
            _load_sem_mask(m)
    if images_dir is None:
        images = [m.with_suffix(image_suffix) for m in masks]
    else:
        images_dir = _require_dir(Path(images_dir), "BDD100K 10K images")
        images = [images_dir / (m.stem + image_suffix) for m in masks]
        image_sizes, _ = _check_images(images, "exists" if verify == "exists" else "header", masks_dir)
        for m, ms, ims in zip(masks, sizes, image_sizes):
            if ms is not None and ims is not None and ms != ims:
                raise _err(m, f"mask is {ms[1]}x{ms[0]} (WxH) but its image is {ims[1]}x{ims[0]}")
    items = [(im, m) for im, m in zip(images, masks)]

    def load(item) -> SemanticFrame:
        image, mask = item
        return SemanticFrame(image, _load_sem_mask(mask), SEM_SEG_NAMES, SEM_SEG_CLASSES, mask)

    return SemanticSet(items, load, SEM_SEG_NAMES, SEM_SEG_CLASSES, masks_dir, "bdd100k_sem_seg")


def _mask_header(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            mode, (w, h) = im.mode, im.size
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError) as err:
        raise _err(path, f"unreadable mask PNG ({err})") from None
    if mode not in ("L", "P"):
        raise _err(path, f"expected a one-channel label PNG (mode L or P), got mode {mode} "
                         "(the colour masks under sem_seg/colormaps are not labels)")
    return h, w


def _load_sem_mask(path: Path) -> np.ndarray:
    _mask_header(path)
    try:
        with Image.open(path) as im:
            ids = np.asarray(im)
    except (OSError, SyntaxError, ValueError) as err:
        raise _err(path, f"truncated or corrupt mask PNG ({err})") from None
    mapped = _SEM_LUT[ids]
    if (mapped < 0).any():
        bad = np.unique(ids[mapped < 0])
        raise _err(path, f"label ids {bad[:10].tolist()} are not BDD100K sem_seg ids (0..18, 255 unknown)")
    return mapped.astype(np.uint8)
