"""The profile tables of every chapter: the one place where sizes live.

Each chapter has a frozen dataclass of parameters (``profile`` plus knobs a
reader may change) and a table ``{profile: {field: value}}``. Fields with a
default need no entry; a table entry overrides the default for that profile.
Add a chapter by writing its dataclass and one ``register_chapter`` call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .config import register_chapter


@dataclass(frozen=True)
class BenchmarkParams:
    """Chapter ``benchmark``: the procedural benchmark's gallery and statistics."""

    profile: str
    seed: int = 0
    image_size: int = 128          # px, square
    n_gallery: int = 8             # images drawn per generator in the gallery
    n_stats: int = 400             # images per set for the statistics
    data_root: Optional[str] = None  # where an exported set is written (None: temp dir)


register_chapter(
    "benchmark",
    BenchmarkParams,
    {
        "smoke": dict(image_size=64, n_gallery=4, n_stats=40),
        "cpu": dict(image_size=128, n_gallery=8, n_stats=400),
        "paper": dict(image_size=224, n_gallery=8, n_stats=2000),
    },
)
