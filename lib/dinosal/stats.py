"""The pre-registered statistics: a hierarchical bootstrap, its p-values, Holm, the verdicts.

The unit of replication is the training run, not the image: two runs of one
recipe can differ more than any two images. So the bootstrap resamples the
design's hierarchy, outermost level first (``pretrain_seed`` -> ``transfer_seed``
-> ``image`` by default), with replacement at every level, and recomputes the
statistic on every resample -- pooled ratios (sum of masses / sum of areas)
included, never averaged per image.

The data are one long table (a ``pandas.DataFrame``, or a mapping of column
name to array): one row per (model, run, image) with the level columns and
the per-image quantities. A level's units are nested in their parent's
(transfer seed 0 of pretraining seed 1 is not transfer seed 0 of seed 2).

**Paired designs.** What is resampled is a *unit* of the hierarchy, with every
row that carries its keys. Two models scored in the same table under the same
``(pretrain_seed, transfer_seed, image)`` keys therefore travel together: a
resample that draws image 7 of run (1, 0) twice draws it twice for both
models. Compute an effect as one statistic of both models on that shared
resample (:func:`joint_bootstrap`, e.g. ``{"a": r(A), "b": r(B), "effect":
r(B) - r(A)}``); their differences then carry only the variance that the
pairing does not cancel. Conventions for building the table:

* a model that lacks a level (the parent before transfer has no transfer
  seed) is repeated under each transfer seed of its children, so each
  transfer is paired with the map it started from;
* arms whose seed numbers mean nothing in common (DINO on the world scenes
  vs DINO from scratch on driving scenes) are resampled independently with
  ``strata="model"`` (or any column naming the arm): each stratum is its own
  hierarchy;
* every resampled table gets a column ``draw`` (:data:`DRAW`): one id per
  drawn innermost unit, shared by all of its rows, so a statistic can pair
  rows by ``draw`` (a unit drawn twice gets two ids; never pivot on ``image``).

Public surface:

* :func:`hierarchical_bootstrap` -> :class:`BootstrapResult` (estimate on the
  full data, the resampled values, percentile CI);
* :func:`joint_bootstrap`: several statistics on each shared resample;
* :func:`ratio_of_sums`: the pooled ratio sum(num) / sum(den);
* :func:`p_value`: two-sided bootstrap p of "effect = 0";
  :func:`equivalence_p_value`: ``max(P(effect >= +margin), P(effect <=
  -margin))``;
* :func:`holm`: Holm's step-down adjustment (statsmodels);
* :func:`verdict` and :func:`claims_table`: the pre-registered decision rule.

Probabilities from B resampled values count ``k`` hits as ``(k + 1) / (B +
1)`` (Davison & Hinkley, 1997), so no p-value is exactly 0. Bad input raises
``ValueError`` naming the argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd

__all__ = [
    "LEVELS",
    "DRAW",
    "VERDICTS",
    "Verdict",
    "BootstrapResult",
    "hierarchical_bootstrap",
    "joint_bootstrap",
    "ratio_of_sums",
    "p_value",
    "equivalence_p_value",
    "holm",
    "verdict",
    "claims_table",
]

LEVELS: tuple[str, ...] = ("pretrain_seed", "transfer_seed", "image")
"""The pre-registered hierarchy, outermost first."""

DRAW = "draw"
"""Column added to every resampled table: one id per drawn innermost unit."""

Verdict = Literal["not measurable", "no meaningful change", "holds", "reversed", "inconclusive"]
VERDICTS: tuple[str, ...] = ("not measurable", "no meaningful change", "holds", "reversed", "inconclusive")
"""The verdicts in the pre-registered order of precedence."""

Table = Union[pd.DataFrame, Mapping[str, Sequence]]
Statistic = Callable[[pd.DataFrame], float]


@dataclass(frozen=True)
class BootstrapResult:
    """One statistic under the hierarchical bootstrap.

    ``estimate``: the statistic on the full data; ``resamples``: its value on
    each resample, shape ``(n_resamples,)``; ``ci_low``, ``ci_high``: the
    percentile interval at ``confidence``; ``n_units``: distinct units per
    level in the full data (summed over parents and strata).
    """

    estimate: float
    resamples: np.ndarray
    ci_low: float
    ci_high: float
    confidence: float
    n_units: dict[str, int]

    @property
    def n_resamples(self) -> int:
        return int(self.resamples.shape[0])


# --------------------------------------------------------------------------- the hierarchy


@dataclass(frozen=True)
class _Leaves:
    """The innermost level under one parent: unit ``i`` owns ``rows[starts[i]:starts[i]+lengths[i]]``."""

    rows: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray


def _table(table: Table) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        df = table
    elif isinstance(table, Mapping):
        try:
            df = pd.DataFrame({k: np.asarray(v) for k, v in table.items()})
        except ValueError as e:
            raise ValueError(f"table: columns must have equal lengths ({e})") from None
    else:
        raise ValueError(f"table must be a pandas DataFrame or a mapping of columns, got {type(table).__name__}")
    if len(df) == 0:
        raise ValueError("table is empty")
    return df.reset_index(drop=True)


def _check_levels(df: pd.DataFrame, levels: Sequence[str], strata: Optional[str]) -> tuple[str, ...]:
    if isinstance(levels, str) or len(levels) == 0:
        raise ValueError(f"levels must be a non-empty sequence of column names, got {levels!r}")
    levels = tuple(levels)
    if len(set(levels)) != len(levels):
        raise ValueError(f"levels must not repeat a column, got {levels!r}")
    for name, cols in (("levels", levels), ("strata", () if strata is None else (strata,))):
        for c in cols:
            if c not in df.columns:
                raise ValueError(f"{name}: column {c!r} is not in the table (columns: {list(df.columns)})")
            if df[c].isna().any():
                raise ValueError(
                    f"{name}: column {c!r} has missing values; repeat a model that lacks a level "
                    "under each unit of that level (see the module docstring)"
                )
    if strata is not None and strata in levels:
        raise ValueError(f"strata: column {strata!r} is also one of the levels")
    if DRAW in df.columns:
        raise ValueError(f"table: column {DRAW!r} is reserved for the resampled unit ids")
    return levels


def _codes(df: pd.DataFrame, cols: Sequence[str]) -> np.ndarray:
    """Integer code per row of the tuple of ``cols``, in sorted key order."""
    return df.groupby(list(cols), sort=True, dropna=False).ngroup().to_numpy()


def _key(value) -> str:
    """A unit's key as an error message shows it (``0``, ``'dino'``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _tree(df: pd.DataFrame, codes: list[np.ndarray], rows: np.ndarray, depth: int, path: str,
          levels: tuple[str, ...]):
    """Nested lists of units down to a :class:`_Leaves` per innermost parent."""
    keys, inverse = np.unique(codes[depth][rows], return_inverse=True)
    where = f" under {path}" if path else ""
    if len(keys) < 2:
        raise ValueError(
            f"levels: level {levels[depth]!r} has fewer than 2 units{where}; a level with one unit "
            "carries no variance to resample: drop it from levels"
        )
    order = np.argsort(inverse, kind="stable")
    lengths = np.bincount(inverse, minlength=len(keys))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    if depth == len(levels) - 1:
        return _Leaves(rows[order], starts, lengths)
    children = []
    for s, n in zip(starts, lengths):
        unit = rows[order[s : s + n]]
        label = f"{path}{', ' if path else ''}{levels[depth]}={_key(df[levels[depth]].iloc[unit[0]])}"
        children.append(_tree(df, codes, unit, depth + 1, label, levels))
    return children


def _draw(node, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One resample of ``node``: row positions (innermost units contiguous) and each drawn unit's row count."""
    if isinstance(node, _Leaves):
        n = len(node.lengths)
        pick = rng.integers(0, n, size=n)
        lengths = node.lengths[pick]
        ends = np.cumsum(lengths)
        offsets = np.repeat(node.starts[pick] - (ends - lengths), lengths)
        return node.rows[np.arange(ends[-1]) + offsets], lengths
    pick = rng.integers(0, len(node), size=len(node))
    return _join([_draw(node[i], rng) for i in pick])


def _identity(node) -> tuple[np.ndarray, np.ndarray]:
    """The full data in the tree's order (every unit once), as :func:`_draw` returns it."""
    if isinstance(node, _Leaves):
        return node.rows, node.lengths
    return _join([_identity(c) for c in node])


def _join(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([r for r, _ in parts]), np.concatenate([n for _, n in parts])


def _as_float(value, name: str) -> float:
    if isinstance(value, (np.ndarray, pd.Series)) and np.size(value) == 1:
        value = np.asarray(value).reshape(())
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"statistics: {name!r} must return a scalar, got {type(value).__name__}") from None


def joint_bootstrap(
    table: Table,
    statistics: Mapping[str, Statistic],
    *,
    levels: Sequence[str] = LEVELS,
    n_resamples: int = 2000,
    rng: Union[np.random.Generator, int] = 0,
    confidence: float = 0.95,
    strata: Optional[str] = None,
) -> dict[str, BootstrapResult]:
    """Several statistics computed on the *same* resamples of the hierarchy.

    ``statistics`` maps a name to a function ``DataFrame -> float``; each is
    called on the full table and on every resample (the resampled rows, index
    reset, with the :data:`DRAW` column). Use it for paired effects: two
    models and their difference on one shared resample (module docstring).
    ``levels``: columns, outermost first; every unit must have at least 2
    children at the next level. ``rng``: a ``numpy.random.Generator`` or an
    int seed. ``strata``: a column whose values are resampled independently.
    """
    df = _table(table)
    levels = _check_levels(df, levels, strata)
    if not statistics:
        raise ValueError("statistics must name at least one statistic")
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)

    prefix = [] if strata is None else [strata]
    codes = [_codes(df, prefix + list(levels[: d + 1])) for d in range(len(levels))]
    strata_codes = np.zeros(len(df), dtype=np.int64) if strata is None else _codes(df, [strata])
    trees = []
    for s in np.unique(strata_codes):
        label = "" if strata is None else f"{strata}={_key(df[strata][strata_codes == s].iloc[0])}"
        trees.append(_tree(df, codes, np.flatnonzero(strata_codes == s), 0, label, levels))
    n_units = {lvl: int(len(np.unique(codes[d]))) for d, lvl in enumerate(levels)}

    def evaluate(drawn: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
        rows, lengths = drawn
        sample = df.iloc[rows].reset_index(drop=True)
        sample[DRAW] = np.repeat(np.arange(len(lengths)), lengths)
        return {name: _as_float(f(sample), name) for name, f in statistics.items()}

    estimates = evaluate(_join([_identity(t) for t in trees]))
    values = np.empty((int(n_resamples), len(statistics)))
    for b in range(int(n_resamples)):
        values[b] = list(evaluate(_join([_draw(t, rng) for t in trees])).values())
    lo, hi = (1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0
    out = {}
    for j, name in enumerate(statistics):
        v = values[:, j].copy()
        ci_low, ci_high = np.quantile(v, [lo, hi])
        out[name] = BootstrapResult(estimates[name], v, float(ci_low), float(ci_high), confidence, dict(n_units))
    return out


def hierarchical_bootstrap(
    table: Table,
    statistic: Statistic,
    *,
    levels: Sequence[str] = LEVELS,
    n_resamples: int = 2000,
    rng: Union[np.random.Generator, int] = 0,
    confidence: float = 0.95,
    strata: Optional[str] = None,
) -> BootstrapResult:
    """One statistic under the hierarchical bootstrap (see :func:`joint_bootstrap`)."""
    return joint_bootstrap(
        table, {"statistic": statistic}, levels=levels, n_resamples=n_resamples,
        rng=rng, confidence=confidence, strata=strata,
    )["statistic"]


def ratio_of_sums(table: pd.DataFrame, numerator: str, denominator: str) -> float:
    """The pooled ratio ``sum(numerator) / sum(denominator)`` over the rows of ``table``.

    Not the mean of per-row ratios: large images (or large parts) weigh in
    proportion to their size. NaN when the denominator sums to 0.
    """
    for name, c in (("numerator", numerator), ("denominator", denominator)):
        if c not in table.columns:
            raise ValueError(f"{name}: column {c!r} is not in the table")
    den = float(table[denominator].sum())
    return float(table[numerator].sum()) / den if den != 0.0 else float("nan")


# --------------------------------------------------------------------------- p-values and Holm


def _resamples(x, name: str = "resamples") -> np.ndarray:
    v = np.asarray(x.resamples if isinstance(x, BootstrapResult) else x, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(v).all():
        raise ValueError(f"{name} contains NaN/Inf")
    return v


def _prob(hits: np.ndarray) -> float:
    return (int(hits.sum()) + 1) / (hits.size + 1)


def p_value(resamples) -> float:
    """Two-sided bootstrap p of "effect = 0": ``min(1, 2 min(P(e <= 0), P(e >= 0)))``.

    ``resamples``: the effect's resampled values (or a :class:`BootstrapResult`).
    """
    v = _resamples(resamples)
    return min(1.0, 2.0 * min(_prob(v <= 0.0), _prob(v >= 0.0)))


def equivalence_p_value(resamples, margin: float) -> float:
    """Two one-sided tests against ``±margin``: ``max(P(e >= +margin), P(e <= -margin))``.

    Small when the effect's distribution lies inside ``(-margin, +margin)``.
    """
    if not np.isfinite(margin) or margin <= 0:
        raise ValueError(f"margin must be a positive number, got {margin!r}")
    v = _resamples(resamples)
    return max(_prob(v >= margin), _prob(v <= -margin))


def holm(pvalues: Sequence[float], alpha: float = 0.05) -> np.ndarray:
    """Holm's step-down adjusted p-values of one family, in the input order.

    Reject where the adjusted p-value is below ``alpha``. Uses
    ``statsmodels.stats.multitest.multipletests(method="holm")`` (the book
    extra pins statsmodels).
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    if p.size == 0:
        raise ValueError("pvalues is empty")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"pvalues must lie in [0, 1], got {p.tolist()}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    from statsmodels.stats.multitest import multipletests

    return np.asarray(multipletests(p, alpha=alpha, method="holm")[1], dtype=np.float64)


# --------------------------------------------------------------------------- the decision rule


def verdict(
    *,
    estimate: float,
    p_adjusted: float,
    p_equivalence_adjusted: float,
    expected_sign: int,
    measurable: bool = True,
    alpha: float = 0.05,
) -> Verdict:
    """The pre-registered verdict of one claim row, first match wins.

    1. "not measurable": a model of the row fails the measurability check;
    2. "no meaningful change": Holm-adjusted equivalence p < ``alpha``;
    3. "holds": Holm-adjusted p < ``alpha`` and ``estimate`` has ``expected_sign``
       (+1: the paper says the effect is positive, -1: negative);
    4. "reversed": Holm-adjusted p < ``alpha`` and the opposite sign;
    5. "inconclusive": anything else (an estimate of exactly 0 included).
    """
    if expected_sign not in (1, -1):
        raise ValueError(f"expected_sign must be +1 or -1, got {expected_sign!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    for name, p in (("p_adjusted", p_adjusted), ("p_equivalence_adjusted", p_equivalence_adjusted)):
        if not 0.0 <= p <= 1.0:  # also rejects NaN
            raise ValueError(f"{name} must lie in [0, 1], got {p!r}")
    if not np.isfinite(estimate):
        raise ValueError(f"estimate must be finite, got {estimate!r}")
    if not measurable:
        return "not measurable"
    if p_equivalence_adjusted < alpha:
        return "no meaningful change"
    if p_adjusted < alpha and np.sign(estimate) == expected_sign:
        return "holds"
    if p_adjusted < alpha and np.sign(estimate) == -expected_sign:
        return "reversed"
    return "inconclusive"


def claims_table(
    effects: Mapping[str, BootstrapResult],
    *,
    margins: Mapping[str, float],
    expected_signs: Mapping[str, int],
    measurable: Optional[Mapping[str, bool]] = None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """One family of claim rows, decided: both p-value families Holm-adjusted over the rows.

    ``effects``: row name -> the effect's bootstrap; ``margins``,
    ``expected_signs``, ``measurable`` (default: all measurable): per row.
    Returns one row per claim, in the order of ``effects``, with columns
    ``estimate, ci_low, ci_high, margin, p, p_holm, p_equivalence,
    p_equivalence_holm, expected_sign, measurable, verdict``.
    """
    names = list(effects)
    if not names:
        raise ValueError("effects is empty")
    measurable = {n: True for n in names} if measurable is None else measurable
    for arg, m in (("margins", margins), ("expected_signs", expected_signs), ("measurable", measurable)):
        missing = [n for n in names if n not in m]
        if missing:
            raise ValueError(f"{arg}: no entry for {missing}")
    p = [p_value(effects[n]) for n in names]
    p_eq = [equivalence_p_value(effects[n], margins[n]) for n in names]
    p_h, p_eq_h = holm(p, alpha), holm(p_eq, alpha)
    rows = []
    for i, n in enumerate(names):
        e = effects[n]
        rows.append(
            dict(
                claim=n, estimate=e.estimate, ci_low=e.ci_low, ci_high=e.ci_high, margin=float(margins[n]),
                p=p[i], p_holm=float(p_h[i]), p_equivalence=p_eq[i], p_equivalence_holm=float(p_eq_h[i]),
                expected_sign=int(expected_signs[n]), measurable=bool(measurable[n]),
                verdict=verdict(
                    estimate=e.estimate, p_adjusted=float(p_h[i]), p_equivalence_adjusted=float(p_eq_h[i]),
                    expected_sign=int(expected_signs[n]), measurable=bool(measurable[n]), alpha=alpha,
                ),
            )
        )
    return pd.DataFrame(rows).set_index("claim")
