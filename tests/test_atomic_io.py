"""Atomic writes fail with an error that names the file, the temporary file and the free space.

Issue 10, fault 9: a full disk during a run-cache save surfaced as torch's
``[enforce fail at inline_container.cc:672]``, which names none of them.
"""

from __future__ import annotations

import errno
import os
import pickle

import pytest
import torch

from dinosal import runs

TORCH_FULL_DISK = ("[enforce fail at inline_container.cc:672] . unexpected pos 4160 vs 4048\n"
                   "frame #0: c10::ThrowEnforceNotMet(...)")


def test_torch_save_on_a_full_disk_names_the_file_and_the_free_space(tmp_path, monkeypatch):
    target = tmp_path / "run" / "checkpoint.pth"
    runs.atomic_torch_save({"w": torch.ones(2)}, target)  # the file a previous save left
    before = target.read_bytes()
    seen = {}

    def full_disk(obj, f, *args, **kwargs):
        seen["tmp"] = str(f)
        with open(f, "wb") as fh:  # torch's writer leaves part of the file, then fails
            fh.write(b"PK\x03\x04 partial")
        raise RuntimeError(TORCH_FULL_DISK)

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError) as info:
        runs.atomic_torch_save({"w": torch.zeros(2)}, target)
    err = info.value
    assert isinstance(err, runs.AtomicWriteError)
    msg = str(err)
    assert f"could not write {target}" in msg and seen["tmp"] in msg
    assert "free on its file system" in msg and "inline_container.cc:672" in msg
    assert isinstance(err.__cause__, RuntimeError)
    assert sorted(p.name for p in target.parent.iterdir()) == ["checkpoint.pth"]  # no temp file left
    assert target.read_bytes() == before  # the old file is intact


def test_write_bytes_on_a_full_disk_keeps_errno_and_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "manifest.json"

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(runs.AtomicWriteError) as info:
        runs.atomic_write_text(target, "{}")
    assert info.value.errno == errno.ENOSPC
    msg = str(info.value)
    assert f"could not write {target}" in msg and ".manifest.json." in msg and "No space left" in msg
    assert "the disk looks full" in msg
    assert list(tmp_path.iterdir()) == []


def test_pickling_errors_pass_through_and_leave_nothing(tmp_path):
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        runs.atomic_torch_save({"f": lambda: 0}, tmp_path / "x.pth")
    assert list(tmp_path.iterdir()) == []


def test_full_disk_in_sample_cache_and_export_names_the_target(tmp_path, monkeypatch):
    import errno

    import numpy as np

    from dinosal.data import cache, export, synthetic
    from dinosal.runs import AtomicWriteError

    gen = synthetic.DrivingScenes(synthetic.DrivingConfig(size=32, length=2))

    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", no_space)
    with pytest.raises(AtomicWriteError, match="set.npz") as err:
        cache.save_cached(gen, 2, tmp_path / "set.npz")
    assert err.value.errno == errno.ENOSPC and list(tmp_path.iterdir()) == []

    monkeypatch.setattr(export, "_save_image", no_space)
    with pytest.raises(AtomicWriteError, match="voc"):
        export.export_voc([gen[0], gen[1]], tmp_path / "voc")
    assert list(tmp_path.iterdir()) == []  # the temporary folder is gone, nothing half-written
