"""Write generated sets to disk in the real datasets' formats.

Each exporter takes a sequence of :class:`~dinosal.data.synthetic.Sample`
(e.g. ``generator[:200]``), writes everything into a temporary sibling
folder and renames it to ``root`` only when all files are written, so a
failure never leaves a half-written dataset. Each returns :class:`Exported`,
whose ``annotations`` and ``images`` are what the matching reader in
:mod:`dinosal.data.readers` takes.

An exporter never deletes or overwrites what it did not write. Every export
folder carries a marker file, ``.dinosal-export`` (JSON: the exporter, the
library version, the time, and the path and size of every file written);
the readers skip it as a hidden file. ``root`` may be

* missing or an empty folder: the export takes its place;
* an earlier export (it carries the marker and holds only files the marker
  lists, at their recorded sizes): an error unless ``overwrite=True``, which
  moves it aside, renames the new export into place, then removes the old;
* anything else -- a file, a symbolic link, a folder without the marker, an
  export to which other files were added: always :class:`FileExistsError`,
  and nothing on disk changes.

Nothing beside ``root`` is touched: the temporary folders are new hidden
siblings (``.<name>.tmp-*``, ``.<name>.old-*``) that are gone when the call
returns.

Box conversions are the inverse of the readers' (library boxes are 0-based,
exclusive max): BDD100K ``box2d`` gets ``x2 - 1, y2 - 1`` (inclusive max);
VOC and Stanford Cars get ``x1 + 1, y1 + 1`` (1-based, inclusive); COCO gets
``[x1, y1, x2 - x1, y2 - y1]``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from ..runs import AtomicWriteError, write_failed
from .readers import BDD_ALIASES, BDD_CLASSES
from .sample import Sample


@dataclass(frozen=True)
class Exported:
    """Where an exported set lives.

    Attributes:
        root: the dataset folder.
        annotations: the label file (BDD JSON, annotation .mat, COCO JSON) or
            folder (VOC root, class-folder root) a reader takes.
        images: the image folder.
        n: number of images written.
    """

    root: Path
    annotations: Path
    images: Path
    n: int


MARKER = ".dinosal-export"
"""Name of the marker file every exporter writes into the folder it creates."""


def _marker_files(root: Path) -> dict | None:
    """The ``files`` table of ``root``'s marker, or None without a valid marker."""
    marker = root / MARKER
    if marker.is_symlink() or not marker.is_file():
        return None
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    ok = (isinstance(info, dict) and str(info.get("written_by", "")).startswith(f"{__name__}.")
          and isinstance(info.get("files"), dict))
    return info["files"] if ok else None


def _unlisted(root: Path, files: dict) -> list[str]:
    """Paths under ``root`` (relative, sorted) that the marker's ``files`` do not
    account for: unlisted files, files of another size, links, other objects."""
    extra = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for name in dirnames + filenames:
            p = here / name
            rel = p.relative_to(root).as_posix()
            if rel == MARKER or (p.is_dir() and not p.is_symlink()):
                continue
            if p.is_symlink() or not p.is_file() or files.get(rel) != p.stat().st_size:
                extra.append(rel)
    return sorted(extra)


def is_export(root) -> bool:
    """True if ``root`` is a folder written by an exporter of this module and
    holds nothing else (the folders that ``overwrite=True`` may replace)."""
    root = Path(root)
    if root.is_symlink() or not root.is_dir():
        return False
    files = _marker_files(root)
    return files is not None and not _unlisted(root, files)


def _target_state(root: Path, overwrite: bool) -> str:
    """``"missing"``, ``"empty"`` or ``"export"``; raises ``FileExistsError`` for
    every target the exporter must not replace (see the module doc)."""
    unchanged = "nothing was changed"
    if root.is_symlink():
        raise FileExistsError(f"{root}: is a symbolic link; exporters neither write through nor replace links "
                              f"({unchanged}). Export into a new or empty folder.")
    if not root.exists():
        return "missing"
    if not root.is_dir():
        raise FileExistsError(f"{root}: is a file, not written by dinosal ({unchanged}). "
                              "Export into a new or empty folder.")
    entries = sorted(p.name for p in root.iterdir())
    if not entries:
        return "empty"
    files = _marker_files(root)
    if files is None:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise FileExistsError(f"{root}: not written by dinosal (no {MARKER} marker; it holds {shown}); "
                              f"{unchanged}. Export into a new or empty folder.")
    extra = _unlisted(root, files)
    if extra:
        shown = ", ".join(extra[:3]) + (", ..." if len(extra) > 3 else "")
        raise FileExistsError(f"{root}: an earlier dinosal export, but it holds files the export did not write "
                              f"or that changed since ({shown}); {unchanged}. Move them out or export elsewhere.")
    if not overwrite:
        raise FileExistsError(f"{root}: already holds a dinosal export (pass overwrite=True to replace it)")
    return "export"


def _write_marker(folder: Path, writer: str) -> None:
    from .. import __version__

    files = {p.relative_to(folder).as_posix(): p.stat().st_size
             for p in sorted(folder.rglob("*")) if p.is_file()}
    info = {"written_by": f"{__name__}.{writer}", "dinosal_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": files}
    (folder / MARKER).write_text(json.dumps(info, indent=1))


def _swap(tmp: Path, root: Path, overwrite: bool) -> None:
    """Move the finished ``tmp`` to ``root``; an earlier export there goes away."""
    if _target_state(root, overwrite) != "export":
        # rename(2) onto a missing name or an empty folder; it fails, changing
        # nothing, if something appeared there meanwhile
        os.replace(tmp, root)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
    os.replace(root, old / "data")
    try:
        os.replace(tmp, root)
    except BaseException:
        os.replace(old / "data", root)
        old.rmdir()
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _atomic_dir(root, overwrite: bool, writer: str) -> Iterator[Path]:
    """Yield a temporary folder that becomes ``root`` (marked as written by
    ``writer``) when the block succeeds; see the module doc for what ``root``
    may be."""
    root = Path(root)
    _target_state(root, overwrite)
    if not root.parent.is_dir():
        raise FileNotFoundError(f"{root.parent}: parent folder does not exist")
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        yield tmp
        _write_marker(tmp, writer)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's folder is private (0700); an export is not
        _swap(tmp, root, overwrite)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError) and not isinstance(err, (FileExistsError, FileNotFoundError, AtomicWriteError)):
            raise write_failed(root, tmp, err) from err  # a full disk names the export and the free space
        raise


def _checked(samples: Sequence[Sample]) -> list[Sample]:
    samples = list(samples)
    if not samples:
        raise ValueError("no samples to export")
    names = samples[0].class_names
    if any(s.class_names != names for s in samples):
        raise ValueError("samples come from different label spaces (class_names differ)")
    return samples


def _save_image(image: np.ndarray, path: Path, quality: int) -> None:
    im = Image.fromarray(image)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        im.save(path, quality=quality, subsampling=0)
    else:
        im.save(path)


def _ext(image_format: str) -> str:
    fmt = image_format.lower().lstrip(".")
    if fmt not in ("jpg", "jpeg", "png"):
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    return "." + fmt


def export_bdd100k(samples: Sequence[Sample], root, *, split: str = "train", image_format: str = "jpg",
                   quality: int = 95, overwrite: bool = False) -> Exported:
    """BDD100K layout: ``images/100k/<split>/*.jpg`` and ``labels/det_20/det_<split>.json``.

    Every class name must be a BDD100K category (or alias); the driving
    generator's classes are.

    Raises ``FileExistsError`` (nothing changed) unless ``root`` is missing, an
    empty folder, or an earlier export and ``overwrite=True`` (module doc).
    """
    samples, ext = _checked(samples), _ext(image_format)
    unknown = [c for c in samples[0].class_names if BDD_ALIASES.get(c, c) not in BDD_CLASSES]
    if unknown:
        raise ValueError(f"classes {unknown} are not BDD100K categories {list(BDD_CLASSES)}")
    with _atomic_dir(root, overwrite, "export_bdd100k") as tmp:
        images = tmp / "images" / "100k" / split
        labels = tmp / "labels" / "det_20"
        images.mkdir(parents=True)
        labels.mkdir(parents=True)
        frames = []
        for i, s in enumerate(samples):
            name = f"synthetic-{i:06d}{ext}"
            _save_image(s.image, images / name, quality)
            frames.append({
                "name": name,
                "attributes": {"weather": "clear", "scene": "city street", "timeofday": "daytime"},
                "labels": [
                    {"id": str(j), "category": s.class_names[lab],
                     "attributes": {"occluded": False, "truncated": False},
                     "box2d": {"x1": float(b[0]), "y1": float(b[1]), "x2": float(b[2]) - 1, "y2": float(b[3]) - 1}}
                    for j, (b, lab) in enumerate(zip(s.boxes, s.labels))
                ],
            })
        (labels / f"det_{split}.json").write_text(json.dumps(frames, indent=1))
    root = Path(root)
    return Exported(root, root / "labels" / "det_20" / f"det_{split}.json", root / "images" / "100k" / split,
                    len(samples))


def export_stanford_cars(samples: Sequence[Sample], root, *, split: str = "train", image_format: str = "jpg",
                         quality: int = 95, overwrite: bool = False) -> Exported:
    """Stanford Cars layout: ``cars_<split>/*.jpg``, ``devkit/cars_<split>_annos.mat``, ``devkit/cars_meta.mat``.

    The annotation file holds a 1 x N struct array ``annotations`` with
    ``bbox_x1, bbox_y1, bbox_x2, bbox_y2`` (1-based, inclusive), ``class``
    (1-based) and ``fname``; ``cars_meta.mat`` holds ``class_names``. Each
    sample must have exactly one object.

    Raises ``FileExistsError`` (nothing changed) unless ``root`` is missing, an
    empty folder, or an earlier export and ``overwrite=True`` (module doc).
    """
    from scipy.io import savemat

    samples, ext = _checked(samples), _ext(image_format)
    bad = [i for i, s in enumerate(samples) if len(s.labels) != 1]
    if bad:
        raise ValueError(f"Stanford Cars has one object per image; samples {bad[:5]} have another number")
    with _atomic_dir(root, overwrite, "export_stanford_cars") as tmp:
        images, devkit = tmp / f"cars_{split}", tmp / "devkit"
        images.mkdir()
        devkit.mkdir()
        fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]
        ann = np.zeros((1, len(samples)), dtype=[(f, object) for f in fields])
        for i, s in enumerate(samples):
            name = f"{i + 1:05d}{ext}"
            _save_image(s.image, images / name, quality)
            x1, y1, x2, y2 = (int(round(v)) for v in s.boxes[0])
            values = (x1 + 1, y1 + 1, x2, y2, int(s.labels[0]) + 1)
            for f, v in zip(fields, values):
                ann[0, i][f] = np.array([[v]], dtype=np.uint16 if f != "class" else np.uint8)
            ann[0, i]["fname"] = np.array([name])
        savemat(devkit / f"cars_{split}_annos.mat", {"annotations": ann})
        names = np.empty((1, len(samples[0].class_names)), dtype=object)
        names[0, :] = list(samples[0].class_names)
        savemat(devkit / "cars_meta.mat", {"class_names": names})
    root = Path(root)
    return Exported(root, root / "devkit" / f"cars_{split}_annos.mat", root / f"cars_{split}", len(samples))


def export_class_folders(samples: Sequence[Sample], root, *, image_format: str = "jpg", quality: int = 95,
                         overwrite: bool = False) -> Exported:
    """ImageFolder layout ``root/<class>/*.jpg`` (the common Stanford Cars ``car_data`` form).

    The class of an image is its first object's; samples without objects are
    an error. Folders exist for every class name, so the label order matches.

    Raises ``FileExistsError`` (nothing changed) unless ``root`` is missing, an
    empty folder, or an earlier export and ``overwrite=True`` (module doc).
    """
    samples, ext = _checked(samples), _ext(image_format)
    if any(len(s.labels) == 0 for s in samples):
        raise ValueError("a class-folder export needs at least one object per image")
    names = samples[0].class_names
    used = {names[int(s.labels[0])] for s in samples}
    if len(used) != len(names):
        raise ValueError(f"classes {sorted(set(names) - used)} have no image; a class folder cannot be empty")
    if list(names) != sorted(names):
        raise ValueError("class names must be in sorted order to keep their labels in a class-folder layout")
    with _atomic_dir(root, overwrite, "export_class_folders") as tmp:
        for c in names:
            (tmp / c).mkdir()
        for i, s in enumerate(samples):
            _save_image(s.image, tmp / names[int(s.labels[0])] / f"{i:06d}{ext}", quality)
    root = Path(root)
    return Exported(root, root, root, len(samples))


def _voc_xml(name: str, s: Sample) -> bytes:
    H, W = s.semantic.shape
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "VOC2007"
    ET.SubElement(root, "filename").text = name
    src = ET.SubElement(root, "source")
    ET.SubElement(src, "database").text = "dinosal synthetic"
    size = ET.SubElement(root, "size")
    for tag, v in (("width", W), ("height", H), ("depth", 3)):
        ET.SubElement(size, tag).text = str(v)
    ET.SubElement(root, "segmented").text = "0"
    for b, lab in zip(s.boxes, s.labels):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = s.class_names[lab]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        bb = ET.SubElement(obj, "bndbox")
        x1, y1, x2, y2 = (int(round(v)) for v in b)
        for tag, v in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):
            ET.SubElement(bb, tag).text = str(v)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8")


def export_voc(samples: Sequence[Sample], root, *, image_set: str = "trainval", quality: int = 95,
               overwrite: bool = False) -> Exported:
    """Pascal VOC layout: ``Annotations/*.xml``, ``JPEGImages/*.jpg``, ``ImageSets/Main/*.txt``.

    ``ImageSets/Main/<image_set>.txt`` lists the ids; ``<class>_<image_set>.txt``
    marks each id 1 (class present) or -1, as in VOC. Samples without objects
    are an error (a VOC annotation has at least one object).

    Raises ``FileExistsError`` (nothing changed) unless ``root`` is missing, an
    empty folder, or an earlier export and ``overwrite=True`` (module doc).
    """
    samples = _checked(samples)
    if any(len(s.labels) == 0 for s in samples):
        raise ValueError("VOC annotations need at least one object per image")
    with _atomic_dir(root, overwrite, "export_voc") as tmp:
        ann, jpg, lists = tmp / "Annotations", tmp / "JPEGImages", tmp / "ImageSets" / "Main"
        for d in (ann, jpg, lists):
            d.mkdir(parents=True)
        ids = []
        for i, s in enumerate(samples):
            image_id = f"{i:06d}"
            ids.append(image_id)
            _save_image(s.image, jpg / f"{image_id}.jpg", quality)
            (ann / f"{image_id}.xml").write_bytes(_voc_xml(f"{image_id}.jpg", s))
        (lists / f"{image_set}.txt").write_text("".join(f"{i}\n" for i in ids))
        for k, c in enumerate(samples[0].class_names):
            rows = [f"{i} {1 if k in s.labels else -1:2d}\n" for i, s in zip(ids, samples)]
            (lists / f"{c}_{image_set}.txt").write_text("".join(rows))
    root = Path(root)
    return Exported(root, root, root / "JPEGImages", len(samples))


def export_coco(samples: Sequence[Sample], root, *, split: str = "train", image_format: str = "jpg",
                quality: int = 95, overwrite: bool = False) -> Exported:
    """COCO layout: ``<split>/*.jpg`` and ``annotations/instances_<split>.json``.

    Categories get ids ``1..C`` in class order; ``bbox`` is ``[x, y, w, h]``,
    ``area`` the mask area, ``iscrowd`` 0.

    Raises ``FileExistsError`` (nothing changed) unless ``root`` is missing, an
    empty folder, or an earlier export and ``overwrite=True`` (module doc).
    """
    samples, ext = _checked(samples), _ext(image_format)
    with _atomic_dir(root, overwrite, "export_coco") as tmp:
        images, annd = tmp / split, tmp / "annotations"
        images.mkdir()
        annd.mkdir()
        out = {"info": {"description": "dinosal synthetic export"}, "images": [], "annotations": [],
               "categories": [{"id": k + 1, "name": c, "supercategory": "object"}
                              for k, c in enumerate(samples[0].class_names)]}
        for i, s in enumerate(samples):
            name = f"{i:012d}{ext}"
            _save_image(s.image, images / name, quality)
            H, W = s.semantic.shape
            out["images"].append({"id": i + 1, "file_name": name, "height": H, "width": W})
            for b, lab, m in zip(s.boxes, s.labels, s.masks):
                out["annotations"].append({
                    "id": len(out["annotations"]) + 1, "image_id": i + 1, "category_id": int(lab) + 1,
                    "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                    "area": int(m.sum()), "iscrowd": 0,
                })
        (annd / f"instances_{split}.json").write_text(json.dumps(out))
    root = Path(root)
    return Exported(root, root / "annotations" / f"instances_{split}.json", root / split, len(samples))
