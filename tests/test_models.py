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
