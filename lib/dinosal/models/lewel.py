"""LEWEL's networks on a ViT (Huang et al., CVPR 2022, "Learning Where to Learn in Cross-View
Self-Supervised Learning"; github.com/LayneH/LEWEL, ``models/lewel.py``; reference notes section 6).

LEWEL reads the projection head twice. Applied to the pooled feature it gives the global embedding, as
in BYOL; applied to every spatial feature with the same weights, its ``k`` output channels become ``k``
**alignment maps**: each channel, L2-normalised over the channels at every position and softmaxed over
the positions, is a spatial weighting. The maps are split into ``num_heads`` groups; group ``h`` pools
the ``h``-th slice of the feature channels, giving ``k / num_heads`` aligned embeddings (slots) per image,
which a second MLP projects. Slot ``j`` of one view is trained to predict slot ``j`` of the other view,
so a slot learns to attend to the same region in both (:class:`ObjectNeck`).

On a ViT (the official code is ResNet-50 only): the spatial features are the final-norm patch tokens
and the pooled feature is the final-norm CLS token (the ResNet's global average pool would leave the CLS
token, whose attention the saliency maps read, without any gradient). :class:`LewelWrapper` keeps the
backbone under ``backbone.`` and the neck (and a student's predictors) under ``head.``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["MLP1D", "NeckOutput", "ObjectNeck", "LewelWrapper", "LewelOutputs"]


class MLP1D(nn.Module):
    """LEWEL's ``MLP1D`` (BYOL's neck as 1x1 convolutions over a sequence): ``(B, C, L) -> (B, out, L)``,
    Conv1d(C, hidden) - BatchNorm1d - ReLU - Conv1d(hidden, out), no biases. BatchNorm statistics run over
    the batch and the sequence. Weights: kaiming normal (fan-out, ReLU gain), which LEWEL's
    ``utils/init.py`` gives every Conv1d whichever init it is asked for."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv1d(in_dim, hidden, 1, bias=False), nn.BatchNorm1d(hidden),
                                 nn.ReLU(inplace=True), nn.Conv1d(hidden, out_dim, 1, bias=False))
        for m in self.mlp:
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


@dataclass
class NeckOutput:
    """``global_embedding``: ``(B, k)``; ``slots``: ``(B, k, k / num_heads)`` -- the projected aligned
    embeddings, channels first as LEWEL's; ``maps``: the alignment maps ``(B, k, N)``, each summing to 1
    over the ``N`` positions."""

    global_embedding: torch.Tensor
    slots: torch.Tensor
    maps: torch.Tensor


class ObjectNeck(nn.Module):
    """LEWEL's ``ObjectNeck``: ``forward(tokens (B, N, C), pooled (B, C)) -> NeckOutput``.

    ``proj`` (:class:`MLP1D`, C -> hidden -> k) runs on ``[pooled, token_1..token_N]``; column 0 is the
    global embedding, the other N columns the maps' logits, which are L2-normalised over the k channels,
    divided by ``scale`` (LEWEL: 1.0) and softmaxed over the N positions. With ``num_heads`` groups (the
    LEWEL scripts: 4), group h of maps (k / num_heads of them) pools channel slice h of the tokens (C /
    num_heads channels each), giving ``(B, C, k / num_heads)``, which ``proj_obj`` (C -> hidden -> k) projects.
    Raises ``ValueError`` when ``num_heads`` does not divide both C and k. ``maps_only``: build ``proj`` alone
    (a released LEWEL run keeps only what its maps need, see :data:`dinosal.release.NECK_FILE`); such a neck
    gives :meth:`alignment` and refuses ``forward`` (``RuntimeError``).
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_heads: int = 4, scale: float = 1.0,
                 maps_only: bool = False) -> None:
        super().__init__()
        if in_dim % num_heads or out_dim % num_heads:
            raise ValueError(f"ObjectNeck: num_heads {num_heads} must divide the width {in_dim} and k {out_dim}")
        self.num_heads, self.scale = int(num_heads), float(scale)
        self.proj = MLP1D(in_dim, hidden, out_dim)
        self.proj_obj = None if maps_only else MLP1D(in_dim, hidden, out_dim)

    def project(self, tokens: torch.Tensor, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``tokens`` ``(B, N, C)`` and ``pooled`` ``(B, C)`` through ``proj`` as ``[pooled, token_1..token_N]``:
        the global embedding ``(B, k)`` and the alignment maps ``(B, k, N)`` (the token columns, L2-normalised
        over the k channels, divided by ``scale``, softmaxed over the N positions)."""
        z = self.proj(torch.cat([pooled[:, :, None], tokens.transpose(1, 2)], dim=2))  # (B, k, 1 + N)
        return z[:, :, 0], F.softmax(F.normalize(z[:, :, 1:], dim=1) / self.scale, dim=2)

    def alignment(self, tokens: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """The alignment maps ``(B, k, N)`` alone (what :meth:`forward` computes first; ``proj`` only)."""
        return self.project(tokens, pooled)[1]

    def forward(self, tokens: torch.Tensor, pooled: torch.Tensor) -> NeckOutput:
        if self.proj_obj is None:
            raise RuntimeError("ObjectNeck: built with maps_only (a released run's neck holds only proj, the map "
                               "projection); it gives alignment(), not the slots")
        b, n, c = tokens.shape
        x = tokens.transpose(1, 2)  # (B, C, N)
        z_g, maps = self.project(tokens, pooled)
        grouped = maps.view(b, self.num_heads, -1, n)  # (B, heads, k/heads, N)
        values = x.reshape(b, self.num_heads, c // self.num_heads, n) @ grouped.transpose(2, 3)
        slots = self.proj_obj(values.reshape(b, c, grouped.shape[2]))  # (B, k, k/heads)
        return NeckOutput(z_g, slots, maps)

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, scale={self.scale}"


@dataclass
class LewelOutputs:
    """One view through :class:`LewelWrapper`: the neck's output and, for a student, the predictions
    (``predicted`` ``(B, k)``, ``predicted_slots`` ``(B, k, slots)``; None for a target network)."""

    neck: NeckOutput
    predicted: torch.Tensor | None
    predicted_slots: torch.Tensor | None


class LewelWrapper(nn.Module):
    """Backbone + ``head.neck`` (:class:`ObjectNeck`) and, for the online (student) network,
    ``head.predictor`` and ``head.predictor_obj`` (:class:`MLP1D`, k -> hidden -> k).
    ``forward(x (B, 3, H, W)) -> LewelOutputs``."""

    def __init__(self, backbone: nn.Module, hidden: int, out_dim: int, num_heads: int, predictors: bool,
                 maps_only: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        head = {"neck": ObjectNeck(backbone.embed_dim, hidden, out_dim, num_heads, maps_only=maps_only)}
        if predictors:
            head.update(predictor=MLP1D(out_dim, hidden, out_dim), predictor_obj=MLP1D(out_dim, hidden, out_dim))
        self.head = nn.ModuleDict(head)

    def forward(self, x: torch.Tensor) -> LewelOutputs:
        tokens = self.backbone.forward_features(x)
        prefix = int(getattr(self.backbone, "num_prefix_tokens", 1))
        out = self.head["neck"](tokens[:, prefix:], tokens[:, 0])
        if "predictor" not in self.head:
            return LewelOutputs(out, None, None)
        pred = self.head["predictor"](out.global_embedding[:, :, None])[:, :, 0]
        return LewelOutputs(out, pred, self.head["predictor_obj"](out.slots))

    @torch.no_grad()
    def alignment_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The alignment maps of images ``x`` as ``(B, k, rows, cols)`` (each sums to 1 over the grid)."""
        tokens = self.backbone.forward_features(x)
        prefix = int(getattr(self.backbone, "num_prefix_tokens", 1))
        maps = self.head["neck"].alignment(tokens[:, prefix:], tokens[:, 0])
        p = self.backbone.patch_embed.patch_size
        p = p[0] if isinstance(p, tuple) else p
        return maps.reshape(*maps.shape[:2], x.shape[-2] // p, x.shape[-1] // p)
