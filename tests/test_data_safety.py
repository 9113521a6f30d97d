"""No code path deletes or overwrites a file it did not create (issue 10).

Every writer is run against a folder that holds a user's files -- at the
target and next to it -- and must either refuse with a clear error or leave
those files byte-identical. What the library wrote itself (a marked export, a
cached set, a training run) may still be replaced.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dinosal import runs
from dinosal.data import export
from dinosal.data.multicrop import MultiCropConfig
from dinosal.data import load_cached, save_cached
from dinosal.data.synthetic import (
    DrivingConfig,
    DrivingScenes,
    SingleVehicles,
    VehicleConfig,
)
from dinosal.train.dino import CHECKPOINT, LOG_CSV, DinoConfig, train_dino

REPO = Path(__file__).resolve().parents[1]
USER_JSON = b'[{"name": "b1c66a42-6f7d68ca.jpg", "labels": []}]\n'


def files_of(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) with its bytes; links by target."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_symlink():
            out[rel] = b"-> " + str(p.readlink()).encode()
        elif p.is_file():
            out[rel] = p.read_bytes()
        else:
            out[rel] = b"<dir>"
    return out


def user_data(root: Path) -> Path:
    """A user's BDD100K-like folder ``root/data`` with a file beside it; returns ``root/data``."""
    data = root / "data"
    (data / "labels" / "det_20").mkdir(parents=True)
    (data / "labels" / "det_20" / "det_val.json").write_bytes(USER_JSON)
    (root / "notes.txt").write_bytes(b"my notes\n")
    return data


# ---------------------------------------------------------------- exporters


@pytest.fixture(scope="module")
def sets():
    driving = [s for s in DrivingScenes(DrivingConfig(size=32, n_objects=(1, 3), seed=2))[:8] if len(s.labels)]
    vehicles = SingleVehicles(VehicleConfig(size=32, seed=2))[:4]
    folders = SingleVehicles(VehicleConfig(size=32, types=("coupe", "sedan")))[:6]
    return {"driving": driving[:3], "vehicles": vehicles, "folders": folders}


EXPORTERS = {
    "export_bdd100k": "driving",
    "export_stanford_cars": "vehicles",
    "export_class_folders": "folders",
    "export_voc": "driving",
    "export_coco": "driving",
}


def test_every_public_exporter_is_covered():
    public = {n for n, f in inspect.getmembers(export, inspect.isfunction)
              if n.startswith("export_") and f.__module__ == export.__name__}
    assert public == set(EXPORTERS)


@pytest.mark.parametrize("name", EXPORTERS)
@pytest.mark.parametrize("overwrite", [False, True])
def test_exporter_refuses_a_user_folder_and_changes_nothing(tmp_path, sets, name, overwrite):
    fn, samples = getattr(export, name), sets[EXPORTERS[name]]
    data = user_data(tmp_path)
    before = files_of(tmp_path)
    with pytest.raises(FileExistsError, match="not written by dinosal.*nothing was changed"):
        fn(samples, data, overwrite=overwrite)
    assert files_of(tmp_path) == before  # the user's files, and no temporary folder left behind
    # a user's file at the target, and a link to the user's folder, are refused too
    (tmp_path / "file").write_bytes(b"mine")
    (tmp_path / "link").symlink_to(data, target_is_directory=True)
    before = files_of(tmp_path)
    with pytest.raises(FileExistsError, match="is a file"):
        fn(samples, tmp_path / "file", overwrite=overwrite)
    with pytest.raises(FileExistsError, match="symbolic link"):
        fn(samples, tmp_path / "link", overwrite=overwrite)
    assert files_of(tmp_path) == before


@pytest.mark.parametrize("name", EXPORTERS)
def test_exporter_replaces_only_its_own_marked_export(tmp_path, sets, name):
    fn, samples = getattr(export, name), sets[EXPORTERS[name]]
    user_data(tmp_path)
    target = tmp_path / "export"
    target.mkdir()  # an empty folder loses nothing: it may be taken
    first = fn(samples, target)
    assert first.n == len(samples) and export.is_export(target)
    marker = json.loads((target / export.MARKER).read_text())
    assert marker["written_by"] == f"dinosal.data.export.{name}" and marker["files"]
    with pytest.raises(FileExistsError, match="overwrite=True"):
        fn(samples, target)
    second = fn(samples[1:], target, overwrite=True)
    assert second.n == len(samples) - 1 and export.is_export(target)
    assert files_of(tmp_path / "data") == {"labels": b"<dir>", "labels/det_20": b"<dir>",
                                           "labels/det_20/det_val.json": USER_JSON}
    assert (tmp_path / "notes.txt").read_bytes() == b"my notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "export", "notes.txt"]


@pytest.mark.parametrize("name", EXPORTERS)
def test_files_added_to_an_export_are_never_removed(tmp_path, sets, name):
    fn, samples = getattr(export, name), sets[EXPORTERS[name]]
    target = tmp_path / "export"
    fn(samples, target)
    (target / "my_results.csv").write_bytes(b"a,b\n1,2\n")
    before = files_of(tmp_path)
    with pytest.raises(FileExistsError, match="did not write.*my_results.csv.*nothing was changed"):
        fn(samples, target, overwrite=True)
    assert files_of(tmp_path) == before
    # a file of the export that the user changed counts as theirs as well
    (target / "my_results.csv").unlink()
    written = next(p for p in sorted(target.rglob("*")) if p.is_file() and p.name != export.MARKER)
    written.write_bytes(written.read_bytes() + b"edited")
    before = files_of(tmp_path)
    with pytest.raises(FileExistsError, match="changed since"):
        fn(samples, target, overwrite=True)
    assert files_of(tmp_path) == before


# ---------------------------------------------------------------- save_cached


def test_save_cached_never_replaces_a_file_it_did_not_write(tmp_path):
    g = DrivingScenes(DrivingConfig(size=32, n_objects=(1, 2)))
    np.savez(tmp_path / "mine.npz", images=np.zeros(3))
    (tmp_path / "mine.txt").write_bytes(b"mine")
    (tmp_path / "link.npz").symlink_to(tmp_path / "mine.npz")
    (tmp_path / "folder.npz").mkdir()
    before = files_of(tmp_path)
    for name in ("mine.npz", "mine.txt", "folder.npz"):
        for overwrite in (False, True):
            with pytest.raises(FileExistsError, match="not a set written by save_cached"):
                save_cached(g, 2, tmp_path / name, overwrite=overwrite)
    with pytest.raises(FileExistsError, match="symbolic link"):
        save_cached(g, 2, tmp_path / "link.npz", overwrite=True)
    assert files_of(tmp_path) == before

    path = save_cached(g, 3, tmp_path / "eval.npz")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_cached(g, 2, path)
    assert len(load_cached(path)) == 3
    save_cached(g, 2, path, overwrite=True)
    assert len(load_cached(path)) == 2
    assert {k: v for k, v in files_of(tmp_path).items() if k != "eval.npz"} == before


# ---------------------------------------------------------------- train_dino run_dir


def tiny_config(**kw) -> DinoConfig:
    base = dict(arch=(32, 2, 2), patch=8, img_size=16, out_dim=32, head_hidden=32, head_bottleneck=16,
                batch_size=4, epochs=1, steps_per_epoch=2, warmup_epochs=0, drop_path=0.0,
                crops=MultiCropConfig.weak(global_size=16, local_size=8, n_local=2), progress=False)
    base.update(kw)
    return DinoConfig(**base)


def tiny_data(n=8):
    rng = np.random.default_rng(0)
    return [(rng.random((20, 20, 3)) * 255).astype(np.uint8) for _ in range(n)]


@pytest.mark.parametrize("case", ["official_checkpoint", "not_a_checkpoint", "log_only", "linked_log"])
def test_train_dino_leaves_a_foreign_run_dir_alone(tmp_path, case):
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "notes.txt").write_bytes(b"my notes\n")
    if case == "official_checkpoint":  # main_dino's layout: no dinosal run state
        torch.save({"student": {}, "teacher": {}, "optimizer": {}, "epoch": 100}, run / CHECKPOINT)
        (run / LOG_CSV).write_bytes(b"epoch,loss\n0,11.1\n")
        error, match = ValueError, "not a checkpoint written by dinosal.*nothing was changed"
    elif case == "not_a_checkpoint":
        (run / CHECKPOINT).write_bytes(b"not a torch file")
        error, match = ValueError, "not a checkpoint written by dinosal"
    elif case == "log_only":
        (run / LOG_CSV).write_bytes(b"epoch,loss\n0,11.1\n")
        error, match = FileExistsError, "not written by a dinosal run.*nothing was changed"
    else:
        (tmp_path / "elsewhere.csv").write_bytes(b"a,b\n")
        (run / LOG_CSV).symlink_to(tmp_path / "elsewhere.csv")
        error, match = FileExistsError, "a link"
    before = files_of(tmp_path)
    with pytest.raises(error, match=match):
        train_dino(tiny_config(), tiny_data(), run_dir=run)
    assert files_of(tmp_path) == before


def test_train_dino_writes_beside_user_files_and_reuses_its_own_run_dir(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_bytes(b"my notes\n")
    res = train_dino(tiny_config(), tiny_data(), run_dir=run)
    assert res.steps == 2 and (run / CHECKPOINT).is_file() and (run / LOG_CSV).is_file()
    assert (run / "notes.txt").read_bytes() == b"my notes\n"
    # a run that stopped without a checkpoint (e.g. a collapse) left only its log: the marker says it is ours
    (run / CHECKPOINT).unlink()
    res = train_dino(tiny_config(), tiny_data(), run_dir=run)
    assert res.steps == 2 and (run / "notes.txt").read_bytes() == b"my notes\n"


# ---------------------------------------------------------------- run cache


def test_run_cache_never_replaces_a_folder_it_did_not_build(tmp_path):
    cfg = DrivingConfig(size=32)
    final = tmp_path / "model" / runs.config_key("model", cfg)
    final.mkdir(parents=True)
    (final / "weights.bin").write_bytes(b"mine")
    calls = []
    for rebuild in (False, True):
        with pytest.raises(FileExistsError, match="not an artifact of the run cache.*nothing was changed"):
            runs.cached("model", cfg, calls.append, root=tmp_path, rebuild=rebuild)
    assert calls == [] and (final / "weights.bin").read_bytes() == b"mine"
    assert sorted(p.name for p in final.iterdir()) == ["weights.bin"]


# ---------------------------------------------------------------- scripts


def test_recipe_benchmark_refuses_an_existing_json_before_any_work(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_dino_recipe", REPO / "benchmarks" / "bench_dino_recipe.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # its dataclasses look their module up there
    spec.loader.exec_module(bench)

    def no_work(*a, **k):
        raise AssertionError("the benchmark ran although its output file would be replaced")

    monkeypatch.setattr(bench, "evaluate_domain", no_work)
    out = tmp_path / "results.json"
    out.write_bytes(b'{"mine": 1}')
    with pytest.raises(SystemExit):
        bench.main(["--json", str(out)])
    assert out.read_bytes() == b'{"mine": 1}'


# ---------------------------------------------------------------- chapters


def _run_benchmark_chapter(monkeypatch, tmp_path: Path, export_dir: Path):
    papermill = pytest.importorskip("papermill")
    monkeypatch.setenv("DINOSAL_PROFILE", "smoke")  # seconds per cell
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return papermill.execute_notebook(
        str(REPO / "book" / "benchmark.ipynb"), str(tmp_path / "out.ipynb"),
        parameters={"export_dir": str(export_dir)}, kernel_name="python3", cwd=str(REPO / "book"),
        progress_bar=False, log_output=False, execution_timeout=120,
    )


def test_benchmark_chapter_keeps_a_users_datasets(monkeypatch, tmp_path):
    """About 10 s in the smoke profile: the chapter stops at the export cell."""
    from papermill.exceptions import PapermillExecutionError

    data = tmp_path / "datasets"
    (data / "bdd100k" / "labels" / "det_20").mkdir(parents=True)
    (data / "bdd100k" / "labels" / "det_20" / "det_val.json").write_bytes(USER_JSON)
    (data / "bdd100k" / "images").mkdir()
    (data / "bdd100k" / "images" / "frame.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (data / "README").write_bytes(b"my datasets\n")
    before = files_of(data)
    with pytest.raises(PapermillExecutionError, match="not written by dinosal"):
        _run_benchmark_chapter(monkeypatch, tmp_path, data)
    assert files_of(data) == before


def test_benchmark_chapter_writes_marked_exports_into_export_dir(monkeypatch, tmp_path):
    out = tmp_path / "exports"
    out.mkdir()
    (tmp_path / "neighbour.txt").write_bytes(b"mine")
    _run_benchmark_chapter(monkeypatch, tmp_path, out)
    assert sorted(p.name for p in out.iterdir()) == ["bdd100k", "coco", "stanford_cars", "voc"]
    assert all(export.is_export(p) for p in out.iterdir())
    assert (tmp_path / "neighbour.txt").read_bytes() == b"mine"
