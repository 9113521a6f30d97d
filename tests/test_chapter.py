"""What the chapters share (:mod:`dinosal.chapter`) and the benchmark's knobs widget."""

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from dinosal import chapter, localisation, zoo
from dinosal.data.synthetic import ObjectWorld, SingleVehicles, VehicleConfig, WorldConfig
from dinosal.widgets import GeneratorKnobs


def test_setup_sets_threads_only_when_asked():
    before = torch.get_num_threads()
    try:
        chapter.setup()
        assert torch.get_num_threads() == before
        chapter.setup(threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_tail_mean_averages_the_last_part_of_a_log():
    log = pd.DataFrame({"a": np.arange(25, dtype=float), "b": np.ones(25)})
    assert chapter.tail_mean(log, "a") == 23.5  # the last 25 // 10 = 2 rows
    assert isinstance(chapter.tail_mean(log, "a"), float)
    both = chapter.tail_mean(log, ["a", "b"], parts=5)  # the last 5 rows
    assert list(both.index) == ["a", "b"] and both["a"] == 22.0 and both["b"] == 1.0
    assert chapter.tail_mean(log.iloc[:3], "a") == 2.0  # at least one row


def test_chance_half_width_is_the_binomial_95_percent_range():
    assert chapter.chance_half_width(0.5, 100) == pytest.approx(0.098)
    assert chapter.chance_half_width(1 / 13, 24) == 1.96 * math.sqrt((1 / 13) * (12 / 13) / 24)


def test_recipe_table_one_column_per_model():
    table = chapter.recipe_table(zoo.DINO_RECIPES["smoke"])
    assert list(table.columns) == list(zoo.DINO_RECIPES["smoke"])
    for row in ("data", "ViT (width, depth, heads)", "crops", "peak lr", "K (out_dim)"):
        assert row in table.index
    paper = chapter.recipe_table(zoo.DINO_RECIPES["paper"])
    official = [n for n, r in zoo.DINO_RECIPES["paper"].items() if r.data == "official"]
    for name in official:
        assert paper.loc["data", name].startswith("official weights (")
    # text only: whole numbers stay whole next to a model that lacks the field (no "8.0")
    trained = [n for n in paper.columns if n not in official]
    assert all(isinstance(v, str) for n in trained for v in paper[n].dropna())
    assert paper.loc["patch", trained[0]] == str(zoo.train_spec(zoo.DINO_RECIPES["paper"][trained[0]]).dino.patch)
    assert paper.loc["data", trained[0]].startswith("images under ")


def test_differing_fields_lists_changed_fields_flat_and_skips_run_control():
    import dataclasses

    from dinosal.train.dino import DinoConfig

    ref = DinoConfig()
    cfg = ref.replace(out_dim=64, progress=not ref.progress,
                      crops=dataclasses.replace(ref.crops, n_local=ref.crops.n_local + 1))
    table = chapter.differing_fields(cfg, ref, names=("here", "official"))
    assert list(table.columns) == ["here", "official"]
    assert list(table.index) == ["out_dim", "crops.n_local"]  # field order; progress is run control
    assert table.loc["out_dim"].tolist() == ["64", str(ref.out_dim)]
    assert chapter.differing_fields(ref.replace(steps_per_epoch=5), ref).loc["steps_per_epoch"].tolist() == [
        "5", "–"]  # DinoConfig's default is None: shown as a missing value
    assert "progress" in chapter.differing_fields(cfg, ref, skip=()).index
    assert chapter.differing_fields(ref, ref).empty
    with pytest.raises(TypeError):
        chapter.differing_fields(ref, ref.crops)


def test_pooled_region_ratios_and_ratio_table():
    rows = []
    for model, share in (("b", 0.2), ("a", 0.4)):
        for image, area in enumerate((0.1, 0.3)):
            rows.append({"set": "s", "model": model, "image": image, "map": "m", "region": "tree",
                         "share": share * (image + 1), "area": area})
    regions = pd.DataFrame(rows)
    pooled = chapter.pooled_region_ratios(regions)
    assert list(pooled.columns) == ["set", "map", "model", "region", "ratio"]
    a = regions[regions.model == "a"]
    assert pooled.loc[pooled.model == "a", "ratio"].item() == localisation.pooled_ratio(a["share"], a["area"])
    table = chapter.ratio_table(pooled, "s", "m", ["a", "b", "missing"])
    assert list(table.index) == ["a", "b", "missing"] and list(table.columns) == ["tree"]
    assert np.isnan(table.loc["missing", "tree"])


def test_generator_knobs_draw_each_generator_and_redraw_on_change():
    makers = {"SingleVehicles": (SingleVehicles, VehicleConfig), "ObjectWorld": (ObjectWorld, WorldConfig)}
    knobs = GeneratorKnobs(makers, 32)
    fig = knobs.figure(camouflage=1.0, background_variability=0.0, seed=2)
    assert isinstance(fig, Figure) and [ax.get_title() for ax in fig.axes] == list(makers)
    drawn = fig.axes[1].images[0].get_array()
    assert np.array_equal(np.asarray(drawn), ObjectWorld(WorldConfig(size=32, seed=2, camouflage=1.0,
                                                                     background_variability=0.0))[0].image)
    box = knobs.widget
    assert knobs.widget is box and set(knobs.sliders) == {"camouflage", "background_variability", "seed"}
    first = knobs.picture.value
    assert first[:4] == b"\x89PNG"
    knobs.sliders["seed"].value = 5
    assert knobs.picture.value != first
    with pytest.raises(ValueError):
        GeneratorKnobs({}, 32)
