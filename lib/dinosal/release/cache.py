"""A released model (or validation grid) into the run cache, as the artifact training would have made."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path
from typing import Any, Mapping

from .. import runs
from .store import CONFIG_JSON, SELECTION_KIND, TRANSFER_KIND, Entry, ReleaseIntegrityError, verify
from .tensors import _read_json


def _replay(plain: Mapping) -> Any:
    """A dataclass instance whose :func:`runs.config_dict` is ``plain`` (a
    stored config dict), so :func:`runs.cached` keys it as the original."""
    names = [k for k in plain if k not in ("__type__", "__version__")]
    ns = {runs.KEY_VERSION_ATTR: plain["__version__"]} if "__version__" in plain else {}
    cls = dataclasses.make_dataclass(str(plain.get("__type__", "Config")), [(k, Any) for k in names],
                                     namespace=ns, frozen=True)
    return cls(**{k: plain[k] for k in names})


def materialise(entry: Entry, cache_root=None) -> Path:
    """Verify ``entry``, then make it the run-cache artifact
    ``<cache>/<kind>/<key>/`` (through :func:`dinosal.runs.cached`: locked,
    atomic; an existing artifact is returned as is), for any kind. The
    artifact holds the released files (``backbone.safetensors`` or
    ``classifier.safetensors``, ``config.json``, ``log.csv``, the
    ``snapshots/*.safetensors`` the entry lists, possibly none; a
    validation grid's ``selection.json`` and ``config.json``) and a
    manifest with ``"source": "release"``, ``"release"`` (name, profile,
    dtype, commit, created, files), the training's ``machine``,
    ``versions``, ``timings.build_seconds``, ``training.steps``, ``commit``
    and ``metrics``, a transfer's ``"transfer"`` block (as the trained
    artifact's, so :func:`dinosal.transfers.load` reads both alike), a
    grid's ``"selection"`` block (so :func:`dinosal.transfers.select` reads
    the table as the one it ran), and
    ``"materialised"`` (this machine, versions, time). Raises :class:`ReleaseIntegrityError`
    for a corrupted or missing file, ``ValueError`` when ``config.json`` no
    longer gives ``entry.key`` (the library version changed: retrain)."""
    verify(entry)
    config = _read_json(entry.folder / CONFIG_JSON)
    replay = _replay(config)
    key = runs.config_key(entry.kind, replay)
    if key != entry.key:
        how = {TRANSFER_KIND: "python -m dinosal.cli transfers", SELECTION_KIND: "python -m dinosal.cli "
               "transfers --select"}.get(entry.kind, "make weights")
        raise ValueError(f"{entry.folder / CONFIG_JSON}: gives run-cache key {key} with this library, the release "
                         f"manifest says {entry.key}; the release is stale (retrain with `{how}`)")

    def build(tmp: Path) -> dict:
        started = time.time()
        for rel, expected in sorted(entry.files.items()):
            data = (entry.folder / rel).read_bytes()
            actual = hashlib.sha256(data).hexdigest()
            if actual != expected:  # changed since verify(): check what is copied
                raise ReleaseIntegrityError(entry.folder / rel, expected, actual)
            runs.atomic_write_bytes(tmp / rel, data)
        release = {k: getattr(entry, k) for k in ("name", "profile", "dtype", "commit", "created", "files")}
        out = {
            "source": "release", "release": release, "machine": entry.machine, "versions": entry.versions,
            "commit": entry.commit, "metrics": entry.metrics, "training": {"steps": entry.steps},
            "timings": {"build_seconds": entry.train_seconds, "started": entry.created},
            "materialised": {"machine": runs.machine(), "versions": runs.versions(),
                             "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                             "seconds": round(time.time() - started, 3)},
        }
        if entry.transfer is not None:
            out["transfer"] = entry.transfer
        if entry.selection is not None:
            out["selection"] = entry.selection
        return out

    return runs.cached(entry.kind, replay, build, root=cache_root)
