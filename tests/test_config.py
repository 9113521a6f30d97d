"""Profiles: one table, unknown names fail at once and list the valid ones."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dinosal import config


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


def test_every_registered_chapter_resolves_in_every_profile(monkeypatch):
    monkeypatch.delenv(config.PROFILE_ENV, raising=False)
    for chapter in config.chapters():
        for prof in config.PROFILES:
            assert config.resolve(chapter, prof).profile == prof
