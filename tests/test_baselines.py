"""Baselines that learn nothing: pixel features, pixel LOST, the centred box (dinosal.baselines)."""

import numpy as np
import pytest

from dinosal import baselines
from dinosal.data.sample import GroundTruth, Sample
from dinosal.data.synthetic import ObjectWorld, WorldConfig
from dinosal.features import to_batch


def _square_sample(box):
    """A 32x32 grey image with one saturated red square at ``box`` (xyxy px)."""
    img = np.full((32, 32, 3), 128, np.uint8)
    x0, y0, x1, y1 = box
    img[y0:y1, x0:x1] = (255, 0, 0)
    mask = np.zeros((1, 32, 32), bool)
    mask[0, y0:y1, x0:x1] = True
    return Sample(image=img, boxes=np.array([box], np.float32), labels=np.array([0]), masks=mask,
                  semantic=mask[0].astype(np.uint8) + 0, multi_hot=np.ones(1, np.float32), class_names=("red",),
                  semantic_names=("ground", "red"))


def test_pixel_features_are_the_patches_in_row_major_order():
    g = np.random.default_rng(0)
    image = g.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    f, grid = baselines.pixel_features(image, 8)
    assert grid == (2, 3) and tuple(f.shape) == (6, 3 * 64)
    x = to_batch(image)[0]
    np.testing.assert_allclose(f[4].numpy(), x[:, 8:16, 8:16].reshape(-1).numpy(), rtol=1e-6)
    fc, _ = baselines.pixel_features(image, 8, centred=True)
    np.testing.assert_allclose(fc.mean(0).numpy(), 0.0, atol=1e-5)
    assert (baselines.PixelFeatures(8, centred=True).features(image)[0] == fc).all()
    # a size that is not a multiple of the patch is zero-padded
    f2, grid2 = baselines.pixel_features(image[:13, :20], 8)
    assert grid2 == (2, 3) and float(f2[5].reshape(3, 8, 8)[:, 5:, 4:].abs().max()) == 0.0


def test_centre_box_and_its_hits():
    assert baselines.centre_box((100, 200), 0.5).tolist() == [50, 25, 150, 75]
    objects = np.zeros((100, 100), bool)
    centred = GroundTruth(np.array([[25.0, 25, 75, 75]]), objects, {})
    corner = GroundTruth(np.array([[0.0, 0, 20, 20]]), objects, {})
    assert baselines.centre_box_hits([centred, corner], 0.5).tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="fraction"):
        baselines.centre_box_hits([centred], 0.0)


def test_best_centre_box_takes_one_size_list_and_breaks_ties_to_the_smallest():
    assert baselines.CENTRE_BOX_FRACTIONS == (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    objects = np.zeros((100, 100), bool)
    # a 50 x 50 centred object: fractions 0.4 .. 0.6 all reach IoU >= 0.5 -> the smallest wins
    t = GroundTruth(np.array([[25.0, 25, 75, 75]]), objects, {})
    assert baselines.best_centre_box([t]) == (0.4, 1.0)
    # a small object only the 0.3 box hits (absent from the old library list 0.4 .. 0.9)
    small = GroundTruth(np.array([[35.0, 35, 65, 65]]), objects, {})
    assert baselines.best_centre_box([small]) == (0.3, 1.0)
    # nothing hits: CorLoc 0 at the smallest fraction
    assert baselines.best_centre_box([GroundTruth(np.array([[0.0, 0, 5, 5]]), objects, {})]) == (0.3, 0.0)
    with pytest.raises(ValueError, match="empty"):
        baselines.best_centre_box([])


def test_baseline_corlocs_find_a_contrasted_square_and_score_the_centre_box():
    centred = [_square_sample((16, 16, 32, 32)), _square_sample((0, 0, 16, 16))]
    b = baselines.baseline_corlocs(centred, patch=8, k=4)
    # centred pixels: the square's 4 patches are the only ones against the mean -> exact box
    assert b["pixels_centred"] == 1.0
    # no centred box reaches IoU 0.5 with a corner square (the best, 0.5 of a side, has 1/7)
    assert b["centre_box"] == 0.0 and b["centre_box_fraction"] == 0.3
    middle = [_square_sample((8, 8, 24, 24))]
    m = baselines.baseline_corlocs(middle, patch=8, k=4, fractions=(0.9, 0.5))
    assert m["centre_box"] == 1.0 and m["centre_box_fraction"] == 0.5
    with pytest.raises(ValueError, match="empty"):
        baselines.baseline_corlocs([], patch=8)


def test_pixel_lost_matches_lost_on_pixel_features():
    from dinosal.saliency.lost import lost

    s = _square_sample((16, 16, 32, 32))
    f, grid = baselines.pixel_features(s.image, 8, centred=True)
    assert baselines.pixel_lost(s.image, 8, k=100, centred=True).box.tolist() == \
        lost(f, grid, 8, (32, 32), k=16).box.tolist()  # k clamped to the 16 patches


def test_images_smaller_than_two_patches_name_their_size():
    gen = ObjectWorld(WorldConfig(size=32, seed=3, length=20))
    samples = [s for s in (gen[i] for i in range(len(gen))) if len(s.boxes)][:2]
    for patch in (64, 32):
        with pytest.raises(ValueError, match=rf"samples\[0\]: image of \(H, W\) = \(32, 32\) px is too small for "
                                             rf"the pixel baseline with patch {patch}.*2 patches"):
            baselines.baseline_corlocs(samples, patch=patch)
