"""Significance against a comparator, as Fingertips reports it.

"similar" when the comparator's value lies inside the area's confidence interval, otherwise
"higher" or "lower"; "not compared" when either is missing. Polarity ("higher is better",
"lower is better", "no judgement") turns that into better/worse for charts
(`judge_significance`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SIGNIFICANCE = ("higher", "similar", "lower", "not compared")


def compare_to_comparator(lower, upper, comparator_value) -> pd.Series:
    """higher / similar / lower / not compared for each row."""
    lower, upper, comp = (pd.to_numeric(pd.Series(np.ravel(v)), errors="coerce") for v in (lower, upper, comparator_value))
    if not len(lower) == len(upper) == len(comp):
        raise ValueError("lower, upper and comparator_value must have the same length")
    if ((lower > upper) & lower.notna() & upper.notna()).any():
        raise ValueError("a lower limit is above its upper limit: pass (lower, upper), in that order")
    out = pd.Series("similar", index=lower.index, dtype="object")
    out[comp < lower] = "higher"
    out[comp > upper] = "lower"
    out[lower.isna() | upper.isna() | comp.isna()] = "not compared"
    return out


def judge_significance(significance: pd.Series, polarity: pd.Series) -> pd.Series:
    """better / similar / worse / not compared, reading higher and lower by polarity."""
    sig, pol = pd.Series(significance).reset_index(drop=True), pd.Series(polarity).reset_index(drop=True)
    out = sig.where(sig.isin(["similar", "not compared"]), "not judged")
    good_up = pol == "higher is better"
    good_down = pol == "lower is better"
    out[(sig == "higher") & good_up | (sig == "lower") & good_down] = "better"
    out[(sig == "lower") & good_up | (sig == "higher") & good_down] = "worse"
    return out
