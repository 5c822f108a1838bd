"""List inflation: how many registered patients there are per resident, cell by cell.

For LSOA i and age-sex group g, the raw inflation at the base is

    I_raw(i, g) = L*(i, g, t0) / P(i, g, b)

where L* is the list at the first extract corrected for births not yet registered and deaths
not yet removed, and P the base population. Small cells make I_raw wild (3 patients / 1 resident)
or undefined (0 / 0), so it is shrunk towards the same group's ratio in the LSOA's ward(s), which
is itself shrunk towards the local authority's:

    I_LA(g)     = sum L* / sum P over the LA                         (1.0 when undefined)
    I_ward(w,g) = (sum_i s_iw L*(i,g) + k I_LA(g)) / (sum_i s_iw P(i,g) + k)
    prior(i,g)  = sum_w s_iw I_ward(w,g)                              (s_iw = ward_share)
    I(i,g)      = (L*(i,g) + k prior(i,g)) / (P(i,g) + k)

with k a pseudo-count of residents: settings.shrinkage_strength in counts-only mode, 0 in register modes
(settings.cell_inflation = "auto": cohort_model.choose_inflation_strength; with k = 0 each cell keeps
its own ratio, and the prior only where the cell has no residents or nobody listed at t0). This is the posterior mean of
a Poisson rate with a gamma prior (mean = prior, shape = k x prior): a cell of P residents gets
weight P / (P + k) on its own ratio, so a cell of 500 keeps ~91% of its own evidence at k = 50
while a cell of 5 keeps ~9%.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .geography import assign_la

MIN_INFLATION = 0.2  # a floor so that a near-empty list cannot blow a change up (documented guard)


def shrink_inflation(registered, resident, prior, strength: float) -> np.ndarray:
    """Empirical-Bayes inflation: (registered + k * prior) / (resident + k), floored at MIN_INFLATION.

    With strength 0 this is the cell's own ratio, falling back to the prior where the ratio says
    nothing about ghosts: no residents, or no one on the list (a cell of 5 residents and no patients
    at t0 would otherwise divide every later registration by MIN_INFLATION).
    """
    registered = np.asarray(registered, dtype=float)
    resident = np.asarray(resident, dtype=float)
    prior = np.asarray(prior, dtype=float)
    denominator = resident + strength
    defined = denominator > 0
    if strength == 0:
        defined = defined & (registered > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(defined, (registered + strength * prior) / np.where(defined, denominator, 1), prior)
    return np.maximum(out, MIN_INFLATION)


def pool_ratio(registered, resident, fallback: float = 1.0) -> np.ndarray:
    """A pooled ratio sum(registered)/sum(resident) already summed per group; `fallback` where undefined."""
    registered = np.asarray(registered, dtype=float)
    resident = np.asarray(resident, dtype=float)
    ok = (resident > 0) & (registered > 0)
    return np.where(ok, registered / np.where(ok, resident, 1.0), fallback)


def estimate_inflation(cells: pd.DataFrame, geo: pd.DataFrame, strength: float) -> pd.DataFrame:
    """Inflation per LSOA x sex x band from the base-date cells.

    `cells`: lsoa_code, sex, age_band, registered (L* at t0), resident (base population).
    `geo`: lsoa_code, ward_code, la_code, ward_share (an LSOA may span wards; shares sum to 1).
    Returns `cells` with columns inflation_raw, inflation_prior, inflation.
    """
    cells = cells.copy()
    keys = ["sex", "age_band"]
    lsoa_la = assign_la(geo, "lsoa_code")
    c = cells.merge(lsoa_la, on="lsoa_code", how="left")
    c["la_code"] = c["la_code"].fillna("?")
    la = c.groupby(["la_code", *keys], as_index=False)[["registered", "resident"]].sum()
    la["ratio_la"] = pool_ratio(la["registered"], la["resident"])

    g = geo[["lsoa_code", "ward_code", "ward_share"]].dropna(subset=["ward_code"])
    w = cells.merge(g, on="lsoa_code", how="inner")
    w["registered"] *= w["ward_share"]
    w["resident"] *= w["ward_share"]
    ward = w.groupby(["ward_code", *keys], as_index=False)[["registered", "resident"]].sum()
    ward_la = assign_la(geo, "ward_code")
    ward = ward.merge(ward_la, on="ward_code", how="left").merge(la[["la_code", *keys, "ratio_la"]], on=["la_code", *keys], how="left")
    ward["ratio_la"] = ward["ratio_la"].fillna(1.0)
    ward["ratio_ward"] = shrink_inflation(ward["registered"], ward["resident"], ward["ratio_la"], strength)

    prior = g.merge(ward[["ward_code", *keys, "ratio_ward"]], on="ward_code", how="inner")
    prior["p"] = prior["ward_share"] * prior["ratio_ward"]
    prior = prior.groupby(["lsoa_code", *keys], as_index=False).agg(p=("p", "sum"), s=("ward_share", "sum"))
    prior["inflation_prior"] = prior["p"] / prior["s"]

    out = c.merge(prior[["lsoa_code", *keys, "inflation_prior"]], on=["lsoa_code", *keys], how="left")
    out = out.merge(la[["la_code", *keys, "ratio_la"]], on=["la_code", *keys], how="left")
    out["inflation_prior"] = out["inflation_prior"].fillna(out["ratio_la"]).fillna(1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["inflation_raw"] = np.where(out["resident"] > 0, out["registered"] / out["resident"], np.nan)
    out["inflation"] = shrink_inflation(out["registered"], out["resident"], out["inflation_prior"], strength)
    return out.drop(columns=["ratio_la", "la_code"])
