"""Input checks shared by the statistics: one place for the messages that say how to fix a problem."""

from __future__ import annotations

import numpy as np
import pandas as pd


def confidence_suffix(confidence: float) -> str:
    """'95' for 0.95, '99_8' for 0.998: the suffix of limit columns (lower_95, upper_99_8)."""
    check_confidence(confidence)
    return f"{confidence * 100:g}".replace(".", "_")


def check_confidence(confidence: float) -> None:
    if not 0.9 <= confidence < 1:
        raise ValueError(f"confidence must be between 0.9 and 1 (e.g. 0.95 or 0.998); got {confidence}")


def as_array(values, name: str) -> np.ndarray:
    array = np.asarray(pd.to_numeric(pd.Series(np.ravel(values)), errors="coerce"), dtype=float)
    if np.isnan(array).any():
        raise ValueError(f"{name} has missing or non-numeric values: drop or fill those rows before calling")
    return array
