"""Constraining small-area estimates to a known total (an ONS or LA figure for the whole area)."""

from __future__ import annotations

import numpy as np


def constrain_to_total(estimates, total: float) -> np.ndarray:
    """Scale `estimates` pro rata so they sum to `total` (unchanged if they sum to 0 or total is missing)."""
    est = np.asarray(estimates, float)
    current = est.sum()
    if total is None or not np.isfinite(total) or current <= 0:
        return est.copy()
    return est * (float(total) / current)
