"""Pascal VOC 2007/2012 (``VOCdevkit/VOC20xx``: image-set lists, XML annotations, JPEG images).

Boxes are 1-based (MATLAB) with an inclusive max: read as
``(xmin - 1, ymin - 1, xmax, ymax)``, the same shift LOST applies.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

import numpy as np

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
    _require_dir,
    parse_flag,
)

__all__ = ["VOC_CLASSES", "read_voc", "read_voc_xml"]

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)


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
