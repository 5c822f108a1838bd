"""Funnel-plot control limits for comparing areas with their overall value, with an overdispersion option.

    calculate_funnel_limits(numerator, denominator, statistic="rate", multiplier=1000, overdispersion=False)

returns one row per area: ``target`` (the pooled value Σx/Σn), ``funnel_lower_95, funnel_upper_95,
funnel_lower_99_8, funnel_upper_99_8`` (0.025 and 0.001 each side, as Fingertips draws them) and
``funnel_significance`` (``higher`` above the upper 99.8% limit, ``lower`` below the lower, else
``similar``), plus the overdispersion estimates ``phi`` and ``tau2`` (0 when not adjusted).

Limits without overdispersion (Fingertips Public Health Technical Guidance):
- proportions: Wilson-based limits around the target, DHSC PHStatsMethods' ``sigma_adjustment``
  (the value whose Wilson interval just reaches the target);
- rates: exact Poisson limits of the count expected at the target, interpolated between integers
  as in Spiegelhalter (2005) "Funnel plots for comparing institutional performance", Stat Med
  24:1185-1202, appendix A.1.1: with y = the p-quantile of Poisson(θn),
  α = (F(y) - p) / (F(y) - F(y-1)), limit = (y - α)/n. (PHStatsMethods tabulates rate funnels by
  count for charts, not per area, so this per-area form is written here.)

Overdispersion (Spiegelhalter 2005, "Handling over-dispersion of performance indicators", Qual Saf
Health Care 14:347-351; the additive random-effects method FunnelPlotR uses): z-scores
z_i = (y_i - θ)/s_i with s_i² = θ(1-θ)/n_i (proportions) or θ/n_i (rates), winsorised at the 10th
and 90th percentiles; φ = Σz²/I; when Iφ > I - 1, τ² = (Iφ - (I - 1)) / (Σw - Σw²/Σw) with
w = 1/s², and the limits become θ ± z_α √(s_i² + τ²).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from PHStatsMethods.utils_funnel import sigma_adjustment
from scipy import stats

from pipeline.stats.checks import as_array

LEVELS = {"95": 0.975, "99_8": 0.999}


def calculate_funnel_limits(numerator, denominator, statistic: str = "rate", multiplier: float = 1000.0,
                            overdispersion: bool = False, target: float | None = None) -> pd.DataFrame:
    """Funnel limits for each area's denominator around the pooled target (see the module docstring)."""
    if statistic not in ("rate", "proportion"):
        raise ValueError("statistic must be 'rate' or 'proportion'")
    x = as_array(numerator, "numerator")
    n = as_array(denominator, "denominator")
    if x.shape != n.shape:
        raise ValueError("numerator and denominator must have the same length")
    if (n <= 0).any():
        raise ValueError("denominator must be greater than 0: drop areas with no population first")
    if (x < 0).any():
        raise ValueError("numerator must not be negative")
    if statistic == "proportion" and (x > n + 1e-9).any():
        raise ValueError("for a proportion the numerator must not exceed the denominator")
    theta = float(x.sum() / n.sum()) if target is None else float(target) / multiplier
    y = x / n
    if statistic == "proportion":
        s2 = theta * (1 - theta) / n
    else:
        s2 = theta / n
    phi, tau2 = estimate_overdispersion(y, s2, theta) if overdispersion else (np.nan, 0.0)
    out = pd.DataFrame({"target": np.full(len(x), theta * multiplier)})
    for suffix, p in LEVELS.items():
        if tau2 > 0:
            z = stats.norm.ppf(p)
            half = z * np.sqrt(s2 + tau2)
            low, high = theta - half, theta + half
            if statistic == "proportion":
                low, high = np.clip(low, 0, 1), np.clip(high, 0, 1)
            else:
                low = np.clip(low, 0, None)
        elif statistic == "proportion":
            low = np.array([max(0.0, sigma_adjustment(p, m, theta, "low", 1)) for m in n])
            high = np.array([min(1.0, sigma_adjustment(p, m, theta, "high", 1)) for m in n])
        else:
            low = poisson_funnel_limit(theta * n, 1 - p) / n
            high = poisson_funnel_limit(theta * n, p) / n
        out[f"funnel_lower_{suffix}"] = low * multiplier
        out[f"funnel_upper_{suffix}"] = high * multiplier
    value = y * multiplier
    out["funnel_significance"] = np.where(value > out["funnel_upper_99_8"], "higher",
                                          np.where(value < out["funnel_lower_99_8"], "lower", "similar"))
    out["phi"] = phi
    out["tau2"] = tau2 * multiplier ** 2
    return out


def poisson_funnel_limit(expected, p: float) -> np.ndarray:
    """The interpolated p-quantile of Poisson(expected) (Spiegelhalter 2005, A.1.1), as a count."""
    mu = np.asarray(expected, dtype=float)
    q = stats.poisson.ppf(p, mu)
    f_q = stats.poisson.cdf(q, mu)
    f_below = stats.poisson.cdf(q - 1, mu)
    step = np.where(f_q - f_below > 0, f_q - f_below, 1.0)
    alpha = (f_q - p) / step
    return np.clip(q - alpha, 0, None)


def estimate_overdispersion(y: np.ndarray, s2: np.ndarray, theta: float) -> tuple[float, float]:
    """φ from winsorised z-scores and the additive between-area variance τ² (0 when not overdispersed)."""
    ok = s2 > 0
    if ok.sum() < 3:
        return float("nan"), 0.0
    z = (y[ok] - theta) / np.sqrt(s2[ok])
    lo, hi = np.percentile(z, [10, 90])
    z = np.clip(z, lo, hi)
    count = len(z)
    phi = float((z ** 2).sum() / count)
    if count * phi <= count - 1:
        return phi, 0.0
    w = 1 / s2[ok]
    tau2 = (count * phi - (count - 1)) / (w.sum() - (w ** 2).sum() / w.sum())
    return phi, float(max(tau2, 0.0))
