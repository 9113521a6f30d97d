"""iBOT's masked patch-token term (beyond original DINO): masks, the loss, the trainer with it.

The reference is the official code (github.com/bytedance/ibot): ``ImageFolderMask`` in
loader.py for the masks, ``iBOTLoss`` in main_ibot.py for the loss, ``mask_model`` in
models/vision_transformer.py for the mask token.
"""

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dinosal.data.multicrop import MultiCropConfig
from dinosal.losses import IBOTPatchLoss
from dinosal.models import DINOHead, MultiCropWrapper, create_vit, load_dino_backbone
from dinosal.runs import config_dict, config_key
from dinosal.train.dino import CHECKPOINT, CollapseConfig, DinoConfig, DinoTrainer, TeacherCollapseError, train_dino
from dinosal.train.masking import crop_masks, step_masks
from gloo_workers import run_workers
from test_train_dino import tiny_config, tiny_data

IBOT_FIELDS = ("ibot_weight", "ibot_mask_prob", "ibot_mask_ratio", "ibot_mask_shape", "ibot_teacher_temp",
               "ibot_warmup_teacher_temp", "ibot_center_momentum", "ibot_teacher_patches", "ibot_start_epoch")


def ibot_config(**kw) -> DinoConfig:
    """tiny_config with 32 px global crops (a 4x4 patch grid) and the patch term on."""
    base = dict(img_size=32, crops=MultiCropConfig.weak(global_size=32, local_size=16, n_local=2), ibot_weight=1.0)
    base.update(kw)
    return tiny_config(**base)


def _crops(seed=5):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 3, 32, 32, generator=g) for _ in range(2)] + [torch.randn(4, 3, 16, 16, generator=g)
                                                                          for _ in range(2)]


# ---- the defaults change nothing


def test_defaults_leave_cache_keys_and_the_dino_step_alone():
    plain = tiny_config()
    assert not set(IBOT_FIELDS) & set(config_dict(plain))  # key_omit_default: existing keys unchanged
    assert config_key("dino", plain) == config_key("dino", tiny_config(ibot_weight=0.0, ibot_mask_ratio=[0.1, 0.5]))
    assert config_key("dino", plain) != config_key("dino", tiny_config(ibot_weight=1.0))
    assert "mask_token" not in DinoTrainer(plain, 2).student.state_dict()
    # with the weight at 0 the other iBOT fields are inert: the same step, bit for bit
    off = tiny_config(ibot_mask_prob=1.0, ibot_mask_ratio=(0.4, 0.5), ibot_teacher_temp=0.2, ibot_mask_shape="rand")
    torch.manual_seed(5)
    crops = [torch.randn(4, 3, 16, 16)] * 2 + [torch.randn(4, 3, 8, 8)] * 2  # tiny_config's 16/8 px crops
    rows = [DinoTrainer(c, 2).train_step(crops) for c in (plain, off)]
    for key in ("loss", "teacher_entropy", "kl", "teacher_max_prob"):
        assert rows[0][key] == rows[1][key], key
    assert "ibot" not in rows[0]


def test_the_mask_path_with_nothing_masked_is_the_plain_forward():
    torch.manual_seed(0)
    vit = create_vit((32, 2, 2), patch=8, img_size=32)
    x = torch.randn(3, 3, 32, 32)
    none = torch.zeros(3, 4, 4, dtype=torch.bool)
    assert torch.equal(vit.forward_masked(x, none, torch.randn(32)), vit.forward_features(x))
    wrapper = MultiCropWrapper(vit, DINOHead(32, 16, hidden_dim=16, bottleneck_dim=8), mask_token=True)
    crops = [x, x.flip(-1), torch.randn(3, 3, 16, 16)]
    cls, patch = wrapper(crops, patch_crops=2)
    torch.testing.assert_close(cls, wrapper(crops), rtol=1e-6, atol=1e-6)
    assert patch.shape == (6, 16, 16)
    cls_m, patch_m = wrapper(crops, patch_crops=2, masks=torch.zeros(6, 4, 4, dtype=torch.bool))
    torch.testing.assert_close(cls_m, cls, rtol=1e-6, atol=1e-6)
    assert patch_m.shape == (0, 16)
    some = torch.rand(6, 4, 4, generator=torch.Generator().manual_seed(1)) < 0.3
    _, picked = wrapper(crops, patch_crops=2, masks=some, hide=False)  # a teacher scoring the masked patches alone
    torch.testing.assert_close(picked, patch[some.reshape(6, 16)], rtol=1e-5, atol=1e-6)


def test_a_hidden_patch_s_pixels_do_not_reach_the_student():
    torch.manual_seed(0)
    wrapper = MultiCropWrapper(create_vit((32, 2, 2), patch=8, img_size=32),
                               DINOHead(32, 16, hidden_dim=16, bottleneck_dim=8), mask_token=True)
    x = torch.randn(2, 3, 32, 32)
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[:, 1:3, 0:2] = True  # rows 1-2, cols 0-1: pixels 8..23 x 0..15
    y = x.clone()
    y[:, :, 8:24, 0:16] = torch.randn(2, 3, 16, 16)
    out_x, patch_x = wrapper([x], patch_crops=1, masks=mask)
    out_y, patch_y = wrapper([y], patch_crops=1, masks=mask)
    assert torch.equal(out_x, out_y) and torch.equal(patch_x, patch_y) and patch_x.shape == (8, 16)
    assert not torch.equal(wrapper([x], patch_crops=1)[0], wrapper([y], patch_crops=1)[0])  # unmasked: they do
    with pytest.raises(ValueError, match="mask_token"):
        MultiCropWrapper(create_vit((32, 2, 2), patch=8, img_size=32), DINOHead(32, 16))([x], patch_crops=1,
                                                                                      masks=mask)


# ---- masks


def test_masks_cover_a_ratio_in_the_configured_range():
    n, side, lo, hi = 2000, 8, 0.1, 0.5
    for shape in ("block", "rand"):
        masks, drawn = crop_masks(n, side, side, 0.5, (lo, hi), shape, np.random.default_rng(1))
        on = drawn > 0
        assert abs(on.mean() - 0.5) < 0.05  # the share of masked crops (4.5 sigma)
        assert np.all((drawn[on] >= lo) & (drawn[on] <= hi))
        counts = masks.reshape(n, -1).sum(1)
        assert np.all(counts[~on] == 0)
        assert np.all(counts[on] >= 1) and np.all(counts[on] <= drawn[on] * side * side)  # never past the target
        assert np.all(counts[on] <= hi * side * side)
        assert lo <= counts[on].mean() / side ** 2 <= hi
        if shape == "rand":  # exactly int(ratio * N)
            assert np.array_equal(counts[on], (drawn[on] * side * side).astype(int))
        else:  # blocks: rectangles reach close to the target on average (iBOT's may stop short)
            assert counts[on].mean() / (drawn[on] * side * side).mean() > 0.9


def test_step_masks_are_a_function_of_the_step_and_shard_like_the_data():
    kw = dict(grid=(4, 4), n_global=2, prob=0.5, ratio=(0.1, 0.5), shape="block")
    one = step_masks(0, 7, batch=4, world=1, rank=0, **kw)
    assert one.shape == (8, 4, 4) and one.dtype == torch.bool
    assert torch.equal(one, step_masks(0, 7, batch=4, world=1, rank=0, **kw))
    assert not torch.equal(one, step_masks(0, 8, batch=4, world=1, rank=0, **kw))
    r0, r1 = (step_masks(0, 7, batch=2, world=2, rank=r, **kw) for r in (0, 1))
    for crop in range(2):  # rank r holds images [2r, 2r+2) of each crop, as StepSampler gives the data
        assert torch.equal(one[4 * crop: 4 * crop + 4], torch.cat([r0[2 * crop: 2 * crop + 2],
                                                                   r1[2 * crop: 2 * crop + 2]]))


# ---- the loss


def _official_patch_loss(student, teacher, masks, center, temp, student_temp=0.1, n_global=2):
    """iBOTLoss's patch half (main_ibot.py), as written there, on full (n*B, N, K) outputs."""
    s_c = (student / student_temp).chunk(n_global)
    t_c = F.softmax((teacher - center) / temp, dim=-1).chunk(n_global)
    m_c = masks.chunk(n_global)
    total = 0
    for q in range(n_global):
        loss2 = torch.sum(-t_c[q] * F.log_softmax(s_c[q], dim=-1), dim=-1)
        mask = m_c[q].flatten(-2, -1)
        total += (torch.sum(loss2 * mask.float(), dim=-1) / mask.sum(dim=-1).clamp(min=1.0)).mean()
    return total / n_global


def test_patch_loss_matches_ibot_and_reads_only_masked_positions():
    g = torch.Generator().manual_seed(0)
    B, N, K = 3, 16, 10
    student = torch.randn(2 * B, N, K, generator=g)
    teacher = torch.randn(2 * B, N, K, generator=g)
    masks = torch.rand(2 * B, 4, 4, generator=g) < 0.3
    masks[1] = False  # an image with no masked patch counts as 0, as iBOT's clamp(min=1)
    center = torch.randn(1, K, generator=g) * 0.1
    fn = IBOTPatchLoss(K, teacher_temps=0.07, center_momentum=0.9)
    fn.center.copy_(center)
    flat = masks.reshape(2 * B, N)
    out = fn(student[flat], teacher, masks)
    ref = _official_patch_loss(student, teacher, masks, center, 0.07)
    torch.testing.assert_close(out.loss, ref, rtol=1e-5, atol=1e-6)
    assert out.masked_share == pytest.approx(float(flat.float().mean()))
    # the center moved to 0.9 c + 0.1 mean over every patch token of every image (iBOT's center2)
    torch.testing.assert_close(fn.center, 0.9 * center + 0.1 * teacher.mean(dim=(0, 1))[None])

    fn.eval()  # no center update: compare losses at the same center
    base = fn(student[flat], teacher, masks).loss
    changed = teacher.clone()
    changed[~flat] += 5 * torch.randn(int((~flat).sum()), K, generator=g)  # every unmasked teacher token
    assert torch.equal(fn(student[flat], changed, masks).loss, base)
    changed[flat.nonzero()[0].tolist()] += 5.0 * torch.randn(K, generator=g)  # one masked token
    assert not torch.equal(fn(student[flat], changed, masks).loss, base)
    # a teacher scored at the masked patches alone gives the same loss
    torch.testing.assert_close(fn(student[flat], teacher[flat], masks).loss, base)


# ---- the trainer


def test_ibot_step_runs_logs_and_keeps_the_token_the_student_s():
    trainer = DinoTrainer(ibot_config(), steps_per_epoch=2)
    assert "mask_token" in trainer.student.state_dict() and "mask_token" not in trainer.teacher.state_dict()
    rows = [trainer.train_step(_crops(s)) for s in range(3)]
    for row in rows:
        assert np.isfinite(row["ibot"]) and row["ibot"] > 0 and np.isfinite(row["loss"])
        assert 0 <= row["ibot_masked"] <= 0.5 and row["ibot_teacher_temp"] == pytest.approx(0.07)
    assert any(r["ibot_masked"] > 0 for r in rows)
    assert trainer.student.mask_token.grad is not None and trainer.student.mask_token.abs().sum() > 0
    assert torch.count_nonzero(trainer.ibot_loss.center) > 0
    cheap = DinoTrainer(ibot_config(ibot_teacher_patches="masked"), steps_per_epoch=2)
    assert np.isfinite(cheap.train_step(_crops(0))["ibot"])
    late = DinoTrainer(ibot_config(ibot_start_epoch=1, warmup_teacher_temp_epochs=1), steps_per_epoch=2)
    first = late.train_step(_crops(0))  # epoch 0: nothing masked yet, the warmup patch temperature
    assert first["ibot_masked"] == 0 and first["ibot"] == 0 and first["ibot_teacher_temp"] == pytest.approx(0.04)
    with pytest.raises(ValueError, match="ibot_mask_shape"):
        ibot_config(ibot_mask_shape="grid")
    with pytest.raises(ValueError, match="ibot_mask_ratio"):
        ibot_config(ibot_mask_ratio=(0.5, 0.1))


def test_ibot_resume_continues_the_same_run(tmp_path):
    cfg = ibot_config(drop_path=0.2, checkpoint_every=1)
    data = tiny_data(size=40)
    straight = train_dino(cfg, data, run_dir=tmp_path / "a")
    first = train_dino(cfg.replace(stop_at_step=2), data, run_dir=tmp_path / "b")
    assert first.stopped == "stop_at_step"
    resumed = train_dino(cfg, data, run_dir=tmp_path / "b")
    assert resumed.steps == 4 and [r["step"] for r in resumed.log] == [0, 1, 2, 3]
    for a, b in zip(straight.log, resumed.log):
        for key in ("loss", "ibot", "ibot_masked", "teacher_entropy"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), (a["step"], key)
    for net in ("teacher", "student"):
        sa, sb = getattr(straight, net).state_dict(), getattr(resumed, net).state_dict()
        assert sa.keys() == sb.keys()
        for k in sa:
            torch.testing.assert_close(sa[k], sb[k], rtol=1e-5, atol=1e-6, msg=f"{net}.{k}")
    ca, cb = (torch.load(p / CHECKPOINT, weights_only=False)["ibot_loss"]["center"] for p in (tmp_path / "a",
                                                                                             tmp_path / "b"))
    torch.testing.assert_close(ca, cb, rtol=1e-5, atol=1e-7)
    # the checkpoint still loads as the official layout, the student's mask token left out
    model, report = load_dino_backbone(tmp_path / "a" / CHECKPOINT, which="student")
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(model.eval()(x), straight.student.backbone.eval()(x))


def test_ibot_warm_start_and_collapse_monitor():
    cfg = ibot_config(stop_at_step=1)
    other = create_vit(cfg.arch, patch=cfg.patch, img_size=cfg.img_size).state_dict()
    res = train_dino(cfg, tiny_data(size=40), init_backbone=other)
    assert res.steps == 1
    hot = ibot_config(teacher_temp=1e4, warmup_teacher_temp=1e4,
                      collapse=CollapseConfig(check_every=1, grace_steps=0, patience=2))
    with pytest.raises(TeacherCollapseError, match="uniform"):
        train_dino(hot, tiny_data(size=40))


STEPS = 3


def _ddp_worker(rank: int, world: int, out_dir: str) -> None:
    res = train_dino(ibot_config(batch_size=4, epochs=1, steps_per_epoch=STEPS, device="cpu"), tiny_data(32, 40))
    torch.save({"log": res.log, "teacher": res.teacher.state_dict(), "token": res.student.mask_token.detach()},
               os.path.join(out_dir, f"rank{rank}.pt"))


def test_ibot_two_processes_match_one_process(tmp_path):
    run_workers(_ddp_worker, 2, tmp_path, timeout=100)
    single = train_dino(ibot_config(batch_size=8, epochs=1, steps_per_epoch=STEPS, device="cpu"), tiny_data(32, 40))
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for a, b in zip(single.log, got["log"]):
            for key in ("loss", "ibot", "ibot_masked"):
                assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), (a["step"], key)
        torch.testing.assert_close(got["token"], single.student.mask_token.detach(), rtol=1e-4, atol=1e-6)
        for k, v in single.teacher.state_dict().items():
            torch.testing.assert_close(got["teacher"][k], v, rtol=1e-4, atol=1e-5, msg=k)
