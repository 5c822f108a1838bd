"""Slope index of inequality (SII) across deprivation quantiles (PHEindicatormethods `phe_sii` style).

    calculate_sii(value, population, variance=None, confidence=0.95, simulations=1000, seed=1)

Quantiles are given in order from the most deprived (first) to the least deprived (last). Each
quantile sits at the midpoint of its cumulative share of the population (its ridit, 0 = most
deprived end, 1 = least deprived end); the SII comes from the population-weighted least-squares
line through the quantiles' values. Our sign convention, said in every output's note:
**SII = the line's value at the most deprived end minus its value at the least deprived end**
(positive = higher in more deprived areas), i.e. minus the slope on the ridit.

Limits are by simulation as in PHEindicatormethods: each quantile's value is redrawn from a normal
distribution with its variance (pass ``variance``; for a rate x/n × m, var = x m²/n², for a
proportion p(1 − p)/n × m²), the line refitted, and the middle `confidence` share of the
simulated SIIs kept.
"""

from __future__ import annotations

import numpy as np

from pipeline.stats.checks import as_array, check_confidence


def calculate_sii(value, population, variance=None, confidence: float = 0.95, simulations: int = 1000,
                  seed: int = 1) -> dict:
    """SII with simulated limits: {'sii', 'lower', 'upper'} (limits NaN without variances)."""
    check_confidence(confidence)
    y = as_array(value, "value")
    w = as_array(population, "population")
    if len(y) != len(w) or len(y) < 3:
        raise ValueError("an SII needs a value and a population for three or more deprivation quantiles")
    if (w <= 0).any():
        raise ValueError("every quantile needs a positive population: merge or drop empty quantiles first")
    share = w / w.sum()
    x = np.cumsum(share) - share / 2
    sii = -_weighted_slope(x, y[None, :], share)[0]
    if variance is None or simulations <= 0:
        return {"sii": float(sii), "lower": np.nan, "upper": np.nan}
    var = as_array(variance, "variance")
    rng = np.random.default_rng(seed)
    draws = y[None, :] + rng.standard_normal((simulations, len(y))) * np.sqrt(np.clip(var, 0, None))[None, :]
    sims = -_weighted_slope(x, draws, share)
    tail = (1 - confidence) / 2 * 100
    lower, upper = np.percentile(sims, [tail, 100 - tail])
    return {"sii": float(sii), "lower": float(min(lower, sii)), "upper": float(max(upper, sii))}


def _weighted_slope(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    xm = (w * x).sum()
    ym = (y * w[None, :]).sum(axis=1, keepdims=True)
    return ((w * (x - xm))[None, :] * (y - ym)).sum(axis=1) / (w * (x - xm) ** 2).sum()
