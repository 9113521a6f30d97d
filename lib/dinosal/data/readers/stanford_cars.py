"""Stanford Cars devkit annotations (``cars_*_annos*.mat``, ``cars_meta.mat``).

Boxes and classes are 1-based (MATLAB) with an inclusive max: boxes are
read as ``(x1 - 1, y1 - 1, x2, y2)``, classes as ``class - 1``.
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
    _require_dir,
)

__all__ = ["read_stanford_cars"]


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
