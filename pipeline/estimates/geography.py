"""Which local authority an LSOA or a ward belongs to, decided the same way on every run.

An LSOA or a ward can appear in the lookup with more than one LA (a boundary file out of step with
another, or a synthetic geography). Taking whichever row comes first made the estimates depend on the
order the database returned rows in: two runs on the same data gave 109 of 33,750 wards a different
LA (benchmarks/results/national_full_estimates.md). The rule here is the LA holding the largest share
of the area (sum of ward_share), ties to the lowest code.
"""

from __future__ import annotations

import pandas as pd


def assign_la(geo: pd.DataFrame, key: str) -> pd.DataFrame:
    """One row per `key` ("lsoa_code" or "ward_code") with its la_code: the LA holding the largest
    sum of ward_share over the key's rows, ties to the lowest la_code; rows without a key or an LA
    are ignored. `geo`: key, la_code, ward_share (missing shares count as 0)."""
    missing = {key, "la_code", "ward_share"} - set(geo.columns)
    if missing:
        raise ValueError(f"assign_la: geo lacks {sorted(missing)}; pass est_lsoa_geo's columns")
    g = geo[[key, "la_code", "ward_share"]].dropna(subset=[key, "la_code"])
    shares = g.groupby([key, "la_code"], as_index=False, observed=True)["ward_share"].sum()
    shares = shares.sort_values([key, "ward_share", "la_code"], ascending=[True, False, True])
    return shares.drop_duplicates(key)[[key, "la_code"]].reset_index(drop=True)
