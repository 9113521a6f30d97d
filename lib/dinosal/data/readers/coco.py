"""COCO ``instances_*.json``: ``bbox`` ``[x, y, w, h]`` in continuous 0-based pixels.

Boxes are read as ``(x, y, x + w, y + h)``; ``iscrowd`` annotations are dropped.
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

__all__ = ["read_coco"]


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
