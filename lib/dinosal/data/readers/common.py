"""What every dataset reader shares: the annotation types, errors, the bad-box policy, image checks.

Every reader returns an :class:`AnnotatedSet` (a sequence of
:class:`Annotation`) only after the whole annotation file and every image
path have been checked: a problem raises :class:`DatasetError` whose message
starts with the offending file and names the problem. Boxes are ``xyxy``
float32 pixels, 0-based, exclusive max (the per-format conversions are
listed in :mod:`dinosal.data.readers`).

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
from collections.abc import Sequence as SequenceABC
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "BAD_BOXES",
    "IMAGE_EXTENSIONS",
    "ON_BAD",
    "VERIFY",
    "AnnotatedSet",
    "Annotation",
    "BoxIssues",
    "DatasetError",
    "image_files",
    "load_rgb",
    "parse_flag",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


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
# Image files of a folder
# --------------------------------------------------------------------------


def _images_in(folder: Path, recursive: bool) -> list[Path]:
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def image_files(folder, *, recursive: bool = False) -> list[Path]:
    """The image files :func:`read_image_folder` would read under ``folder``
    (extensions :data:`IMAGE_EXTENSIONS`, sorted by path), without opening
    them; the run cache fingerprints this list."""
    return _images_in(_require_dir(Path(folder), "image"), recursive)
