"""What the chapter notebooks share: their setup, and the small tables and statistics they all read.

A chapter (``book/*.ipynb``) imports from the library only and defines no
helper that a second chapter would also need (BOOK.md); the helpers that used
to be copied from chapter to chapter live here. Figures are in
:mod:`dinosal.viz`, the source listings too (:func:`dinosal.viz.show_source`).

* :func:`setup`: the plotting theme every chapter uses and, where the chapter
  trains or evaluates networks, the torch thread count of its profile;
* :func:`tail_mean`: a training log's columns averaged over its last steps
  (one step is noisy);
* :func:`chance_half_width`: half the 95 % range of a classifier that
  guesses, the yardstick of every k-NN accuracy in the book;
* :func:`recipe_table`: the DINO recipes of the zoo, one column per model;
* :func:`differing_fields`: the fields of a configuration that differ from a
  reference one (a recipe against DINO's official defaults);
* :func:`pooled_region_ratios` and :func:`ratio_table`: where a saliency map's
  mass goes (objects, lanes, trees, road, sky), pooled over images and laid
  out one row per model, as every chapter that compares models reads it.

Top floor: it may import anything of ``dinosal``; nothing imports it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Optional, Sequence, Union

import pandas as pd
import seaborn as sns
import torch

from . import localisation, viz, zoo
from .train.dino import RUN_CONTROL_FIELDS

__all__ = ["setup", "tail_mean", "chance_half_width", "recipe_table", "differing_fields",
           "pooled_region_ratios", "ratio_table"]


def setup(threads: Optional[int] = None) -> None:
    """Set the book's plotting theme, and torch's thread count when ``threads`` is given.

    In a notebook kernel, figures are drawn inline (``%matplotlib inline``),
    so a ``Figure`` returned by :mod:`dinosal.viz` shows with ``display``
    before any pyplot call. On a small CPU the data-loader worker needs a core of its own: a torch
    thread pool that oversubscribes the cores waits for busy ones at every
    operation, so the profiles that train name fewer threads than cores.
    ``threads=None`` (or 0) leaves torch's setting alone.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipywidgets
        get_ipython = None
    shell = get_ipython() if get_ipython else None
    if shell is not None and hasattr(shell, "kernel"):
        shell.run_line_magic("matplotlib", "inline")
    sns.set_theme(style="whitegrid", font_scale=0.9)
    if threads:
        torch.set_num_threads(threads)


def tail_mean(log: pd.DataFrame, columns: Union[str, Sequence[str]], parts: int = 10):
    """Mean of ``columns`` over the last ``len(log) // parts`` rows (at least one) of a training log.

    A float for one column name, a Series for a list of names.
    """
    tail = log.iloc[-max(1, len(log) // parts):]
    if isinstance(columns, str):
        return float(tail[columns].mean())
    return tail[list(columns)].mean()


def mean_sd(df: pd.DataFrame, by: Union[str, Sequence[str]], columns: Sequence[str], digits: int = 3,
            sort: bool = False) -> pd.DataFrame:
    """``"mean ± sd"`` of each of ``columns`` over the rows of each group of ``by`` (one row per training run:
    the spread over runs, sample sd with ddof 1; a group of one run shows its value alone), and ``runs``."""
    g = df.groupby(by, sort=sort)
    out = pd.DataFrame({"runs": g.size()})
    for c in columns:
        m, sd = g[c].mean(), g[c].std(ddof=1)
        out[c] = [f"{a:.{digits}f}" if pd.isna(b) else f"{a:.{digits}f} ± {b:.{digits}f}" for a, b in zip(m, sd)]
    return out


def chance_half_width(chance: float, n: int) -> float:
    """Half the 95 % range of the accuracy of a classifier that guesses: ``1.96 sqrt(p (1 - p) / n)``.

    chance: the probability of a right guess (one over the number of
    classes); n: the number of test images.
    """
    return 1.96 * math.sqrt(chance * (1 - chance) / n)


def _data_of(spec) -> str:
    """What a spec trains on, in a few words: the zoo's line, or the image folder it reads."""
    data = spec.data_config
    folder = data.get("folder") if isinstance(data, Mapping) else getattr(data, "folder", None)
    return f"images under {folder}" if folder else zoo.describe(spec)


def _recipe_row(name: str, r) -> dict:
    if r.data == "official":
        return {"model": name, "data": f"official weights ({r.weights})"}
    spec = zoo.train_spec(r)
    d, c = spec.dino, spec.dino.crops
    steps = d.epochs * (d.steps_per_epoch or 0)
    data = spec.data_config
    row = {
        "model": name,
        "data": _data_of(spec),
        "ViT (width, depth, heads)": str(d.arch), "patch": str(d.patch),
        "crops": f"{c.n_global} x {c.global_size} px + {c.n_local} x {c.local_size} px (local scale {c.local_scale})",
        "batch": str(d.batch_size), "steps": str(steps) if steps else "one pass per epoch",
        "peak lr": f"{d.lr * d.batch_size / 256:g}", "teacher temp": f"{d.teacher_temp:g}",
        "EMA momentum": f"{d.momentum_teacher} -> {d.momentum_teacher_end}", "K (out_dim)": str(d.out_dim),
        "KoLeo weight": f"{d.koleo_weight:g}",
    }
    for field, label in (("background_variability", "background variability"),
                         ("n_objects", "objects per image"), ("object_scale", "object scale")):
        if hasattr(data, field):
            value = getattr(data, field)
            row[label] = str(tuple(value)) if field == "n_objects" else f"{value:g}"
    return row


def recipe_table(recipes: Mapping[str, object]) -> pd.DataFrame:
    """The fields of DINO recipes that matter, one column per model name, as text.

    recipes: model name -> ``dinosal.profiles.DinoRecipe`` (as ``zoo.recipe``
    returns). Official weights get one row, the file they come from; every
    other field of ``DinoConfig`` keeps its official default and is left out.
    Every value is a string (numbers as ``:g`` writes them), so that no column
    turns whole numbers into floats; a field one recipe lacks is missing
    (NaN: show it as :data:`dinosal.viz.MISSING`).
    """
    return pd.DataFrame([_recipe_row(n, r) for n, r in recipes.items()]).set_index("model").T


def _flat_fields(obj, prefix: str = "") -> dict:
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out.update(_flat_fields(value, f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = value
    return out


def differing_fields(config, reference, skip: Sequence[str] = RUN_CONTROL_FIELDS,
                     names: Sequence[str] = ("value", "default")) -> pd.DataFrame:
    """The fields of the dataclass ``config`` whose value differs from ``reference``'s, one row each.

    Nested dataclasses (a ``DinoConfig``'s ``crops``) are compared field by
    field and named ``outer.inner``; ``skip`` leaves fields out by their
    top-level name (default: the run-control fields of ``DinoConfig``, which
    do not change a result). Returns the columns ``names`` (the config's
    value, the reference's), values as text (``None`` as :data:`dinosal.viz.MISSING`), in
    field order.
    """
    if type(config) is not type(reference):
        raise TypeError(f"config and reference differ in type: {type(config).__name__}, "
                        f"{type(reference).__name__}")
    a, b = _flat_fields(config), _flat_fields(reference)

    def text(v) -> str:
        return viz.MISSING if v is None else str(v)

    rows = {k: (text(v), text(b[k])) for k, v in a.items()
            if k.split(".")[0] not in set(skip) and v != b[k]}
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(names))


def pooled_region_ratios(regions: pd.DataFrame) -> pd.DataFrame:
    """Mass share over area share per (set, map, model, region), pooled over the images.

    regions: one row per (set, model, image, map, region) with the columns
    ``set``, ``model``, ``map``, ``region``, ``share`` and ``area`` (the rows
    of :func:`dinosal.localisation.region_rows`, tagged with set and model).
    Pooling is :func:`dinosal.localisation.pooled_ratio` (mean share over mean
    area). Returns the columns set, map, model, region, ratio.
    """
    return (regions.groupby(["set", "map", "model", "region"], sort=False)
            .apply(lambda g: localisation.pooled_ratio(g["share"], g["area"]), include_groups=False)
            .rename("ratio").reset_index())


def ratio_table(pooled: pd.DataFrame, set_name: str, map_name: str, models: Sequence[str]) -> pd.DataFrame:
    """Models x regions table of the pooled ratios of one map on one set, rows in the order of ``models``."""
    sel = pooled[(pooled.set == set_name) & (pooled["map"] == map_name)]
    return sel.pivot(index="model", columns="region", values="ratio").reindex(list(models))
