"""Released validation grids: the tables of ``transfers.select`` (kind ``"transfer_selection"``).

Each grid is filled by a stub ``evaluate`` (no training) in a temporary run cache (``$DINOSAL_CACHE``),
released into a temporary release folder (``$DINOSAL_WEIGHTS``), and resolved again from an empty cache.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from dinosal import release, run_scores, runs, transfers, zoo
from dinosal.release import CONFIG_JSON, SELECTION_JSON, ReleaseIntegrityError

TASK, MODE = "bce_driving", "finetune"
GRID = "dino_world__bce_driving__s0__grid"


def _score(s):
    return {"map": s.config.lr * 100, "top1": 0.5}


def _no_grid(s):
    pytest.fail("ran the grid although its table is cached or released")


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _released(cache):
    """Run the smoke grid of TASK, release it, empty the run cache: ``(selection, entry)``."""
    sel = transfers.select(TASK, "smoke", MODE, evaluate=_score)
    entry = release.export_artifact(sel.path, GRID, "smoke")
    shutil.rmtree(cache)
    return sel, entry


def test_the_selection_catalogue_is_the_chapters_grids_with_plain_unique_names(dirs):
    for profile in ("smoke", "cpu"):
        cat = transfers.selection_catalogue(profile)
        names = [n for n, _ in cat]
        pairs = list(dict.fromkeys(transfers.parse(n)[1:] for n in transfers.names(profile)))
        assert len(names) == len(set(names)) == len(pairs) == 4  # bce_driving, ce_vehicles x finetune, probe
        assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) and n.endswith("__s0__grid") for n in names)
        others = {n for n, _ in zoo.catalogue(profile)} | {n for n, _ in transfers.catalogue(profile)}
        assert not set(names) & others
        for (task_name, mode), (name, path) in zip(pairs, cat):
            parent = transfers.task(task_name, profile).select_parent
            assert name == f"{parent}__{task_name}{'__probe' if mode == 'probe' else ''}__s0__grid"
            assert path.parent == runs.cache_root() / "transfer_selection"
    assert transfers.selection_catalogue("paper") == []  # real data: not released from here
    sel = transfers.select(TASK, "smoke", MODE, evaluate=_score)  # the chapter's call finds the catalogued table
    assert str(dict(transfers.selection_catalogue("smoke"))[GRID]) == sel.path


def test_round_trip_through_the_release_gives_the_same_selection(dirs):
    cache, root = dirs
    sel = transfers.select(TASK, "smoke", MODE, evaluate=_score)
    manifest, table = runs.read_manifest(sel.path), (Path(sel.path) / SELECTION_JSON).read_bytes()
    assert sel.best == {"lr": 4e-3, "epochs": 2}
    entry = release.export_artifact(sel.path, GRID, "smoke", dtype="float32")  # no tensors: dtype ignored
    assert entry.kind == "transfer_selection" and entry.key == manifest["key"] and entry.profile == "smoke"
    assert sorted(entry.files) == [CONFIG_JSON, SELECTION_JSON] == sorted(_files(entry.folder))
    assert entry.selection == manifest["selection"] and entry.transfer is None and entry.dtype == ""
    assert entry.commit == manifest["commit"] and (entry.folder / SELECTION_JSON).read_bytes() == table
    assert json.loads((entry.folder / CONFIG_JSON).read_text()) == manifest["config"]
    assert release.find(entry.key, kind="transfer_selection") == entry and release.find(entry.key) is None
    assert release.verify(entry) == entry
    row = json.loads((root / "manifest.json").read_text())["entries"][0]
    assert row["selection"]["best"] == manifest["selection"]["best"] and "transfer" not in row

    shutil.rmtree(cache)  # a fresh clone: an empty run cache, the release
    again = transfers.select(TASK, "smoke", MODE, only_cached=True)
    assert again == sel and again.rows == sel.rows and again.path == sel.path
    got = runs.read_manifest(again.path)
    assert got["source"] == "release" and got["selection"] == manifest["selection"] and got["key"] == manifest["key"]
    assert (cache / "transfer_selection" / entry.key / SELECTION_JSON).read_bytes() == table
    shutil.rmtree(cache)
    assert transfers.select(TASK, "smoke", MODE, evaluate=_no_grid) == sel  # before it would run the grid
    assert transfers.select("bce_driving_shuffled", "smoke", MODE, only_cached=True) == sel  # a control: its arm's


@pytest.mark.parametrize("rel", [SELECTION_JSON, CONFIG_JSON])
def test_a_corrupted_released_table_is_named_never_rerun(dirs, rel):
    cache, _ = dirs
    _, entry = _released(cache)
    target = entry.folder / rel
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    for kw in ({"only_cached": True}, {"evaluate": _no_grid}):
        with pytest.raises(ReleaseIntegrityError, match=re.escape(str(target))) as err:
            transfers.select(TASK, "smoke", MODE, **kw)
        assert err.value.path == target and err.value.expected == entry.files[rel]
        assert not (cache / "transfer_selection" / entry.key).exists()


def test_only_cached_without_cache_or_release_is_none(dirs):
    cache, _ = dirs
    assert transfers.select(TASK, "smoke", MODE, only_cached=True) is None
    assert transfers.select(TASK, "smoke", "probe", evaluate=_score) is not None
    release.export_artifact(transfers.select(TASK, "smoke", "probe", only_cached=True).path,
                            "dino_world__bce_driving__probe__s0__grid", "smoke")
    shutil.rmtree(cache)
    assert transfers.select(TASK, "smoke", MODE, only_cached=True) is None  # a release of another key
    assert transfers.select(TASK, "smoke", MODE, seed=1, only_cached=True) is None
    assert transfers.select(TASK, "smoke", "probe", only_cached=True) is not None


def test_re_release_gives_no_diff(dirs):
    cache, root = dirs
    sel, entry = _released(cache)
    before = _files(root)
    again = transfers.select(TASK, "smoke", MODE, only_cached=True)  # materialised from the release
    assert again == sel
    assert release.export_artifact(again.path, GRID, "smoke") == entry and _files(root) == before
    assert release.materialise(entry) == cache / "transfer_selection" / entry.key  # already there: as it is
    assert release.export_artifact(again.path, GRID, "smoke") == entry and _files(root) == before


def test_command_line_releases_the_cached_grids_and_names_the_missing(dirs, monkeypatch, capsys):
    from dinosal.cli import release_main

    cache, root = dirs
    monkeypatch.setattr(zoo, "catalogue", lambda profile: [])  # no DINO model to release here
    monkeypatch.setattr(run_scores, "catalogue", lambda profile: [])  # nor a score table (test_release_scores)
    sel = transfers.select(TASK, "smoke", MODE, evaluate=_score)
    assert release_main(["release", "--from-cache", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    [entry] = release.entries()
    assert entry.name == GRID and entry.kind == "transfer_selection" and entry.key == Path(sel.path).name
    missing = [n for n, _ in transfers.selection_catalogue("smoke") if n != GRID]
    for name in missing:
        assert f"{name}: the validation grid is not in the run cache" in out
    assert "dinosal.cli transfers --profile smoke --select" in out
    assert f"{len(missing)} of {len(missing) + 1} validation grids not in the run cache" in out
    assert release_main(["verify"]) == 0 and "1 of 1 released models verified" in capsys.readouterr().out

    before = _files(root)
    shutil.rmtree(cache)  # released again from the materialised table: no diff
    assert transfers.select(TASK, "smoke", MODE, only_cached=True) == sel
    assert release_main(["release", "--from-cache", "--profile", "smoke", "--names", GRID]) == 0
    assert _files(root) == before
    assert release_main(["release", "--from-cache", "--profile", "smoke"]) == 0 and _files(root) == before
