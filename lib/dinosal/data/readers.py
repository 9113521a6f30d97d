"""Readers for the real datasets: BDD100K, Stanford Cars, Pascal VOC, COCO, image folders.

Every reader returns an :class:`AnnotatedSet` (a sequence of
:class:`Annotation`) only after the whole annotation file and every image
path have been checked: a problem raises :class:`DatasetError` whose message
starts with the offending file and names the problem, and no half-built set
is ever returned.

Box convention (the library's): ``xyxy`` float32 pixels, 0-based, exclusive
max, so ``x2 - x1`` is the width in pixels. Conversions from each format:

* BDD100K / Scalabel ``box2d`` is 0-based with an *inclusive* max (the
  BDD100K toolkit computes widths as ``x2 - x1 + 1``):
  ``(x1, y1, x2 + 1, y2 + 1)``.
* Pascal VOC and Stanford Cars are 1-based with inclusive max (MATLAB):
  ``(xmin - 1, ymin - 1, xmax, ymax)`` — the same shift LOST applies.
* COCO ``bbox`` is ``[x, y, w, h]`` in continuous 0-based pixels:
  ``(x, y, x + w, y + h)``; ``iscrowd`` annotations are dropped.

Boxes may poke out of the image by at most ``box_tolerance`` pixels (then
they are clipped); farther out, empty, or non-finite boxes are errors.

Images are loaded by :func:`load_rgb` as ``(H, W, 3)`` uint8 with these
documented conversions: grayscale (``L``, ``1``) is replicated to RGB;
images with alpha (``RGBA``, ``LA``, ``PA``, palette with transparency) are
composited on ``alpha_background`` (white by default); 16-bit grayscale
(``I;16*``, ``I``) maps 0..65535 linearly to 0..255 (divide by 257 and
round); CMYK/YCbCr/etc. go through Pillow's RGB conversion; floating-point
images are rejected. Unreadable or truncated files raise :class:`DatasetError`.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

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

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)


class DatasetError(ValueError):
    """A dataset file or folder that cannot be used; the message starts with the path."""


def _err(path, problem: str) -> DatasetError:
    return DatasetError(f"{path}: {problem}")


@dataclass(frozen=True, eq=False)
class Annotation:
    """One image's ground truth.

    Attributes:
        image: path of the image file.
        boxes: ``(n, 4)`` float32 xyxy, 0-based, exclusive max (may be empty).
        labels: ``(n,)`` int64 indices into the set's ``class_names``; for
            classification folders ``n == 1`` and ``boxes`` is empty.
        size: ``(H, W)`` of the image, or None when not checked.
        flags: per-object bool arrays such as ``difficult`` / ``truncated`` (VOC),
            ``occluded`` / ``truncated`` (BDD100K).
    """

    image: Path
    boxes: np.ndarray
    labels: np.ndarray
    size: tuple[int, int] | None = None
    flags: Mapping[str, np.ndarray] = field(default_factory=dict)


class AnnotatedSet(SequenceABC):
    """A validated dataset: ``len``, indexing gives :class:`Annotation`.

    Attributes:
        items: the annotations, in file order.
        class_names: what ``labels`` index.
        source: the annotation file or folder read.
        format: ``"bdd100k"``, ``"stanford_cars"``, ``"voc"``, ``"coco"``,
            ``"class_folders"`` or ``"image_folder"``.
    """

    def __init__(self, items: Sequence[Annotation], class_names: Sequence[str], source: Path,
                 format: str) -> None:
        self.items = tuple(items)
        self.class_names = tuple(class_names)
        self.source = Path(source)
        self.format = format

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]

    def __repr__(self) -> str:
        return f"AnnotatedSet({self.format}, {len(self)} images, {len(self.class_names)} classes, {self.source})"

    def multi_hot(self) -> np.ndarray:
        """``(N, C)`` float32: 1 where an image has at least one object of a class."""
        out = np.zeros((len(self), len(self.class_names)), np.float32)
        for i, a in enumerate(self.items):
            out[i, a.labels] = 1.0
        return out

    def image(self, index: int, alpha_background=(255, 255, 255)) -> np.ndarray:
        """``(H, W, 3)`` uint8 image of item ``index`` (see :func:`load_rgb`)."""
        return load_rgb(self.items[index].image, alpha_background)


# --------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------


def load_rgb(path, alpha_background=(255, 255, 255)) -> np.ndarray:
    """Decode an image file to ``(H, W, 3)`` uint8 RGB (conversions in the module doc)."""
    path = Path(path)
    if not path.is_file():
        raise _err(path, "image file not found")
    try:
        with Image.open(path) as im:
            im.load()
            return _to_rgb(im, alpha_background, path)
    except DatasetError:
        raise
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as err:
        raise _err(path, f"unreadable or truncated image ({err})") from None


def _to_rgb(im: Image.Image, background, path) -> np.ndarray:
    mode = im.mode
    if mode == "RGB":
        return np.asarray(im).copy()
    if mode in ("L", "1"):
        g = np.asarray(im.convert("L"))
        return np.repeat(g[..., None], 3, axis=2)
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(im).astype(np.float64)
        g = np.clip(np.rint(a / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if mode == "F":
        raise _err(path, "floating-point images are not supported")
    if mode == "P" and "transparency" in im.info:
        im, mode = im.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = np.asarray(im.convert("RGBA")).astype(np.float32)
        alpha = rgba[..., 3:] / 255.0
        bg = np.asarray(background, np.float32).reshape(1, 1, 3)
        return np.rint(rgba[..., :3] * alpha + bg * (1.0 - alpha)).astype(np.uint8)
    return np.asarray(im.convert("RGB")).copy()


def _image_size(path: Path, verify: str) -> tuple[int, int] | None:
    """Check an image per ``verify`` and return its ``(H, W)`` (None for "exists")."""
    if not path.is_file():
        raise _err(path, "image file not found")
    if verify == "exists":
        return None
    if verify == "decode":
        a = load_rgb(path)
        return a.shape[0], a.shape[1]
    try:
        with Image.open(path) as im:
            w, h = im.size
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError) as err:
        raise _err(path, f"unreadable image header ({err})") from None
    return h, w


_VERIFY = ("exists", "header", "decode")


def _check_verify(verify: str) -> None:
    if verify not in _VERIFY:
        raise ValueError(f"verify must be one of {_VERIFY}, got {verify!r}")


def _check_boxes(boxes: np.ndarray, size: tuple[int, int] | None, where: str, tol: float) -> np.ndarray:
    """Validate ``(n, 4)`` boxes against an ``(H, W)`` image; clip within ``tol``."""
    if len(boxes) == 0:
        return boxes.reshape(0, 4).astype(np.float32)
    finite = np.isfinite(boxes).all(axis=1)
    bad = ~finite | (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if size is not None:
        H, W = size
        bad |= (boxes[:, 0] < -tol) | (boxes[:, 1] < -tol) | (boxes[:, 2] > W + tol) | (boxes[:, 3] > H + tol)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        extent = f" of the {size[1]}x{size[0]} (W x H) image" if size else ""
        raise DatasetError(f"{where}: box {k} {boxes[k].tolist()} is empty or outside the bounds{extent}")
    if size is not None:
        boxes = boxes.copy()
        np.clip(boxes[:, 0::2], 0, size[1], out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, size[0], out=boxes[:, 1::2])
    return boxes.astype(np.float32)


def _read_json(path: Path, what: str):
    if not path.is_file():
        raise _err(path, f"{what} file not found")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _err(path, f"malformed JSON ({err})") from None


def _require_dir(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise _err(path, f"{what} folder not found")
    return path


# --------------------------------------------------------------------------
# BDD100K
# --------------------------------------------------------------------------


def bdd_category(name: str) -> str | None:
    """The canonical BDD100K category of ``name`` (aliases resolved); None if skipped."""
    name = BDD_ALIASES.get(name, name)
    if name in BDD_SKIPPED:
        return None
    if name not in BDD_CLASSES:
        raise KeyError(name)
    return name


def read_bdd100k(labels_json, images_dir, *, verify: str = "header", allow_empty: bool = True,
                 box_tolerance: float = 1.0) -> AnnotatedSet:
    """Read BDD100K detection labels (2018 ``bdd100k_labels_images_*.json`` or 2020 ``det_20``).

    The file is a list of frames ``{"name", "labels": [{"category", "box2d":
    {x1, y1, x2, y2}, "attributes": {...}}]}``. Categories map onto
    :data:`BDD_CLASSES` through :data:`BDD_ALIASES`; :data:`BDD_SKIPPED`
    ones are dropped; any other name is an error. A frame with no
    ``labels`` (or an empty list) is kept with no boxes (an all-zero
    multi-hot) when ``allow_empty``, and is an error otherwise; an empty
    frame list is always an error.

    Args:
        labels_json: the label file.
        images_dir: folder holding the frames' ``name`` files.
        verify: ``"exists"`` (path only), ``"header"`` (size from the header,
            boxes checked against it), ``"decode"`` (also decode every image,
            catching truncated files up front).
    """
    _check_verify(verify)
    labels_json, images_dir = Path(labels_json), _require_dir(Path(images_dir), "BDD100K images")
    frames = _read_json(labels_json, "BDD100K label")
    if not isinstance(frames, list):
        raise _err(labels_json, "expected a JSON list of frames")
    if not frames:
        raise _err(labels_json, "empty label list (no frames)")
    items, seen = [], set()
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
        boxes, labs, occl, trunc = [], [], [], []
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
            attrs = lab.get("attributes") or {}
            occl.append(bool(attrs.get("occluded", False)))
            trunc.append(bool(attrs.get("truncated", False)))
        if not labs and not allow_empty:
            raise DatasetError(f"{where}: no detection labels (allow_empty=False)")
        path = images_dir / fr["name"]
        size = _image_size(path, verify)
        items.append(Annotation(
            path, _check_boxes(np.asarray(boxes, np.float32).reshape(-1, 4), size, where, box_tolerance),
            np.asarray(labs, np.int64), size,
            {"occluded": np.asarray(occl, bool), "truncated": np.asarray(trunc, bool)},
        ))
    return AnnotatedSet(items, BDD_CLASSES, labels_json, "bdd100k")


# --------------------------------------------------------------------------
# Stanford Cars
# --------------------------------------------------------------------------


def _loadmat(path: Path, what: str) -> dict:
    from scipy.io import loadmat

    if not path.is_file():
        raise _err(path, f"{what} file not found")
    try:
        return loadmat(path, squeeze_me=True, struct_as_record=True)
    except Exception as err:  # scipy raises ValueError, TypeError, MatReadError, ...
        raise _err(path, f"malformed MAT file ({type(err).__name__}: {err})") from None


def read_stanford_cars(annos_mat, images_dir, meta_mat=None, *, verify: str = "header",
                       box_tolerance: float = 1.0) -> AnnotatedSet:
    """Read Stanford Cars devkit annotations.

    ``annos_mat`` is ``cars_train_annos.mat`` / ``cars_test_annos_withlabels.mat``
    (struct array ``annotations`` with ``bbox_x1, bbox_y1, bbox_x2, bbox_y2,
    class, fname``) or the all-in-one ``cars_annos.mat`` (``relative_im_path``
    instead of ``fname``; then ``class_names`` is in the same file).
    ``meta_mat`` is ``cars_meta.mat`` (``class_names``). Classes are 1-based
    in the file and 0-based here; boxes are converted from 1-based inclusive.
    """
    _check_verify(verify)
    annos_mat = Path(annos_mat)
    images_dir = _require_dir(Path(images_dir), "Stanford Cars images")
    m = _loadmat(annos_mat, "Stanford Cars annotation")
    if "annotations" not in m:
        raise _err(annos_mat, f"no 'annotations' struct (variables: {sorted(k for k in m if not k.startswith('__'))})")
    ann = np.atleast_1d(m["annotations"])
    fields = ann.dtype.names or ()
    name_field = "fname" if "fname" in fields else "relative_im_path"
    need = {"bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", name_field}
    if not need <= set(fields):
        raise _err(annos_mat, f"'annotations' lacks fields {sorted(need - set(fields))}")
    if "class" not in fields:
        raise _err(annos_mat, "no 'class' field (the test split's cars_test_annos.mat has no labels; "
                              "use cars_test_annos_withlabels.mat)")
    if len(ann) == 0:
        raise _err(annos_mat, "empty annotation list")
    meta_src = annos_mat if meta_mat is None else Path(meta_mat)
    meta = m if meta_mat is None else _loadmat(meta_src, "Stanford Cars meta")
    if "class_names" not in meta:
        raise _err(meta_src, "no 'class_names' (pass meta_mat=cars_meta.mat)")
    class_names = tuple(str(c) for c in np.atleast_1d(meta["class_names"]))
    items = []
    for i, a in enumerate(ann):
        fname = str(a[name_field])
        where = f"{annos_mat}: annotation {i} ({fname})"
        try:
            box = np.asarray([[float(a["bbox_x1"]) - 1, float(a["bbox_y1"]) - 1,
                               float(a["bbox_x2"]), float(a["bbox_y2"])]], np.float32)
            cls = int(a["class"]) - 1
        except (TypeError, ValueError):
            raise DatasetError(f"{where}: non-numeric box or class") from None
        if not 0 <= cls < len(class_names):
            raise DatasetError(f"{where}: unknown class {cls + 1} (classes are 1..{len(class_names)})")
        path = images_dir / fname
        size = _image_size(path, verify)
        items.append(Annotation(path, _check_boxes(box, size, where, box_tolerance),
                                np.asarray([cls], np.int64), size))
    return AnnotatedSet(items, class_names, annos_mat, "stanford_cars")


# --------------------------------------------------------------------------
# Folders
# --------------------------------------------------------------------------


def _images_in(folder: Path, recursive: bool) -> list[Path]:
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def read_class_folders(root, *, verify: str = "header") -> AnnotatedSet:
    """Read an ImageFolder-style layout ``root/<class>/<image>`` (e.g. Stanford Cars' ``car_data/train``).

    Class names are the sub-folder names in sorted order (as torchvision's
    ``ImageFolder``); every item has one label and no boxes. A class folder
    without images is an error.
    """
    _check_verify(verify)
    root = _require_dir(Path(root), "class-folder dataset")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise _err(root, "no class sub-folders")
    items = []
    for k, c in enumerate(classes):
        files = _images_in(root / c, recursive=True)
        if not files:
            raise _err(root / c, "class folder holds no images")
        for f in files:
            items.append(Annotation(f, np.zeros((0, 4), np.float32), np.asarray([k], np.int64),
                                    _image_size(f, verify)))
    return AnnotatedSet(items, classes, root, "class_folders")


def read_image_folder(root, *, recursive: bool = False, verify: str = "header") -> AnnotatedSet:
    """Read a plain folder of images (no labels), sorted by path."""
    _check_verify(verify)
    root = _require_dir(Path(root), "image")
    files = _images_in(root, recursive)
    if not files:
        raise _err(root, f"no images with extensions {IMAGE_EXTENSIONS}")
    items = [Annotation(f, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), _image_size(f, verify))
             for f in files]
    return AnnotatedSet(items, (), root, "image_folder")


# --------------------------------------------------------------------------
# Pascal VOC
# --------------------------------------------------------------------------


def _xml_text(node, tag: str, where: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None:
        raise DatasetError(f"{where}: missing <{tag}>")
    return child.text.strip()


def read_voc_xml(xml_path, class_names: Sequence[str] = VOC_CLASSES) -> tuple[str, tuple[int, int], np.ndarray, np.ndarray, dict]:
    """Parse one VOC annotation: ``(filename, (H, W), boxes, labels, flags)``.

    Boxes are converted from 1-based inclusive to 0-based exclusive max:
    ``(xmin - 1, ymin - 1, xmax, ymax)``.
    """
    xml_path = Path(xml_path)
    if not xml_path.is_file():
        raise _err(xml_path, "VOC annotation file not found")
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as err:
        raise _err(xml_path, f"malformed XML ({err})") from None
    where = str(xml_path)
    index = {c: k for k, c in enumerate(class_names)}
    try:
        size = root.find("size")
        if size is None:
            raise DatasetError(f"{where}: missing <size>")
        hw = (int(float(_xml_text(size, "height", where))), int(float(_xml_text(size, "width", where))))
        boxes, labels, diff, trunc = [], [], [], []
        for j, obj in enumerate(root.findall("object")):
            name = _xml_text(obj, "name", where)
            if name not in index:
                raise DatasetError(f"{where}: object {j} has unknown class {name!r}; known: {list(class_names)}")
            bb = obj.find("bndbox")
            if bb is None:
                raise DatasetError(f"{where}: object {j} has no <bndbox>")
            x1, y1, x2, y2 = (float(_xml_text(bb, t, where)) for t in ("xmin", "ymin", "xmax", "ymax"))
            boxes.append([x1 - 1, y1 - 1, x2, y2])
            labels.append(index[name])
            diff.append(obj.findtext("difficult", "0").strip() == "1")
            trunc.append(obj.findtext("truncated", "0").strip() == "1")
        filename = _xml_text(root, "filename", where)
    except ValueError as err:
        if isinstance(err, DatasetError):
            raise
        raise DatasetError(f"{where}: non-numeric size or box ({err})") from None
    if not labels:
        raise DatasetError(f"{where}: empty label list (no <object>)")
    flags = {"difficult": np.asarray(diff, bool), "truncated": np.asarray(trunc, bool)}
    return filename, hw, np.asarray(boxes, np.float32), np.asarray(labels, np.int64), flags


def read_voc(root, image_set: str = "trainval", *, class_names: Sequence[str] = VOC_CLASSES,
             verify: str = "header", box_tolerance: float = 1.0) -> AnnotatedSet:
    """Read Pascal VOC 2007/2012 (``root`` = ``VOCdevkit/VOC2007``).

    Image ids come from ``ImageSets/Main/<image_set>.txt``; each
    ``Annotations/<id>.xml`` gives boxes, classes and the ``difficult`` /
    ``truncated`` flags (kept in ``Annotation.flags``, e.g. for LOST's
    ``--no_hard``); images are ``JPEGImages/<filename>``. ``class_names``
    defaults to the 20 VOC classes; pass others for exported synthetic sets.
    The size in the XML is checked against the image header.
    """
    _check_verify(verify)
    root = _require_dir(Path(root), "VOC")
    list_file = root / "ImageSets" / "Main" / f"{image_set}.txt"
    if not list_file.is_file():
        raise _err(list_file, "VOC image-set list not found")
    ids = [ln.split()[0] for ln in list_file.read_text().splitlines() if ln.strip()]
    if not ids:
        raise _err(list_file, "empty image-set list")
    items = []
    for image_id in ids:
        xml_path = root / "Annotations" / f"{image_id}.xml"
        filename, hw, boxes, labels, flags = read_voc_xml(xml_path, class_names)
        path = root / "JPEGImages" / filename
        size = _image_size(path, verify)
        if size is not None and size != hw:
            raise _err(xml_path, f"<size> says {hw[1]}x{hw[0]} but {path.name} is {size[1]}x{size[0]} (W x H)")
        items.append(Annotation(path, _check_boxes(boxes, hw, str(xml_path), box_tolerance), labels, hw, flags))
    return AnnotatedSet(items, class_names, list_file, "voc")


# --------------------------------------------------------------------------
# COCO
# --------------------------------------------------------------------------


def read_coco(instances_json, images_dir, *, verify: str = "header", box_tolerance: float = 1.0,
              keep_empty: bool = True) -> AnnotatedSet:
    """Read COCO ``instances_*.json``: ``bbox`` ``[x, y, w, h]`` -> xyxy; ``iscrowd`` dropped.

    ``class_names`` are the categories sorted by id and ``labels`` index them.
    Images without (non-crowd) annotations are kept with no boxes when
    ``keep_empty``, else left out. The size in the file is checked against
    the image header.
    """
    _check_verify(verify)
    instances_json = Path(instances_json)
    images_dir = _require_dir(Path(images_dir), "COCO images")
    d = _read_json(instances_json, "COCO instances")
    if not isinstance(d, dict) or not {"images", "annotations", "categories"} <= set(d):
        raise _err(instances_json, "expected an object with 'images', 'annotations' and 'categories'")
    if not d["images"]:
        raise _err(instances_json, "empty image list")
    try:
        cats = sorted(d["categories"], key=lambda c: int(c["id"]))
        cat_index = {int(c["id"]): k for k, c in enumerate(cats)}
        class_names = tuple(str(c["name"]) for c in cats)
        images = {int(im["id"]): im for im in d["images"]}
        per_image: dict[int, list] = {i: [] for i in images}
        for j, a in enumerate(d["annotations"]):
            if a.get("iscrowd", 0):
                continue
            if int(a["image_id"]) not in images:
                raise _err(instances_json, f"annotation {j} refers to unknown image_id {a['image_id']}")
            if int(a["category_id"]) not in cat_index:
                raise _err(instances_json, f"annotation {j} has unknown category_id {a['category_id']}")
            x, y, w, h = (float(v) for v in a["bbox"])
            per_image[int(a["image_id"])].append(([x, y, x + w, y + h], cat_index[int(a["category_id"])]))
    except (KeyError, TypeError, ValueError) as err:
        if isinstance(err, DatasetError):
            raise
        raise _err(instances_json, f"malformed COCO record ({type(err).__name__}: {err})") from None
    items = []
    for image_id in sorted(images):
        im, anns = images[image_id], per_image[image_id]
        if not anns and not keep_empty:
            continue
        where = f"{instances_json}: image {image_id} ({im.get('file_name')})"
        hw = (int(im["height"]), int(im["width"]))
        path = images_dir / str(im["file_name"])
        size = _image_size(path, verify)
        if size is not None and size != hw:
            raise DatasetError(f"{where}: size in file {hw[1]}x{hw[0]} but image is {size[1]}x{size[0]}")
        boxes = np.asarray([b for b, _ in anns], np.float32).reshape(-1, 4)
        labels = np.asarray([c for _, c in anns], np.int64)
        items.append(Annotation(path, _check_boxes(boxes, hw, where, box_tolerance), labels, hw))
    if not items:
        raise _err(instances_json, "no images left (all without annotations)")
    return AnnotatedSet(items, class_names, instances_json, "coco")

