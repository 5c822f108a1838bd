"""Deaths and newborns in the cohort roll-forward (pipeline/estimates/cohort_model.py, issue 9).

Hand-computed tiny populations: deaths between the base date and the first extract come off the
aged base; deaths since the first extract are one resident each (not divided by the list's
inflation); babies born since the first extract are counted one for one.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipeline.config import EstimateSettings
from pipeline.estimates.cohort_model import (AGES, remove_deaths, roll_cohorts, roll_list_change,
                                             spread_over_band)
from pipeline.estimates.cohorts import band_of_age

TWO_BANDS = np.array([0, 0, 1, 1])  # four single years in two bands of two


def test_spread_over_band_by_hand():
    # band 0: 6 shared 1 : 2 -> 2, 4; band 1: nothing to go by -> 4 shared evenly -> 2, 2
    out = spread_over_band(np.array([6.0, 4.0]), np.array([1.0, 2.0, 0.0, 0.0]), TWO_BANDS)
    assert out.tolist() == pytest.approx([2.0, 4.0, 2.0, 2.0])


def test_remove_deaths_by_hand():
    # band 0: 8 deaths over 10 : 30 -> 2, 6; band 1: 20 deaths over 5 : 5 -> 10, 10, floored at 0
    out = remove_deaths(np.array([10.0, 30.0, 5.0, 5.0]), np.array([8.0, 20.0]), TWO_BANDS)
    assert out.tolist() == pytest.approx([8.0, 24.0, 0.0, 0.0])


def test_roll_list_change_by_hand():
    """Ages 0, 1, 2 (2 open), half a year since t0: half of age 0 was born since t0 (born_after:
    0.5 - 0 = 0.5; ages 1 and 2: none).
    age 0: (0.5 x 10 - 4) / 1.25 + 0.5 x 10 = 0.8 + 5 = 5.8
    age 1: (22 - 20) / 1.1 = 1.818182
    age 2: (30 - 33) / 1.5 - 6 deaths x (1 - 1 / 1.5) = -2 - 2 = -4
    and with the inflation change g = 1.1, age 1: (22 / 1.1 - 20) / 1.1 = 0."""
    Lt = np.array([10.0, 22.0, 30.0]).reshape(1, 1, 3)
    L0a = np.array([4.0, 20.0, 33.0]).reshape(1, 1, 3)
    Ia = np.array([1.25, 1.1, 1.5]).reshape(1, 1, 3)
    died = np.array([0.0, 0.0, 6.0]).reshape(1, 1, 3)
    out = roll_list_change(Lt, L0a, Ia, np.array([1.0]), 0.5, died)
    assert out.ravel().tolist() == pytest.approx([5.8, 2 / 1.1, -4.0])
    assert roll_list_change(Lt, L0a, Ia, np.array([1.1]), 0.5)[0, 0, 1] == pytest.approx(0.0, abs=1e-12)
    # newborns not at par (counts-only mode): age 0 is (10 - 4) / 1.25 = 4.8
    assert roll_list_change(Lt, L0a, Ia, np.array([1.0]), 0.5, newborns_at_par=False)[0, 0, 0] == pytest.approx(4.8)


def test_roll_cohorts_counts_deaths_once_before_and_after_the_first_extract():
    """One LSOA, 10 men aged 88 on the base date (1 April 2022), a list of 12 at the first extract
    (1 October 2022). 1 of them died between the base date and t0 and 2 more by t1 (1 October
    2023), when the list holds 10 (the deaths removed). Truth: 7 at t1.
    Aged base at t0: 10 - 1 = 9 (still 85+), so inflation 12 / 9 = 4 / 3 (no shrinkage).
    t1: 9 + (10 - 12) / (4 / 3) - 2 x (1 - 3 / 4) = 9 - 1.5 - 0.5 = 7.
    Without vital events: 10 + (10 - 12) / (12 / 10) = 8.333."""
    lsoas = ["E01000001"]
    geo = pd.DataFrame({"lsoa_code": lsoas, "ward_code": "W", "la_code": "LA", "ward_share": 1.0})
    base_date, t0, t1 = dt.date(2022, 4, 1), dt.date(2022, 10, 1), dt.date(2023, 10, 1)
    pub = np.zeros((1, 2, AGES))
    pub[0, 0, 88] = 10
    L = np.zeros((2, 1, 2, AGES))
    L[0, 0, 0, 88] = 12
    L[1, 0, 0, 89] = 10
    nb = band_of_age(AGES - 1).max() + 1
    deaths = np.zeros((2, 1, 2, nb))
    deaths[0, 0, 0, nb - 1] = 1
    deaths[1, 0, 0, nb - 1] = 3
    ex = pd.DataFrame({"extract_date": [t0, t1], "k": [0, 1], "years_since_base": [0.5, 1.5]})
    s = EstimateSettings(blend_base=False, shrinkage_strength=0.0, school_signal="off")
    model = {"counts_base_sd": 0.047}
    cells, _, _ = roll_cohorts(pub, L, ex, lsoas, geo, s, model, base_date, deaths=deaths)
    at = cells[(cells["sex"] == "M") & (cells["age_band"] == "85+")].set_index("k")["estimate"]
    assert at[0] == pytest.approx(9.0)
    assert at[1] == pytest.approx(7.0)
    cells, _, _ = roll_cohorts(pub, L, ex, lsoas, geo, s, model, base_date)
    at = cells[(cells["sex"] == "M") & (cells["age_band"] == "85+")].set_index("k")["estimate"]
    assert at[1] == pytest.approx(10 - 2 / 1.2)
