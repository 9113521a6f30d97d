"""Classifier transfer: heads, losses, metrics, probe vs fine-tune, class maps, resume, DDP."""

import math
import os

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, average_precision_score, confusion_matrix

from gloo_workers import run_workers

from dinosal.data.sample import Sample
from dinosal.data.synthetic import DrivingConfig, DrivingScenes, SingleVehicles, VehicleConfig
from dinosal.features import LastBlockTap
from dinosal.losses import patch_targets, transfer_loss
from dinosal.metrics import classification_scores, pointing_game
from dinosal.models import Classifier, LinearHead, PatchClassifier, create_vit, load_dino_backbone
from dinosal.saliency.classmaps import grad_cam, gradient_rollout, patch_head_map
from dinosal.saliency.grid import upsample
from dinosal.train.runtime import snapshot_path
from dinosal.train.transfer import (
    CHECKPOINT,
    LOG_CSV,
    TransferConfig,
    TransferTrainer,
    backbone_from_file,
    build_classifier,
    load_transfer,
    train_transfer,
)
from dinosal.train.transfer_data import TransferTransform
from dinosal.train.updates import vit_layer_id


def tiny_vit(seed=0, depth=2):
    torch.manual_seed(seed)
    return create_vit((32, depth, 2), patch=8, img_size=32)


def tiny_cfg(**kw) -> TransferConfig:
    base = dict(img_size=32, batch_size=4, epochs=2, steps_per_epoch=2, progress=False, eval_batch_size=16)
    base.update(kw)
    mode = base.pop("mode", "probe")
    if mode == "finetune":
        base.setdefault("warmup_epochs", 0)
        base.setdefault("drop_path", 0.0)
    return TransferConfig.recipe(mode, **base)


def vehicles(n=16, seed=1):
    return SingleVehicles(VehicleConfig(size=32, seed=seed, length=n))


def driving(n=16, seed=1):
    return DrivingScenes(DrivingConfig(size=32, seed=seed, length=n))


# ---------------------------------------------------------------- heads


def manual_tokens(vit, x):
    """Every block's output, by running timm's pieces one by one."""
    h = vit.norm_pre(vit._pos_embed(vit.patch_embed(x)))
    outs = []
    for blk in vit.blocks:
        h = blk(h)
        outs.append(h)
    return outs


def test_head_shapes_and_init():
    vit = tiny_vit(depth=3).eval()
    x = torch.randn(2, 3, 32, 24)
    torch.manual_seed(0)
    paper = build_classifier(vit, 5)                       # the paper's classifier: last block's CLS
    assert isinstance(paper, Classifier) and paper.head.linear.in_features == 32
    assert torch.equal(paper.head.linear.bias, torch.zeros(5))
    with torch.no_grad():
        torch.testing.assert_close(paper(x), paper.head(vit(x)), rtol=0, atol=0)
        outs = [vit.norm(o) for o in manual_tokens(vit, x)]
        dino = build_classifier(vit, 5, n_last_blocks=2, avgpool=True)
        want = torch.cat([outs[1][:, 0], outs[2][:, 0], outs[2][:, 1:].mean(1)], dim=-1)
        torch.testing.assert_close(dino.features(x), want, rtol=1e-5, atol=1e-6)
        assert dino(x).shape == (2, 5) and dino.head.linear.in_features == 96
        patch = build_classifier(vit, 4, "patch_bce")
        assert isinstance(patch, PatchClassifier) and patch.head.multi_label
        assert patch(x).shape == (2, 12, 4)                # a (4, 3) grid, row-major
        torch.testing.assert_close(patch(x)[:, 5], patch.head(outs[2][:, 1 + 5]), rtol=1e-5, atol=1e-6)
    torch.manual_seed(0)
    big = LinearHead(96, 500)                              # eval_linear's init: N(0, 0.01), bias 0
    assert big.linear.weight.std().item() == pytest.approx(0.01, rel=0.03)
    assert abs(big.linear.weight.mean().item()) < 1e-3 and torch.all(big.linear.bias == 0)
    with pytest.raises(ValueError, match="head.in_dim is 32 but the features are 64"):
        Classifier(vit, LinearHead(32, 3), n_last_blocks=2)
    with pytest.raises(ValueError, match="n_last_blocks=4"):
        build_classifier(vit, 3, n_last_blocks=4).features(x)


# ---------------------------------------------------------------- losses


def test_losses_against_hand_computed_values():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    ce = transfer_loss(logits, torch.tensor([0, 2]), "ce")
    by_hand = (-math.log(math.exp(2) / (math.exp(2) + 1 + math.exp(-1))) + math.log(3)) / 2
    assert ce.item() == pytest.approx(by_hand, rel=1e-6)

    def softplus(z):  # -log sigmoid(-z): the BCE of a 0 target
        return math.log1p(math.exp(z))

    bce = transfer_loss(torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 0.0]]), "bce")
    assert bce.item() == pytest.approx((softplus(0.0) + softplus(2.0)) / 2, rel=1e-6)   # mean over B*C
    patch = transfer_loss(torch.tensor([[[1.0, -1.0], [3.0, 0.0]]]), torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]),
                          "patch_bce")
    assert patch.item() == pytest.approx((softplus(-1) + softplus(-1) + softplus(3) + softplus(0)) / 4, rel=1e-6)

    with pytest.raises(ValueError, match="loss must be one of"):
        transfer_loss(logits, torch.tensor([0, 1]), "mse")
    with pytest.raises(ValueError, match="class indices must lie in 0..2"):
        transfer_loss(logits, torch.tensor([0, 3]), "ce")
    with pytest.raises(ValueError, match="target for 'bce' must match logits"):
        transfer_loss(logits, torch.ones(2, 2), "bce")
    with pytest.raises(ValueError, match="logits for 'patch_bce' must have 3 dims"):
        transfer_loss(logits, torch.ones(2, 3), "patch_bce")


def test_patch_targets_follow_the_centre_rule():
    # grid (2, 3), patch 8: centres x = 4, 12, 20 and y = 4, 12
    boxes = [[0, 0, 12, 8],      # x2 = 12 is exclusive: covers centre (4, 4) only -> token 0
             [8, 4, 24, 16],     # centres x 12, 20 and y 4, 12 -> tokens 1, 2, 4, 5
             [10, 10, 14, 14],   # centre (12, 12) -> token 4
             [1, 1, 3, 3]]       # smaller than a patch, covers no centre
    t = patch_targets(boxes, [0, 1, 0, 2], num_classes=3, grid=(2, 3), patch=8)
    want = torch.zeros(6, 3)
    want[0, 0] = 1
    want[[1, 2, 4, 5], 1] = 1
    want[4, 0] = 1                                         # two boxes: the union of their labels
    assert torch.equal(t, want)
    assert torch.equal(patch_targets(np.zeros((0, 4)), [], 3, (2, 3), 8), torch.zeros(6, 3))
    with pytest.raises(ValueError, match="labels must lie in 0..2"):
        patch_targets(boxes[:1], [3], 3, (2, 3), 8)
    with pytest.raises(ValueError, match="2 boxes but 1 labels"):
        patch_targets(boxes[:2], [0], 3, (2, 3), 8)


def test_patch_targets_follow_the_flip_and_the_resize():
    sample = next(s for s in toy_squares(8, 0) if len(s.labels))
    x1, y1 = int(sample.boxes[0, 0]) // 8, int(sample.boxes[0, 1]) // 8
    k = int(sample.labels[0])
    # crop_scale (1, 1) on a square image is the whole image; 64 px doubles every coordinate
    flip = TransferTransform("patch_bce", 3, img_size=64, patch=8, train=True, crop_scale=(1, 1), flip_p=1.0)
    x, t = flip(sample)
    assert x.shape == (3, 64, 64) and t.shape == (64, 3)
    want = torch.zeros(8, 8, 3)
    want[2 * y1:2 * y1 + 2, 8 - 2 * x1 - 2:8 - 2 * x1, k] = 1
    assert torch.equal(t.reshape(8, 8, 3), want)
    plain = TransferTransform("bce", 3, img_size=32, patch=8, train=False)
    assert torch.equal(plain(sample)[1], torch.as_tensor(sample.multi_hot))


# ---------------------------------------------------------------- metrics


def test_map_and_top1_against_sklearn():
    rng = np.random.default_rng(0)
    y = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 1, 0]])
    s = rng.normal(size=y.shape)
    res = classification_scores("bce", y, s, ["a", "b", "c", "d"])
    want = [average_precision_score(y[:, c], s[:, c]) for c in range(3)]
    np.testing.assert_allclose(res.ap[:3], want, rtol=1e-12)
    assert np.isnan(res.ap[3]) and res.classes_without_positives == ("d",)
    assert res.map == pytest.approx(np.mean(want), rel=1e-12)
    assert res.top1 is None and res.per_class()["in_map"].tolist() == [True, True, True, False]

    labels = np.array([0, 2, 1, 2, 2, 0])
    ce = classification_scores("ce", labels, s[:, :3], ["a", "b", "c"])
    assert ce.top1 == pytest.approx(accuracy_score(labels, s[:, :3].argmax(1)))
    np.testing.assert_array_equal(ce.confusion_matrix, confusion_matrix(labels, s[:, :3].argmax(1), labels=[0, 1, 2]))
    with pytest.raises(ValueError, match="one column per class"):
        classification_scores("ce", labels, s, ["a", "b", "c"])


# ---------------------------------------------------------------- probe vs fine-tune


def _last_block(vit, images):
    with LastBlockTap(vit) as tap:
        f = tap(images)
    return f.k, f.attn


def test_probe_leaves_the_backbone_bit_identical_and_finetune_changes_it():
    vit = tiny_vit()
    before = {k: v.clone() for k, v in vit.state_dict().items()}
    data = vehicles()
    images = [data[i].image for i in range(4)]
    k0, a0 = _last_block(vit, images)

    probe = train_transfer(tiny_cfg(lr=5.0), vit, data)
    bb = probe.model.backbone
    assert all(torch.equal(v, before[k]) for k, v in bb.state_dict().items())
    assert all(not p.requires_grad for p in bb.parameters())
    probe.model.train()
    assert not bb.training and probe.model.head.training     # a frozen backbone stays in eval mode
    k1, a1 = _last_block(bb, images)
    assert torch.equal(k0, k1) and torch.equal(a0, a1)
    assert probe.model.head.linear.bias.abs().sum() > 0       # the head did learn

    fine = train_transfer(tiny_cfg(mode="finetune", lr=0.05), vit, data)
    k2, a2 = _last_block(fine.model.backbone, images)
    assert not torch.equal(k0, k2) and not torch.equal(a0, a2)
    assert all(torch.equal(v, before[k]) for k, v in vit.state_dict().items())   # the caller's model: untouched


def test_precomputed_probe_is_the_probe_on_unaugmented_images():
    vit, data = tiny_vit(), vehicles()
    cfg = tiny_cfg(lr=2.0, augment=False, n_last_blocks=2)
    on_the_fly = train_transfer(cfg, vit, data)
    precomputed = train_transfer(cfg.replace(precompute_features=True), vit, data)
    for a, b in zip(on_the_fly.log, precomputed.log):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    torch.testing.assert_close(on_the_fly.model.head.linear.weight, precomputed.model.head.linear.weight,
                               rtol=1e-5, atol=1e-7)


def test_layerwise_decay_and_backbone_lr_set_the_group_rates():
    vit, data = tiny_vit(), vehicles()
    cfg = tiny_cfg(mode="finetune", lr=0.02, backbone_lr=0.01, layer_decay=0.5, batch_size=4)
    trainer = TransferTrainer(cfg, vit, data.class_names, steps_per_epoch=2)
    x = torch.randn(4, 3, 32, 32)
    row = trainer.train_step(x, torch.tensor([0, 1, 2, 3]))
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    for group in trainer.optimizer.param_groups:
        for p in group["params"]:
            name = names[id(p)]
            scale = 1.0 if name.startswith("head.") else 0.5 * 0.5 ** (3 - vit_layer_id(name, 2))
            assert group["lr"] == pytest.approx(row["lr"] * scale), name
            assert group["weight_decay"] == (0.05 if p.ndim > 1 and not name.endswith(".bias") else 0.0), name
    assert vit_layer_id("backbone.pos_embed", 2) == 0 and vit_layer_id("backbone.blocks.1.mlp.fc1.weight", 2) == 2
    assert vit_layer_id("backbone.norm.weight", 2) == 3


# ---------------------------------------------------------------- class maps


COLOURS = np.array([[220, 40, 40], [40, 200, 40], [40, 60, 230]], np.uint8)


def toy_squares(n, seed, size=32, p=8):
    """Grey noise with at most one patch-sized square whose colour is its class (a quarter of the
    images are empty, so every class needs evidence: none is learnt as 'the others are absent')."""
    rng = np.random.default_rng(seed)
    names = ("red", "green", "blue")
    out = []
    for _ in range(n):
        img = rng.integers(70, 150, (size, size, 1)).repeat(3, -1).astype(np.uint8)
        masks, boxes, labels = np.zeros((0, size, size), bool), np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
        if rng.random() > 0.25:
            k, (r, c) = int(rng.integers(3)), rng.integers(size // p, size=2)
            img[r * p:(r + 1) * p, c * p:(c + 1) * p] = COLOURS[k]
            masks = np.zeros((1, size, size), bool)
            masks[0, r * p:(r + 1) * p, c * p:(c + 1) * p] = True
            boxes, labels = np.array([[c * p, r * p, (c + 1) * p, (r + 1) * p]], np.float32), np.array([k])
        semantic = np.where(masks.any(0), 1 + (labels[0] if len(labels) else 0), 0).astype(np.uint8)
        out.append(Sample(img, boxes, labels, masks, semantic, np.eye(3, dtype=np.float32)[labels].sum(0),
                          names, ("background",) + names))
    return out


def test_class_maps_of_a_trained_toy_classifier_point_at_the_object():
    train, test = toy_squares(256, 0), [s for s in toy_squares(64, 1) if len(s.labels)]
    vit = tiny_vit(0)
    cfg = tiny_cfg(mode="finetune", loss="bce", batch_size=32, epochs=1, steps_per_epoch=120, lr=0.05,
                   weight_decay=0.0, augment=False)
    trained = train_transfer(cfg, vit, train, eval_set=test)
    assert trained.scores.map > 0.9
    random_model = build_classifier(vit, 3, "bce").eval()
    images, labels = [s.image for s in test], [int(s.labels[0]) for s in test]
    objects = np.stack([s.masks[0] for s in test])
    for method in (gradient_rollout, grad_cam):
        hit = {name: pointing_game(upsample(method(m, images, labels).grid_map, 8), objects).mean()
               for name, m in (("trained", trained.model), ("random", random_model))}
        assert hit["trained"] >= 0.8 and hit["trained"] - hit["random"] >= 0.5, (method.__name__, hit)


def test_patch_head_map_is_the_heads_own_probability():
    model = build_classifier(tiny_vit(), 3, "patch_bce").eval()
    x = torch.randn(2, 3, 32, 24)
    cm = patch_head_map(model, x, [2, 0])
    with torch.no_grad():
        p = torch.sigmoid(model(x))
    assert cm.grid_map.shape == (2, 4, 3) and cm.method == "patch_head"
    np.testing.assert_allclose(cm.grid_map[0].ravel(), p[0, :, 2].numpy(), rtol=1e-6)
    np.testing.assert_allclose(cm.grid_map[1].ravel(), p[1, :, 0].numpy(), rtol=1e-6)


# ---------------------------------------------------------------- runs


def test_resume_continues_the_same_schedule(tmp_path):
    vit, data = tiny_vit(), driving()
    cfg = tiny_cfg(mode="finetune", loss="bce", drop_path=0.2, warmup_epochs=1, checkpoint_every=1,  # crops + drop path
                   snapshot_steps=(0, 3))
    straight = train_transfer(cfg, vit, data, run_dir=tmp_path / "a")
    assert straight.steps == 4 and straight.stopped == "done"
    first = train_transfer(cfg.replace(stop_at_step=2), vit, data, run_dir=tmp_path / "b")
    assert first.stopped == "stop_at_step" and first.steps == 2
    resumed = train_transfer(cfg, vit, data, run_dir=tmp_path / "b")
    assert [r["step"] for r in resumed.log] == [0, 1, 2, 3]
    for a, b in zip(straight.log, resumed.log):
        assert (a["loss"], a["lr"], a["backbone_lr"]) == (b["loss"], b["lr"], b["backbone_lr"]), a["step"]
    for (n, pa), (_, pb) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(pa, pb), n
    assert (tmp_path / "b" / LOG_CSV).read_text().count("\n") == 5

    with pytest.raises(ValueError, match="another starting backbone"):
        train_transfer(cfg, tiny_vit(seed=1), data, run_dir=tmp_path / "b")
    with pytest.raises(ValueError, match="another configuration"):
        train_transfer(cfg.replace(lr=0.1), vit, data, run_dir=tmp_path / "b")
    (tmp_path / "c").mkdir()
    torch.save({"student": {}, "teacher": {}}, tmp_path / "c" / CHECKPOINT)
    with pytest.raises(ValueError, match="not a checkpoint written by dinosal's train_transfer"):
        train_transfer(cfg, vit, data, run_dir=tmp_path / "c")

    # the checkpoint reads back: the classifier, and its backbone through the DINO loader
    back = load_transfer(tmp_path / "b" / CHECKPOINT)
    assert back.class_names == data.class_names and back.step == 4 and back.config["loss"] == "bce"
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(back.model(x), resumed.model(x), rtol=0, atol=0)
        torch.testing.assert_close(backbone_from_file(tmp_path / "b" / CHECKPOINT).eval()(x),
                                   resumed.model.backbone(x), rtol=0, atol=0)
    _, report = load_dino_backbone(tmp_path / "b" / CHECKPOINT)
    assert sorted(report.dropped) == ["head.linear.bias", "head.linear.weight"]
    start = load_transfer(snapshot_path(tmp_path / "b", 0))        # the starting point: the backbone as given
    assert start.step == 0 and all(torch.equal(v, vit.state_dict()[k]) for k, v in start.model.backbone.state_dict().items())
    assert snapshot_path(tmp_path / "b", 3).is_file() and not snapshot_path(tmp_path / "b", 4).exists()


def test_bad_input_names_the_parameter_and_the_problem():
    with pytest.raises(ValueError, match="TransferConfig.mode must be one of"):
        TransferConfig(mode="linear")
    with pytest.raises(ValueError, match="TransferConfig.drop_path applies to mode='finetune' only"):
        TransferConfig(drop_path=0.1)
    with pytest.raises(ValueError, match="TransferConfig.precompute_features needs mode='probe' and augment=False"):
        TransferConfig(precompute_features=True)
    with pytest.raises(ValueError, match="TransferConfig.warmup_epochs must lie in"):
        TransferConfig.recipe("finetune", epochs=2)
    vit = tiny_vit()
    with pytest.raises(ValueError, match="TransferConfig.img_size 30 is not a multiple of the backbone's patch 8"):
        train_transfer(tiny_cfg(img_size=30), vit, vehicles())
    with pytest.raises(ValueError, match="TransferConfig.n_last_blocks 3 exceeds the backbone's 2 blocks"):
        train_transfer(tiny_cfg(n_last_blocks=3), vit, vehicles())
    several = [s for s in driving(16) if len(set(s.labels.tolist())) > 1]
    with pytest.raises(ValueError, match="loss='ce' needs exactly one class per image"):
        train_transfer(tiny_cfg(), vit, several * 4)


# ---------------------------------------------------------------- two processes


STEPS = 3


def _ddp_cfg(batch_size):
    return tiny_cfg(mode="finetune", loss="bce", batch_size=batch_size, epochs=1, steps_per_epoch=STEPS, lr=0.05,
                    device="cpu")


def _worker(rank: int, world: int, out_dir: str) -> None:
    result = train_transfer(_ddp_cfg(batch_size=4), tiny_vit(), driving(n=24))
    torch.save({"log": result.log, "model": result.model.state_dict()}, os.path.join(out_dir, f"rank{rank}.pt"))


def test_two_processes_match_one_process_on_the_same_global_batch(tmp_path):
    run_workers(_worker, 2, tmp_path)

    single = train_transfer(_ddp_cfg(batch_size=8), tiny_vit(), driving(n=24))   # 8 = the two ranks' 4 + 4
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert len(got["log"]) == STEPS
        for a, b in zip(single.log, got["log"]):
            assert a["loss"] == pytest.approx(b["loss"], rel=1e-5), a["step"]
            assert a["lr"] == pytest.approx(b["lr"])          # lr scaled by the same global batch
        for k, v in single.model.state_dict().items():
            torch.testing.assert_close(got["model"][k], v, rtol=1e-4, atol=1e-6, msg=k)
