"""Two CPU processes (gloo, torch.distributed) == one process on the same global batch.

The two workers are started the way torchrun starts them: environment
variables RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT, and the
library initialises the process group itself.
"""

import os

import pytest
import torch

from gloo_workers import run_workers
from test_train_dino import tiny_config, tiny_data

STEPS = 3


def _worker(rank: int, world: int, out_dir: str) -> None:
    from dinosal.train.dino import train_dino

    cfg = tiny_config(batch_size=4, epochs=1, steps_per_epoch=STEPS, device="cpu")
    result = train_dino(cfg, tiny_data(n=32))
    torch.save({"log": result.log, "center": result.center,
                "teacher": result.teacher.state_dict()}, os.path.join(out_dir, f"rank{rank}.pt"))


def test_two_processes_match_one_process(tmp_path):
    from dinosal.train.dino import train_dino

    run_workers(_worker, 2, tmp_path, timeout=100)

    # one process, global batch 8 = the two ranks' batches of 4
    single = train_dino(tiny_config(batch_size=8, epochs=1, steps_per_epoch=STEPS, device="cpu"), tiny_data(n=32))
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert len(got["log"]) == STEPS
        for a, b in zip(single.log, got["log"]):
            assert a["loss"] == pytest.approx(b["loss"], rel=1e-4), a["step"]
            assert a["teacher_entropy"] == pytest.approx(b["teacher_entropy"], rel=1e-4)
            assert a["lr"] == pytest.approx(b["lr"])  # lr scaled by the same global batch
        torch.testing.assert_close(got["center"], single.center, rtol=1e-4, atol=1e-6)
        for k, v in single.teacher.state_dict().items():
            torch.testing.assert_close(got["teacher"][k], v, rtol=1e-4, atol=1e-5, msg=k)
