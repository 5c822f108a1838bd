"""Tests for a linear trend across periods: in rates (Poisson) and in proportions (Cochran-Armitage).

    calculate_trend_in_rates(count, denominator, period)            -> statistic, p_value, direction
    calculate_trend_in_proportions(numerator, denominator, period)  -> statistic, p_value, direction

Both are the score (chi-squared, 1 df) test of the slope of a log-linear (rates) or linear
(proportions) model on the period's position, the tests analysts reach for across a short run of
periods (Armitage, Berry & Matthews, Statistical Methods in Medical Research, 4th ed., 15.6 and
12.2). With sᵢ the period scores (0, 1, 2, ... by default), xᵢ the counts and nᵢ the denominators:

- rates: U = Σ sᵢ(xᵢ − nᵢX/N), V = (X/N)(Σ nᵢsᵢ² − (Σ nᵢsᵢ)²/N), χ² = U²/V;
- proportions: p = X/N, U = Σ sᵢ(xᵢ − nᵢp), V = p(1−p)(Σ nᵢsᵢ² − (Σ nᵢsᵢ)²/N), χ² = U²/V
  (R's ``prop.trend.test``).

``direction`` is ``rising`` or ``falling`` when p < `alpha` (default 0.05), else ``no clear trend``.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from pipeline.stats.checks import as_array


def calculate_trend_in_rates(count, denominator, period=None, alpha: float = 0.05) -> dict:
    """Score test for a log-linear trend in Poisson rates across periods."""
    x, n, s = _inputs(count, denominator, period)
    total_x, total_n = x.sum(), n.sum()
    u = float((s * (x - n * total_x / total_n)).sum())
    v = float(total_x / total_n * ((n * s ** 2).sum() - (n * s).sum() ** 2 / total_n))
    return _result(u, v, alpha)


def calculate_trend_in_proportions(numerator, denominator, period=None, alpha: float = 0.05) -> dict:
    """Cochran-Armitage score test for a linear trend in proportions across periods."""
    x, n, s = _inputs(numerator, denominator, period)
    if (x > n).any():
        raise ValueError("a numerator exceeds its denominator: a proportion's numerator is part of it")
    p = x.sum() / n.sum()
    u = float((s * (x - n * p)).sum())
    v = float(p * (1 - p) * ((n * s ** 2).sum() - (n * s).sum() ** 2 / n.sum()))
    return _result(u, v, alpha)


def _inputs(count, denominator, period):
    x = as_array(count, "count")
    n = as_array(denominator, "denominator")
    s = np.arange(len(x), dtype=float) if period is None else as_array(period, "period")
    if not len(x) == len(n) == len(s):
        raise ValueError("count, denominator and period must have one value per period")
    if len(x) < 3:
        raise ValueError("a trend test needs at least three periods")
    if (n <= 0).any() or (x < 0).any():
        raise ValueError("denominators must be positive and counts not negative")
    return x, n, s


def _result(u: float, v: float, alpha: float) -> dict:
    if v <= 0 or not np.isfinite(v):
        return {"statistic": np.nan, "p_value": np.nan, "direction": "not tested"}
    chi2 = u * u / v
    p = float(stats.chi2.sf(chi2, 1))
    direction = ("rising" if u > 0 else "falling") if p < alpha else "no clear trend"
    return {"statistic": chi2, "p_value": p, "direction": direction}
