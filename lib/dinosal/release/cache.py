"""A released model, validation grid or score table into the run cache, as the artifact its build would have made."""

from __future__ import annotations

import dataclasses
import hashlib
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import torch

from .. import runs
from ..train.dino import SNAPSHOT_DIR
from . import store
from .store import (
    CLASSIFIER,
    CONFIG_JSON,
    SCORES_KIND,
    SELECTION_KIND,
    TRANSFER_KIND,
    Entry,
    ReleaseIntegrityError,
    cache_path,
    unpack,
    verify,
)
from .tensors import _initial_blob, _read_json, backbone_digest, rebuild_classifier

BackboneSource = Callable[[], "tuple[torch.nn.Module | Mapping[str, torch.Tensor], str]"]
"""What :func:`materialise` calls for a head-only probe: ``() -> (the parent's backbone, where it came from)``
(a module or its state dict, timm key names; e.g. ``lambda: dinosal.transfers.parent_backbone(spec)``)."""


def _replay(plain: Mapping) -> Any:
    """A dataclass instance whose :func:`runs.config_dict` is ``plain`` (a
    stored config dict), so :func:`runs.cached` keys it as the original."""
    names = [k for k in plain if k not in ("__type__", "__version__")]
    ns = {runs.KEY_VERSION_ATTR: plain["__version__"]} if "__version__" in plain else {}
    cls = dataclasses.make_dataclass(str(plain.get("__type__", "Config")), [(k, Any) for k in names],
                                     namespace=ns, frozen=True)
    return cls(**{k: plain[k] for k in names})


def _weights_file(rel: str) -> bool:
    """Whether ``rel`` is a transfer entry's classifier file: the final weights or a snapshot."""
    return rel == CLASSIFIER or (rel.startswith(f"{SNAPSHOT_DIR}/") and rel.endswith(".safetensors"))


def materialise(entry: Entry, cache_root=None, backbone: Optional[BackboneSource] = None) -> Path:
    """Verify ``entry``, then make it the run-cache artifact
    ``<cache>/<kind>/<key>/`` (through :func:`dinosal.runs.cached`: locked,
    atomic; an existing artifact is returned as is), for any kind. The
    artifact holds the released files (``backbone.safetensors`` or
    ``classifier.safetensors``, ``config.json``, ``log.csv``, the
    ``snapshots/*.safetensors`` the entry lists, possibly none, and its
    ``copies`` and ``generated`` files; a validation grid's ``selection.json`` and ``config.json``; a
    score table's ``scores.csv`` and ``config.json``; files released
    gzip-compressed, ``*.csv.gz``, are written plain) and a
    manifest with ``"source": "release"``, ``"release"`` (name, profile,
    dtype, commit, created, files), the training's ``machine``,
    ``versions``, ``timings.build_seconds``, ``training.steps``, ``commit``
    and ``metrics``, a transfer's ``"transfer"`` block (as the trained
    artifact's, so :func:`dinosal.transfers.load` reads both alike), a
    grid's ``"selection"`` block (so :func:`dinosal.transfers.select` reads
    the table as the one it ran), a score table's ``"scores"`` block, and
    ``"materialised"`` (this machine, versions, time).

    A linear probe released head-only (``entry.head_only``) is rebuilt whole: ``backbone()`` (called
    only when the artifact is not in the run cache yet) gives the parent's backbone, which goes back
    into every classifier file cast to the entry's dtype -- the files a whole release would have
    given, so :func:`load_artifact_classifier` reads the artifact as any other. The manifest's
    ``"rebuilt"`` holds those files' sha256 (checked at load time instead of the released head's),
    the parent backbone's :func:`~dinosal.release.tensors.backbone_digest`, where it came from, and
    whether it is the backbone the head was released with (a ``UserWarning`` when not: e.g. a parent
    retrained here that came out otherwise; the classifier then differs from the released one).

    Raises :class:`ReleaseIntegrityError` for a corrupted or missing file, ``ValueError`` when
    ``config.json`` no longer gives ``entry.key`` (the library version changed: retrain) or when a
    head-only entry comes without ``backbone``."""
    verify(entry)
    config = _read_json(entry.folder / CONFIG_JSON)
    replay = _replay(config)
    key = runs.config_key(entry.kind, replay)
    if key != entry.key:
        how = {TRANSFER_KIND: "python -m dinosal.cli transfers", SELECTION_KIND: "python -m dinosal.cli "
               "transfers --select", SCORES_KIND: "the chapter that computes it"}.get(entry.kind, "make weights")
        raise ValueError(f"{entry.folder / CONFIG_JSON}: gives run-cache key {key} with this library, the release "
                         f"manifest says {entry.key}; the release is stale (retrain with `{how}`)")
    if entry.head_only and (entry.kind != TRANSFER_KIND or backbone is None):
        raise ValueError(f"{entry.folder}: release entry {entry.name!r} holds only the head of a linear probe; its "
                         "backbone is its parent's: materialise it with backbone= (dinosal.transfers.train_cached "
                         "passes the parent's)")

    def build(tmp: Path) -> dict:
        started = time.time()
        parent = None
        if entry.head_only:
            module, source = backbone()
            state = module.state_dict() if isinstance(module, torch.nn.Module) else dict(module)
            digest = backbone_digest(state, entry.dtype)
            parent = {"source": source, "sha256": digest, "released": entry.backbone["sha256"],
                      "matches_release": digest == entry.backbone["sha256"]}
            if not parent["matches_release"]:
                warnings.warn(f"{entry.name}: the parent's backbone ({source}) is not the one the released head was "
                              f"trained on (sha256 {digest} in {entry.dtype}, released "
                              f"{entry.backbone['sha256']}); the classifier rebuilt from it differs from the "
                              "released one", UserWarning, stacklevel=3)
        rebuilt, written = {}, {}
        for rel, expected in sorted(entry.files.items()):
            if parent is not None and _weights_file(rel):  # the released head and the parent's backbone
                data = rebuild_classifier(entry.folder / rel, state, expected)
                rebuilt[rel] = hashlib.sha256(data).hexdigest()
            else:
                data = (entry.folder / rel).read_bytes()
                actual = hashlib.sha256(data).hexdigest()
                if actual != expected:  # changed since verify(): check what is copied
                    raise ReleaseIntegrityError(entry.folder / rel, expected, actual)
                if cache_path(rel) != rel:  # stored gzip-compressed; the run cache holds it plain
                    data = unpack(data, entry.folder / rel)
            written[rel] = data
            runs.atomic_write_bytes(tmp / cache_path(rel), data)
        copies = dict(entry.copies or {})
        for rel, source in sorted(copies.items()):  # stored once: the bytes of the file they repeat
            runs.atomic_write_bytes(tmp / rel, written[source])
            if source in rebuilt:
                rebuilt[rel] = rebuilt[source]
        generated = dict(entry.generated or {})
        for rel, how in sorted(generated.items()):  # made from code, checked against the kept file's digest
            data = _initial_blob(config, entry.key, entry.dtype, entry.folder / CONFIG_JSON)
            actual = hashlib.sha256(data).hexdigest()
            if actual != how["sha256"]:
                raise ValueError(f"{entry.folder}: {rel} is released as the run's random init, made from its config; "
                                 f"this library's initialisation gives sha256 {actual}, the run kept {how['sha256']}: "
                                 "the initialisation changed, the release is stale (retrain with `make weights`)")
            runs.atomic_write_bytes(tmp / rel, data)
        release = {k: getattr(entry, k) for k in ("name", "profile", "dtype", "commit", "created")}
        release["files"] = {**entry.files, **{rel: entry.files[source] for rel, source in copies.items()},
                            **{rel: how["sha256"] for rel, how in generated.items()}}
        out = {
            "source": "release", "release": release, "machine": entry.machine, "versions": entry.versions,
            "commit": entry.commit, "metrics": entry.metrics, "training": {"steps": entry.steps},
            "timings": {"build_seconds": entry.train_seconds, "started": entry.created},
            "materialised": {"machine": runs.machine(), "versions": runs.versions(),
                             "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                             "seconds": round(time.time() - started, 3)},
        }
        if parent is not None:
            out["rebuilt"] = {"files": rebuilt, "backbone": parent}
        for block in ("transfer", "selection", "scores"):
            if getattr(entry, block) is not None:
                out[block] = getattr(entry, block)
        return out

    return runs.cached(entry.kind, replay, build, root=cache_root)


def released_artifact(kind: str, key: str, backbone: Optional[BackboneSource] = None) -> Optional[Path]:
    """The run-cache artifact of ``key`` materialised from its release entry (:func:`materialise`), when the
    run cache does not hold it yet and a release entry of that kind and key exists; else None (train it).
    What every cached training asks before it trains (``backbone``: a head-only probe's parent)."""
    if (runs.cache_root() / kind / key / runs.MANIFEST).is_file():
        return None
    entry = store.find(key, kind=kind)  # looked up on the module: one place to find (and to watch) it
    if entry is None:
        return None
    return materialise(entry, backbone=backbone if entry.head_only else None)


def where_from(path: Path, existed: bool) -> str:
    """Where a resolved artifact's weights came from: ``"released"`` (materialised from ``weights/``),
    ``"run cache"`` (``existed``: it was there before the call) or ``"trained now"``."""
    if runs.read_manifest(path).get("source") == "release":
        return "released"
    return "run cache" if existed else "trained now"
