"""The saliency instrument: ground truth, methods, per-image scores, region shares, baselines."""

import numpy as np
import pytest
import timm
import torch

from dinosal import scoring
from dinosal.data.synthetic import DrivingConfig, DrivingScenes
from dinosal.features import LastBlockTap, to_batch
from dinosal.saliency import cls_attention, lost, tokencut


def block_features(rows=4, cols=4, obj=((1, 3), (1, 3)), dim=8):
    """(N, dim) features: +e0 on the object block, -e0 + e1 elsewhere (negative dot products across)."""
    f = np.zeros((rows, cols, dim))
    f[..., 0], f[..., 1] = -1.0, 1.0
    (r0, r1), (c0, c1) = obj
    f[r0:r1, c0:c1] = 0.0
    f[r0:r1, c0:c1, 0] = 1.0
    f[r0:r1, c0:c1, 2] = 0.5
    return f.reshape(rows * cols, dim)


def maps_for(feats, grid=(4, 4), patch=8, size=(32, 32), k=4):
    return scoring.MethodMaps(attention=None, lost=lost(feats, grid, patch, size, k=k),
                              tokencut=tokencut(feats, grid, patch, size), patch=patch, image_size=size)


def test_truth_from_boxes_is_the_union_of_the_boxes():
    t = scoring.truth_from_boxes((10, 12), [[0, 0, 3, 2], [2, 1, 5, 4]])
    expected = np.zeros((10, 12), bool)
    expected[0:2, 0:3] = True
    expected[1:4, 2:5] = True
    assert (t.objects == expected).all() and t.parts == {} and t.boxes.shape == (2, 4)


def test_truth_of_lists_every_part_and_partitions_the_image():
    s = next(s for s in DrivingScenes(DrivingConfig(size=48, seed=3)) if len(s.boxes))
    t = scoring.truth_of(s)
    assert list(t.parts) == list(s.part_names)
    cover = t.objects.astype(int) + sum(m.astype(int) for m in t.parts.values())
    assert cover.max() <= 1  # regions do not overlap
    ignored = s.semantic == 255
    assert ((cover == 1) | ignored).all()


def test_score_on_a_known_object_block():
    m = maps_for(block_features())
    objects = np.zeros((32, 32), bool)
    objects[8:24, 8:24] = True
    truth = scoring.GroundTruth(np.array([[8.0, 8, 24, 24]]), objects, {})
    s = scoring.score(m, truth)
    assert m.lost.box.tolist() == [8, 8, 24, 24]
    assert s["lost_hit"] == 1.0 and s["tokencut_hit"] == 1.0
    assert s["lost_mask_iou"] == pytest.approx(1.0) and s["tokencut_mask_iou"] == pytest.approx(1.0)
    assert s["seed_on_object"] == 1.0
    assert s["degree_ratio"] > 1.0  # object patches have the lower degree, so the larger inverse degree
    assert s["object_area"] == pytest.approx(0.25)
    assert np.isnan(s["attention_ratio"]) and np.isnan(s["pointing"])
    # a GT box elsewhere: no hit
    far = scoring.GroundTruth(np.array([[0.0, 24, 8, 32]]), objects, {})
    assert scoring.score(m, far)["lost_hit"] == 0.0


def test_score_rejects_images_without_boxes_and_size_mismatch():
    m = maps_for(block_features())
    with pytest.raises(ValueError, match="no boxes"):
        scoring.score(m, scoring.GroundTruth(np.zeros((0, 4)), np.zeros((32, 32), bool), {}))
    with pytest.raises(ValueError, match="objects is"):
        scoring.score(m, scoring.GroundTruth(np.array([[0.0, 0, 8, 8]]), np.zeros((30, 32), bool), {}))


def test_region_rows_shares_sum_to_one_over_a_partition():
    m = maps_for(block_features())
    objects = np.zeros((32, 32), bool)
    objects[8:24, 8:24] = True
    top = np.zeros((32, 32), bool)
    top[:8] = True
    rest = ~objects & ~top
    rows = scoring.region_rows(m, scoring.GroundTruth(np.array([[8.0, 8, 24, 24]]), objects, {"top": top, "rest": rest}))
    assert {r["map"] for r in rows} == {"inverse degree", "LOST mask", "TokenCut mask"}
    for name in ("inverse degree", "LOST mask", "TokenCut mask"):
        assert sum(r["share"] for r in rows if r["map"] == name) == pytest.approx(1.0)
    lost_obj = next(r for r in rows if r["map"] == "LOST mask" and r["region"] == "objects")
    assert lost_obj["share"] == pytest.approx(1.0) and lost_obj["area"] == pytest.approx(0.25)


def test_pooled_ratio_is_the_ratio_of_means():
    assert scoring.pooled_ratio([0.2, 0.0], [0.1, 0.0]) == pytest.approx(2.0)
    assert scoring.pooled_ratio([0.3, 0.1], [0.1, 0.3]) == pytest.approx(1.0)
    assert np.isnan(scoring.pooled_ratio([0.0, 0.0], [0.0, 0.0]))


def test_centre_box_hits():
    objects = np.zeros((100, 100), bool)
    centred = scoring.GroundTruth(np.array([[25.0, 25, 75, 75]]), objects, {})
    corner = scoring.GroundTruth(np.array([[0.0, 0, 20, 20]]), objects, {})
    assert scoring.centre_box_hits([centred, corner], 0.5).tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="fraction"):
        scoring.centre_box_hits([centred], 0.0)


def test_pixel_features_are_the_patches_in_row_major_order():
    g = np.random.default_rng(0)
    image = g.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    f, grid = scoring.pixel_features(image, 8)
    assert grid == (2, 3) and tuple(f.shape) == (6, 3 * 64)
    x = to_batch(image)[0]
    np.testing.assert_allclose(f[4].numpy(), x[:, 8:16, 8:16].reshape(-1).numpy(), rtol=1e-6)
    fc, _ = scoring.pixel_features(image, 8, centred=True)
    np.testing.assert_allclose(fc.mean(0).numpy(), 0.0, atol=1e-5)
    # a size that is not a multiple of the patch is zero-padded
    f2, grid2 = scoring.pixel_features(image[:13, :20], 8)
    assert grid2 == (2, 3) and float(f2[5].reshape(3, 8, 8)[:, 5:, 4:].abs().max()) == 0.0


def test_run_methods_matches_the_methods_on_tapped_keys():
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32,
                              dynamic_img_size=True, patch_size=8, depth=1).eval()
    g = np.random.default_rng(1)
    images = [g.integers(0, 256, (32, 40, 3), dtype=np.uint8) for _ in range(3)]
    out = scoring.run_methods(model, images, k=5, tau=0.1, batch=2)
    assert len(out) == 3
    with LastBlockTap(model) as tap:
        f = tap(images[2])
    keys = f.patches("k")[0]
    assert out[2].lost.box.tolist() == lost(keys, f.grid, 8, f.image_size, k=5).box.tolist()
    assert (out[2].tokencut.mask == tokencut(keys, f.grid, 8, f.image_size, tau=0.1).mask).all()
    np.testing.assert_allclose(out[2].attention.mean, cls_attention(f.attn[0], f.grid).mean, rtol=1e-5)
    pix = scoring.run_pixel_methods(images[:1], 8, k=100)
    assert pix[0].attention is None and pix[0].lost.potentials.size == 20  # k clamped to N = 4 x 5
    with pytest.raises(ValueError, match="empty"):
        scoring.run_methods(model, [])


def test_resize_short_side_scales_image_and_boxes():
    image = np.zeros((72, 128, 3), np.uint8)
    out, boxes = scoring.resize_short_side(image, [[0, 0, 64, 36], [32, 18, 128, 72]], 48, 8)
    assert out.shape == (48, 88, 3)  # 48 / 72 * 128 = 85.3 -> 88, a multiple of 8
    np.testing.assert_allclose(boxes[1], [32 * 88 / 128, 18 * 48 / 72, 88, 48])
    with pytest.raises(ValueError, match="uint8"):
        scoring.resize_short_side(image.astype(np.float32), [[0, 0, 1, 1]], 48, 8)
