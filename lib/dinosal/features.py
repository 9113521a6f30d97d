"""One feature tap on the last block of a timm VisionTransformer.

:class:`LastBlockTap` registers its forward hooks once, on the last block's
``attn.qkv`` Linear, on ``attn.attn_drop`` (which sees the post-softmax
weights when fused attention is off) and on the block itself, and removes them
in :meth:`LastBlockTap.close` (or at the end of a ``with`` block). Calling the
tap runs ``model.forward_features`` once, in eval mode and without gradients,
and returns :class:`LastBlockFeatures`:

* ``q``, ``k``, ``v``: the thirds of the qkv Linear output (heads
  concatenated, as LOST/TokenCut take them), i.e. *before* timm's optional
  ``q_norm``/``k_norm`` (identity for DINO-style ViTs);
* ``tokens``: the last block's output (before the final ``model.norm``);
* ``attn``: the CLS query's post-softmax weights on the patch tokens, per
  head. Fused attention (``Attention.fused_attn``) is switched off on the
  last block only, and only for calls that ask for the weights; the previous
  value is restored afterwards.

Register/prefix tokens (``model.num_prefix_tokens``) are always dropped; the
CLS token is kept at index 0 only with ``keep_cls=True``.

Input sizes: images of any size (at least one patch per side) are brought to
a multiple of the patch by :func:`prepare` with ``mode="pad"`` (zeros at the
bottom/right, after normalisation, as LOST and TokenCut's detection code do)
or ``mode="resize"`` (to the nearest multiple, as TokenCut's saliency code
does; bicubic with antialiasing on tensors, where TokenCut uses PIL's Lanczos).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

__all__ = [
    "MODES",
    "Prepared",
    "LastBlockFeatures",
    "LastBlockTap",
    "prepare",
    "to_batch",
    "patch_size_of",
    "check_input_size",
]

MODES = ("pad", "resize")


def to_batch(images, mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
             std: Sequence[float] = IMAGENET_DEFAULT_STD) -> torch.Tensor:
    """Images as a normalised (B, 3, H, W) float32 tensor.

    images: an (H, W, 3) uint8 array, a sequence of such arrays of one size,
        or a float tensor (3, H, W) / (B, 3, H, W) that is already normalised
        (returned unchanged apart from adding the batch axis).
    mean, std: per-channel normalisation of uint8 inputs (default: ImageNet,
        as DINO, LOST and TokenCut use).
    """
    if torch.is_tensor(images):
        t = images if images.ndim == 4 else images[None]
        if t.ndim != 4 or t.shape[1] != 3 or not t.is_floating_point():
            raise ValueError(
                f"images tensor must be float (B, 3, H, W), got {tuple(images.shape)} {images.dtype}")
        return t
    if isinstance(images, (list, tuple)):
        arr = np.stack([np.asarray(i) for i in images])
    else:
        arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"images must be (H, W, 3) uint8 arrays, got shape {arr.shape} dtype {arr.dtype}")
    t = torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255.0
    return TF.normalize(t, list(mean), list(std))


@dataclass(frozen=True)
class Prepared:
    """A batch brought to a multiple of the patch.

    pixels: (B, 3, rows*p, cols*p) float tensor, the network input
    grid: (rows, cols)
    image_size: (H, W) of the real image content in input pixels (pad: the
        original size; resize: the resized size ``(rows*p, cols*p)``); boxes
        are clipped to it
    original_size: (H, W) before padding/resizing
    mode: "pad" or "resize"; patch: p
    """

    pixels: torch.Tensor
    grid: tuple[int, int]
    image_size: tuple[int, int]
    original_size: tuple[int, int]
    mode: str
    patch: int


def prepare(images: torch.Tensor, patch: int, mode: str = "pad") -> Prepared:
    """Pad (bottom/right, zeros) or resize a normalised (B, 3, H, W) batch to multiples of ``patch``.

    ``mode="pad"``: ``(ceil(H/p)*p, ceil(W/p)*p)``, zeros after normalisation
    (the official LOST/TokenCut choice; zero = the mean colour).
    ``mode="resize"``: ``(round(H/p)*p, round(W/p)*p)`` with Python's
    ``round`` (half to even, as TokenCut's ``resize_pil``), bicubic,
    antialiased.
    Raises ``ValueError`` for an image smaller than one patch.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if images.ndim != 4:
        raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
    p = int(patch)
    h, w = int(images.shape[-2]), int(images.shape[-1])
    if h < p or w < p:
        raise ValueError(f"image size (H, W) = ({h}, {w}) is smaller than one patch ({p} px)")
    if mode == "pad":
        rows, cols = -(-h // p), -(-w // p)
        x = torch.nn.functional.pad(images, (0, cols * p - w, 0, rows * p - h))
        content = (h, w)
    else:
        rows, cols = round(h / p), round(w / p)  # Python's round (half to even), as TokenCut
        x = images if (rows * p, cols * p) == (h, w) else TF.resize(
            images, [rows * p, cols * p], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
        content = (rows * p, cols * p)
    return Prepared(pixels=x, grid=(rows, cols), image_size=content, original_size=(h, w), mode=mode, patch=p)


@dataclass(frozen=True)
class LastBlockFeatures:
    """What the last block saw and produced, for a batch.

    T below is ``1 + N`` with ``keep_cls`` (CLS at index 0) and ``N`` without;
    ``N = rows * cols`` patch tokens in row-major order; register tokens are
    never included.

    attn: (B, heads, N) CLS->patch post-softmax weights (over all tokens, so
        rows sum to less than 1), or None (model without CLS, or not asked)
    q, k, v: (B, T, D) thirds of the qkv Linear output, heads concatenated
    tokens: (B, T, D) output of the last block (before ``model.norm``)
    grid: (rows, cols); num_prefix: prefix tokens of the model (CLS + registers)
    has_cls: whether index 0 of q/k/v/tokens is the CLS token
    patch_size: p; image_size: (H, W) real content in input px (boxes clip to
    it); original_size: (H, W) before pad/resize; input_size: (H, W) fed to
    the network; mode: "pad" or "resize"
    """

    attn: Optional[torch.Tensor]
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    tokens: torch.Tensor
    grid: tuple[int, int]
    num_prefix: int
    has_cls: bool
    patch_size: int
    image_size: tuple[int, int]
    original_size: tuple[int, int]
    input_size: tuple[int, int]
    mode: str

    def patches(self, which: str = "k") -> torch.Tensor:
        """(B, N, D) patch-only features; ``which`` in q, k, v, tokens."""
        if which not in ("q", "k", "v", "tokens"):
            raise ValueError(f"which must be one of q, k, v, tokens, got {which!r}")
        t = getattr(self, which)
        return t[:, 1:] if self.has_cls else t

    def box_to_original(self, box) -> np.ndarray:
        """Scale xyxy boxes (..., 4) from input px to the original image (resize mode)."""
        b = np.asarray(box, dtype=np.float64)
        sy = self.original_size[0] / self.image_size[0]
        sx = self.original_size[1] / self.image_size[1]
        return b * np.array([sx, sy, sx, sy])


def patch_size_of(model) -> int:
    """The (square) patch size of a timm VisionTransformer."""
    ps = getattr(getattr(model, "patch_embed", None), "patch_size", None)
    if ps is None:
        raise ValueError(f"model {type(model).__name__} has no patch_embed.patch_size (not a timm ViT?)")
    ps = tuple(ps) if isinstance(ps, (tuple, list)) else (ps, ps)
    if ps[0] != ps[1]:
        raise ValueError(f"only square patches are supported, got patch_size={ps}")
    return int(ps[0])


def check_input_size(model, prep: Prepared) -> None:
    """Raise ``ValueError`` if ``model`` (a timm ViT) cannot take ``prep.pixels``.

    A ViT created with a fixed ``img_size`` (``dynamic_img_size=False``)
    accepts only that size; timm would stop with a bare ``AssertionError``.
    The message names both sizes and the cure.
    """
    if getattr(model, "dynamic_img_size", False):
        return
    fixed = tuple(getattr(getattr(model, "patch_embed", None), "img_size", ()) or ())
    got = tuple(int(s) for s in prep.pixels.shape[-2:])
    if fixed and got != fixed:
        raise ValueError(
            f"model has a fixed img_size {fixed} but the input is {got} (an image of (H, W) = "
            f"{prep.original_size} brought to a multiple of the patch {prep.patch}); "
            "create it with dynamic_img_size=True"
        )


class LastBlockTap:
    """Hooks on the last block of a timm ViT; call it on images to get features.

    model: timm ``VisionTransformer`` (``dynamic_img_size=True`` for inputs of
        other sizes than its ``img_size``).
    mode: "pad" or "resize" (see :func:`prepare`).
    keep_cls: keep the CLS token at index 0 of q/k/v/tokens.

    Use as a context manager, or call :meth:`close` to remove the hooks.
    """

    def __init__(self, model: torch.nn.Module, mode: str = "pad", keep_cls: bool = False):
        if not hasattr(model, "blocks") or len(model.blocks) == 0:
            raise ValueError(f"model {type(model).__name__} has no transformer blocks (not a timm ViT?)")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.model, self.mode, self.keep_cls = model, mode, keep_cls
        self.patch = patch_size_of(model)
        self.num_prefix = int(getattr(model, "num_prefix_tokens", 1))
        has_cls = getattr(model, "cls_token", None) is not None
        self.has_cls_token = bool(getattr(model, "has_class_token", has_cls))
        block = model.blocks[-1]
        self._attn_module = block.attn
        self._store: dict[str, torch.Tensor] = {}
        self._want_attn = False
        self._handles = [
            block.attn.qkv.register_forward_hook(self._keep("qkv")),
            block.attn.attn_drop.register_forward_hook(self._keep_attn),
            block.register_forward_hook(self._keep("tokens")),
        ]

    def _keep(self, name):
        def hook(module, inputs, output):
            self._store[name] = output.detach()
        return hook

    def _keep_attn(self, module, inputs, output):
        if self._want_attn:
            self._store["attn"] = output.detach()

    def close(self) -> None:
        """Remove the hooks (idempotent)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> "LastBlockTap":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __call__(self, images, attention: bool = True) -> LastBlockFeatures:
        """Run the model once on ``images`` and return :class:`LastBlockFeatures`.

        images: normalised (B, 3, H, W) float tensor (any H, W >= patch), or
            (H, W, 3) uint8 array(s) (normalised with ImageNet statistics).
        attention: also capture the CLS attention (switches fused attention
            off on the last block for this call only).
        """
        if not self._handles:
            raise RuntimeError("this LastBlockTap is closed; create a new one")
        batch = to_batch(images)
        prep = prepare(batch, self.patch, self.mode)
        self._check_size(prep)
        want = attention and self.has_cls_token
        self._store.clear()
        was_training, was_fused = self.model.training, self._attn_module.fused_attn
        param = next(self.model.parameters())
        try:
            self.model.eval()
            self._want_attn = want
            if want:
                self._attn_module.fused_attn = False
            with torch.no_grad():
                self.model.forward_features(prep.pixels.to(param.device, param.dtype))
        finally:
            self._attn_module.fused_attn = was_fused
            self._want_attn = False
            self.model.train(was_training)
        return self._collect(prep, want)

    def _check_size(self, prep: Prepared) -> None:
        check_input_size(self.model, prep)

    def _collect(self, prep: Prepared, want_attn: bool) -> LastBlockFeatures:
        qkv, tokens = self._store["qkv"], self._store["tokens"]
        rows, cols = prep.grid
        n_tok = qkv.shape[1]
        if n_tok != self.num_prefix + rows * cols:
            raise ValueError(
                f"model produced {n_tok} tokens, expected {self.num_prefix} prefix + "
                f"{rows}x{cols} patches; is the patch size {self.patch}?"
            )
        keep_cls = self.keep_cls and self.has_cls_token
        idx = torch.arange(self.num_prefix, n_tok, device=qkv.device)
        if keep_cls:
            idx = torch.cat([idx.new_zeros(1), idx])
        q, k, v = qkv.index_select(1, idx).chunk(3, dim=-1)
        attn = None
        if want_attn:
            attn = self._store["attn"][:, :, 0, self.num_prefix:]
        return LastBlockFeatures(
            attn=attn, q=q, k=k, v=v, tokens=tokens.index_select(1, idx),
            grid=prep.grid, num_prefix=self.num_prefix, has_cls=keep_cls,
            patch_size=self.patch, image_size=prep.image_size, original_size=prep.original_size,
            input_size=tuple(prep.pixels.shape[-2:]), mode=prep.mode,
        )
