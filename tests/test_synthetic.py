"""The procedural benchmark: determinism, ground-truth consistency, knobs, caching."""

from __future__ import annotations

import numpy as np
import pytest

from dinosal.data import load_cached, object_table, pixel_contrast, presence_table, save_cached
from dinosal.data.synthetic import (
    IGNORE,
    VEHICLE_TYPES,
    WORLD_CATEGORIES,
    DrivingConfig,
    DrivingScenes,
    ObjectWorld,
    SampleDataset,
    SingleVehicles,
    VehicleConfig,
    WorldConfig,
    object_mask,
    part_masks,
)

GENERATORS = [
    (DrivingScenes, DrivingConfig),
    (SingleVehicles, VehicleConfig),
    (ObjectWorld, WorldConfig),
]


def _arrays(s):
    return (s.image, s.boxes, s.labels, s.masks, s.semantic, s.multi_hot)


@pytest.mark.parametrize("gen, cfg", GENERATORS)
def test_same_seed_and_index_give_the_same_bytes(gen, cfg):
    a, b = gen(cfg(size=48, seed=3)), gen(cfg(size=48, seed=3))
    for i in (0, 7):
        for x, y in zip(_arrays(a[i]), _arrays(b[i])):
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes()
    assert a[0].image.tobytes() != a[1].image.tobytes()
    assert a[0].image.tobytes() != gen(cfg(size=48, seed=4))[0].image.tobytes()


@pytest.mark.parametrize("gen, cfg", GENERATORS)
def test_sizes_and_dtypes(gen, cfg):
    for size in (32, 77):
        s = gen(cfg(size=size))[2]
        n = len(s.labels)
        assert s.image.shape == (size, size, 3) and s.image.dtype == np.uint8
        assert s.boxes.shape == (n, 4) and s.boxes.dtype == np.float32
        assert s.labels.dtype == np.int64 and s.masks.shape == (n, size, size) and s.masks.dtype == bool
        assert s.semantic.shape == (size, size) and s.semantic.dtype == np.uint8
        assert s.multi_hot.shape == (len(s.class_names),) and s.multi_hot.dtype == np.float32
        assert s.semantic_names[-len(s.class_names):] == s.class_names
    for bad in (31, 513, 64.0):
        with pytest.raises(ValueError, match="size"):
            cfg(size=bad)


def test_largest_size_draws():
    s = DrivingScenes(DrivingConfig(size=512, n_objects=(2, 2)))[0]
    assert s.image.shape == (512, 512, 3) and s.image.std() > 5


def test_indexing_rules():
    g = DrivingScenes(DrivingConfig(size=32, length=5))
    assert len(g) == 5 and len(g[1:4]) == 3
    assert g[-1].image.tobytes() == g[4].image.tobytes()
    with pytest.raises(IndexError):
        g[5]


@pytest.mark.parametrize("gen, cfg", GENERATORS)
def test_ground_truth_is_consistent(gen, cfg):
    g = gen(cfg(size=64, seed=1))
    n_parts = len(g.semantic_names) - len(g.class_names)
    thr = g.config.min_visible_area()
    for i in range(25):
        s = g[i]
        # every box is the tight box of its (non-empty, large enough) mask
        for box, m in zip(s.boxes, s.masks):
            assert m.sum() >= thr
            ys, xs = np.nonzero(m)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        # instance masks never overlap (they are visible parts)
        assert (s.masks.sum(axis=0) <= 1).all()
        # the semantic mask agrees with the instance masks, class by class
        for k in range(len(s.class_names)):
            union = s.masks[s.labels == k].any(axis=0) if (s.labels == k).any() else np.zeros_like(s.semantic, bool)
            assert np.array_equal(s.semantic == n_parts + k, union)
        assert not (object_mask(s) & (s.semantic == IGNORE)).any()
        assert (s.semantic[s.semantic != IGNORE] < len(s.semantic_names)).all()
        assert np.array_equal(s.multi_hot, np.isin(np.arange(len(s.class_names)), s.labels).astype(np.float32))
        parts = part_masks(s)
        total = sum(m.sum() for m in parts.values()) + (s.semantic == IGNORE).sum()
        assert total == s.semantic.size


def test_driving_has_enough_classes_and_parts():
    g = DrivingScenes(DrivingConfig(size=64, n_objects=(4, 6)))
    assert len(g.class_names) >= 5 and {"car", "truck", "bus", "pedestrian"} <= set(g.class_names)
    seen_cls, seen_parts = set(), set()
    for i in range(40):
        s = g[i]
        seen_cls |= {s.class_names[k] for k in s.labels}
        seen_parts |= set(part_masks(s))
    assert seen_cls == set(g.class_names)
    assert {"sky", "road", "lane_marking", "tree", "pole", "sign", "building", "roadside"} <= seen_parts


def test_vehicle_and_world_class_counts():
    assert len(VEHICLE_TYPES) >= 10 and len(WORLD_CATEGORIES) >= 20
    assert {"car", "truck", "bus", "bicycle"} <= set(WORLD_CATEGORIES)
    v = SingleVehicles(VehicleConfig(size=48))
    assert all(len(v[i].labels) == 1 for i in range(10))
    w = ObjectWorld(WorldConfig(size=48, n_objects=(3, 3), object_size=(0.2, 0.3)))
    assert np.mean([len(w[i].labels) for i in range(10)]) > 2


def test_vehicle_types_differ_in_shape():
    """Two types drawn with the same colour and pose have different silhouettes."""
    masks = {}
    for t in ("sedan", "pickup", "van", "sports"):
        cfg = VehicleConfig(size=64, types=(t,), object_variability=0.0, flip=0.0, object_size=(0.8, 0.8))
        masks[t] = SingleVehicles(cfg)[0].masks[0]
    ious = [(masks[a] & masks[b]).sum() / (masks[a] | masks[b]).sum()
            for a in masks for b in masks if a < b]
    assert max(ious) < 0.9


def test_object_count_knob():
    none = DrivingScenes(DrivingConfig(size=48, n_objects=(0, 0)))
    assert all(len(none[i].labels) == 0 and none[i].multi_hot.sum() == 0 for i in range(10))
    three = DrivingScenes(DrivingConfig(size=64, n_objects=(3, 3)))
    counts = [len(three[i].labels) for i in range(30)]
    assert max(counts) <= 3 and np.mean(counts) > 2.0


def test_object_size_knob():
    def mean_area(scale):
        g = DrivingScenes(DrivingConfig(size=64, n_objects=(2, 2), object_scale=scale, seed=5))
        return object_table(g[i] for i in range(30)).area.mean()

    assert mean_area(2.0) > 2.0 * mean_area(1.0)
    w = lambda lo, hi: object_table(ObjectWorld(WorldConfig(size=48, object_size=(lo, hi)))[i] for i in range(20))
    assert w(0.6, 0.7).area.mean() > 2.0 * w(0.25, 0.3).area.mean()


def test_class_weights_knob():
    g = DrivingScenes(DrivingConfig(size=48, n_objects=(2, 3), class_weights={c: 0.0 for c in
                                    ("truck", "bus", "pedestrian", "bicycle", "motorcycle")}))
    labels = np.concatenate([g[i].labels for i in range(15)])
    assert len(labels) > 0 and set(labels.tolist()) == {0}


def test_cooccurrence_knob_shows_in_measured_frequencies():
    """Trees at 0.2 on their own, x4.5 when a pedestrian is present."""
    cfg = DrivingConfig(
        size=32, n_objects=(0, 2), seed=11,
        part_prob={"tree": 0.2}, part_class_multiplier={"pedestrian": {"tree": 4.5}},
        class_weights={"car": 1.0, "pedestrian": 1.0, "truck": 0, "bus": 0, "bicycle": 0, "motorcycle": 0},
        depth_range=(0.5, 0.9),
    )
    g = DrivingScenes(cfg)
    assert g.part_probabilities(["pedestrian"])["tree"] == pytest.approx(0.9)
    assert g.part_probabilities(["car"])["tree"] == pytest.approx(0.2)
    table = presence_table(g[i] for i in range(300))
    with_ped = table.loc[table.pedestrian, "tree"].mean()
    without = table.loc[~table.pedestrian, "tree"].mean()
    assert (table.pedestrian.sum() > 50) and ((~table.pedestrian).sum() > 50)
    assert with_ped > 0.65 and without < 0.35  # trees may stand outside the frame


def test_part_prob_zero_and_one():
    g = DrivingScenes(DrivingConfig(size=32, part_prob={"tree": 0.0, "pole": 1.0, "sign": 0.0,
                                                        "building": 0.0, "lane_marking": 1.0}))
    t = presence_table(g[i] for i in range(20))
    assert not t.tree.any() and not t.sign.any() and not t.building.any()
    assert t.lane_marking.all() and t.pole.mean() > 0.6  # poles may stand outside the frame


def test_background_variability_zero_fixes_the_background():
    cfg = DrivingConfig(size=48, background_variability=0.0, n_objects=(0, 0), noise=0.0, lighting=0.0,
                        part_prob={k: 1.0 for k in ("tree", "pole", "sign", "building", "lane_marking")})
    g = DrivingScenes(cfg)
    assert np.array_equal(g[0].image, g[1].image) and np.array_equal(g[0].semantic, g[5].semantic)
    varied = DrivingScenes(DrivingConfig(**{**cfg.__dict__, "background_variability": 1.0}))
    assert not np.array_equal(varied[0].semantic, varied[1].semantic)


def test_camouflage_removes_pixel_contrast():
    def auc(c):
        g = ObjectWorld(WorldConfig(size=48, camouflage=c, seed=2))
        return pixel_contrast(g[i] for i in range(24)).mean_auc

    a0, a1 = auc(0.0), auc(1.0)
    assert a0 > 0.85 and a1 < a0 - 0.1


def test_bad_configs_name_the_field():
    with pytest.raises(ValueError, match="camouflage"):
        WorldConfig(camouflage=1.5)
    with pytest.raises(ValueError, match="part_class_multiplier"):
        DrivingConfig(part_class_multiplier={"pedestrian": {"lake": 2.0}})
    with pytest.raises(ValueError, match="class_weights"):
        DrivingConfig(class_weights={"tank": 1.0})
    with pytest.raises(ValueError, match="categories"):
        WorldConfig(categories=("car", "unicorn"))
    with pytest.raises(ValueError, match="n_objects"):
        DrivingConfig(n_objects=(3, 1))


def test_sample_dataset_gives_tensors_and_indices():
    import torch

    ds = SampleDataset(DrivingScenes(DrivingConfig(size=32, length=4)))
    x, i = ds[2]
    assert len(ds) == 4 and i == 2 and x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    ds2 = SampleDataset(ds.source, transform=lambda im: im.size)
    assert ds2[0] == ((32, 32), 0)


def test_cache_round_trip(tmp_path):
    g = DrivingScenes(DrivingConfig(size=32, n_objects=(1, 4)))
    path = save_cached(g, 6, tmp_path / "eval.npz")
    back = load_cached(path)
    assert len(back) == 6 and back.class_names == g.class_names
    assert back.meta["config"]["size"] == 32
    for i in range(6):
        for x, y in zip(_arrays(g[i]), _arrays(back[i])):
            assert np.array_equal(x, y)
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_cache_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_cached(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        load_cached(bad)
    other = tmp_path / "other.npz"
    np.savez(other, images=np.zeros((1, 2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="missing arrays"):
        load_cached(other)
