"""Mugs' networks (Zhou et al. 2022, "Mugs: A Multi-Granular Self-Supervised Learning Framework";
github.com/sail-sg/mugs, ``src/model.py`` and ``src/vision_transformer.py``; reference notes section 5).

A Mugs network is a ViT and three heads, one per granularity:

* **instance** (:class:`InstanceHead`): a projector (Linear layers without bias, GELU between them),
  L2-normalised; the student's adds a predictor and normalises again. InfoNCE against a queue.
* **local group**: the mean of all tokens of the last block (CLS included, before the final norm) asks a
  memory (:class:`LocalGroupMemory`) for its ``top_n`` nearest entries by cosine; the sequence
  ``[query, neighbours]`` passes through one extra transformer block (the *relation block*) and the
  backbone's final norm of its first token is the local-group feature, which an :class:`InstanceHead`
  of its own projects. InfoNCE against a second queue.
* **group**: DINO's head on the CLS token (:class:`~dinosal.models.DINOHead`), DINO's centred loss.

:class:`MugsWrapper` keeps the backbone under ``backbone.`` and everything else under ``head.``, so a
Mugs checkpoint loads with :func:`~dinosal.models.load_dino_backbone` like DINO's (the official code puts
the relation block inside its ViT; here it sits beside it, with the same role and its own init).

Where this departs from the official code: the memory holds one copy of each entry (the official keeps
three identical ones, ``queue_q/k/v``), and its pointer moves by the number of entries written (the
official non-wrapping branch moves it twice as far, skipping half the slots; reference notes 5.4).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.vision_transformer import Block

from .heads import _trunc_normal_init

__all__ = ["InstanceHead", "LocalGroupMemory", "MugsOutputs", "MugsWrapper", "mlp_no_bias", "tokens_before_norm"]


def mlp_no_bias(n_layers: int, in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """Mugs' ``_build_mlp``: ``n_layers`` Linear layers without bias, GELU between them (no BatchNorm:
    Mugs' ViT recipes leave ``use_bn_in_head`` off)."""
    layers: list[nn.Module] = []
    for i in range(n_layers):
        layers.append(nn.Linear(in_dim if i == 0 else hidden, out_dim if i == n_layers - 1 else hidden, bias=False))
        if i < n_layers - 1:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class InstanceHead(nn.Module):
    """Mugs' instance (and local-group) supervision head.

    ``forward(x (B, in_dim))``: ``normalize(projector(x))`` ``(B, out_dim)`` for a teacher (built with
    ``predictor_hidden=0``), ``normalize(predictor(normalize(projector(x))))`` for a student. Projector:
    ``n_layers`` layers (Mugs: 3, hidden 2048, out 256); predictor: ``n_layers - 1`` layers (hidden 4096).
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int, predictor_hidden: int = 0, n_layers: int = 3) -> None:
        super().__init__()
        self.projector = mlp_no_bias(n_layers, in_dim, hidden, out_dim)
        self.apply(_trunc_normal_init)
        self.predictor = mlp_no_bias(n_layers - 1, out_dim, predictor_hidden, out_dim) if predictor_hidden else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.normalize(self.projector(x), dim=-1)
        return z if self.predictor is None else F.normalize(self.predictor(z), dim=-1)


class LocalGroupMemory(nn.Module):
    """Mugs' memory of the local-group term (``Block_mem``): ``size`` entries of width ``dim`` (Mugs:
    65536), Gaussian at the start; :meth:`neighbours` returns the ``top_n`` entries (Mugs: 8) most
    cosine-similar to each query, :meth:`enqueue` writes new entries at the pointer, wrapping."""

    def __init__(self, dim: int, size: int, top_n: int) -> None:
        super().__init__()
        if not 1 <= top_n <= size:
            raise ValueError(f"LocalGroupMemory: top_n {top_n} must be in 1..size ({size})")
        self.top_n = int(top_n)
        self.register_buffer("bank", torch.randn(size, dim))
        self.register_buffer("ptr", torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def neighbours(self, query: torch.Tensor) -> torch.Tensor:
        """``(B, top_n, dim)``: for each row of ``query`` ``(B, dim)``, its nearest entries by cosine,
        most similar first (no gradient: they are stored values)."""
        cos = F.normalize(query.float(), dim=-1) @ F.normalize(self.bank, dim=-1).T
        return self.bank[cos.topk(self.top_n, dim=-1).indices]

    @torch.no_grad()
    def enqueue(self, entries: torch.Tensor) -> None:
        """Write ``entries`` ``(n, dim)`` at the pointer, wrapping; under torch.distributed the caller
        passes every process's entries (:func:`dinosal.losses.gather_rows`), so the memories agree."""
        entries = entries.detach().float()
        size, n = self.bank.shape[0], entries.shape[0]
        p = int(self.ptr)
        self.bank[(torch.arange(n, device=entries.device) + p) % size] = entries
        self.ptr[0] = (p + n) % size


def tokens_before_norm(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """All tokens ``(B, 1+N, D)`` after the last block of a timm ViT, before its final norm (timm's
    ``forward_features`` without ``norm``)."""
    x = backbone.patch_embed(x)
    x = backbone._pos_embed(x)
    x = backbone.patch_drop(x)
    x = backbone.norm_pre(x)
    return backbone.blocks(x)


@dataclass
class MugsOutputs:
    """One forward pass of :class:`MugsWrapper` over a list of crops (crop-major rows).

    ``instance``/``local_group``: L2-normalised ``(n*B, out)`` (targets for a teacher, predictions for a
    student); ``group``: DINO head outputs ``(n*B, K)``; ``cls``: final-norm CLS tokens ``(n*B, D)``;
    ``memory_tokens``: the mean normed patch token of each row of the *first* crop size (the global
    crops), detached -- what the memory stores."""

    instance: torch.Tensor
    local_group: torch.Tensor
    group: torch.Tensor
    cls: torch.Tensor
    memory_tokens: torch.Tensor


class MugsWrapper(nn.Module):
    """Backbone + Mugs' heads (``head.instance``, ``head.relation``, ``head.local_group``,
    ``head.group``) + its own memory (``head.memory``). ``forward(crops)`` runs the backbone once per run of
    consecutive crops of one size (as :class:`~dinosal.models.MultiCropWrapper`)."""

    def __init__(self, backbone: nn.Module, group_head: nn.Module, hidden: int, out_dim: int,
                 predictor_hidden: int, memory_size: int, top_n: int) -> None:
        super().__init__()
        self.backbone = backbone
        d = backbone.embed_dim
        relation = Block(dim=d, num_heads=backbone.blocks[0].attn.num_heads, mlp_ratio=4.0, qkv_bias=True,
                         norm_layer=partial(nn.LayerNorm, eps=1e-6))
        relation.apply(_trunc_normal_init)
        self.head = nn.ModuleDict({
            "instance": InstanceHead(d, hidden, out_dim, predictor_hidden),
            "relation": relation,
            "local_group": InstanceHead(d, hidden, out_dim, predictor_hidden),
            "group": group_head,
            "memory": LocalGroupMemory(d, memory_size, top_n),
        })

    def local_group_features(self, pre_norm: torch.Tensor) -> torch.Tensor:
        """``(B, D)``: the relation block's first output, normed, for tokens ``(B, 1+N, D)`` before the norm."""
        query = pre_norm.mean(1)
        seq = torch.cat([query[:, None], self.head["memory"].neighbours(query).to(query.dtype)], dim=1)
        return self.backbone.norm(self.head["relation"](seq)[:, 0])

    def forward(self, crops: Sequence[torch.Tensor] | torch.Tensor) -> MugsOutputs:
        if isinstance(crops, torch.Tensor):
            crops = [crops]
        cls, local, memory_tokens = [], [], None
        start = 0
        while start < len(crops):
            end = start + 1
            while end < len(crops) and crops[end].shape[-2:] == crops[start].shape[-2:]:
                end += 1
            pre = tokens_before_norm(self.backbone, torch.cat(list(crops[start:end])))
            normed = self.backbone.norm(pre)
            cls.append(normed[:, 0])
            local.append(self.local_group_features(pre))
            if memory_tokens is None:
                memory_tokens = normed[:, 1:].mean(1).detach()
            start = end
        cls_t, local_t = torch.cat(cls), torch.cat(local)
        return MugsOutputs(self.head["instance"](cls_t), self.head["local_group"](local_t),
                           self.head["group"](cls_t), cls_t, memory_tokens)
