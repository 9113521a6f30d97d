"""Image folders: a plain folder of unlabelled images, and ImageFolder-style class folders.

These feed training, so besides ``verify`` they take ``on_bad``
(:data:`~dinosal.data.readers.common.ON_BAD`): raise one error listing
every bad image, or leave the bad images out (listed in
``AnnotatedSet.skipped_images``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .common import (
    IMAGE_EXTENSIONS,
    AnnotatedSet,
    Annotation,
    _check_images,
    _check_on_bad,
    _check_verify,
    _err,
    _images_in,
    _require_dir,
)

__all__ = ["read_class_folders", "read_image_folder"]


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
