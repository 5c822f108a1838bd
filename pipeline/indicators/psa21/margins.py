"""Population margins for weighting the survey, from our own small-area estimates.

    build_survey_band_population(ward_bands, single_years, survey_bands) -> ward, sex, survey band, population
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
                                 shrinkage: float = 20.0) -> tuple[pd.DataFrame, str]:
    """Population by ward_code, sex, age_band (survey bands; ages below the first band dropped)."""
    edges = survey_band_edges(survey_bands)
    uppers = edges[1:] + [OPEN_TOP + 1]
    have_single = single_years is not None and len(single_years) > 0
    la_years = single_years.groupby(["sex", "age"])["patients"].sum() if have_single else None
    ward_years = single_years.set_index(["ward_code", "sex", "age"])["patients"] if have_single else None
    rows = []
    for rec in ward_bands.itertuples(index=False):
        lo, hi = _band_range(rec.age_band)
        pieces = [(b, max(lo, e0), min(hi, e1 - 1)) for b, e0, e1 in zip(survey_bands, edges, uppers)
                  if max(lo, e0) <= min(hi, e1 - 1)]
        if not pieces:
            continue  # wholly below the survey's youngest age
        if len(pieces) == 1 and pieces[0][1] == lo and pieces[0][2] == hi:
            rows.append((rec.ward_code, rec.sex, pieces[0][0], float(rec.population)))
            continue
        ages = np.arange(lo, hi + 1)
        if have_single:
            la = np.array([la_years.get((rec.sex, a), 0.0) for a in ages], dtype=float)
            ward = np.array([ward_years.get((rec.ward_code, rec.sex, a), 0.0) for a in ages], dtype=float)
            prior = la / la.sum() if la.sum() > 0 else np.full(len(ages), 1.0 / len(ages))
            share = (ward + shrinkage * prior) / (ward.sum() + shrinkage)
        else:
            share = np.full(len(ages), 1.0 / len(ages))
        for band, a0, a1 in pieces:
            part = share[(ages >= a0) & (ages <= a1)].sum()
            rows.append((rec.ward_code, rec.sex, band, float(rec.population) * part))
    out = pd.DataFrame(rows, columns=["ward_code", "sex", "age_band", "population"])
    out = out.groupby(["ward_code", "sex", "age_band"], as_index=False)["population"].sum()
    return out, ("gp_register single years" if have_single else "even")


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
