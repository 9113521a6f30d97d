"""Run cache: keys, manifests, atomic writes, one build per key."""

import json
import threading
from dataclasses import dataclass, field

import pytest

from dinosal import runs


@dataclass(frozen=True)
class Inner:
    a: int = 1
    scale: tuple = (0.1, 0.5)


@dataclass(frozen=True)
class Cfg:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)


def test_key_depends_on_config_kind_and_version():
    k = runs.config_key("model", Cfg())
    assert len(k) == 16
    assert k == runs.config_key("model", Cfg())
    assert k != runs.config_key("model", Cfg(inner=Inner(a=2)))
    assert k != runs.config_key("other", Cfg())
    assert k != runs.config_key("model", Cfg(), version="999")
    with pytest.raises(TypeError):
        runs.config_key("model", {"not": "a dataclass"})


def test_cached_builds_once_and_writes_manifest(tmp_path, monkeypatch):
    monkeypatch.setenv(runs.CACHE_ENV, str(tmp_path))
    assert runs.cache_root() == tmp_path
    calls = []

    def build(d):
        calls.append(d)
        (d / "weights.txt").write_text("w")
        return {"numbers": {"corloc": 0.5}}

    p1 = runs.cached("model", Cfg(), build)
    p2 = runs.cached("model", Cfg(), build)
    assert p1 == p2 and len(calls) == 1
    assert p1.parent == tmp_path / "model" and (p1 / "weights.txt").read_text() == "w"
    m = runs.read_manifest(p1)
    assert m["config"]["inner"]["scale"] == [0.1, 0.5] and m["config"]["__type__"] == "Cfg"
    assert {"torch", "timm", "dinosal"} <= set(m["versions"])
    assert "build_seconds" in m["timings"] and "cpu_count" in m["machine"]
    assert m["numbers"] == {"corloc": 0.5}
    runs.cached("model", Cfg(), build, rebuild=True)
    assert len(calls) == 2


def test_failed_build_leaves_nothing(tmp_path):
    def build(d):
        (d / "half.txt").write_text("x")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        runs.cached("model", Cfg(), build, root=tmp_path)
    leftovers = [p.name for p in (tmp_path / "model").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []


def test_concurrent_callers_build_once(tmp_path):
    calls = []
    barrier = threading.Barrier(3)

    def build(d):
        calls.append(1)
        (d / "f").write_text("1")

    def worker():
        barrier.wait()
        runs.cached("model", Cfg(name="c"), build, root=tmp_path)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "sub" / "a.json"
    runs.atomic_write_text(p, json.dumps({"v": 1}))
    runs.atomic_write_text(p, json.dumps({"v": 2}))
    assert json.loads(p.read_text()) == {"v": 2}
    assert [q.name for q in p.parent.iterdir()] == ["a.json"]


def test_bad_kind_rejected(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        runs.cached("../x", Cfg(), lambda d: None, root=tmp_path)


def test_default_root_is_repo_cache(monkeypatch):
    monkeypatch.delenv(runs.CACHE_ENV, raising=False)
    root = runs.cache_root()
    assert root.parts[-2:] == (".cache", "dinosal")
