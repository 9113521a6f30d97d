"""The zoo's evaluation data: held-out splits, k-NN sets, initial backbones, the recipe bar."""

import dataclasses

import numpy as np
import pytest
import torch

from dinosal import bars, zoo
from dinosal.data.synthetic import ObjectWorld, SingleVehicles, VehicleConfig, WorldConfig


def test_split_seeds_are_named_offsets_of_the_training_seed():
    assert zoo.SPLIT_SEED_OFFSETS == {"validation": 1000, "knn": 2000, "test": 3000}
    spec = zoo.train_spec(zoo.recipe("dino_world", "smoke"))
    cfg = zoo.split_config(spec, "validation", size=48, length=7)
    assert cfg == dataclasses.replace(spec.data_config, seed=spec.data_config.seed + 1000, size=48, length=7)
    assert zoo.split_config(VehicleConfig(size=32, seed=5), "knn").seed == 2005
    with pytest.raises(ValueError, match="unknown split"):
        zoo.split_config(spec, "train")
    with pytest.raises(TypeError, match="TrainSpec or a WorldConfig"):
        zoo.held_out_samples({"size": 32}, 2)


def test_held_out_samples_are_the_first_images_with_objects_of_the_split():
    spec = zoo.train_spec(zoo.recipe("dino_world", "smoke"))
    held = zoo.held_out_samples(spec, 4, size=40)
    gen = ObjectWorld(dataclasses.replace(spec.data_config, seed=spec.data_config.seed + 1000, size=40))
    ref = [s for s in (gen[i] for i in range(20)) if len(s.boxes)][:4]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(held, ref))
    # a generator config gives the same images as the spec that carries it
    again = zoo.held_out_samples(spec.data_config, 4, size=40)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(held, again))
    assert zoo.held_out_samples(spec, 2, size=40, split="knn")[0].image.tobytes() != held[0].image.tobytes()


def test_evaluation_spec_and_domain_map_every_model_to_generated_images():
    assert zoo.domain("dino_world", "smoke") == "world" and zoo.domain("dino_driving", "smoke") == "driving"
    assert zoo.domain("dino_official", "paper") == "world" and zoo.domain("dino_driving", "paper") == "driving"
    assert zoo.evaluation_spec("dino_driving", "smoke") == zoo.train_spec(zoo.recipe("dino_driving", "smoke"))
    assert zoo.evaluation_spec("dino_official", "paper") == zoo.train_spec(zoo.recipe("dino_world", "cpu"))
    assert zoo.evaluation_spec("dino_driving", "paper") == zoo.domain_spec("driving", "paper")
    assert zoo.domain_spec("driving", "paper") == zoo.train_spec(zoo.recipe("dino_driving", "cpu"))
    assert zoo.domain_spec("world", "smoke") == zoo.train_spec(zoo.recipe("dino_world", "smoke"))
    with pytest.raises(KeyError, match="no model 'dino_sky'"):
        zoo.domain_spec("sky", "smoke")


def test_knn_sets_split_one_stream_of_the_knn_seed():
    ks = zoo.knn_sets(VehicleConfig(size=32, seed=0), 5)
    gen = SingleVehicles(VehicleConfig(size=32, seed=2000, length=10))
    assert len(ks.train) == len(ks.test) == 5 and ks.num_classes == len(gen.class_names)
    assert np.array_equal(ks.train[0].image, gen[0].image) and np.array_equal(ks.test[0].image, gen[5].image)
    assert ks.train_labels.tolist() == [int(gen[i].labels[0]) for i in range(5)]
    assert ks.test_labels.tolist() == [int(gen[i].labels[0]) for i in range(5, 10)]
    w = zoo.knn_sets(WorldConfig(size=32, seed=0), 3, size=48)
    assert w.train[0].image.shape == (48, 48, 3) and w.class_names == ObjectWorld(WorldConfig()).class_names


def test_initial_backbone_is_the_network_dino_starts_from():
    from dinosal.train.dino import DinoTrainer

    spec = zoo.train_spec(zoo.recipe("dino_world", "smoke"))
    before = torch.random.get_rng_state()
    model = zoo.initial_backbone(spec)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's RNG is untouched
    assert not model.training
    trainer = DinoTrainer(spec.dino, steps_per_epoch=2)
    ref = trainer.teacher.backbone.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in model.state_dict().items())
    rnd, card = zoo.get("random", "smoke")
    assert card.kind == "random" and all(torch.equal(v, ref[k]) for k, v in rnd.state_dict().items())


def test_recipe_bar_rows():
    world = dict(corloc=0.6, attn_ratio=2.5, random=0.2, pixels_centred=0.44, pixels_raw=0.1, centre_box=0.3)
    rows = bars.recipe_bar(world=world)
    assert [r[3] for r in rows] == [True, True, True]
    assert rows[1][1] == pytest.approx(0.16)
    rows = bars.recipe_bar(world={**world, "pixels_centred": 0.5})
    assert [r[3] for r in rows] == [True, False, True]
    rows = bars.recipe_bar(driving=dict(corloc=0.05, attn_ratio=1.4, random=0.03))
    assert [r[3] for r in rows] == [False, False] and rows[0][1] == pytest.approx(0.05 / 0.03)
    assert bars.recipe_bar(driving=dict(corloc=0.0, attn_ratio=2, random=0.0))[0][3] is False


def test_model_names_are_plain_identifiers():
    import re

    from dinosal import zoo

    for profile in ("smoke", "cpu", "paper"):
        names = zoo.names(profile) + [n for n, _ in zoo.catalogue(profile)]
        assert all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in names), names


def test_preregistration_states_the_splits_the_zoo_uses():
    """The pre-registration's split table and the library's offsets are one fact."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "book" / "preregistration.md").read_text(encoding="utf-8")
    stated = {m.group(1): int(m.group(2)) for m in re.finditer(r"^\| \**(validation|k-NN|test)\** \| \**seed \+ (\d+)",
                                                              text, flags=re.M)}
    assert stated == {"validation": 1000, "k-NN": 2000, "test": 3000}
    assert stated["test"] == zoo.SPLIT_SEED_OFFSETS["test"]
    assert len(set(zoo.SPLIT_SEED_OFFSETS.values())) == len(zoo.SPLIT_SEED_OFFSETS)


def test_pretrained_bar_rows():
    world = dict(corloc=0.5, attn_ratio=2.6, knn=0.31, random=0.2, pixels_centred=0.35, pixels_raw=0.22,
                 centre_box=0.18)
    rows = bars.pretrained_bar(world, driving=dict(attn_ratio=1.4))
    assert [r[3] for r in rows] == [True, True, True, True, False]
    rows = bars.pretrained_bar({**world, "pixels_centred": 0.45, "knn": 0.29})
    assert [r[3] for r in rows] == [True, False, True, False] and abs(rows[1][1] - 0.05) < 1e-9
    with pytest.raises(KeyError, match="centre_box"):
        bars.pretrained_bar({k: v for k, v in world.items() if k != "centre_box"})
