"""Data: the procedural benchmark, readers for the real datasets, exporters."""

from .synthetic import (
    IGNORE,
    CachedSamples,
    DrivingConfig,
    DrivingScenes,
    ObjectWorld,
    PixelContrast,
    Sample,
    SampleDataset,
    SingleVehicles,
    VehicleConfig,
    WorldConfig,
    load_cached,
    object_mask,
    object_table,
    part_masks,
    pixel_contrast,
    presence_table,
    save_cached,
)

__all__ = [
    "IGNORE", "CachedSamples", "DrivingConfig", "DrivingScenes", "ObjectWorld", "PixelContrast",
    "Sample", "SampleDataset", "SingleVehicles", "VehicleConfig", "WorldConfig", "load_cached",
    "object_mask", "object_table", "part_masks", "pixel_contrast", "presence_table", "save_cached",
]
