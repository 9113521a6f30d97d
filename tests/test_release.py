"""Released checkpoints: export, manifest, integrity, materialise, load, command line.

A smoke-size DINO model is trained once per module into a temporary run cache
(``$DINOSAL_CACHE``); every test releases it into its own temporary release
folder (``$DINOSAL_WEIGHTS``).
"""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest
import torch

from dinosal import release, run_scores, runs, zoo
from dinosal.models import load_dino_backbone
from dinosal.release import BACKBONE, CONFIG_JSON, ReleaseIntegrityError
from dinosal.train.dino import CHECKPOINT, LOG_CSV, snapshot_path

SNAP_STEPS = (0, 2, 4)  # the smoke recipe's snapshot_steps
SNAPSHOTS = [f"snapshots/step_{s:06d}.safetensors" for s in SNAP_STEPS]
STORED_SNAPSHOTS = SNAPSHOTS[1:-1]  # step 0 is the random init, made from code; step 4 of 4 is the final backbone
LOG_GZ = release.released_path(LOG_CSV)
METRICS = {"corloc_lost": 0.25, "attention_mass_objects": 0.5}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``(spec, cache artifact)`` of the smoke dino_world model."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(runs.CACHE_ENV, str(cache))
        spec = zoo.train_spec(zoo.recipe("dino_world", "smoke"), progress=False)
        path = zoo.train_cached(spec)
    assert (path / CHECKPOINT).is_file() and (path / LOG_CSV).is_file()
    return spec, path


@pytest.fixture
def weights(tmp_path, monkeypatch):
    root = tmp_path / "weights"
    monkeypatch.setenv(release.WEIGHTS_ENV, str(root))
    monkeypatch.setenv(runs.CACHE_ENV, str(tmp_path / "fresh-cache"))  # nothing trained there
    return root


def _teacher(path):
    model, _ = load_dino_backbone(path, which="teacher")
    return model.eval()


def _outputs(model, x):
    with torch.no_grad():
        return model.forward_features(x)


def test_export_writes_the_entry_and_a_complete_manifest_row(trained, weights):
    spec, path = trained
    entry = release.export_artifact(path, "dino_world", "smoke", METRICS)
    assert release.release_root() == weights and entry.folder == weights / "dino_world"

    files = sorted(p.relative_to(entry.folder).as_posix() for p in entry.folder.rglob("*") if p.is_file())
    assert files == sorted([BACKBONE, CONFIG_JSON, LOG_GZ, *STORED_SNAPSHOTS]) == sorted(entry.files)
    assert LOG_GZ == "log.csv.gz" and entry.copies == {SNAPSHOTS[-1]: BACKBONE}
    assert list(entry.generated) == [SNAPSHOTS[0]] and entry.generated[SNAPSHOTS[0]]["from"] == "initial"
    assert gzip.decompress((entry.folder / LOG_GZ).read_bytes()) == (path / LOG_CSV).read_bytes()
    assert json.loads((entry.folder / CONFIG_JSON).read_text()) == runs.read_manifest(path)["config"]

    doc = json.loads((weights / "manifest.json").read_text())
    assert doc["format"] == release.FORMAT and len(doc["entries"]) == 1
    row = doc["entries"][0]
    assert set(row) == {"name", "profile", "kind", "key", "files", "dtype", "steps", "train_seconds", "machine",
                        "commit", "versions", "metrics", "created", "copies", "generated"}
    assert row["key"] == zoo.model_key(spec) and row["kind"] == "dino" and row["profile"] == "smoke"
    assert row["steps"] == 4 and row["train_seconds"] > 0 and row["dtype"] == "float16"
    assert row["machine"]["cpu_count"] and row["versions"]["torch"] and row["commit"] and row["created"]
    assert row["metrics"] == METRICS
    assert all(release.sha256_file(entry.folder / rel) == digest for rel, digest in row["files"].items())

    from safetensors.torch import load_file

    tensors = load_file(entry.folder / BACKBONE)
    assert not any(k.startswith("head.") for k in tensors)  # the backbone only
    assert {v.dtype for v in tensors.values()} == {torch.float16}

    assert release.find(zoo.model_key(spec)) == entry and release.find("0" * 16) is None
    assert release.entries("smoke") == [entry] and release.entries("cpu") == []
    # releasing again changes nothing (same entry, same creation time: no diff to commit)
    again = release.export_artifact(path, "dino_world", "smoke", METRICS)
    assert again.created == entry.created and release.entries() == [entry]


def test_materialised_release_loads_the_teacher_and_is_what_the_zoo_finds(trained, weights, tmp_path,
                                                                         monkeypatch):
    spec, path = trained
    entry = release.export_artifact(path, "dino_world", "smoke", METRICS, dtype="float32")
    art = release.materialise(entry)
    assert art == runs.cache_root() / "dino" / zoo.model_key(spec)
    # the run cache holds the log plain and the copy written out: the files a training leaves
    assert sorted(p.relative_to(art).as_posix() for p in art.rglob("*") if p.is_file()) == sorted(
        [runs.MANIFEST, BACKBONE, CONFIG_JSON, LOG_CSV, *SNAPSHOTS])
    assert (art / LOG_CSV).read_bytes() == (path / LOG_CSV).read_bytes()
    assert (art / SNAPSHOTS[-1]).read_bytes() == (art / BACKBONE).read_bytes()
    made = (art / SNAPSHOTS[0]).read_bytes()  # the random init, made from code: the digest of what the run kept
    assert hashlib.sha256(made).hexdigest() == entry.generated[SNAPSHOTS[0]]["sha256"]
    assert torch.equal(_outputs(release.load_artifact_backbone(art, snapshot=0), x := torch.randn(1, 3, 32, 32)),
                       _outputs(zoo.initial_backbone(spec), x))
    m = runs.read_manifest(art)
    assert m["source"] == "release" and m["key"] == entry.key and m["release"]["name"] == "dino_world"
    assert m["training"]["steps"] == 4 and m["timings"]["build_seconds"] == entry.train_seconds
    assert m["machine"] == entry.machine and m["metrics"] == METRICS and "machine" in m["materialised"]

    x = torch.randn(2, 3, 32, 48)
    original = _teacher(path / CHECKPOINT)
    loaded = release.load_backbone(art)
    assert not loaded.training
    assert torch.equal(_outputs(loaded, x), _outputs(original, x))  # fp32: bit-exact
    assert torch.equal(_outputs(release.load_artifact_backbone(art), x), _outputs(original, x))
    # a materialised artifact releases again into the same bytes and provenance
    again = release.export_artifact(art, "dino_world_again", "smoke", METRICS, dtype="float32")
    assert again.files == entry.files and again.commit == entry.commit and again.steps == entry.steps

    # the zoo's resolution: the run cache now holds the key, so nothing trains
    def no_training(*a, **k):
        raise AssertionError("trained although the released model is in the cache")

    monkeypatch.setattr(zoo, "train_dino", no_training)
    assert zoo.train_cached(spec) == art
    assert release.materialise(entry) == art  # an existing artifact is returned as is


def test_fp16_release_is_close_and_snapshots_round_trip(trained, weights):
    _, path = trained
    entry = release.export_artifact(path, "dino_world", "smoke", METRICS)  # float16
    x = torch.randn(2, 3, 32, 32)
    out, ref = _outputs(release.load_backbone(entry.folder), x), _outputs(_teacher(path / CHECKPOINT), x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=2e-2)

    art = release.materialise(entry)
    kept = release.snapshot_paths(art)
    assert list(kept) == list(SNAP_STEPS) and all(p.suffix == ".safetensors" for p in kept.values())
    fp32 = release.export_artifact(path, "dino_world_fp32", "smoke", METRICS, dtype="float32")
    assert fp32.copies == {SNAPSHOTS[-1]: BACKBONE}  # the last snapshot is the final backbone, stored once
    art32 = release.materialise(fp32, cache_root=weights.parent / "fp32-cache")
    for step, rel in zip(SNAP_STEPS, SNAPSHOTS):
        snap = release.load_artifact_backbone(art32, snapshot=step)
        assert torch.equal(_outputs(snap, x), _outputs(_teacher(snapshot_path(path, step)), x))
        torch.testing.assert_close(_outputs(release.load_artifact_backbone(art, snapshot=step), x),
                                   _outputs(snap, x), rtol=0, atol=2e-2)
    with pytest.raises(KeyError, match="no snapshot of step 3"):
        release.load_artifact_backbone(art, snapshot=3)


def test_an_entry_without_snapshots_materialises_and_the_zoo_finds_none(trained, weights, monkeypatch):
    spec, path = trained
    entry = release.export_artifact(path, "dino_world__seed1", "smoke", METRICS, snapshots=False)
    assert sorted(entry.files) == sorted([BACKBONE, CONFIG_JSON, LOG_GZ]) and entry.copies is None
    assert not (entry.folder / "snapshots").exists()
    with_snaps = release.export_artifact(path, "dino_world__seed1", "smoke", METRICS)  # the folder is replaced
    assert sorted(with_snaps.files) == sorted([BACKBONE, CONFIG_JSON, LOG_GZ, *STORED_SNAPSHOTS])
    again = release.export_artifact(path, "dino_world__seed1", "smoke", METRICS, snapshots=False)
    assert again.files == entry.files and not (again.folder / "snapshots").exists()
    assert [e.name for e in release.entries()] == ["dino_world__seed1"]

    monkeypatch.setattr(zoo, "train_dino", lambda *a, **k: pytest.fail("trained although the model is released"))
    model, card = zoo.get("dino_world", "smoke", progress=False)
    assert card.source == "released" and zoo.snapshots(card) == {}
    assert release.snapshot_paths(card.path) == {} and not model.training
    with pytest.raises(KeyError, match="no snapshot of step 0"):
        release.load_artifact_backbone(card.path, snapshot=0)


def test_the_seed_variants_of_a_recipe_are_released_without_snapshots():
    snaps = {name: zoo.release_snapshots(name, "cpu") for name, _ in zoo.catalogue("cpu")}
    seeds = {f"{n}__seed{s}" for n in ("dino_world", "dino_driving") for s in zoo.recipe(n, "cpu").release_seeds}
    assert {"dino_world__seed1", "dino_world__seed2"} <= seeds <= set(snaps)
    assert {n for n, keep in snaps.items() if not keep} == seeds
    assert snaps["dino_world"] and snaps["dino_driving"]
    assert zoo.release_snapshots("dino_world__seed7", "cpu") and zoo.release_snapshots("nosuch__seed1", "cpu")


def test_a_corrupted_or_missing_file_is_a_clear_error_never_a_retrain(trained, weights):
    _, path = trained
    entry = release.export_artifact(path, "dino_world", "smoke", METRICS)
    target = entry.folder / BACKBONE
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01  # flip one bit
    target.write_bytes(bytes(data))
    with pytest.raises(ReleaseIntegrityError) as err:
        release.verify(entry)
    assert err.value.path == target and err.value.expected == entry.files[BACKBONE]
    assert str(target) in str(err.value) and entry.files[BACKBONE] in str(err.value)
    assert err.value.actual in str(err.value) and err.value.actual != err.value.expected
    with pytest.raises(ReleaseIntegrityError, match="backbone.safetensors"):
        release.materialise(entry)
    assert not (runs.cache_root() / "dino" / entry.key).exists()

    release.export_artifact(path, "dino_world", "smoke", METRICS)  # repaired by releasing again
    entry = release.verify(release.find(entry.key))
    (entry.folder / SNAPSHOTS[1]).unlink()
    with pytest.raises(ReleaseIntegrityError, match="step_000002.safetensors: missing") as err:
        release.verify(entry)
    assert err.value.actual is None

    # a materialised artifact checks its backbone at load time too
    release.export_artifact(path, "dino_world", "smoke", METRICS)
    art = release.materialise(release.find(entry.key))
    data = bytearray((art / BACKBONE).read_bytes())
    data[-1] ^= 0x01
    (art / BACKBONE).write_bytes(bytes(data))
    with pytest.raises(ReleaseIntegrityError, match=str(art / BACKBONE)):
        release.load_backbone(art)


def test_never_overwrites_a_file_it_did_not_write(trained, weights):
    _, path = trained
    folder = weights / "dino_world"
    folder.mkdir(parents=True)
    (folder / BACKBONE).write_bytes(b"someone else's weights")
    with pytest.raises(FileExistsError, match="backbone.safetensors") as err:
        release.export_artifact(path, "dino_world", "smoke", METRICS)
    assert "nothing was changed" in str(err.value)
    assert (folder / BACKBONE).read_bytes() == b"someone else's weights"
    assert release.entries() == [] and not (weights / "manifest.json").exists()
    assert sorted(p.name for p in weights.iterdir()) == ["dino_world"]  # no temporary folder left

    (folder / BACKBONE).unlink()
    entry = release.export_artifact(path, "dino_world", "smoke", METRICS)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt"):
        release.export_artifact(path, "dino_world", "smoke", {"corloc_lost": 1.0})
    assert (folder / "notes.txt").read_text() == "mine" and release.entries() == [entry]

    (folder / "notes.txt").unlink()
    new = release.export_artifact(path, "dino_world", "smoke", {"corloc_lost": 1.0})
    assert release.entries() == [new] and new.metrics == {"corloc_lost": 1.0}  # replaced, not duplicated
    with pytest.raises(ValueError, match="bad entry name"):
        release.export_artifact(path, "../escape", "smoke", METRICS)


def test_a_release_of_another_library_version_is_stale(trained, weights, monkeypatch):
    import dinosal

    entry = release.export_artifact(trained[1], "dino_world", "smoke", METRICS)
    monkeypatch.setattr(dinosal, "__version__", "999.0")  # the key holds the library version
    with pytest.raises(ValueError, match="stale"):
        release.materialise(entry)


def test_compare_sets_released_beside_retrained():
    table = release.compare({"a": {"corloc": 0.5, "mass": 0.2}, "b": {"corloc": 0.1}},
                            {"a": {"corloc": 0.75, "mass": 0.2}, "c": {"corloc": 0.3}})
    assert list(table.columns) == ["model", "metric", "released", "retrained", "difference"]
    rows = {(r.model, r.metric): r for r in table.itertuples()}
    assert rows[("a", "corloc")].difference == 0.25 and rows[("a", "mass")].difference == 0.0
    assert rows[("b", "corloc")].retrained != rows[("b", "corloc")].retrained  # NaN: not retrained
    assert len(table) == 4


def test_command_lines_release_verify_and_weights(trained, weights, monkeypatch, capsys):
    from dinosal.cli import release_main

    spec, path = trained
    monkeypatch.setattr(run_scores, "catalogue", lambda profile: [])  # no score table here (test_release_scores)
    monkeypatch.delattr(zoo, "catalogue", raising=False)
    assert release_main(["release", "--from-cache", "--profile", "smoke"]) == 1
    assert "zoo.catalogue" in capsys.readouterr().err

    monkeypatch.setattr(zoo, "catalogue", lambda profile: [("dino_world", spec)], raising=False)
    assert release_main(["release", "--from-cache", "--profile", "smoke"]) == 1  # not in this run cache
    assert "make weights" in capsys.readouterr().err

    monkeypatch.setenv(runs.CACHE_ENV, str(path.parent.parent))  # the cache that holds the trained model
    assert release_main(["release", "--from-cache", "--profile", "smoke"]) == 0
    [entry] = release.entries()
    measured = runs.read_manifest(path)["metrics"]  # zoo.held_out_metrics, right after training
    assert set(measured) >= {"corloc", "attn_ratio", "pointing"}
    assert entry.name == "dino_world" and entry.key == zoo.model_key(spec) and entry.metrics == measured
    assert release_main(["verify"]) == 0
    assert "1 of 1 released models verified" in capsys.readouterr().out

    # weights: the cached model is kept (trained here), its metrics printed beside the released ones;
    # a manifest without metrics falls back on zoo.held_out_metrics(spec, model)
    manifest = runs.read_manifest(path)
    runs.atomic_write_text(path / runs.MANIFEST, json.dumps({k: v for k, v in manifest.items() if k != "metrics"}))
    monkeypatch.setattr(zoo, "held_out_metrics", lambda spec, model: {"corloc": measured["corloc"] + 0.25})
    try:
        assert release_main(["weights", "--profile", "smoke"]) == 0
    finally:
        runs.atomic_write_text(path / runs.MANIFEST, json.dumps(manifest))
    out = capsys.readouterr().out
    assert "dino_world" in out and f"{measured['corloc']:.4f}" in out and "0.2500" in out

    # weights replaces an artifact that came from the release by a training
    monkeypatch.setenv(runs.CACHE_ENV, str(weights.parent / "materialised-cache"))
    art = release.materialise(entry)
    assert not (art / CHECKPOINT).exists()
    assert release_main(["weights", "--profile", "smoke"]) == 0
    assert "retraining" in capsys.readouterr().out
    assert (art / CHECKPOINT).is_file() and "source" not in runs.read_manifest(art)

    (entry.folder / LOG_GZ).write_text("step,loss\n")
    assert release_main(["verify"]) == 1
    assert "log.csv" in capsys.readouterr().out


def test_concurrent_exports_keep_every_entry(trained, weights):
    import threading

    names = [f"model_{i}" for i in range(4)]
    errors = []

    def export(name):
        try:
            release.export_artifact(trained[1], name, "smoke", METRICS)
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=export, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and [e.name for e in release.entries()] == names  # the manifest lost no entry
    assert sorted(p.name for p in weights.iterdir()) == sorted(names + ["manifest.json"])  # no temporary folder
    assert all(release.verify(e) for e in release.entries())


# ------------------------------------------------- the repository's own release


@pytest.mark.parametrize("name, spec", zoo.catalogue("cpu"), ids=[n for n, _ in zoo.catalogue("cpu")])
def test_every_cpu_model_is_released_with_the_recipes_current_key(name, spec, monkeypatch):
    """A recipe change without its new checkpoint fails here: retrain
    (``make weights``) and release (``make release``)."""
    monkeypatch.delenv(release.WEIGHTS_ENV, raising=False)
    key = zoo.model_key(spec)
    entry = release.find(key)
    assert entry is not None, f"{name}: no released checkpoint with key {key} in {release.release_root()}"
    assert entry.name == name and entry.profile == "cpu"
    release.verify(entry)  # every file's sha256
    assert entry.steps == spec.dino.epochs * spec.dino.steps_per_epoch
    assert set(entry.metrics) >= {"corloc", "attn_ratio", "pointing"}


RETRAIN_STEPS = 20
RETRAIN_RTOL = 1e-4  # float rounding under another thread schedule first shows near step 28, in the 6th digit


def test_released_log_came_from_this_code(tmp_path, monkeypatch):
    """The first steps of the released ``dino_world`` (cpu), retrained here
    with its seed, give the released log's losses."""
    import pandas as pd

    from dinosal.train.dino import train_dino

    monkeypatch.delenv(release.WEIGHTS_ENV, raising=False)
    spec = dict(zoo.catalogue("cpu"))["dino_world"]
    entry = release.find(zoo.model_key(spec))
    released = pd.read_csv(entry.folder / LOG_GZ)
    cfg = spec.dino.replace(stop_at_step=RETRAIN_STEPS, progress=False, threads=1, num_workers=0,
                            snapshot_steps=())
    # snapshot_steps only decides which teachers are kept on disk, not the run (run-control in effect)
    result = train_dino(cfg, zoo.training_set(spec), run_dir=tmp_path / "run")
    again = pd.DataFrame(result.log)
    assert len(again) == RETRAIN_STEPS
    for col in ("loss", "teacher_entropy", "kl"):
        assert again[col].to_numpy() == pytest.approx(released[col].to_numpy()[:RETRAIN_STEPS], rel=RETRAIN_RTOL), col


def test_a_step_zero_snapshot_the_library_no_longer_draws_is_refused(trained, weights):
    """The step-0 snapshot is released as 'made from code' with the digest of the one the run kept: when the
    library's initialisation no longer gives those bytes, materialising names the file and says so."""
    _, path = trained
    entry = release.export_artifact(path, "dino_world", "smoke", METRICS)
    doc = json.loads((weights / "manifest.json").read_text())
    doc["entries"][0]["generated"][SNAPSHOTS[0]]["sha256"] = "0" * 64
    (weights / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="initialisation changed"):
        release.materialise(release.entries()[0])
    assert not (runs.cache_root() / "dino" / entry.key).exists()
    doc["entries"][0]["generated"][SNAPSHOTS[0]]["from"] = "somewhere"
    (weights / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="generated"):
        release.verify(release.entries()[0])
