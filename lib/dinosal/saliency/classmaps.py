"""Class-specific (and class-agnostic) maps for ViT classifiers.

The model maps normalised images (B, 3, H, W) to logits (B, C), e.g.
``nn.Sequential(vit, nn.Linear(dim, C))`` with a timm VisionTransformer
``vit`` (found inside the model automatically). Inputs of any size are padded
(or resized) to a multiple of the patch as in :func:`dinosal.features.prepare`.

* :func:`grad_cam`: Grad-CAM through the maintained ``pytorch_grad_cam``
  library, target layer ``vit.blocks[-1].norm1`` as the library's ViT example
  uses, tokens reshaped to (B, D, rows, cols) after dropping the prefix
  (CLS/register) tokens.
* :func:`attention_rollout`: Abnar & Zuidema (2020), class-agnostic: per
  layer fuse the heads (mean/max/min), optionally zero the smallest weights,
  add the identity (residual), renormalise the rows, multiply over layers;
  the map is the CLS row on the patch tokens.
* :func:`gradient_rollout`: the class-specific variant of Chefer et al.
  (ICCV 2021, "generic attention-model explainability"): per layer
  ``Abar = mean_heads(relu(dA * A))`` with ``dA`` the gradient of the class
  logit, ``R <- R + Abar @ R`` from ``R = I``; the map is ``R[CLS, patches]``.
* :func:`patch_head_map`: for a model with one prediction per patch token
  (``(B, N, C)`` logits, e.g. :class:`dinosal.models.PatchClassifier`), the
  class's sigmoid probability on each patch -- the head's own map.

All functions run the model in eval mode and switch timm's fused attention
off only while they need the weights; afterwards every submodule's
train/eval mode, every parameter's ``requires_grad`` and ``.grad`` are as the
caller left them (the parameters are frozen during the call, so no gradient
reaches them, and the ``.grad`` that Grad-CAM's ``model.zero_grad()`` clears
is put back).

:func:`grad_cam` and :func:`gradient_rollout` need autograd: they turn it on
themselves (``torch.enable_grad()``), so they give the same map inside
``torch.no_grad()``, as in most evaluation loops, as outside. Inside
``torch.inference_mode()`` autograd cannot be turned on; they raise a
``RuntimeError`` that says so.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from ..features import check_input_size, patch_size_of, prepare, to_batch

__all__ = ["ClassMap", "find_vit", "grad_cam", "attention_rollout", "gradient_rollout", "patch_head_map"]

HEAD_FUSIONS = ("mean", "max", "min")


@dataclass(frozen=True)
class ClassMap:
    """A saliency map per image.

    grid_map: (B, rows, cols) float32 on the token grid (Grad-CAM: the
        ReLU'd weighted activations; rollouts: the CLS row, raw scale;
        patch head: sigmoid probabilities in [0, 1])
    pixel_map: (B, H, W) float32 in [0, 1] at the network input size
        (Grad-CAM only: the library's min-max scaled, bilinearly resized map),
        else None
    method: "grad_cam", "attention_rollout", "gradient_rollout" or "patch_head"
    class_index: (B,) the explained classes, or None (class-agnostic)
    grid: (rows, cols); patch: p; image_size: (H, W) of the real content
    """

    grid_map: np.ndarray
    pixel_map: Optional[np.ndarray]
    method: str
    class_index: Optional[tuple[int, ...]]
    grid: tuple[int, int]
    patch: int
    image_size: tuple[int, int]


def find_vit(model: torch.nn.Module) -> torch.nn.Module:
    """The timm VisionTransformer inside ``model`` (the model itself, or its first submodule with
    ``blocks`` and ``patch_embed``)."""
    for m in model.modules():
        if hasattr(m, "blocks") and hasattr(m, "patch_embed"):
            return m
    raise ValueError(
        f"no VisionTransformer (module with blocks and patch_embed) inside {type(model).__name__}")


def _classes(class_index, batch: int) -> tuple[int, ...]:
    idx = (int(class_index),) * batch if np.ndim(class_index) == 0 else tuple(int(c) for c in class_index)
    if len(idx) != batch:
        raise ValueError(f"class_index has {len(idx)} entries for a batch of {batch}")
    return idx


def _inputs(model, images, mode):
    vit = find_vit(model)
    p = patch_size_of(vit)
    prep = prepare(to_batch(images), p, mode)
    check_input_size(vit, prep)  # a fixed-size ViT: a clear error, not timm's AssertionError
    param = next(model.parameters())
    x = prep.pixels.to(param.device, param.dtype)
    if x.is_inference():  # made under inference_mode: autograd cannot save it for backward
        x = x.clone()
    return vit, prep, x


@contextmanager
def _eval_mode(model):
    """Eval mode for the call; every submodule's own mode is restored afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, was in modes:
            m.training = was


def _require_autograd(name: str) -> None:
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            f"{name} needs autograd, which torch.inference_mode() disables (it cannot be turned back on "
            f"inside it); call {name} outside the inference_mode block (inside torch.no_grad() is fine)")


@contextmanager
def _gradients_for(model, name: str):
    """Autograd on (also inside ``torch.no_grad()``), the model in eval mode with its parameters frozen;
    the parameters' ``requires_grad`` and ``.grad`` and the modules' modes are restored afterwards."""
    _require_autograd(name)
    params = list(model.parameters())
    saved = [(p, p.requires_grad, p.grad) for p in params]
    try:
        for p in params:
            p.requires_grad_(False)  # gradients reach the activations only
        with torch.enable_grad(), _eval_mode(model):
            yield
    finally:
        for p, req, grad in saved:
            p.requires_grad_(req)
            p.grad = grad


def grad_cam(model: torch.nn.Module, images, class_index, mode: str = "pad",
             target_layer: Optional[torch.nn.Module] = None) -> ClassMap:
    """Grad-CAM of ``class_index`` (int or one per image) via ``pytorch_grad_cam``.

    images: normalised (B, 3, H, W) tensor or (H, W, 3) uint8 array(s).
    target_layer: default ``vit.blocks[-1].norm1``.
    Returns :class:`ClassMap` with ``grid_map`` (B, rows, cols) and
    ``pixel_map`` (B, rows*p, cols*p).
    """
    _require_autograd("grad_cam")
    vit, prep, x = _inputs(model, images, mode)
    rows, cols = prep.grid
    n_prefix = int(getattr(vit, "num_prefix_tokens", 1))
    classes = _classes(class_index, x.shape[0])
    n_out = _num_outputs(model, x)
    if not all(0 <= c < n_out for c in classes):
        raise ValueError(f"class_index {classes} out of range for {n_out} logits")

    def to_grid(t):
        return t[:, n_prefix:].reshape(t.shape[0], rows, cols, t.shape[-1]).permute(0, 3, 1, 2)

    layer = target_layer if target_layer is not None else vit.blocks[-1].norm1
    with _gradients_for(model, "grad_cam"), \
            GradCAM(model=model, target_layers=[layer], reshape_transform=to_grid) as cam:
        cam.compute_input_gradient = True  # the graph starts at the input: the parameters are frozen
        targets = [ClassifierOutputTarget(c) for c in classes]
        pixel = cam(input_tensor=x, targets=targets)
        acts = cam.activations_and_grads.activations[0].cpu().numpy()
        grads = cam.activations_and_grads.gradients[0].cpu().numpy()
        grid_map = np.maximum(cam.get_cam_image(x, layer, targets, acts, grads), 0)
    return ClassMap(grid_map=grid_map.astype(np.float32), pixel_map=pixel.astype(np.float32),
                    method="grad_cam", class_index=classes, grid=prep.grid, patch=prep.patch,
                    image_size=prep.image_size)


def _num_outputs(model, x) -> int:
    with torch.no_grad(), _eval_mode(model):
        return int(model(x[:1]).shape[-1])


class _AllAttention:
    """Forward hooks on every block's ``attn_drop`` with fused attention off (kept in the graph
    with ``grads=True``)."""

    def __init__(self, vit, grads: bool):
        self.vit, self.grads = vit, grads
        self.maps: list[torch.Tensor] = []

    def __enter__(self):
        self._fused = [b.attn.fused_attn for b in self.vit.blocks]
        self._handles = []
        for i, b in enumerate(self.vit.blocks):
            b.attn.fused_attn = False
            self._handles.append(b.attn.attn_drop.register_forward_hook(self._hook(i)))
        return self

    def _hook(self, i):
        def hook(module, inputs, output):
            self.maps.append(output if self.grads else output.detach())
        return hook

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        for b, f in zip(self.vit.blocks, self._fused):
            b.attn.fused_attn = f


def _cls_row(r: torch.Tensor, n_prefix: int, grid) -> np.ndarray:
    return r[:, 0, n_prefix:].reshape(r.shape[0], *grid).cpu().float().numpy()


def attention_rollout(model: torch.nn.Module, images, head_fusion: str = "mean",
                      discard_ratio: float = 0.0, mode: str = "pad") -> ClassMap:
    """Attention rollout (Abnar & Zuidema, 2020), class-agnostic.

    Per layer: ``A = fuse_heads(attn)`` (T, T); if ``discard_ratio > 0`` the
    ``floor(discard_ratio * T*T)`` smallest entries of ``A`` (stable order,
    ties by lower flat index; the CLS->CLS entry is never discarded) are set
    to 0; ``A <- (A + I) / 2``, rows renormalised to sum 1;
    ``R <- A @ R``. The map is ``R[CLS, patch tokens]`` (B, rows, cols).
    """
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"discard_ratio must be in [0, 1), got {discard_ratio}")
    vit, prep, x = _inputs(model, images, mode)
    with _eval_mode(model), _AllAttention(vit, grads=False) as rec, torch.no_grad():
        model(x)
    n_prefix = int(getattr(vit, "num_prefix_tokens", 1))
    t = rec.maps[0].shape[-1]
    eye = torch.eye(t, dtype=torch.float64, device=rec.maps[0].device)
    r = eye.expand(x.shape[0], t, t)
    for attn in rec.maps:
        a = getattr(attn.double(), head_fusion)(dim=1)
        a = a.values if head_fusion != "mean" else a
        if discard_ratio > 0:
            a = _discard(a, discard_ratio)
        a = (a + eye) / 2
        a = a / a.sum(dim=-1, keepdim=True)
        r = a @ r
    return ClassMap(grid_map=_cls_row(r, n_prefix, prep.grid), pixel_map=None, method="attention_rollout",
                    class_index=None, grid=prep.grid, patch=prep.patch, image_size=prep.image_size)


def _discard(a: torch.Tensor, ratio: float) -> torch.Tensor:
    b, t, _ = a.shape
    flat = a.reshape(b, t * t).clone()
    n_drop = int(np.floor(ratio * t * t))
    order = torch.argsort(flat, dim=1, stable=True)
    drop = order[:, :n_drop]
    keep_cls = drop != 0
    rows = torch.arange(b, device=a.device)[:, None].expand_as(drop)
    flat[rows[keep_cls], drop[keep_cls]] = 0
    return flat.reshape(b, t, t)


def gradient_rollout(model: torch.nn.Module, images, class_index, mode: str = "pad") -> ClassMap:
    """Class-specific rollout (Chefer et al., 2021): ``R <- R + mean_h(relu(dA * A)) @ R``.

    class_index: int or one per image. Returns :class:`ClassMap` with
    ``grid_map`` = ``R[CLS, patch tokens]`` (B, rows, cols), raw scale (the
    identity only touches the diagonal, so it does not enter this row).
    """
    _require_autograd("gradient_rollout")
    vit, prep, x = _inputs(model, images, mode)
    classes = _classes(class_index, x.shape[0])
    with _gradients_for(model, "gradient_rollout"), _AllAttention(vit, grads=True) as rec:
        x = x.clone().requires_grad_(True)
        logits = model(x)
        if not all(0 <= c < logits.shape[-1] for c in classes):
            raise ValueError(f"class_index {classes} out of range for {logits.shape[-1]} logits")
        target = logits[torch.arange(len(classes)), list(classes)].sum()
        grads = torch.autograd.grad(target, rec.maps, allow_unused=True)  # no .grad left on the model
    n_prefix = int(getattr(vit, "num_prefix_tokens", 1))
    t = rec.maps[0].shape[-1]
    r = torch.eye(t, dtype=torch.float64).expand(x.shape[0], t, t).clone()
    for attn, grad in zip(rec.maps, grads):
        if grad is None:
            continue
        cam = (grad.double().cpu() * attn.detach().double().cpu()).clamp(min=0).mean(dim=1)
        r = r + cam @ r
    return ClassMap(grid_map=_cls_row(r, n_prefix, prep.grid), pixel_map=None, method="gradient_rollout",
                    class_index=classes, grid=prep.grid, patch=prep.patch, image_size=prep.image_size)


def patch_head_map(model: torch.nn.Module, images, class_index, mode: str = "pad") -> ClassMap:
    """The map of a per-patch classifier: ``sigmoid(logits[b, :, class_index[b]])`` on the grid.

    model: images -> ``(B, rows*cols, C)`` logits, patches in row-major order
    (:class:`dinosal.models.PatchClassifier`); class_index: int or one per
    image. Runs in eval mode without gradients (modes restored). Returns
    :class:`ClassMap` (method ``"patch_head"``) with ``grid_map`` (B, rows,
    cols) in [0, 1]. Raises ``ValueError`` if the output is not one row per
    patch or the class is out of range.
    """
    vit, prep, x = _inputs(model, images, mode)
    classes = _classes(class_index, x.shape[0])
    rows, cols = prep.grid
    with torch.no_grad(), _eval_mode(model):
        logits = model(x)
    if logits.ndim != 3 or logits.shape[1] != rows * cols:
        raise ValueError(f"model output {tuple(logits.shape)} is not (B, rows*cols, C) for the grid {prep.grid}")
    if not all(0 <= c < logits.shape[-1] for c in classes):
        raise ValueError(f"class_index {classes} out of range for {logits.shape[-1]} logits")
    probs = torch.sigmoid(logits.float())[torch.arange(len(classes)), :, list(classes)]
    return ClassMap(grid_map=probs.reshape(-1, rows, cols).cpu().numpy(), pixel_map=None, method="patch_head",
                    class_index=classes, grid=prep.grid, patch=prep.patch, image_size=prep.image_size)
