"""The school census as an observed measure of the change in list inflation
(pipeline/estimates/school_signal.py and its use in cohort_model.roll_cohorts). Hand-computed
tiny populations."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipeline.config import EstimateSettings
from pipeline.estimates.cohort_model import roll_cohorts
from pipeline.estimates.school_signal import (choose_school_signal, count_list_children, measure_inflation_change,
                                              pair_censuses, weigh_school_ages)


def test_weigh_school_ages_by_hand():
    # 1 September: ages 4-15 are years R-11 exactly (nobody aged 16 is still in Year 11)
    w = weigh_school_ages(dt.date(2022, 9, 1))
    assert w[4] == 1.0 and w[16] == 0.0 and w[5:16].tolist() == [1.0] * 11 and w.sum() == 12.0
    # 2 March 2023, 182 days into the school year: f = 182 / 365.25 = 0.498289
    w = weigh_school_ages(dt.date(2023, 3, 2))
    assert w[4] == pytest.approx(1 - 0.498289, abs=1e-6) and w[16] == pytest.approx(0.498289, abs=1e-6)
    assert w.sum() == pytest.approx(12.0) and w[3] == 0.0 and w[17] == 0.0


def test_pair_censuses_by_hand():
    extracts = [dt.date(2022, 10, 1), dt.date(2023, 4, 1), dt.date(2023, 7, 1)]
    censuses = [dt.date(2022, 10, 6), dt.date(2023, 1, 19), dt.date(2023, 5, 18)]
    # Oct 1 -> Oct 6 (5 days); Apr 1 -> May 18 (47 days; Jan 19 is 72); Jul 1 -> May 18 (44 days)
    assert pair_censuses(extracts, censuses).tolist() == [0, 2, 2]
    assert pair_censuses(extracts, censuses, window_days=40).tolist() == [0, -1, -1]
    assert pair_censuses(extracts, []).tolist() == [-1, -1, -1]


def test_measure_inflation_change_by_hand():
    # LSOAs 1 and 2 in LA "A", LSOA 3 in "B"; three extracts, two censuses, the middle extract unpaired
    list_children = np.array([[100, 50, 80], [500, 500, 500], [120, 60, 80]], dtype=float)
    pupils = np.array([[90, 45, 0], [90, 45, 70]], dtype=float)
    g = measure_inflation_change(list_children, pupils, np.array([0, -1, 1]), np.array(["A", "A", "B"]))
    # A: r(t0) = 150 / 135, r(t2) = 180 / 135: g = 1.2; t1 has no census: keeps t0's 1.
    # B: no pupils at the first census: nothing to anchor to, g = 1
    assert np.allclose(g, [[1, 1, 1], [1, 1, 1], [1.2, 1.2, 1]])
    # no census near the first extract: anchored at the first extract with one (t1: 1,500 / 90 = 16.667
    # listed per pupil; t2: 260 / 205 = 1.268293 -> g = 0.076098); before the anchor g = 1
    g = measure_inflation_change(list_children, pupils, np.array([-1, 0, 1]), np.array(["A"] * 3))
    assert np.allclose(g[0], 1) and np.allclose(g[1], 1) and np.allclose(g[2], (260 / 205) / (1500 / 135))
    # no census near any extract: no correction at all
    assert (measure_inflation_change(list_children, pupils, np.array([-1, -1, -1]), np.array(["A"] * 3)) == 1).all()


def test_count_list_children_weighs_single_years():
    L = np.zeros((1, 2, 2, 91))
    L[0, 0, 0, 4] = 10      # LSOA 0: ten aged 4, twenty aged 16, five aged 10, thirty aged 40
    L[0, 0, 1, 16] = 20
    L[0, 0, 1, 10] = 5
    L[0, 0, 0, 40] = 30
    L[0, 1, 0, 17] = 7      # LSOA 1: none of school age
    # 2 March 2023: 10 x 0.501711 + 20 x 0.498289 + 5 = 19.982289
    out = count_list_children(L, [dt.date(2023, 3, 2)])
    assert out[0].tolist() == pytest.approx([10 * (1 - 182 / 365.25) + 20 * 182 / 365.25 + 5, 0.0])


def test_choose_school_signal():
    assert choose_school_signal("la", None) == "off"
    assert choose_school_signal("la", ([dt.date(2022, 10, 6)], np.ones((1, 1)))) == "la"
    assert choose_school_signal("off", ([dt.date(2022, 10, 6)], np.ones((1, 1)))) == "off"
    with pytest.raises(ValueError, match="school_signal"):
        choose_school_signal("lsoa", None)
    assert EstimateSettings().school_signal == "la"


def test_roll_cohorts_divides_the_list_change_by_the_measured_inflation_change():
    """One LSOA, five people of each sex and single year, the list equal to the base at t0
    (inflation 1). A year on the list holds 10% more at every age (ghosts) while the census's
    pupils are as many as before: g = 1.1. The list's change is then divided by 1.1: the 1,001
    listed at t1 stand for 910, so the estimate is 91 (= 1,001 x (1 - 1 / 1.1)) below what it is
    with inflation held at t0."""
    lsoas = ["E01000001"]
    geo = pd.DataFrame({"lsoa_code": lsoas, "ward_code": "W", "la_code": "LA", "ward_share": 1.0})
    t0, t1 = dt.date(2022, 10, 1), dt.date(2023, 10, 1)
    pub = np.full((1, 2, 91), 5.0)
    L = np.stack([pub, pub * 1.1])
    ex = pd.DataFrame({"extract_date": [t0, t1], "k": [0, 1], "years_since_base": [0.0, 1.0]})
    school = ([dt.date(2022, 10, 6), dt.date(2023, 10, 5)], np.array([[100.0], [100.0]]))
    totals = {}
    for signal, pupils in (("la", school), ("off", school), ("none", None)):
        s = EstimateSettings(blend_base=False, shrinkage_strength=0.0, school_signal="off" if signal == "off" else "la")
        cells, _, notes = roll_cohorts(pub, L, ex, lsoas, geo, s, {"counts_base_sd": 0.047}, t0, school_pupils=pupils)
        totals[signal] = cells[cells["k"] == 1]["estimate"].sum()
        if signal == "la":
            assert notes["school_inflation_change_pct"] == pytest.approx([0.0, 10.0])
    assert totals["off"] - totals["la"] == pytest.approx(1001 * (1 - 1 / 1.1))
    assert totals["none"] == pytest.approx(totals["off"])   # no census: as if off


def test_school_pupils_step_and_its_use_by_hand():
    """est_school_pupils (sql/common/03) counts each census's pupils of years R-11 by home LSOA, only in
    LSOAs with a base; read_school_pupils lays them out by census x LSOA; and the estimates use them.

    LSOA A: 20 men aged 8 at T0 (list 20 at T0; 30 at T1: 10 ghosts), base 20. Census of 2022-07-07
    (7 days after T0): pupils in A of years R, 3 and 11 count, Year 12 and nursery N1 do not, and a pupil
    in an LSOA without a base is left out: 3 in A. The census of 2022-10-06 (6 days after T1): the
    same 3. So the LA's list-to-census ratio of children grows by 30 / 20 = 1.5 (only A has a
    list), and the list's change at T1 (+10) is read as 30 / 1.5 - 20 = 0 people, not +10."""
    from pipeline.estimates import estimate_populations
    from pipeline.estimates.school_signal import read_school_pupils
    from tests.test_estimates import A, B, C, LA, T0, T1, District, row, settings

    d = District()
    d.patients(20, A, "M", dt.date(2014, 3, 1), [T0, T1])
    d.patients(10, A, "M", dt.date(2014, 3, 1), [T1])
    d.base_cell(A, "M", "5-9", 20)
    for lsoa in (B, C):
        d.patients(5, lsoa, "F", dt.date(1980, 1, 1), [T0, T1])
        d.base_cell(lsoa, "F", "40-44", 5)
    sc = []
    for census in (dt.date(2022, 7, 7), dt.date(2022, 10, 6)):
        for pid, year, lsoa in (("p1", "R", A), ("p2", "3", A), ("p3", "11", A), ("p4", "12", A),
                                ("p5", "N1", A), ("p6", "4", "E01009999")):
            sc.append(dict(census_date=census, pupil_id=pid, urn="100001", nc_year=year, sex="M",
                           ethnicity="WBRI", ethnic_major="White", lsoa_code=lsoa))
    d.tables["school_census"] = sc
    con = d.load()
    estimate_populations(con, settings(shrinkage_strength=0.0, blend_base=False))
    got = con.execute("SELECT census_date, lsoa_code, pupils FROM est_school_pupils ORDER BY 1, 2").fetchall()
    assert got == [(dt.date(2022, 7, 7), A, 3.0), (dt.date(2022, 10, 6), A, 3.0)]
    dates, pupils = read_school_pupils(con, [A, B, C])
    assert [pd.Timestamp(x).date() for x in dates] == [dt.date(2022, 7, 7), dt.date(2022, 10, 6)]
    assert pupils.tolist() == [[3.0, 0.0, 0.0], [3.0, 0.0, 0.0]]
    # without the signal: 20 + 10 / 1 = 30; with it: 20 + (30 / 1.5 - 20) = 20
    assert row(con, A, T1)["estimate"] == pytest.approx(20.0)
    con2 = d.load()
    estimate_populations(con2, settings(shrinkage_strength=0.0, blend_base=False, school_signal="off"))
    assert row(con2, A, T1)["estimate"] == pytest.approx(30.0)
