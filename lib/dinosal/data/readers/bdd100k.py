"""BDD100K detection labels (2018 ``bdd100k_labels_images_*.json`` or 2020 ``det_20``).

Scalabel ``box2d`` is 0-based with an *inclusive* max (the BDD100K toolkit
computes widths as ``x2 - x1 + 1``): read as ``(x1, y1, x2 + 1, y2 + 1)``.
"""

from __future__ import annotations

from pathlib import Path

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
    _read_json,
    _require_dir,
    parse_flag,
)

__all__ = ["BDD_ALIASES", "BDD_CLASSES", "BDD_SKIPPED", "bdd_category", "read_bdd100k"]

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
