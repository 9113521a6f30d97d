"""Profiles: one table; unknown names and values of the wrong type or out of range fail at once,
naming the parameter and the accepted values."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from dinosal import config, profiles

ROOT = Path(__file__).resolve().parents[1]


def test_resolve_default_profile_and_override(monkeypatch):
    monkeypatch.delenv(config.PROFILE_ENV, raising=False)
    p = config.resolve("benchmark")
    assert p.profile == "cpu"
    q = config.resolve("benchmark", "smoke", seed=3, n_gallery=None)
    assert (q.profile, q.seed) == ("smoke", 3)
    assert q.n_gallery == config.resolve("benchmark", "smoke").n_gallery  # None = profile value


def test_unknown_profile_lists_valid(monkeypatch):
    monkeypatch.delenv(config.PROFILE_ENV, raising=False)
    with pytest.raises(config.ParameterError, match="smoke, cpu, paper"):
        config.resolve("benchmark", "laptop")


def test_unknown_parameter_lists_valid(monkeypatch):
    monkeypatch.delenv(config.PROFILE_ENV, raising=False)
    with pytest.raises(config.ParameterError) as err:
        config.resolve("benchmark", "cpu", sedd=1)
    assert "'sedd'" in str(err.value) and "seed" in str(err.value)


def test_chapter_params_reads_a_notebook_namespace(monkeypatch):
    monkeypatch.delenv(config.PROFILE_ENV, raising=False)
    import math

    ns = {"profile": "smoke", "seed": 2, "math": math, "In": [], "_": 1, "get_ipython": print}
    assert config.chapter_params("benchmark", ns).seed == 2
    ns["typo_knob"] = 1  # what `papermill -p typo_knob 1` would inject
    with pytest.raises(config.ParameterError, match="typo_knob"):
        config.chapter_params("benchmark", ns)


def test_environment_variable_wins(monkeypatch):
    monkeypatch.setenv(config.PROFILE_ENV, "smoke")
    assert config.resolve("benchmark", "cpu").profile == "smoke"
    monkeypatch.setenv(config.PROFILE_ENV, "bogus")
    with pytest.raises(config.ParameterError, match="valid profiles"):
        config.resolve("benchmark")


def test_register_rejects_bad_tables():
    @dataclass(frozen=True)
    class P:
        profile: str
        a: int = 0

    with pytest.raises(ValueError, match="lacks profiles"):
        config.register_chapter("x_test", P, {"smoke": {}})
    with pytest.raises(ValueError, match="unknown fields"):
        config.register_chapter("x_test", P, {"smoke": {"b": 1}, "cpu": {}, "paper": {}})


def test_tables_are_plain_data_checked_by_config():
    """profiles registers nothing on import: config checks every table of profiles.CHAPTERS."""
    from dinosal import params

    assert config.param is params.param and config.ParameterError is params.ParameterError
    assert set(config.chapters()) == set(profiles.CHAPTERS)
    for name, (cls, table) in profiles.CHAPTERS.items():
        registered_cls, registered_table = config._lookup(name)
        assert registered_cls is cls and registered_table == table


def test_every_registered_chapter_resolves_in_every_profile(monkeypatch):
    monkeypatch.delenv(config.PROFILE_ENV, raising=False)
    for chapter in config.chapters():
        for prof in config.PROFILES:
            assert config.resolve(chapter, prof).profile == prof


# ---------------------------------------------------------------- types and ranges (issue 10, fault 7)


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(config.PROFILE_ENV, raising=False)


def test_papermill_string_forms_are_parsed_where_the_type_says_so(no_env):
    # papermill -p leaves anything but numbers, True/False/None a string
    assert config.resolve("theory", "smoke", arch="(64, 2, 2)").arch == (64, 2, 2)
    assert config.resolve("theory", "smoke", arch="64, 2, 2").arch == (64, 2, 2)
    assert config.resolve("theory", "smoke", arch="small").arch == "small"
    assert config.resolve("training", "smoke", models="dino_world").models == ["dino_world"]
    assert config.resolve("saliency", "smoke", models="[random, dino_world]").models == ["random", "dino_world"]
    assert config.resolve("saliency", "smoke", models="random,dino_driving").models == ["random", "dino_driving"]
    assert config.resolve("saliency", "smoke", models=("random",)).models == ["random"]
    p = config.resolve("theory", "smoke", image_size="64", lr="1e-3", momentum_teacher=1, threads="2")
    assert (p.image_size, p.lr, p.momentum_teacher, p.threads) == (64, 1e-3, 1.0, 2)
    assert type(p.momentum_teacher) is float
    assert config.resolve("benchmark", "smoke", export_dir=2024).export_dir == "2024"
    assert config.resolve("training", "smoke", threads="None").threads is None  # papermill -r threads None
    assert "accepted: one of tiny, small, base or (int, int, int)" in config.parameter_help("theory")["arch"]


def test_n_stats_out_of_range_names_parameter_and_range(no_env):
    with pytest.raises(config.ParameterError, match=r"'n_stats' = -5 is out of range.*accepted: an int >= 1"):
        config.resolve("benchmark", "smoke", n_stats=-5)


@pytest.mark.parametrize("chapter, name, value, accepted", [
    ("benchmark", "image_size", "abc", "an int in [32, 512]"),
    ("benchmark", "image_size", 40.5, "an int in [32, 512]"),
    ("benchmark", "seed", True, "an int >= 0"),
    ("saliency", "tau", "high", "a float in [0, 1]"),
    ("saliency", "tau", 1.5, "a float in [0, 1]"),
    ("theory", "lr", 0, "a float > 0"),
    ("theory", "arch", "smal", "one of tiny, small, base or (int, int, int), each >= 1"),
    ("theory", "arch", "(64, 0, 2)", "(int, int, int), each >= 1"),
    ("theory", "arch", "(64, 2)", "(int, int, int), each >= 1"),
    ("theory", "crops_preset", "strong", "one of weak, official"),
    ("training", "threads", 0, "None or an int >= 1"),
    ("training", "num_workers", -1, "an int >= 0"),
])
def test_bad_values_name_parameter_value_and_accepted(no_env, chapter, name, value, accepted):
    with pytest.raises(config.ParameterError) as err:
        config.resolve(chapter, "smoke", **{name: value})
    msg = str(err.value)
    assert f"{name!r} = {value!r}" in msg and accepted in msg.split("accepted: ")[-1], msg


def test_model_names_are_checked_against_the_profiles_zoo(no_env):
    with pytest.raises(config.ParameterError, match=r"'models'.*'d' is not one of dino_world, dino_driving"):
        config.resolve("training", "smoke", models="d")
    with pytest.raises(config.ParameterError, match="dino_official"):  # a paper-only model in smoke
        config.resolve("saliency", "smoke", models=["dino_official"])
    assert config.resolve("saliency", "paper", models=["random", "dino_official"]).models == [
        "random", "dino_official"]


def test_checks_between_fields(no_env):
    with pytest.raises(config.ParameterError, match=r"'image_size' = 50 .*multiple of patch = 8"):
        config.resolve("theory", "smoke", image_size=50)
    with pytest.raises(config.ParameterError, match=r"'local_size' = 64 .*at most image_size = 32"):
        config.resolve("theory", "smoke", local_size=64)
    with pytest.raises(config.ParameterError, match=r"'arch' = \(60, 2, 7\) .*divisible by heads"):
        config.resolve("theory", "smoke", arch="(60, 2, 7)")
    with pytest.raises(config.ParameterError, match=r"'epochs' = 9 .*at most steps = 4"):
        config.resolve("theory", "smoke", epochs=9)
    with pytest.raises(config.ParameterError, match=r"'eval_size' = 100 .*multiple of the models' patch \(8 px\)"):
        config.resolve("training", "smoke", eval_size=100)
    with pytest.raises(config.ParameterError, match=r"'n_strip' = 9 .*at most n_eval = 6"):
        config.resolve("training", "smoke", n_strip=9)
    with pytest.raises(config.ParameterError, match=r"'image_size' = 640 .*with data_root"):
        config.resolve("saliency", "smoke", image_size=640)
    assert config.resolve("saliency", "paper", image_size=640, data_root="frames").image_size == 640


def test_environment_profile_does_not_hide_a_bad_notebook_profile(monkeypatch):
    monkeypatch.setenv(config.PROFILE_ENV, "smoke")
    with pytest.raises(config.ParameterError, match="unknown profile 'nosuch'.*smoke, cpu, paper"):
        config.resolve("benchmark", "nosuch")
    with pytest.raises(config.ParameterError, match="unknown profile 'nosuch'"):
        config.chapter_params("benchmark", {"profile": "nosuch"})
    monkeypatch.setenv(config.PROFILE_ENV, "Smoke")
    with pytest.raises(config.ParameterError, match=f"'Smoke' in the environment variable {config.PROFILE_ENV}"):
        config.resolve("benchmark", "cpu")


def test_register_checks_table_values_and_defaults(no_env):
    @dataclass(frozen=True)
    class P:
        profile: str
        n: int = config.param(1, "a count", min=1)
        name: Optional[str] = config.param(None, "a name", choices=("a", "b"))

        def __post_init__(self):
            config.require(self.n < 10 or self.name is None, "n", self.n, "below 10 when name is set")

    ok = {"smoke": {}, "cpu": {"n": 3}, "paper": {"name": "a"}}
    config.register_chapter("x_test_ok", P, ok)
    try:
        assert config.resolve("x_test_ok", "cpu").n == 3
    finally:
        config._REGISTRY.pop("x_test_ok")
    for table, match in [({"n": 0}, r"chapter 'x_test', profile 'paper': parameter 'n' = 0 is out of range"),
                         ({"n": "many"}, r"'n' = 'many' is not an int"),
                         ({"name": "c"}, r"'name' = 'c' is not one of a, b"),
                         ({"n": 12, "name": "a"}, r"'n' = 12 is not accepted; accepted: below 10 when name")]:
        with pytest.raises(config.ParameterError, match=match):
            config.register_chapter("x_test", P, {"smoke": {}, "cpu": {}, "paper": table})
    assert "x_test" not in config.chapters()


def test_every_chapter_field_has_help_a_supported_type_and_a_range():
    for chapter in config.chapters():
        cls, _ = config._lookup(chapter)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name == "profile":
                continue
            assert f.metadata.get("help"), f"{chapter}.{f.name}: declare it with params.param(default, help, ...)"
            config._type_name(hints[f.name])  # a type the checker understands
            scalars = {a for m in config._members(hints[f.name]) for a in (typing.get_args(m) or (m,))}
            if scalars & {int, float}:
                assert any(f.metadata.get(k) is not None for k in ("min", "max", "gt", "lt")), \
                    f"{chapter}.{f.name}: a number without a range"


def test_profile_constants_agree_with_the_library():
    from dinosal import zoo
    from dinosal.data import synthetic
    from dinosal.models import VIT_SIZES

    assert profiles.SYNTHETIC_SIZE == (synthetic.MIN_SIZE, synthetic.MAX_SIZE)
    assert profiles.VIT_NAMES == tuple(VIT_SIZES)
    for prof in config.PROFILES:
        assert list(profiles.zoo_names(prof)) == zoo.names(prof)


@pytest.mark.parametrize("chapter", ["benchmark", "training", "theory", "saliency"])
@pytest.mark.parametrize("env", [None, "smoke"])
def test_each_book_chapter_resolves_in_each_profile(monkeypatch, chapter, env):
    if env is None:
        monkeypatch.delenv(config.PROFILE_ENV, raising=False)
    else:
        monkeypatch.setenv(config.PROFILE_ENV, env)
    for prof in config.PROFILES:
        assert config.resolve(chapter, prof).profile == (env or prof)


@pytest.mark.parametrize("args, env, expected", [
    (["-p", "n_stats", "-5"], None, "'n_stats' = -5 is out of range"),
    (["-p", "profile", "nosuch"], "smoke", "unknown profile 'nosuch'"),
])
def test_papermill_fails_at_the_parameters_cell(tmp_path, args, env, expected):
    """A few seconds: the kernel stops at the chapter's second cell."""
    pytest.importorskip("papermill")
    environ = {k: v for k, v in os.environ.items() if k != config.PROFILE_ENV}
    environ.update({"OMP_NUM_THREADS": "1", **({config.PROFILE_ENV: env} if env else {})})
    run = subprocess.run(
        [sys.executable, "-m", "papermill", str(ROOT / "book" / "benchmark.ipynb"), str(tmp_path / "out.ipynb"),
         "-k", "python3", "--cwd", str(ROOT / "book"), "--no-progress-bar", *args],
        capture_output=True, text=True, env=environ, timeout=300,
    )
    assert run.returncode != 0, run.stdout + run.stderr
    assert "ParameterError" in run.stderr and expected in run.stderr, run.stderr[-3000:]
