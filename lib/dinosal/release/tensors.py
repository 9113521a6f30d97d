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
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Optional

import torch

from .. import runs
from ..models import create_vit, extract_backbone_state, load_dino_backbone, load_dino_state
from ..train.dino import CHECKPOINT, SNAPSHOT_DIR
from ..train.transfer import TransferCheckpoint, load_transfer, transfer_from_checkpoint
from .store import BACKBONE, CLASSIFIER, CONFIG_JSON, DTYPES, ReleaseIntegrityError

META_KEY = "dinosal"
"""The one safetensors header entry this package writes: sorted JSON."""


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
    from safetensors.torch import load

    if not path.is_file():
        if expected is not None:
            raise ReleaseIntegrityError(path, expected, None)
        raise FileNotFoundError(f"{path}: no such file")
    data = path.read_bytes()
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise ReleaseIntegrityError(path, expected, hashlib.sha256(data).hexdigest())
    try:
        state = load(data)
        n = int.from_bytes(data[:8], "little")
        meta = json.loads(json.loads(data[8:8 + n]).get("__metadata__", {}).get(META_KEY, "{}"))
    except Exception as err:  # noqa: BLE001 - the safetensors error names no file
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from err
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, meta


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


def _network(config: Mapping, source) -> torch.nn.Module:
    """A :func:`create_vit` network for a run config (fields under ``"dino"``) or a training config."""
    net = config.get("dino", config)
    missing = [k for k in ("arch", "patch", "img_size") if not isinstance(net, Mapping) or k not in net]
    if missing:
        raise ValueError(f"{source}: no network description: fields {missing} missing (under 'dino' or at the top)")
    arch = tuple(net["arch"]) if isinstance(net["arch"], list) else net["arch"]
    return create_vit(arch, patch=int(net["patch"]), img_size=int(net["img_size"]),
                      pos_interp=net.get("pos_interp", "dino"))


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
    """The sha256 a materialised artifact's manifest records for ``rel``, else None."""
    try:
        files = runs.read_manifest(folder).get("release", {}).get("files", {})
    except (OSError, ValueError, AttributeError):
        return None
    return files.get(rel) if isinstance(files, dict) else None


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
    ``expected``: its sha256). Raises ``ValueError`` naming the file when it is not a transfer file."""
    if path.suffix == ".safetensors":
        state, meta = _read_safetensors_meta(path, expected)
        if not all(k in meta for k in ("config", "class_names", "step")):
            raise ValueError(f"{path}: not a released transfer file (its header lacks config, class_names or step)")
        return {"model": state, "config": json.dumps(meta["config"], sort_keys=True),
                "class_names": list(meta["class_names"]), "step": int(meta["step"])}
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the path
        raise ValueError(f"{path}: cannot read as a torch checkpoint ({err})") from err
    if not (isinstance(ckpt, Mapping) and all(k in ckpt for k in ("model", "config", "class_names", "step"))):
        raise ValueError(f"{path}: not a transfer checkpoint of dinosal (needs model, config, class_names, step)")
    return {k: ckpt[k] for k in ("model", "config", "class_names", "step")}


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
