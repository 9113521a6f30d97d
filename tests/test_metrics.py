"""Box IoU, CorLoc, mask IoU, mass shares, pointing game, mAP on hand-made cases."""

import numpy as np
import pytest
import torch
import torchvision

from dinosal.metrics import (
    average_precisions,
    box_hits,
    box_iou,
    corloc,
    map_score,
    mask_iou,
    mass_share,
    pointing_game,
)


def test_box_iou_hand_made():
    a = np.array([[0, 0, 10, 10], [0, 0, 1, 1]])
    b = np.array([[5, 5, 15, 15], [10, 0, 20, 10], [0, 0, 10, 10], [0, 0, 2, 2]])
    iou = box_iou(a, b)
    assert iou.shape == (2, 4)
    np.testing.assert_allclose(iou[0], [25 / 175, 0.0, 1.0, 4 / 100])   # touching edges: 0 (exclusive max)
    np.testing.assert_allclose(iou[1], [0.0, 0.0, 1 / 100, 1 / 4])
    assert box_iou([0, 0, 0, 0], [0, 0, 0, 0]).tolist() == [[0.0]]


def test_box_iou_matches_torchvision_on_random_boxes():
    g = np.random.default_rng(0)
    xy = g.integers(0, 50, (30, 2))
    wh = g.integers(1, 30, (30, 2))
    boxes = np.hstack([xy, xy + wh]).astype(float)
    ref = torchvision.ops.box_iou(torch.tensor(boxes[:12]), torch.tensor(boxes[12:])).numpy()
    np.testing.assert_allclose(box_iou(boxes[:12], boxes[12:]), ref, rtol=1e-12)


def test_box_iou_bad_input():
    with pytest.raises(ValueError, match=r"a must have shape \(n, 4\)"):
        box_iou(np.zeros((2, 3)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="x2 < x1"):
        box_iou([[5, 0, 1, 1]], [[0, 0, 1, 1]])


def test_corloc_any_gt_box():
    pred = [[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]]
    gts = [
        np.array([[50, 50, 60, 60], [0, 0, 10, 12]]),   # second GT: IoU 100/120 -> hit
        np.array([[0, 0, 10, 20]]),                      # IoU 0.5 exactly -> hit (>=)
        np.array([[20, 20, 31, 40]]),                    # IoU 100/220 -> miss
    ]
    assert box_hits(pred, gts).tolist() == [True, True, False]
    assert corloc(pred, gts) == pytest.approx(2 / 3)
    assert corloc(pred, gts, thr=0.9) == 0.0
    with pytest.raises(ValueError, match=r"gt_boxes\[1\] is empty"):
        corloc(pred, [gts[0], np.zeros((0, 4)), gts[2]])
    with pytest.raises(ValueError, match="3 boxes but gt_boxes has 2"):
        corloc(pred, gts[:2])


def test_mask_iou():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2, :2] = True
    b[1:3, 1:3] = True
    assert mask_iou(a, b) == pytest.approx(1 / 7)
    batch = mask_iou(np.stack([a, a, np.zeros_like(a)]), np.stack([b, a, np.zeros_like(a)]))
    np.testing.assert_allclose(batch, [1 / 7, 1.0, np.nan])
    with pytest.raises(ValueError, match="share a shape"):
        mask_iou(a, b[:3])


def test_mass_share_hand_made():
    s = np.zeros((4, 4))
    s[0, 0] = 3.0       # in the object
    s[3, :] = 0.25      # the road row, total 1
    masks = {"object": np.zeros((4, 4), bool), "road": np.zeros((4, 4), bool), "sky": np.zeros((4, 4), bool)}
    masks["object"][:2, :2] = True
    masks["road"][3] = True
    res = mass_share(s, masks)
    assert res["object"].share == pytest.approx(0.75) and res["object"].area == pytest.approx(0.25)
    assert res["object"].ratio == pytest.approx(3.0)
    assert res["road"].share == pytest.approx(0.25) and res["road"].ratio == pytest.approx(1.0)
    assert res["sky"].share == 0.0 and np.isnan(res["sky"].ratio)
    # batched: one map per image, masks shared or per image
    batch = mass_share(np.stack([s, np.ones((4, 4))]), {"object": masks["object"]})
    np.testing.assert_allclose(batch["object"].share, [0.75, 0.25])
    np.testing.assert_allclose(batch["object"].ratio, [3.0, 1.0])
    zero = mass_share(np.zeros((4, 4)), {"object": masks["object"]})
    assert np.isnan(zero["object"].share)


def test_mass_share_bad_input():
    with pytest.raises(ValueError, match="non-negative"):
        mass_share(-np.ones((4, 4)), {"a": np.ones((4, 4), bool)})
    with pytest.raises(ValueError, match=r"masks\['a'\] has shape \(3, 4\)"):
        mass_share(np.ones((4, 4)), {"a": np.ones((3, 4), bool)})


def test_pointing_game_with_tolerance():
    s = np.zeros((10, 10))
    s[5, 5] = 1.0
    m = np.zeros((10, 10), bool)
    m[5, 8:] = True                     # nearest object pixel is 3 px away
    assert pointing_game(s, m) is False
    assert pointing_game(s, m, tolerance=2.9) is False
    assert pointing_game(s, m, tolerance=3.0) is True
    m2 = m.copy()
    m2[5, 5] = True
    hits = pointing_game(np.stack([s, s, s]), np.stack([m, m2, np.zeros_like(m)]))
    assert hits.tolist() == [False, True, False]
    # ties: the first maximum in row-major order counts
    t = np.ones((3, 3))
    mt = np.zeros((3, 3), bool)
    mt[0, 0] = True
    assert pointing_game(t, mt) is True


def test_average_precision_and_map():
    y = np.array([[1, 0], [0, 1], [1, 0], [0, 0]])
    s = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.1, 0.9]])
    ap = average_precisions(y, s)
    # class 0: ranks 1 (pos), 2 (neg), 3 (pos): AP = (1/1 + 2/3) / 2
    assert ap[0] == pytest.approx((1 + 2 / 3) / 2)
    # class 1: the single positive has score 0.2, ranked 3rd: AP = 1/3
    assert ap[1] == pytest.approx(1 / 3)
    assert map_score(y, s) == pytest.approx(((1 + 2 / 3) / 2 + 1 / 3) / 2)
    y3 = np.hstack([y, np.zeros((4, 1), int)])
    s3 = np.hstack([s, np.zeros((4, 1))])
    assert np.isnan(average_precisions(y3, s3)[2])
    assert map_score(y3, s3) == pytest.approx(map_score(y, s))   # classes without positives skipped
    with pytest.raises(ValueError, match="multi-hot"):
        map_score(y * 2, s)


def test_scores_over_no_images_raise_instead_of_nan():
    with pytest.raises(ValueError, match="corloc needs at least one image"):
        corloc(np.zeros((0, 4)), [])
    with pytest.raises(ValueError, match="corloc needs at least one image"):
        corloc([], [])
    with pytest.raises(ValueError, match="pred_boxes has 1 boxes but gt_boxes has 2 images"):
        corloc([[0, 0, 1, 1]], [np.array([[0, 0, 1, 1]]), np.array([[0, 0, 1, 1]])])
    with pytest.raises(ValueError, match="y_true and scores are empty"):
        average_precisions(np.zeros((0, 3)), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="y_true and scores are empty"):
        map_score(np.zeros((0, 3)), np.zeros((0, 3)))
    assert box_hits(np.zeros((0, 4)), []).shape == (0,)  # per-image hits of no image: no division, no error
