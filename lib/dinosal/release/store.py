"""The release manifest: entries, integrity, provenance (no tensors here).

``<root>/manifest.json`` is ``{"format": 1, "entries": [...]}``, one
:class:`Entry` per released model (kind ``"dino"`` or ``"transfer"``),
validation grid (kind ``"transfer_selection"``) or score table (kind
``"scores"``), sorted by name, replaced atomically.
:func:`verify` recomputes every file's sha256; :func:`compare` sets
released metrics beside retrained ones.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Optional, Union

import torch

from .. import runs

WEIGHTS_ENV = "DINOSAL_WEIGHTS"
_REPO = runs._repo_root()
RELEASE_DIR: Optional[Path] = _REPO / "weights" if _REPO is not None else None
"""``<repo root>/weights`` when the package lives in a checkout, else None
(``$DINOSAL_WEIGHTS`` overrides it at call time, see :func:`release_root`)."""
MANIFEST = "manifest.json"
FORMAT = 1
BACKBONE = "backbone.safetensors"
CLASSIFIER = "classifier.safetensors"
CONFIG_JSON = "config.json"
DTYPES: dict[str, torch.dtype] = {"float16": torch.float16, "float32": torch.float32}
DEFAULT_DTYPE = "float16"
"""Measured on the cpu profile's dino_world and dino_driving (20 held-out
images at 128 px each): fp16 storage moves CLS attention by at most 2.4e-4
(values up to 0.16) and keys by at most 1.9e-3 (7e-4 of their largest
magnitude); every LOST and TokenCut box is identical."""
KIND = "dino"
TRANSFER_KIND = "transfer"
WEIGHTS_FILE: dict[str, str] = {KIND: BACKBONE, TRANSFER_KIND: CLASSIFIER}
"""Run-cache kind -> the file holding a released model's final weights: the
DINO teacher's backbone, or a transfer's whole classifier (backbone and head;
a linear probe's: its head only, see :attr:`Entry.backbone`)."""
SELECTION_KIND = "transfer_selection"
SELECTION_JSON = "selection.json"
SCORES_KIND = "scores"
SCORES_CSV = "scores.csv"
"""Kind and file of a score table (:mod:`dinosal.run_scores`, which names them
alike: the release may not import it)."""
TABLE_FILE: dict[str, str] = {SELECTION_KIND: SELECTION_JSON, SCORES_KIND: SCORES_CSV}
"""The kinds released as one table and ``config.json``: no tensors, no log, no
snapshots (the run-cache block of the same name as the kind's -- ``"selection"``,
``"scores"`` -- is kept in the entry)."""
ENTRY_FILE: dict[str, str] = {**WEIGHTS_FILE, **TABLE_FILE}
"""Every kind a release entry may have -> the file it cannot lack: the weights
(:data:`WEIGHTS_FILE`), a validation grid's table (kind
``"transfer_selection"``, :func:`dinosal.transfers.select`: ``selection.json``,
no tensors) or a score table (kind ``"scores"``, :mod:`dinosal.run_scores`:
``scores.csv``, no tensors)."""
PACKED = (".csv",)
"""Suffixes of the files the release stores gzip-compressed, as ``<file>.gz`` (the training logs and the score
tables: text that compresses about 3x); the run cache holds them plain (:func:`released_path`, :func:`pack`)."""
GZIP = ".gz"


def released_path(rel: str) -> str:
    """The release's path of the run-cache file ``rel``: ``log.csv`` -> ``log.csv.gz`` (see :data:`PACKED`),
    any other path unchanged."""
    return rel + GZIP if rel.endswith(PACKED) else rel


def cache_path(rel: str) -> str:
    """The run-cache path of the released file ``rel`` (the inverse of :func:`released_path`)."""
    return rel[: -len(GZIP)] if rel.endswith(tuple(s + GZIP for s in PACKED)) else rel


def pack(data: bytes) -> bytes:
    """``data`` gzip-compressed with no time stamp and no file name in the header (the same bytes from the
    same data and zlib, so a release repeated gives no diff)."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def unpack(data: bytes, path) -> bytes:
    """The content of the released gzip file ``path`` whose bytes are ``data``; ``ValueError`` naming it
    when they are not a gzip stream."""
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise ValueError(f"{path}: not a gzip file ({err}); restore it from git or release it again") from err


PARENT_BACKBONE = "parent"
"""``Entry.backbone["from"]`` of a linear probe released head-only: its frozen
backbone is its parent's (identified by the ``parent`` of its ``config.json``)."""


class ReleaseIntegrityError(ValueError):
    """A released file is missing or its sha256 differs from the manifest.

    ``path``: the file; ``expected``: the manifest's digest; ``actual``: the
    file's digest, None when the file is missing."""

    def __init__(self, path, expected: str, actual: Optional[str]):
        self.path, self.expected, self.actual = Path(path), expected, actual
        if actual is None:
            msg = f"{path}: missing; the release manifest lists it with sha256 {expected}"
        else:
            msg = (f"{path}: sha256 {actual} does not match the release manifest's {expected} "
                   "(the file is corrupted or was edited; restore it from git or release it again)")
        super().__init__(msg)


@dataclass
class Entry:
    """One released model: a row of ``weights/manifest.json``.

    name: folder under the release root; profile: the profile it was
    released for; kind: run-cache kind (``"dino"``, ``"transfer"``,
    ``"transfer_selection"`` or ``"scores"``, see :data:`ENTRY_FILE`); key: the
    run-cache key (16 hex digits) its config gives; files: ``{path relative to
    the entry folder: sha256 hex}``; dtype: storage dtype of the tensors (``""``
    for a selection or a score table: they have none); steps:
    training steps; train_seconds: wall time of the build that trained it;
    machine, versions: of the machine that trained it (``runs.machine()``,
    ``runs.versions()``); commit: ``git rev-parse HEAD`` of the code, with
    ``+dirty`` when ``lib/`` had uncommitted changes, or ``"unknown"``;
    metrics: held-out metrics measured after training (dino: name ->
    number; transfer: the artifact manifest's ``metrics``, ``{"validation":
    {"map", "top1", "n_images", "ap": {class: AP}}}``); created: UTC time of
    the export (ISO 8601); transfer: a transfer's artifact-manifest block
    ``"transfer"`` (name, parent, parent_seed, task, mode, parent_source,
    class_names), None for dino (then not stored, so older manifests read
    unchanged); selection: a validation grid's artifact-manifest block
    ``"selection"`` (task, mode, parent, metric, best), None for the other
    kinds (not stored); scores: a score table's artifact-manifest block
    ``"scores"`` (None for the other kinds, or a table whose artifact has none;
    not stored); backbone: a linear probe released head-only (its weights files
    hold the ``head.*`` tensors only, its frozen backbone is its parent's):
    ``{"from": "parent", "sha256": digest of that backbone in the entry's
    dtype}`` (:func:`~dinosal.release.tensors.backbone_digest`), None for a
    whole classifier and the other kinds (not stored). copies: ``{path: path
    in files}`` of the files stored once because their bytes are another's
    (a run's last snapshot is its final weights), None when there are none
    (not stored); :func:`~dinosal.release.materialise` writes both. generated:
    ``{path: {"from": "initial", "sha256": hex}}`` of the files not stored
    because code makes them -- a DINO run's step-0 snapshot is its network at
    random init, regenerated from its config and checked against the digest of
    the snapshot the training kept --, None when there are none (not stored).
    Files of
    :data:`PACKED` kinds are listed (and stored) as ``<file>.gz``. ``root``:
    the release folder the entry was read from (not stored).
    """

    name: str
    profile: str
    kind: str
    key: str
    files: dict[str, str]
    dtype: str
    steps: int
    train_seconds: float
    machine: dict
    commit: str
    versions: dict
    metrics: dict
    created: str
    transfer: Optional[dict] = None
    selection: Optional[dict] = None
    scores: Optional[dict] = None
    backbone: Optional[dict] = None
    copies: Optional[dict] = None
    generated: Optional[dict] = None
    root: Optional[str] = field(default=None, compare=False, repr=False)

    @property
    def folder(self) -> Path:
        """``<release root>/<name>``."""
        return Path(self.root if self.root is not None else release_root()) / self.name

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("root")
        for k in _OPTIONAL:
            if d[k] is None:
                d.pop(k)
        return d

    @property
    def head_only(self) -> bool:
        """Whether the entry is a linear probe released without its backbone (see ``backbone``):
        :func:`~dinosal.release.materialise` needs the parent's backbone to rebuild it."""
        return self.backbone is not None

    @property
    def size_bytes(self) -> int:
        """Total bytes of the entry's files on disk (missing files count 0)."""
        return sum((self.folder / rel).stat().st_size for rel in self.files if (self.folder / rel).is_file())


_OPTIONAL = ("transfer", "selection", "scores", "backbone", "copies", "generated")
GENERATED_FROM = ("initial",)
"""What :attr:`Entry.generated` files are made from: ``"initial"``, a DINO run's network at random init."""
_FIELDS = [f.name for f in dataclasses.fields(Entry) if f.name != "root" and f.name not in _OPTIONAL]


def release_root() -> Path:
    """The release folder: ``$DINOSAL_WEIGHTS`` if set, else :data:`RELEASE_DIR`.
    Raises ``RuntimeError`` when neither exists (an installed package)."""
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return Path(env).expanduser()
    if RELEASE_DIR is None:
        raise RuntimeError(f"release: no release folder: the package is not in a checkout; set ${WEIGHTS_ENV}")
    return RELEASE_DIR


def _root(root) -> Path:
    return Path(root) if root is not None else release_root()


def sha256_file(path) -> str:
    """sha256 hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_manifest(root: Path) -> list[Entry]:
    path = root / MANIFEST
    if not path.is_file():
        return []
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable release manifest ({err})") from err
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("entries"), list):
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ValueError(f"{path}: not a release manifest of format {FORMAT} (format {got!r}, or no entry list)")
    out = []
    for i, row in enumerate(doc["entries"]):
        missing = [k for k in _FIELDS if not isinstance(row, dict) or k not in row]
        if missing:
            raise ValueError(f"{path}: entry {i} ({row.get('name') if isinstance(row, dict) else row!r}) "
                             f"lacks {missing}")
        out.append(Entry(**{k: row[k] for k in _FIELDS}, **{k: row.get(k) for k in _OPTIONAL}, root=str(root)))
    return out


def _write_manifest(root: Path, rows: list[Entry]) -> None:
    doc = {"format": FORMAT, "entries": [e.to_dict() for e in sorted(rows, key=lambda e: e.name)]}
    runs.atomic_write_text(root / MANIFEST, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    _publish(root / MANIFEST)


def entries(profile: Optional[str] = None, root=None) -> list[Entry]:
    """The released entries (all, or those of ``profile``), sorted by name;
    ``[]`` when there is no manifest. A malformed manifest raises
    ``ValueError`` naming it."""
    return [e for e in _read_manifest(_root(root)) if profile is None or e.profile == profile]


def find(key: str, root=None, kind: str = KIND) -> Optional[Entry]:
    """The released entry of run-cache ``key`` (and ``kind``), or None. Not
    verified here: :func:`materialise` verifies before use."""
    for e in _read_manifest(_root(root)):
        if e.key == key and e.kind == kind:
            return e
    return None


def git_commit(repo=None) -> str:
    """``git rev-parse HEAD`` of ``repo`` (default: the checkout holding this
    package), with ``+dirty`` when ``lib/`` has uncommitted or untracked
    changes; ``"unknown"`` without git or a checkout."""
    repo = Path(repo) if repo is not None else _REPO
    if repo is None:
        return "unknown"
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=30, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", "lib"], capture_output=True,
                               text=True, timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}+dirty" if dirty else (head or "unknown")


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _publish(path: Path, mode: int = 0o666) -> None:
    """Give a written file (or folder: ``mode=0o777``) the permissions the
    umask allows; temporary files and folders are created private."""
    os.chmod(path, mode & ~_umask())


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive ``flock`` on the release folder itself (no lock file is
    left in the repository); a no-op where ``fcntl`` does not exist."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def withdraw(name: str, root=None) -> Entry:
    """Remove the released entry ``name``: its listed files (each checked against its sha256 first, so a
    file somebody changed is never deleted: :class:`ReleaseIntegrityError`), its folder when that leaves it
    empty, and its manifest row. Files the entry does not list stay where they are. Returns the removed
    entry; ``KeyError`` for a name that is not released."""
    root = _root(root)
    with _folder_lock(root):
        rows = _read_manifest(root)
        entry = next((e for e in rows if e.name == name), None)
        if entry is None:
            raise KeyError(f"{root / MANIFEST}: no released entry {name!r}")
        verify(entry)
        for rel in sorted(entry.files, key=lambda r: -r.count("/")):
            (entry.folder / rel).unlink()
        for folder in sorted({(entry.folder / rel).parent for rel in entry.files}, key=lambda f: -len(f.parts)):
            if folder != root and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        _write_manifest(root, [e for e in rows if e.name != name])
    return entry


def verify(entry: Entry) -> Entry:
    """Recompute the sha256 of every file of ``entry``; returns it when all
    match. Raises :class:`ReleaseIntegrityError` naming the first missing or
    mismatching file with the expected and actual digests, ``ValueError``
    for an entry of an unknown kind or one that lists no main file of its
    kind (:data:`ENTRY_FILE`: weights, a grid's or a score table) or no config."""
    if entry.kind not in ENTRY_FILE:
        raise ValueError(f"{entry.folder}: release entry {entry.name!r} has kind {entry.kind!r}; "
                         f"known: {sorted(ENTRY_FILE)}")
    for needed in (ENTRY_FILE[entry.kind], CONFIG_JSON):
        if needed not in entry.files and released_path(needed) not in entry.files:
            raise ValueError(f"{entry.folder}: release entry {entry.name!r} lists no {needed}")
    for rel, how in sorted((entry.generated or {}).items()):
        if entry.kind != KIND or rel in entry.files or not isinstance(how, dict) \
                or how.get("from") not in GENERATED_FROM or not isinstance(how.get("sha256"), str):
            raise ValueError(f"{entry.folder}: release entry {entry.name!r} lists {rel} as generated ({how!r}); only a "
                             f"{KIND!r} entry's file it does not store, made from one of {GENERATED_FROM} with a "
                             "sha256, can be")
    for rel, source in sorted((entry.copies or {}).items()):
        if source not in entry.files or rel in entry.files:
            raise ValueError(f"{entry.folder}: release entry {entry.name!r} lists {rel} as a copy of {source}, "
                             f"which it {'does not list' if source not in entry.files else 'also lists as a file'}")
    for rel, expected in sorted(entry.files.items()):
        path = entry.folder / rel
        if not path.is_file():
            raise ReleaseIntegrityError(path, expected, None)
        actual = sha256_file(path)
        if actual != expected:
            raise ReleaseIntegrityError(path, expected, actual)
    return entry


def compare(released: Union[Mapping[str, Mapping[str, float]], Iterable[Entry]],
            retrained: Mapping[str, Mapping[str, float]]):
    """``pandas.DataFrame`` with columns model, metric, released, retrained,
    difference (retrained - released), one row per (model, metric) in either
    input, sorted; a value missing on one side is NaN. ``released``:
    ``{model: {metric: value}}`` or release entries (their ``metrics``)."""
    import pandas as pd

    if not isinstance(released, Mapping):
        released = {e.name: e.metrics for e in released}
    rows = []
    for model in sorted(set(released) | set(retrained)):
        old, new = dict(released.get(model, {})), dict(retrained.get(model, {}))
        for metric in sorted(set(old) | set(new)):
            a, b = float(old.get(metric, float("nan"))), float(new.get(metric, float("nan")))
            rows.append({"model": model, "metric": metric, "released": a, "retrained": b, "difference": b - a})
    return pd.DataFrame(rows, columns=["model", "metric", "released", "retrained", "difference"])
