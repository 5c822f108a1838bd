"""Early warnings: is a period's count beyond what the area's own history makes plausible?

    flag_unusual_counts(count, denominator, history_count, history_denominator, phi=1.0,
                        confidence=0.998, min_count=5.0)

returns one row per series: ``expected``, ``lower_limit``, ``upper_limit`` (counts) and
``direction`` (``rise``, ``fall`` or empty). The rule is the threshold of the Farrington algorithm
that UKHSA runs for exceedance reporting (Farrington, Andrews, Beale & Catchpole 1996, "A
statistical algorithm for the early detection of outbreaks of infectious disease", JRSS A 159:547-563),
without the seasonal and trend terms a short run of quarters cannot support:

- the area's baseline rate is its pooled history, r = Σ history counts / Σ history denominators,
  so the count expected this period is μ = r × this period's denominator;
- its variance under a quasi-Poisson model is φμ, and the baseline's own uncertainty adds
  Var(μ̂) = φμ²/X (X = the history's total count);
- the limits use the 2/3-power transformation (which makes Poisson counts nearly normal):
  μ (1 ± (2/3) z √τ)^(3/2), τ = φ/μ + φ/X, with z the normal quantile of `confidence` (two-sided).

A rise is flagged when the count is above the upper limit **and** at least `min_count` (a handful
of events is not an early warning however unlikely: Farrington requires more than a few cases
too); a fall when it is below the lower limit. φ, the overdispersion, is estimated from the
district's own history by `estimate_dispersion` (never below 1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from pipeline.stats.checks import as_array, check_confidence


def flag_unusual_counts(count, denominator, history_count, history_denominator, phi=1.0,
                        confidence: float = 0.998, min_count: float = 5.0) -> pd.DataFrame:
    """Expected count, limits and rise/fall for each series' latest period (see the module docstring)."""
    check_confidence(confidence)
    x = as_array(count, "count")
    n = as_array(denominator, "denominator")
    hx = as_array(history_count, "history_count")
    hn = as_array(history_denominator, "history_denominator")
    phi = np.broadcast_to(as_array(np.atleast_1d(phi), "phi"), x.shape) if np.ndim(phi) else np.full(x.shape, float(phi))
    if not x.shape == n.shape == hx.shape == hn.shape:
        raise ValueError("count, denominator, history_count and history_denominator need one value per series")
    if (n <= 0).any() or (hn <= 0).any():
        raise ValueError("denominators must be positive: drop series without a population first")
    if (x < 0).any() or (hx < 0).any():
        raise ValueError("counts must not be negative")
    if (phi <= 0).any():
        raise ValueError("phi (overdispersion) must be positive; 1 = Poisson")
    z = stats.norm.ppf(0.5 + confidence / 2)
    mu = hx / hn * n
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = np.where(mu > 0, phi / mu + phi / np.maximum(hx, 1e-12), np.inf)
        step = (2 / 3) * z * np.sqrt(tau)
        upper = np.where(mu > 0, mu * (1 + step) ** 1.5, np.nan)
        lower = np.where(mu > 0, mu * np.clip(1 - step, 0, None) ** 1.5, np.nan)
    rise = (x > upper) & (x >= min_count)
    fall = (x < lower)
    direction = np.where(rise, "rise", np.where(fall, "fall", ""))
    direction = np.where(hx > 0, direction, "")  # no history of events: nothing to compare with
    return pd.DataFrame({"expected": mu, "lower_limit": lower, "upper_limit": upper, "direction": direction})


def estimate_dispersion(count, expected, n_series: int = 1) -> float:
    """Quasi-Poisson overdispersion φ = Σ (x − μ)²/μ / (m − k) (Pearson), at least 1: pass the m
    historical counts of k series (areas) and the counts each series' own mean rate expects."""
    x = as_array(count, "count")
    mu = as_array(expected, "expected")
    keep = mu > 0
    dof = keep.sum() - n_series
    if dof < 1:
        return 1.0
    pearson = ((x[keep] - mu[keep]) ** 2 / mu[keep]).sum() / dof
    return float(max(1.0, pearson))
