"""Backbones, heads, the multi-crop wrapper and strict loading of DINO layouts."""

import argparse

import pytest
import torch

from dinosal.models import (
    CheckpointKeyError,
    DINOHead,
    LinearHead,
    MultiCropWrapper,
    create_vit,
    extract_backbone_state,
    load_dino_backbone,
    load_dino_state,
)

ARCH = (192, 2, 3)  # tiny width and heads, 2 blocks: fast


def _vit(**kw):
    torch.manual_seed(0)
    return create_vit(ARCH, patch=8, img_size=32, **kw).eval()


def test_create_vit_sizes_and_any_input_size():
    m = _vit()
    assert m.embed_dim == 192 and len(m.blocks) == 2 and m.blocks[0].attn.num_heads == 3
    assert m.pos_embed.shape == (1, 1 + 16, 192)
    for h, w in [(32, 32), (48, 64), (8, 24)]:
        assert m(torch.randn(2, 3, h, w)).shape == (2, 192)
    small = create_vit("vit_small", patch=16, img_size=224)
    assert small.embed_dim == 384 and len(small.blocks) == 12 and small.blocks[0].attn.num_heads == 6
    assert small.blocks[0].norm1.eps == 1e-6 and small.blocks[0].attn.qkv.bias is not None


def test_create_vit_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown arch"):
        create_vit("huge")
    with pytest.raises(ValueError, match="divisible"):
        create_vit((100, 2, 3))
    with pytest.raises(ValueError, match="multiple of patch"):
        create_vit("tiny", patch=16, img_size=100)


def test_dino_head_weight_norm_and_cosine_outputs():
    torch.manual_seed(0)
    head = DINOHead(192, 50, hidden_dim=64, bottleneck_dim=16)
    g = head.last_layer.parametrizations.weight.original0
    assert g.shape == (50, 1) and torch.all(g == 1) and not g.requires_grad
    out = head(torch.randn(5, 192))
    assert out.shape == (5, 50)
    assert out.abs().max() <= 1 + 1e-5  # cosine with unit prototypes
    free = DINOHead(192, 50, hidden_dim=64, bottleneck_dim=16, norm_last_layer=False)
    assert free.last_layer.parametrizations.weight.original0.requires_grad
    # trunc-normal(0.02) init on the MLP, zero biases
    assert head.mlp[0].weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert torch.all(head.mlp[0].bias == 0)
    assert [type(m).__name__ for m in head.mlp] == ["Linear", "GELU", "Linear", "GELU", "Linear"]


def test_multicrop_wrapper_runs_backbone_once_per_resolution():
    backbone = _vit()
    calls = []
    backbone.register_forward_hook(lambda m, i, o: calls.append(tuple(i[0].shape)))
    wrapper = MultiCropWrapper(backbone, torch.nn.Identity())
    crops = [torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32), torch.randn(2, 3, 16, 16),
             torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)]
    out, feats = wrapper(crops, return_backbone=True)
    assert calls == [(4, 3, 32, 32), (6, 3, 16, 16)]
    assert out.shape == (10, 192) and torch.equal(out, feats)
    # crop-major order: rows 4..5 are crop 2
    torch.testing.assert_close(out[4:6], backbone(crops[2]), rtol=1e-5, atol=1e-5)


def test_linear_head_init():
    torch.manual_seed(0)
    head = LinearHead(384, 200, multi_label=True)
    assert head.multi_label and torch.all(head.linear.bias == 0)
    assert head.linear.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert head(torch.randn(3, 384)).shape == (3, 200)


def _equal_states(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_plain_backbone_layout_loads_bit_exactly(tmp_path):
    src = _vit()
    path = tmp_path / "dino_deitsmall8_300ep_pretrain.pth"
    torch.save(src.state_dict(), path)
    model, report = load_dino_backbone(path)
    assert report.layout == "plain" and report.grid == (4, 4) and report.dropped == ()
    _equal_states(src, model)
    x = torch.randn(1, 3, 40, 24)
    assert torch.equal(src(x), model.eval()(x))


def test_training_checkpoint_layout_loads_teacher_and_student(tmp_path):
    torch.manual_seed(1)
    teacher = MultiCropWrapper(_vit(), DINOHead(192, 20, hidden_dim=32, bottleneck_dim=8))
    student = MultiCropWrapper(_vit(), DINOHead(192, 20, hidden_dim=32, bottleneck_dim=8))
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.5)
    ckpt = {
        "teacher": teacher.state_dict(),                                         # backbone./head.
        "student": {"module." + k: v for k, v in student.state_dict().items()},  # DDP-wrapped
        "epoch": 3,
        "args": argparse.Namespace(arch="vit_small", patch_size=8),
    }
    path = tmp_path / "checkpoint.pth"
    torch.save(ckpt, path)
    t_model, report = load_dino_backbone(path, which="teacher")
    assert report.layout == "training:teacher"
    assert report.dropped and all(k.startswith("head.") for k in report.dropped)
    _equal_states(teacher.backbone, t_model)
    s_model, report = load_dino_backbone(path, which="student")
    assert all(k.startswith("module.head.") for k in report.dropped)
    _equal_states(student.backbone, s_model)
    # loading into a given model with the same grid
    target = _vit()
    load_dino_backbone(path, model=target, which="student")
    _equal_states(student.backbone, target)


def test_key_mismatch_raises_and_names_keys(tmp_path):
    state = _vit().state_dict()
    state.pop("blocks.1.mlp.fc2.bias")
    state["blocks.1.extra.weight"] = torch.zeros(3)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointKeyError) as err:
        load_dino_backbone(path)
    msg = str(err.value)
    assert "blocks.1.mlp.fc2.bias" in msg and "blocks.1.extra.weight" in msg and "broken.pth" in msg
    assert err.value.missing == ["blocks.1.mlp.fc2.bias"]
    assert err.value.unexpected == ["blocks.1.extra.weight"]


def test_shape_mismatch_raises():
    model = _vit()
    state = dict(model.state_dict())
    state["norm.weight"] = torch.zeros(7)
    with pytest.raises(CheckpointKeyError, match="norm.weight"):
        load_dino_state(model, state)


def test_official_weight_norm_names_load_into_head():
    torch.manual_seed(0)
    src = DINOHead(16, 10, hidden_dim=8, bottleneck_dim=4, norm_last_layer=False)
    with torch.no_grad():
        src.last_layer.parametrizations.weight.original0.mul_(2.0)
    old = {}
    for k, v in src.state_dict().items():
        k = k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v")
        old[k] = v
    assert "last_layer.weight_g" in old and "last_layer.weight_v" in old
    dst = DINOHead(16, 10, hidden_dim=8, bottleneck_dim=4, norm_last_layer=False)
    load_dino_state(dst, old)
    x = torch.randn(3, 16)
    assert torch.equal(src(x), dst(x))


def test_extract_backbone_state_rejects_missing_entry():
    with pytest.raises(KeyError, match="student"):
        extract_backbone_state({"teacher": {}}, which="student")


# --------------------------------------------------------------------------
# Strictness of load_dino_backbone (issue 10, faults 3 and 9)
# --------------------------------------------------------------------------


def _save(tmp_path, state, name="w.pth"):
    path = tmp_path / name
    torch.save(state, path)
    return path


@pytest.mark.parametrize("img_size", [32, 64])  # model grid 4x4 (equal to the checkpoint's) and 8x8 (differs)
def test_checkpoint_of_another_patch_size_raises(tmp_path, img_size):
    torch.manual_seed(0)
    p16 = create_vit(ARCH, patch=16, img_size=64).state_dict()  # 4x4 grid
    path = _save(tmp_path, p16, "vits16.pth")
    target = create_vit(ARCH, patch=8, img_size=img_size)
    with pytest.raises(CheckpointKeyError) as err:
        load_dino_backbone(path, model=target)
    msg = str(err.value)
    assert "vits16.pth" in msg and "patch_embed.proj.weight" in msg
    assert "(192, 3, 16, 16)" in msg and "(192, 3, 8, 8)" in msg and "patch size" in msg


@pytest.mark.parametrize("change", ["width", "depth", "fewer blocks"])
def test_width_and_depth_mismatch_raise_before_resampling(tmp_path, change):
    arch = {"width": (96, 2, 3), "depth": (192, 3, 3), "fewer blocks": (192, 1, 3)}[change]
    path = _save(tmp_path, create_vit(arch, patch=8, img_size=48).state_dict(), "other.pth")  # 6x6 grid
    target = create_vit(ARCH, patch=8, img_size=32)                                              # 4x4 grid
    with pytest.raises(CheckpointKeyError) as err:
        load_dino_backbone(path, model=target)
    msg = str(err.value)
    assert "other.pth" in msg
    if change == "width":
        assert "width: checkpoint 96 vs model 192" in msg
        assert "norm.weight: checkpoint (96,) vs model (192,)" in err.value.shapes
        assert "pos_embed: checkpoint (1, 37, 96) vs model (1, 17, 192)" in err.value.shapes
    elif change == "depth":
        assert "depth: checkpoint 3 blocks vs model 2" in msg and "blocks.2.attn.qkv.weight" in msg
        assert err.value.unexpected and all(k.startswith("blocks.2.") for k in err.value.unexpected)
    else:
        assert "depth: checkpoint 1 blocks vs model 2" in msg and "blocks.1.norm1.weight" in msg


def _dinosal_ckpt(tmp_path, arch, pos_interp=None, name="checkpoint.pth"):
    import json

    torch.manual_seed(0)
    backbone = create_vit(arch, patch=8, img_size=32)
    cfg = {"arch": list(arch) if isinstance(arch, tuple) else arch, "patch": 8, "img_size": 32}
    if pos_interp is not None:
        cfg["pos_interp"] = pos_interp
    state = {"backbone." + k: v for k, v in backbone.state_dict().items()}
    return _save(tmp_path, {"teacher": state, "config": json.dumps(cfg)}, name), backbone


def test_heads_mismatch_raises(tmp_path):
    # qkv shapes are the same for 3 and 2 heads at width 192: only the config or heads= reveal it
    path, _ = _dinosal_ckpt(tmp_path, (192, 2, 3))
    two_heads = create_vit((192, 2, 2), patch=8, img_size=32)
    with pytest.raises(CheckpointKeyError, match=r"checkpoint.pth.*heads.*checkpoint 3 vs model 2"):
        load_dino_backbone(path, model=two_heads)
    plain = _save(tmp_path, _vit().state_dict(), "plain.pth")
    with pytest.raises(CheckpointKeyError, match=r"plain.pth.*heads.*checkpoint 2 vs model 3"):
        load_dino_backbone(plain, model=_vit(), heads=2)
    with pytest.raises(CheckpointKeyError, match=r"checkpoint.pth.*heads=2 but the checkpoint's config has 3"):
        load_dino_backbone(path, heads=2)
    model, _ = load_dino_backbone(path)
    assert model.blocks[0].attn.num_heads == 3


@pytest.mark.parametrize("mode", ["dino", "timm"])
def test_position_table_of_another_grid_is_resampled_by_the_documented_method(tmp_path, mode):
    from timm.layers import resample_abs_pos_embed

    from dinosal.models import dino_interpolate_pos_embed

    src = _vit()                                               # 4x4 table
    path = _save(tmp_path, src.state_dict())
    target = create_vit(ARCH, patch=8, img_size=40, pos_interp=mode)  # 5x5 table
    model, report = load_dino_backbone(path, model=target)
    assert model is target and report.grid == (4, 4) and report.pos_interp == mode
    assert report.resampled_pos_embed.startswith(f"{mode}: (4, 4) -> (5, 5)")
    if mode == "dino":
        want = dino_interpolate_pos_embed(src.pos_embed.detach(), (5, 5))
        assert "(n+0.1)" in report.resampled_pos_embed and "no antialias" in report.resampled_pos_embed
        # at its own grid the resampled model sees exactly what the source model sees there
        x = torch.randn(1, 3, 40, 40)
        with torch.no_grad():
            torch.testing.assert_close(model.eval()(x), src(x), rtol=0, atol=1e-5)
    else:
        want = resample_abs_pos_embed(src.pos_embed.detach(), new_size=[5, 5], num_prefix_tokens=1)
        assert "antialias" in report.resampled_pos_embed
    assert torch.equal(model.pos_embed.detach(), want)
    # same grid: stored table as is
    assert load_dino_backbone(path, model=_vit())[1].resampled_pos_embed is None


def test_pos_interp_comes_from_a_dinosal_config(tmp_path):
    path, _ = _dinosal_ckpt(tmp_path, (192, 2, 3), pos_interp="timm")
    model, report = load_dino_backbone(path)
    assert model.pos_interp == "timm" and report.pos_interp == "timm"
    path, _ = _dinosal_ckpt(tmp_path, (192, 2, 3), name="old.pth")  # config without pos_interp: the argument
    assert load_dino_backbone(path, pos_interp="timm")[0].pos_interp == "timm"
    assert load_dino_backbone(path)[0].pos_interp == "dino"
    plain = _save(tmp_path, _vit().state_dict(), "plain.pth")
    assert load_dino_backbone(plain, pos_interp="timm")[0].pos_interp == "timm"
    path, _ = _dinosal_ckpt(tmp_path, (192, 2, 3), pos_interp="linear", name="bad.pth")
    with pytest.raises(ValueError, match=r"bad.pth.*pos_interp.*'linear'"):
        load_dino_backbone(path)


def test_broken_checkpoints_name_the_file_and_the_problem(tmp_path):
    full = _vit().state_dict()
    cases = {
        "no_pos.pth": ({k: v for k, v in full.items() if k != "pos_embed"}, CheckpointKeyError, "pos_embed"),
        "no_patch.pth": ({k: v for k, v in full.items() if not k.startswith("patch_embed.")},
                         CheckpointKeyError, "patch_embed.proj.weight"),
        "no_blocks.pth": ({k: v for k, v in full.items() if not k.startswith("blocks.")},
                          CheckpointKeyError, "no transformer blocks"),
        "odd_grid.pth": ({**full, "pos_embed": torch.zeros(1, 1 + 15, 192)}, ValueError, "not a square grid"),
        "odd_width.pth": (create_vit((100, 1, 4), patch=8, img_size=16).state_dict(), ValueError,
                          "width 100 is not a DINO size"),
        "no_student.pth": ({"teacher": {"backbone." + k: v for k, v in full.items()}}, KeyError, "no 'student'"),
    }
    for name, (state, exc, words) in cases.items():
        path = _save(tmp_path, state, name)
        which = "student" if name == "no_student.pth" else "teacher"
        with pytest.raises(exc) as err:
            load_dino_backbone(path, which=which)
        assert name in str(err.value) and words in str(err.value), (name, str(err.value))
    with pytest.raises(ValueError, match=r"odd_width.pth.*not divisible by heads 3"):
        load_dino_backbone(tmp_path / "odd_width.pth", heads=3)
    with pytest.raises(ValueError, match=r"which must be 'teacher' or 'student'"):
        load_dino_backbone(tmp_path / "no_pos.pth", which="ema")
    bad_cfg = _save(tmp_path, {"teacher": full, "config": '{"arch": "huge"}'}, "bad_cfg.pth")
    with pytest.raises(ValueError, match=r"bad_cfg.pth.*arch.*unknown arch"):
        load_dino_backbone(bad_cfg)


def test_load_dino_timm_builds_the_requested_mode(monkeypatch):
    import timm

    from dinosal.models import DinoVisionTransformer, dino_interpolate_pos_embed, load_dino_timm
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    src = VisionTransformer(img_size=32, patch_size=8, embed_dim=192, depth=2, num_heads=3,
                            num_classes=0, dynamic_img_size=True).eval()
    seen = {}

    def fake_create_model(name, pretrained=False, **kw):
        seen.update(kw, name=name, pretrained=pretrained)
        return src

    monkeypatch.setattr(timm, "create_model", fake_create_model)
    model = load_dino_timm("vit_tiny_patch8_32.fake")
    assert isinstance(model, DinoVisionTransformer) and model.pos_interp == "dino"
    assert seen["pretrained"] and "img_size" not in seen
    _equal_states(src, model)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), src(x))
    assert load_dino_timm("x", pos_interp="timm").pos_interp == "timm"
    bigger = load_dino_timm("x", img_size=40)  # the table resampled by DINO's method, not timm's at load
    assert "img_size" not in seen
    assert torch.equal(bigger.pos_embed.detach(), dino_interpolate_pos_embed(src.pos_embed.detach(), (5, 5)))
    with pytest.raises(ValueError, match="pos_interp"):
        load_dino_timm("x", pos_interp="bicubic")


def test_models_package_reexports_its_modules():
    import dinosal.models as models
    from dinosal.models import checkpoints, heads, vit

    # + PatchClassifier, classifier_features, feature_dim, set_drop_path, dino_backbone_from, seeded_vit
    assert len(models.__all__) == len(set(models.__all__)) == 24
    for name in models.__all__ + ["DINO_WEIGHTS_ENV"]:
        obj = getattr(models, name)
        assert any(getattr(m, name, None) is obj for m in (vit, heads, checkpoints)), name
    assert models.DINO_WEIGHTS_ENV == "DINOSAL_DINO_WEIGHTS"
