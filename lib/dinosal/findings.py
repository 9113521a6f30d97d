"""The paper's claims measured: effects, the hierarchical bootstrap and the pre-registered verdicts.

book/preregistration.md fixes, for each claim of the seed paper, the
quantity, the direction the paper expects, the margin of "no meaningful
change" and the decision rule; this module applies them to the study's
score tables (:mod:`dinosal.run_scores`), never to anything else.

* :func:`collect`: the score tables of a list of :class:`~dinosal.run_scores.Run`
  as one long table, one row per (run, image), with the run's ``model``,
  ``role``, ``pretrain_seed`` and ``transfer_seed``.
* :data:`CLAIMS` (:class:`Claim`, built by :func:`claims` for a pretrained
  parent): each row of the pre-registration's table as data.
* :func:`pair_table`: the rows of two models arranged for a paired
  hierarchical bootstrap (a parent repeated under each transfer seed of
  its child; unpaired models as strata).
* :func:`effect_of` / :func:`decide`: each claim's effect under
  :func:`dinosal.stats.joint_bootstrap`, then Holm and the verdicts
  (:func:`dinosal.stats.claims_table`), with the measurability check
  (q > 0.95 on a model: "not measurable").
* :func:`knob_effect`: claim 4, the slope of ``log2 RM(part)`` against a
  knob's level times the knob's range, per knob and part.
* :func:`changes`: every transfer against its parent, per part (the
  descriptive table of the controls).

Quantities (all from the LOST inverse degree unless ``kind`` says otherwise):
``RM(part) = sum(share) / sum(area)`` over the rows of a model (the pooled
relevance mass ratio), effects as ``log2 RM_b - log2 RM_a``; ``OA`` is the
mean per-image overall activation. Floor 3, above :mod:`dinosal.run_scores`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from . import run_scores, stats
from .parts import MEASURABLE_MAX
from .transfer_sets import OA_MARGIN, RATIO_MARGIN

__all__ = ["Claim", "claims", "collect", "rm", "log2_rm", "oa", "pair_table", "effect_of", "decide", "knob_effect",
           "changes", "per_seed", "mass_ratio_table", "measurable", "units_in_words", "CLAIM_MAP", "RUN_LEVELS",
           "UNIT_WORDS"]

CLAIM_MAP = "inverse degree"
"""The map every claim is judged on (the paper's degree panel, book/preregistration.md)."""
RUN_LEVELS = ("pretrain_seed", "transfer_seed", "image")
"""The bootstrap's hierarchy, outermost first (:data:`dinosal.stats.LEVELS`)."""


# ---------------------------------------------------------------- the table of every run


def collect(runs: Sequence, profile: str, P, progress: Optional[Callable] = None) -> pd.DataFrame:
    """One long table of the score tables of ``runs`` (:func:`dinosal.run_scores.scores` with the scoring
    set-up of ``P``, a :class:`~dinosal.profiles.FindingsParams`): the score columns plus ``model`` (the
    run's name), ``role``, ``pretrain_seed`` and ``transfer_seed`` (-1 for a pretrained model).
    ``progress``: an iterable wrapper such as ``tqdm``."""
    wrap = progress or (lambda x, **_: x)
    parts = []
    for r in wrap(runs, desc="score tables", unit="run"):
        t = run_scores.scores(r.spec, profile, P.n_eval, P.eval_size, P.k, P.tau, P.data_root)
        meta = pd.DataFrame({"model": r.name, "role": r.role, "pretrain_seed": int(r.pretrain_seed),
                             "transfer_seed": -1 if r.transfer_seed is None else int(r.transfer_seed)}, index=t.index)
        parts.append(pd.concat([t, meta], axis=1))
    if not parts:
        raise ValueError("runs is empty")
    return pd.concat(parts, ignore_index=True)


# ---------------------------------------------------------------- quantities of one model


def rm(df: pd.DataFrame, part: str, kind: str = CLAIM_MAP) -> float:
    """The pooled relevance mass ratio of ``part``: sum of the map's mass shares over the sum of the part's
    area shares over the rows of ``df`` (NaN where the part never appears)."""
    area = float(df[f"area|{part}"].sum())
    return float(df[f"share|{kind}|{part}"].sum()) / area if area > 0 else float("nan")


def log2_rm(df: pd.DataFrame, part: str, kind: str = CLAIM_MAP) -> float:
    """``log2`` of :func:`rm` (NaN for a ratio of 0 or NaN)."""
    r = rm(df, part, kind)
    return float(np.log2(r)) if r > 0 else float("nan")


def oa(df: pd.DataFrame, kind: str = CLAIM_MAP) -> float:
    """The pre-registered overall activation: the mean over rows of the per-image OA (NaN rows skipped)."""
    v = df[f"oa|{kind}"].to_numpy(dtype=float)
    return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")


def mass_ratio_table(study: pd.DataFrame, models: Sequence[str], parts: Sequence[str], kind: str = CLAIM_MAP,
                     extra: Optional[Mapping[str, pd.DataFrame]] = None) -> pd.DataFrame:
    """Models x parts table of :func:`rm` (each model pooled over all of its runs and scenes), rows in the order
    of ``models``, then the tables of ``extra`` (name -> a score table, e.g. a reader's checkpoint)."""
    tables = {m: study[study.model == m] for m in models}
    tables.update(extra or {})
    return pd.DataFrame({m: {p: rm(t, p, kind) for p in parts} for m, t in tables.items()}).T


def _value(df: pd.DataFrame, part: Optional[str], kind: str = CLAIM_MAP) -> float:
    return oa(df, kind) if part is None else log2_rm(df, part, kind)


# ---------------------------------------------------------------- the claims


@dataclass(frozen=True)
class Claim:
    """One row of the pre-registration's table: ``effect = value(b) - value(a)``.

    id: "1", "2a", ...; paper: what the paper says; a, b: the two models (names of runs);
    part: the part whose ``log2 RM`` is compared, or None for the overall activation; sign: the
    direction the paper expects (+1 / -1); margin: the margin of "no meaningful change"; family: the
    Holm family the row belongs to.
    """

    id: str
    paper: str
    a: str
    b: str
    part: Optional[str]
    sign: int
    margin: float
    family: str = "claims"

    @property
    def quantity(self) -> str:
        """The measured quantity in words."""
        what = "OA" if self.part is None else f"log2 RM({self.part})"
        return f"{what}: {self.b} − {self.a}"


def claims(pretrained: str = "dino_world", scratch: str = "dino_driving") -> list[Claim]:
    """The pre-registered rows (book/preregistration.md) for the paper's pretrained DINO ``pretrained`` and
    DINO from scratch ``scratch``: the eight rows of the main family, then claim 2 again from ``scratch``
    as the parent (family ``"claim 2 from scratch"``; the pre-registration adds it because the pretrained
    parent missed its bar)."""
    bce, ce, box = f"{pretrained}__bce_driving", f"{pretrained}__ce_vehicles", f"{pretrained}__box_driving"
    m = RATIO_MARGIN
    rows = [
        Claim("1", "pretrained DINO activates vehicles more than DINO from scratch on the target", scratch,
              pretrained, "vehicles", 1, m),
        Claim("2a", "after multi-label transfer the degree map is more activated overall", pretrained, bce, None, 1,
              OA_MARGIN),
        Claim("2b", "activation spreads to lane markings", pretrained, bce, "lane_marking", 1, m),
        Claim("2c", "activation spreads to trees", pretrained, bce, "tree", 1, m),
        Claim("2d", "activation on the labelled objects goes down", pretrained, bce, "objects", -1, m),
        Claim("3a", "multi-class transfer keeps vehicles better activated than multi-label", bce, ce, "vehicles", 1,
              m),
        Claim("3b", "pretrained DINO lights vehicles better than the multi-class transfer", ce, pretrained,
              "vehicles", 1, m),
        Claim("5", "box labels keep saliency on objects", bce, box, "objects", 1, m),
    ]
    sbce = f"{scratch}__bce_driving"
    rows += [Claim(f"{c.id}′", c.paper, scratch, sbce, c.part, c.sign, c.margin, "claim 2 from scratch")
             for c in rows if c.id.startswith("2")]
    return rows


def _levels(df: pd.DataFrame, levels: Sequence[str], strata: Optional[str]) -> list[str]:
    """The levels that vary: a level whose every parent unit has one child carries no variance (dropped,
    e.g. one pretraining seed in the smoke profile)."""
    keep, parents = [], ([strata] if strata else [])
    for lvl in levels:
        counts = df.groupby(parents + keep, sort=False)[lvl].nunique() if parents + keep else \
            pd.Series([df[lvl].nunique()])
        if (counts >= 2).any():
            keep.append(lvl)
    return keep


def pair_table(study: pd.DataFrame, a: str, b: str) -> tuple[pd.DataFrame, Optional[str]]:
    """The rows of models ``a`` and ``b`` arranged for a joint bootstrap, and the strata column (or None).

    Both with transfer seeds (two transfers): the (pretraining seed, transfer seed) runs both have, paired
    by (pretraining seed, transfer seed, image). One pretrained (no transfer seed) and one transfer: the pretrained model's rows are repeated
    under each transfer seed of the other at the same pretraining seed (each transfer paired with the map it
    started from). Both pretrained (claim 1: seeds that mean nothing in common): strata by model.
    Raises ``ValueError`` naming a model with no rows."""
    ra, rb = study[study.model == a], study[study.model == b]
    for name, r in ((a, ra), (b, rb)):
        if r.empty:
            raise ValueError(f"no scored runs of model {name!r}")
    pre_a, pre_b = (ra.transfer_seed < 0).all(), (rb.transfer_seed < 0).all()
    if pre_a and pre_b:
        return pd.concat([ra, rb], ignore_index=True), "model"
    if pre_a or pre_b:
        parent, child = (ra, rb) if pre_a else (rb, ra)
        seeds = child[["pretrain_seed", "transfer_seed"]].drop_duplicates()
        rep = parent.drop(columns="transfer_seed").merge(seeds, on="pretrain_seed")
        return pd.concat([rep, child], ignore_index=True), None
    both = _common_runs([ra, rb])  # two transfers: the runs both have (a control with fewer seeds than its arm)
    return pd.concat([both(ra), both(rb)], ignore_index=True), None


def _common_runs(tables: Sequence[pd.DataFrame]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """A filter keeping the (pretraining seed, transfer seed) runs every table of ``tables`` has."""
    keys = [set(map(tuple, t[["pretrain_seed", "transfer_seed"]].drop_duplicates().to_numpy())) for t in tables]
    common = set.intersection(*keys)
    if not common:
        raise ValueError("the models share no (pretraining seed, transfer seed) run")

    def keep(t: pd.DataFrame) -> pd.DataFrame:
        return t[pd.MultiIndex.from_frame(t[["pretrain_seed", "transfer_seed"]]).isin(list(common))]

    return keep


def _columns(part: Optional[str], kind: str) -> list[str]:
    return [f"oa|{kind}"] if part is None else [f"share|{kind}|{part}", f"area|{part}"]


def effect_of(study: pd.DataFrame, a: str, b: str, part: Optional[str], kind: str = CLAIM_MAP,
              n_resamples: int = 2000, rng: int = 0) -> dict[str, stats.BootstrapResult]:
    """``value(b) - value(a)`` (``log2 RM(part)``, or OA for ``part=None``) under the hierarchical bootstrap
    of :func:`pair_table`: ``{"a": ..., "b": ..., "effect": ...}``."""
    table, strata = pair_table(study, a, b)
    table = table[["model", *RUN_LEVELS, *_columns(part, kind)]]
    levels = _levels(table, RUN_LEVELS if strata is None else ("pretrain_seed", "image"), strata)

    def value_of(model):
        return lambda d: _value(d[d.model == model], part, kind)

    def effect(d):
        return _value(d[d.model == b], part, kind) - _value(d[d.model == a], part, kind)

    return stats.joint_bootstrap(table, {"a": value_of(a), "b": value_of(b), "effect": effect}, levels=levels,
                                 n_resamples=n_resamples, rng=rng, strata=strata)


def measurable(study: pd.DataFrame, models: Sequence[str]) -> dict[str, float]:
    """``{model: q}``: the share of positive off-diagonal key dot products, mean over the model's rows (every
    image has as many pairs, so this is the pooled share)."""
    return {m: float(study.loc[study.model == m, "q"].mean()) for m in models}


def decide(study: pd.DataFrame, rows: Sequence[Claim], n_resamples: int = 2000, rng: int = 0,
           alpha: float = 0.05) -> pd.DataFrame:
    """Every claim row measured and decided, Holm within each family: one row per claim with the paper's
    words, the quantity, both models' values, the effect with its CI, the p-values and the verdict
    (:func:`dinosal.stats.claims_table`), ``q_max`` (the larger measurability share of the two
    models; above 0.95 the verdict is "not measurable") and ``resampled`` (the units of each level the
    bootstrap drew, in words: :func:`units_in_words`, e.g. ``"3 pretraining seeds, 12 transfer runs and
    2400 (run, scene) pairs"``; a level with one unit is not resampled). Rows whose models were not
    scored are left out."""
    out = []
    present = set(study.model)
    for family in dict.fromkeys(c.family for c in rows):
        fam = [c for c in rows if c.family == family and {c.a, c.b} <= present]
        if not fam:
            continue
        boots = {c.id: effect_of(study, c.a, c.b, c.part, n_resamples=n_resamples, rng=rng) for c in fam}
        q = {c.id: max(measurable(study, [c.a, c.b]).values()) for c in fam}
        table = stats.claims_table({i: r["effect"] for i, r in boots.items()},
                                   margins={c.id: c.margin for c in fam}, expected_signs={c.id: c.sign for c in fam},
                                   measurable={i: v <= MEASURABLE_MAX for i, v in q.items()}, alpha=alpha)
        for c in fam:
            row = table.loc[c.id].to_dict()
            out.append({"claim": c.id, "family": family, "the paper says": c.paper, "quantity": c.quantity,
                        "value a": boots[c.id]["a"].estimate, "value b": boots[c.id]["b"].estimate,
                        **row, "q_max": q[c.id],
                        "resampled": units_in_words(boots[c.id]["effect"].n_units)})
    return pd.DataFrame(out).set_index("claim")


UNIT_WORDS = {"pretrain_seed": ("pretraining seed", "pretraining seeds"),
              "transfer_seed": ("transfer run", "transfer runs"),
              "image": ("(run, scene) pair", "(run, scene) pairs")}
"""How prose names the units of each bootstrap level (singular, plural): a transfer seed counts once per
pretraining seed it runs under (a transfer run), a scene once per run it is scored in."""


def units_in_words(n_units: Mapping[str, int]) -> str:
    """The units a bootstrap drew from (``BootstrapResult.n_units``, outermost level first) as a phrase
    for prose: ``{"pretrain_seed": 3, "transfer_seed": 12, "image": 2400}`` gives ``"3 pretraining seeds,
    12 transfer runs and 2400 (run, scene) pairs"``; a level not in :data:`UNIT_WORDS` keeps its name.
    Raises ``ValueError`` for no levels."""
    if not n_units:
        raise ValueError("n_units is empty")
    words = [f"{n} {UNIT_WORDS.get(lvl, (lvl, lvl))[n != 1]}" for lvl, n in n_units.items()]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def per_seed(study: pd.DataFrame, rows: Sequence[Claim]) -> pd.DataFrame:
    """Each claim's effect computed on one pretraining seed at a time (no resampling): the spread the
    bootstrap's top level sees. Columns ``claim, pretrain_seed, effect``; a claim between two pretrained
    models (claim 1) pairs their seeds by number, which means nothing in common: it is left out."""
    out = []
    for c in rows:
        if not {c.a, c.b} <= set(study.model):
            continue
        table, strata = pair_table(study, c.a, c.b)
        if strata is not None:
            continue
        for ps, d in table.groupby("pretrain_seed"):
            out.append({"claim": c.id, "pretrain_seed": int(ps),
                        "effect": _value(d[d.model == c.b], c.part) - _value(d[d.model == c.a], c.part)})
    return pd.DataFrame(out, columns=["claim", "pretrain_seed", "effect"])


# ---------------------------------------------------------------- claim 4: the knobs


def knob_effect(study: pd.DataFrame, levels: Sequence[tuple[str, float]], part: str, kind: str = CLAIM_MAP,
                n_resamples: int = 2000, rng: int = 0) -> dict[str, stats.BootstrapResult]:
    """Claim 4 for one knob and one part: ``levels`` are ``(model, x)`` pairs (the run of each level and the
    knob's value for ``part``). Returns the bootstrap of ``"slope"`` (least squares of ``log2 RM(part)``
    against x over the levels), ``"effect"`` (slope x the knob's range: the change over the whole range,
    judged against the margin) and ``"level <model>"`` (each level's ``log2 RM``). Only the (pretraining
    seed, transfer seed) runs that every level has are used; they are resampled together by (pretraining
    seed, transfer seed, image), so a level moves with the others that share its parent.""" 
    xs = {m: float(x) for m, x in levels}
    if len(xs) < 2 or len(set(xs.values())) < 2:
        raise ValueError(f"levels must hold at least two distinct values, got {levels!r}")
    table = study[study.model.isin(list(xs))][["model", *RUN_LEVELS, *_columns(part, kind)]]
    missing = sorted(set(xs) - set(table.model))
    if missing:
        raise ValueError(f"no scored runs of the knob levels {missing}")
    # only the (pretraining seed, transfer seed) runs every level has: the levels differ in the knob alone
    table = _common_runs([g for _, g in table.groupby("model")])(table)
    lv = _levels(table, RUN_LEVELS, None)
    x = np.array(list(xs.values()))
    span = float(x.max() - x.min())

    def slope(d):
        y = np.array([log2_rm(d[d.model == m], part, kind) for m in xs])
        ok = np.isfinite(y)
        return float(np.polyfit(x[ok], y[ok], 1)[0]) if ok.sum() >= 2 else float("nan")

    fns = {"slope": slope, "effect": lambda d: slope(d) * span}
    fns.update({f"level {m}": (lambda m: lambda d: log2_rm(d[d.model == m], part, kind))(m) for m in xs})
    return stats.joint_bootstrap(table, fns, levels=lv, n_resamples=n_resamples, rng=rng)


# ---------------------------------------------------------------- every transfer against its parent


def changes(study: pd.DataFrame, models: Sequence[str], parent_of: Mapping[str, str],
            parts: Sequence[str] = ("objects", "vehicles", "lane_marking", "tree"), kind: str = CLAIM_MAP,
            n_resamples: int = 500, rng: int = 0) -> pd.DataFrame:
    """Each transfer in ``models`` against its parent (``parent_of[model]``): the change of OA and of
    ``log2 RM`` of each part, with the bootstrap's percentile CI. One row per (model, quantity):
    ``model, parent, quantity, estimate, ci_low, ci_high, runs``."""
    rows = []
    for m in models:
        p = parent_of[m]
        n_runs = study.loc[study.model == m, ["pretrain_seed", "transfer_seed"]].drop_duplicates().shape[0]
        for part in [None, *parts]:
            e = effect_of(study, p, m, part, kind, n_resamples, rng)["effect"]
            rows.append({"model": m, "parent": p, "quantity": "Δ OA" if part is None else f"Δ log2 RM({part})",
                         "estimate": e.estimate, "ci_low": e.ci_low, "ci_high": e.ci_high, "runs": n_runs})
    return pd.DataFrame(rows)
