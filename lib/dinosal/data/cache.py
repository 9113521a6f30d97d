"""The sample cache: a finite set of samples frozen in one compressed ``.npz``.

:func:`save_cached` writes items ``0..n-1`` of a generator (any sequence of
:class:`~dinosal.data.sample.Sample`) with the names and the generator's
config for provenance; :func:`load_cached` reads it back as
:class:`CachedSamples`, a sequence of the same samples, so every chapter
evaluates on the same images.

Data safety: the set is written to a temporary file in the target folder and
renamed into place, so a crash never leaves a half-written set; an existing
path is replaced only if it holds a set this module wrote and
``overwrite=True`` (other files, folders and symbolic links raise
``FileExistsError`` and stay as they were); a write that fails for lack of
space raises :class:`~dinosal.runs.AtomicWriteError` naming the file.

Also importable from :mod:`dinosal.data.synthetic` (where it used to live).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Sequence as SequenceABC
from pathlib import Path
from typing import Sequence

import numpy as np

from ..runs import AtomicWriteError, write_failed
from .sample import Sample
from .synthetic.config import GENERATOR_VERSION

__all__ = ["save_cached", "load_cached", "CachedSamples"]

def _config_dict(config) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config), default=list))


_CACHED_KEYS = ("images", "semantic", "multi_hot", "counts", "boxes", "labels", "masks", "meta")


def _is_cached_set(path: Path) -> bool:
    """True if ``path`` is a set written by :func:`save_cached` (arrays and meta)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if not all(k in z.files for k in _CACHED_KEYS):
                return False
            meta = json.loads(str(z["meta"]))
    except Exception:  # noqa: BLE001 - unreadable means: not ours
        return False
    return isinstance(meta, dict) and all(k in meta for k in ("class_names", "semantic_names", "generator"))


def _check_cache_target(path: Path, overwrite: bool) -> None:
    if path.is_symlink():
        raise FileExistsError(f"{path}: is a symbolic link; save_cached neither writes through nor replaces "
                              "links (nothing was changed)")
    if not path.exists():
        return
    if not path.is_file() or not _is_cached_set(path):
        raise FileExistsError(f"{path}: exists and is not a set written by save_cached; nothing was changed. "
                              "Choose another path.")
    if not overwrite:
        raise FileExistsError(f"{path}: already holds a cached set (pass overwrite=True to replace it)")


def save_cached(generator: Sequence[Sample], n: int, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write items ``0..n-1`` of ``generator`` to one compressed ``.npz``.

    The file holds every array of every sample plus the names and the
    generator's config (for provenance). It is written to a temporary file in
    the same folder and renamed, so a crash never leaves a half-written set.
    Returns the path.

    An existing ``path`` is replaced only if it is a set written by this
    function and ``overwrite=True``; anything else there (another file, a
    folder, a symbolic link) raises ``FileExistsError`` and stays as it was.
    """
    path = Path(path)
    if n < 0 or n > len(generator):
        raise ValueError(f"n={n} outside 0..len(generator)={len(generator)}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: folder for the cached set does not exist")
    _check_cache_target(path, overwrite)
    samples = [generator[i] for i in range(n)]
    if not samples:
        raise ValueError("n=0: nothing to cache")
    first = samples[0]
    meta = {
        "class_names": list(first.class_names),
        "semantic_names": list(first.semantic_names),
        "generator": type(generator).__name__,
        "generator_version": GENERATOR_VERSION,
        "config": _config_dict(generator.config) if hasattr(generator, "config") else None,
    }
    arrays = dict(
        images=np.stack([s.image for s in samples]),
        semantic=np.stack([s.semantic for s in samples]),
        multi_hot=np.stack([s.multi_hot for s in samples]),
        counts=np.asarray([len(s.labels) for s in samples], np.int64),
        boxes=np.concatenate([s.boxes for s in samples]).reshape(-1, 4).astype(np.float32),
        labels=np.concatenate([s.labels for s in samples]).astype(np.int64),
        masks=np.concatenate([s.masks for s in samples]).reshape((-1,) + first.semantic.shape),
        meta=np.asarray(json.dumps(meta)),
    )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        _check_cache_target(path, overwrite)  # again: the path may have changed while the set was drawn
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, (FileExistsError, AtomicWriteError)):
            raise write_failed(path, tmp, err) from err  # a full disk names the file and the free space
        raise
    return path


class CachedSamples(SequenceABC):
    """A cached evaluation set loaded by :func:`load_cached`; items are :class:`Sample`."""

    def __init__(self, arrays: dict, meta: dict, path: Path) -> None:
        self._a = arrays
        self.path = path
        self.meta = meta
        self.class_names = tuple(meta["class_names"])
        self.semantic_names = tuple(meta["semantic_names"])
        self._offsets = np.concatenate([[0], np.cumsum(arrays["counts"])])

    def __len__(self) -> int:
        return len(self._a["images"])

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = range(len(self))[index]
        a, lo, hi = self._a, self._offsets[index], self._offsets[index + 1]
        return Sample(a["images"][index], a["boxes"][lo:hi], a["labels"][lo:hi], a["masks"][lo:hi],
                      a["semantic"][index], a["multi_hot"][index], self.class_names, self.semantic_names)


def load_cached(path: str | os.PathLike) -> CachedSamples:
    """Read a set written by :func:`save_cached`; every array is checked first."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: cached set not found")
    keys = ("images", "semantic", "multi_hot", "counts", "boxes", "labels", "masks", "meta")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise ValueError(f"{path}: not a cached sample set, missing arrays {missing}")
            arrays = {k: z[k] for k in keys}
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, EOFError) as err:
        if str(path) in str(err):
            raise
        raise ValueError(f"{path}: unreadable cached set ({err})") from None
    n, total = len(arrays["images"]), int(arrays["counts"].sum())
    shapes_ok = (
        arrays["images"].ndim == 4 and arrays["semantic"].shape == arrays["images"].shape[:3]
        and len(arrays["multi_hot"]) == n and len(arrays["counts"]) == n
        and len(arrays["boxes"]) == total and len(arrays["labels"]) == total and len(arrays["masks"]) == total
    )
    if not shapes_ok:
        raise ValueError(f"{path}: inconsistent array shapes in cached set")
    return CachedSamples(arrays, meta, path)
