"""A procedural benchmark whose every pixel is known.

Three generators, each a read-only sequence of :class:`Sample` (image plus
full ground truth), deterministic in ``(config.seed, index)``:

* :class:`DrivingScenes` (the BDD100K role): a road in perspective with lane
  markings, roadside trees, poles and signs, sky and buildings, and 0..N
  objects of six classes seen from a front camera;
* :class:`SingleVehicles` (the Stanford Cars role): one side-view vehicle of
  one of thirteen fine-grained types that differ in shape details;
* :class:`ObjectWorld` (the ImageNet role, DINO pre-training): one (or more)
  of twenty-four object categories on cluttered backgrounds.

Conventions: images are ``(H, W, 3)`` uint8 with ``H == W == config.size``;
boxes are ``xyxy`` pixels with an exclusive max, and each box is the tight box
of its instance mask; instance masks are the *visible* part of an object
after occlusion (the object's windows, wheels, stripes belong to it);
``semantic`` labels every pixel with an index into ``semantic_names``, whose
first entries are the background parts and whose tail equals
``class_names`` (so class ``k`` is semantic index ``n_parts + k``).

Objects whose visible area falls below ``max(config.min_visible_px,
config.min_visible_frac * H * W)`` pixels (almost fully hidden or cut by the
image border) are dropped from the ground truth: they get no box, no
instance mask and no multi-hot entry, and their pixels carry the value
:data:`IGNORE` (255) in ``semantic``.

How a scene is drawn: every primitive (polygon, ellipse, rectangle, line) is
painted twice with Pillow, once in colour and once into an element-id layer,
in painter's order (farther first). The id layer gives the masks; each
element's texture and amplitude are looked up per pixel from a texture bank
precomputed once per image size. Randomness comes from one PCG64 stream per
``(seed, index)``; no global state is touched.

Modules, from the bottom up:

* :mod:`.config` — the configs (:class:`DrivingConfig`,
  :class:`VehicleConfig`, :class:`WorldConfig`), class and part tables,
  :data:`GENERATOR_VERSION`;
* :mod:`.canvas` — random streams, colours, textures, the two-layer canvas,
  and the step from canvas to :class:`Sample`;
* :mod:`.shapes` — object templates: every object as primitives in a unit
  frame, with colour roles (:data:`BODY`, :data:`DARK`, ...);
* :mod:`.scenes` — the three generators and :class:`SampleDataset`.

The ground-truth contract (:class:`Sample`, :data:`IGNORE`,
:func:`object_mask`, :func:`part_masks`) lives in :mod:`dinosal.data.sample`;
the sample cache (:func:`save_cached`, :func:`load_cached`,
:class:`CachedSamples`) in :mod:`dinosal.data.cache`; the statistics
(:func:`object_table`, :func:`presence_table`, :func:`pixel_contrast`,
:class:`PixelContrast`) in :mod:`dinosal.data.stats`. The contract is
re-exported here; the cache and the statistics sit above the generator (they
use it), so import them from :mod:`dinosal.data` or their own modules.
"""

from __future__ import annotations

from ..sample import IGNORE, Sample, object_mask, part_masks
from .canvas import BLOTCH, FLAT, GRAIN, LEAF, STRIPE
from .config import (
    DEFAULT_PART_PROB,
    DRIVING_CLASSES,
    DRIVING_PARTS,
    GENERATOR_VERSION,
    MAX_SIZE,
    MIN_SIZE,
    OPTIONAL_DRIVING_PARTS,
    VEHICLE_PARTS,
    VEHICLE_TYPES,
    WORLD_CATEGORIES,
    WORLD_PARTS,
    DrivingConfig,
    VehicleConfig,
    WorldConfig,
    CommonConfig,
)
from .scenes import DrivingScenes, ObjectWorld, SampleDataset, ScenePlan, SingleVehicles
from .shapes import ACCENT, BODY, DARK, LIGHT, TRIM, Prim

__all__ = [
    # the ground-truth contract (dinosal.data.sample)
    "IGNORE", "Sample", "object_mask", "part_masks",
    # configs and tables
    "GENERATOR_VERSION", "MIN_SIZE", "MAX_SIZE", "CommonConfig", "DrivingConfig", "VehicleConfig", "WorldConfig",
    "DRIVING_CLASSES", "DRIVING_PARTS", "OPTIONAL_DRIVING_PARTS", "DEFAULT_PART_PROB", "VEHICLE_TYPES", "VEHICLE_PARTS",
    "WORLD_CATEGORIES", "WORLD_PARTS",
    # texture kinds, colour roles, primitives
    "FLAT", "GRAIN", "BLOTCH", "LEAF", "STRIPE", "BODY", "DARK", "LIGHT", "ACCENT", "TRIM", "Prim",
    # generators
    "DrivingScenes", "ScenePlan", "SingleVehicles", "ObjectWorld", "SampleDataset",
]

