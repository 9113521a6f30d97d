"""Tensors in and out of safetensors files, and the networks they load into.

A released ``dino`` file holds the DINO teacher's backbone (timm key names,
no head) in the entry's dtype; loading builds the network from
``config.json`` (:func:`~dinosal.models.create_vit`) and loads strictly, as
float32. A released ``transfer`` file (``classifier.safetensors``, a
snapshot) holds the whole classifier's state (``backbone.*`` and ``head.*``
keys, as the trainer's checkpoint under ``"model"``) and, in its header,
what :func:`~dinosal.train.transfer.transfer_from_checkpoint` needs beside
the tensors: the checkpoint's ``config``, ``class_names`` and ``step``; it
is loaded exactly as the checkpoint.

A linear probe is released head-only (its frozen backbone is its parent's,
bit for bit): its files hold the ``head.*`` tensors, the same header plus
``"backbone": {"from": "parent", "sha256": ...}`` (:func:`backbone_digest`
of the backbone left out, in the file's dtype). :func:`rebuild_classifier`
puts the parent's backbone back, cast to that dtype, into the very bytes a
whole release of the classifier would have had; a head-only file is never
loaded as it is (:func:`load_classifier` names what to do instead).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Optional

import torch

from .. import runs
from ..models import create_vit, extract_backbone_state, load_dino_backbone, load_dino_state, seeded_vit
from ..train.dino import CHECKPOINT, SNAPSHOT_DIR
from ..train.transfer import TransferCheckpoint, load_transfer, transfer_from_checkpoint
from .store import BACKBONE, CLASSIFIER, CONFIG_JSON, DTYPES, PARENT_BACKBONE, ReleaseIntegrityError

META_KEY = "dinosal"
"""The one safetensors header entry this package writes: sorted JSON."""
CLASSIFIER_CONTENT = "transfer classifier"
HEAD_CONTENT = "transfer probe head"
"""The header's ``"content"`` of a whole released classifier, and of a linear probe's head-only file."""
BACKBONE_PREFIX = "backbone."


def _cast(state: Mapping[str, torch.Tensor], dtype: str, source: str) -> dict[str, torch.Tensor]:
    if dtype not in DTYPES:
        raise ValueError(f"release: dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    out = {}
    for k, v in state.items():
        v = v.detach().cpu()
        if v.is_floating_point():
            v = v.to(DTYPES[dtype])
            if not torch.isfinite(v).all():
                raise ValueError(f"{source}: tensor {k} has values that are not finite in {dtype}")
        out[k] = v.contiguous().clone()
    return out


def _safetensors_bytes(state: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> bytes:
    """The safetensors file of ``state``, byte-identical for identical input:
    ``meta`` goes into one header entry ``"dinosal"`` as sorted JSON (the
    writer orders several metadata entries at random)."""
    from safetensors.torch import save

    return save(dict(state), metadata={META_KEY: json.dumps(dict(meta), sort_keys=True, default=str)})


def _read_safetensors(path: Path, expected: Optional[str] = None) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file as float32; ``expected``: its sha256."""
    return _read_safetensors_meta(path, expected)[0]


def _read_safetensors_meta(path: Path, expected: Optional[str] = None) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors of a safetensors file as float32 and its :data:`META_KEY` header (``{}`` if none);
    ``expected``: its sha256 (:class:`ReleaseIntegrityError`)."""
    state, meta = _parse_safetensors(_checked_bytes(path, expected), path)
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, meta


def _checked_bytes(path: Path, expected: Optional[str] = None) -> bytes:
    """The bytes of ``path``; ``expected``: their sha256 (:class:`ReleaseIntegrityError`, also for a missing file)."""
    if not path.is_file():
        if expected is not None:
            raise ReleaseIntegrityError(path, expected, None)
        raise FileNotFoundError(f"{path}: no such file")
    data = path.read_bytes()
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise ReleaseIntegrityError(path, expected, hashlib.sha256(data).hexdigest())
    return data


def _parse_safetensors(data: bytes, path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors (as stored) and :data:`META_KEY` header (``{}`` if none) of safetensors bytes read from ``path``."""
    from safetensors.torch import load

    try:
        state = load(data)
        n = int.from_bytes(data[:8], "little")
        meta = json.loads(json.loads(data[8:8 + n]).get("__metadata__", {}).get(META_KEY, "{}"))
    except Exception as err:  # noqa: BLE001 - the safetensors error names no file
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from err
    return state, meta


def _read_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file (a released model needs its {CONFIG_JSON})") from None
    except ValueError as err:
        raise ValueError(f"{path}: not JSON ({err})") from err
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    return doc


def _network_fields(config: Mapping, source, seed: bool = False) -> dict[str, Any]:
    """The network's fields of a run config (under ``"dino"``) or a training config, as keyword arguments of
    :func:`create_vit` (and ``seed`` with ``seed=True``). ``ValueError`` naming ``source`` for missing fields."""
    net = config.get("dino", config)
    needed = ("seed",) * seed + ("arch", "patch", "img_size")
    missing = [k for k in needed if not isinstance(net, Mapping) or k not in net]
    if missing:
        raise ValueError(f"{source}: no network description: fields {missing} missing (under 'dino' or at the top)")
    out = dict(arch=tuple(net["arch"]) if isinstance(net["arch"], list) else net["arch"], patch=int(net["patch"]),
               img_size=int(net["img_size"]), pos_interp=net.get("pos_interp", "dino"))
    return {"seed": int(net["seed"]), **out} if seed else out


def _network(config: Mapping, source) -> torch.nn.Module:
    """A :func:`create_vit` network for a run config (fields under ``"dino"``) or a training config."""
    return create_vit(**_network_fields(config, source))


DINO_CONTENT = "dino teacher backbone"
"""The ``content`` of the header of a released DINO backbone or snapshot."""


def _initial_blob(config: Mapping, key: str, dtype: str, source) -> bytes:
    """The released step-0 snapshot of the DINO run of ``config`` (key ``key``), made from code: its network at
    random init (:func:`~dinosal.models.seeded_vit` with the config's ``seed``, ``arch``, ``patch``, ``img_size``,
    ``pos_interp``), cast to ``dtype``, with the header the export writes -- the same bytes as the snapshot the
    training kept, as long as the library draws the same initialisation. ``ValueError`` naming ``source`` for a
    config without the network's fields."""
    model = seeded_vit(**_network_fields(config, source, seed=True))
    meta = {"content": DINO_CONTENT, "key": key, "dtype": dtype, "step": 0}
    return _safetensors_bytes(_cast(model.state_dict(), dtype, str(source)), meta)


def _torch_teacher(path: Path) -> tuple[dict[str, torch.Tensor], Optional[int]]:
    """Teacher backbone state and step of a dinosal training checkpoint or snapshot."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the path
        raise ValueError(f"{path}: cannot read as a torch checkpoint ({err})") from err
    state, _, _ = extract_backbone_state(ckpt, "teacher", source=str(path))
    step = ckpt.get("step") if isinstance(ckpt, Mapping) else None
    return state, (int(step) if step is not None else None)


def _expected_digest(folder: Path, rel: str) -> Optional[str]:
    """The sha256 a materialised artifact's manifest records for ``rel`` (a file rebuilt from a head-only
    release: the rebuilt file's, under ``"rebuilt"``; else the released file's, under ``"release"``), else None."""
    try:
        manifest = runs.read_manifest(folder)
        for block in ("rebuilt", "release"):
            files = manifest.get(block, {}).get("files", {})
            if isinstance(files, dict) and rel in files:
                return files[rel]
    except (OSError, ValueError, AttributeError):
        return None
    return None


NECK_FILE = "neck.safetensors"
"""A LEWEL companion's extra released file: the part of its teacher's neck that makes the alignment maps,
``head.neck.proj.*`` (:data:`NECK_KEPT`; the slots' projection ``proj_obj`` is left out: no chapter draws
the slots, and it would cost as much again)."""
NECK_KEPT = "proj."
"""Prefix (within ``head.neck.``) of the neck tensors a release keeps (:data:`NECK_FILE`)."""


def load_artifact_neck(artifact_dir) -> dict[str, torch.Tensor]:
    """The teacher's ``head.neck.*`` tensors (prefix dropped, float32) of a LEWEL ``dino`` artifact: all of
    them from its ``checkpoint.pth`` when trained here, else those of its released :data:`NECK_FILE` (sha256
    checked against the manifest; ``proj.*`` only, see :data:`NECK_KEPT`). Raises ``FileNotFoundError`` for an
    artifact that has neither (not a LEWEL run)."""
    folder = Path(artifact_dir)
    if (folder / CHECKPOINT).is_file():
        ckpt = torch.load(folder / CHECKPOINT, map_location="cpu", weights_only=True)
        state = {k[len("head.neck."):]: v for k, v in ckpt.get("teacher", {}).items() if k.startswith("head.neck.")}
        if state:
            return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    if (folder / NECK_FILE).is_file():
        return _read_safetensors(folder / NECK_FILE, _expected_digest(folder, NECK_FILE))
    raise FileNotFoundError(f"{folder}: no LEWEL neck (neither a training checkpoint with head.neck.* nor {NECK_FILE})")


def _load(folder: Path, rel: str) -> torch.nn.Module:
    model = _network(_read_json(folder / CONFIG_JSON), folder / CONFIG_JSON)
    path = folder / rel
    load_dino_state(model, _read_safetensors(path, _expected_digest(folder, rel)), source=str(path))
    return model.eval()


def load_backbone(artifact_dir) -> torch.nn.Module:
    """The ViT of a released model (a release entry folder or an artifact
    made by :func:`materialise`) in eval mode, float32: built by
    :func:`~dinosal.models.create_vit` from ``config.json`` and loaded
    strictly from ``backbone.safetensors``. In a materialised artifact the
    file's sha256 is checked against its manifest
    (:class:`ReleaseIntegrityError`); a key or shape mismatch raises
    :class:`~dinosal.models.CheckpointKeyError` naming the file."""
    return _load(Path(artifact_dir), BACKBONE)


def load_snapshot(path) -> torch.nn.Module:
    """The teacher backbone of ``<artifact>/snapshots/step_NNNNNN.safetensors``
    (float32, eval mode; the network from ``<artifact>/config.json``; errors as
    :func:`load_backbone`)."""
    path = Path(path)
    return _load(path.parent.parent, f"{path.parent.name}/{path.name}")


def snapshot_paths(artifact_dir) -> dict[int, Path]:
    """``{step: path}`` of the snapshots of a ``dino`` artifact, in step order:
    ``snapshots/step_NNNNNN.safetensors`` (released) or ``.pth`` (trained here)."""
    found = {}
    for p in Path(artifact_dir, SNAPSHOT_DIR).glob("step_*"):
        if p.suffix in (".pth", ".safetensors"):
            found[int(p.stem.split("_")[1])] = p
    return dict(sorted(found.items()))


def load_artifact_backbone(artifact_dir, snapshot: Optional[int] = None) -> torch.nn.Module:
    """The teacher backbone (eval mode) of any ``dino`` artifact: trained here
    (``checkpoint.pth``, ``snapshots/*.pth``) or materialised from a release
    (``backbone.safetensors``, ``snapshots/*.safetensors``); ``snapshot``: a
    step of :func:`snapshot_paths` instead of the final weights. Raises
    ``KeyError`` for a step that was not kept."""
    folder = Path(artifact_dir)
    if snapshot is not None:
        paths = snapshot_paths(folder)
        if snapshot not in paths:
            raise KeyError(f"{folder}: no snapshot of step {snapshot}; kept: {sorted(paths)}")
        p = paths[snapshot]
        return (load_dino_backbone(p, which="teacher")[0] if p.suffix == ".pth" else load_snapshot(p)).eval()
    if (folder / CHECKPOINT).is_file():
        return load_dino_backbone(folder / CHECKPOINT, which="teacher")[0].eval()
    return load_backbone(folder)


# ---------------------------------------------------------------- transfers: the whole classifier


def _folder_and_rel(path: Path) -> tuple[Path, str]:
    """``(artifact folder, path relative to it)`` of a weights file or a ``snapshots/`` file."""
    if path.parent.name == SNAPSHOT_DIR:
        return path.parent.parent, f"{SNAPSHOT_DIR}/{path.name}"
    return path.parent, path.name


def _transfer_checkpoint(path: Path, expected: Optional[str] = None) -> dict:
    """The checkpoint mapping (``model``, ``config`` JSON string, ``class_names``, ``step``) of a
    transfer checkpoint or snapshot: a trainer's ``.pth`` or a released ``.safetensors`` (float32;
    ``expected``: its sha256). Raises ``ValueError`` naming the file when it is not a transfer file,
    or when it is a probe's head-only file (its backbone is not in it: :func:`rebuild_classifier`)."""
    if path.suffix == ".safetensors":
        state, meta = _read_safetensors_meta(path, expected)
        if not all(k in meta for k in ("config", "class_names", "step")):
            raise ValueError(f"{path}: not a released transfer file (its header lacks config, class_names or step)")
        if "backbone" in meta:
            raise ValueError(f"{path}: holds only the head of a linear probe, whose frozen backbone is its parent's; "
                             "load it through dinosal.transfers.load (or dinosal.release.materialise with the "
                             "parent's backbone), which rebuild the whole classifier")
        return {"model": state, "config": json.dumps(meta["config"], sort_keys=True),
                "class_names": list(meta["class_names"]), "step": int(meta["step"])}
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the path
        raise ValueError(f"{path}: cannot read as a torch checkpoint ({err})") from err
    if not (isinstance(ckpt, Mapping) and all(k in ckpt for k in ("model", "config", "class_names", "step"))):
        raise ValueError(f"{path}: not a transfer checkpoint of dinosal (needs model, config, class_names, step)")
    return {k: ckpt[k] for k in ("model", "config", "class_names", "step")}


def backbone_digest(state: Mapping[str, torch.Tensor], dtype: str) -> str:
    """sha256 of a backbone's tensors as released in ``dtype`` (floating tensors cast): over the sorted
    key names (timm's, or ``backbone.*`` with the prefix dropped), each tensor's dtype, shape and bytes."""
    digest = hashlib.sha256()
    plain = {k[len(BACKBONE_PREFIX):] if k.startswith(BACKBONE_PREFIX) else k: v for k, v in state.items()}
    for name, t in sorted(_cast(plain, dtype, "backbone").items()):
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _head_only_bytes(state: Mapping[str, torch.Tensor], meta: Mapping[str, Any], dtype: str, source: str) -> bytes:
    """The head-only file of a whole probe classifier ``state`` (``backbone.*`` and ``head.*``): its
    ``head.*`` tensors cast to ``dtype``, ``meta`` with :data:`HEAD_CONTENT` and the left-out backbone's
    :func:`backbone_digest`."""
    backbone = {k: v for k, v in state.items() if k.startswith(BACKBONE_PREFIX)}
    head = {k: v for k, v in state.items() if not k.startswith(BACKBONE_PREFIX)}
    if not backbone or not head or any(not k.startswith("head.") for k in head):
        raise ValueError(f"{source}: not a classifier of backbone.* and head.* tensors; cannot release its head alone")
    extra = {"content": HEAD_CONTENT, "backbone": {"from": PARENT_BACKBONE, "sha256": backbone_digest(backbone, dtype)}}
    return _safetensors_bytes(_cast(head, dtype, source), {**meta, **extra})


def rebuild_classifier(path: Path, backbone: Mapping[str, torch.Tensor], expected: Optional[str] = None) -> bytes:
    """The whole released classifier file of the head-only file ``path`` (``expected``: its sha256):
    ``backbone`` (the parent's state, timm key names, any float dtype) cast to the file's dtype as
    ``backbone.*``, its ``head.*`` tensors and header as a whole release writes them -- the bytes
    :func:`~dinosal.release.export_artifact` would have written for the whole classifier. The result
    is checked to load strictly (:class:`~dinosal.models.CheckpointKeyError` for a backbone the
    classifier's config does not describe); ``ValueError`` when ``path`` is not a head-only file."""
    head, meta = _parse_safetensors(_checked_bytes(path, expected), path)  # head: as stored, in the file's dtype
    if meta.get("content") != HEAD_CONTENT or "backbone" not in meta:
        raise ValueError(f"{path}: not the head-only file of a released linear probe")
    dtype = meta.get("dtype")
    if dtype not in DTYPES:
        raise ValueError(f"{path}: header dtype {dtype!r} is not one of {sorted(DTYPES)}")
    whole = {**{BACKBONE_PREFIX + k: v for k, v in _cast(backbone, dtype, "parent backbone").items()}, **head}
    meta = {k: v for k, v in meta.items() if k != "backbone"}
    out = _safetensors_bytes(whole, {**meta, "content": CLASSIFIER_CONTENT})
    transfer_from_checkpoint({"model": {k: v.float() if v.is_floating_point() else v for k, v in whole.items()},
                              "config": json.dumps(meta["config"], sort_keys=True),
                              "class_names": list(meta["class_names"]), "step": int(meta["step"])},
                             f"{path} with its parent's backbone")  # strict: the classifier its config describes
    return out


def load_classifier(path) -> TransferCheckpoint:
    """The transfer classifier of one file, as
    :func:`~dinosal.train.transfer.load_transfer` gives it (eval mode; a probe's
    backbone frozen): a trainer's ``checkpoint.pth`` or ``snapshots/step_NNNNNN.pth``,
    or a released ``classifier.safetensors`` / ``snapshots/step_NNNNNN.safetensors``
    (float32; in an artifact made by :func:`~dinosal.release.materialise` its sha256 is
    checked against the artifact manifest: :class:`ReleaseIntegrityError`). Key or shape
    mismatches raise :class:`~dinosal.models.CheckpointKeyError` naming the file."""
    path = Path(path)
    if path.suffix != ".safetensors":
        return load_transfer(path)
    folder, rel = _folder_and_rel(path)
    return transfer_from_checkpoint(_transfer_checkpoint(path, _expected_digest(folder, rel)), str(path))


def load_artifact_classifier(artifact_dir, snapshot: Optional[int] = None) -> TransferCheckpoint:
    """The classifier of any ``transfer`` artifact: trained here (``checkpoint.pth``,
    ``snapshots/*.pth``) or materialised from a release (``classifier.safetensors``,
    ``snapshots/*.safetensors``); ``snapshot``: a step of :func:`snapshot_paths` instead of the
    final weights (``KeyError`` for a step that was not kept). ``FileNotFoundError`` when the
    artifact holds neither weights file."""
    folder = Path(artifact_dir)
    if snapshot is not None:
        paths = snapshot_paths(folder)
        if snapshot not in paths:
            raise KeyError(f"{folder}: no snapshot of step {snapshot}; kept: {sorted(paths)}")
        return load_classifier(paths[snapshot])
    for name in (CHECKPOINT, CLASSIFIER):
        if (folder / name).is_file():
            return load_classifier(folder / name)
    raise FileNotFoundError(f"{folder}: neither {CHECKPOINT} nor {CLASSIFIER}: not a transfer artifact")
