"""Fixtures shared by the test modules."""

import pytest
import torch

from dinosal.data.synthetic import ObjectWorld, WorldConfig
from dinosal.models import create_vit


@pytest.fixture(scope="module")
def vit():
    """A tiny seeded ViT (width 32, 2 blocks, 2 heads, patch 8)."""
    torch.manual_seed(0)
    return create_vit((32, 2, 2), patch=8, img_size=32)


@pytest.fixture(scope="module")
def samples():
    """Five 32 px ObjectWorld samples that hold at least one object."""
    gen = ObjectWorld(WorldConfig(size=32, seed=3, length=20))
    return [s for s in (gen[i] for i in range(len(gen))) if len(s.boxes)][:5]


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """``(run cache, release folder)``, both empty, for the release tests."""
    from dinosal import release, runs

    cache, root = tmp_path / "cache", tmp_path / "weights"
    monkeypatch.setenv(runs.CACHE_ENV, str(cache))
    monkeypatch.setenv(release.WEIGHTS_ENV, str(root))
    return cache, root
