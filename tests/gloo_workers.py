"""Start CPU workers the way torchrun does, for the DDP tests (gloo, torch.distributed).

:func:`run_workers` spawns ``world`` processes that each call ``worker(rank,
world, out_dir)`` after :func:`become_rank` has set RANK / WORLD_SIZE /
LOCAL_RANK / MASTER_ADDR / MASTER_PORT and one torch thread; the library
initialises the process group itself, as under torchrun. The worker saves
what it needs under ``out_dir``; the group is destroyed when it returns.
"""

import os
import socket

import torch
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def become_rank(rank: int, world: int, port: int) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)


def _run(worker, rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    become_rank(rank, world, port)
    try:
        worker(rank, world, out_dir)
        assert dist.get_world_size() == world and dist.get_backend() == "gloo"
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def run_workers(worker, world: int, out_dir, timeout: float = 120) -> None:
    """Run ``worker`` (a module-level function) on ``world`` spawned ranks; every rank must exit 0."""
    ctx = mp.get_context("spawn")
    port = free_port()
    procs = [ctx.Process(target=_run, args=(worker, r, world, port, str(out_dir))) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
