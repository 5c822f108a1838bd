"""Population margins for weighting the survey, from our own small-area estimates.

    build_survey_band_population(ward_bands, single_years, survey_bands) -> ward, sex, survey band, population
    list_ages_to_split(bands, survey_bands) -> the single years it needs from the register
    interpolation_dates(available, fieldwork) -> (date_before, date_after, fraction)

The estimates come in ONS 5-year bands; survey bands (16-24, 25-34, ...) cut some of them (15-19
straddles 16). A band that a survey edge cuts is split by the single-year ages of the GP
register in the same ward and sex on the extract nearest the fieldwork, shrunk towards the LA's
single-year profile with `shrinkage` pseudo-patients (a ward with few patients of that age
borrows the LA's shape). Without any single-year register (counts-only districts) the band is
split evenly across its years and the run report says so (`split_method = "even"`).
"""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd

from pipeline.indicators.psa21.definitions import survey_band_edges
from schemas.vocabulary import MAX_AGE, band_limits

log = logging.getLogger(__name__)
OPEN_TOP = MAX_AGE


def interpolation_dates(available: list[dt.date], fieldwork: dt.date) -> tuple[dt.date, dt.date, float, str]:
    """The estimate dates either side of `fieldwork` and how far between them it lies (0..1)."""
    dates = sorted(available)
    if not dates:
        raise ValueError("population_estimates has no dates: run the estimates stage first")
    before = [d for d in dates if d <= fieldwork]
    after = [d for d in dates if d >= fieldwork]
    if before and after:
        d0, d1 = before[-1], after[0]
        frac = 0.0 if d1 == d0 else (fieldwork - d0).days / (d1 - d0).days
        return d0, d1, frac, "interpolated"
    nearest = before[-1] if before else after[0]
    return nearest, nearest, 0.0, f"fieldwork {fieldwork} outside the estimates ({dates[0]} to {dates[-1]}): nearest used"


def _band_range(band: str) -> tuple[int, int]:
    return band_limits(str(band))


def build_survey_band_population(ward_bands: pd.DataFrame, single_years: pd.DataFrame, survey_bands,
                                 shrinkage: float = 20.0, *,
                                 register_has_single_years: bool | None = None) -> tuple[pd.DataFrame, str]:
    """Population by ward_code, sex, age_band (survey bands; ages below the first band dropped).

    A 5-year band inside one survey band goes to it whole. A band a survey band cuts (15-19 for
    16-24) is split by single year: each year's share is the ward's register count shrunk towards the
    LA's age profile within the band, ``(ward_a + k prior_a) / (ward_band + k)`` with
    ``prior_a = la_a / la_band`` (even when the LA has none), or even without a single-year register.
    Vectorised over every ward x sex x band (a national run has hundreds of thousands): no loop per row.
    `single_years` needs only the ages `list_ages_to_split` gives; `register_has_single_years` says
    whether the register has any single-year counts at all (default: whether `single_years` has rows).
    """
    have_single = (single_years is not None and len(single_years) > 0) if register_has_single_years is None \
        else register_has_single_years
    columns = ["ward_code", "sex", "age_band", "population"]
    how = "gp_register single years" if have_single else "even"
    if not len(ward_bands):
        return pd.DataFrame(columns=columns), how
    years, whole_bands = _band_years(pd.unique(ward_bands["age_band"]), survey_bands)
    rows = ward_bands[columns].reset_index(drop=True)
    whole = rows[rows["age_band"].isin(whole_bands)].merge(
        years.drop_duplicates("age_band")[["age_band", "survey_band"]], on="age_band")
    whole = whole.assign(population=whole["population"].astype(float))[["ward_code", "sex", "survey_band", "population"]]
    split = rows[~rows["age_band"].isin(whole_bands)].rename_axis("row").reset_index()
    split = split.merge(years, on="age_band")  # one row per ward x sex x band x single year
    n_years = split.groupby("row")["age"].transform("size").astype(float)
    if have_single:
        la = single_years.groupby(["sex", "age"], as_index=False)["patients"].sum().rename(columns={"patients": "la"})
        ward = single_years.groupby(["ward_code", "sex", "age"], as_index=False)["patients"].sum()
        split = split.merge(la, on=["sex", "age"], how="left").merge(ward, on=["ward_code", "sex", "age"], how="left")
        split[["la", "patients"]] = split[["la", "patients"]].fillna(0.0).astype(float)
        la_band = split.groupby("row")["la"].transform("sum")
        ward_band = split.groupby("row")["patients"].transform("sum")
        prior = (split["la"] / la_band.where(la_band > 0)).where(la_band > 0, 1.0 / n_years)
        share = (split["patients"] + shrinkage * prior) / (ward_band + shrinkage)
    else:
        share = 1.0 / n_years
    split = split.assign(population=split["population"].astype(float) * share)
    split = split[split["survey_band"].notna()][["ward_code", "sex", "survey_band", "population"]]
    out = pd.concat([whole, split], ignore_index=True).rename(columns={"survey_band": "age_band"})
    out = out.groupby(["ward_code", "sex", "age_band"], as_index=False)["population"].sum()
    return out, how


def _band_years(bands, survey_bands) -> tuple[pd.DataFrame, set]:
    """Each published band's single years with the survey band (if any) each falls in, and the bands
    that go whole into one survey band."""
    edges = survey_band_edges(survey_bands)
    uppers = edges[1:] + [OPEN_TOP + 1]
    limits = {band: _band_range(band) for band in bands}
    survey_of_age = {a: b for b, e0, e1 in zip(survey_bands, edges, uppers) for a in range(e0, e1)}
    years = pd.DataFrame([(band, a, survey_of_age.get(a)) for band, (lo, hi) in limits.items()
                          for a in range(lo, hi + 1)], columns=["age_band", "age", "survey_band"])
    covered = years.groupby("age_band")["survey_band"].agg(lambda s: s.notna().all() and s.nunique() == 1)
    return years, set(covered[covered].index)


def list_ages_to_split(bands, survey_bands) -> list[int]:
    """The single years of age whose register counts `build_survey_band_population` uses: the years of
    the published bands a survey band cuts (15-19 for 16-24). Only these are read from the register's
    single-year table (nationally it has every ward x sex x year: 1.7 million rows)."""
    years, whole_bands = _band_years(bands, survey_bands)
    return sorted(int(a) for a in years.loc[~years["age_band"].isin(whole_bands), "age"].unique())


def to_survey_band(values: pd.Series, survey_bands) -> pd.Series:
    """Respondents' age bands as survey bands: survey bands pass; an ONS band inside one survey band maps
    to it (15-19 -> 16-24, as respondents are 16+); anything else is missing (not weighted)."""
    edges = survey_band_edges(survey_bands)
    uppers = edges[1:] + [OPEN_TOP + 1]
    known = set(survey_bands)

    def one(value):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None
        value = str(value).strip()
        if value in known:
            return value
        try:
            lo, hi = _band_range(value)
        except ValueError:
            return None
        lo = max(lo, edges[0])
        hits = [b for b, e0, e1 in zip(survey_bands, edges, uppers) if e0 <= lo and hi <= e1 - 1]
        return hits[0] if hits else None

    return values.map(one)
