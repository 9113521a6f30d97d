"""Mugs and LEWEL: losses against hand-computed cases and against the official code's outputs
(tests/data/companions_reference.json, computed once outside the project), queue and memory updates,
alignment maps, short smoke runs that lower each loss, resume, and the named companions."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dinosal import companions, runs, transfers, zoo
from dinosal.losses import DINOLoss, QueueInfoNCE, balanced_pair_mean, byol_loss
from dinosal.models import load_dino_backbone
from dinosal.models.lewel import MLP1D, LewelOutputs, NeckOutput, ObjectNeck
from dinosal.models.mugs import InstanceHead, LocalGroupMemory
from dinosal.train.lewel import lewel_pair_loss, train_lewel
from dinosal.train.method_config import LewelConfig, MugsConfig
from dinosal.train.mugs import train_mugs

REF = json.loads((Path(__file__).parent / "data" / "companions_reference.json").read_text())


def arr(seed, shape, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def unit(a, axis=-1):
    return (a / np.linalg.norm(a, axis=axis, keepdims=True)).astype(np.float32)


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


# ---------------------------------------------------------------- Mugs' losses


def _infonce():
    f = QueueInfoNCE(dim=4, queue_size=5, temperature=0.2, n_crops=3, n_global=2)
    f.queue.copy_(t(unit(arr(3, (4, 5)), axis=0)))
    return f, t(unit(arr(1, (6, 4)))), t(unit(arr(2, (4, 4))))


def test_infonce_matches_the_official_loss_and_queue():
    f, s, tt = _infonce()
    out = f(s, tt)
    ref = REF["mugs"]["infonce"]
    assert out.loss.item() == pytest.approx(ref["loss"], rel=1e-5)
    np.testing.assert_allclose(f.queue.numpy(), np.array(ref["queue"]), rtol=1e-6, atol=1e-7)
    assert int(f.queue_ptr) == ref["ptr"] == 4


def test_infonce_by_hand():
    f, s, tt = _infonce()
    queue = f.queue.numpy().copy()
    out = f(s, tt)
    sp, tp = s.numpy().reshape(3, 2, 4), tt.numpy().reshape(2, 2, 4)
    large, small = [], []
    for i in range(2):
        for v in range(3):
            if v == i:
                continue
            logits = np.concatenate([(sp[v] * tp[i]).sum(-1, keepdims=True), sp[v] @ queue], 1) / 0.2
            logits = logits - logits.max(1, keepdims=True)
            ce = -(logits[:, 0] - np.log(np.exp(logits).sum(1))).mean()
            (large if v < 2 else small).append(ce)
    assert out.loss.item() == pytest.approx(0.5 * (np.mean(large) + np.mean(small)), rel=1e-5)
    # the queue took the two teacher crops in order, at slots 0..3; slot 4 kept its entry
    np.testing.assert_allclose(f.queue.numpy()[:, :4], tp.reshape(4, 4).T, rtol=1e-6)
    np.testing.assert_allclose(f.queue.numpy()[:, 4], queue[:, 4])


def test_queue_wraps_and_eval_mode_leaves_it():
    f = QueueInfoNCE(dim=2, queue_size=5, n_crops=2)
    f.queue_ptr[0] = 4
    f.enqueue(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    assert f.queue[:, 4].tolist() == [1.0, 0.0] and f.queue[:, 0].tolist() == [0.0, 1.0]
    assert f.queue[:, 1].tolist() == [1.0, 1.0] and int(f.queue_ptr) == 2
    f.eval()
    before = f.queue.clone()
    f(torch.nn.functional.normalize(torch.randn(4, 2), dim=1), torch.nn.functional.normalize(torch.randn(4, 2), dim=1))
    assert torch.equal(before, f.queue)


def test_group_loss_matches_the_official_clustering_loss():
    ref = REF["mugs"]["clustering"]
    fn = DINOLoss(3, 3, teacher_temps=0.04, student_temp=0.1, center_momentum=0.9, scale_balance=True)
    fn.center.copy_(t(arr(6, (1, 3), 0.1)))
    out = fn(t(arr(4, (6, 3))), t(arr(5, (4, 3))), 0)
    assert out.loss.item() == pytest.approx(ref["loss"], rel=1e-5)
    np.testing.assert_allclose(fn.center.numpy().ravel(), ref["center"], rtol=1e-6)


def test_balanced_pair_mean():
    pairs = [(1, torch.tensor(1.0)), (0, torch.tensor(3.0)), (2, torch.tensor(10.0)), (2, torch.tensor(20.0))]
    assert balanced_pair_mean(pairs, 2).item() == pytest.approx(0.5 * (2.0 + 15.0))
    assert balanced_pair_mean(pairs[:2], 2).item() == pytest.approx(2.0)  # no local crop: the global mean
    with pytest.raises(ValueError, match="global"):
        balanced_pair_mean(pairs[2:], 2)


def test_instance_head_matches_the_official_head():
    h = InstanceHead(6, 8, 4, predictor_hidden=10)
    sd = {"projector.0.weight": arr(10, (8, 6), 0.5), "projector.2.weight": arr(11, (8, 8), 0.5),
          "projector.4.weight": arr(12, (4, 8), 0.5), "predictor.0.weight": arr(13, (10, 4), 0.5),
          "predictor.2.weight": arr(14, (4, 10), 0.5)}
    h.load_state_dict({k: t(v) for k, v in sd.items()})
    teacher = InstanceHead(6, 8, 4)
    teacher.load_state_dict({k: t(v) for k, v in sd.items() if k.startswith("projector")})
    x = t(arr(20, (3, 6)))
    np.testing.assert_allclose(h(x).detach().numpy(), REF["mugs"]["instance_head"]["student"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(teacher(x).detach().numpy(), REF["mugs"]["instance_head"]["teacher"], rtol=1e-5,
                               atol=1e-6)


def test_memory_neighbours_match_the_official_memory_and_enqueue_moves_once():
    m = LocalGroupMemory(4, 6, top_n=2)
    m.bank.copy_(t(arr(30, (6, 4))))
    np.testing.assert_allclose(m.neighbours(t(arr(31, (3, 4)))).numpy(), REF["mugs"]["memory_neighbours"], rtol=1e-6)
    m.ptr[0] = 5
    m.enqueue(torch.ones(3, 4))
    assert int(m.ptr) == 2  # 5 + 3 mod 6 (the official non-wrapping branch would have moved it twice)
    assert m.bank[[5, 0, 1]].eq(1).all() and not m.bank[2].eq(1).all()
    with pytest.raises(ValueError, match="top_n"):
        LocalGroupMemory(4, 3, top_n=4)


# ---------------------------------------------------------------- LEWEL


def _mlp_state(prefix, base, i, h, o):
    return {f"{prefix}mlp.0.weight": arr(base, (h, i, 1), 0.3), f"{prefix}mlp.1.weight": 1 + arr(base + 1, (h,), 0.1),
            f"{prefix}mlp.1.bias": arr(base + 2, (h,), 0.1), f"{prefix}mlp.3.weight": arr(base + 3, (o, h, 1), 0.3)}


def test_object_neck_matches_the_official_neck_and_its_maps_sum_to_one():
    neck = ObjectNeck(8, 6, 4, num_heads=2)
    neck.load_state_dict({k: t(v) for k, v in {**_mlp_state("proj.", 41, 8, 6, 4),
                                               **_mlp_state("proj_obj.", 45, 8, 6, 4)}.items()}, strict=False)
    neck.train()
    x = arr(40, (2, 8, 2, 3))
    out = neck(t(x.reshape(2, 8, 6).transpose(0, 2, 1)), t(x.mean((2, 3))))
    np.testing.assert_allclose(out.global_embedding.detach().numpy(), REF["lewel"]["neck"]["z_g"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out.slots.detach().numpy(), REF["lewel"]["neck"]["obj"], rtol=1e-4, atol=1e-6)
    assert out.maps.shape == (2, 4, 6) and out.slots.shape == (2, 4, 2)
    np.testing.assert_allclose(out.maps.sum(-1).detach().numpy(), 1.0, rtol=1e-6)
    assert (out.maps > 0).all()
    with pytest.raises(ValueError, match="num_heads"):
        ObjectNeck(8, 6, 6, num_heads=4)


def test_lewel_loss_matches_the_official_loss_func():
    pred, pred_obj = MLP1D(4, 6, 4), MLP1D(4, 6, 4)
    pred.load_state_dict({k: t(v) for k, v in _mlp_state("", 54, 4, 6, 4).items()}, strict=False)
    pred_obj.load_state_dict({k: t(v) for k, v in _mlp_state("", 58, 4, 6, 4).items()}, strict=False)
    z_o, obj_o, z_t, obj_t = (t(arr(s, shape)) for s, shape in ((50, (2, 4, 1)), (51, (2, 4, 2)), (52, (2, 4, 1)),
                                                                 (53, (2, 4, 2))))
    online = LewelOutputs(NeckOutput(z_o[:, :, 0], obj_o, None), pred(z_o)[:, :, 0], pred_obj(obj_o))
    total, inst, obj = lewel_pair_loss(online, NeckOutput(z_t[:, :, 0], obj_t, None), 0.5)
    assert total.item() == pytest.approx(REF["lewel"]["loss_func"], rel=1e-5)
    assert total.item() == pytest.approx(0.5 * inst.item() + 0.5 * obj.item(), rel=1e-6)


def test_byol_loss_by_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert byol_loss(a, 3 * a).item() == pytest.approx(0.0, abs=1e-6)
    assert byol_loss(a, -a).item() == pytest.approx(4.0)
    assert byol_loss(a, torch.tensor([[0.0, 1.0], [0.0, 1.0]])).item() == pytest.approx(2 - 2 * 0.5)


# ---------------------------------------------------------------- training


def _smoke(steps=40, **over):
    spec = zoo.train_spec(zoo.recipe("dino_driving", "smoke"), progress=False, num_workers=0, threads=1)
    cfg = dataclasses.replace(spec.dino, epochs=1, steps_per_epoch=steps, snapshot_steps=(), koleo_weight=0.0,
                              warmup_epochs=0, lr=0.05, **over)
    return cfg, zoo.training_set(spec)


def _first_last(log, col, n=8):
    v = [r[col] for r in log]
    return float(np.mean(v[:n])), float(np.mean(v[-n:]))


def test_short_mugs_run_lowers_each_term():
    """The two InfoNCE terms fall. The group term is a cross-entropy = teacher entropy + KL: centering
    flattens the spiky random-init teacher first, so its entropy (and the term) rises at the start; the
    part the student controls, the KL to the teacher, falls."""
    cfg, data = _smoke()
    m = MugsConfig(head_hidden=64, out_dim=32, predictor_hidden=64, queue_size=64, memory_size=32, top_n=4)
    res = train_mugs(cfg, m, data)
    for col in ("instance", "local_group", "kl"):
        first, last = _first_last(res.log, col)
        assert last < first, (col, first, last)
    assert res.teacher.head["memory"].ptr.item() == (40 * 8) % 32


def test_short_lewel_run_lowers_its_loss_and_resumes_exactly(tmp_path):
    cfg, data = _smoke(crops=dataclasses.replace(_smoke()[0].crops, n_local=0))
    opts = LewelConfig(hidden=64, out_dim=32, num_heads=4)
    res = train_lewel(cfg, opts, data)
    first, last = _first_last(res.log, "loss")
    assert last < first
    part = train_lewel(dataclasses.replace(cfg, stop_at_step=15), opts, data, run_dir=tmp_path)
    assert part.steps == 15
    done = train_lewel(cfg, opts, data, run_dir=tmp_path)
    assert done.steps == 40 and [r["loss"] for r in done.log] == pytest.approx([r["loss"] for r in res.log], rel=1e-5)
    backbone, _ = load_dino_backbone(tmp_path / "checkpoint.pth", which="teacher")
    assert torch.equal(backbone.state_dict()["cls_token"], res.teacher.backbone.state_dict()["cls_token"])
    with pytest.raises(ValueError, match="another configuration"):
        train_lewel(cfg, dataclasses.replace(opts, loss_weight=0.3), data, run_dir=tmp_path)


# ---------------------------------------------------------------- the named companions


def test_companions_share_the_parent_recipe(monkeypatch, tmp_path):
    names = companions.names("cpu")
    assert {"mugs_driving", "lewel_driving__seed2", "mugs_world", "lewel_world"} <= set(names)
    for name in ("mugs_world", "lewel_world", "mugs_driving__seed1"):
        s = companions.spec(name, "cpu")
        parent = zoo.train_spec(zoo.recipe(s.parent, "cpu"), seed=s.seed).dino
        assert s.train.dino == parent and s.dino.koleo_weight == 0.0
        for f in ("epochs", "steps_per_epoch", "batch_size", "lr", "arch", "img_size", "momentum_teacher",
                  "crops_ramp_steps"):
            assert getattr(s.dino, f) == getattr(parent, f), f
        assert s.dino.crops.n_local == (0 if s.method == "lewel" else parent.crops.n_local)
    keys = {companions.model_key(companions.spec(n, "cpu")) for n in names}
    assert len(keys) == len(names)
    assert companions.model_key(companions.spec("mugs_driving", "cpu", threads=1)) == \
        companions.model_key(companions.spec("mugs_driving", "cpu"))
    with pytest.raises(KeyError, match="not a companion"):
        companions.spec("byol_driving", "cpu")
    with pytest.raises(ValueError, match="run-control"):
        companions.spec("mugs_driving", "cpu", seed=3)


def test_a_smoke_companion_trains_into_the_cache_and_loads(monkeypatch, tmp_path):
    monkeypatch.setenv("DINOSAL_CACHE", str(tmp_path))
    backbone, card = companions.get("lewel_driving", "smoke", progress=False, num_workers=0)
    assert card.kind == "lewel" and card.source == "trained now" and card.steps == 4
    path = companions.artifact_dir(companions.spec("lewel_driving", "smoke"))
    assert path.parent.parent == tmp_path / "dino" or path.is_relative_to(tmp_path)
    assert "corloc" in runs.read_manifest(path)["metrics"]
    assert set(companions.log("lewel_driving", "smoke").columns) >= {"loss", "instance", "object", "target_std"}
    again, card2 = companions.get("lewel_driving", "smoke")
    assert card2.source == "run cache" and torch.equal(again.cls_token, backbone.cls_token)


def test_a_lewel_release_carries_its_neck_and_its_maps_score(monkeypatch, tmp_path):
    from dinosal import release, transfer_sets

    monkeypatch.setenv("DINOSAL_CACHE", str(tmp_path / "cache"))
    s = companions.spec("lewel_driving", "smoke", progress=False, num_workers=0)
    path = companions.train_cached(s)
    entry = release.export_artifact(path, "lewel_driving", "smoke", snapshots=False, root=tmp_path / "weights")
    assert "neck.safetensors" in entry.files
    mugs = companions.train_cached(companions.spec("mugs_driving", "smoke", progress=False, num_workers=0))
    assert "neck.safetensors" not in release.export_artifact(mugs, "mugs_driving", "smoke", snapshots=False,
                                                             root=tmp_path / "weights").files
    copy = release.materialise(release.find(entry.key, root=tmp_path / "weights"), cache_root=tmp_path / "other")
    trained, released = release.load_artifact_neck(path), release.load_artifact_neck(copy)
    # the release keeps what the maps need, the neck's proj; the slots' proj_obj stays out
    assert set(released) == {k for k in trained if k.startswith("proj.")} and any(k.startswith("proj_obj.") for k in trained)
    assert torch.allclose(trained["proj.mlp.0.weight"], released["proj.mlp.0.weight"], atol=1e-2)  # float16
    with pytest.raises(FileNotFoundError, match="no LEWEL neck"):
        release.load_artifact_neck(mugs)
    net = companions.lewel_network("lewel_driving", "smoke")
    scenes = [sc for _, sc in transfer_sets.preregistered_scenes(
        transfers.spec("random__bce_driving", "smoke").data, 2, 32, patch=8)]
    grid = companions.alignment_grid(net, [sc.image for sc in scenes])
    assert grid.shape == (2, 32, 4, 4) and np.allclose(grid.sum((2, 3)), 1, atol=1e-5)
    monkeypatch.setenv("DINOSAL_CACHE", str(tmp_path / "other"))  # the run cache of a clean clone: the release
    part = companions.lewel_network("lewel_driving", "smoke")
    assert part.head["neck"].proj_obj is None and net.head["neck"].proj_obj is not None
    np.testing.assert_allclose(companions.alignment_grid(part, [sc.image for sc in scenes]), grid, atol=2e-3)
    with pytest.raises(RuntimeError, match="maps_only"):
        part(torch.zeros(1, 3, 32, 32))
    ratios = companions.alignment_ratios(net, [sc.image for sc in scenes],
                                         [transfer_sets.scene_truth(sc) for sc in scenes], ["objects", "road"])
    assert ratios.shape == (32, 2) and (ratios.values >= 0).all()
    with pytest.raises(ValueError, match="only LEWEL"):
        companions.lewel_network("mugs_driving", "smoke")


@pytest.mark.parametrize("name", companions.names("cpu"))
def test_every_cpu_companion_is_released_with_its_current_key(name, monkeypatch):
    """A change to a companion's recipe or options without its re-released run fails here, as for the zoo."""
    from dinosal import release

    monkeypatch.delenv(release.WEIGHTS_ENV, raising=False)
    entry = next((e for e in release.entries("cpu") if e.name == name), None)
    assert entry is not None, f"{name}: not released (python -m dinosal.cli companions, then make release)"
    assert entry.key == companions.model_key(companions.spec(name, "cpu")), f"{name}: released under another key"
    assert "log.csv.gz" in entry.files and (name.startswith("mugs") or "neck.safetensors" in entry.files)
    assert entry.metrics.get("corloc") is not None
