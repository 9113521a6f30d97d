"""Data: the procedural benchmark, readers for the real datasets, exporters.

* :mod:`.sample` — the ground-truth contract: :class:`Sample`, :data:`IGNORE`,
  :func:`object_mask`, :func:`part_masks`, and the localisation scorers' ``GroundTruth``;
* :mod:`.synthetic` — ``DrivingScenes``, ``SingleVehicles``, ``ObjectWorld``
  (items are :class:`Sample`), their configs and the torch wrapper;
* :mod:`.cache` — cached evaluation sets (``save_cached``, ``load_cached``);
* :mod:`.stats` — tables and pixel-contrast statistics of a set of samples;
* :mod:`.readers` — BDD100K, Stanford Cars, Pascal VOC, COCO, image folders;
* :mod:`.export` — the same formats, written from generated samples.
"""

from .export import (
    MARKER,
    Exported,
    is_export,
    export_bdd100k,
    export_class_folders,
    export_coco,
    export_stanford_cars,
    export_voc,
)
from .readers import (
    BAD_BOXES,
    BDD_CLASSES,
    ON_BAD,
    VERIFY,
    BoxIssues,
    image_files,
    parse_flag,
    VOC_CLASSES,
    AnnotatedSet,
    Annotation,
    DatasetError,
    load_rgb,
    read_bdd100k,
    read_class_folders,
    read_coco,
    read_image_folder,
    read_stanford_cars,
    read_voc,
)
from .sample import IGNORE, Sample, object_mask, part_masks
from .synthetic import (
    DrivingConfig,
    DrivingScenes,
    ObjectWorld,
    SampleDataset,
    SingleVehicles,
    VehicleConfig,
    WorldConfig,
)
from .cache import CachedSamples, load_cached, save_cached
from .stats import PixelContrast, object_table, pixel_contrast, presence_table

__all__ = [
    # sample, synthetic, cache, stats
    "IGNORE", "CachedSamples", "DrivingConfig", "DrivingScenes", "ObjectWorld", "PixelContrast",
    "Sample", "SampleDataset", "SingleVehicles", "VehicleConfig", "WorldConfig", "load_cached",
    "object_mask", "object_table", "part_masks", "pixel_contrast", "presence_table", "save_cached",
    # readers
    "BAD_BOXES", "BDD_CLASSES", "ON_BAD", "VERIFY", "BoxIssues", "image_files", "parse_flag",
    "VOC_CLASSES", "AnnotatedSet", "Annotation", "DatasetError", "load_rgb",
    "read_bdd100k", "read_class_folders", "read_coco", "read_image_folder", "read_stanford_cars", "read_voc",
    # export
    "MARKER", "is_export", "Exported", "export_bdd100k", "export_class_folders", "export_coco", "export_stanford_cars", "export_voc",
]
