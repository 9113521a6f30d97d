"""The bars a pretrained DINO recipe is held to, as rows of a table.

A bar turns the scores of a DINO model, and those of the baselines measured
on the same images, into ``(criterion, value, threshold, passed)`` rows: a
chapter prints them as they are, passed or not. Pure functions over plain
dicts (numbers in, rows out); the measuring lives in
:mod:`dinosal.localisation`, :mod:`dinosal.baselines` and :mod:`dinosal.knn`.

* :func:`recipe_bar` -- the first cpu recipes' bar (the book's issue 4):
  localisation on world images and on driving scenes.
* :func:`pretrained_bar` -- the bar of the model the study transfers from
  (issue 14): localisation and category k-NN on world images, attention on
  driving scenes it never saw, on a test split no choice was made on.
"""

from __future__ import annotations

Row = tuple[str, float, float, bool]

WORLD_BASELINES = ("random", "pixels_centred", "pixels_raw", "centre_box")
"""The baselines of a world bar: the same network at random init, LOST on centred and on raw pixels, the
centred box (:func:`dinosal.baselines.baseline_corlocs` and the random-init model)."""


def _best_baseline(world: dict) -> float:
    missing = [b for b in WORLD_BASELINES if b not in world]
    if missing:
        raise KeyError(f"bars: the world scores lack the baselines {missing} (needed: {list(WORLD_BASELINES)})")
    return max(float(world[b]) for b in WORLD_BASELINES)


def recipe_bar(world: dict | None = None, driving: dict | None = None) -> list[Row]:
    """The bar a cpu DINO recipe is held to (the book's issue 4), as
    ``(criterion, value, threshold, passed)`` rows.

    ``world`` / ``driving``: flat dicts with the DINO model's ``corloc`` and
    ``attn_ratio`` and the CorLoc of the baselines measured on the same images:
    ``random`` (the same network at random init), ``pixels_centred``,
    ``pixels_raw`` and ``centre_box`` (world needs all four, else
    ``KeyError``; driving needs ``random``).

    * world: CorLoc >= 0.5, and >= 0.15 above every baseline; attention ratio >= 2;
    * driving: CorLoc >= 2x the random-init network's; attention ratio >= 1.5.
    """
    rows = []
    if world:
        d = world["corloc"]
        base = _best_baseline(world)
        rows += [("world: LOST CorLoc >= 0.5", d, 0.5, d >= 0.5),
                 ("world: CorLoc minus the best baseline >= 0.15", d - base, 0.15, d - base >= 0.15),
                 ("world: attention on objects / their area >= 2", world["attn_ratio"], 2.0,
                  world["attn_ratio"] >= 2.0)]
    if driving:
        d, r = driving["corloc"], driving["random"]
        rows += [("driving: CorLoc / random-init CorLoc >= 2", d / r if r > 0 else float("inf") if d > 0 else 0.0,
                  2.0, d > 0 and d >= 2 * r),
                 ("driving: attention on objects / their area >= 1.5", driving["attn_ratio"], 1.5,
                  driving["attn_ratio"] >= 1.5)]
    return rows


def pretrained_bar(world: dict, driving: dict | None = None) -> list[Row]:
    """The bar of the pretrained model the study transfers from (issue 14), as
    ``(criterion, value, threshold, passed)`` rows; measured on the test split
    (dataset seed + 3000), 200 images at 128 px, with the baselines in the same
    run.

    ``world``: the model's ``corloc`` (LOST, k = 100), ``attn_ratio``
    (attention on the object over its area share), ``knn`` (top-1 of a 20-NN
    classifier over the world categories, cosine, DINO's ``eval_knn``
    weighting) and the baselines' CorLoc (:data:`WORLD_BASELINES`; a missing
    one raises ``KeyError``). ``driving``: the model's ``attn_ratio`` on
    driving scenes, which it never saw in pretraining (reported, not tuned on).

    * world: CorLoc >= 0.45, and >= 0.1 above every baseline; attention ratio
      >= 2.5; k-NN >= 0.30;
    * driving: attention ratio >= 1.5.
    """
    d, base = world["corloc"], _best_baseline(world)
    rows = [("world: LOST CorLoc >= 0.45", d, 0.45, d >= 0.45),
            ("world: CorLoc minus the best baseline >= 0.1", d - base, 0.1, d - base >= 0.1),
            ("world: attention on objects / their area >= 2.5", world["attn_ratio"], 2.5,
             world["attn_ratio"] >= 2.5),
            ("world: k-NN top-1 over the categories >= 0.30", world["knn"], 0.30, world["knn"] >= 0.30)]
    if driving:
        rows.append(("driving: attention on objects / their area >= 1.5", driving["attn_ratio"], 1.5,
                     driving["attn_ratio"] >= 1.5))
    return rows
