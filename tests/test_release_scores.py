"""Released score tables (kind ``"scores"``, :mod:`dinosal.run_scores`): export, find, materialise, integrity,
command line.

Each test writes its own score table (``scores.csv`` and a ``"scores"`` manifest block, through
:func:`dinosal.runs.cached`) into a temporary run cache (``$DINOSAL_CACHE``), releases it into a temporary
release folder (``$DINOSAL_WEIGHTS``) and resolves it again from an empty cache, as code does::

    if not cached and (entry := release.find(key, kind=SCORES_KIND)):
        release.materialise(entry)
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
from dataclasses import dataclass

import pytest

from dinosal import release, run_scores, runs, zoo
from dinosal.release import CONFIG_JSON, SCORES_CSV, SCORES_KIND, ReleaseIntegrityError

SCORES_GZ = release.released_path(SCORES_CSV)  # the release stores the table gzip-compressed

NAME = "dino_world__scores"
TABLE = b"image,q,lost_hit,share|attention|objects\n0,0.25,1,0.5\n1,0.125,0,0.375\n"
BLOCK = {"model": {"kind": "dino", "key": "0123456789abcdef"}, "n_images": 2, "columns": 4}


@dataclass(frozen=True)
class ScoreKeyForTest:
    """A stand-in for :class:`dinosal.run_scores.ScoreKey`: any frozen dataclass keys a run-cache artifact."""

    model_key: str
    n_images: int


KEY = ScoreKeyForTest("0123456789abcdef", 2)


def _table(key=KEY, block=BLOCK, table=TABLE):
    """The run-cache artifact of a score table: ``scores.csv`` and, unless None, a ``"scores"`` block."""
    def build(tmp):
        runs.atomic_write_bytes(tmp / SCORES_CSV, table)
        return {"scores": block, "commit": "abc123"} if block is not None else {}

    return runs.cached(SCORES_KIND, key, build)


def _no_build(tmp):
    pytest.fail("computed the table although it is cached or released")


def _resolve(key=KEY):
    """What :mod:`dinosal.run_scores` does: the run cache, then a released table of the key, then compute."""
    final = runs.cache_root() / SCORES_KIND / runs.config_key(SCORES_KIND, key)
    if not (final / runs.MANIFEST).is_file() and (entry := release.find(final.name, kind=SCORES_KIND)):
        release.materialise(entry)
    return runs.cached(SCORES_KIND, key, _no_build)


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_the_release_names_the_kind_and_file_as_run_scores():
    assert (release.SCORES_KIND, release.SCORES_CSV) == (run_scores.SCORES_KIND, run_scores.SCORES_CSV)
    assert release.ENTRY_FILE[SCORES_KIND] == SCORES_CSV == release.TABLE_FILE[SCORES_KIND]


def test_round_trip_through_the_release_gives_the_same_table(dirs):
    cache, root = dirs
    path = _table()
    manifest = runs.read_manifest(path)
    entry = release.export_artifact(path, NAME, "smoke", dtype="float32")  # no tensors: dtype ignored
    assert entry.kind == "scores" and entry.key == manifest["key"] == path.name and entry.profile == "smoke"
    assert sorted(entry.files) == [CONFIG_JSON, SCORES_GZ] == sorted(_files(entry.folder))
    assert gzip.decompress((entry.folder / SCORES_GZ).read_bytes()) == TABLE  # byte for byte
    assert json.loads((entry.folder / CONFIG_JSON).read_text()) == manifest["config"]
    assert entry.scores == BLOCK and entry.selection is None and entry.transfer is None and entry.backbone is None
    assert entry.dtype == "" and entry.commit == "abc123" and not entry.head_only
    assert release.find(entry.key, kind="scores") == entry and release.find(entry.key) is None
    assert release.find(entry.key, kind="transfer_selection") is None and release.verify(entry) == entry
    row = json.loads((root / "manifest.json").read_text())["entries"][0]
    assert row["scores"] == BLOCK and "selection" not in row and "backbone" not in row

    shutil.rmtree(cache)  # a fresh clone: an empty run cache, the release
    again = _resolve()
    assert again == cache / SCORES_KIND / entry.key and (again / SCORES_CSV).read_bytes() == TABLE
    got = runs.read_manifest(again)
    assert got["source"] == "release" and got["scores"] == BLOCK and got["key"] == entry.key
    assert got["config"] == manifest["config"] and got["release"]["name"] == NAME
    assert release.materialise(entry) == again  # already there: as it is
    assert _resolve() == again


def test_a_table_without_a_scores_block_is_released_without_one(dirs):
    cache, root = dirs
    entry = release.export_artifact(_table(block=None), NAME, "smoke")
    assert entry.scores is None and "scores" not in json.loads((root / "manifest.json").read_text())["entries"][0]
    shutil.rmtree(cache)
    assert "scores" not in runs.read_manifest(_resolve())


def test_an_artifact_without_its_table_is_not_released(dirs):
    path = _table()
    (path / SCORES_CSV).unlink()
    with pytest.raises(FileNotFoundError, match="no score table"):
        release.export_artifact(path, NAME, "smoke")
    assert release.entries() == []


@pytest.mark.parametrize("rel", [SCORES_GZ, CONFIG_JSON])
def test_a_corrupted_released_table_is_named_never_recomputed(dirs, rel):
    cache, _ = dirs
    entry = release.export_artifact(_table(), NAME, "smoke")
    shutil.rmtree(cache)
    target = entry.folder / rel
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(ReleaseIntegrityError, match=re.escape(str(target))) as err:
        _resolve()
    assert err.value.path == target and err.value.expected == entry.files[rel]
    assert not (cache / SCORES_KIND / entry.key).exists()
    target.unlink()
    with pytest.raises(ReleaseIntegrityError, match="missing"):
        release.materialise(entry)


def test_re_release_gives_no_diff(dirs):
    cache, root = dirs
    entry = release.export_artifact(_table(), NAME, "smoke")
    before = _files(root)
    assert release.export_artifact(_table(), NAME, "smoke") == entry and _files(root) == before
    shutil.rmtree(cache)
    art = _resolve()  # materialised from the release
    assert release.export_artifact(art, NAME, "smoke") == entry and _files(root) == before


def test_command_line_releases_the_cached_tables_and_names_the_missing(dirs, monkeypatch, capsys):
    from dinosal.cli import release_main

    cache, root = dirs
    path = _table()
    unrun = runs.cache_root() / SCORES_KIND / runs.config_key(SCORES_KIND, ScoreKeyForTest("f" * 16, 2))
    monkeypatch.setattr(zoo, "catalogue", lambda profile: [])  # no DINO model to release here
    monkeypatch.setattr(run_scores, "catalogue", lambda profile: [(NAME, path), ("random__scores", unrun)])
    assert release_main(["release", "--from-cache", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    [entry] = release.entries()
    assert entry.name == NAME and entry.kind == "scores" and entry.key == path.name and entry.scores == BLOCK
    assert "random__scores: the score table is not in the run cache" in out
    assert "1 of 2 score tables not in the run cache, not released: random__scores" in out
    assert release_main(["verify"]) == 0 and "1 of 1 released models verified" in capsys.readouterr().out

    before = _files(root)
    shutil.rmtree(cache)  # released again from the materialised table: no diff
    _resolve()
    assert release_main(["release", "--from-cache", "--profile", "smoke", "--names", NAME]) == 0
    assert _files(root) == before
    assert release_main(["release", "--from-cache", "--profile", "smoke", "--names", "nosuch__scores"]) == 1
    assert "nosuch__scores" in capsys.readouterr().err

    (entry.folder / SCORES_GZ).write_bytes(gzip.compress(TABLE + b"2,0.5,1,0.25\n"))
    assert release_main(["verify"]) == 1 and "scores.csv" in capsys.readouterr().out


def test_withdraw_removes_only_what_the_entry_lists_and_never_a_changed_file(dirs):
    _, root = dirs
    entry = release.export_artifact(_table(), NAME, "smoke")
    other = release.export_artifact(_table(ScoreKeyForTest("fedcba9876543210", 2)), "other__scores", "smoke")
    (entry.folder / "notes.txt").write_text("somebody's file")
    gone = release.withdraw(NAME)
    assert gone.name == NAME and [e.name for e in release.entries()] == ["other__scores"]
    assert _files(entry.folder) == {"notes.txt": b"somebody's file"}  # a file it did not write stays
    (other.folder / SCORES_GZ).write_bytes(b"edited by hand\n")
    with pytest.raises(ReleaseIntegrityError):
        release.withdraw("other__scores")
    assert (other.folder / SCORES_GZ).is_file() and [e.name for e in release.entries()] == ["other__scores"]
    with pytest.raises(KeyError, match="nosuch"):
        release.withdraw("nosuch")


def test_every_cpu_score_table_of_the_study_is_released_with_its_current_key(monkeypatch):
    """A change to a run or to the scoring without its re-released tables fails here (as for the models)."""
    monkeypatch.delenv(release.WEIGHTS_ENV, raising=False)
    released = {e.name: e for e in release.entries("cpu") if e.kind == SCORES_KIND}
    tables = run_scores.catalogue("cpu")
    assert len(tables) == len(run_scores.study_runs("cpu")) + len(run_scores.companion_runs("cpu"))
    for name, path in tables:
        assert name in released, f"{name}: not released (python -m dinosal.cli scores, then make release)"
        assert released[name].key == path.name, f"{name}: released under another key; score it again"


def test_a_repeated_release_keeps_the_compressed_bytes_it_holds(dirs):
    """The same table released again keeps the .gz bytes already in the release, even when this machine's
    zlib would compress it otherwise (simulated: a table stored at another compression level)."""
    _, root = dirs
    path = _table()
    entry = release.export_artifact(path, NAME, "smoke")
    other_zlib = gzip.compress(TABLE, compresslevel=1, mtime=0)
    assert other_zlib != (entry.folder / SCORES_GZ).read_bytes()
    (entry.folder / SCORES_GZ).write_bytes(other_zlib)
    doc = json.loads((root / "manifest.json").read_text())
    doc["entries"][0]["files"][SCORES_GZ] = hashlib.sha256(other_zlib).hexdigest()
    (root / "manifest.json").write_text(json.dumps(doc))
    again = release.export_artifact(path, NAME, "smoke")
    assert (again.folder / SCORES_GZ).read_bytes() == other_zlib
    assert again.files[SCORES_GZ] == doc["entries"][0]["files"][SCORES_GZ]
