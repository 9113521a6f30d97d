"""Grad-CAM (via pytorch_grad_cam) and attention rollouts on a tiny timm ViT classifier."""

import numpy as np
import pytest
import timm
import torch

from dinosal.saliency.classmaps import attention_rollout, find_vit, grad_cam, gradient_rollout


def classifier(n_classes=4, depth=2, **kw):
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32,
                            dynamic_img_size=True, patch_size=8, depth=depth, **kw)
    return torch.nn.Sequential(vit, torch.nn.Linear(192, n_classes))


def manual_attentions(vit, x):
    """Every block's attention from its own qkv output: softmax(q k^T / sqrt(d))."""
    outs = []
    hooks = [b.attn.qkv.register_forward_hook(lambda m, i, o: outs.append(o.detach())) for b in vit.blocks]
    with torch.no_grad():
        vit(x)
    for h in hooks:
        h.remove()
    atts = []
    for qkv, blk in zip(outs, vit.blocks):
        b, t, _ = qkv.shape
        nh = blk.attn.num_heads
        q, k, _ = qkv.reshape(b, t, 3, nh, -1).permute(2, 0, 3, 1, 4)
        atts.append(((q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5).softmax(-1).double().numpy())
    return atts


def test_grad_cam_matches_manual_computation():
    model = classifier().eval()
    vit = find_vit(model)
    x = torch.randn(2, 3, 30, 21)                     # padded to 32 x 24: grid (4, 3)
    res = grad_cam(model, x, [1, 3])
    assert res.grid_map.shape == (2, 4, 3) and res.pixel_map.shape == (2, 32, 24)
    assert res.class_index == (1, 3) and res.grid == (4, 3)
    assert res.pixel_map.min() >= 0 and res.pixel_map.max() <= 1 + 1e-6
    # independent Grad-CAM: activations of blocks[-1].norm1 and their gradients
    store = {}

    def keep(module, inputs, out):
        out.retain_grad()
        store["a"] = out

    h = vit.blocks[-1].norm1.register_forward_hook(keep)
    xp = torch.nn.functional.pad(x, (0, 3, 0, 2)).requires_grad_(True)
    logits = model(xp)
    (logits[0, 1] + logits[1, 3]).backward()
    h.remove()
    act, grad = store["a"][:, 1:].detach(), store["a"].grad[:, 1:]
    weights = grad.mean(dim=1, keepdim=True)           # mean over patch tokens, per channel
    cam = (act * weights).sum(-1).clamp(min=0).reshape(2, 4, 3).numpy()
    np.testing.assert_allclose(res.grid_map, cam, rtol=1e-4, atol=1e-6)
    assert not np.allclose(grad_cam(model, x, 0).grid_map, res.grid_map)


def test_grad_cam_frozen_backbone_and_state_restored():
    model = classifier().train()
    for p in model.parameters():
        p.requires_grad_(False)
    res = grad_cam(model, torch.randn(1, 3, 16, 16), 2)
    assert res.grid_map.shape == (1, 2, 2)
    assert model.training
    with pytest.raises(ValueError, match="out of range"):
        grad_cam(model, torch.randn(1, 3, 16, 16), 9)


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
def test_attention_rollout_matches_manual(fusion):
    model = classifier(depth=3).eval()
    vit = find_vit(model)
    x = torch.randn(1, 3, 24, 32)
    vit.blocks[1].attn.fused_attn = False            # a mix of flags must come back unchanged
    before = [b.attn.fused_attn for b in vit.blocks]
    res = attention_rollout(model, x, head_fusion=fusion)
    assert [b.attn.fused_attn for b in vit.blocks] == before == [True, False, True]
    atts = manual_attentions(vit, x)
    t = atts[0].shape[-1]
    r = np.eye(t)
    for a in atts:
        fused = getattr(a[0], fusion)(axis=0)
        fused = (fused + np.eye(t)) / 2
        fused /= fused.sum(-1, keepdims=True)
        r = fused @ r
    np.testing.assert_allclose(res.grid_map[0], r[0, 1:].reshape(3, 4), rtol=1e-5)
    assert res.class_index is None and res.pixel_map is None


def test_rollout_discard_ratio():
    model = classifier(depth=1).eval()
    vit = find_vit(model)
    x = torch.randn(1, 3, 16, 16)                      # T = 5 tokens, 25 weights
    a = manual_attentions(vit, x)[0][0].mean(0)
    flat = a.ravel().copy()
    order = np.argsort(flat, kind="stable")[:12]       # floor(0.5 * 25) smallest
    flat[order[order != 0]] = 0
    fused = (flat.reshape(5, 5) + np.eye(5)) / 2
    fused /= fused.sum(-1, keepdims=True)
    res = attention_rollout(model, x, discard_ratio=0.5)
    np.testing.assert_allclose(res.grid_map[0].ravel(), fused[0, 1:], rtol=1e-5)
    with pytest.raises(ValueError, match="discard_ratio"):
        attention_rollout(model, x, discard_ratio=1.0)
    with pytest.raises(ValueError, match="head_fusion"):
        attention_rollout(model, x, head_fusion="median")


def test_gradient_rollout_is_class_specific():
    model = classifier(n_classes=3).eval()
    with torch.no_grad():
        model[1].weight[2] = 0.0                       # class 2 does not depend on the image
        model[1].bias[2] = 1.0
    x = torch.randn(1, 3, 24, 24)
    r0 = gradient_rollout(model, x, 0)
    r1 = gradient_rollout(model, x, 1)
    r2 = gradient_rollout(model, x, 2)
    assert r0.grid_map.shape == (1, 3, 3) and r0.class_index == (0,)
    assert (r0.grid_map >= 0).all() and r0.grid_map.sum() > 0
    assert not np.allclose(r0.grid_map, r1.grid_map)
    np.testing.assert_array_equal(r2.grid_map, 0.0)   # zero gradient: R stays the identity
    assert all(p.grad is None for p in model.parameters())


def test_registers_are_dropped():
    model = classifier(reg_tokens=2).eval()
    x = torch.randn(1, 3, 16, 24)
    assert attention_rollout(model, x).grid_map.shape == (1, 2, 3)
    assert grad_cam(model, x, 0).grid_map.shape == (1, 2, 3)
    assert gradient_rollout(model, x, 0).grid_map.shape == (1, 2, 3)
    with pytest.raises(ValueError, match="no VisionTransformer"):
        find_vit(torch.nn.Linear(3, 3))


GRADIENT_MAPS = [grad_cam, gradient_rollout]  # every class map that needs autograd


@pytest.mark.parametrize("fn", GRADIENT_MAPS, ids=lambda f: f.__name__)
def test_gradient_maps_inside_no_grad_equal_outside(fn):
    model = classifier(n_classes=3).eval()
    x = torch.randn(2, 3, 24, 16)
    outside = fn(model, x, [0, 2])
    with torch.no_grad():                              # as in most evaluation loops
        inside = fn(model, x, [0, 2])
        assert not torch.is_grad_enabled()             # the caller's mode is back
    np.testing.assert_allclose(inside.grid_map, outside.grid_map, rtol=1e-6, atol=1e-7)
    if outside.pixel_map is not None:
        np.testing.assert_allclose(inside.pixel_map, outside.pixel_map, rtol=1e-6, atol=1e-7)
    assert outside.grid_map.sum() > 0


@pytest.mark.parametrize("fn", GRADIENT_MAPS, ids=lambda f: f.__name__)
def test_gradient_maps_inside_inference_mode_say_why(fn):
    model = classifier().eval()
    with torch.inference_mode():
        x = torch.randn(1, 3, 16, 16)
        with pytest.raises(RuntimeError, match=rf"{fn.__name__} needs autograd.*inference_mode.*outside"):
            fn(model, x, 0)
    assert fn(model, x, 0).grid_map.shape == (1, 2, 2)  # an inference tensor made there is fine outside


@pytest.mark.parametrize("fn", [grad_cam, gradient_rollout, attention_rollout], ids=lambda f: f.__name__)
def test_maps_leave_modes_flags_and_grads_as_they_were(fn):
    model = classifier()
    model[0].eval()                                    # a frozen, eval backbone under a training head
    model[1].train()
    for p in model[0].blocks[0].parameters():
        p.requires_grad_(False)
    model[1].weight.grad = torch.ones_like(model[1].weight)  # a caller's accumulated gradient
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    args = (0,) if fn is not attention_rollout else ()
    with torch.no_grad():
        fn(model, torch.randn(1, 3, 16, 16), *args)
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    torch.testing.assert_close(model[1].weight.grad, torch.ones_like(model[1].weight))
    assert all(p.grad is None for n, p in model.named_parameters() if n != "1.weight")
