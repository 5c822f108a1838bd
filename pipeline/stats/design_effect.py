"""Kish's design effect from unequal weights, and the effective sample size.

    calculate_design_effect(weights) -> {"respondents", "design_effect", "effective_n"}

Kish (1965, Survey Sampling, section 11.7): deff = n·Σw² / (Σw)² = 1 + CV²(w); the effective
sample size is n / deff = (Σw)² / Σw². It is the loss of precision from weighting alone (no
clustering or stratification term), which is what a raked resident survey carries.
"""

from __future__ import annotations

import numpy as np

from pipeline.stats.checks import as_array


def calculate_design_effect(weights) -> dict[str, float]:
    """Kish design effect and effective sample size of one set of weights (one area or group)."""
    w = as_array(weights, "weights")
    if len(w) == 0:
        raise ValueError("weights is empty: compute the design effect only for groups with respondents")
    if (w < 0).any():
        raise ValueError("weights must not be negative: check the raking margins (a negative population?)")
    total = w.sum()
    if total <= 0:
        raise ValueError("weights sum to 0: every respondent in the group has weight 0")
    effective = float(total**2 / np.square(w).sum())
    return {"respondents": float(len(w)), "design_effect": float(len(w) / effective), "effective_n": effective}
