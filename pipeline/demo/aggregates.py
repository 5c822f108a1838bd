"""Quarterly aggregate sources: births and deaths, asylum placements, incidents.

Births, deaths and placements are counted from the simulation's true event log; incidents
are Poisson counts by ward (more where the area is mixed and churning), with one sudden
rise in one diverse ward in one late quarter for the alerts to find.
"""

from __future__ import annotations

import numpy as np

from pipeline.demo.frame import Frame
from pipeline.demo.population import EventLog
from pipeline.demo.rates import ONS_AGE_BANDS, DemoRates

SEXES = np.array(["M", "F"], dtype=object)


def quarter_index(dates: np.ndarray, extract_dates: np.ndarray) -> np.ndarray:
    """Quarter k (1..Q) holds dates in (extract_dates[k-1], extract_dates[k]]; 0 = outside."""
    q = np.searchsorted(extract_dates, dates, side="left")
    return np.where((q >= 1) & (q < len(extract_dates)), q, 0)


def ons_band(age: np.ndarray) -> np.ndarray:
    return np.minimum(np.asarray(age) // 5, len(ONS_AGE_BANDS) - 1)


def _period_columns(q: np.ndarray, extract_dates: np.ndarray) -> dict[str, np.ndarray]:
    return {"period_start": extract_dates[q - 1] + np.timedelta64(1, "D"), "period_end": extract_dates[q]}


def vital_event_rows(log: dict, frame: Frame, extract_dates: np.ndarray) -> dict[str, np.ndarray]:
    """Births by LSOA x sex (every cell, zeros included) and deaths by LSOA x sex x ONS band."""
    n_q = len(extract_dates) - 1
    q = quarter_index(log["date"], extract_dates)
    births = log["kind"] == EventLog.KINDS.index("birth")
    deaths = log["kind"] == EventLog.KINDS.index("death")
    shape_b = (n_q + 1, frame.n_lsoas, 2)
    b = np.bincount(np.ravel_multi_index((q[births], log["lsoa"][births], log["sex"][births]), shape_b),
                    minlength=int(np.prod(shape_b))).reshape(shape_b)[1:]
    shape_d = (n_q + 1, frame.n_lsoas, 2, len(ONS_AGE_BANDS))
    d = np.bincount(np.ravel_multi_index((q[deaths], log["lsoa"][deaths], log["sex"][deaths],
                                          ons_band(log["age"][deaths])), shape_d),
                    minlength=int(np.prod(shape_d))).reshape(shape_d)[1:]
    bq, bl, bs = np.indices(b.shape).reshape(3, -1)
    dq, dl, ds, da = (axis[d.ravel() > 0] for axis in np.indices(d.shape).reshape(4, -1))
    cols_b = {**_period_columns(bq + 1, extract_dates), "area_code": frame.lsoa_code[bl], "sex": SEXES[bs],
              "age_band": np.full(len(bq), None, dtype=object), "births": b.ravel(), "deaths": np.zeros(len(bq), int)}
    cols_d = {**_period_columns(dq + 1, extract_dates), "area_code": frame.lsoa_code[dl], "sex": SEXES[ds],
              "age_band": np.asarray(ONS_AGE_BANDS, dtype=object)[da], "births": np.zeros(len(dq), int),
              "deaths": d[dq, dl, ds, da]}
    return {k: np.concatenate([cols_b[k], cols_d[k]]) for k in cols_b}


def asylum_rows(log: dict, frame: Frame, extract_dates: np.ndarray) -> dict[str, np.ndarray]:
    """New placements per quarter in each dispersal LSOA (zeros included)."""
    n_q = len(extract_dates) - 1
    placed = log["kind"] == EventLog.KINDS.index("asylum")
    q = quarter_index(log["date"][placed], extract_dates)
    counts = np.zeros((n_q + 1, frame.n_lsoas), dtype=int)
    np.add.at(counts, (q, log["lsoa"][placed]), 1)
    qq, ll = np.meshgrid(np.arange(1, n_q + 1), np.flatnonzero(frame.lsoa_dispersal), indexing="ij")
    qq, ll = qq.ravel(), ll.ravel()
    return {**_period_columns(qq, extract_dates), "area_code": frame.lsoa_code[ll], "persons_allocated": counts[qq, ll]}


def incident_rows(ward_population: np.ndarray, ward_mix: np.ndarray, frame: Frame, rates: DemoRates,
                  rng, extract_dates: np.ndarray) -> tuple[dict[str, np.ndarray], dict]:
    """Incidents by ward x category x quarter; `ward_population` is (quarter, ward) at the
    quarter's start. One diverse ward has a sudden rise in one of the last two quarters."""
    n_q, n_w = ward_population.shape
    categories = [c for c, _ in rates.incidents_per_1000_quarter]
    per_1000 = np.array([r for _, r in rates.incidents_per_1000_quarter])
    spike_ward = int(np.argmax(ward_mix))
    spike_quarter = int(rng.integers(max(1, n_q - 1), n_q + 1))     # 1-based
    expected = ward_population[:, :, None] / 1000 * per_1000[None, None, :] * (0.5 + 3 * ward_mix)[None, :, None]
    expected[spike_quarter - 1, spike_ward, [0, 2]] *= rates.incident_spike_factor
    counts = rng.poisson(expected)
    qq, ww, cc = np.indices(counts.shape).reshape(3, -1)
    columns = {**_period_columns(qq + 1, extract_dates), "area_code": frame.ward_code[ww],
               "category": np.asarray(categories, dtype=object)[cc], "count": counts.ravel()}
    spike = {"ward_code": str(frame.ward_code[spike_ward]), "ward_name": str(frame.ward_name[spike_ward]),
             "period_end": str(extract_dates[spike_quarter]), "categories": [categories[0], categories[2]],
             "factor": rates.incident_spike_factor}
    return columns, spike
