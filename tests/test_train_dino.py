"""The DINO loop: its pieces one by one, collapse monitor, resume, ablations."""

import numpy as np
import pytest
import torch

from dinosal.data.multicrop import MultiCropConfig
from dinosal.models import load_dino_backbone
from dinosal.train.dino import (
    CHECKPOINT,
    CollapseConfig,
    CollapseMonitor,
    DinoConfig,
    DinoTrainer,
    NonFiniteLossError,
    StepSampler,
    TeacherCollapseError,
    cancel_last_layer_grads,
    clip_gradients_per_tensor,
    config_help,
    ema_update,
    param_groups,
    train_dino,
)


def tiny_config(**kw) -> DinoConfig:
    base = dict(
        arch=(32, 2, 2), patch=8, img_size=16, out_dim=64, head_hidden=32, head_bottleneck=16,
        batch_size=4, epochs=2, steps_per_epoch=2, warmup_epochs=1, lr=0.05, drop_path=0.0,
        crops=MultiCropConfig.weak(global_size=16, local_size=8, n_local=2), progress=False,
    )
    base.update(kw)
    return DinoConfig(**base)


def tiny_data(n=16, size=24, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.random((size, size, 3)) * 255).astype(np.uint8) for _ in range(n)]


def test_param_groups_exclude_biases_and_norms_from_weight_decay():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    frozen = torch.nn.Linear(3, 3)
    frozen.weight.requires_grad_(False)
    model.append(frozen)
    g = param_groups(model)
    assert [tuple(p.shape) for p in g[0]["params"]] == [(3, 4)]
    assert sorted(tuple(p.shape) for p in g[1]["params"]) == [(3,), (3,), (3,), (3,)]
    assert g[1]["weight_decay"] == 0.0


def test_clipping_is_per_tensor_not_global():
    a = torch.nn.Parameter(torch.zeros(2))
    b = torch.nn.Parameter(torch.zeros(2))
    a.grad = torch.tensor([6.0, 8.0])  # norm 10
    b.grad = torch.tensor([0.6, 0.8])  # norm 1
    model = torch.nn.Module()
    model.a, model.b = a, b
    norms = clip_gradients_per_tensor(model, 3.0)
    assert norms == pytest.approx([10.0, 1.0])
    assert a.grad.norm().item() == pytest.approx(3.0, rel=1e-5)
    # a global-norm clip would have shrunk b too; per-tensor leaves it alone
    torch.testing.assert_close(b.grad, torch.tensor([0.6, 0.8]))


def test_last_layer_grads_cancelled_only_during_freeze():
    from dinosal.models import DINOHead

    head = DINOHead(8, 5, hidden_dim=8, bottleneck_dim=4, norm_last_layer=False)
    head(torch.randn(3, 8)).sum().backward()
    cancel_last_layer_grads(head, epoch=1, freeze_epochs=1)
    assert head.last_layer.parametrizations.weight.original1.grad is not None
    cancel_last_layer_grads(head, epoch=0, freeze_epochs=1)
    assert head.last_layer.parametrizations.weight.original1.grad is None
    assert head.last_layer.parametrizations.weight.original0.grad is None
    assert head.mlp[0].weight.grad is not None


def test_ema_update():
    t, s = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    with torch.no_grad():
        t.weight.fill_(1.0), s.weight.fill_(3.0), t.bias.fill_(0.0), s.bias.fill_(10.0)
    ema_update(t, s, 0.9)
    torch.testing.assert_close(t.weight, torch.full((1, 2), 1.2))
    torch.testing.assert_close(t.bias, torch.tensor([1.0]))
    torch.testing.assert_close(s.weight, torch.full((1, 2), 3.0))  # student untouched


def test_collapse_monitor_needs_patience_and_grace():
    mon = CollapseMonitor(CollapseConfig(check_every=1, grace_steps=2, patience=3), out_dim=100)
    logk = np.log(100)
    assert mon.classify(logk, logk) == "uniform"
    assert mon.classify(0.01, 0.01) == "one-hot"
    assert mon.classify(0.5, 3.0) is None  # sharp per image, varied over images: healthy
    events = [mon.update(s, logk, logk) for s in range(6)]
    assert events[:4] == [None] * 4 and events[4].kind == "uniform" and events[4].step == 4
    assert events[5] is None  # one event per streak
    off = CollapseMonitor(CollapseConfig(action="off", grace_steps=0, check_every=1, patience=1), 100)
    assert off.update(5, logk, logk) is None


def test_forced_collapse_stops_the_run_or_is_recorded():
    collapse = dict(check_every=1, grace_steps=0, patience=2)
    # a huge teacher temperature makes every teacher output uniform
    cfg = tiny_config(teacher_temp=1e4, warmup_teacher_temp=1e4, collapse=CollapseConfig(**collapse))
    with pytest.raises(TeacherCollapseError, match="uniform") as err:
        train_dino(cfg, tiny_data())
    assert err.value.event.step == 1 and len(err.value.log) == 2
    rec = cfg.replace(collapse=CollapseConfig(action="record", **collapse))
    result = train_dino(rec, tiny_data())
    assert result.steps == 4 and [e.kind for e in result.collapse_events] == ["uniform"]
    assert [r["collapse"] for r in result.log] == ["", "uniform", "", ""]


def test_non_finite_loss_raises():
    trainer = DinoTrainer(tiny_config(), steps_per_epoch=2)
    crops = [torch.full((4, 3, 16, 16), float("nan"))] * 2 + [torch.zeros(4, 3, 8, 8)] * 2
    with pytest.raises(NonFiniteLossError, match="step 0"):
        trainer.train_step(crops)


def test_step_writes_schedules_and_logs():
    trainer = DinoTrainer(tiny_config(), steps_per_epoch=2)
    crops = [torch.randn(4, 3, 16, 16)] * 2 + [torch.randn(4, 3, 8, 8)] * 2
    trainer.train_step(crops)
    row = trainer.train_step(crops)
    g0, g1 = trainer.optimizer.param_groups
    assert g0["weight_decay"] == pytest.approx(trainer.schedules.wd[1]) and g1["weight_decay"] == 0.0
    assert g0["lr"] == g1["lr"] == pytest.approx(trainer.schedules.lr[1])
    for key in ("loss", "teacher_entropy", "kl", "lr", "wd", "momentum", "teacher_temp"):
        assert np.isfinite(row[key])
    assert row["momentum"] == pytest.approx(trainer.schedules.momentum[1])


def _crops():
    torch.manual_seed(5)
    return [torch.randn(4, 3, 16, 16)] * 2 + [torch.randn(4, 3, 8, 8)] * 2


def test_ablation_switches():
    frozen = DinoTrainer(tiny_config(teacher_update="frozen", centering=False), 2)
    before = {k: v.clone() for k, v in frozen.teacher.state_dict().items()}
    frozen.train_step(_crops())
    assert all(torch.equal(before[k], v) for k, v in frozen.teacher.state_dict().items())
    assert torch.count_nonzero(frozen.loss_fn.center) == 0

    copy = DinoTrainer(tiny_config(teacher_update="copy"), 2)
    copy.train_step(_crops())
    for (n, pt), (_, ps) in zip(copy.teacher.named_parameters(), copy.student.named_parameters()):
        assert torch.equal(pt, ps), n

    flat = DinoTrainer(tiny_config(sharpening=False), 2)
    assert flat.train_step(_crops())["teacher_temp"] == pytest.approx(0.1)

    single = tiny_config(multicrop=False)
    assert single.n_crops == 2 and DinoTrainer(single, 2).loss_fn.n_crops == 2


def test_step_sampler_shards_the_global_batch():
    one = list(StepSampler(10, batch=4, world=1, rank=0, seed=3, start_step=0, end_step=3))
    r0 = list(StepSampler(10, batch=2, world=2, rank=0, seed=3, start_step=0, end_step=3))
    r1 = list(StepSampler(10, batch=2, world=2, rank=1, seed=3, start_step=0, end_step=3))
    for step in range(3):
        assert one[4 * step: 4 * step + 4] == r0[2 * step: 2 * step + 2] + r1[2 * step: 2 * step + 2]
    # one pass = a permutation of the data
    assert sorted(i for i, _ in one[:10]) == list(range(10))
    later = list(StepSampler(10, batch=4, world=1, rank=0, seed=3, start_step=2, end_step=3))
    assert later == one[8:12]


def test_resume_continues_the_same_run(tmp_path):
    cfg = tiny_config(drop_path=0.2, checkpoint_every=1)  # drop path: the RNG state must be restored too
    straight = train_dino(cfg, tiny_data(), run_dir=tmp_path / "a")
    assert straight.steps == 4 and straight.stopped == "done"

    first = train_dino(cfg.replace(stop_at_step=2), tiny_data(), run_dir=tmp_path / "b")
    assert first.stopped == "stop_at_step" and first.steps == 2
    resumed = train_dino(cfg, tiny_data(), run_dir=tmp_path / "b")
    assert resumed.steps == 4 and [r["step"] for r in resumed.log] == [0, 1, 2, 3]
    for a, b in zip(straight.log, resumed.log):
        for key in ("loss", "teacher_entropy", "lr", "wd", "momentum", "teacher_temp"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), (a["step"], key)
    for (n, pa), (_, pb) in zip(straight.teacher.named_parameters(), resumed.teacher.named_parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6, msg=n)
    torch.testing.assert_close(straight.center, resumed.center, rtol=1e-5, atol=1e-7)
    assert (tmp_path / "b" / "log.csv").read_text().count("\n") == 5


def test_checkpoint_is_an_official_layout(tmp_path):
    cfg = tiny_config(epochs=1)
    result = train_dino(cfg, tiny_data(), run_dir=tmp_path)
    model, report = load_dino_backbone(tmp_path / CHECKPOINT, which="teacher")
    assert report.layout == "training:teacher"
    x = torch.randn(1, 3, 16, 24)
    torch.testing.assert_close(model.eval()(x), result.teacher.backbone.eval()(x))


def test_resume_rejects_another_config(tmp_path):
    train_dino(tiny_config(epochs=1), tiny_data(), run_dir=tmp_path)
    with pytest.raises(ValueError, match="another configuration") as err:
        train_dino(tiny_config(epochs=1, lr=0.1), tiny_data(), run_dir=tmp_path)
    assert str(tmp_path / CHECKPOINT) in str(err.value)  # names the file


def test_config_validation_and_help():
    with pytest.raises(ValueError, match="teacher_update"):
        tiny_config(teacher_update="sgd")
    with pytest.raises(ValueError, match="update_impl"):
        tiny_config(update_impl="compiled")
    text = config_help()
    assert "clip_grad" in text and "EACH parameter tensor" in text


def test_run_control_fields_are_the_one_list_that_leaves_results_alone():
    import dataclasses

    from dinosal.train.dino import RUN_CONTROL_FIELDS, result_config

    assert set(RUN_CONTROL_FIELDS) <= {f.name for f in dataclasses.fields(DinoConfig)}
    base = tiny_config()
    controlled = tiny_config(num_workers=2, threads=1, checkpoint_every=1, stop_at_step=1, progress=True,
                             device="cpu", update_impl="fused")
    assert result_config(base) == result_config(controlled)  # a resume accepts it
    assert result_config(base) != result_config(tiny_config(lr=0.1))


def test_command_line_trains_a_recipe_and_resumes(tmp_path, capsys):
    from dinosal.cli import main  # python -m dinosal.train

    assert main(["--help-config"]) == 0
    assert "teacher_update" in capsys.readouterr().out
    args = ["--recipe", "smoke:dino_world", "--run-dir", str(tmp_path), "--set", "progress=False", "stop_at_step=2"]
    assert main(args) == 0
    assert "stop_at_step after 2/4 steps" in capsys.readouterr().out
    assert main(args[:-1]) == 0  # resumes at step 2
    assert "done after 4/4 steps" in capsys.readouterr().out
    assert (tmp_path / CHECKPOINT).is_file()


def test_snapshots_keep_the_teacher_at_the_listed_steps(tmp_path):
    from dinosal.train.dino import snapshot_path

    cfg = tiny_config(snapshot_steps=(0, 2, 4))
    res = train_dino(cfg, tiny_data(), run_dir=tmp_path)
    assert res.steps == 4
    kept = sorted(p.name for p in (tmp_path / "snapshots").iterdir())
    assert kept == ["step_000000.pth", "step_000002.pth", "step_000004.pth"]
    # step 0 is the initial teacher, the last one the final teacher
    first, _ = load_dino_backbone(snapshot_path(tmp_path, 0))
    last, _ = load_dino_backbone(snapshot_path(tmp_path, 4))
    final = res.teacher.backbone.state_dict()
    assert all(torch.equal(v, final[k]) for k, v in last.state_dict().items())
    assert not all(torch.equal(v, final[k]) for k, v in first.state_dict().items())


def test_snapshot_steps_leave_other_cache_keys_alone():
    from dinosal import runs

    plain = tiny_config()
    assert "snapshot_steps" not in runs.config_dict(plain)
    assert runs.config_key("dino", plain) != runs.config_key("dino", tiny_config(snapshot_steps=(0, 2)))


def test_train_step_under_no_grad_trains_and_inference_mode_is_refused():
    cfg = tiny_config()
    crops = [torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16), torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)]
    outside = DinoTrainer(cfg, steps_per_epoch=2)
    inside = DinoTrainer(cfg, steps_per_epoch=2)
    row_out = outside.train_step(crops)
    with torch.no_grad():
        row_in = inside.train_step(crops)
    assert row_in["loss"] == pytest.approx(row_out["loss"], rel=1e-6)
    for a, b in zip(outside.student.parameters(), inside.student.parameters()):
        torch.testing.assert_close(a, b)
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        inside.train_step(crops)


# ---- speed options (issue 13): they change how fast a run goes, not what it computes

SPEED_RTOL = 1e-5
"""Per-step losses with and without a speed option: float rounding (another summation
order, a fused kernel) moves them in the 7th digit over these few steps; a change of what
is computed moves them in the 1st-3rd."""


def _speed_run(**kw):
    res = train_dino(tiny_config(**{"epochs": 3, "threads": 1, **kw}), tiny_data())  # 6 steps
    return [r["loss"] for r in res.log], res.teacher.state_dict()


@pytest.mark.parametrize("option", [dict(update_impl="foreach"), dict(update_impl="fused"), dict(threads=2),
                                    dict(num_workers=1)], ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_speed_options_leave_the_losses_alone(option):
    ref_losses, ref_teacher = _speed_run()
    losses, teacher = _speed_run(**option)
    assert len(losses) == 6
    assert losses == pytest.approx(ref_losses, rel=SPEED_RTOL)
    for k, v in teacher.items():
        torch.testing.assert_close(v, ref_teacher[k], rtol=1e-4, atol=1e-6)
    if option in (dict(update_impl="foreach"), dict(num_workers=1)):  # the same operations: bit-identical
        assert losses == ref_losses
        assert all(torch.equal(v, ref_teacher[k]) for k, v in teacher.items())


def test_fused_attention_trains_as_the_unfused_path():
    """timm's fused attention (its default, what the trainer runs) against the explicit
    softmax(q k^T) v that :class:`~dinosal.features.LastBlockTap` switches to for weights."""
    def losses(fused):
        trainer = DinoTrainer(tiny_config(), steps_per_epoch=2)
        for net in (trainer.student, trainer.teacher):
            assert all(b.attn.fused_attn for b in net.backbone.blocks)
            for b in net.backbone.blocks:
                b.attn.fused_attn = fused
        return [trainer.train_step(_crops())["loss"] for _ in range(4)]

    assert losses(True) == pytest.approx(losses(False), rel=SPEED_RTOL)


def test_foreach_clip_and_ema_are_bit_identical_to_the_loops():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(8, 4), torch.nn.Linear(8, 4)
    b.load_state_dict(a.state_dict())
    for m in (a, b):
        m.weight.grad = torch.randn(4, 8) * 3
        m.bias.grad = torch.randn(4) * 0.1  # below the clip: left as it is
    b.weight.grad.copy_(a.weight.grad), b.bias.grad.copy_(a.bias.grad)
    assert clip_gradients_per_tensor(a, 1.0) == pytest.approx(clip_gradients_per_tensor(b, 1.0, foreach=True))
    assert torch.equal(a.weight.grad, b.weight.grad) and torch.equal(a.bias.grad, b.bias.grad)
    ta, tb, s = torch.nn.Linear(8, 4), torch.nn.Linear(8, 4), torch.nn.Linear(8, 4)
    tb.load_state_dict(ta.state_dict())
    ema_update(ta, s, 0.996)
    ema_update(tb, s, 0.996, foreach=True)
    assert all(torch.equal(x, y) for x, y in zip(ta.parameters(), tb.parameters()))


def test_warm_start_begins_student_and_teacher_at_the_given_backbone(tmp_path):
    from dinosal.models import create_vit

    cfg = tiny_config(snapshot_steps=(0,), stop_at_step=1)
    torch.manual_seed(123)
    d = cfg
    other = create_vit(d.arch, patch=d.patch, img_size=d.img_size, pos_interp=d.pos_interp).state_dict()
    train_dino(cfg, tiny_data(), run_dir=tmp_path / "warm", init_backbone=other)
    start, _ = load_dino_backbone(tmp_path / "warm" / "snapshots" / "step_000000.pth")
    assert all(torch.equal(v, other[k]) for k, v in start.state_dict().items())
    train_dino(cfg, tiny_data(), run_dir=tmp_path / "cold")
    cold, _ = load_dino_backbone(tmp_path / "cold" / "snapshots" / "step_000000.pth")
    assert not torch.equal(cold.pos_embed, other["pos_embed"])
    with pytest.raises(RuntimeError):
        train_dino(cfg, tiny_data(), run_dir=tmp_path / "bad", init_backbone={"nope": torch.zeros(1)})


def test_colour_ramp_moves_from_the_start_augmentation_to_the_recipe_s():
    from dinosal.train.dino import training_loader

    gray = MultiCropConfig.weak(global_size=16, local_size=8, n_local=2, grayscale_p=1.0, jitter_p=0.0)
    colour = MultiCropConfig.weak(global_size=16, local_size=8, n_local=2, grayscale_p=0.0, jitter_p=0.0)
    cfg = tiny_config(crops=colour, crops_start=gray, crops_ramp_steps=4, batch_size=8, num_workers=0)

    def gray_share(step):
        batch = next(iter(training_loader(cfg, tiny_data(32), step, step + 1)))
        x = batch[0]  # (B, 3, h, w) normalised: a gray crop has equal raw channels
        mean = torch.tensor(colour.mean).view(1, 3, 1, 1)
        std = torch.tensor(colour.std).view(1, 3, 1, 1)
        raw = x * std + mean
        return float(((raw.amax(1) - raw.amin(1)).flatten(1).amax(1) < 1e-3).float().mean())

    assert gray_share(0) == 1.0  # step 0: every image from crops_start
    assert gray_share(4) == 0.0 and gray_share(7) == 0.0  # after the ramp: every image from crops
    with pytest.raises(ValueError, match="crops_start"):
        tiny_config(crops_ramp_steps=10)
    with pytest.raises(ValueError, match="same crops"):
        from dinosal.data.multicrop import RampedAugmentation

        RampedAugmentation(gray, colour.replace(n_local=3), 10)
    # a run-cache key is unchanged by the new fields at their defaults and changed by a curriculum
    from dinosal.runs import config_key

    assert config_key("dino", tiny_config()) != config_key("dino", tiny_config(crops_start=gray, crops_ramp_steps=4))
    assert "crops_start" not in __import__("dinosal.runs", fromlist=["config_dict"]).config_dict(tiny_config())
