"""Run-cache keys hold everything that changes a trained artifact.

Issue 10, fault 2: the data's identity (an image folder's resolved path and
file list), the version of the procedural generator, and the position
interpolation mode of the network.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

import numpy as np
import pytest
from PIL import Image

from dinosal import runs, zoo
from dinosal.data import synthetic
from dinosal.data.synthetic import (
    GENERATOR_VERSION,
    DrivingConfig,
    DrivingScenes,
    ObjectWorld,
    SingleVehicles,
    VehicleConfig,
    WorldConfig,
)
from dinosal.profiles import DinoRecipe


def _folder_recipe() -> DinoRecipe:
    smoke = zoo.recipe("dino_world", "smoke")
    return DinoRecipe(data="image_folder", data_config={"folder": "frames"}, crops=smoke.crops,
                      train={**smoke.train, "progress": False})


def _write_images(folder, n, seed):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(folder / f"{i:03d}.png")


def test_same_folder_name_under_two_roots_gives_two_models(tmp_path, monkeypatch):
    monkeypatch.setenv(runs.CACHE_ENV, str(tmp_path / "cache"))
    _write_images(tmp_path / "a" / "frames", 16, seed=0)
    _write_images(tmp_path / "b" / "frames", 16, seed=1)
    spec = zoo.train_spec(_folder_recipe())

    monkeypatch.setenv(zoo.DATA_ENV, str(tmp_path / "a"))
    key_a, path_a = zoo.model_key(spec), zoo.train_cached(spec)
    monkeypatch.setenv(zoo.DATA_ENV, str(tmp_path / "b"))
    key_b, path_b = zoo.model_key(spec), zoo.train_cached(spec)

    assert key_a != key_b and path_a != path_b
    identity = runs.read_manifest(path_b)["config"]["data_identity"]
    assert identity["root"] == str((tmp_path / "b" / "frames").resolve()) and identity["n_files"] == 16


def test_adding_or_touching_a_file_changes_the_key(tmp_path, monkeypatch):
    _write_images(tmp_path / "frames", 8, seed=0)
    monkeypatch.setenv(zoo.DATA_ENV, str(tmp_path))
    spec = zoo.train_spec(_folder_recipe())
    first = zoo.model_key(spec)
    assert zoo.model_key(spec) == first  # listing twice: the same identity

    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "frames" / "new.png")
    added = zoo.model_key(spec)
    assert added != first

    st = os.stat(tmp_path / "frames" / "000.png")
    os.utime(tmp_path / "frames" / "000.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert zoo.model_key(spec) != added

    (tmp_path / "frames" / "notes.txt").write_text("not an image")  # not read by training: same key
    assert zoo.model_key(spec) == zoo.model_key(spec)


def test_run_control_fields_do_not_change_the_key(tmp_path, monkeypatch):
    spec = zoo.train_spec(zoo.recipe("dino_world", "smoke"))
    quiet = zoo.train_spec(zoo.recipe("dino_world", "smoke"), progress=False, threads=1, num_workers=2,
                           checkpoint_every=5, stop_at_step=3)
    assert zoo.model_key(spec) == zoo.model_key(quiet)
    assert zoo.model_key(spec) != zoo.model_key(zoo.train_spec(zoo.recipe("dino_world", "smoke"), seed=1))


def test_generator_version_enters_every_key_holding_a_generated_set(monkeypatch):
    spec = zoo.train_spec(zoo.recipe("dino_world", "smoke"))
    before = zoo.model_key(spec)
    vehicles_before = runs.config_key("supervised", VehicleConfig())
    assert runs.config_dict(spec.data_config)["__version__"] == GENERATOR_VERSION
    for cls in (WorldConfig, DrivingConfig, VehicleConfig):
        monkeypatch.setattr(cls, "KEY_VERSION", GENERATOR_VERSION + 1)
    assert zoo.model_key(spec) != before
    assert runs.config_key("supervised", VehicleConfig()) != vehicles_before


def test_position_interpolation_enters_the_key():
    dino = zoo.train_spec(zoo.recipe("dino_world", "smoke"))
    timm = zoo.train_spec(zoo.recipe("dino_world", "smoke"), pos_interp="timm")
    assert dino.dino.pos_interp == "dino"  # the study's models interpolate as main_dino does
    assert zoo.model_key(dino) != zoo.model_key(timm)
    with pytest.raises(ValueError, match="pos_interp"):
        zoo.train_spec(zoo.recipe("dino_world", "smoke"), pos_interp="bilinear")


# A digest of a few drawings per generator, pinned with the generator version:
# if the drawing code changes, this fails until GENERATOR_VERSION is bumped
# (which retires every model trained on the old drawings) and the digests
# are renewed.
PINNED = {
    1: {"DrivingScenes": "00b40fca40736059", "SingleVehicles": "66cd926355359254", "ObjectWorld": "6819ad63dfc40797"},
}


def _digest(gen, cfg) -> str:
    g = gen(cfg(size=64, seed=7, length=3))
    h = hashlib.sha256()
    for i in range(3):
        s = g[i]
        for a in (s.image, s.semantic, s.boxes, s.labels, s.masks):
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def test_drawings_are_pinned_to_the_generator_version():
    assert synthetic.GENERATOR_VERSION in PINNED, "new GENERATOR_VERSION: pin its digests here"
    pinned = PINNED[synthetic.GENERATOR_VERSION]
    got = {gen.__name__: _digest(gen, cfg) for gen, cfg in
           ((DrivingScenes, DrivingConfig), (SingleVehicles, VehicleConfig), (ObjectWorld, WorldConfig))}
    assert got == pinned, ("the generators draw differently from what GENERATOR_VERSION "
                           f"{synthetic.GENERATOR_VERSION} pinned: bump GENERATOR_VERSION and pin {got}")


def test_key_version_is_a_class_attribute_not_a_field():
    assert "KEY_VERSION" not in {f.name for f in dataclasses.fields(WorldConfig)}
    with pytest.raises(TypeError):
        WorldConfig(KEY_VERSION=3)


# The keys of the study's models, pinned: a refactor must not change them (the
# trained models in the run cache, and later the released ones, stay valid);
# a recipe change must change them on purpose, with this table renewed.
PINNED_MODEL_KEYS = {
    ("smoke", "dino_world"): "a82c5e7088a0ccbc",
    ("smoke", "dino_driving"): "7b3974cad008303f",
    ("cpu", "dino_world"): "87a5fb779ddd0eb0",  # the frozen recipe of issue 14 (was 32fbb14f661f496c)
    ("cpu", "dino_driving"): "50e8c37869433f48",
}


@pytest.mark.parametrize("profile, name", sorted(PINNED_MODEL_KEYS))
def test_model_keys_of_the_study_are_pinned(profile, name):
    assert zoo.model_key(zoo.train_spec(zoo.recipe(name, profile))) == PINNED_MODEL_KEYS[(profile, name)]


def test_the_search_base_keeps_the_key_of_the_model_the_levers_changed():
    # benchmarks/pretrain_levers.py and the appendix's log refer to the pre-freeze dino_world by this key
    from dinosal.profiles import DINO_WORLD_SEARCH_BASE

    assert zoo.model_key(zoo.train_spec(DINO_WORLD_SEARCH_BASE)) == "32fbb14f661f496c"


def test_a_crops_override_is_merged_over_the_recipes_crops():
    r = zoo.recipe("dino_world", "smoke")
    base = zoo.train_spec(r)
    two = zoo.train_spec(r, crops={"n_local": 1})
    assert two.dino.crops.n_local == 1 and two.dino.crops.global_size == base.dino.crops.global_size
    assert zoo.model_key(two) != zoo.model_key(base)
    assert zoo.train_spec(r, crops=base.dino.crops).dino.crops == base.dino.crops
    with pytest.raises(ValueError, match="bogus"):
        zoo.train_spec(r, crops={"bogus": 1})
