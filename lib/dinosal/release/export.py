"""Export a cached DINO or transfer artifact, or a transfer task's validation grid, into the release folder
(see :mod:`dinosal.release`)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterable, Mapping, Optional

from .. import runs
from ..models import load_dino_state
from ..train.dino import CHECKPOINT, LOG_CSV, SNAPSHOT_DIR
from ..train.transfer import transfer_from_checkpoint
from .store import (
    CONFIG_JSON,
    DEFAULT_DTYPE,
    DTYPES,
    ENTRY_FILE,
    KIND,
    SELECTION_JSON,
    SELECTION_KIND,
    TRANSFER_KIND,
    WEIGHTS_FILE,
    Entry,
    ReleaseIntegrityError,
    _folder_lock,
    _publish,
    _read_manifest,
    _root,
    _write_manifest,
    git_commit,
    verify,
)
from .tensors import (
    _cast,
    _expected_digest,
    _network,
    _read_safetensors,
    _safetensors_bytes,
    _torch_teacher,
    _transfer_checkpoint,
)


def _sources(cache_dir: Path, kind: str, snapshots: bool) -> dict[str, Path]:
    """``{release path: source file}`` of an artifact's final weights and (``snapshots``) its snapshots:
    a trained artifact's ``checkpoint.pth`` and ``snapshots/*.pth``, or a materialised one's
    safetensors files."""
    main = WEIGHTS_FILE[kind]
    if (cache_dir / CHECKPOINT).is_file():
        out = {main: cache_dir / CHECKPOINT}
    elif (cache_dir / main).is_file():  # an artifact materialised from a release
        out = {main: cache_dir / main}
    else:
        raise FileNotFoundError(f"{cache_dir}: neither {CHECKPOINT} nor {main}: not a trained {kind} artifact")
    for p in sorted((cache_dir / SNAPSHOT_DIR).glob("step_*")) if snapshots else ():
        if p.suffix in (".pth", ".safetensors"):
            out[f"{SNAPSHOT_DIR}/{p.stem}.safetensors"] = p
    return out


def _dino_blob(cache_dir: Path, rel: str, src: Path, manifest: dict, net, meta: dict, dtype: str) -> bytes:
    """The released file ``rel`` of a dino artifact: the teacher backbone of ``src``, checked against ``net``."""
    if src.suffix == ".pth":
        s, step = _torch_teacher(src)
    else:
        s = _read_safetensors(src, _expected_digest(cache_dir, rel))
        step = int(src.stem.split("_")[1]) if rel.startswith(SNAPSHOT_DIR) else None
    if rel == WEIGHTS_FILE[KIND]:  # the final weights: the run's step count
        step = manifest.get("training", {}).get("steps")
    load_dino_state(net, {k: v.float() if v.is_floating_point() else v for k, v in s.items()},
                    source=str(src))  # strict: the config describes these weights
    return _safetensors_bytes(_cast(s, dtype, str(src)), {**meta, "step": step})


def _transfer_blob(cache_dir: Path, rel: str, src: Path, meta: dict, dtype: str) -> bytes:
    """The released file ``rel`` of a transfer artifact: the whole classifier of ``src`` (checked by
    rebuilding it), its config, class names and step in the header."""
    ck = _transfer_checkpoint(src, _expected_digest(cache_dir, rel) if src.suffix == ".safetensors" else None)
    state = ck["model"]
    transfer_from_checkpoint({**ck, "model": {k: v.float() if v.is_floating_point() else v for k, v in state.items()}},
                             str(src))  # strict: a classifier the loader rebuilds
    extra = {"config": json.loads(ck["config"]), "class_names": list(ck["class_names"]), "step": int(ck["step"])}
    return _safetensors_bytes(_cast(state, dtype, str(src)), {**meta, **extra})


def _foreign_files(folder: Path, listed: Iterable[str]) -> list[str]:
    """Paths under ``folder`` (relative) that are not regular files listed in ``listed``."""
    listed = set(listed)
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            rel = p.relative_to(folder).as_posix()
            if p.is_symlink() or (not p.is_dir() and (not p.is_file() or rel not in listed)):
                out.append(rel)
    return sorted(out)


def _same_release(old: Entry, new: Entry) -> bool:
    """Whether ``old`` (verified on disk) is ``new`` up to its creation time."""
    a, b = old.to_dict(), new.to_dict()
    a.pop("created"), b.pop("created")
    if a != b:
        return False
    try:
        verify(old)
    except (ReleaseIntegrityError, ValueError):
        return False
    return not _foreign_files(old.folder, old.files)


def export_artifact(cache_dir, name: str, profile: str, metrics: Optional[Mapping] = None,
                    dtype: str = DEFAULT_DTYPE, root=None, snapshots: bool = True) -> Entry:
    """Release the cached DINO or transfer artifact, or validation grid, ``cache_dir`` as ``<root>/<name>/``.

    ``cache_dir``: a ``dino`` or ``transfer`` run-cache artifact
    (``manifest.json`` and ``checkpoint.pth``, or one materialised from a
    release), with ``log.csv`` and optional ``snapshots/``. Writes the final
    weights (dino: ``backbone.safetensors``, the teacher's backbone, no
    head; transfer: ``classifier.safetensors``, the whole classifier with
    its config, class names and step in the header; floating tensors cast
    to ``dtype``), ``config.json`` (the artifact's run config), ``log.csv``
    (copied) and, with ``snapshots``, one ``snapshots/step_NNNNNN.safetensors``
    per snapshot (``snapshots=False``: none, the entry lists none); then
    replaces the manifest entry of ``name``. ``metrics``: held-out metrics
    (dino: name -> number; None: the artifact manifest's ``"metrics"``, for
    a transfer its validation scores, kept as they are). Provenance from the
    artifact's manifest: steps (``training.steps``), wall time
    (``timings.build_seconds``), machine, versions, its ``"transfer"`` block
    (a transfer's name, parent, mode, class names...), and its ``commit`` if
    it has one, else :func:`git_commit` now.

    A validation grid (kind ``"transfer_selection"``, :func:`dinosal.transfers.select`) is released as
    its ``selection.json`` (copied byte for byte) and ``config.json``, with the artifact manifest's
    ``"selection"`` block (task, mode, parent, metric, best) in the entry; it has no tensors (``dtype``
    is ignored, the entry's is ``""``), no log and no snapshots.

    The files are written into a temporary folder beside the entry and moved
    into place, then the manifest is replaced (atomic). Raises
    ``FileExistsError`` (nothing changed) when ``<root>/<name>/`` holds a
    file its manifest entry does not list; ``ValueError`` for a bad name,
    dtype, an artifact of another kind, or weights that do not load into
    the network its config describes (a transfer: the classifier its
    checkpoint describes); ``FileNotFoundError`` for missing artifact files.
    Returns the new :class:`Entry`; an export that would change nothing but
    the creation time leaves the release as it is and returns the existing
    entry (re-releasing gives no diff).
    """
    cache_dir, root = Path(cache_dir), _root(root)
    if not name or name.startswith(".") or "/" in name or "\\" in name or name != name.strip():
        raise ValueError(f"release: bad entry name {name!r} (a plain folder name is needed)")
    if dtype not in DTYPES:
        raise ValueError(f"release: dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    try:
        manifest = runs.read_manifest(cache_dir)
    except FileNotFoundError:
        raise FileNotFoundError(f"{cache_dir}: no {runs.MANIFEST}: not a run-cache artifact") from None
    kind = manifest.get("kind")
    if kind not in ENTRY_FILE:
        raise ValueError(f"{cache_dir}: artifact of kind {kind!r}; only {sorted(ENTRY_FILE)} can be released")
    needed = SELECTION_JSON if kind == SELECTION_KIND else LOG_CSV
    if not (cache_dir / needed).is_file():
        raise FileNotFoundError(f"{cache_dir / needed}: no {'grid table' if kind == SELECTION_KIND else 'training log'}"
                                " to release")
    config = manifest["config"]
    sources = {} if kind == SELECTION_KIND else _sources(cache_dir, kind, snapshots)

    blobs: dict[str, bytes] = {}
    if kind == SELECTION_KIND:
        blobs[SELECTION_JSON], dtype = (cache_dir / SELECTION_JSON).read_bytes(), ""
    elif kind == KIND:
        net = _network(config, cache_dir / runs.MANIFEST)
        meta = {"content": "dino teacher backbone", "key": manifest["key"], "dtype": dtype}
        for rel, src in sources.items():
            blobs[rel] = _dino_blob(cache_dir, rel, src, manifest, net, meta, dtype)
    else:
        meta = {"content": "transfer classifier", "key": manifest["key"], "dtype": dtype}
        for rel, src in sources.items():
            blobs[rel] = _transfer_blob(cache_dir, rel, src, meta, dtype)
    blobs[CONFIG_JSON] = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
    if kind != SELECTION_KIND:
        blobs[LOG_CSV] = (cache_dir / LOG_CSV).read_bytes()

    if metrics is None:
        metrics = manifest.get("metrics") or {}
    if kind == KIND:
        metrics = {k: float(v) for k, v in dict(metrics).items()}
    else:
        metrics = json.loads(json.dumps(dict(metrics)))  # plain JSON, as the manifest stores it
    training = manifest.get("training", {})
    entry = Entry(
        name=name, profile=profile, kind=kind, key=manifest["key"],
        files={rel: hashlib.sha256(b).hexdigest() for rel, b in sorted(blobs.items())}, dtype=dtype,
        steps=int(training.get("steps", 0)), train_seconds=float(manifest.get("timings", {}).get("build_seconds", 0.0)),
        machine=manifest.get("machine", {}), commit=manifest.get("commit") or git_commit(),
        versions=manifest.get("versions", {}), metrics=metrics,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        transfer=json.loads(json.dumps(manifest["transfer"])) if kind == TRANSFER_KIND and "transfer" in manifest
        else None,
        selection=json.loads(json.dumps(manifest["selection"])) if kind == SELECTION_KIND else None, root=str(root),
    )
    return _install(root, name, entry, blobs)


def _install(root: Path, name: str, entry: Entry, blobs: Mapping[str, bytes]) -> Entry:
    """Write ``blobs`` as ``<root>/<name>/`` and ``entry`` into the manifest (see :func:`export_artifact`)."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=root))
    try:
        for rel, data in blobs.items():
            runs.atomic_write_bytes(tmp / rel, data)
            _publish(tmp / rel)
        for d in (tmp, tmp / SNAPSHOT_DIR):
            if d.is_dir():
                _publish(d, 0o777)
        with _folder_lock(root):
            rows = _read_manifest(root)
            old = next((e for e in rows if e.name == name), None)
            final = root / name
            if final.is_symlink() or (final.exists() and not final.is_dir()):
                raise FileExistsError(f"{final}: not a folder this release wrote; nothing was changed")
            if old is not None and _same_release(old, entry):
                return old  # nothing changed but the time: keep the entry as it is (no diff in git)
            if final.exists():
                foreign = _foreign_files(final, old.files if old else ())
                if foreign:
                    raise FileExistsError(
                        f"{final}: holds files the release manifest does not list for {name!r}: "
                        f"{', '.join(foreign[:10])}{' ...' if len(foreign) > 10 else ''}; nothing was changed. "
                        "Move them away to release this model.")
            retired = None
            if final.exists():
                retired = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=root))
                os.replace(final, retired / name)
            os.replace(tmp, final)
            try:
                _write_manifest(root, [e for e in rows if e.name != name] + [entry])
            except BaseException:
                os.replace(final, tmp)  # put the old folder back: folder and manifest agree again
                if retired is not None:
                    os.replace(retired / name, final)
                raise
            if retired is not None:
                shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return entry
