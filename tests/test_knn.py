"""k-NN vote on a hand-made case; CLS features on a tiny ViT (dinosal.knn)."""

import numpy as np
import pytest
import torch

from dinosal.features import LastBlockTap
from dinosal.knn import KnnSets, cls_features, knn_accuracy, knn_eval, knn_predict
from dinosal.models import create_vit


def _unit(deg):
    r = np.deg2rad(deg)
    return np.array([np.cos(r), np.sin(r)])


# test point at 0 deg; neighbours: class 0 at 0 deg (cos 1), two of class 1 at
# +-36.87 deg (cos 0.8), one of class 2 far away (cos -1).
TRAIN = np.stack([_unit(0), _unit(36.87), _unit(-36.87), _unit(180)])
LABELS = np.array([0, 1, 1, 2])
TEST = _unit(0)[None]


def test_knn_weights_decide_against_the_majority_at_low_temperature():
    # T = 0.07: exp(1/0.07) = 1.6e6 beats 2 * exp(0.8/0.07) = 1.8e5 -> class 0
    assert knn_predict(TRAIN, LABELS, TEST, k=3, T=0.07).tolist() == [0]
    # T = 1: e^1 = 2.72 loses to 2 e^0.8 = 4.45 -> class 1 (majority)
    assert knn_predict(TRAIN, LABELS, TEST, k=3, T=1.0).tolist() == [1]
    # k = 1: the nearest only
    assert knn_predict(TRAIN, LABELS, TEST, k=1, T=1.0).tolist() == [0]


def test_knn_normalises_rows_and_scores_accuracy():
    scaled = TRAIN * np.array([[3.0], [0.5], [0.5], [2.0]])  # lengths must not matter
    test = np.stack([_unit(0), _unit(175), _unit(40)]) * 7.0
    pred = knn_predict(torch.tensor(scaled), LABELS, test, k=1)
    assert pred.tolist() == [0, 2, 1]
    assert knn_accuracy(scaled, LABELS, test, np.array([0, 2, 0]), k=1) == pytest.approx(2 / 3)


def test_knn_tie_goes_to_lowest_class_and_bad_input_is_named():
    train = np.stack([_unit(10), _unit(-10)])
    assert knn_predict(train, np.array([3, 1]), TEST, k=2, num_classes=4).tolist() == [1]
    with pytest.raises(ValueError, match="k must be"):
        knn_predict(TRAIN, LABELS, TEST, k=5)
    with pytest.raises(ValueError, match="train_labels"):
        knn_predict(TRAIN, LABELS[:3], TEST, k=2)
    with pytest.raises(ValueError, match="share D"):
        knn_predict(TRAIN, LABELS, np.ones((1, 3)), k=2)


def test_knn_rejects_empty_and_mismatched_inputs():
    with pytest.raises(ValueError, match="test_feats is empty"):
        knn_accuracy(TRAIN, LABELS, np.zeros((0, 2)), np.zeros(0, np.int64), k=1)
    with pytest.raises(ValueError, match="test_feats is empty"):
        knn_predict(TRAIN, LABELS, np.zeros((0, 2)), k=1)
    with pytest.raises(ValueError, match="train_feats is empty"):
        knn_predict(np.zeros((0, 2)), np.zeros(0, np.int64), TEST, k=1)
    with pytest.raises(ValueError, match=r"test_labels must be a 1-D array of 1 labels"):
        knn_accuracy(TRAIN, LABELS, TEST, np.array([0, 1]), k=1)
    with pytest.raises(ValueError, match="chunk must be"):
        knn_predict(TRAIN, LABELS, TEST, k=1, chunk=0)


def test_cls_features_are_unit_rows_and_input_kinds_agree(vit, samples):
    vit.train()
    f = cls_features(vit, samples, batch=2)
    assert f.shape == (len(samples), 32)
    assert torch.allclose(f.norm(dim=1), torch.ones(len(samples)), atol=1e-5)
    assert vit.training  # mode restored
    g = cls_features(vit, [s.image for s in samples], batch=64)
    assert torch.allclose(f, g, atol=1e-5)
    vit.eval()
    x = torch.as_tensor(np.stack([s.image for s in samples])).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    with torch.no_grad():
        ref = torch.nn.functional.normalize(vit(x), dim=-1)
    assert torch.allclose(f, ref, atol=1e-5)
    assert torch.allclose(cls_features(vit, x, batch=3), ref, atol=1e-5)  # a normalised tensor is taken as is
    with pytest.raises(TypeError, match=r"images\[0\]"):
        cls_features(vit, [np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(ValueError, match="images is empty"):
        cls_features(vit, [])


def test_knn_eval_is_features_then_accuracy(vit, samples):
    y = np.array([int(s.labels[0]) for s in samples])
    sets = KnnSets(samples[:3], samples[3:], y[:3], y[3:], samples[0].class_names)
    acc = knn_eval(vit, sets, k=2)
    f_tr, f_te = cls_features(vit, samples[:3]), cls_features(vit, samples[3:])
    assert acc == knn_accuracy(f_tr, y[:3], f_te, y[3:], k=2)


def test_cls_features_pad_any_image_size_like_the_feature_tap(vit):
    rng = np.random.default_rng(0)
    odd = [rng.integers(0, 255, (100, 77, 3), dtype=np.uint8) for _ in range(2)]
    square = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    f = cls_features(vit, [odd[0], square, odd[1]], batch=8)  # sizes may differ
    assert f.shape == (3, 32) and torch.isfinite(f).all()
    # the same input as the tap: zero-padded (after normalisation) to 104 x 80
    from dinosal.features import prepare, to_batch

    x = prepare(to_batch(odd[0]), 8).pixels
    assert tuple(x.shape[-2:]) == (104, 80)
    with torch.no_grad():
        ref = torch.nn.functional.normalize(vit.eval()(x), dim=-1)
    assert torch.allclose(f[0], ref[0], atol=1e-5)
    assert torch.allclose(cls_features(vit, [square], batch=1)[0], f[1], atol=1e-5)
    with pytest.raises(ValueError, match=r"images\[1\]: image size \(H, W\) = \(5, 77\) is smaller than one patch \(8 px\)"):
        cls_features(vit, [odd[0], odd[0][:5]])
    fixed = create_vit((32, 1, 2), patch=8, img_size=32, dynamic_img_size=False)
    with pytest.raises(ValueError, match=r"fixed img_size \(32, 32\) but the input is \(104, 80\).*dynamic_img_size=True"):
        cls_features(fixed, odd)


def test_every_path_that_feeds_a_backbone_checks_a_fixed_input_size():
    # the feature tap, cls_features (above) and the class-map methods: a ViT created with a
    # fixed img_size stops with a ValueError naming both sizes, not timm's bare AssertionError
    from dinosal.saliency.classmaps import attention_rollout

    fixed = create_vit((32, 1, 2), patch=8, img_size=32, dynamic_img_size=False)
    image = np.zeros((36, 40, 3), np.uint8)
    with pytest.raises(ValueError, match=r"fixed img_size \(32, 32\) but the input is \(40, 40\) \(an image of "
                                         r"\(H, W\) = \(36, 40\)"):
        attention_rollout(fixed, image)
    with LastBlockTap(fixed) as tap, pytest.raises(ValueError, match=r"fixed img_size \(32, 32\)"):
        tap(image)
