"""Position embeddings at other input sizes: DINO's ``interpolate_pos_encoding``.

The reference numbers in ``tests/data/dino_pos_embed_reference.json`` were
computed once, outside this project, with the official
``vision_transformer.py`` of facebookresearch/dino (commit in the file): a
``VisionTransformer(embed_dim=32, depth=2, num_heads=2, patch_size=8,
img_size=[32], qkv_bias=True, norm_layer=LayerNorm(eps=1e-6))`` loaded with
:func:`seeded_state` (seed in the file) and run on :func:`seeded_input`
images; the file keeps the CLS row of ``get_last_selfattention`` (patch
columns) and the ``forward`` output. To regenerate: import this module, build
the official model, ``load_state_dict(seeded_state(shapes, seed))`` and
repeat for each case.
"""

import json
import math
from pathlib import Path

import pytest
import torch
from timm.layers import resample_abs_pos_embed

from dinosal.features import LastBlockTap
from dinosal.models import (
    POS_INTERP,
    DinoVisionTransformer,
    create_vit,
    dino_interpolate_pos_embed,
    load_dino_backbone,
    resample_pos_embed,
)

REF_PATH = Path(__file__).parent / "data" / "dino_pos_embed_reference.json"


def seeded_state(shapes: dict, seed: int) -> dict:
    """A deterministic, non-smooth state dict for the given {key: shape}.

    Keys in sorted order, one float64 ``randn`` draw each from a
    ``torch.Generator`` seeded with ``seed``: LayerNorm weights ``1 + 0.1 r``,
    biases ``0.1 r``, ``pos_embed``/``cls_token`` ``0.5 r`` (large, so that
    positions matter), other weights ``r / sqrt(fan_in)``; cast to float32.
    """
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k in sorted(shapes):
        shape = tuple(shapes[k])
        r = torch.randn(shape, generator=g, dtype=torch.float64)
        if k in ("pos_embed", "cls_token"):
            t = 0.5 * r
        elif k.endswith(".bias") or k.endswith("bias"):
            t = 0.1 * r
        elif "norm" in k:  # LayerNorm weight
            t = 1.0 + 0.1 * r
        else:
            t = r / math.sqrt(math.prod(shape[1:]))
        out[k] = t.float()
    return out


def seeded_input(hw, seed: int) -> torch.Tensor:
    """(1, 3, H, W) float32 standard normal image from a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn((1, 3, *hw), generator=g, dtype=torch.float64).float()


@pytest.fixture(scope="module")
def ref():
    return json.loads(REF_PATH.read_text())


def _state_for(ref):
    return seeded_state({k: tuple(v) for k, v in ref["keys"].items()}, ref["seed"])


def _tap_cls_attention(model, x):
    with LastBlockTap(model) as tap:
        return tap(x).attn[0]  # (heads, N)


@pytest.mark.parametrize("layout", ["plain", "training"])
def test_loaded_vit_matches_official_dino_attention(ref, tmp_path, layout):
    """Fault 4: an official-layout state dict loaded by load_dino_backbone gives
    the official code's CLS attention on non-square, non-native inputs."""
    state = _state_for(ref)
    path = tmp_path / "ckpt.pth"
    if layout == "plain":
        torch.save(state, path)
    else:
        torch.save({"teacher": {"backbone." + k: v for k, v in state.items()}, "epoch": 1}, path)
    model, report = load_dino_backbone(path, heads=ref["arch"][2])
    assert model.pos_interp == "dino" and report.pos_interp == "dino" and report.resampled_pos_embed is None
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == ref["keys"]
    model.eval()
    assert len(ref["cases"]) >= 4
    for case in ref["cases"]:
        x = seeded_input(case["input_hw"], case["input_seed"])
        attn = _tap_cls_attention(model, x)
        want = torch.tensor(case["cls_attn"])
        assert attn.shape == want.shape, case["input_hw"]
        torch.testing.assert_close(attn, want, rtol=0, atol=1e-5, msg=lambda m: f"{case['input_hw']}: {m}")
        with torch.no_grad():
            out = model(x)[0]
        torch.testing.assert_close(out, torch.tensor(case["cls_out"]), rtol=0, atol=1e-4)


def test_reference_covers_the_quirks(ref):
    grid = ref["img_size"] // ref["patch"]
    cases = {tuple(c["input_hw"]) for c in ref["cases"]}
    p = ref["patch"]
    grids = {(h // p, w // p) for h, w in cases}
    assert any(r != c for r, c in grids)                         # non-square
    assert any(r * c == grid * grid and r != c for r, c in grids)  # npatch == N but not square: DINO interpolates
    assert any(r < grid and c < grid for r, c in grids)           # smaller grid (local crops)
    assert (grid, grid) in grids                                  # native size


def test_dino_and_timm_modes_differ_off_native_and_agree_on_native(ref):
    state = _state_for(ref)
    arch, p, img = tuple(ref["arch"]), ref["patch"], ref["img_size"]
    dino = create_vit(arch, patch=p, img_size=img, pos_interp="dino").eval()
    timm_ = create_vit(arch, patch=p, img_size=img, pos_interp="timm").eval()
    dino.load_state_dict(state)
    timm_.load_state_dict(state)
    assert isinstance(dino, DinoVisionTransformer) and dino.pos_interp == "dino" and timm_.pos_interp == "timm"
    with torch.no_grad():
        x = seeded_input((img, img), 3)
        assert torch.equal(dino(x), timm_(x))
        x = seeded_input((40, 56), 3)
        assert (dino(x) - timm_(x)).abs().max() > 1e-3
    assert (_tap_cls_attention(dino, x) - _tap_cls_attention(timm_, x)).abs().max() > 1e-4
    # the attribute switches the mode of an existing model
    timm_.pos_interp = "dino"
    with torch.no_grad():
        assert torch.equal(dino(x), timm_(x))


def test_dino_interpolation_formula_independent_reimplementation():
    """An independent re-statement of dino:vision_transformer.py:174-194 (with
    its w, h = dims 2, 3 of the input), on a non-square grid."""
    torch.manual_seed(0)
    table = torch.randn(1, 1 + 14 * 14, 6)
    H, W, p = 96, 160, 16
    # DINO: w, h = x.shape[2:], w0 = w // p (rows), h0 = h // p (cols)
    w0, h0 = H // p + 0.1, W // p + 0.1
    N = table.shape[1] - 1
    grid = table[:, 1:].reshape(1, int(math.sqrt(N)), int(math.sqrt(N)), 6).permute(0, 3, 1, 2)
    grid = torch.nn.functional.interpolate(grid, scale_factor=(w0 / math.sqrt(N), h0 / math.sqrt(N)), mode="bicubic")
    want = torch.cat([table[:, :1], grid.permute(0, 2, 3, 1).reshape(1, -1, 6)], dim=1)
    got = dino_interpolate_pos_embed(table, (H // p, W // p))
    assert got.shape == (1, 1 + 6 * 10, 6)
    assert torch.equal(got, want)
    # unchanged at the stored grid (the same tensor)
    assert dino_interpolate_pos_embed(table, (14, 14)) is table
    # differs from a resize to the target size (the +0.1 scale factor, no antialias)
    timm_table = resample_abs_pos_embed(table, new_size=[6, 10], num_prefix_tokens=1)
    assert (got - timm_table).abs().max() > 1e-2
    assert torch.equal(resample_pos_embed(table, (6, 10), (14, 14), "timm"), timm_table)
    assert torch.equal(resample_pos_embed(table, (6, 10), (14, 14), "dino"), got)


@pytest.mark.parametrize("patch,size", [(8, 480), (16, 96)])
def test_vit_s_tables_differ_between_modes(patch, size):
    """ViT-S shapes: the 224-px table at 480 px (the paper's figures) and at
    96 px (the local crops) differ between the two methods by per cent."""
    torch.manual_seed(0)
    table = torch.nn.init.trunc_normal_(torch.empty(1, 1 + (224 // patch) ** 2, 384), std=0.02)
    n = size // patch
    d = dino_interpolate_pos_embed(table, (n, n))
    t = resample_abs_pos_embed(table, new_size=[n, n], num_prefix_tokens=1)
    rel = (d - t).abs().max() / t.abs().max()
    assert d.shape == t.shape == (1, 1 + n * n, 384)
    assert rel > 0.02


def test_dino_mode_trains_with_autograd_on_non_square_inputs():
    torch.manual_seed(0)
    m = create_vit((32, 2, 2), patch=8, img_size=32, drop_path=0.1).train()
    x = torch.randn(2, 3, 24, 40, requires_grad=True)
    m(x).square().sum().backward()
    assert m.pos_embed.grad is not None and m.pos_embed.grad[:, 1:].abs().sum() > 0
    assert x.grad is not None and torch.isfinite(x.grad).all()
    # forward_intermediates goes through the same override
    m.eval()
    with torch.no_grad():
        final, _ = m.forward_intermediates(x.detach(), indices=1)
        torch.testing.assert_close(final, m.forward_features(x.detach()))


def test_pos_interp_rejects_unknown_values(tmp_path):
    with pytest.raises(ValueError, match=r"pos_interp.*\['dino', 'timm'\].*'bilinear'"):
        create_vit((32, 2, 2), patch=8, img_size=32, pos_interp="bilinear")
    m = create_vit((32, 2, 2), patch=8, img_size=32)
    with pytest.raises(ValueError, match="pos_interp"):
        m.pos_interp = "nearest"
    assert m.pos_interp == "dino" and POS_INTERP == ("dino", "timm")
    torch.save(m.state_dict(), tmp_path / "w.pth")
    with pytest.raises(ValueError, match="pos_interp"):
        load_dino_backbone(tmp_path / "w.pth", pos_interp="area")
    with pytest.raises(ValueError, match="method"):
        resample_pos_embed(m.pos_embed, (2, 2), (4, 4), method="area")
