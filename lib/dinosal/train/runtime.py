"""What every trainer of the package shares about processes and run folders.

* :func:`setup_distributed`: one process on CPU or one GPU, or -- under
  ``torchrun`` (``WORLD_SIZE > 1``) -- a process group initialised here (gloo
  on CPU, NCCL on GPU); returns :class:`Dist` (rank, world size, device).
* :func:`autocast`: bf16 autocast on a GPU under ``amp="auto"``, fp32 on CPU.
* :func:`claim_run_dir`: the safety rule of a run folder. A trainer only
  ever replaces files it wrote itself: a checkpoint that is not its own, a
  link, or a log in a folder no run of that trainer marked makes it refuse
  (nothing on disk changes); otherwise it marks the folder
  (:data:`RUN_MARKER`, naming the writer) and returns the checkpoint to
  resume from.
* :func:`write_log_csv`, :func:`snapshot_path`, :func:`rng_state` /
  :func:`set_rng_state`: the log, the snapshot names and the random state
  a resumed run needs.

:mod:`dinosal.train.dino` and :mod:`dinosal.train.transfer` both stand on
this module; neither imports the other.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.distributed as dist

from ..runs import atomic_torch_save, atomic_write_text

__all__ = [
    "Dist",
    "setup_distributed",
    "autocast",
    "RUN_MARKER",
    "SNAPSHOT_DIR",
    "run_marked",
    "claim_run_dir",
    "write_log_csv",
    "save_run",
    "snapshot_path",
    "rng_state",
    "set_rng_state",
]

RUN_MARKER = ".dinosal-run"
"""Marker file a trainer writes into its ``run_dir``: a folder it may write
``log.csv`` into even when no checkpoint is there yet (JSON; ``written_by``
names the trainer function)."""
SNAPSHOT_DIR = "snapshots"


@dataclass(frozen=True)
class Dist:
    """This process: ``rank`` in ``0 .. world-1`` and the device it trains on."""

    rank: int
    world: int
    device: torch.device


def setup_distributed(device_pref: str, where: str = "device") -> Dist:
    """Rank, world size and device of this process (see the module doc).

    ``device_pref``: ``"auto"`` (a GPU if there is one), ``"cpu"`` or
    ``"cuda"``; ``where`` names the setting in the error raised when
    ``"cuda"`` is asked for without a GPU (``RuntimeError``)."""
    cuda = torch.cuda.is_available() and device_pref in ("auto", "cuda")
    if device_pref == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{where}='cuda' but no GPU is available")
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", rank))
        if cuda:
            torch.cuda.set_device(local)
        device = torch.device(f"cuda:{local}" if cuda else "cpu")
        return Dist(rank, world, device)
    return Dist(0, 1, torch.device("cuda" if cuda else "cpu"))


def autocast(device: torch.device, amp: str):
    """bf16 autocast when ``amp == "bf16"``, or ``"auto"`` on a GPU; else a no-op context."""
    enabled = amp == "bf16" or (amp == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def write_log_csv(log: list[dict], path) -> None:
    """The per-step log as CSV (atomic; nothing is written for an empty log)."""
    if not log:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(log[0]))
    writer.writeheader()
    writer.writerows(log)
    atomic_write_text(path, buf.getvalue())


def save_run(trainer, run_dir: Optional[Path], checkpoint: str, log: str) -> None:
    """Rank 0 writes ``trainer.state_dict()`` to ``run_dir/checkpoint`` and
    ``trainer.log`` to ``run_dir/log``, each atomically; other ranks, and a
    run without ``run_dir``, write nothing. ``trainer``: a DINO or transfer
    trainer (``dist.rank``, ``state_dict()``, ``log``)."""
    if run_dir is None or trainer.dist.rank != 0:
        return
    atomic_torch_save(trainer.state_dict(), Path(run_dir) / checkpoint)
    write_log_csv(trainer.log, Path(run_dir) / log)


def adopt_run(work: Path, dest: Path, checkpoint: str = "checkpoint.pth", log: str = "log.csv") -> None:
    """Move a finished run's checkpoint, log and snapshots from its work folder ``work`` into ``dest`` (a
    run-cache artifact being built), then remove ``work``: what every cached training does after training."""
    for f in (checkpoint, log, SNAPSHOT_DIR):
        if (Path(work) / f).exists():
            shutil.move(str(Path(work) / f), str(Path(dest) / f))
    shutil.rmtree(work, ignore_errors=True)


def snapshot_path(run_dir, step: int) -> Path:
    """Where a trainer keeps the weights it had after ``step`` steps."""
    return Path(run_dir) / SNAPSHOT_DIR / f"step_{step:06d}.pth"


def run_marked(run_dir: Path, writer: str) -> bool:
    """Did ``writer`` (e.g. ``"dinosal.train.dino.train_dino"``) mark ``run_dir``?"""
    marker = Path(run_dir) / RUN_MARKER
    if marker.is_symlink() or not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("written_by") == writer
    except (OSError, ValueError, AttributeError):
        return False


def claim_run_dir(run_dir: Path, info: Dist, *, writer: str, checkpoint: str, log: str,
                  keys: Sequence[str], hint: str = "") -> Optional[dict]:
    """Check that ``run_dir`` holds nothing ``writer`` would replace without
    having written it, then mark it (rank 0); return the checkpoint to resume
    from, or None.

    ``checkpoint``/``log``: the file names; ``keys``: entries every checkpoint
    of ``writer`` has. Raises ``FileExistsError`` for a link or a folder at
    either name, or a log in a folder ``writer`` did not mark and that holds
    no checkpoint; ``ValueError`` for a checkpoint that is unreadable or lacks
    ``keys`` (``hint`` is appended to that message). Nothing is changed then.
    """
    run_dir = Path(run_dir)
    ckpt_path, log_path = run_dir / checkpoint, run_dir / log
    short = writer.rsplit(".", 1)[-1]
    for p in (ckpt_path, log_path):
        if p.is_symlink() or (p.exists() and not p.is_file()):
            raise FileExistsError(f"{p}: a link or a folder, not a file of a dinosal run; nothing was changed. "
                                  "Choose another run_dir.")
    ckpt = None
    if ckpt_path.exists():
        try:
            ckpt = torch.load(ckpt_path, map_location=info.device, weights_only=True)
        except Exception:  # noqa: BLE001 - any unreadable file is simply not ours
            ckpt = None
        if not (isinstance(ckpt, dict) and all(k in ckpt for k in keys)):
            raise ValueError(f"{ckpt_path}: not a checkpoint written by dinosal's {short}, so it is neither "
                             f"resumed nor overwritten; nothing was changed. Choose another run_dir{hint}.")
    elif log_path.exists() and not run_marked(run_dir, writer):
        raise FileExistsError(f"{log_path}: not written by a dinosal run (no checkpoint and no {RUN_MARKER} "
                              f"marker of {short} beside it); nothing was changed. Choose another run_dir.")
    if info.rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not run_marked(run_dir, writer):
            from .. import __version__

            atomic_write_text(run_dir / RUN_MARKER, json.dumps({
                "written_by": writer, "dinosal_version": __version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
    return ckpt


def rng_state() -> dict:
    """torch's CPU (and CUDA, if any) random state, for a checkpoint."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
