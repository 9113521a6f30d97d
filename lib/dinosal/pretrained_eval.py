"""The pretrained role judged on the test split: one scoring rule for the chapter and the benchmark.

:func:`test_sets` draws the images once (world and driving scenes of the test
split, dataset seed + 3000, the k-NN sets of that split and the pixel
baselines on the world images); :func:`score_run` scores one trained backbone
against its own random initialisation on them and returns the row that
:func:`dinosal.bars.pretrained_bar` judges (issue 14's bar). Used by
book/training.ipynb and benchmarks/pretrained_bar.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import bars, knn, zoo
from .baselines import baseline_corlocs
from .localisation import localisation_scores


@dataclass(frozen=True)
class TestSets:
    """``world`` / ``driving``: samples with objects at the evaluation size; ``knn``: :class:`~dinosal.knn.KnnSets`
    at the training size; ``baselines``: CorLoc of LOST on centred and raw pixels and of the best centred box."""

    world: list
    driving: list
    knn: knn.KnnSets
    baselines: dict


def test_sets(spec: zoo.TrainSpec, profile: str, n: int, size: int, n_knn: int, k: int = 100) -> TestSets:
    """The test split's images for the world model ``spec`` of ``profile``: ``n`` of each domain at ``size`` px,
    ``n_knn`` + ``n_knn`` k-NN images, and the pixel baselines (LOST's ``k``) on the world images."""
    world = zoo.held_out_samples(spec, n, size=size, split="test")
    driving = zoo.held_out_samples(zoo.domain_spec("driving", profile), n, size=size, split="test")
    base = baseline_corlocs(world, spec.dino.patch, k=k)
    return TestSets(world, driving, zoo.knn_sets(spec, n_knn, split="test"),
                    {b: float(base[b]) for b in ("pixels_centred", "pixels_raw", "centre_box")})


def score_run(model: torch.nn.Module, spec: zoo.TrainSpec, sets: TestSets, k: int = 100, knn_k: int = 20) -> dict:
    """One run on :class:`TestSets`: LOST CorLoc, attention ratios and pointing on world images, k-NN top-1, the
    attention ratio and CorLoc on driving scenes, each also for the same network at random init (the exact
    weights the run started from, :func:`dinosal.zoo.initial_backbone`), the pixel baselines, and
    ``bar``: the rows of :func:`dinosal.bars.pretrained_bar` with ``met``, how many passed."""
    init = zoo.initial_backbone(spec.dino).eval()
    s, r = (localisation_scores(net, sets.world, k=k) for net in (model, init))
    d, dr = (localisation_scores(net, sets.driving, k=k) for net in (model, init))
    row = {"corloc": s.corloc, "attn_ratio": s.attn_ratio, "attn_ratio_best_head": s.attn_ratio_best_head,
           "pointing": s.pointing, "knn": knn.knn_eval(model, sets.knn, k=knn_k),
           "random_corloc": r.corloc, "random_attn_ratio": r.attn_ratio,
           "random_knn": knn.knn_eval(init, sets.knn, k=knn_k), **sets.baselines,
           "driving_corloc": d.corloc, "driving_attn_ratio": d.attn_ratio,
           "driving_random_corloc": dr.corloc, "driving_random_attn_ratio": dr.attn_ratio}
    row["bar"] = bars.pretrained_bar({**row, "random": r.corloc}, {"attn_ratio": d.attn_ratio})
    row["met"] = sum(ok for *_, ok in row["bar"])
    return row
