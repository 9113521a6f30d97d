"""The localisation path: run the methods, score one image, summarise a set (dinosal.localisation)."""

import dataclasses

import numpy as np
import pytest
import timm
import torch

from dinosal import localisation as loc
from dinosal import zoo
from dinosal.baselines import PixelFeatures
from dinosal.data.sample import GroundTruth, object_mask, truth_from_boxes, truth_of
from dinosal.data.synthetic import DrivingConfig, DrivingScenes
from dinosal.features import LastBlockTap
from dinosal.metrics import mass_share
from dinosal.models import create_vit
from dinosal.saliency import cls_attention, lost, tokencut
from dinosal.saliency.attention import upsample


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
    return loc.maps_of_features(feats, grid, patch, size, k=k)


# ------------------------------------------------ ground truth (dinosal.data.sample)


def test_truth_from_boxes_is_the_union_of_the_boxes():
    t = truth_from_boxes((10, 12), [[0, 0, 3, 2], [2, 1, 5, 4]])
    expected = np.zeros((10, 12), bool)
    expected[0:2, 0:3] = True
    expected[1:4, 2:5] = True
    assert (t.objects == expected).all() and t.parts == {} and t.boxes.shape == (2, 4)


def test_truth_of_lists_every_part_and_partitions_the_image():
    s = next(s for s in DrivingScenes(DrivingConfig(size=48, seed=3)) if len(s.boxes))
    t = truth_of(s)
    assert list(t.parts) == list(s.part_names)
    cover = t.objects.astype(int) + sum(m.astype(int) for m in t.parts.values())
    assert cover.max() <= 1  # regions do not overlap
    ignored = s.semantic == 255
    assert ((cover == 1) | ignored).all()


# ------------------------------------------------ score one image


def test_score_on_a_known_object_block():
    m = maps_for(block_features())
    objects = np.zeros((32, 32), bool)
    objects[8:24, 8:24] = True
    truth = GroundTruth(np.array([[8.0, 8, 24, 24]]), objects, {})
    s = loc.score(m, truth)
    assert m.lost.box.tolist() == [8, 8, 24, 24]
    assert s["lost_hit"] == 1.0 and s["tokencut_hit"] == 1.0
    assert s["lost_mask_iou"] == pytest.approx(1.0) and s["tokencut_mask_iou"] == pytest.approx(1.0)
    assert s["seed_on_object"] == 1.0
    assert s["degree_ratio"] > 1.0  # object patches have the lower degree, so the larger inverse degree
    assert s["object_area"] == pytest.approx(0.25)
    assert np.isnan(s["attention_ratio"]) and np.isnan(s["pointing"])
    assert loc.head_ratios(m, truth).shape == (0,)
    # a GT box elsewhere: no hit
    far = GroundTruth(np.array([[0.0, 24, 8, 32]]), objects, {})
    assert loc.score(m, far)["lost_hit"] == 0.0
    # TokenCut not run: its scores are NaN, LOST's unchanged
    no_tc = loc.maps_of_features(block_features(), (4, 4), 8, (32, 32), k=4, tau=None)
    s2 = loc.score(no_tc, truth)
    assert no_tc.tokencut is None and np.isnan(s2["tokencut_hit"]) and np.isnan(s2["tokencut_mask_iou"])
    assert s2["lost_hit"] == s["lost_hit"] and s2["degree_ratio"] == s["degree_ratio"]


def test_score_rejects_images_without_boxes_and_size_mismatch():
    m = maps_for(block_features())
    with pytest.raises(ValueError, match="no boxes"):
        loc.score(m, GroundTruth(np.zeros((0, 4)), np.zeros((32, 32), bool), {}))
    with pytest.raises(ValueError, match="objects is"):
        loc.score(m, GroundTruth(np.array([[0.0, 0, 8, 8]]), np.zeros((30, 32), bool), {}))


def test_region_rows_shares_sum_to_one_over_a_partition():
    m = maps_for(block_features())
    objects = np.zeros((32, 32), bool)
    objects[8:24, 8:24] = True
    top = np.zeros((32, 32), bool)
    top[:8] = True
    rest = ~objects & ~top
    rows = loc.region_rows(m, GroundTruth(np.array([[8.0, 8, 24, 24]]), objects, {"top": top, "rest": rest}))
    assert {r["map"] for r in rows} == {"inverse degree", "LOST mask", "TokenCut mask"}
    for name in ("inverse degree", "LOST mask", "TokenCut mask"):
        assert sum(r["share"] for r in rows if r["map"] == name) == pytest.approx(1.0)
    lost_obj = next(r for r in rows if r["map"] == "LOST mask" and r["region"] == loc.OBJECTS)
    assert lost_obj["share"] == pytest.approx(1.0) and lost_obj["area"] == pytest.approx(0.25)


def test_pooled_ratio_is_the_ratio_of_means():
    assert loc.pooled_ratio([0.2, 0.0], [0.1, 0.0]) == pytest.approx(2.0)
    assert loc.pooled_ratio([0.3, 0.1], [0.1, 0.3]) == pytest.approx(1.0)
    assert np.isnan(loc.pooled_ratio([0.0, 0.0], [0.0, 0.0]))


# ------------------------------------------------ run


def test_run_methods_matches_the_methods_on_tapped_keys():
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32,
                              dynamic_img_size=True, patch_size=8, depth=1).eval()
    g = np.random.default_rng(1)
    images = [g.integers(0, 256, (32, 40, 3), dtype=np.uint8) for _ in range(3)]
    out = loc.run_methods(model, images, k=5, tau=0.1, batch=2)
    assert len(out) == 3
    with LastBlockTap(model) as tap:
        f = tap(images[2])
    keys = f.patches("k")[0]
    assert out[2].lost.box.tolist() == lost(keys, f.grid, 8, f.image_size, k=5).box.tolist()
    assert (out[2].tokencut.mask == tokencut(keys, f.grid, 8, f.image_size, tau=0.1).mask).all()
    np.testing.assert_allclose(out[2].attention.mean, cls_attention(f.attn[0], f.grid).mean, rtol=1e-5)
    assert loc.run_methods(model, images[:1], k=5, tau=None)[0].tokencut is None
    pix = loc.run_methods(PixelFeatures(8), images[:1], k=100)
    assert pix[0].attention is None and pix[0].lost.potentials.size == 20  # k clamped to N = 4 x 5
    with pytest.raises(ValueError, match="empty"):
        loc.run_methods(model, [])
    with pytest.raises(ValueError, match=r"images\[0\]: image of \(H, W\) = \(32, 40\) px is too small"):
        loc.run_methods(PixelFeatures(64), images[:1])
    with pytest.raises(TypeError, match="PixelFeatures"):
        loc.run_methods(object(), images)


def test_resize_short_side_scales_image_and_boxes():
    image = np.zeros((72, 128, 3), np.uint8)
    out, boxes = loc.resize_short_side(image, [[0, 0, 64, 36], [32, 18, 128, 72]], 48, 8)
    assert out.shape == (48, 88, 3)  # 48 / 72 * 128 = 85.3 -> 88, a multiple of 8
    np.testing.assert_allclose(boxes[1], [32 * 88 / 128, 18 * 48 / 72, 88, 48])
    with pytest.raises(ValueError, match="uint8"):
        loc.resize_short_side(image.astype(np.float32), [[0, 0, 1, 1]], 48, 8)


# ------------------------------------------------ summarise, localisation_scores


def test_localisation_scores_match_the_metrics_image_by_image(vit, samples):
    s = loc.localisation_scores(vit, samples, k=5, batch=2)
    assert s.n == len(samples)
    assert 0.0 <= s.corloc <= 1.0 and 0.0 <= s.pointing <= 1.0
    ratios, head_ratios = [], []
    with LastBlockTap(vit) as tap:
        for smp in samples:
            f = tap(smp.image)
            mask = {"o": object_mask(smp)}
            mean = upsample(f.attn[0].mean(0).reshape(f.grid).numpy(), 8)[:32, :32]
            ratios.append(mass_share(mean, mask)["o"].ratio)
            head_ratios.append([mass_share(upsample(a.reshape(f.grid).numpy(), 8), mask)["o"].ratio for a in f.attn[0]])
    per_head = np.mean(head_ratios, axis=0)
    assert s.attn_ratio == pytest.approx(float(np.mean(ratios)), rel=1e-5)
    assert s.attn_ratio_best_head == pytest.approx(float(per_head.max()), rel=1e-5)
    assert s.best_head == int(per_head.argmax())
    assert s.object_area == pytest.approx(float(np.mean([object_mask(x).mean() for x in samples])))


def test_localisation_scores_reject_bad_input(vit, samples):
    empty = dataclasses.replace(samples[0], boxes=np.zeros((0, 4), np.float32), labels=np.zeros(0, np.int64),
                                masks=np.zeros((0, 32, 32), bool))
    with pytest.raises(ValueError, match=r"samples\[1\] has no object"):
        loc.localisation_scores(vit, [samples[0], empty])
    with pytest.raises(ValueError, match="samples is empty"):
        loc.localisation_scores(vit, [])
    with pytest.raises(TypeError, match=r"samples\[0\] must be a Sample"):
        loc.localisation_scores(vit, [samples[0].image])
    # a 32 px patch gives one patch per 32 x 32 image
    one_patch = create_vit((32, 1, 2), patch=32, img_size=32)
    with pytest.raises(ValueError, match=r"samples\[0\]: an image of \(H, W\) = \(32, 32\) px with patch 32 gives "
                                         r"1 patch; LOST needs at least 2"):
        loc.localisation_scores(one_patch, samples)
    with pytest.raises(ValueError, match="maps has 2 images but truths has 1"):
        loc.summarise(loc.run_methods(vit, [s.image for s in samples[:2]], tau=None), [truth_of(samples[0])])


def test_summarise_of_a_backbone_without_attention_has_nan_attention(samples):
    maps = loc.run_methods(PixelFeatures(8, centred=True), [s.image for s in samples], k=4, tau=None)
    s = loc.summarise(maps, [truth_of(x) for x in samples])
    assert np.isnan(s.attn_ratio) and np.isnan(s.attn_ratio_best_head) and s.best_head == -1
    assert np.isnan(s.pointing) and 0.0 <= s.corloc <= 1.0


@pytest.mark.parametrize("data", ["world", "driving"])
def test_localisation_scores_equal_the_per_image_composition_on_smoke_images(data):
    # what the saliency chapter computes (run with TokenCut -> score per image -> means over images)
    # and what the DINO chapters report (localisation_scores) agree on the same images
    samples = zoo.held_out_samples(zoo.evaluation_spec(f"dino_{data}", "smoke"), 6, size=48)
    random_model, _ = zoo.get("random", "smoke")
    torch.manual_seed(1)
    other = create_vit((32, 2, 2), patch=8, img_size=32)
    for model in (random_model, other):
        ls = loc.localisation_scores(model, samples, k=10)
        maps = loc.run_methods(model, [s.image for s in samples], k=10, tau=0.2, batch=4)
        per_image = [loc.score(m, truth_of(s)) for m, s in zip(maps, samples)]
        assert ls.n == len(samples)
        assert ls.corloc == pytest.approx(np.mean([r["lost_hit"] for r in per_image]), abs=1e-12)
        assert ls.pointing == pytest.approx(np.mean([r["pointing"] for r in per_image]), abs=1e-12)
        assert ls.attn_ratio == pytest.approx(np.nanmean([r["attention_ratio"] for r in per_image]), rel=1e-6)
        assert ls.object_area == pytest.approx(np.mean([r["object_area"] for r in per_image]), rel=1e-9)
        assert ls == loc.summarise(maps, [truth_of(s) for s in samples])
