"""Readers for the real datasets: BDD100K, Stanford Cars, Pascal VOC, COCO, image folders.

Every reader returns an :class:`AnnotatedSet` (a sequence of
:class:`Annotation`) only after the whole annotation file and every image
path have been checked: a problem raises :class:`DatasetError` whose message
starts with the offending file and names the problem, and no half-built set
is ever returned.

Box convention (the library's): ``xyxy`` float32 pixels, 0-based, exclusive
max, so ``x2 - x1`` is the width in pixels. Conversions from each format:

* BDD100K / Scalabel ``box2d`` is 0-based with an *inclusive* max (the
  BDD100K toolkit computes widths as ``x2 - x1 + 1``):
  ``(x1, y1, x2 + 1, y2 + 1)``.
* Pascal VOC and Stanford Cars are 1-based with inclusive max (MATLAB):
  ``(xmin - 1, ymin - 1, xmax, ymax)`` — the same shift LOST applies.
* COCO ``bbox`` is ``[x, y, w, h]`` in continuous 0-based pixels:
  ``(x, y, x + w, y + h)``; ``iscrowd`` annotations are dropped.

Modules:

* :mod:`.common` -- what every reader shares: :class:`Annotation`,
  :class:`AnnotatedSet`, :class:`DatasetError`, the ``bad_boxes`` policy
  (:data:`BAD_BOXES`), the strict boolean parser :func:`parse_flag`, image
  verification (:data:`VERIFY`, ``on_bad``) and decoding (:func:`load_rgb`,
  its documented conversions), :func:`image_files`;
* :mod:`.bdd100k`, :mod:`.stanford_cars`, :mod:`.voc`, :mod:`.coco` -- one
  annotation format each (BDD100K also its lane markings and 10K semantic
  segmentation as per-pixel parts: :func:`read_bdd100k_lanes`,
  :func:`read_bdd100k_sem_seg`);
* :mod:`.folders` -- plain image folders and ImageFolder-style class folders.
"""

from .bdd100k import (
    BDD_ALIASES,
    BDD_CLASSES,
    BDD_SEM_SEG_TO_BOOK,
    BDD_SKIPPED,
    SemanticFrame,
    SemanticSet,
    bdd_category,
    read_bdd100k,
    read_bdd100k_lanes,
    read_bdd100k_sem_seg,
)
from .coco import read_coco
from .common import (
    BAD_BOXES,
    IMAGE_EXTENSIONS,
    ON_BAD,
    VERIFY,
    AnnotatedSet,
    Annotation,
    BoxIssues,
    DatasetError,
    image_files,
    load_rgb,
    parse_flag,
)
from .folders import read_class_folders, read_image_folder
from .stanford_cars import read_stanford_cars
from .voc import VOC_CLASSES, read_voc, read_voc_xml

__all__ = [
    "BAD_BOXES",
    "BDD_ALIASES",
    "BDD_CLASSES",
    "BDD_SEM_SEG_TO_BOOK",
    "BDD_SKIPPED",
    "IMAGE_EXTENSIONS",
    "ON_BAD",
    "VERIFY",
    "VOC_CLASSES",
    "AnnotatedSet",
    "Annotation",
    "BoxIssues",
    "DatasetError",
    "SemanticFrame",
    "SemanticSet",
    "bdd_category",
    "image_files",
    "load_rgb",
    "parse_flag",
    "read_bdd100k",
    "read_bdd100k_lanes",
    "read_bdd100k_sem_seg",
    "read_class_folders",
    "read_coco",
    "read_image_folder",
    "read_stanford_cars",
    "read_voc",
    "read_voc_xml",
]
