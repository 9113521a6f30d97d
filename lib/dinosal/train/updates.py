"""The parameter-update pieces of a DINO step, each tested on its own: AdamW groups, per-tensor
gradient clipping, the last-layer freeze and the teacher's EMA."""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["param_groups", "clip_gradients_per_tensor", "cancel_last_layer_grads", "ema_update"]


def param_groups(model: nn.Module) -> list[dict]:
    """Two AdamW groups: weight-decayed (``ndim > 1`` and not a bias) first,
    then biases and 1-D params (LayerNorm) with ``weight_decay = 0``. Frozen
    parameters are left out."""
    reg, not_reg = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (not_reg if name.endswith(".bias") or p.ndim == 1 else reg).append(p)
    return [{"params": reg}, {"params": not_reg, "weight_decay": 0.0}]


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
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float, foreach: bool = False) -> None:
    """``theta_t <- m theta_t + (1 - m) theta_s`` over matching parameters
    (backbone and head). ``foreach=True`` runs the same two operations over all
    tensors at once (``torch._foreach_mul_``/``_foreach_add_``): bit-identical."""
    t_params = dict(teacher.named_parameters())
    s_params = dict(student.named_parameters())
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

