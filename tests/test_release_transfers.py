"""Released transfer models: catalogue, export, materialise, load, integrity, command line.

A smoke-size transfer (``random__ce_vehicles``, transfer seed 0: no DINO parent
to train) is trained once per module into a temporary run cache
(``$DINOSAL_CACHE``); every test releases it into its own temporary release
folder (``$DINOSAL_WEIGHTS``) and resolves it from a fresh run cache.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch

from dinosal import release, run_scores, runs, transfers, zoo
from dinosal.release import CLASSIFIER, CONFIG_JSON, ReleaseIntegrityError
from dinosal.train.transfer import CHECKPOINT, LOG_CSV, load_transfer

NAME, SEED = "random__ce_vehicles", 0
RELEASED = f"{NAME}__s{SEED}"
SNAP_STEPS = (0, 2, 4)  # the smoke fine-tune's snapshot_steps
SNAPSHOTS = [f"snapshots/step_{s:06d}.safetensors" for s in SNAP_STEPS]
STORED_SNAPSHOTS = SNAPSHOTS[:-1]  # the last (step 4 of 4) is the final classifier: stored once, a copy
LOG_GZ = release.released_path(LOG_CSV)


def _smoke_spec(name: str):
    return transfers.spec(name, "smoke", seed=SEED, progress=False, threads=1)


def _spec():
    return _smoke_spec(NAME)


def _train_in_a_fresh_cache(tmp_path_factory, name: str, with_parent: bool = False):
    """``(parent artifact or None, transfer artifact)`` trained into a new run cache, with no release."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(runs.CACHE_ENV, str(cache))
        mp.setenv(release.WEIGHTS_ENV, str(cache / "no-release"))
        parent = zoo.train_cached(zoo.train_spec(zoo.recipe("dino_world", "smoke"), progress=False)) if with_parent else None
        return parent, transfers.train_cached(_smoke_spec(name))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The cache artifact of the smoke ``random__ce_vehicles`` fine-tune, seed 0."""
    path = _train_in_a_fresh_cache(tmp_path_factory, NAME)[1]
    assert (path / CHECKPOINT).is_file() and (path / LOG_CSV).is_file()
    return path


@pytest.fixture
def weights(tmp_path, monkeypatch):
    root = tmp_path / "weights"
    monkeypatch.setenv(release.WEIGHTS_ENV, str(root))
    monkeypatch.setenv(runs.CACHE_ENV, str(tmp_path / "fresh-cache"))  # nothing trained there
    return root


@pytest.fixture
def no_training(monkeypatch):
    from dinosal import transfers as tr

    monkeypatch.setattr(tr, "train_transfer", lambda *a, **k: pytest.fail("trained although the model is released"))


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_the_catalogue_is_the_chapters_runs_with_plain_unique_names():
    for profile in ("smoke", "cpu"):
        cat = transfers.catalogue(profile)
        names = [n for n, _ in cat]
        chapter = len(transfers.names(profile)) * 2  # TransferParams.seeds: 0, 1
        # then the findings figure's arms the transfer chapter lacks (the box-supervised fine-tune), seed 0;
        # every other run of the study is released as a score table (run_scores.catalogue)
        assert len(names) == len(set(names)) == chapter + 1
        assert names[-1] == "dino_world__box_driving__s0"
        assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) for n in names)
        assert not set(names) & {n for n, _ in zoo.catalogue(profile)}
        for n, s in cat:
            assert n == f"{s.name}__s{s.config.seed}" and s.parent_seed is None and s.config.seed in (0, 1)
        assert [n for n in names if transfers.release_snapshots(n, profile)] == ["dino_world__bce_driving__s0"]
    cpu = dict(transfers.catalogue("cpu"))["dino_world__bce_driving__probe__s1"]
    assert transfers.model_key(cpu) == transfers.model_key(transfers.spec("dino_world__bce_driving__probe", "cpu",
                                                                          seed=1))
    assert transfers.catalogue("paper") == []  # real data: not released from here
    assert transfers.release_name(transfers.spec(NAME, "smoke", parent_seed=3, seed=1)) == f"{NAME}__p3__s1"


def test_round_trip_loads_the_same_classifier_class_names_and_snapshots(trained, weights, no_training):
    entry = release.export_artifact(trained, RELEASED, "smoke")  # float16
    manifest = runs.read_manifest(trained)
    assert entry.kind == "transfer" and entry.key == transfers.model_key(_spec())
    assert sorted(entry.files) == sorted([CLASSIFIER, CONFIG_JSON, LOG_GZ, *STORED_SNAPSHOTS]) == sorted(_files(entry.folder))
    assert entry.copies == {SNAPSHOTS[-1]: CLASSIFIER}
    assert entry.transfer == manifest["transfer"] and entry.metrics == manifest["metrics"]
    assert entry.steps == 4 and json.loads((entry.folder / CONFIG_JSON).read_text()) == manifest["config"]
    assert release.find(entry.key, kind="transfer") == entry and release.find(entry.key) is None  # kind dino
    row = json.loads((weights / "manifest.json").read_text())["entries"][0]
    assert row["transfer"]["class_names"] == list(manifest["transfer"]["class_names"])

    from safetensors.torch import load_file

    tensors = load_file(entry.folder / CLASSIFIER)
    assert {k.split(".")[0] for k in tensors} == {"backbone", "head"}
    assert {v.dtype for v in tensors.values() if v.is_floating_point()} == {torch.float16}

    trained_ck = load_transfer(trained / CHECKPOINT)
    model, card = transfers.load(_spec())  # fresh cache: run cache -> release (sha256 checked) -> train
    assert card.source == "released" and card.path == str(transfers.artifact_dir(_spec()))
    assert runs.read_manifest(card.path)["source"] == "release"
    assert card.class_names == trained_ck.class_names and card.metrics == manifest["metrics"] and card.steps == 4
    assert card.train_seconds == manifest["timings"]["build_seconds"] and not model.training
    ref = trained_ck.model.state_dict()
    got = model.state_dict()
    assert set(got) == set(ref)
    for k, v in ref.items():
        torch.testing.assert_close(got[k], v.half().float(), rtol=0, atol=0)  # exactly the float16 of the weights
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), trained_ck.model(x), rtol=0, atol=2e-2)

    kept = transfers.snapshots(card)
    assert list(kept) == list(SNAP_STEPS) and all(p.suffix == ".safetensors" for p in kept.values())
    for step in SNAP_STEPS:
        snap = transfers.load_snapshot(card, step)
        want = load_transfer(trained / f"snapshots/step_{step:06d}.pth").model
        assert all(torch.equal(snap.state_dict()[k], v.half().float()) for k, v in want.state_dict().items())
    with pytest.raises(KeyError, match="step 3"):
        transfers.load_snapshot(card, 3)

    fp32 = release.export_artifact(trained, "fp32", "smoke", dtype="float32")
    ck = release.load_classifier(fp32.folder / CLASSIFIER)
    assert ck.class_names == trained_ck.class_names and ck.config == trained_ck.config and ck.step == 4
    assert all(torch.equal(ck.model.state_dict()[k], v) for k, v in ref.items())  # float32: bit-exact


def test_a_corrupted_released_transfer_file_is_named_never_retrained(trained, weights, no_training):
    entry = release.export_artifact(trained, RELEASED, "smoke")
    for rel in (CLASSIFIER, SNAPSHOTS[1]):
        target = entry.folder / rel
        good = target.read_bytes()
        data = bytearray(good)
        data[len(data) // 2] ^= 0x01
        target.write_bytes(bytes(data))
        with pytest.raises(ReleaseIntegrityError, match=re.escape(rel)) as err:
            release.verify(entry)
        assert err.value.path == target and err.value.expected == entry.files[rel]
        with pytest.raises(ReleaseIntegrityError, match=re.escape(str(target))):
            transfers.load(_spec())
        assert not transfers.artifact_dir(_spec()).exists()
        target.write_bytes(good)

    # a materialised artifact checks its files at load time too
    model, card = transfers.load(_spec())
    art = transfers.artifact_dir(_spec())
    data = bytearray((art / CLASSIFIER).read_bytes())
    data[-1] ^= 0x01
    (art / CLASSIFIER).write_bytes(bytes(data))
    with pytest.raises(ReleaseIntegrityError, match=re.escape(str(art / CLASSIFIER))):
        transfers.load(_spec())


def test_re_release_gives_no_diff_and_never_touches_foreign_files(trained, weights):
    entry = release.export_artifact(trained, RELEASED, "smoke")
    before = _files(weights)
    assert release.export_artifact(trained, RELEASED, "smoke") == entry
    assert _files(weights) == before
    # the materialised artifact releases into the same bytes and provenance
    art = release.materialise(entry)
    again = release.export_artifact(art, RELEASED, "smoke")
    assert again.created == entry.created and _files(weights) == before

    (entry.folder / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt"):
        release.export_artifact(trained, RELEASED, "smoke", snapshots=False)
    assert (entry.folder / "notes.txt").read_text() == "mine" and release.entries() == [entry]
    (entry.folder / "notes.txt").unlink()

    bare = release.export_artifact(trained, RELEASED, "smoke", snapshots=False)
    assert sorted(bare.files) == sorted([CLASSIFIER, CONFIG_JSON, LOG_GZ])
    assert not (bare.folder / "snapshots").exists() and release.entries() == [bare]


def test_a_transfer_released_without_snapshots_has_none(trained, weights, no_training):
    release.export_artifact(trained, RELEASED, "smoke", snapshots=False)
    model, card = transfers.load(_spec())
    assert card.source == "released" and transfers.snapshots(card) == {} and not model.training
    with pytest.raises(KeyError, match="kept no snapshot"):
        transfers.load_snapshot(card, 0)


def test_command_line_releases_the_cached_transfers_and_names_the_missing(trained, weights, monkeypatch, capsys):
    from dinosal.cli import release_main

    monkeypatch.setattr(zoo, "catalogue", lambda profile: [])  # no DINO model to release here
    monkeypatch.setattr(run_scores, "catalogue", lambda profile: [])  # nor a score table (test_release_scores)
    monkeypatch.setenv(runs.CACHE_ENV, str(trained.parent.parent))  # the cache that holds the transfer
    assert transfers.model_key(dict(transfers.catalogue("smoke"))[RELEASED]) == transfers.model_key(_spec())
    assert release_main(["release", "--from-cache", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    [entry] = release.entries()
    assert entry.name == RELEASED and entry.kind == "transfer" and entry.profile == "smoke"
    assert sorted(entry.files) == sorted([CLASSIFIER, CONFIG_JSON, LOG_GZ])  # not the strip's run: no snapshots
    missing = [n for n, _ in transfers.catalogue("smoke") if n != RELEASED]
    for name in missing:
        assert f"{name}: not in the run cache" in out
    assert "dinosal.cli transfers --profile smoke" in out
    assert f"{len(missing)} of {len(missing) + 1} transfers not in the run cache" in out
    assert release_main(["verify"]) == 0
    assert "1 of 1 released models verified" in capsys.readouterr().out

    assert release_main(["release", "--from-cache", "--profile", "smoke", "--names", "nosuch__s0"]) == 1
    assert "nosuch__s0" in capsys.readouterr().err
    before = _files(weights)
    assert release_main(["release", "--from-cache", "--profile", "smoke", "--names", RELEASED]) == 0
    assert _files(weights) == before  # released again: no diff


def test_every_cpu_transfer_of_the_study_and_its_grids_are_released_with_their_current_keys(monkeypatch):
    """A recipe change without its retrained, re-released transfers fails here (as for the DINO models)."""
    monkeypatch.delenv(release.WEIGHTS_ENV, raising=False)
    released = {e.name: e for e in release.entries("cpu")}
    for name, s in transfers.catalogue("cpu"):
        assert name in released, f"{name}: not released (python -m dinosal.cli transfers, then make release)"
        assert released[name].key == transfers.model_key(s), f"{name}: released under another key; retrain it"
    for name, path in transfers.selection_catalogue("cpu"):
        assert name in released and released[name].key == path.name, f"{name}: grid not released with its key"


# ---------------------------------------------------------------- linear probes: released head-only

PROBE = "dino_world__ce_vehicles__probe"
PROBE_RELEASED = f"{PROBE}__s{SEED}"


def _probe_spec():
    return _smoke_spec(PROBE)


@pytest.fixture(scope="module")
def probe_trained(tmp_path_factory):
    """``(parent artifact, probe artifact)``: the smoke dino_world and its ce_vehicles probe, seed 0."""
    parent, probe = _train_in_a_fresh_cache(tmp_path_factory, PROBE, with_parent=True)
    assert (probe / CHECKPOINT).is_file() and runs.read_manifest(probe)["transfer"]["mode"] == "probe"
    return parent, probe


@pytest.fixture
def no_parent_training(no_training, monkeypatch):
    monkeypatch.setattr(zoo, "train_dino", lambda *a, **k: pytest.fail("trained the parent although it is released"))


def _release_probe(probe_trained, **kw):
    """Release the parent (float16, as the cpu release) and the probe; ``(parent entry, probe entry)``."""
    parent, probe = probe_trained
    return release.export_artifact(parent, "dino_world", "smoke"), release.export_artifact(probe, PROBE_RELEASED,
                                                                                           "smoke", **kw)


def test_a_probe_is_released_head_only_and_loads_as_the_whole_release(probe_trained, weights, no_parent_training):
    _, probe = probe_trained
    parent_entry, entry = _release_probe(probe_trained)
    whole = release.export_artifact(probe, "whole", "smoke", head_only=False)  # what the release held before
    assert entry.head_only and not whole.head_only and whole.backbone is None
    assert entry.backbone["from"] == "parent" and sorted(entry.files) == sorted([CLASSIFIER, CONFIG_JSON, LOG_GZ])
    assert entry.size_bytes < whole.size_bytes / 4
    row = next(r for r in json.loads((weights / "manifest.json").read_text())["entries"] if r["name"] == entry.name)
    assert row["backbone"] == entry.backbone and "backbone" not in next(
        r for r in json.loads((weights / "manifest.json").read_text())["entries"] if r["name"] == "whole")

    from safetensors import safe_open

    with safe_open(str(entry.folder / CLASSIFIER), "pt") as f:
        assert {k.split(".")[0] for k in f.keys()} == {"head"}
        meta = json.loads(f.metadata()["dinosal"])
    assert meta["config"]["mode"] == "probe" and meta["step"] == entry.steps and meta["class_names"]
    assert meta["backbone"]["sha256"] == entry.backbone["sha256"]
    with pytest.raises(ValueError, match="only the head of a linear probe"):
        release.load_classifier(entry.folder / CLASSIFIER)
    with pytest.raises(ValueError, match="backbone="):
        release.materialise(entry)  # the parent's backbone is needed

    # a fresh clone: the probe's head and the parent, both released; nothing trains
    model, card = transfers.load(_probe_spec())
    art = transfers.artifact_dir(_probe_spec())
    assert card.source == "released" and card.path == str(art)
    m = runs.read_manifest(art)
    assert m["source"] == "release" and m["rebuilt"]["backbone"]["source"] == "released"
    assert m["rebuilt"]["backbone"]["matches_release"] and m["transfer"] == entry.transfer
    # the very file the whole release holds, and the classifier it gives
    assert (art / CLASSIFIER).read_bytes() == (whole.folder / CLASSIFIER).read_bytes()
    ref = release.load_classifier(whole.folder / CLASSIFIER).model.state_dict()
    got = model.state_dict()
    assert set(got) == set(ref) and all(torch.equal(got[k], v) for k, v in ref.items())
    # the probe's backbone is its (released, float16) parent's bit for bit
    parent, source = transfers.parent_backbone(_probe_spec())
    assert source == "released" and set(parent.state_dict()) == {k[len("backbone."):] for k in got
                                                                 if k.startswith("backbone.")}
    assert all(torch.equal(v, model.backbone.state_dict()[k]) for k, v in parent.state_dict().items())
    assert release.backbone_digest(parent.state_dict(), "float16") == entry.backbone["sha256"]
    trained = load_transfer(probe_trained[1] / CHECKPOINT).model.state_dict()
    assert all(torch.equal(got[k], v.half().float()) for k, v in trained.items())
    assert not any(p.requires_grad for p in model.backbone.parameters())

    # a materialised probe releases again into the same bytes
    before = _files(entry.folder)
    assert release.export_artifact(art, PROBE_RELEASED, "smoke") == entry and _files(entry.folder) == before


def test_a_corrupted_probe_head_is_named_never_retrained(probe_trained, weights, no_parent_training):
    _, entry = _release_probe(probe_trained)
    target = entry.folder / CLASSIFIER
    good = target.read_bytes()
    data = bytearray(good)
    data[-2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(ReleaseIntegrityError, match=re.escape(str(target))):
        transfers.load(_probe_spec())
    assert not transfers.artifact_dir(_probe_spec()).exists()
    target.write_bytes(good)

    transfers.load(_probe_spec())  # the rebuilt file is checked at load time too
    art = transfers.artifact_dir(_probe_spec())
    data = bytearray((art / CLASSIFIER).read_bytes())
    data[-1] ^= 0x01
    (art / CLASSIFIER).write_bytes(bytes(data))
    with pytest.raises(ReleaseIntegrityError, match=re.escape(str(art / CLASSIFIER))):
        transfers.load(_probe_spec())


def test_a_probe_on_another_parent_backbone_is_rebuilt_with_a_warning(probe_trained, weights, no_parent_training):
    _, entry = _release_probe(probe_trained)
    parent, _ = transfers.parent_backbone(_probe_spec())
    moved = {k: v + 1e-2 if k == "cls_token" else v for k, v in parent.state_dict().items()}
    with pytest.warns(UserWarning, match="not the one the released head was trained on"):
        art = release.materialise(entry, backbone=lambda: (moved, "run cache"))
    m = runs.read_manifest(art)
    assert m["rebuilt"]["backbone"]["matches_release"] is False and m["rebuilt"]["backbone"]["source"] == "run cache"
    got = release.load_artifact_classifier(art).model.backbone.state_dict()
    assert torch.equal(got["cls_token"], moved["cls_token"].half().float())


def test_only_a_probe_whose_backbone_did_not_move_is_released_head_only(probe_trained, trained, weights, tmp_path):
    with pytest.raises(ValueError, match="only a probe can be released head-only"):
        release.export_artifact(trained, RELEASED, "smoke", head_only=True)  # a fine-tune
    _, probe = probe_trained
    copy = tmp_path / "moved"
    shutil.copytree(probe, copy, ignore=shutil.ignore_patterns("snapshots"))
    ck = torch.load(copy / CHECKPOINT, map_location="cpu", weights_only=True)
    ck["model"]["backbone.cls_token"] += 1.0
    torch.save(ck, copy / CHECKPOINT)
    with pytest.raises(ValueError, match="not the one it started from"):
        release.export_artifact(copy, PROBE_RELEASED, "smoke", snapshots=False)
    assert release.export_artifact(copy, PROBE_RELEASED, "smoke", snapshots=False, head_only=False).backbone is None


def test_every_released_cpu_probe_is_its_head_and_its_parents_backbone_bit_for_bit(monkeypatch):
    """The release keeps a linear probe's head only: its frozen backbone is its parent's, released itself
    (a DINO parent, float16) or the seeded random init."""
    monkeypatch.delenv(release.WEIGHTS_ENV, raising=False)
    from safetensors.torch import load_file

    released = release.entries("cpu")
    by_key = {e.key: e for e in released if e.kind == "dino"}
    specs = {transfers.model_key(s): s for _, s in transfers.catalogue("cpu")}
    probes = [e for e in released if e.kind == "transfer" and e.transfer["mode"] == "probe"]
    assert probes and all(e.head_only for e in probes)
    for e in probes:
        assert {k.split(".")[0] for k in load_file(e.folder / CLASSIFIER)} == {"head"}, e.name
        parent = json.loads((e.folder / CONFIG_JSON).read_text())["parent"]
        if parent["kind"] == "dino":
            p = by_key[parent["identity"]["key"]]  # the parent is released
            state = load_file(p.folder / release.BACKBONE)
        else:
            assert parent["kind"] == "random" and e.key in specs, e.name
            state = transfers.parent_backbone(specs[e.key])[0].state_dict()
        assert release.backbone_digest(state, e.dtype) == e.backbone["sha256"], e.name
