"""Released checkpoints: the trained models of a profile, kept in the repository.

A fresh clone builds the book without training: every model the ``cpu``
profile trains is released under ``weights/`` (:func:`release_root`), and the
zoo (:mod:`dinosal.transfers` for the transfer models) resolves a model as
run cache -> released checkpoint whose key and sha256 match -> train
(:func:`dinosal.transfers.select` a validation grid's table alike, and
:mod:`dinosal.run_scores` a score table).
Layout::

    weights/manifest.json                 {"format": 1, "entries": [Entry, ...]} (sorted by name)
    weights/<name>/backbone.safetensors   kind "dino": the DINO teacher's backbone (timm key names, no head)
    weights/<name>/classifier.safetensors kind "transfer": the whole classifier (backbone.* and head.* keys;
                                          the checkpoint's config, class_names and step in the header); a
                                          linear probe's: its head.* keys only (same header, plus the digest
                                          of the frozen backbone left out: its parent's, bit for bit)
    weights/<name>/config.json            the run cache's config of the model (TrainSpec / TransferKey as JSON)
    weights/<name>/log.csv.gz             the training log, one row per step (gzip; the run cache holds log.csv)
    weights/<name>/snapshots/step_NNNNNN.safetensors   the weights after NNNNNN steps, as the final file
                                          (optional: :func:`export_artifact` with ``snapshots=False`` keeps none;
                                          the last one, when it is the final file, is stored once: the
                                          entry's ``copies``)
    weights/<name>/selection.json         kind "transfer_selection": a transfer task's validation grid (the
                                          table :func:`dinosal.transfers.select` caches; with config.json only)
    weights/<name>/scores.csv.gz          kind "scores": a table of per-image scores (:mod:`dinosal.run_scores`;
                                          gzip; with config.json only)

Names: a DINO model's catalogue name (``dino_world``, ``dino_world__seed1``,
``theory__full_dino``: :func:`dinosal.zoo.catalogue`); a transfer's
``<transfer name>__s<seed>`` (``dino_world__bce_driving__s0``; with a
pretraining seed of the parent, ``<transfer name>__p<parent seed>__s<seed>``:
:func:`dinosal.transfers.catalogue`). A transfer entry keeps its artifact
manifest's ``"transfer"`` block (class names, parent, mode, ...) and
validation scores, so a materialised transfer reads as a trained one.
A validation grid's entry (``<grid parent>__<task>[__probe]__s<seed>__grid``:
:func:`dinosal.transfers.selection_catalogue`) keeps its artifact manifest's
``"selection"`` block; it releases the table, never the candidates it trained.
A score table's entry (names: :func:`dinosal.run_scores.catalogue`) keeps its
artifact manifest's ``"scores"`` block, if any.

A linear probe (a transfer of mode ``"probe"``) is released head-only: its
frozen backbone is its parent's, which the parent's identity in its
``config.json`` names (the zoo model's key, the random init's network and
seed); the entry's ``backbone`` block holds that backbone's digest.
:func:`materialise` rebuilds the whole classifier from the parent's backbone
(``backbone=``; :func:`dinosal.transfers.train_cached` resolves the parent
as always: run cache -> release -> train) into the very files a whole
release would have held.

Tensors are stored in the entry's ``dtype`` (``float16`` by default, see
:data:`DEFAULT_DTYPE`) and loaded as float32. ``config.json`` holds exactly
the ``config`` of the run-cache manifest, so it gives back the run-cache key
(:func:`materialise` checks it) and, under ``"dino"``, the network
(``arch``, ``patch``, ``img_size``, ``pos_interp``).

API: :func:`export_artifact` (cache artifact -> release entry),
:func:`entries` / :func:`find` (read the manifest), :func:`withdraw` (remove an entry this release wrote), :func:`verify` (sha256 of
every file; :class:`ReleaseIntegrityError` names a corrupted or missing
file -- never a silent retrain), :func:`materialise` (release entry -> run
cache artifact, through :func:`dinosal.runs.cached`; a head-only probe with its parent's
backbone), :func:`load_backbone`,
:func:`load_snapshot`, :func:`snapshot_paths` and :func:`load_artifact_backbone`
(any ``dino`` artifact, trained or materialised), :func:`load_classifier` and
:func:`load_artifact_classifier` (any ``transfer`` file or artifact, trained or
materialised), :func:`compare` (released vs retrained metrics).

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

from .cache import materialise, released_artifact, where_from
from .export import export_artifact
from .store import (
    BACKBONE,
    CLASSIFIER,
    CONFIG_JSON,
    DEFAULT_DTYPE,
    DTYPES,
    ENTRY_FILE,
    FORMAT,
    MANIFEST,
    PACKED,
    PARENT_BACKBONE,
    RELEASE_DIR,
    SCORES_CSV,
    SCORES_KIND,
    SELECTION_JSON,
    SELECTION_KIND,
    TABLE_FILE,
    TRANSFER_KIND,
    WEIGHTS_ENV,
    WEIGHTS_FILE,
    Entry,
    ReleaseIntegrityError,
    compare,
    entries,
    find,
    cache_path,
    git_commit,
    release_root,
    released_path,
    sha256_file,
    verify,
    withdraw,
)
from .tensors import (
    backbone_digest,
    load_artifact_backbone,
    load_artifact_neck,
    load_artifact_classifier,
    load_backbone,
    load_classifier,
    load_snapshot,
    snapshot_paths,
)

__all__ = [
    "WEIGHTS_ENV", "RELEASE_DIR", "MANIFEST", "FORMAT", "DEFAULT_DTYPE", "DTYPES", "BACKBONE", "CLASSIFIER",
    "CONFIG_JSON", "TRANSFER_KIND", "SELECTION_KIND", "SELECTION_JSON", "SCORES_KIND", "SCORES_CSV", "TABLE_FILE",
    "ENTRY_FILE", "WEIGHTS_FILE", "PARENT_BACKBONE", "PACKED", "released_path", "cache_path", "Entry", "ReleaseIntegrityError", "release_root", "entries",
    "find",
    "export_artifact", "verify", "withdraw", "materialise", "released_artifact", "where_from", "load_backbone", "load_snapshot", "snapshot_paths",
    "load_artifact_backbone", "load_artifact_neck", "load_classifier", "load_artifact_classifier", "compare", "sha256_file", "git_commit",
    "backbone_digest",
]
