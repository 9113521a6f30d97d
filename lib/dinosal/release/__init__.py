"""Released checkpoints: the trained models of a profile, kept in the repository.

A fresh clone builds the book without training: every model the ``cpu``
profile trains is released under ``weights/`` (:func:`release_root`), and the
zoo resolves a model as run cache -> released checkpoint whose key and sha256
match -> train. Layout::

    weights/manifest.json                 {"format": 1, "entries": [Entry, ...]} (sorted by name)
    weights/<name>/backbone.safetensors   the DINO teacher's backbone (timm key names, no head)
    weights/<name>/config.json            the run cache's config of the model (TrainSpec as JSON)
    weights/<name>/log.csv                the training log, one row per step
    weights/<name>/snapshots/step_NNNNNN.safetensors   the teacher's backbone after NNNNNN steps

Tensors are stored in the entry's ``dtype`` (``float16`` by default, see
:data:`DEFAULT_DTYPE`) and loaded as float32. ``config.json`` holds exactly
the ``config`` of the run-cache manifest, so it gives back the run-cache key
(:func:`materialise` checks it) and, under ``"dino"``, the network
(``arch``, ``patch``, ``img_size``, ``pos_interp``).

API: :func:`export_artifact` (cache artifact -> release entry),
:func:`entries` / :func:`find` (read the manifest), :func:`verify` (sha256 of
every file; :class:`ReleaseIntegrityError` names a corrupted or missing
file -- never a silent retrain), :func:`materialise` (release entry -> run
cache artifact, through :func:`dinosal.runs.cached`), :func:`load_backbone`,
:func:`load_snapshot`, :func:`snapshot_paths` and :func:`load_artifact_backbone`
(any ``dino`` artifact, trained or materialised), :func:`compare` (released
vs retrained metrics).

Writes are atomic and never touch a file this module did not write: a
``weights/<name>/`` folder holding a file its manifest entry does not list is
refused (``FileExistsError``), and the manifest is replaced in one
``os.replace``. Safetensors files are byte-identical for identical weights,
so releasing the same model again gives no diff.

Modules: :mod:`.store` (manifest, :class:`Entry`, :func:`verify`,
:func:`compare`), :mod:`.tensors` (safetensors in and out, loading),
:mod:`.export` (:func:`export_artifact`), :mod:`.cache` (:func:`materialise`).
The command lines (``make weights``, ``make release``) live in
:mod:`dinosal.cli`.
"""

from .cache import materialise
from .export import export_artifact
from .store import (
    BACKBONE,
    CONFIG_JSON,
    DEFAULT_DTYPE,
    DTYPES,
    FORMAT,
    MANIFEST,
    RELEASE_DIR,
    WEIGHTS_ENV,
    Entry,
    ReleaseIntegrityError,
    compare,
    entries,
    find,
    git_commit,
    release_root,
    sha256_file,
    verify,
)
from .tensors import load_artifact_backbone, load_backbone, load_snapshot, snapshot_paths

__all__ = [
    "WEIGHTS_ENV", "RELEASE_DIR", "MANIFEST", "FORMAT", "DEFAULT_DTYPE", "DTYPES", "BACKBONE", "CONFIG_JSON",
    "Entry", "ReleaseIntegrityError", "release_root", "entries", "find", "export_artifact", "verify",
    "materialise", "load_backbone", "load_snapshot", "snapshot_paths", "load_artifact_backbone", "compare",
    "sha256_file", "git_commit",
]
