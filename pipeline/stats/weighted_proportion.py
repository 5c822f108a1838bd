"""Weighted survey shares with Wilson limits on the effective sample size.

    calculate_weighted_proportion(counted, weights, confidence=0.95, multiplier=100)

`counted` is 1 where a respondent in the base counts towards the numerator, 0 where not;
`weights` their survey weights (all 1 for an unweighted share). Returns one row with

    respondents, weighted_numerator, weighted_denominator, design_effect, effective_n,
    value, lower_95, upper_95          (one lower/upper pair per confidence level)

The value is Σw·y / Σw. Its limits are Wilson's score interval (as PHEindicatormethods'
``phe_proportion``, through `pipeline.stats.proportion`) on the effective numerator and
denominator (p·n_eff, n_eff) with Kish's n_eff = (Σw)²/Σw² (`design_effect`): with equal
weights this is exactly the unweighted Wilson interval; with unequal weights it widens by
√deff, so a weighted share never claims the precision of the raw n (methods.md, Surveys).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from pipeline.stats.checks import as_array
from pipeline.stats.design_effect import calculate_design_effect
from pipeline.stats.proportion import calculate_proportion


def calculate_weighted_proportion(counted, weights, confidence: float | Iterable[float] = 0.95,
                                  multiplier: float = 100.0) -> pd.DataFrame:
    """A weighted share of respondents with its design effect and Wilson limits on n_eff."""
    y = as_array(counted, "counted")
    w = as_array(weights, "weights")
    if y.shape != w.shape:
        raise ValueError("counted and weights must have one value per respondent (same length)")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("counted must be 1 (counts towards the numerator) or 0; respondents outside the base "
                         "(don't know, no answer) must be dropped before calling, not coded 0")
    kish = calculate_design_effect(w)
    p = float((w * y).sum() / w.sum())
    n_eff = kish["effective_n"]
    limits = calculate_proportion([p * n_eff], [n_eff], confidence=confidence, multiplier=multiplier)
    out = pd.DataFrame({
        "respondents": [int(len(y))],
        "weighted_numerator": [float((w * y).sum())],
        "weighted_denominator": [float(w.sum())],
        "design_effect": [kish["design_effect"]],
        "effective_n": [n_eff],
    })
    return pd.concat([out, limits], axis=1)


def calculate_grouped_weighted_proportions(respondents: pd.DataFrame, by: list[str], counted: str = "counted",
                                           weight: str = "weight", confidence: float | Iterable[float] = 0.95,
                                           multiplier: float = 100.0) -> pd.DataFrame:
    """`calculate_weighted_proportion` for every group of `by` at once (same columns, plus the `by` columns and
    ``weighted_respondents``, ``unweighted_value``). Respondents without a weight count in ``respondents`` and the
    unweighted value but not in the weighted share; a group with no weighted respondent has no value."""
    missing = [c for c in [*by, counted, weight] if c not in respondents.columns]
    if missing:
        raise ValueError(f"respondents lacks columns {missing}")
    y = as_array(respondents[counted], counted)
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("counted must be 1 or 0; drop respondents outside the base before calling")
    w = pd.to_numeric(respondents[weight], errors="coerce")
    if (w < 0).any():
        raise ValueError("weights must not be negative")
    has_w = w.notna()
    work = respondents[by].copy()
    work["_y"], work["_w"] = y, w.fillna(0.0).to_numpy()
    work["_wy"], work["_w2"], work["_hw"] = work["_w"] * y, work["_w"] ** 2, has_w.astype(int).to_numpy()
    sums = work.groupby(by, dropna=False, sort=True).agg(
        respondents=("_y", "size"), counted=("_y", "sum"), weighted_respondents=("_hw", "sum"),
        weighted_numerator=("_wy", "sum"), weighted_denominator=("_w", "sum"), w2=("_w2", "sum")).reset_index()
    sums["unweighted_value"] = sums["counted"] / sums["respondents"] * multiplier
    ok = sums["weighted_denominator"] > 0
    sums["effective_n"] = np.where(ok, sums["weighted_denominator"] ** 2 / sums["w2"].where(ok, 1.0), np.nan)
    sums["design_effect"] = sums["weighted_respondents"] / sums["effective_n"]
    p = sums["weighted_numerator"] / sums["weighted_denominator"].where(ok)
    levels = [confidence] if isinstance(confidence, float) else list(confidence)
    limits = calculate_proportion((p * sums["effective_n"])[ok], sums["effective_n"][ok], confidence=levels,
                                  multiplier=multiplier) if ok.any() else None
    for col in ["value"] + [c for c in (limits.columns if limits is not None else []) if c != "value"]:
        sums[col] = np.nan
        if limits is not None:
            sums.loc[ok, col] = limits[col].to_numpy()
    return sums.drop(columns=["w2", "counted"])
