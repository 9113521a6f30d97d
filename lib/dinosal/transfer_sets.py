"""The data of the transfer tasks: training, validation and test sets, and the scenes the maps are drawn on.

A task of :data:`dinosal.profiles.TRANSFER_TASKS` resolves into a
:class:`TaskData` (what enters a transfer's key). Its sets
(:func:`task_set`) are sequences of items with ``image``, ``boxes``,
``labels``, ``multi_hot`` and ``class_names``, as the transfer trainer reads
them:

* **generated** (``"driving"``: DrivingScenes, ``"vehicles"``:
  SingleVehicles): ``train`` is items ``0 .. n_train-1`` of the task's
  generator config, drawn once into a run-cache artifact (kind
  ``"transfer_data"``: a driving scene takes ~10 ms to draw, a fine-tune
  reads each many times); ``validation`` and ``test`` are the zoo's splits
  (:func:`dinosal.zoo.held_out_samples`: dataset seed + 1000 and + 3000,
  images with an object);
* **real** (``"bdd100k"``, ``"stanford_cars"``, the paper profile): read by
  :mod:`dinosal.data.readers` from the files the task names under the data
  root (``data_root`` or ``$DINOSAL_DATA``); ``validation`` is the last
  ``n_val`` items of the training file, ``train`` the first ``n_train`` of
  the rest, ``test`` the task's test file (BDD100K's val split, Stanford Cars'
  labelled test annotations). The key holds the files' fingerprint.

Two views of a training set serve the findings chapter's controls
(:data:`~dinosal.profiles.TRANSFER_CONTROLS`): ``TaskData.shuffle_labels``
permutes the image-level labels across the training images
(:class:`ShuffledLabels`), and a ``"ce"`` task on driving scenes trains on
the images with an object only (CE needs one class per image).

The pre-registration's rules live here too (book/preregistration.md):
:data:`VEHICLES` and :data:`CO_OCCURRING`, the margins :data:`OA_MARGIN` and
:data:`RATIO_MARGIN`, :func:`shows_preregistered` and
:func:`preregistered_scenes` (the images every figure shows),
:func:`scene_truth` (ground truth with the ``vehicles`` and ``background``
regions) and :func:`overall_activation`.

Floor 3 under :mod:`dinosal.transfers`, over :mod:`dinosal.zoo`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from . import runs, zoo
from .data.sample import GroundTruth, part_masks, truth_from_boxes, truth_of
from .parts import MEASURABLE_MAX, overall_activation  # one definition of each (dinosal.parts), re-exported here

__all__ = ["TaskData", "Frame", "ShuffledLabels", "DATA_KIND", "VEHICLES", "CO_OCCURRING", "OA_MARGIN", "RATIO_MARGIN", "task_data", "task_set", "test_scenes",
           "shows_preregistered", "preregistered_scenes", "scene_truth", "overall_activation", "MEASURABLE_MAX",
           "output_dir"]

DATA_KIND = "transfer_data"
VEHICLES = ("car", "truck", "bus", "motorcycle")
"""The pre-registered "vehicles" (book/preregistration.md)."""
CO_OCCURRING = ("lane_marking", "tree")
"""The unlabelled parts that co-occur with every class (the paper's "lane markings and trees")."""
OA_MARGIN = 0.02
"""The pre-registered margin of "no meaningful change" of the overall activation (:func:`overall_activation`)."""
RATIO_MARGIN = float(np.log2(1.1))
"""The pre-registered margin of "no meaningful change" of a log2 ratio of mass ratios (a 10 % change)."""
_REAL = ("bdd100k", "stanford_cars")


@dataclass(frozen=True)
class TaskData:
    """The data of a transfer task as it enters the key.

    task, loss: the task's name and loss; data: ``"driving"``, ``"vehicles"``, ``"bdd100k"`` or
    ``"stanford_cars"``; config: the generator config with ``length = n_train`` (generated) or the
    files under the data root (real); n_train, n_val: training and validation images; identity: for
    real data :func:`dinosal.runs.files_fingerprint` of the label files and every image they name
    (root, count, digest), None for generated data (the generator version rides on the config).
    shuffle_labels: None (the true labels), or the seed of the permutation that gives training image
    ``i`` the multi-hot of image ``perm[i]`` (:class:`ShuffledLabels`; a ``"bce"`` task only). Left out
    of the key at None, so the tasks' keys did not move when it was added.
    """

    task: str
    loss: str
    data: str
    config: Any
    n_train: int
    n_val: int
    identity: Optional[dict] = None
    shuffle_labels: Optional[int] = field(default=None, metadata={"key_omit_default": True})


@dataclass(frozen=True, eq=False)
class Frame:
    """A real image with its boxes, as the trainer and the figures read it (decoded on access)."""

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    multi_hot: np.ndarray
    class_names: tuple[str, ...]


def _data_root(data_root) -> Path:
    root = data_root or os.environ.get(zoo.DATA_ENV)
    if not root:
        raise RuntimeError(f"transfers: real data needs data_root or ${zoo.DATA_ENV} (the folder holding the datasets)")
    return Path(root)


@functools.lru_cache(maxsize=8)
def _read_real(data: str, root: str, files: tuple) -> tuple:
    """(training set, test set) of a real task, read once per process."""
    from .data import readers

    f, r = dict(files), Path(root)
    if data == "bdd100k":
        return (readers.read_bdd100k(r / f["labels"], r / f["images"]),
                readers.read_bdd100k(r / f["test_labels"], r / f["test_images"]))
    meta = r / f["meta"] if "meta" in f else None
    return (readers.read_stanford_cars(r / f["annos"], r / f["images"], meta),
            readers.read_stanford_cars(r / f["test_annos"], r / f["test_images"], meta))


def task_data(task_name: str, t, data_root=None, n_train: Optional[int] = None,
              shuffle_labels: Optional[int] = None) -> TaskData:
    """The :class:`TaskData` of task ``t`` (a :class:`~dinosal.profiles.TransferTask`) named
    ``task_name``; ``n_train`` (None: the table's) bounds the training images; ``shuffle_labels``:
    see :class:`TaskData` (``ValueError`` for a task whose loss is not ``"bce"``)."""
    from .data.synthetic import DrivingConfig, VehicleConfig

    if shuffle_labels is not None and t.loss != "bce":
        raise ValueError(f"transfers: shuffle_labels permutes multi-hot labels; task {task_name!r} has loss {t.loss!r}")
    extra = {} if shuffle_labels is None else {"shuffle_labels": int(shuffle_labels)}
    n = int(n_train or t.n_train)
    if t.data in ("driving", "vehicles"):
        cls = DrivingConfig if t.data == "driving" else VehicleConfig
        return TaskData(task_name, t.loss, t.data, cls(**{**t.data_config, "length": n}), n, int(t.n_val), **extra)
    if t.data not in _REAL:
        raise ValueError(f"transfers: task {task_name!r} has unknown data {t.data!r}; valid: driving, vehicles, "
                         f"{', '.join(_REAL)}")
    root = _data_root(data_root)
    files = {k: str(v) for k, v in t.data_config.items()}
    sets = _read_real(t.data, str(root), tuple(sorted(files.items())))
    labels = [root / v for k, v in files.items() if k in ("labels", "test_labels", "annos", "test_annos", "meta")]
    ident = runs.files_fingerprint(root, labels + [a.image for s in sets for a in s])
    return TaskData(task_name, t.loss, t.data, files, n, int(t.n_val), ident, **extra)


class _Frames(SequenceABC):
    """Items ``indices`` of an :class:`~dinosal.data.readers.AnnotatedSet` as :class:`Frame` objects."""

    def __init__(self, annotated, indices) -> None:
        self.annotated, self.indices = annotated, list(indices)
        self.class_names = tuple(annotated.class_names)

    def __len__(self) -> int:
        return len(self.indices)

    def multi_hot_of(self, i: int) -> np.ndarray:
        """Item ``i``'s multi-hot, without decoding its image."""
        multi_hot = np.zeros(len(self.class_names), np.float32)
        multi_hot[np.asarray(self.annotated[self.indices[i]].labels, dtype=np.int64)] = 1.0
        return multi_hot

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        k = self.indices[i]
        a = self.annotated[k]
        return Frame(self.annotated.image(k), np.asarray(a.boxes, np.float32).reshape(-1, 4),
                     np.asarray(a.labels, np.int64), self.multi_hot_of(i), self.class_names)


class _View(SequenceABC):
    """Items ``indices`` of a training set; with ``perm``, item ``i`` carries the multi-hot of item ``perm[i]``."""

    def __init__(self, base, indices, perm=None) -> None:
        self.base, self.indices, self.perm = base, list(indices), perm
        self.class_names = tuple(getattr(base, "class_names", None) or base[0].class_names)

    def __len__(self) -> int:
        return len(self.indices)

    def _multi_hot(self, i: int) -> np.ndarray:
        k = self.indices[i]
        return self.base.multi_hot_of(k) if hasattr(self.base, "multi_hot_of") else self.base[k].multi_hot

    def multi_hot_of(self, i: int) -> np.ndarray:
        return self._multi_hot(i if self.perm is None else int(self.perm[i]))

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        item = self.base[self.indices[range(len(self))[i]]]
        return item if self.perm is None else dataclasses.replace(item, multi_hot=self.multi_hot_of(i))


class ShuffledLabels(_View):
    """A training set whose image-level labels are permuted across its images (the labels control):
    item ``i`` is image ``i`` with the multi-hot of image ``perm[i]``, ``perm`` drawn once by
    ``numpy.random.default_rng(seed).permutation``. The label histogram (the multiset of multi-hots)
    is kept; only the pairing of images and labels changes. The item's boxes, per-object labels and
    masks stay its own: what a ``"bce"`` loss reads is the multi-hot alone."""

    def __init__(self, base, seed: int) -> None:
        super().__init__(base, range(len(base)), np.random.default_rng(int(seed)).permutation(len(base)))
        self.seed = int(seed)


def _training_view(data: TaskData, train):
    """The training set a task trains on: CE on driving scenes keeps the images with an object; then
    ``shuffle_labels`` (:class:`ShuffledLabels`)."""
    if data.loss == "ce" and data.data == "driving":
        train = _View(train, [i for i in range(len(train)) if len(train[i].labels)])
    return train if data.shuffle_labels is None else ShuffledLabels(train, data.shuffle_labels)


def _training_set(config):
    """Items ``0 .. config.length-1`` of a generator, drawn once into the run cache (kind ``"transfer_data"``)."""
    from .data.cache import load_cached, save_cached
    from .data.synthetic import DrivingConfig, DrivingScenes, SingleVehicles

    gen = (DrivingScenes if isinstance(config, DrivingConfig) else SingleVehicles)(config)

    def build(tmp: Path) -> dict:
        save_cached(gen, len(gen), tmp / "samples.npz")
        return {"images": len(gen)}

    return load_cached(runs.cached(DATA_KIND, config, build) / "samples.npz")


def task_set(data: TaskData, split: str, n: Optional[int] = None):
    """The ``split`` (``"train"``, ``"validation"``, ``"test"``) of a task, as a sequence of items
    (see the module doc); ``n`` images (validation: default ``n_val``; test: required; train: all).
    Validation and test keep the true labels whatever ``shuffle_labels`` says.
    Raises ``ValueError`` for an unknown split, or a test set without ``n``."""
    if split not in ("train", "validation", "test"):
        raise ValueError(f"transfers: split must be train, validation or test, got {split!r}")
    if split == "test" and n is None:
        raise ValueError("transfers: say how many test images (n)")
    n = data.n_val if split == "validation" and n is None else n
    if data.data not in _REAL:
        if split == "train":
            return _training_view(data, _training_set(data.config))
        return zoo.held_out_samples(data.config, int(n), split=split)
    train_all, test = _read_real(data.data, data.identity["root"], tuple(sorted(data.config.items())))
    n_fit = len(train_all) - data.n_val
    if n_fit < 1:
        raise ValueError(f"transfers: {train_all.source} has {len(train_all)} items, not more than n_val={data.n_val}")
    if split == "train":
        return _training_view(data, _Frames(train_all, range(min(data.n_train, n_fit))))
    if split == "validation":
        return _Frames(train_all, range(n_fit, len(train_all)))[: int(n)]
    return _Frames(test, range(min(int(n), len(test))))


def test_scenes(data: TaskData, n: int, size: int, patch: int = 8) -> list:
    """The first ``n`` test images with an object, ``size`` px (the maps' images): generated samples
    of the test split rendered at ``size``, or real test frames with a box resized to a short side of
    ``size`` (a multiple of ``patch``, boxes scaled along)."""
    if data.data not in _REAL:
        return zoo.held_out_samples(data.config, n, size, split="test")
    from .localisation import resize_short_side

    out = []
    for f in task_set(data, "test", 10 * n + 100):
        if len(f.boxes):
            image, boxes = resize_short_side(f.image, f.boxes, size, patch)
            out.append(Frame(image, boxes, f.labels, f.multi_hot, f.class_names))
            if len(out) == n:
                return out
    raise ValueError(f"transfers: only {len(out)} test frames with a box; asked for {n}")


# ---------------------------------------------------------------- the pre-registration's rules


def _vehicle_objects(scene) -> np.ndarray:
    names = np.asarray(scene.class_names)[np.asarray(scene.labels, dtype=np.int64)] if len(scene.labels) else []
    return np.isin(np.asarray(names, dtype=object), VEHICLES)


def shows_preregistered(scene) -> bool:
    """The pre-registered rule for one scene: it holds a vehicle (:data:`VEHICLES`) and a visible lane
    marking or tree. A real frame (no part labels) needs a vehicle only."""
    if not _vehicle_objects(scene).any():
        return False
    if not hasattr(scene, "semantic"):
        return True
    return bool(set(part_masks(scene)) & set(CO_OCCURRING))


def preregistered_scenes(data: TaskData, n: int = 6, size: int = 128, patch: int = 8) -> list[tuple[int, Any]]:
    """The images every figure of the transfer and findings chapters shows (book/preregistration.md):
    the first ``n`` test scenes by index that contain a vehicle and a lane marking or a tree
    (:func:`shows_preregistered`), rendered at ``size`` px, as ``(index in the test split, scene)``.
    Generated driving data: indices of the test split's generator (dataset seed + 3000); real frames
    (no part labels): the first test frames with a vehicle, resized as :func:`test_scenes`.
    No score enters the choice. Raises ``ValueError`` for a task without driving scenes, or fewer
    than ``n`` such scenes among the first ``100 n + 100``."""
    limit = 100 * n + 100
    if data.data == "driving":
        from .data.synthetic import DrivingScenes

        gen = DrivingScenes(zoo.split_config(data.config, "test", size, length=limit))
        items = ((i, gen[i]) for i in range(len(gen)))
    elif data.data == "bdd100k":
        from .localisation import resize_short_side

        def frames():
            for i, f in enumerate(task_set(data, "test", limit)):
                if len(f.boxes):
                    image, boxes = resize_short_side(f.image, f.boxes, size, patch)
                    yield i, Frame(image, boxes, f.labels, f.multi_hot, f.class_names)

        items = frames()
    else:
        raise ValueError(f"transfers: the pre-registered images are driving scenes; task {data.task!r} has "
                         f"{data.data!r} images")
    out = []
    for i, s in items:
        if shows_preregistered(s):
            out.append((i, s))
            if len(out) == n:
                return out
    raise ValueError(f"transfers: only {len(out)} of the first {limit} test scenes follow the rule; asked for {n}")


def scene_truth(scene) -> GroundTruth:
    """The ground truth of a scene with the pre-registered regions added to its parts: ``vehicles``
    (the masks of :data:`VEHICLES` objects) and ``background`` (every background part: sky, roadside,
    road, lane_marking, building, tree, pole, sign). A real frame has boxes only: objects and
    ``vehicles`` are unions of boxes, and no other part."""
    is_vehicle = _vehicle_objects(scene)
    if not hasattr(scene, "semantic"):
        truth = truth_from_boxes(scene.image.shape, scene.boxes)
        vehicles = truth_from_boxes(scene.image.shape, np.asarray(scene.boxes)[is_vehicle]).objects
        return GroundTruth(truth.boxes, truth.objects, {"vehicles": vehicles})
    truth = truth_of(scene)
    vehicles = (np.asarray(scene.masks)[is_vehicle].any(axis=0) if is_vehicle.any()
                else np.zeros(truth.objects.shape, dtype=bool))
    background = np.logical_or.reduce([m for m in truth.parts.values()]) if truth.parts else ~truth.objects
    return GroundTruth(truth.boxes, truth.objects, {**truth.parts, "vehicles": vehicles, "background": background})


def output_dir(profile: str, out_dir=None, chapter: str = "transfer") -> Path:
    """The folder a chapter writes its CSV files to (created): ``out_dir``, else
    ``_build/<chapter>/<profile>`` of the checkout this library lives in, else of the working folder."""
    if out_dir:
        folder = Path(out_dir)
    else:
        repo = Path(__file__).resolve().parents[2]
        base = repo if (repo / "pyproject.toml").is_file() else Path.cwd()
        folder = base / "_build" / chapter / profile
    folder.mkdir(parents=True, exist_ok=True)
    return folder
