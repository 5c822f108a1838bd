"""Tests for a linear trend across periods: in rates (Poisson) and in proportions (Cochran-Armitage).

    calculate_trend_in_rates(count, denominator, period)            -> statistic, p_value, direction
    calculate_trend_in_proportions(numerator, denominator, period)  -> statistic, p_value, direction
    calculate_trends_to_date(count, denominator, series, statistic) -> per row: the test up to that period

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
import pandas as pd
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


def calculate_trends_to_date(count, denominator, series, statistic: str = "rate", alpha: float = 0.05) -> pd.DataFrame:
    """The trend test on the periods up to each row, for many series at once.

    Rows are in period order within each series (`series`: one id per row; scores 0, 1, 2, ... by
    position). Each row from a series' third period on, with events up to it, gets the same test as
    `calculate_trend_in_rates` / `calculate_trend_in_proportions` on that series' periods up to and
    including it (the same formulas, on running sums: no loop per series, which a national basket
    has hundreds of thousands of); the others are ``not tested``. Returns statistic, p_value and
    direction, indexed like `count`.
    """
    if statistic not in ("rate", "proportion"):
        raise ValueError("statistic must be 'rate' or 'proportion'")
    index = count.index if isinstance(count, pd.Series) else None
    frame = pd.DataFrame({"x": as_array(count, "count"), "n": as_array(denominator, "denominator"),
                          "g": np.asarray(series)})
    by = frame.groupby("g", sort=False)
    s = by.cumcount().to_numpy(float)
    frame["sx"], frame["ns"], frame["ns2"] = s * frame["x"], s * frame["n"], s * s * frame["n"]
    sums = by[["x", "n", "sx", "ns", "ns2"]].cumsum()
    x_, n_ = sums["x"].to_numpy(), sums["n"].to_numpy()
    tested = (s >= 2) & (x_ > 0)
    # the checks the one-series tests make, on every period a tested row reads
    last = pd.Series(np.where(tested, s, -1.0)).groupby(frame["g"].to_numpy(), sort=False).transform("max").to_numpy()
    read = s <= last
    if ((frame["n"].to_numpy() <= 0) | (frame["x"].to_numpy() < 0))[read].any():
        raise ValueError("denominators must be positive and counts not negative")
    if statistic == "proportion" and (frame["x"].to_numpy() > frame["n"].to_numpy())[read].any():
        raise ValueError("a numerator exceeds its denominator: a proportion's numerator is part of it")
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = x_ / n_
        u = sums["sx"].to_numpy() - rate * sums["ns"].to_numpy()
        spread = sums["ns2"].to_numpy() - sums["ns"].to_numpy() ** 2 / n_
        v = rate * spread if statistic == "rate" else rate * (1 - rate) * spread
        ok = tested & (v > 0) & np.isfinite(v)
        chi2 = np.where(ok, u * u / np.where(ok, v, 1.0), np.nan)
    p = np.where(ok, stats.chi2.sf(np.where(ok, chi2, 0.0), 1), np.nan)
    direction = np.where(~tested, "not tested", np.where(~ok, "not tested", np.where(
        p < alpha, np.where(u > 0, "rising", "falling"), "no clear trend")))
    return pd.DataFrame({"statistic": chi2, "p_value": p, "direction": direction}, index=index)
