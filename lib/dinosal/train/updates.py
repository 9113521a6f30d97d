"""The parameter-update pieces of a training step, each tested on its own: AdamW groups (and their
split by learning-rate scale, for layer-wise decay when fine-tuning), per-tensor gradient clipping,
the last-layer freeze and the teacher's EMA."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

__all__ = ["param_groups", "scaled_param_groups", "vit_layer_id", "clip_gradients_per_tensor",
           "cancel_last_layer_grads", "ema_update"]


def _decays(name: str, p: torch.Tensor) -> bool:
    return not (name.endswith(".bias") or p.ndim == 1)


def param_groups(model: nn.Module) -> list[dict]:
    """Two AdamW groups: weight-decayed (``ndim > 1`` and not a bias) first,
    then biases and 1-D params (LayerNorm) with ``weight_decay = 0``. Frozen
    parameters are left out."""
    reg, not_reg = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (reg if _decays(name, p) else not_reg).append(p)
    return [{"params": reg}, {"params": not_reg, "weight_decay": 0.0}]


def vit_layer_id(name: str, depth: int) -> int:
    """Depth of a ViT parameter for layer-wise lr decay: 0 for what comes
    before the blocks (``cls_token``, ``reg_token``, ``pos_embed``,
    ``patch_embed.*``), ``i + 1`` for ``blocks.<i>.*``, ``depth + 1`` for the
    rest (the final norm, a head). ``name`` may carry prefixes such as
    ``backbone.`` (the part from ``blocks.``/``patch_embed``/... on counts).
    The rule of BEiT (Bao et al. 2021) and ELECTRA (Clark et al. 2020);
    DINO itself does not use layer-wise decay."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part == "blocks" and i + 1 < len(parts) and parts[i + 1].isdigit():
            return int(parts[i + 1]) + 1
        if part in ("cls_token", "reg_token", "pos_embed", "patch_embed", "mask_token"):
            return 0
    return depth + 1


def scaled_param_groups(model: nn.Module, lr_scale: Callable[[str], float]) -> list[dict]:
    """Optimizer groups split by weight decay (as :func:`param_groups`: none on
    biases and 1-D parameters) and by ``lr_scale(name)``, a factor on the
    scheduled lr. Each group carries two extra entries the training step
    reads: ``"lr_scale"`` (float) and ``"apply_wd"`` (bool: gets the scheduled
    weight decay, else 0). Frozen parameters are left out; groups come in the
    order of the first parameter that opens them. Raises ``ValueError``
    naming the parameter whose scale is negative or not finite."""
    groups: dict[tuple[bool, float], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        scale = float(lr_scale(name))
        if not (scale >= 0 and scale < float("inf")):
            raise ValueError(f"scaled_param_groups: lr_scale({name!r}) = {scale}; it must be finite and >= 0")
        key = (_decays(name, p), scale)
        if key not in groups:
            groups[key] = {"params": [], "lr_scale": scale, "apply_wd": key[0]}
        groups[key]["params"].append(p)
    return list(groups.values())


@torch.no_grad()
def clip_gradients_per_tensor(model: nn.Module, clip: float, foreach: bool = False) -> list[float]:
    """Scale each parameter tensor's gradient so its L2 norm is at most
    ``clip`` (factor ``clip / (norm + 1e-6)`` when below 1). Returns the
    norms before clipping.

    ``foreach=True`` does the same over all gradients at once (``torch._foreach_*``, one
    Python call instead of one per tensor): the factor is computed in float64 as the loop
    does and a factor of 1 leaves a gradient unchanged, so the result is bit-identical."""
    if foreach:
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if not grads:
            return []
        norms_t = torch.stack(torch._foreach_norm(grads, 2)).double()
        coefs = (clip / (norms_t + 1e-6)).clamp_(max=1.0).float()
        torch._foreach_mul_(grads, list(coefs.unbind()))
        return norms_t.tolist()
    norms = []
    for p in model.parameters():
        if p.grad is None:
            continue
        n = float(p.grad.detach().norm(2))
        norms.append(n)
        coef = clip / (n + 1e-6)
        if coef < 1:
            p.grad.mul_(coef)
    return norms


def cancel_last_layer_grads(model: nn.Module, epoch: int, freeze_epochs: int) -> None:
    """While ``epoch < freeze_epochs``, set to None the grad of every
    parameter whose name contains ``"last_layer"`` (the head prototypes)."""
    if epoch >= freeze_epochs:
        return
    for name, p in model.named_parameters():
        if "last_layer" in name:
            p.grad = None


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float, foreach: bool = False,
               student_only: tuple = ()) -> None:
    """``theta_t <- m theta_t + (1 - m) theta_s`` over matching parameters
    (backbone and head). ``foreach=True`` runs the same two operations over all
    tensors at once (``torch._foreach_mul_``/``_foreach_add_``): bit-identical.
    ``student_only``: names of student parameters the teacher lacks by design
    (iBOT's ``mask_token``); any other difference of names raises ``ValueError``."""
    t_params = dict(teacher.named_parameters())
    s_params = {n: p for n, p in student.named_parameters() if n not in student_only}
    if t_params.keys() != s_params.keys():
        raise ValueError("ema_update: teacher and student parameter names differ")
    if foreach:
        names = list(t_params)
        ts = [t_params[n] for n in names]
        torch._foreach_mul_(ts, momentum)
        torch._foreach_add_(ts, [s_params[n].detach() for n in names], alpha=1.0 - momentum)
        return
    for name, pt in t_params.items():
        pt.mul_(momentum).add_(s_params[name].detach(), alpha=1.0 - momentum)

