"""Crude rates with Byar's or exact Poisson confidence limits (PHEindicatormethods `phe_rate`).

    calculate_rate(count, denominator, confidence=(0.95, 0.998), multiplier=1000)

returns a frame with ``value, lower_95, upper_95, lower_99_8, upper_99_8`` (one pair per level),
all per `multiplier` of the denominator. The limits come from DHSC's PHStatsMethods
(`confidence_intervals.byars_lower/upper`), which switch to the exact method below 10 events:

    Byar's (x >= 10): lower = x(1 - 1/(9x) - z/(3√x))³, upper = (x+1)(1 - 1/(9(x+1)) + z/(3√(x+1)))³
    exact  (x < 10):  lower = χ²((1-c)/2, 2x)/2,        upper = χ²(c + (1-c)/2, 2x+2)/2

each divided by the denominator. A count of 0 has lower limit 0 (PHStatsMethods refuses 0 for
the upper limit, so the exact formula is applied here: χ²(c + (1-c)/2, 2)/2).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from PHStatsMethods.confidence_intervals import byars_lower, byars_upper, exact_upper

from pipeline.stats.checks import as_array, confidence_suffix


def calculate_rate(count, denominator, confidence: float | Iterable[float] = 0.95,
                   multiplier: float = 1000.0) -> pd.DataFrame:
    """Value and Byar's/exact limits of count/denominator x multiplier at each confidence level."""
    x = as_array(count, "count")
    n = as_array(denominator, "denominator")
    if x.shape != n.shape:
        raise ValueError("count and denominator must have the same length")
    if (n <= 0).any():
        raise ValueError("denominator must be greater than 0: drop areas with no population (or suppress them) first")
    if (x < 0).any():
        raise ValueError("count must not be negative: a count of events is 0 or more")
    if multiplier <= 0:
        raise ValueError("multiplier must be positive, e.g. 1000 for a rate per 1,000")
    levels = [confidence] if isinstance(confidence, float) else list(confidence)
    out = pd.DataFrame({"value": x / n * multiplier})
    # PHStatsMethods' limits are scalar functions: call them once per distinct count (a national basket
    # has about a million rows but far fewer distinct counts) and map back
    distinct, position = np.unique(x, return_inverse=True)
    for level in levels:
        suffix = confidence_suffix(level)
        lower = np.array([byars_lower(a, level) if a > 0 else 0.0 for a in distinct], dtype=float)[position]
        upper = np.array([byars_upper(a, level) if a > 0 else exact_upper(0.0, level) for a in distinct],
                         dtype=float)[position]
        out[f"lower_{suffix}"] = lower / n * multiplier
        out[f"upper_{suffix}"] = upper / n * multiplier
    return out
