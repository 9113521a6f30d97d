"""Official DINO weights: strict loading of checkpoint layouts into the ViT.

:func:`load_dino_backbone` / :func:`load_dino_state` read the official
checkpoint layouts (and those :mod:`dinosal.train.dino` writes) strictly: a
key, shape or head-count mismatch raises :class:`CheckpointKeyError` naming
the file, the keys and both shapes, never a silent partial load or a silent
resize. The one documented exception is a position table of another grid,
which is resampled (see :func:`load_dino_backbone` and
:mod:`dinosal.models.vit`). :func:`load_dino_timm` gets the weights through
timm's hub; :func:`official_weights_path` names a local file.

Weight-normalised last layer and official checkpoints
-----------------------------------------------------
The head's last layer uses ``torch.nn.utils.parametrizations.weight_norm``
(the old ``torch.nn.utils.weight_norm`` is deprecated). Its parameters are
named differently from the official checkpoints::

    official (old weight_norm)      DINOHead (parametrizations)
    head.last_layer.weight_g   ->   head.last_layer.parametrizations.weight.original0   (out_dim, 1)
    head.last_layer.weight_v   ->   head.last_layer.parametrizations.weight.original1   (out_dim, bottleneck)

torch registers a load hook that renames ``weight_g``/``weight_v`` on load, and
:func:`official_head_keys_to_parametrized` does the same renaming on a plain
dict (used by :func:`load_dino_state`), so official heads load either way.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import torch
import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer

from .vit import (
    _RESAMPLE_DOC,
    VIT_SIZES,
    DinoVisionTransformer,
    _arch_dims,
    _check_pos_interp,
    create_vit,
    resample_pos_embed,
)

__all__ = [
    "CheckpointKeyError",
    "LoadReport",
    "extract_backbone_state",
    "load_dino_backbone",
    "dino_backbone_from",
    "load_dino_state",
    "load_dino_timm",
    "official_head_keys_to_parametrized",
    "official_weights_path",
]

DINO_WEIGHTS_ENV = "DINOSAL_DINO_WEIGHTS"


class CheckpointKeyError(KeyError):
    """A checkpoint does not match the model.

    ``source`` names the file (or state dict); ``missing``/``unexpected`` list
    the offending keys; ``shapes`` lists ``"key: checkpoint (..) vs model
    (..)"`` entries; ``problems`` states other mismatches in words (depth,
    heads, patch size, no blocks). The message names all of them (first 10 of
    each list)."""

    def __init__(self, source: str, missing: Sequence[str], unexpected: Sequence[str],
                 shapes: Sequence[str] = (), problems: Sequence[str] = ()):
        self.source = str(source)
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.shapes = list(shapes)
        self.problems = list(problems)

        def show(keys):
            keys = list(keys)
            more = f" ... (+{len(keys) - 10} more)" if len(keys) > 10 else ""
            return ", ".join(keys[:10]) + more

        parts = [f"{source}: checkpoint does not match the model"]
        parts += self.problems
        if self.missing:
            parts.append(f"missing from checkpoint ({len(self.missing)}): {show(self.missing)}")
        if self.unexpected:
            parts.append(f"unexpected in checkpoint ({len(self.unexpected)}): {show(self.unexpected)}")
        if self.shapes:
            parts.append(f"shape mismatch ({len(self.shapes)}): {show(self.shapes)}")
        super().__init__("; ".join(parts))

    def __str__(self) -> str:  # KeyError quotes its argument otherwise
        return self.args[0]


@dataclass(frozen=True)
class LoadReport:
    """What a loader did. ``layout`` is ``"plain"`` (a backbone state dict)
    or ``"training:<which>"`` (an official or dinosal training checkpoint);
    ``dropped`` lists the checkpoint keys that were deliberately not loaded
    (the DINO projection head); ``grid`` is the (rows, cols) of the stored
    position table; ``pos_interp`` the position mode of the returned model
    (``"timm"`` for a plain timm ViT); ``resampled_pos_embed`` is None when the
    table was loaded as stored, else how it was resampled to the model's grid,
    e.g. ``"dino: (4, 4) -> (5, 5), bicubic, scale_factor (n+0.1)/n0, no
    antialias (DINO interpolate_pos_encoding)"``."""

    source: str
    layout: str
    dropped: tuple[str, ...]
    grid: tuple[int, int]
    pos_interp: str = "dino"
    resampled_pos_embed: Optional[str] = None


def _strip(key: str, prefixes: Sequence[str]) -> str:
    changed = True
    while changed:
        changed = False
        for p in prefixes:
            if key.startswith(p):
                key, changed = key[len(p):], True
    return key


def extract_backbone_state(
    ckpt: Mapping, which: str = "teacher", source: str = "checkpoint"
) -> tuple[dict[str, torch.Tensor], str, tuple[str, ...]]:
    """Backbone state dict (timm key names) from any official DINO layout.

    Layouts: a plain backbone state dict (``dino_deitsmall8_300ep_pretrain.pth``:
    ``cls_token, pos_embed, patch_embed.proj.weight, blocks.N.attn.qkv.weight,
    ..., norm.weight``), or a training checkpoint with ``'teacher'`` /
    ``'student'`` entries whose keys carry ``module.`` and/or ``backbone.``
    prefixes and ``head.`` entries (the DINO head, dropped here, as is the
    ``mask_token`` of a student trained with iBOT's patch term), or a
    wrapper's state dict (under ``'model'`` or bare) whose backbone keys carry
    ``backbone.`` -- a transferred classifier's checkpoint -- where every key
    without that prefix (the classifier head) is dropped. Returns
    ``(state, layout, dropped_keys)``. DINO's ViT key names equal timm's, so
    apart from the prefixes nothing is renamed. ``source`` (the file) starts
    every error message. Raises ``ValueError`` for ``which`` other than
    ``'teacher'``/``'student'``, ``KeyError`` for a training checkpoint
    without that entry, ``TypeError`` for something that is not a mapping.
    """
    if which not in ("teacher", "student"):
        raise ValueError(f"{source}: which must be 'teacher' or 'student', got {which!r}")
    if not isinstance(ckpt, Mapping):
        raise TypeError(f"{source}: checkpoint must be a mapping (a state dict), got {type(ckpt).__name__}")
    if "teacher" in ckpt or "student" in ckpt:
        if which not in ckpt:
            raise KeyError(f"{source}: training checkpoint has no {which!r} entry; it has {sorted(ckpt)}")
        raw, layout = ckpt[which], f"training:{which}"
        if not isinstance(raw, Mapping):
            raise TypeError(f"{source}: entry {which!r} is a {type(raw).__name__}, not a state dict")
        state, dropped = {}, []
        for k, v in raw.items():
            k2 = _strip(k, ("module.",))
            if k2.startswith("head.") or k2 == "mask_token":  # mask_token: an iBOT student's (dinosal.train)
                dropped.append(k)
                continue
            state[_strip(k2, ("backbone.",))] = v
        return state, layout, tuple(dropped)
    for key in ("model", "state_dict"):
        if key in ckpt and isinstance(ckpt[key], Mapping):
            ckpt = ckpt[key]
    # A wrapper's state (backbone.* next to head.*: a Classifier of dinosal.train.transfer, a
    # MultiCropWrapper): the backbone part is loaded, the rest is reported as dropped.
    wrapped = any(_strip(k, ("module.",)).startswith("backbone.") for k in ckpt)
    state, dropped = {}, []
    for k, v in ckpt.items():
        k2 = _strip(k, ("module.",))
        if wrapped and not k2.startswith("backbone."):
            dropped.append(k)
            continue
        state[_strip(k2, ("backbone.",))] = v
    return state, "plain", tuple(dropped)


def official_head_keys_to_parametrized(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename old weight-norm keys (``*.weight_g``/``*.weight_v``) to the
    ``parametrizations.weight.original0/1`` names of :class:`DINOHead`."""
    out = {}
    for k, v in state.items():
        if k.endswith(".weight_g"):
            k = k[: -len("weight_g")] + "parametrizations.weight.original0"
        elif k.endswith(".weight_v"):
            k = k[: -len("weight_v")] + "parametrizations.weight.original1"
        out[k] = v
    return out


def _shape(v) -> object:
    return tuple(v.shape) if torch.is_tensor(v) else type(v).__name__


def load_dino_state(module: nn.Module, state: Mapping[str, torch.Tensor], source: str = "state dict") -> None:
    """Strictly load ``state`` into ``module``; raise :class:`CheckpointKeyError`
    naming ``source``, the missing, unexpected and wrong-shape keys (with both
    shapes; a non-tensor value counts as a wrong shape). Old weight-norm names
    are renamed first (see the module docstring). Nothing is resampled here."""
    state = official_head_keys_to_parametrized(state)
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: checkpoint {_shape(state[k])} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if _shape(state[k]) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        raise CheckpointKeyError(source, missing, unexpected, shapes)
    module.load_state_dict(state, strict=True)


def _read_checkpoint(path) -> Mapping:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DINO weights: no such file {str(path)!r}")
    # Official training checkpoints pickle their argparse.Namespace under 'args'.
    with torch.serialization.safe_globals([argparse.Namespace]):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - re-raised with the path
            raise ValueError(f"DINO weights: cannot read {str(path)!r} as a torch checkpoint: {err}") from err


def _grid_of(state: Mapping[str, torch.Tensor], source: str = "checkpoint", num_prefix: int = 1) -> tuple[int, int]:
    """(rows, cols) of the stored position table (square, after ``num_prefix`` rows)."""
    pe = state.get("pos_embed")
    if pe is None:
        raise CheckpointKeyError(source, ["pos_embed"], [], problems=["no position table"])
    if not torch.is_tensor(pe) or pe.ndim != 3 or pe.shape[0] != 1:
        raise ValueError(f"{source}: pos_embed must be a (1, 1 + n*n, D) tensor, got {_shape(pe)}")
    n = int(pe.shape[1]) - num_prefix
    side = math.isqrt(max(n, 0))
    if n < 1 or side * side != n:
        raise ValueError(
            f"{source}: pos_embed {tuple(pe.shape)} holds {n} patch positions after "
            f"{num_prefix} CLS row, not a square grid"
        )
    return side, side


def _block_ids(state: Mapping) -> list[int]:
    ids = {k.split(".")[1] for k in state if k.startswith("blocks.") and k.count(".") >= 2}
    return sorted(int(i) for i in ids if i.isdigit())


def _dims_of(state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> tuple[int, int, int]:
    """(width, depth, patch) of a backbone state dict; errors name ``source``."""
    key = "patch_embed.proj.weight"
    w = state.get(key)
    if w is None:
        raise CheckpointKeyError(source, [key], [], problems=["no patch embedding (it gives the width and patch size)"])
    if not torch.is_tensor(w) or w.ndim != 4 or w.shape[-1] != w.shape[-2]:
        raise ValueError(f"{source}: {key} must be a (width, 3, p, p) tensor, got {_shape(w)}")
    ids = _block_ids(state)
    if not ids:
        raise CheckpointKeyError(source, [], [], problems=["no transformer blocks (no 'blocks.<i>.*' keys)"])
    return int(w.shape[0]), ids[-1] + 1, int(w.shape[-1])


def _dinosal_config(ckpt: Mapping, source: str = "checkpoint") -> Optional[dict]:
    """The ``config`` JSON entry of a checkpoint written by :mod:`dinosal.train.dino`, else None."""
    raw = ckpt.get("config") if isinstance(ckpt, Mapping) else None
    if not isinstance(raw, str):
        return None
    try:
        cfg = json.loads(raw)
    except ValueError as err:
        raise ValueError(f"{source}: entry 'config' is not JSON ({err})") from err
    return cfg if isinstance(cfg, dict) else None


def _heads_from_dinosal_config(ckpt: Mapping, source: str = "checkpoint") -> Optional[int]:
    """Heads of a checkpoint written by :mod:`dinosal.train.dino` (its
    ``config`` entry holds the arch), else None. A config whose arch is not
    valid raises ``ValueError`` naming ``source``."""
    cfg = _dinosal_config(ckpt, source)
    if cfg is None or "arch" not in cfg:
        return None
    try:
        return _arch_dims(cfg["arch"])[2]
    except ValueError as err:
        raise ValueError(f"{source}: config entry arch: {err}") from None


def _check_model_against(model: nn.Module, state: Mapping, heads: Optional[int], source: str) -> None:
    """Compare every key's shape (``pos_embed``: all but its row count), the
    depth, the heads (when known) and the table's prefix rows with ``model``,
    before anything is resampled; raise :class:`CheckpointKeyError`."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes, problems = [], []
    for k in sorted(set(own) & set(state)):
        a, b = _shape(state[k]), tuple(own[k].shape)
        if k == "pos_embed" and isinstance(a, tuple) and len(a) == len(b) == 3:
            ok = a[0] == b[0] and a[2] == b[2]  # rows may differ: another grid, resampled
        else:
            ok = a == b
        if not ok:
            shapes.append(f"{k}: checkpoint {a} vs model {b}")
    w, pe = state.get("patch_embed.proj.weight"), getattr(model, "patch_embed", None)
    if torch.is_tensor(w) and w.ndim == 4 and pe is not None:
        own_w = pe.proj.weight
        if w.shape[0] != own_w.shape[0]:
            problems.append(f"width: checkpoint {w.shape[0]} vs model {own_w.shape[0]}")
        if tuple(w.shape[-2:]) != tuple(own_w.shape[-2:]):
            problems.append(f"patch size: checkpoint {tuple(w.shape[-2:])} vs model {tuple(own_w.shape[-2:])}")
    blocks = getattr(model, "blocks", None)
    if blocks is not None and _block_ids(state) and _block_ids(state)[-1] + 1 != len(blocks):
        problems.append(f"depth: checkpoint {_block_ids(state)[-1] + 1} blocks vs model {len(blocks)}")
    model_heads = getattr(getattr(blocks[0], "attn", None), "num_heads", None) if blocks else None
    if heads is not None and model_heads is not None and int(heads) != int(model_heads):
        problems.append(f"heads (blocks.*.attn.num_heads): checkpoint {heads} vs model {model_heads}")
    table = getattr(model, "pos_embed", None)
    if table is not None and pe is not None:
        rows = table.shape[1] - math.prod(pe.grid_size)
        if rows != 1:
            problems.append(f"pos_embed: the model's table has {rows} prefix rows, DINO's has 1 (the CLS)")
    if missing or unexpected or shapes or problems:
        raise CheckpointKeyError(source, missing, unexpected, shapes, problems)


def _fit_pos_embed(state: dict, model: nn.Module, grid: tuple[int, int]) -> tuple[dict, Optional[str]]:
    """Resample the stored table to the model's grid by the model's own
    ``pos_interp`` (a plain timm ViT: ``"timm"``); returns (state, how or None)."""
    if getattr(model, "pos_embed", None) is None or "pos_embed" not in state:
        return state, None
    new_grid = tuple(int(v) for v in model.patch_embed.grid_size)
    if new_grid == tuple(grid):
        return state, None
    method = getattr(model, "pos_interp", "timm")
    with torch.no_grad():
        table = resample_pos_embed(state["pos_embed"], new_grid, grid, method=method, num_prefix_tokens=1)
    return {**state, "pos_embed": table}, f"{method}: {tuple(grid)} -> {new_grid}, {_RESAMPLE_DOC[method]}"


def load_dino_backbone(
    path,
    model: Optional[nn.Module] = None,
    which: str = "teacher",
    heads: Optional[int] = None,
    drop_path: float = 0.0,
    pos_interp: str = "dino",
) -> tuple[VisionTransformer, LoadReport]:
    """Load official DINO ViT weights from a local file, strictly.

    ``path``: a ``.pth`` in one of the layouts of :func:`extract_backbone_state`
    (``which`` picks ``'teacher'`` (the one DINO evaluates) or ``'student'`` in
    a training checkpoint). Without ``model``, a :func:`create_vit` ViT is
    built to match the checkpoint (width, depth, patch and position grid read
    from the tensors; heads from ``heads``, else the config of a checkpoint
    written by :func:`dinosal.train.dino.train_dino`, else :data:`VIT_SIZES`
    by width), so the load is bit-exact. Its position mode is ``pos_interp``
    (``"dino"`` or ``"timm"``, see :func:`create_vit`), or the ``pos_interp``
    of a dinosal config when the checkpoint carries one. A given ``model``
    keeps its own mode (``LoadReport.pos_interp`` says which).

    Strict: before anything is resampled, every key and shape except the row
    count of ``pos_embed`` is compared with the model (patch kernel, width,
    depth, and the heads when the caller or a dinosal config gives them; qkv
    shapes do not reveal heads). Any difference raises
    :class:`CheckpointKeyError` naming the file, the keys and both shapes.
    The one exception: a given ``model`` whose position grid differs from the
    stored one gets the table resampled by the model's own ``pos_interp``
    (:func:`resample_pos_embed`; a plain timm ViT: timm's bicubic+antialias),
    which is written to ``LoadReport.resampled_pos_embed``; the model's mode is
    kept. Errors that are not key mismatches (unreadable file, non-square
    table, a width with no DINO size and no ``heads``) raise ``ValueError``
    naming the file. Returns ``(model, LoadReport)``.
    """
    _check_pos_interp(pos_interp, "load_dino_backbone: pos_interp")
    return dino_backbone_from(_read_checkpoint(path), str(path), model, which, heads, drop_path, pos_interp)


def dino_backbone_from(
    ckpt: Mapping,
    source: str = "checkpoint",
    model: Optional[nn.Module] = None,
    which: str = "teacher",
    heads: Optional[int] = None,
    drop_path: float = 0.0,
    pos_interp: str = "dino",
) -> tuple[VisionTransformer, LoadReport]:
    """:func:`load_dino_backbone` of a checkpoint already read: ``ckpt`` is
    the mapping a ``.pth`` of one of its layouts holds (e.g. rebuilt from a
    released safetensors file), ``source`` names it in every error. Same
    strictness, errors and return value."""
    _check_pos_interp(pos_interp, f"{source}: pos_interp")
    state, layout, dropped = extract_backbone_state(ckpt, which, source=source)
    grid = _grid_of(state, source)
    cfg = _dinosal_config(ckpt, source) or {}
    if cfg.get("pos_interp") is not None:
        pos_interp = _check_pos_interp(cfg["pos_interp"], f"{source}: config entry pos_interp")
    cfg_heads = _heads_from_dinosal_config(ckpt, source)
    if heads is not None and cfg_heads is not None and int(heads) != cfg_heads:
        raise CheckpointKeyError(source, [], [], problems=[
            f"heads: heads={heads} but the checkpoint's config has {cfg_heads} (blocks.*.attn.num_heads)"])
    heads = heads if heads is not None else cfg_heads
    if model is None:
        width, depth, patch = _dims_of(state, source)
        if heads is None:
            by_width = {w: h for (w, _, h) in VIT_SIZES.values()}
            if width not in by_width:
                raise ValueError(f"{source}: width {width} is not a DINO size ({sorted(by_width)}); pass heads=")
            heads = by_width[width]
        if int(heads) < 1 or width % int(heads):
            raise ValueError(f"{source}: width {width} is not divisible by heads {heads}")
        model = create_vit((width, depth, int(heads)), patch=patch, img_size=grid[0] * patch,
                           drop_path=drop_path, pos_interp=pos_interp)
    _check_model_against(model, state, heads, source)
    state, resampled = _fit_pos_embed(state, model, grid)
    load_dino_state(model, state, source=source)
    report = LoadReport(source=source, layout=layout, dropped=dropped, grid=grid,
                        pos_interp=getattr(model, "pos_interp", "timm"), resampled_pos_embed=resampled)
    return model, report


def _vit_init_kwargs(kw: Mapping) -> dict:
    import inspect

    accepted = inspect.signature(VisionTransformer.__init__).parameters
    return {k: v for k, v in kw.items() if k in accepted}


def load_dino_timm(name: str = "vit_small_patch8_224.dino", pos_interp: str = "dino", **kw) -> DinoVisionTransformer:
    """Official DINO weights by timm name (needs the Hugging Face hub).

    timm builds its own ``VisionTransformer`` with the pretrained table; its
    weights are then loaded strictly (:func:`load_dino_state`) into a
    :func:`create_vit` model of the same width, depth, heads and patch with
    position mode ``pos_interp`` (``"dino"``: DINO's interpolation, the
    default; ``"timm"``). ``kw`` go to ``timm.create_model`` (and those that
    ``VisionTransformer`` accepts to :func:`create_vit`), except ``img_size``:
    timm would resample the table at load time; here the table is resampled
    to that size by ``pos_interp``'s method (:func:`resample_pos_embed`).

    Raises ``RuntimeError`` with a hint to use a local file when the hub is
    unreachable, ``ValueError`` for an unknown ``pos_interp``.
    """
    import timm

    _check_pos_interp(pos_interp, "load_dino_timm: pos_interp")
    img_size = kw.pop("img_size", None)
    kw = {"num_classes": 0, "dynamic_img_size": True, **kw}
    try:
        src = timm.create_model(name, pretrained=True, **kw)
    except Exception as err:  # noqa: BLE001 - network errors vary
        raise RuntimeError(
            f"could not fetch {name!r} through timm ({type(err).__name__}: {err}). Without a hub, "
            "download dino_deitsmall8_pretrain.pth (this entry's weights) or dino_deitsmall8_300ep_pretrain.pth "
            "(the one DINO's figures and LOST use) elsewhere and use load_dino_backbone(path) "
            f"(or set ${DINO_WEIGHTS_ENV} to that file)."
        ) from err
    native = tuple(int(v) for v in src.patch_embed.img_size)
    patch = int(src.patch_embed.patch_size[0])
    heads = int(src.blocks[0].attn.num_heads)
    if native[0] != native[1]:
        raise ValueError(f"{name}: timm model has a non-square img_size {native}; DINO's tables are square")
    model = create_vit((src.embed_dim, len(src.blocks), heads), patch=patch, img_size=img_size or native[0],
                       pos_interp=pos_interp, **_vit_init_kwargs(kw))
    state = src.state_dict()
    _check_model_against(model, state, heads, name)
    state, _ = _fit_pos_embed(state, model, tuple(int(v) for v in src.patch_embed.grid_size))
    load_dino_state(model, state, source=name)
    return model.train(src.training)


def official_weights_path() -> Optional[Path]:
    """The local official weights named by ``$DINOSAL_DINO_WEIGHTS``, if set."""
    p = os.environ.get(DINO_WEIGHTS_ENV)
    return Path(p) if p else None
