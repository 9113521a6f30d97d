"""Run cache: keys, manifests, atomic writes, one build per key."""

import json

import numpy as np
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


def test_default_root_is_the_user_cache_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(runs.CACHE_ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert runs.cache_root() == tmp_path / "home" / ".cache" / "dinosal"  # outside the work tree
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert runs.cache_root() == tmp_path / "xdg" / "dinosal"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # ignored, as the XDG spec says
    assert runs.cache_root() == tmp_path / "home" / ".cache" / "dinosal"
    monkeypatch.setenv(runs.CACHE_ENV, str(tmp_path / "mine"))  # $DINOSAL_CACHE still wins
    assert runs.cache_root() == tmp_path / "mine"


def test_zoo_smoke_trains_once_and_reuses(tmp_path, monkeypatch):
    import torch

    from dinosal import zoo
    from dinosal.train import dino as dino_mod

    monkeypatch.setenv(runs.CACHE_ENV, str(tmp_path))
    assert zoo.names("smoke") == ["random", "dino_world", "dino_driving"]
    assert "dino_official" in zoo.names("paper")
    model, card = zoo.get("dino_world", "smoke", progress=False)
    assert card.kind == "dino" and card.steps == 4 and not model.training
    assert card.path.startswith(str(tmp_path / "dino"))
    assert list(zoo.snapshots(card)) == [0, 2, 4]  # the recipe's snapshot_steps, moved into the cache entry
    x = torch.randn(1, 3, 32, 48)
    out = model(x)

    def no_training(*a, **k):
        raise AssertionError("trained again")

    monkeypatch.setattr(zoo, "train_dino", no_training)
    again, card2 = zoo.get("dino_world", "smoke", progress=False)  # run-control field: same entry
    assert card2.path == card.path
    torch.testing.assert_close(again(x), out)

    rnd, rcard = zoo.get("random", "smoke")
    assert rcard.kind == "random" and rnd.embed_dim == model.embed_dim
    # the random model is exactly the initialisation DINO started from
    trainer = dino_mod.DinoTrainer(zoo.train_spec(zoo.recipe("dino_world", "smoke")).dino, steps_per_epoch=2)
    for k, v in rnd.state_dict().items():
        assert torch.equal(v, trainer.student.backbone.state_dict()[k]), k
    with pytest.raises(KeyError, match="available"):
        zoo.get("nope", "smoke")


def test_held_out_samples_differ_from_training_and_have_objects():
    from dinosal import zoo

    spec = zoo.train_spec(zoo.recipe("dino_world", "smoke"))
    held = zoo.held_out_samples(spec, 3, size=48)
    assert len(held) == 3 and all(len(s.boxes) for s in held)
    assert held[0].image.shape == (48, 48, 3)
    train_first = zoo.training_set(spec)[0]
    assert not np.array_equal(zoo.held_out_samples(spec, 1)[0].image, train_first.image)
