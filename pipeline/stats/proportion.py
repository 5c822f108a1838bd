"""Proportions with Wilson score confidence limits (PHEindicatormethods `phe_proportion`).

    calculate_proportion(numerator, denominator, confidence=(0.95, 0.998), multiplier=100)

returns a frame with ``value, lower_95, upper_95, lower_99_8, upper_99_8`` (one pair per level),
scaled by `multiplier` (100 for a percentage). The limits are Wilson's score interval, computed
by DHSC's PHStatsMethods (`confidence_intervals.wilson_lower/upper`):

    (2x + z² ∓ z·√(z² + 4x(1 − x/n))) / (2(n + z²))

Weighted survey shares pass the effective numerator and denominator (p × n_eff, n_eff), so the
interval reflects the design effect of weighting (Kish).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from PHStatsMethods.confidence_intervals import wilson_lower, wilson_upper

from pipeline.stats.checks import as_array, confidence_suffix


def calculate_proportion(numerator, denominator, confidence: float | Iterable[float] = 0.95,
                         multiplier: float = 1.0) -> pd.DataFrame:
    """Value and Wilson limits of numerator/denominator at each confidence level."""
    x = as_array(numerator, "numerator")
    n = as_array(denominator, "denominator")
    if x.shape != n.shape:
        raise ValueError("numerator and denominator must have the same length")
    if (n <= 0).any():
        raise ValueError("denominator must be greater than 0: drop areas with no respondents (or suppress them) first")
    if (x < 0).any() or (x > n + 1e-9).any():
        raise ValueError("numerator must lie between 0 and the denominator")
    levels = [confidence] if isinstance(confidence, float) else list(confidence)
    out = pd.DataFrame({"value": x / n * multiplier})
    for level in levels:
        suffix = confidence_suffix(level)
        out[f"lower_{suffix}"] = np.array([wilson_lower(a, b, level) for a, b in zip(x, n)]) * multiplier
        out[f"upper_{suffix}"] = np.array([wilson_upper(a, b, level) for a, b in zip(x, n)]) * multiplier
    return out
