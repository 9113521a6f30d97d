"""The DINO self-distillation loss, its diagnostics, and KoLeo.

:class:`DINOLoss` follows the official loss (reference notes section 1.3):

* student probabilities ``log_softmax(s / student_temp)``, split into
  ``n_crops`` chunks in crop-major order (rows ``[i*B:(i+1)*B]`` = crop i);
* teacher probabilities ``softmax((t - center) / tau_t(epoch))``, detached,
  split into ``n_global`` chunks (the teacher only sees the global crops);
* loss = the mean over the pairs (teacher crop i, student crop v, v != i) of
  ``mean_b sum_k -P_t^i[b,k] log P_s^v[b,k]``, each pair weighted the same;
* after the loss, ``center <- m*center + (1-m)*mean_batch(t)``, where the batch
  mean is taken over every process when ``torch.distributed`` is initialised
  (world size 1 otherwise: no process group is needed).

The teacher temperature is indexed **by epoch**: ``linspace(warmup, final,
warmup_epochs)`` (endpoint included, so ``final`` is reached at epoch
``warmup_epochs-1``), then constant.

:class:`IBOTPatchLoss`, iBOT's masked patch-token self-distillation (Zhou et al.
2022), is **not** part of the original DINO either; it is an optional extra term.

Mugs' InfoNCE against a queue (:class:`QueueInfoNCE`, with :func:`balanced_pair_mean`, its
weighting of global and local crops, also an option of :class:`DINOLoss`) and LEWEL's BYOL loss
(:func:`byol_loss`) are the losses of DINO's two companions (:mod:`dinosal.train.mugs`,
:mod:`dinosal.train.lewel`).

KoLeo (:func:`koleo_loss`) is **not** part of the original DINO; it comes from
DINOv2 (Oquab et al. 2023, after Sablayrolles et al. 2019) and is offered as
an optional extra term.

The losses of classifier transfer (:mod:`dinosal.train.transfer`) are
:func:`transfer_loss` -- cross-entropy for one label per image (``"ce"``),
one binary cross-entropy per class for multi-label images (``"bce"``, as
``BCEWithLogitsLoss``) and the same per patch token, each patch labelled by
the boxes covering it (``"patch_bce"``, :func:`patch_targets`) or by its
image's labels (``"patch_image_bce"``, the dense head without box labels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["DinoLossOutput", "DINOLoss", "balanced_pair_mean", "InfoNCEOutput", "QueueInfoNCE", "byol_loss",
           "gather_rows", "teacher_temp_schedule", "PatchLossOutput", "IBOTPatchLoss", "koleo_loss",
           "TRANSFER_LOSSES", "PATCH_LOSSES", "patch_targets", "transfer_loss"]


def teacher_temp_schedule(warmup_temp: float, temp: float, warmup_epochs: int, epochs: int) -> np.ndarray:
    """Teacher temperature per epoch, shape ``(epochs,)``: a linear warmup
    from ``warmup_temp`` to ``temp`` over ``warmup_epochs`` epochs (endpoint
    included), then ``temp``. ``warmup_epochs=0`` gives a constant ``temp``."""
    if warmup_epochs < 0 or epochs < 1:
        raise ValueError(f"teacher_temp_schedule: need epochs >= 1 and warmup_epochs >= 0, got {epochs}, {warmup_epochs}")
    warm = np.linspace(warmup_temp, temp, warmup_epochs)
    rest = np.full(max(epochs - warmup_epochs, 0), temp, dtype=float)
    return np.concatenate([warm, rest])[:epochs]


@dataclass(frozen=True)
class DinoLossOutput:
    """One evaluation of :class:`DINOLoss`.

    ``loss``: scalar tensor with grad. Diagnostics (floats, over this
    process's batch, teacher = the 2 global crops):
    ``teacher_entropy``: mean over teacher rows of ``H(P_t)`` in nats (uniform
    collapse -> ``log K``); ``teacher_marginal_entropy``: entropy of the
    batch-mean ``P_t`` (one-hot collapse -> 0); ``kl``: mean over the loss's
    pairs of ``mean_b KL(P_t^i || P_s^v)`` (= loss - mean teacher entropy);
    ``teacher_max_prob``: mean over teacher rows of ``max_k P_t``;
    ``teacher_temp``: the temperature used.
    """

    loss: torch.Tensor
    teacher_entropy: float
    teacher_marginal_entropy: float
    kl: float
    teacher_max_prob: float
    teacher_temp: float


def balanced_pair_mean(pairs, n_global: int) -> torch.Tensor:
    """``0.5 * (mean of the global-crop terms + mean of the local-crop terms)`` of ``pairs`` =
    ``[(student crop index, term)]`` (a student crop below ``n_global`` is global), or the global mean
    alone without local terms: how Mugs weighs its crops (``src/loss.py``, every loss)."""
    large = [t for v, t in pairs if v < n_global]
    small = [t for v, t in pairs if v >= n_global]
    if not large:
        raise ValueError("balanced_pair_mean: no pair with a global student crop")
    mean_large = sum(large) / len(large)
    return mean_large if not small else 0.5 * (mean_large + sum(small) / len(small))


class _CentredDistillation(nn.Module):
    """What DINO's and iBOT's self-distillation losses share: K outputs, a
    per-epoch teacher temperature (array or float; the last value past the
    end), the student temperature, and a centre ``(1, K)`` registered as a
    buffer (so it is checkpointed) with its EMA momentum."""

    def __init__(self, out_dim: int, teacher_temps, student_temp: float, center_momentum: float) -> None:
        super().__init__()
        self.out_dim = int(out_dim)
        self.student_temp = float(student_temp)
        self.center_momentum = float(center_momentum)
        self.teacher_temps = np.atleast_1d(np.asarray(teacher_temps, dtype=float))
        self.register_buffer("center", torch.zeros(1, out_dim))

    def temp_at(self, epoch: int) -> float:
        """Teacher temperature at ``epoch`` (the last value past the end)."""
        return float(self.teacher_temps[min(int(epoch), len(self.teacher_temps) - 1)])


class DINOLoss(_CentredDistillation):
    """DINO's cross-entropy between teacher and student views.

    ``out_dim``: K; ``n_crops``: all crops the student sees (2 global + local);
    ``teacher_temps``: a per-epoch array (see :func:`teacher_temp_schedule`) or
    a float; ``center_momentum``: 0.9 officially, 1.0 keeps the center at 0
    (centering off); ``n_global``: crops the teacher sees (2).
    ``scale_balance``: Mugs' group loss (``ClusteringLoss`` of Mugs' ``src/loss.py``) -- the pairs with a
    global student crop and those with a local one are averaged apart and the two means weighted
    0.5 each (the global mean alone when there are no local crops); off: every pair weighs the same (DINO).
    ``center`` is a registered buffer ``(1, K)`` so it is checkpointed.
    """

    def __init__(
        self,
        out_dim: int,
        n_crops: int,
        teacher_temps=0.04,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
        n_global: int = 2,
        scale_balance: bool = False,
    ) -> None:
        if n_crops < n_global or n_global < 1:
            raise ValueError(f"DINOLoss: n_crops ({n_crops}) must be >= n_global ({n_global}) >= 1")
        super().__init__(out_dim, teacher_temps, student_temp, center_momentum)
        self.n_crops = int(n_crops)
        self.n_global = int(n_global)
        self.scale_balance = bool(scale_balance)

    def forward(self, student_out: torch.Tensor, teacher_out: torch.Tensor, epoch: int = 0) -> DinoLossOutput:
        """``student_out`` ``(n_crops*B, K)``, ``teacher_out`` ``(n_global*B, K)``,
        both crop-major. Updates ``center`` (after computing the loss) when
        the module is in training mode."""
        if student_out.shape[0] % self.n_crops or teacher_out.shape[0] % self.n_global:
            raise ValueError(
                f"DINOLoss: student rows {student_out.shape[0]} / teacher rows {teacher_out.shape[0]} "
                f"are not multiples of n_crops={self.n_crops} / n_global={self.n_global}"
            )
        if student_out.shape[0] // self.n_crops != teacher_out.shape[0] // self.n_global:
            raise ValueError("DINOLoss: student and teacher batch sizes per crop differ")
        temp = self.temp_at(epoch)
        s_logp = F.log_softmax(student_out.float() / self.student_temp, dim=-1).chunk(self.n_crops)
        t_logits = (teacher_out.float() - self.center) / temp
        t_prob = F.softmax(t_logits, dim=-1).detach()
        t_logp = F.log_softmax(t_logits, dim=-1).detach()
        t_chunks = t_prob.chunk(self.n_global)

        pairs = [(v, torch.sum(-p_t * lp_s, dim=-1).mean())
                 for i, p_t in enumerate(t_chunks) for v, lp_s in enumerate(s_logp) if v != i]
        loss = balanced_pair_mean(pairs, self.n_global) if self.scale_balance \
            else sum(t for _, t in pairs) / len(pairs)

        with torch.no_grad():
            ent_rows = -(t_prob * t_logp).sum(-1)
            ent = ent_rows.mean()
            marg = t_prob.mean(0)
            marg_ent = -(marg * torch.log(marg.clamp_min(1e-30))).sum()
            kl = loss.detach() - ent  # every teacher chunk has the same weight in the pair mean
            max_p = t_prob.max(-1).values.mean()
        if self.training:
            self.update_center(teacher_out)
        return DinoLossOutput(
            loss=loss,
            teacher_entropy=float(ent),
            teacher_marginal_entropy=float(marg_ent),
            kl=float(kl),
            teacher_max_prob=float(max_p),
            teacher_temp=temp,
        )

    @torch.no_grad()
    def update_center(self, teacher_out: torch.Tensor) -> None:
        """``center <- m*center + (1-m)*mean(teacher_out)``; the mean is over
        the rows of every process when a process group is initialised."""
        batch_sum = teacher_out.float().sum(dim=0, keepdim=True)
        count = torch.tensor(float(teacher_out.shape[0]), device=teacher_out.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(batch_sum)
            dist.all_reduce(count)
        mean = batch_sum / count
        self.center.mul_(self.center_momentum).add_(mean * (1.0 - self.center_momentum))


@dataclass(frozen=True)
class PatchLossOutput:
    """One evaluation of :class:`IBOTPatchLoss`: ``loss`` (scalar tensor with grad),
    ``masked_share`` (float: masked patches / all patches of the global crops) and
    ``teacher_temp``."""

    loss: torch.Tensor
    masked_share: float
    teacher_temp: float


class IBOTPatchLoss(_CentredDistillation):
    """iBOT's masked patch-token self-distillation (NOT in original DINO; Zhou et al.,
    "iBOT: Image BERT Pre-Training with Online Tokenizer", ICLR 2022; the patch half
    of ``iBOTLoss`` in ibot:main_ibot.py).

    For each global crop the teacher sees it whole and the student with some patches
    replaced by a mask token. At every masked patch ``j`` of image ``b`` the loss is
    ``sum_k -P_t[b,j,k] log P_s[b,j,k]`` with ``P_t = softmax((t - center) / tau_t)``
    (detached) and ``P_s = softmax(s / student_temp)`` -- the same crop, the same
    position, never another crop. It is averaged over the masked patches of each
    image (an image with none contributes 0, iBOT's ``clamp(min=1)``), then over the
    images and crops. After the loss ``center <- m*center + (1-m)*mean(t)``, the mean
    over every patch token of every global crop (all processes), iBOT's ``center2``;
    given the teacher's outputs at the masked patches only (a cheaper teacher, not
    iBOT's), the mean over those.

    ``teacher_temps``: a per-epoch array (:func:`teacher_temp_schedule`) or a float.
    ``center`` is a registered ``(1, K)`` buffer, so it is checkpointed.
    """

    def __init__(self, out_dim: int, teacher_temps=0.07, student_temp: float = 0.1,
                 center_momentum: float = 0.9) -> None:
        super().__init__(out_dim, teacher_temps, student_temp, center_momentum)

    def forward(self, student_masked: torch.Tensor, teacher_patch: torch.Tensor, masks: torch.Tensor,
                epoch: int = 0) -> PatchLossOutput:
        """``student_masked`` ``(M, K)``: the student's head outputs at the ``M`` True
        entries of ``masks`` (``(n*B, rows, cols)`` bool, crop-major), in the order of
        ``masks.nonzero()``; ``teacher_patch`` ``(n*B, N, K)`` with ``N = rows*cols``
        (row-major), or ``(M, K)``, the teacher's outputs at the masked patches alone.
        Updates ``center`` in training mode."""
        rows = masks.shape[0]
        flat = masks.to(student_masked.device, torch.bool).reshape(rows, -1)
        every = teacher_patch.ndim == 3
        n_masked = int(flat.sum())
        fits = tuple(teacher_patch.shape[:2]) == tuple(flat.shape) if every else len(teacher_patch) == n_masked
        if not fits or n_masked != student_masked.shape[0]:
            raise ValueError(f"IBOTPatchLoss: masks {tuple(masks.shape)} do not fit teacher outputs "
                             f"{tuple(teacher_patch.shape)} and {student_masked.shape[0]} student rows")
        temp = self.temp_at(epoch)
        t_masked = teacher_patch.float()[flat] if every else teacher_patch.float()
        t_logits = (t_masked - self.center) / temp  # (M, K): the masked positions
        t_prob = F.softmax(t_logits, dim=-1).detach()
        s_logp = F.log_softmax(student_masked.float() / self.student_temp, dim=-1)
        per_token = torch.sum(-t_prob * s_logp, dim=-1)  # (M,)
        counts = flat.sum(dim=1)
        image = torch.repeat_interleave(torch.arange(rows, device=flat.device), counts)
        per_image = torch.zeros(rows, device=per_token.device).index_add(0, image, per_token)
        loss = (per_image / counts.clamp(min=1)).mean()
        if self.training:
            self.update_center(teacher_patch)
        return PatchLossOutput(loss=loss, masked_share=float(flat.float().mean()), teacher_temp=temp)

    @torch.no_grad()
    def update_center(self, teacher_patch: torch.Tensor) -> None:
        """``center <- m*center + (1-m)*mean(teacher_patch)``: for ``(n*B, N, K)`` the mean over the
        tokens of each image, then over the images (iBOT); for ``(M, K)`` the mean over the rows. Over
        every process when a process group is initialised; no change when there is no row anywhere."""
        t = teacher_patch.float()
        if t.ndim == 3:
            t = t.mean(dim=1)
        batch_sum = t.sum(dim=0, keepdim=True)
        count = torch.tensor(float(t.shape[0]), device=t.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(batch_sum)
            dist.all_reduce(count)
        if count > 0:
            self.center.mul_(self.center_momentum).add_(batch_sum / count * (1.0 - self.center_momentum))


def koleo_loss(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Kozachenko-Leonenko spreading term (NOT in original DINO; DINOv2 uses it).

    ``x`` ``(B, D)``: rows are L2-normalised, each row's nearest other row is
    found by the largest dot product, and the loss is ``-mean_i log(||x_i -
    x_nn(i)|| + eps)``: it grows when two rows are close, so minimising it
    spreads the batch over the sphere. Needs ``B >= 2``.
    """
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"koleo_loss: need (B>=2, D) features, got shape {tuple(x.shape)}")
    x = F.normalize(x.float(), dim=-1, eps=eps)
    with torch.no_grad():
        sim = x @ x.T
        sim.fill_diagonal_(-2.0)
        nn_idx = sim.argmax(dim=1)
    dist_nn = (x - x[nn_idx]).norm(dim=-1)
    return -torch.log(dist_nn + eps).mean()


# --------------------------------------------------------------------------
# Classifier transfer
# --------------------------------------------------------------------------

TRANSFER_LOSSES = ("ce", "bce", "patch_bce", "patch_image_bce")
"""``"ce"``: softmax cross-entropy, one class per image; ``"bce"``: one
sigmoid + binary cross-entropy per class, multi-hot targets per image;
``"patch_bce"``: the same per patch token, labelled by the boxes covering the
patch (:func:`patch_targets`); ``"patch_image_bce"``: the same per patch token,
every patch labelled with its image's multi-hot (a dense head trained with
image-level labels only)."""
PATCH_LOSSES = ("patch_bce", "patch_image_bce")
"""The losses of a head on every patch token (:class:`~dinosal.models.PatchClassifier`)."""


def patch_targets(boxes, labels, num_classes: int, grid, patch: int) -> torch.Tensor:
    """Multi-hot labels per patch token from boxes: ``(rows*cols, num_classes)`` float32.

    boxes: ``(n, 4)`` xyxy pixels of the network input, exclusive max;
    labels: ``(n,)`` class indices; grid: ``(rows, cols)``; patch: p (px).
    **Rule:** patch ``(r, c)`` (token ``r*cols + c``) is covered by a box
    when the patch centre ``((c + 0.5) p, (r + 0.5) p)`` lies inside it,
    ``x1 <= x < x2`` and ``y1 <= y < y2``; it gets the union of the labels of
    the boxes covering it (0 everywhere else). A box that covers no patch
    centre (smaller than a patch, or cut away by a crop) labels nothing.
    Raises ``ValueError`` naming the argument for mismatched lengths, a label
    outside ``0 .. num_classes-1`` or a bad grid/patch.
    """
    b = torch.as_tensor(np.asarray(boxes, dtype=np.float64)).reshape(-1, 4)
    lab = torch.as_tensor(np.asarray(labels, dtype=np.int64)).reshape(-1)
    rows, cols = (int(v) for v in grid)
    if rows < 1 or cols < 1 or int(patch) < 1 or int(num_classes) < 1:
        raise ValueError(f"patch_targets: grid {(rows, cols)}, patch {patch} and num_classes {num_classes} must be >= 1")
    if len(b) != len(lab):
        raise ValueError(f"patch_targets: {len(b)} boxes but {len(lab)} labels")
    if len(lab) and (lab.min() < 0 or lab.max() >= num_classes):
        raise ValueError(f"patch_targets: labels must lie in 0..{num_classes - 1}, got {lab.tolist()}")
    out = torch.zeros(rows * cols, int(num_classes), dtype=torch.float32)
    if len(b) == 0:
        return out
    cy = (torch.arange(rows, dtype=torch.float64) + 0.5) * patch
    cx = (torch.arange(cols, dtype=torch.float64) + 0.5) * patch
    inside_x = (b[:, None, 0] <= cx) & (cx < b[:, None, 2])  # (n, cols)
    inside_y = (b[:, None, 1] <= cy) & (cy < b[:, None, 3])  # (n, rows)
    covered = (inside_y[:, :, None] & inside_x[:, None, :]).reshape(len(b), rows * cols)  # (n, N)
    for k in lab.unique().tolist():
        out[:, k] = covered[lab == k].any(dim=0).float()
    return out


def transfer_loss(logits: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """The training loss of a transferred classifier, a scalar (mean).

    * ``"ce"``: ``logits (B, C)``, ``target (B,)`` int64 class indices;
      ``F.cross_entropy``, the mean over images (``eval_linear``'s
      ``nn.CrossEntropyLoss``).
    * ``"bce"``: ``logits (B, C)``, ``target (B, C)`` multi-hot in {0, 1};
      ``F.binary_cross_entropy_with_logits``, the mean over all ``B*C``
      entries (``nn.BCEWithLogitsLoss``'s default), i.e. per class and image.
    * ``"patch_bce"``: ``logits (B, N, C)``, ``target (B, N, C)`` from
      :func:`patch_targets`; the same BCE, the mean over ``B*N*C``.
    * ``"patch_image_bce"``: the same, ``target (B, N, C)`` the image's
      multi-hot on every patch.

    Computed in float32. Raises ``ValueError`` naming the argument and the
    problem for an unknown ``loss``, shapes that do not match, a class index
    out of range or a multi-hot target outside [0, 1].
    """
    if loss not in TRANSFER_LOSSES:
        raise ValueError(f"transfer_loss: loss must be one of {TRANSFER_LOSSES}, got {loss!r}")
    want = 3 if loss in PATCH_LOSSES else 2
    if logits.ndim != want:
        raise ValueError(f"transfer_loss: logits for {loss!r} must have {want} dims, got shape {tuple(logits.shape)}")
    logits = logits.float()
    if loss == "ce":
        if target.shape != logits.shape[:1] or target.is_floating_point():
            raise ValueError(f"transfer_loss: target for 'ce' must be (B,) integer class indices with B = "
                             f"{logits.shape[0]}, got shape {tuple(target.shape)} {target.dtype}")
        if len(target) and (target.min() < 0 or target.max() >= logits.shape[1]):
            raise ValueError(f"transfer_loss: target class indices must lie in 0..{logits.shape[1] - 1}, "
                             f"got {target.min().item()}..{target.max().item()}")
        return F.cross_entropy(logits, target.long())
    if target.shape != logits.shape:
        raise ValueError(f"transfer_loss: target for {loss!r} must match logits {tuple(logits.shape)}, "
                         f"got {tuple(target.shape)}")
    target = target.float()
    if target.numel() and (target.min() < 0 or target.max() > 1):
        raise ValueError("transfer_loss: multi-hot target values must lie in [0, 1]")
    return F.binary_cross_entropy_with_logits(logits, target)


# --------------------------------------------------------------------------
# Mugs' InfoNCE with a queue and LEWEL's BYOL loss (companions of DINO, not DINO)
# --------------------------------------------------------------------------


@dataclass
class InfoNCEOutput:
    """One evaluation of :class:`QueueInfoNCE`: ``loss`` (scalar with grad); ``positive``: the mean cosine
    of a prediction with its positive target; ``negative``: the mean cosine with the queue's entries;
    ``accuracy``: the share of predictions whose positive beats every queue entry."""

    loss: torch.Tensor
    positive: float
    negative: float
    accuracy: float


class QueueInfoNCE(nn.Module):
    """Mugs' instance and local-group discrimination (``InfoNCELoss`` of Mugs' ``src/loss.py``;
    reference notes section 5.2): InfoNCE of a student prediction against the teacher's target for another
    view of the same image (positive) and a queue of past teacher targets (negatives).

    ``dim``: the embedding width (Mugs: 256); ``queue_size``: K entries (Mugs: 65536); ``temperature``:
    0.2 in Mugs; ``n_crops``: the student's crops (globals first), ``n_global``: the teacher's (2).
    ``forward(student, teacher)`` takes L2-normalised ``(n_crops*B, dim)`` predictions and ``(n_global*B,
    dim)`` targets, crop-major. For every pair (target crop i, student crop v != i): logits ``[s.t,
    s.queue] / temperature``, cross-entropy with the positive at index 0; the pair losses are combined as
    Mugs combines them (:func:`balanced_pair_mean`). The negatives are the queue as it was before the call;
    in training mode the targets then enter the queue, crop by crop (:meth:`enqueue`).
    The queue starts as unit-norm Gaussian columns, as Mugs' (drawn from the global RNG).
    Raises ``ValueError`` for rows that do not split into the crops.
    """

    def __init__(self, dim: int, queue_size: int, temperature: float = 0.2, n_crops: int = 2,
                 n_global: int = 2) -> None:
        super().__init__()
        if queue_size < 1 or n_crops < n_global or n_global < 1:
            raise ValueError(f"QueueInfoNCE: queue_size {queue_size} must be >= 1 and n_crops {n_crops} >= "
                             f"n_global {n_global} >= 1")
        self.temperature = float(temperature)
        self.n_crops, self.n_global = int(n_crops), int(n_global)
        self.register_buffer("queue", F.normalize(torch.randn(dim, queue_size), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write ``keys`` ``(n, dim)`` (gathered over every process under torch.distributed) at the pointer,
        wrapping at the end; the pointer moves by ``n`` (mod K)."""
        keys = gather_rows(keys.detach().float())
        k, n = self.queue.shape[1], keys.shape[0]
        ptr = int(self.queue_ptr)
        idx = (torch.arange(n, device=keys.device) + ptr) % k
        self.queue[:, idx] = keys.T
        self.queue_ptr[0] = (ptr + n) % k

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> InfoNCEOutput:
        if student.shape[0] % self.n_crops or teacher.shape[0] % self.n_global:
            raise ValueError(f"QueueInfoNCE: student rows {student.shape[0]} / teacher rows {teacher.shape[0]} "
                             f"are not multiples of n_crops={self.n_crops} / n_global={self.n_global}")
        preds, targets = student.float().chunk(self.n_crops), teacher.detach().float().chunk(self.n_global)
        queue = self.queue.clone().detach()
        pairs, pos, neg, hits = [], [], [], []
        for i, t in enumerate(targets):
            for v, s in enumerate(preds):
                if v == i:
                    continue
                l_pos = (s * t).sum(-1, keepdim=True)
                l_neg = s @ queue
                logits = torch.cat([l_pos, l_neg], dim=1) / self.temperature
                labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
                pairs.append((v, F.cross_entropy(logits, labels)))
                with torch.no_grad():
                    pos.append(l_pos.mean())
                    neg.append(l_neg.mean())
                    hits.append((logits.argmax(1) == 0).float().mean())
        loss = balanced_pair_mean(pairs, self.n_global)
        if self.training:
            for t in targets:
                self.enqueue(t)
        return InfoNCEOutput(loss, float(torch.stack(pos).mean()), float(torch.stack(neg).mean()),
                             float(torch.stack(hits).mean()))


@torch.no_grad()
def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` of every process concatenated in rank order (itself without a process group)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out)


def byol_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BYOL's regression loss as LEWEL writes it (``mse_loss`` of LEWEL's ``models/lewel.py``):
    ``2 - 2 * mean_n cos(pred_n, target_n)`` over rows of ``(N, C)``; the target gets no gradient.
    0 when every prediction points along its target, 4 when opposite."""
    p = F.normalize(pred.float(), dim=1)
    t = F.normalize(target.detach().float(), dim=1)
    return 2 - 2 * (p * t).sum() / p.shape[0]
