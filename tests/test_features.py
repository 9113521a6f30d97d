"""The last-block tap on timm ViTs: shapes, sizes, hooks, fused attention, values."""

import numpy as np
import pytest
import timm
import torch

from dinosal.features import LastBlockTap, prepare, to_batch


def vit(patch=8, **kw):
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32,
                             dynamic_img_size=True, patch_size=patch, depth=2, **kw).eval()


def official_style_qkv(model, x):
    """Capture the last qkv output with our own hook and split it the way LOST does."""
    out = {}
    h = model.blocks[-1].attn.qkv.register_forward_hook(lambda m, i, o: out.setdefault("qkv", o))
    with torch.no_grad():
        model.forward_features(x)
    h.remove()
    qkv = out["qkv"]
    b, t, _ = qkv.shape
    nh = model.blocks[-1].attn.num_heads
    qkv = qkv.reshape(b, t, 3, nh, -1).permute(2, 0, 3, 1, 4)
    return [z.transpose(1, 2).reshape(b, t, -1) for z in qkv]


def test_pad_mode_shapes_and_values():
    m = vit()
    x = torch.randn(2, 3, 37, 21)
    with LastBlockTap(m, keep_cls=True) as tap:
        f = tap(x)
    assert f.grid == (5, 3) and f.image_size == (37, 21) and f.input_size == (40, 24)
    assert f.q.shape == f.k.shape == f.v.shape == f.tokens.shape == (2, 16, 192)
    assert f.attn.shape == (2, 3, 15) and f.has_cls and f.num_prefix == 1
    padded = prepare(x, 8).pixels
    assert torch.equal(padded[..., :37, :21], x) and (padded[..., 37:, :] == 0).all()
    q, k, v = official_style_qkv(m, padded)
    for mine, ref in ((f.q, q), (f.k, k), (f.v, v)):
        torch.testing.assert_close(mine, ref)
    # the block output, after the model's final norm, is what forward_features returns
    with torch.no_grad():
        ff = m.forward_features(padded)
    torch.testing.assert_close(m.norm(f.tokens), ff)
    # attention = softmax(q k^T * scale) of the CLS query, restricted to patch columns
    nh, hd = 3, 64
    qh = f.q.reshape(2, 16, nh, hd).transpose(1, 2)
    kh = f.k.reshape(2, 16, nh, hd).transpose(1, 2)
    att = ((qh @ kh.transpose(-2, -1)) * hd**-0.5).softmax(-1)
    torch.testing.assert_close(f.attn, att[:, :, 0, 1:])
    assert (f.attn.sum(-1) < 1).all()
    assert torch.equal(f.patches("k"), f.k[:, 1:])


def test_without_cls_and_with_registers():
    m = vit(reg_tokens=4)
    x = torch.randn(1, 3, 24, 40)
    with LastBlockTap(m) as tap:
        f = tap(x)
    assert f.num_prefix == 5 and not f.has_cls
    assert f.k.shape == (1, 15, 192) and f.grid == (3, 5) and f.attn.shape == (1, 3, 15)
    _, k, _ = official_style_qkv(m, x)
    torch.testing.assert_close(f.k, k[:, 5:])
    assert torch.equal(f.patches("k"), f.k)


def test_model_without_class_token_has_no_attention():
    m = vit(class_token=False, global_pool="avg")
    with LastBlockTap(m) as tap:
        f = tap(torch.randn(1, 3, 16, 16))
    assert f.attn is None and f.k.shape == (1, 4, 192)


def test_resize_mode():
    m = vit(patch=16)
    x = torch.randn(1, 3, 41, 30)
    with LastBlockTap(m, mode="resize") as tap:
        f = tap(x)
    assert f.grid == (3, 2) and f.input_size == (48, 32) and f.image_size == (48, 32)
    assert f.original_size == (41, 30)
    np.testing.assert_allclose(f.box_to_original([0, 0, 32, 48]), [0, 0, 30, 41])
    p = prepare(torch.randn(1, 3, 23, 40), 16, "resize")   # 23/16 = 1.44 -> 1, 40/16 = 2.5 -> 2 (half to even)
    assert p.grid == (1, 2) and p.pixels.shape[-2:] == (16, 32)
    assert prepare(torch.randn(1, 3, 56, 24), 16, "resize").grid == (4, 2)   # 3.5 -> 4, 1.5 -> 2


def test_hooks_once_and_removed_fused_restored():
    m = vit()
    seen = {}

    def record(module, args):
        seen["last"] = m.blocks[-1].attn.fused_attn
        seen["first"] = m.blocks[0].attn.fused_attn

    pre = m.blocks[-1].register_forward_pre_hook(record)
    m.blocks[-1].attn.fused_attn = True
    tap = LastBlockTap(m)
    qkv_hooks = m.blocks[-1].attn.qkv._forward_hooks
    assert len(qkv_hooks) == 1
    tap(torch.randn(1, 3, 16, 16))
    assert seen == {"last": False, "first": m.blocks[0].attn.fused_attn}
    tap(torch.randn(1, 3, 16, 16), attention=False)
    assert seen["last"] is True
    assert len(qkv_hooks) == 1 and m.blocks[-1].attn.fused_attn is True
    tap.close()
    assert len(qkv_hooks) == 0 and len(m.blocks[-1]._forward_hooks) == 0
    assert len(m.blocks[-1].attn.attn_drop._forward_hooks) == 0
    pre.remove()
    with pytest.raises(RuntimeError, match="closed"):
        tap(torch.randn(1, 3, 16, 16))


def test_training_mode_restored_and_uint8_input():
    m = vit().train()
    img = np.random.default_rng(0).integers(0, 255, (20, 20, 3), dtype=np.uint8)
    with LastBlockTap(m) as tap:
        f1, f2 = tap(img), tap(img)
    assert m.training
    torch.testing.assert_close(f1.k, f2.k)  # eval mode inside: no dropout randomness
    assert f1.grid == (3, 3)
    t = to_batch(img)
    assert t.shape == (1, 3, 20, 20) and t.dtype == torch.float32


def test_bad_input():
    m = vit()
    with LastBlockTap(m) as tap:
        with pytest.raises(ValueError, match=r"smaller than one patch \(8 px\)"):
            tap(torch.randn(1, 3, 7, 30))
        with pytest.raises(ValueError, match="uint8"):
            tap(np.zeros((20, 20, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="mode must be one of"):
        LastBlockTap(m, mode="crop")
    fixed = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32,
                              patch_size=8, depth=1)
    with LastBlockTap(fixed) as tap:
        with pytest.raises(ValueError, match="dynamic_img_size=True"):
            tap(torch.randn(1, 3, 40, 40))
    with pytest.raises(ValueError, match="no transformer blocks"):
        LastBlockTap(torch.nn.Linear(2, 2))
