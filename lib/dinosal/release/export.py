"""Export a cached DINO or transfer artifact, a transfer task's validation grid or a score table into the
release folder (see :mod:`dinosal.release`)."""

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
from ..train.transfer import _backbone_identity, transfer_from_checkpoint
from .store import (
    CONFIG_JSON,
    DEFAULT_DTYPE,
    DTYPES,
    ENTRY_FILE,
    KIND,
    PARENT_BACKBONE,
    SCORES_KIND,
    SELECTION_KIND,
    TABLE_FILE,
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
    pack,
    released_path,
    unpack,
    verify,
)
from .tensors import (
    CLASSIFIER_CONTENT,
    DINO_CONTENT,
    NECK_FILE,
    NECK_KEPT,
    _cast,
    _expected_digest,
    _head_only_bytes,
    _initial_blob,
    _network,
    _parse_safetensors,
    _read_safetensors,
    _safetensors_bytes,
    _torch_teacher,
    _transfer_checkpoint,
    load_artifact_neck,
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


def _transfer_blob(cache_dir: Path, rel: str, src: Path, meta: dict, dtype: str, head_only: bool) -> bytes:
    """The released file ``rel`` of a transfer artifact: the whole classifier of ``src`` (checked by
    rebuilding it), its config, class names and step in the header; ``head_only`` (a linear probe): its
    ``head.*`` tensors only, the backbone left out checked to be the one the probe started from (a
    trainer's ``.pth``: the config's ``start_sha256``) and named by its digest in the header."""
    ck = _transfer_checkpoint(src, _expected_digest(cache_dir, rel) if src.suffix == ".safetensors" else None)
    state = ck["model"]
    loaded = transfer_from_checkpoint({**ck, "model": {k: v.float() if v.is_floating_point() else v
                                                       for k, v in state.items()}},
                                      str(src))  # strict: a classifier the loader rebuilds
    extra = {"config": json.loads(ck["config"]), "class_names": list(ck["class_names"]), "step": int(ck["step"])}
    if not head_only:
        return _safetensors_bytes(_cast(state, dtype, str(src)), {**meta, **extra})
    if extra["config"].get("mode") != "probe":
        raise ValueError(f"{src}: a {extra['config'].get('mode')!r} transfer trains its backbone; only a linear "
                         "probe can be released head-only")
    start = extra["config"].get("start_sha256")  # of the backbone the probe started from (float32)
    moved = src.suffix == ".pth" and _backbone_identity(loaded.model.backbone)["start_sha256"] != start
    if start is not None and moved:
        raise ValueError(f"{src}: the probe's backbone is not the one it started from (start_sha256 {start}); "
                         "its head alone would not give it back")
    return _head_only_bytes(state, {**meta, **extra}, dtype, str(src))


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
                    dtype: str = DEFAULT_DTYPE, root=None, snapshots: bool = True,
                    head_only: Optional[bool] = None) -> Entry:
    """Release the cached DINO or transfer artifact, validation grid or score table ``cache_dir`` as
    ``<root>/<name>/``.

    ``cache_dir``: a ``dino`` or ``transfer`` run-cache artifact
    (``manifest.json`` and ``checkpoint.pth``, or one materialised from a
    release), with ``log.csv`` and optional ``snapshots/``. Writes the final
    weights (dino: ``backbone.safetensors``, the teacher's backbone, no
    head -- a LEWEL companion also its neck's map projection, ``neck.safetensors``; transfer: ``classifier.safetensors``, the whole classifier with
    its config, class names and step in the header; floating tensors cast
    to ``dtype``), ``config.json`` (the artifact's run config), ``log.csv.gz``
    (the log, gzip-compressed) and, with ``snapshots``, one ``snapshots/step_NNNNNN.safetensors``
    per snapshot (``snapshots=False``: none, the entry lists none; a snapshot whose bytes are the final
    weights' is stored once and listed in the entry's ``copies``; the step-0 snapshot, when it is the run's
    random init bit for bit, is not stored but listed in ``generated`` with its sha256); then
    replaces the manifest entry of ``name``. ``metrics``: held-out metrics
    (dino: name -> number; None: the artifact manifest's ``"metrics"``, for
    a transfer its validation scores, kept as they are). Provenance from the
    artifact's manifest: steps (``training.steps``), wall time
    (``timings.build_seconds``), machine, versions, its ``"transfer"`` block
    (a transfer's name, parent, mode, class names...), and its ``commit`` if
    it has one, else :func:`git_commit` now.

    A linear probe (a transfer of mode ``"probe"``) is released head-only (``head_only``: None, the
    default, decides by the mode; False releases the whole classifier; True for a fine-tune is a
    ``ValueError``): its frozen backbone is its parent's bit for bit (checked against the config's
    starting digest for a trained artifact), so its weights files hold the ``head.*`` tensors and the
    header only, and the entry's ``backbone`` names the digest of the backbone left out;
    :func:`~dinosal.release.materialise` rebuilds the whole classifier from the parent's backbone.

    A validation grid (kind ``"transfer_selection"``, :func:`dinosal.transfers.select`) is released as
    its ``selection.json`` (copied byte for byte) and ``config.json``, with the artifact manifest's
    ``"selection"`` block (task, mode, parent, metric, best) in the entry; a score table (kind
    ``"scores"``, :mod:`dinosal.run_scores`) as its ``scores.csv`` (gzip-compressed, ``scores.csv.gz``) and ``config.json``,
    with the manifest's ``"scores"`` block, if any, in the entry. Neither has tensors (``dtype`` is
    ignored, the entry's is ``""``), a log or snapshots.

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
    table = TABLE_FILE.get(kind)
    needed = table or LOG_CSV
    if not (cache_dir / needed).is_file():
        what = {SELECTION_KIND: "grid table", SCORES_KIND: "score table"}.get(kind, "training log")
        raise FileNotFoundError(f"{cache_dir / needed}: no {what} to release")
    config = manifest["config"]
    probe = kind == TRANSFER_KIND and config.get("transfer", {}).get("mode") == "probe"
    if head_only and not probe:
        raise ValueError(f"{cache_dir}: not a linear probe (kind {kind!r}, mode "
                         f"{config.get('transfer', {}).get('mode')!r}); only a probe can be released head-only")
    head_only = probe if head_only is None else bool(head_only)
    sources = {} if table else _sources(cache_dir, kind, snapshots)

    blobs: dict[str, bytes] = {}
    generated: dict[str, dict] = {}
    backbone = None
    if table:
        blobs[table], dtype = (cache_dir / table).read_bytes(), ""
    elif kind == KIND:
        net = _network(config, cache_dir / runs.MANIFEST)
        meta = {"content": DINO_CONTENT, "key": manifest["key"], "dtype": dtype}
        for rel, src in sources.items():
            blobs[rel] = _dino_blob(cache_dir, rel, src, manifest, net, meta, dtype)
        start = f"{SNAPSHOT_DIR}/step_{0:06d}.safetensors"
        if start in blobs:  # the random init: made from code at materialise time when it is what the run kept
            made = _initial_blob(config, manifest["key"], dtype, cache_dir / runs.MANIFEST)
            if made == blobs[start]:
                generated[start] = {"from": "initial", "sha256": hashlib.sha256(blobs.pop(start)).hexdigest()}
        if config.get("method") == "lewel":  # a LEWEL companion: what its alignment maps need, the neck's proj
            neck = {k: v for k, v in load_artifact_neck(cache_dir).items() if k.startswith(NECK_KEPT)}
            blobs[NECK_FILE] = _safetensors_bytes(_cast(neck, dtype, str(cache_dir)),
                                                  {**meta, "content": "lewel teacher neck: the map projection"})
    else:
        meta = {"content": CLASSIFIER_CONTENT, "key": manifest["key"], "dtype": dtype}
        for rel, src in sources.items():
            blobs[rel] = _transfer_blob(cache_dir, rel, src, meta, dtype, head_only)
        if head_only:  # one frozen backbone: the same in the final weights and every snapshot
            digests = {_parse_safetensors(blobs[rel], cache_dir / rel)[1]["backbone"]["sha256"] for rel in sources}
            if len(digests) != 1:
                raise ValueError(f"{cache_dir}: the probe's backbone differs between its weights files; "
                                 "it cannot be released head-only")
            backbone = {"from": PARENT_BACKBONE, "sha256": digests.pop()}
    blobs[CONFIG_JSON] = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
    if not table:
        blobs[LOG_CSV] = (cache_dir / LOG_CSV).read_bytes()

    blobs, copies = _stored_blobs(root, name, blobs, WEIGHTS_FILE.get(kind))

    if metrics is None:
        metrics = manifest.get("metrics") or {}
    if kind == KIND:
        metrics = {k: float(v) for k, v in dict(metrics).items()}
    else:
        metrics = json.loads(json.dumps(dict(metrics)))  # plain JSON, as the manifest stores it

    def block(key: str, of_kind: str) -> Optional[dict]:
        """The artifact manifest's block ``key`` for an artifact of kind ``of_kind`` (plain JSON), else None."""
        return json.loads(json.dumps(manifest[key])) if kind == of_kind and manifest.get(key) is not None else None

    if kind == SELECTION_KIND and "selection" not in manifest:
        raise ValueError(f"{cache_dir / runs.MANIFEST}: a validation grid without its \"selection\" block")
    training = manifest.get("training", {})
    entry = Entry(
        name=name, profile=profile, kind=kind, key=manifest["key"],
        files={rel: hashlib.sha256(b).hexdigest() for rel, b in sorted(blobs.items())}, dtype=dtype,
        steps=int(training.get("steps", 0)), train_seconds=float(manifest.get("timings", {}).get("build_seconds", 0.0)),
        machine=manifest.get("machine", {}), commit=manifest.get("commit") or git_commit(),
        versions=manifest.get("versions", {}), metrics=metrics,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        transfer=block("transfer", TRANSFER_KIND), selection=block("selection", SELECTION_KIND),
        scores=block("scores", SCORES_KIND), backbone=backbone, copies=copies or None,
        generated=generated or None, root=str(root),
    )
    return _install(root, name, entry, blobs)


def _stored_blobs(root: Path, name: str, blobs: Mapping[str, bytes],
                  main: Optional[str]) -> tuple[dict[str, bytes], dict[str, str]]:
    """What the release stores of the files ``blobs`` (run-cache path -> bytes) of entry ``name``, and its
    copies: a snapshot whose bytes are the final weights' (``main``) is stored once (``copies``: path ->
    ``main``); a file of a :data:`~dinosal.release.store.PACKED` kind goes in gzip-compressed as
    ``<file>.gz`` -- the bytes the release already holds for it when their content is the same, so a release
    repeated on another zlib gives no diff."""
    old = next((e for e in _read_manifest(root) if e.name == name), None)
    out, copies = {}, {}
    for rel, data in blobs.items():
        if main is not None and rel != main and rel.startswith(f"{SNAPSHOT_DIR}/") and data == blobs.get(main):
            copies[rel] = main
            continue
        stored = released_path(rel)
        if stored == rel:
            out[rel] = data
            continue
        out[stored] = pack(data)
        kept = old.folder / stored if old is not None and stored in old.files else None
        if kept is not None and kept.is_file():
            previous = kept.read_bytes()
            if hashlib.sha256(previous).hexdigest() == old.files[stored] and unpack(previous, kept) == data:
                out[stored] = previous
    return out, copies


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
