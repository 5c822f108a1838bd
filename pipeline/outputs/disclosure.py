"""Disclosure control: nothing a partner receives may identify a person.

Applied in one place (`pipeline.outputs.publish_frame`) to every table partners receive.
The rule used here is the usual one for published health counts: a count of people below
`min_cell_count` (default 10) is suppressed, with the reason in `note`; modelled estimates are
published rounded, not as counts of records.
"""

from __future__ import annotations

import pandas as pd

SUPPRESSED = "suppressed: fewer than {n} people"


def suppress_small_counts(frame: pd.DataFrame, count_columns: list[str], min_cell_count: int) -> pd.DataFrame:
    """Blank counts in `count_columns` that are below `min_cell_count` (but above 0), noting why."""
    out = frame.copy()
    if "note" not in out.columns:
        out["note"] = ""
    for column in count_columns:
        small = out[column].notna() & (out[column] > 0) & (out[column] < min_cell_count)
        out[column] = out[column].astype("Float64").mask(small)
        message = f"{column} {SUPPRESSED.format(n=min_cell_count)}"
        out.loc[small, "note"] = out.loc[small, "note"].where(out.loc[small, "note"] == "", out.loc[small, "note"] + "; ") + message
    return out
