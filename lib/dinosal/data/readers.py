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
they are clipped). A box farther out, empty (also once clipped) or
non-finite is *bad*. Real datasets carry a few, so every reader that reads
boxes takes one policy for them, ``bad_boxes`` (:data:`BAD_BOXES`):

* ``"raise"`` (default): the first bad box is a :class:`DatasetError` naming
  the file, the item, the box and the image size;
* ``"clip"``: a box that sticks out is clipped to the image; one that is
  still empty (wholly outside, zero-area) or is non-finite is dropped;
* ``"skip"``: every bad box is dropped.

"clip" and "skip" drop the *box* (with its label and flags), never the
image: an image whose boxes are all dropped stays in the set without boxes
(Stanford Cars, one car per image, keeps the image's class label). The
result's :attr:`AnnotatedSet.box_issues` (:class:`BoxIssues`) counts the
boxes clipped and dropped and describes the first ones.

Boolean attributes (BDD100K ``occluded`` / ``truncated`` / ``crowd``, VOC
``<difficult>`` / ``<truncated>``, COCO ``iscrowd``) are read by one strict
parser, :func:`parse_flag`: ``true``/``false`` and ``1``/``0`` as booleans,
integers or strings (any case, surrounding spaces ignored); anything else is
an error naming the file, the item and the attribute. (The string
``"false"`` is false, not truthy.)

Images are checked per ``verify`` (:data:`VERIFY`): ``"exists"`` (the path
only), ``"header"`` (default: the size from the header, boxes checked
against it) or ``"decode"``: every image decoded in full by :func:`load_rgb`,
as training and evaluation will decode it, in a few threads and with a
progress bar, so a truncated or corrupt file is found before a run starts
rather than when training draws it, minutes or hours in. Every image is
checked before anything is raised, and one :class:`DatasetError` lists all
the bad files (the first ten by name, then how many more). The folder
readers, which feed training, also take ``on_bad="skip"``: bad files are
left out and listed in :attr:`AnnotatedSet.skipped_images`.

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
import os
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
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


BAD_BOXES = ("raise", "clip", "skip")
"""Values of ``bad_boxes`` (see the module doc)."""

ON_BAD = ("raise", "skip")
"""Values of ``on_bad`` of the folder readers: raise one error listing every
bad image, or leave the bad images out (listed in ``skipped_images``)."""

_N_LISTED = 10  # bad files / boxes named in an error or kept as examples


@dataclass
class BoxIssues:
    """What the ``bad_boxes`` policy did while a set was read.

    Attributes:
        policy: ``"raise"``, ``"clip"`` or ``"skip"``.
        n_clipped: boxes that stuck out of the image by more than
            ``box_tolerance`` and were clipped ("clip").
        n_skipped: boxes dropped with their label and flags: every bad box
            ("skip"), or those empty once clipped or non-finite ("clip").
            The images they belonged to stay in the set.
        examples: descriptions of the first few (file, item, box, image
            size, what was done).
    """

    policy: str = "raise"
    n_clipped: int = 0
    n_skipped: int = 0
    examples: list = field(default_factory=list)

    def _note(self, text: str) -> None:
        if len(self.examples) < _N_LISTED:
            self.examples.append(text)


_TRUE, _FALSE = ("true", "1"), ("false", "0")


def parse_flag(value, where: str, name: str) -> bool:
    """A dataset's boolean attribute, strictly.

    True for ``True``, ``1``, ``"true"``, ``"1"``; False for ``False``,
    ``0``, ``"false"``, ``"0"`` (strings in any case, surrounding spaces
    ignored; numpy booleans and integers too). Anything else (``"yes"``,
    ``2``, ``0.5``, ``None``, ``""``) raises :class:`DatasetError` starting
    with ``where`` (the file and the item) and naming the attribute ``name``.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and int(value) in (0, 1):
        return bool(int(value))
    if isinstance(value, str):
        v = value.strip().lower()
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
    raise DatasetError(f"{where}: attribute {name!r} is {value!r}, not a boolean "
                       "(expected true/false or 1/0, as a boolean, an integer or a string)")


def _check_policy(bad_boxes: str) -> None:
    if bad_boxes not in BAD_BOXES:
        raise ValueError(f"bad_boxes must be one of {BAD_BOXES}, got {bad_boxes!r}")


def _check_on_bad(on_bad: str) -> None:
    if on_bad not in ON_BAD:
        raise ValueError(f"on_bad must be one of {ON_BAD}, got {on_bad!r}")


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
            ``occluded`` / ``truncated`` / ``crowd`` (BDD100K).
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
        box_issues: :class:`BoxIssues`, what ``bad_boxes`` clipped or dropped
            (all zero for sets without boxes).
        skipped_images: ``"<path>: <problem>"`` of each image left out by
            ``on_bad="skip"`` (folder readers); empty otherwise.
    """

    def __init__(self, items: Sequence[Annotation], class_names: Sequence[str], source: Path,
                 format: str, box_issues: BoxIssues | None = None,
                 skipped_images: Sequence[str] = ()) -> None:
        self.items = tuple(items)
        self.class_names = tuple(class_names)
        self.source = Path(source)
        self.format = format
        self.box_issues = box_issues if box_issues is not None else BoxIssues()
        self.skipped_images = tuple(skipped_images)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]

    def __repr__(self) -> str:
        notes = ""
        if self.box_issues.n_clipped or self.box_issues.n_skipped:
            notes += (f", bad_boxes={self.box_issues.policy!r}: {self.box_issues.n_clipped} boxes clipped, "
                      f"{self.box_issues.n_skipped} dropped")
        if self.skipped_images:
            notes += f", {len(self.skipped_images)} bad images skipped"
        return (f"AnnotatedSet({self.format}, {len(self)} images, {len(self.class_names)} classes, "
                f"{self.source}{notes})")

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


VERIFY = ("exists", "header", "decode")
"""Values of ``verify`` (see the module doc)."""
_VERIFY = VERIFY


def _check_verify(verify: str) -> None:
    if verify not in _VERIFY:
        raise ValueError(f"verify must be one of {_VERIFY}, got {verify!r}")


def _try_size(path: Path, verify: str):
    try:
        return _image_size(path, verify), None
    except DatasetError as err:
        return None, str(err)


def _check_images(paths: Sequence[Path], verify: str, source, *, progress: bool | None = None,
                  on_bad: str = "raise", hint: str = "") -> tuple[list, list[tuple[int, str]]]:
    """Check every image per ``verify``: ``(sizes, bad)``, ``bad`` = ``[(index, "<path>: <problem>")]``.

    Every file is checked before anything is raised. With ``on_bad="raise"``
    bad files raise one :class:`DatasetError`: a single one as its own error
    (the message starts with the image), several as a list under ``source``
    (the first :data:`_N_LISTED`, then a count). ``verify="decode"`` decodes
    in up to 8 threads (Pillow releases the GIL while decoding).
    ``progress``: a tqdm bar (None: only for ``verify="decode"``).
    """
    from tqdm.auto import tqdm

    show = verify == "decode" if progress is None else bool(progress)
    workers = min(8, os.cpu_count() or 1) if verify == "decode" else 1
    bar = tqdm(total=len(paths), desc=f"{Path(source).name}: verify={verify}", unit="img", disable=not show)
    results = []
    try:
        if workers > 1 and len(paths) > 1:
            with ThreadPoolExecutor(workers) as pool:
                for r in pool.map(lambda p: _try_size(p, verify), paths):
                    results.append(r)
                    bar.update()
        else:
            for p in paths:
                results.append(_try_size(p, verify))
                bar.update()
    finally:
        bar.close()
    sizes = [s for s, _ in results]
    bad = [(i, msg) for i, (_, msg) in enumerate(results) if msg is not None]
    if bad and on_bad == "raise":
        if len(bad) == 1:
            raise DatasetError(bad[0][1] + (f" ({hint})" if hint else ""))
        listed = "\n".join(f"  {msg}" for _, msg in bad[:_N_LISTED])
        more = f"\n  ... and {len(bad) - _N_LISTED} more" if len(bad) > _N_LISTED else ""
        raise _err(source, f"{len(bad)} of {len(paths)} images cannot be used (verify={verify!r}):\n"
                           f"{listed}{more}" + (f"\n{hint}" if hint else ""))
    return sizes, bad


def _check_boxes(boxes, size: tuple[int, int] | None, where: str, tol: float, policy: str = "raise",
                 issues: BoxIssues | None = None, names: Sequence[str] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Check ``(n, 4)`` boxes against an ``(H, W)`` image (None: size unknown) per ``policy``.

    Returns ``(boxes, keep)``: the kept boxes, float32, clipped to the image,
    and the ``(n,)`` bool mask of the input rows kept (to filter labels and
    flags alike). Bad boxes (module doc) raise, are clipped or are dropped;
    ``issues`` counts them. ``names[k]`` says which object row ``k`` is.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    if n == 0:
        return boxes, np.ones(0, bool)
    finite = np.isfinite(boxes).all(axis=1)
    empty = ~((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))
    outside = np.zeros(n, bool)
    clipped = boxes.copy()
    if size is not None:
        H, W = size
        outside = (boxes[:, 0] < -tol) | (boxes[:, 1] < -tol) | (boxes[:, 2] > W + tol) | (boxes[:, 3] > H + tol)
        np.clip(clipped[:, 0::2], 0, W, out=clipped[:, 0::2])
        np.clip(clipped[:, 1::2], 0, H, out=clipped[:, 1::2])
    empty_clipped = ~((clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1]))
    bad = ~finite | empty | outside | empty_clipped
    if not bad.any():
        return clipped, np.ones(n, bool)

    image = f"image {size[1]}x{size[0]} (W x H)" if size is not None else "image size not read (verify='exists')"

    def describe(k: int) -> str:
        what = f" ({names[k]})" if names is not None else ""
        if not finite[k]:
            reason = "is not finite"
        elif empty[k]:
            reason = "is empty (x2 <= x1 or y2 <= y1)"
        elif outside[k]:
            reason = f"lies outside the bounds by more than box_tolerance={tol:g} px"
        else:
            reason = "is empty once clipped to the image"
        return f"{where}: box {k} {boxes[k].tolist()}{what} {reason}; {image}"

    if policy == "raise":
        k = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"{describe(k)}. Real datasets carry a few such boxes: pass bad_boxes='clip' "
                           "(clip boxes to the image) or bad_boxes='skip' (drop bad boxes, keep the images)")
    drop = bad if policy == "skip" else ~finite | empty_clipped
    issues = issues if issues is not None else BoxIssues(policy)
    for k in np.flatnonzero(bad):
        if drop[k]:
            issues.n_skipped += 1
            issues._note(f"{describe(k)}: dropped")
        else:
            issues.n_clipped += 1
            issues._note(f"{describe(k)}: clipped to {clipped[k].tolist()}")
    keep = ~drop
    return clipped[keep], keep


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
        bad_boxes: ``"raise"`` (default), ``"clip"`` or ``"skip"`` (module
            doc): a dropped box takes its label and flags with it, so the
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
                       box_tolerance: float = 1.0, bad_boxes: str = "raise",
                       progress: bool | None = None) -> AnnotatedSet:
    """Read Stanford Cars devkit annotations.

    ``annos_mat`` is ``cars_train_annos.mat`` / ``cars_test_annos_withlabels.mat``
    (struct array ``annotations`` with ``bbox_x1, bbox_y1, bbox_x2, bbox_y2,
    class, fname``) or the all-in-one ``cars_annos.mat`` (``relative_im_path``
    instead of ``fname``; then ``class_names`` is in the same file).
    ``meta_mat`` is ``cars_meta.mat`` (``class_names``). Classes are 1-based
    in the file and 0-based here; boxes are converted from 1-based inclusive.

    ``verify``, ``box_tolerance``, ``bad_boxes`` and ``progress`` as in
    :func:`read_bdd100k`; a dropped box leaves its image in the set with no
    box and its class label (the label belongs to the image).
    """
    _check_verify(verify)
    _check_policy(bad_boxes)
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
    records = []
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
        records.append((images_dir / fname, where, box, cls))
    sizes, _ = _check_images([r[0] for r in records], verify, annos_mat, progress=progress)
    issues, items = BoxIssues(bad_boxes), []
    for (path, where, box, cls), size in zip(records, sizes):
        b, _ = _check_boxes(box, size, where, box_tolerance, bad_boxes, issues)
        items.append(Annotation(path, b, np.asarray([cls], np.int64), size))
    return AnnotatedSet(items, class_names, annos_mat, "stanford_cars", box_issues=issues)


# --------------------------------------------------------------------------
# Folders
# --------------------------------------------------------------------------


def _images_in(folder: Path, recursive: bool) -> list[Path]:
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def image_files(folder, *, recursive: bool = False) -> list[Path]:
    """The image files :func:`read_image_folder` would read under ``folder``
    (extensions :data:`IMAGE_EXTENSIONS`, sorted by path), without opening
    them; the run cache fingerprints this list."""
    return _images_in(_require_dir(Path(folder), "image"), recursive)


def _folder_items(files: Sequence[Path], labels: Sequence[int], verify: str, root: Path, on_bad: str,
                  progress: bool | None) -> tuple[list[Annotation], list[str]]:
    hint = "pass on_bad='skip' to leave the bad images out"
    sizes, bad = _check_images(files, verify, root, progress=progress, on_bad=on_bad, hint=hint)
    skipped = {i for i, _ in bad}
    items = [Annotation(f, np.zeros((0, 4), np.float32), np.asarray(lab, np.int64).reshape(-1), s)
             for i, (f, lab, s) in enumerate(zip(files, labels, sizes)) if i not in skipped]
    if not items:
        raise _err(root, f"all {len(files)} images are bad (first: {bad[0][1]})")
    return items, [msg for _, msg in bad]


def read_class_folders(root, *, verify: str = "header", on_bad: str = "raise",
                       progress: bool | None = None) -> AnnotatedSet:
    """Read an ImageFolder-style layout ``root/<class>/<image>`` (e.g. Stanford Cars' ``car_data/train``).

    Class names are the sub-folder names in sorted order (as torchvision's
    ``ImageFolder``); every item has one label and no boxes. A class folder
    without images is an error. ``verify``, ``on_bad`` and ``progress`` as
    in :func:`read_image_folder`.
    """
    _check_verify(verify)
    _check_on_bad(on_bad)
    root = _require_dir(Path(root), "class-folder dataset")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise _err(root, "no class sub-folders")
    files, labels = [], []
    for k, c in enumerate(classes):
        found = _images_in(root / c, recursive=True)
        if not found:
            raise _err(root / c, "class folder holds no images")
        files += found
        labels += [k] * len(found)
    items, skipped = _folder_items(files, labels, verify, root, on_bad, progress)
    return AnnotatedSet(items, classes, root, "class_folders", skipped_images=skipped)


def read_image_folder(root, *, recursive: bool = False, verify: str = "header", on_bad: str = "raise",
                      progress: bool | None = None) -> AnnotatedSet:
    """Read a plain folder of images (no labels), sorted by path; ``recursive``: sub-folders too.

    ``verify``: ``"exists"``, ``"header"`` (default; sizes from the headers)
    or ``"decode"``: decode every image in full, as training will, with a
    progress bar (``progress``; None: shown for "decode"), so a truncated or
    corrupt file is found before training starts, not when training draws
    it, minutes or hours in. Every image is checked first; then
    ``on_bad="raise"`` (default) raises one :class:`DatasetError` listing the
    bad files (the first ten and a count), and ``on_bad="skip"`` leaves them
    out and lists them in the result's ``skipped_images``. The ``paper``
    profile's training folders are read with ``verify="decode"``
    (:func:`dinosal.zoo.training_set`).
    """
    _check_verify(verify)
    _check_on_bad(on_bad)
    root = _require_dir(Path(root), "image")
    files = _images_in(root, recursive)
    if not files:
        raise _err(root, f"no images with extensions {IMAGE_EXTENSIONS}")
    items, skipped = _folder_items(files, [()] * len(files), verify, root, on_bad, progress)
    return AnnotatedSet(items, (), root, "image_folder", skipped_images=skipped)



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
    ``(xmin - 1, ymin - 1, xmax, ymax)``; boxes are not checked against the
    size here (:func:`read_voc` does). ``<difficult>`` / ``<truncated>``
    (absent: 0) are read by :func:`parse_flag`.
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
            diff.append(parse_flag(obj.findtext("difficult", "0"), f"{where}: object {j} ({name})", "difficult"))
            trunc.append(parse_flag(obj.findtext("truncated", "0"), f"{where}: object {j} ({name})", "truncated"))
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
             verify: str = "header", box_tolerance: float = 1.0, bad_boxes: str = "raise",
             progress: bool | None = None) -> AnnotatedSet:
    """Read Pascal VOC 2007/2012 (``root`` = ``VOCdevkit/VOC2007``).

    Image ids come from ``ImageSets/Main/<image_set>.txt``; each
    ``Annotations/<id>.xml`` gives boxes, classes and the ``difficult`` /
    ``truncated`` flags (kept in ``Annotation.flags``, e.g. for LOST's
    ``--no_hard``); images are ``JPEGImages/<filename>``. ``class_names``
    defaults to the 20 VOC classes; pass others for exported synthetic sets.
    The size in the XML is checked against the image header. ``verify``,
    ``box_tolerance``, ``bad_boxes`` and ``progress`` as in
    :func:`read_bdd100k` (boxes are checked against the XML's size).
    """
    _check_verify(verify)
    _check_policy(bad_boxes)
    root = _require_dir(Path(root), "VOC")
    list_file = root / "ImageSets" / "Main" / f"{image_set}.txt"
    if not list_file.is_file():
        raise _err(list_file, "VOC image-set list not found")
    ids = [ln.split()[0] for ln in list_file.read_text().splitlines() if ln.strip()]
    if not ids:
        raise _err(list_file, "empty image-set list")
    records = []
    for image_id in ids:
        xml_path = root / "Annotations" / f"{image_id}.xml"
        filename, hw, boxes, labels, flags = read_voc_xml(xml_path, class_names)
        records.append((xml_path, root / "JPEGImages" / filename, hw, boxes, labels, flags))
    sizes, _ = _check_images([r[1] for r in records], verify, list_file, progress=progress)
    issues, items = BoxIssues(bad_boxes), []
    for (xml_path, path, hw, boxes, labels, flags), size in zip(records, sizes):
        if size is not None and size != hw:
            raise _err(xml_path, f"<size> says {hw[1]}x{hw[0]} but {path.name} is {size[1]}x{size[0]} (W x H)")
        names = [f"object {j}, {class_names[c]}" for j, c in enumerate(labels)]
        b, keep = _check_boxes(boxes, hw, f"{xml_path} ({path.name})", box_tolerance, bad_boxes, issues, names)
        items.append(Annotation(path, b, labels[keep], hw, {k: v[keep] for k, v in flags.items()}))
    return AnnotatedSet(items, class_names, list_file, "voc", box_issues=issues)


# --------------------------------------------------------------------------
# COCO
# --------------------------------------------------------------------------


def read_coco(instances_json, images_dir, *, verify: str = "header", box_tolerance: float = 1.0,
              keep_empty: bool = True, bad_boxes: str = "raise", progress: bool | None = None) -> AnnotatedSet:
    """Read COCO ``instances_*.json``: ``bbox`` ``[x, y, w, h]`` -> xyxy; ``iscrowd`` dropped.

    ``class_names`` are the categories sorted by id and ``labels`` index them.
    Images without (non-crowd) annotations are kept with no boxes when
    ``keep_empty``, else left out (decided before ``bad_boxes`` drops any
    box). ``iscrowd`` is read by :func:`parse_flag`. The size in the file is
    checked against the image header. ``verify``, ``box_tolerance``,
    ``bad_boxes`` and ``progress`` as in :func:`read_bdd100k`.
    """
    _check_verify(verify)
    _check_policy(bad_boxes)
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
            if parse_flag(a.get("iscrowd", 0), f"{instances_json}: annotation {j} (id {a.get('id')})", "iscrowd"):
                continue
            if int(a["image_id"]) not in images:
                raise _err(instances_json, f"annotation {j} refers to unknown image_id {a['image_id']}")
            if int(a["category_id"]) not in cat_index:
                raise _err(instances_json, f"annotation {j} has unknown category_id {a['category_id']}")
            x, y, w, h = (float(v) for v in a["bbox"])
            per_image[int(a["image_id"])].append(([x, y, x + w, y + h], cat_index[int(a["category_id"])],
                                                  f"annotation {j}, id {a.get('id')}"))
    except (KeyError, TypeError, ValueError) as err:
        if isinstance(err, DatasetError):
            raise
        raise _err(instances_json, f"malformed COCO record ({type(err).__name__}: {err})") from None
    records = []
    for image_id in sorted(images):
        im, anns = images[image_id], per_image[image_id]
        if not anns and not keep_empty:
            continue
        where = f"{instances_json}: image {image_id} ({im.get('file_name')})"
        try:
            hw = (int(im["height"]), int(im["width"]))
            path = images_dir / str(im["file_name"])
        except (KeyError, TypeError, ValueError) as err:
            raise DatasetError(f"{where}: malformed image record ({type(err).__name__}: {err})") from None
        records.append((path, where, hw, anns))
    if not records:
        raise _err(instances_json, "no images left (all without annotations)")
    sizes, _ = _check_images([r[0] for r in records], verify, instances_json, progress=progress)
    issues, items = BoxIssues(bad_boxes), []
    for (path, where, hw, anns), size in zip(records, sizes):
        if size is not None and size != hw:
            raise DatasetError(f"{where}: size in file {hw[1]}x{hw[0]} but image is {size[1]}x{size[0]}")
        labels = np.asarray([c for _, c, _ in anns], np.int64)
        b, keep = _check_boxes([b for b, _, _ in anns], hw, where, box_tolerance, bad_boxes, issues,
                               [name for _, _, name in anns])
        items.append(Annotation(path, b, labels[keep], hw))
    return AnnotatedSet(items, class_names, instances_json, "coco", box_issues=issues)

