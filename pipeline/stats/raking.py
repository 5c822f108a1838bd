"""Raking (iterative proportional fitting) of survey weights to population margins, with trimming.

    rake_weights(respondents, margins, design_weight=None, trim_ratio=None, tolerance=1e-6, max_iter=100)

`respondents` is a frame with one column per margin (values are the margin's levels, as text);
`margins` maps each of those columns to ``{level: population total}``. Every margin must add up
to the same population; every level present among the respondents needs a total (and a level
with a total needs respondents: merge thin levels first, see `pool_thin_levels`).

Returns a `RakeResult`: the raked weights (summing to the population), whether the margins were
met (``converged``; a `RuntimeWarning`-level message otherwise, never silence), the largest
relative misfit over all margin levels, how many weights the trimming capped, and the Kish
design effect and effective sample size of the final weights.

The raking itself is svy's (``Sample.weighting.rake``, svylab.com): the tests pin it to R's
``survey::rake`` on a worked example (tests/reference/raking/). Trimming caps weights at
`trim_ratio` × the median weight and re-rakes (svy's trim-rake cycle, ``TrimConfig``); a cap
that the margins cannot all respect leaves the margins met and reports the weights still above it.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.stats.design_effect import calculate_design_effect

log = logging.getLogger(__name__)
POOL_JOIN = " | "  # joins the levels pool_thin_levels merged ("F 65-74 | F 75+")


@dataclass
class RakeResult:
    weights: np.ndarray
    converged: bool
    max_relative_misfit: float
    trimmed: int  # weights at the trimming cap after the final cycle
    above_cap: int  # weights still above the cap (margins beat the cap)
    design_effect: float
    effective_n: float
    messages: list[str] = field(default_factory=list)


def rake_weights(respondents: pd.DataFrame, margins: dict[str, dict[str, float]], design_weight=None,
                 trim_ratio: float | None = None, tolerance: float = 1e-6, max_iter: int = 100) -> RakeResult:
    """Raked weights of `respondents` to `margins` (see the module docstring)."""
    import polars as pl
    import svy

    _check_margins(respondents, margins)
    n = len(respondents)
    w0 = np.ones(n) if design_weight is None else np.asarray(design_weight, dtype=float)
    if w0.shape != (n,) or np.isnan(w0).any() or (w0 <= 0).any():
        raise ValueError("design_weight must have one positive number per respondent (leave it None for equal "
                         "starting weights)")
    if trim_ratio is not None and trim_ratio <= 1:
        raise ValueError(f"trim_ratio caps weights at that multiple of the median; it must be above 1 (got {trim_ratio})")
    frame = pl.DataFrame({"__w0": w0, **{col: respondents[col].astype(str).tolist() for col in margins}})
    sample = svy.Sample(frame, svy.Design(wgt="__w0"))
    trimming = svy.TrimConfig(upper=svy.Threshold("median", float(trim_ratio)), max_iter=20) if trim_ratio else None
    controls = {col: {str(k): float(v) for k, v in levels.items()} for col, levels in margins.items()}
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raked = sample.weighting.rake(controls=controls, tol=tolerance, max_iter=max_iter,
                                      on_nonconvergence="warn", trimming=trimming)
    weights = raked.data.get_column("rk_wgt").to_numpy().astype(float)
    misfit = _max_relative_misfit(respondents, margins, weights)
    converged = misfit <= max(tolerance, 1e-9) * 10
    if not converged:
        messages.append(f"raking did not converge in {max_iter} iterations: the weights miss a population margin "
                        f"by up to {misfit:.2%}; check that the margins describe the surveyed population and merge "
                        "thin groups")
    cap = trim_ratio * float(np.median(weights)) if trim_ratio else np.inf
    above = int((weights > cap * (1 + 1e-3)).sum())
    at_cap = int((np.abs(weights - cap) <= cap * 1e-3).sum()) if trim_ratio else 0
    if above:
        messages.append(f"{above} weights remain above {trim_ratio:g} x the median after trimming: the margins "
                        "need them")
    # the trim-rake cycle's own stopping rule is judged by the margins above; other findings pass on
    messages += [str(w.message) for w in caught if "converge" not in str(w.message).lower()]
    for message in messages:
        log.warning(message)
    kish = calculate_design_effect(weights)
    return RakeResult(weights, converged, misfit, at_cap, above, kish["design_effect"], kish["effective_n"], messages)


def pool_thin_levels(values: pd.Series, order: list[str], min_respondents: int, within=None) -> pd.Series:
    """Merge each level with fewer than `min_respondents` into its neighbour in `order` (the next, or the
    previous for the last), so every margin level has respondents to carry its weight; with `within`
    (level -> group, e.g. the sex of an age x sex cell) only neighbours of the same group merge. Returns
    the pooled labels (``"a | b"``); apply the same mapping to the population margin (`pool_margin`)."""
    groups = [[level] for level in order]
    counts = values.value_counts().to_dict()
    group_of = within or (lambda level: None)
    sizes = [int(counts.get(level, 0)) for level in order]
    keys = [group_of(level) for level in order]  # a merged group keeps its first level, so its key

    def partner(i):
        for j in (i + 1, i - 1):
            if 0 <= j < len(groups) and keys[j] == keys[i]:
                return j
        return None

    # the first thin group (in order) merges with its partner, then the scan goes on from the merged
    # group: the groups before it are unchanged, so rescanning them (as a restart from the top would)
    # finds nothing new. One pass, not one pass per merge (thousands of wards at national scale).
    i = 0
    while i < len(groups) and len(groups) > 1:
        j = partner(i) if sizes[i] < min_respondents else None
        if j is None:
            i += 1
            continue
        lo, hi = sorted((i, j))
        groups[lo:hi + 1] = [groups[lo] + groups[hi]]
        sizes[lo:hi + 1] = [sizes[lo] + sizes[hi]]
        keys[lo:hi + 1] = [keys[lo]]
        i = lo
    label = {level: POOL_JOIN.join(group) for group in groups for level in group}
    return values.map(label)


def pool_margin(margin: dict[str, float], pooled: pd.Series, original: pd.Series) -> dict[str, float]:
    """The population margin summed over the same pooled levels as `pool_thin_levels` made."""
    mapping = dict(zip(original.astype(str), pooled.astype(str)))
    # a level no respondent has joins the pooled label that names it, if any (each level is in one label)
    named_in = {part: label for label in set(mapping.values()) for part in label.split(POOL_JOIN)}
    out: dict[str, float] = {}
    for level, total in margin.items():
        key = mapping.get(str(level))
        if key is None:
            key = named_in.get(str(level), str(level))
        out[key] = out.get(key, 0.0) + float(total)
    return out


def _check_margins(respondents: pd.DataFrame, margins: dict[str, dict[str, float]]) -> None:
    if not margins:
        raise ValueError("margins is empty: give at least one {column: {level: total}}")
    totals = {}
    for col, levels in margins.items():
        if col not in respondents.columns:
            raise ValueError(f"margin '{col}' is not a column of the respondents; columns are {list(respondents.columns)}")
        if respondents[col].isna().any():
            raise ValueError(f"{int(respondents[col].isna().sum())} respondents have no '{col}': raking needs every "
                             "margin for every respondent; leave them out (and report them) before raking")
        if any(v < 0 for v in levels.values()):
            raise ValueError(f"margin '{col}' has a negative population total")
        seen = set(respondents[col].astype(str))
        missing = sorted(seen - {str(k) for k in levels})
        if missing:
            raise ValueError(f"margin '{col}' has no population total for {missing}, which respondents have")
        empty = sorted(str(k) for k, v in levels.items() if v > 0 and str(k) not in seen)
        if empty:
            raise ValueError(f"margin '{col}' has population in {empty} but no respondents there: merge those levels "
                             "with a neighbour (pool_thin_levels) before raking")
        totals[col] = sum(levels.values())
    first = next(iter(totals.values()))
    for col, total in totals.items():
        if abs(total - first) > 1e-6 * max(first, 1):
            raise ValueError(f"margins disagree on the population: '{next(iter(totals))}' sums to {first:,.1f} but "
                             f"'{col}' to {total:,.1f}; build them from one population table")


def _max_relative_misfit(respondents, margins, weights) -> float:
    worst = 0.0
    for col, levels in margins.items():
        achieved = pd.Series(weights).groupby(respondents[col].astype(str).to_numpy()).sum()
        for level, target in levels.items():
            if target > 0:
                worst = max(worst, abs(achieved.get(str(level), 0.0) - target) / target)
    return float(worst)
