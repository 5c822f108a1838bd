"""The cohort chassis shared by register and counts-only modes (pipeline/estimates/cohort_model.py).

Tiny hand-computed districts (builders from test_estimates.py): cohorts aged across a band
boundary, the band-level floor, and register mode and counts-only mode giving the same estimates
when fed the same lists.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipeline.estimates import estimate_populations
from pipeline.estimates.cohort_model import floor_by_band
from pipeline.estimates.cohorts import band_of_age
from tests.test_estimates import A, B, C, T0, District, row, settings

T2Y = dt.date(2024, 6, 30)          # two years after the base date T0 (731 days = 2.001369 years)
DOB_19 = dt.date(2003, 1, 1)        # 19 at T0, 21 at T2Y
DOB_22 = dt.date(2000, 1, 1)        # 22 at T0, 24 at T2Y


def base_sya(d: District, lsoa: str, sex: str, age: int, population: float) -> None:
    d.tables.setdefault("base_population_sya", []).append(dict(
        reference_date=T0, lsoa_code=lsoa, sex=sex, age=age, population=population, source="ons-mye-2022"))


def band_boundary_district() -> District:
    """LSOA A: 10 men aged 19 at the base (list 10: inflation 1) and 10 men aged 22 (list 20: 10
    ghosts, inflation 2). Nobody moves: the true population is 10 + 10 at T2Y, all aged 20-24."""
    d = District()
    d.patients(10, A, "M", DOB_19, [T0, T2Y])
    d.patients(20, A, "M", DOB_22, [T0, T2Y])
    d.base_cell(A, "M", "15-19", 10)
    d.base_cell(A, "M", "20-24", 10)
    base_sya(d, A, "M", 19, 10)  # the single years (as the wide ONS layouts give them)
    base_sya(d, A, "M", 22, 10)
    return d


def test_cohort_aged_across_a_band_boundary():
    con = band_boundary_district().load()
    estimate_populations(con, settings(shrinkage_strength=0.0))
    # By cohort: the 10 aged 19 are 21 two years later and carry their own inflation (1) with them;
    # the list changes by nothing in either cohort, so 20-24 = 10 + 10 = 20 and 15-19 = 0.
    # (A share 0.001369 of each cohort has had a third birthday in the 731 days, the same share
    # of base and list, so it cancels.)
    assert row(con, A, T2Y, "M", "20-24")["estimate"] == pytest.approx(20.0)
    assert row(con, A, T2Y, "M", "15-19")["estimate"] == pytest.approx(0.0, abs=1e-9)
    assert row(con, A, T2Y, "M", "25-29")["estimate"] == pytest.approx(0.0, abs=1e-9)
    assert row(con, A, T2Y)["estimate"] == pytest.approx(20.0)
    # Band by band (ratio change, the comparator) the 10 who left 15-19 look like an exodus and
    # their arrival in 20-24 is divided by the ghost-laden band's inflation: 15-19 = 10 x 0 / 10,
    # 20-24 = 10 x 30 / 20 = 15 (a band-level roll-forward would say 10 + 10 / 2 = 15 too)
    m = "population_estimates_methods"
    assert row(con, A, T2Y, "M", "15-19", table=m, method="ratio_change")["estimate"] == pytest.approx(0.0)
    assert row(con, A, T2Y, "M", "20-24", table=m, method="ratio_change")["estimate"] == pytest.approx(15.0)
    # the single years are kept for audit: the 19-year-olds are 21 (less the 0.001369 aged 22)
    sy = con.execute("SELECT age, sum(estimate) AS e FROM est_lsoa_single_years WHERE lsoa_code = ? "
                     "AND extract_date = ? GROUP BY age", [A, T2Y]).df().set_index("age")["e"]
    f = 731 / 365.25 - 2
    assert sy[21] == pytest.approx(10 * (1 - f) + (10 - 10 * (1 - f)) / 1.0)
    assert sy[19] == pytest.approx(0.0) and sy[20] == pytest.approx(0.0)


def test_floor_by_band_keeps_band_sums():
    band = band_of_age(90)
    est = np.zeros((1, 1, 91))
    est[0, 0, 20:25] = [1.0, -0.5, 3.0, 0.0, 0.5]   # band 20-24: sum 4, positives 4.5
    est[0, 0, 25:30] = [-2.0, 1.0, 0.0, 0.0, 0.0]   # band 25-29: sum -1 -> 0
    out = floor_by_band(est, band)
    # 20-24: the positive years scaled by 4 / 4.5: 0.888889, 0, 2.666667, 0, 0.444444
    assert out[0, 0, 20:25].tolist() == pytest.approx([1 * 4 / 4.5, 0.0, 3 * 4 / 4.5, 0.0, 0.5 * 4 / 4.5])
    assert out[0, 0, 25:30].tolist() == pytest.approx([0.0] * 5)
    assert out.min() >= 0


# -------------------------------------------------------------- register vs counts on the same lists

def mixed_district() -> District:
    """Three LSOAs, one practice each (so the practice x LSOA counts and the practice's age profile
    pin the list by age exactly), both sexes, cohorts crossing band boundaries, arrivals, leavers.
    (The arrivals' ages are ones the aged base holds: IPF cannot place patients at an age its seed,
    the LSOA's and district's aged base, has nobody at.)"""
    t1, t2 = dt.date(2023, 6, 30), T2Y
    d = District()
    d.patients(10, A, "M", DOB_19, [T0, t1, t2])
    d.patients(20, A, "M", DOB_22, [T0, t1, t2])
    d.patients(6, A, "F", dt.date(1986, 3, 1), [t1, t2])               # arrive: 37 at t1
    d.patients(12, B, "F", dt.date(1978, 8, 1), [T0, t1, t2], practice="P00002")  # 43 -> 45: 40-44 to 45-49
    d.patients(4, B, "F", dt.date(1978, 8, 1), [T0], practice="P00002")           # leave
    d.patients(8, B, "M", dt.date(2018, 2, 1), [T0, t1, t2], practice="P00002")   # 4 -> 6: 0-4 to 5-9
    d.patients(30, C, "F", dt.date(1940, 5, 5), [T0, t1], practice="P00003")      # 82; die or leave by t2
    d.patients(25, C, "F", dt.date(1940, 5, 5), [T0, t1, t2], practice="P00003")
    d.patients(9, C, "M", dt.date(1997, 12, 12), [T0, t1, t2], practice="P00003")
    for lsoa, sex, band, pop in ((A, "M", "15-19", 9), (A, "M", "20-24", 11), (A, "F", "35-39", 3),
                                 (B, "F", "40-44", 14), (B, "M", "0-4", 7), (C, "F", "80-84", 50),
                                 (C, "M", "20-24", 8), (C, "M", "25-29", 2)):
        d.base_cell(lsoa, sex, band, pop)
    return d


def counts_of(d: District) -> dict[str, list[dict]]:
    """The published counts a partner without the register would hold for the same lists:
    practice x LSOA persons counts and each practice's patients by sex x single year."""
    reg = pd.DataFrame(d.register)
    reg["age"] = [e.year - b.year - ((e.month, e.day) < (b.month, b.day))
                  for e, b in zip(reg["extract_date"], reg["date_of_birth"])]
    lsoa = reg.groupby(["extract_date", "practice_code", "lsoa_code"], as_index=False).size()
    ages = reg.groupby(["extract_date", "practice_code", "sex", "age"], as_index=False).size()
    return {
        "gp_counts": [dict(extract_date=r.extract_date, practice_code=r.practice_code, lsoa_code=r.lsoa_code,
                           sex="ALL", age_band=None, patients=int(r.size)) for r in lsoa.itertuples()],
        "gp_practice_age": [dict(extract_date=r.extract_date, practice_code=r.practice_code, sex=r.sex,
                                 age=str(r.age), patients=int(r.size)) for r in ages.itertuples()],
    }


def test_register_and_counts_modes_agree_on_the_same_lists():
    d = mixed_district()
    reg_con = d.load()
    reg_report = estimate_populations(reg_con, settings(shrinkage_strength=10.0, cell_inflation="shrunk"))
    c = mixed_district()
    c.tables.update(counts_of(c))
    c.register = []
    cnt_con = c.load()
    cnt_report = estimate_populations(cnt_con, settings(shrinkage_strength=10.0, cell_inflation="shrunk"))
    assert reg_report["mode"] == "register_snapshots" and cnt_report["mode"] == "counts_only"
    sql = ("SELECT area_code, reference_date, sex, age_band, estimate FROM population_estimates "
           "ORDER BY area_code, reference_date, sex, age_band")
    reg = reg_con.execute(sql).df()
    cnt = cnt_con.execute(sql).df()
    assert len(reg) == len(cnt) > 0
    pd.testing.assert_frame_equal(reg, cnt, check_exact=False, rtol=1e-9, atol=1e-9)
    # and the lists behind them are the same, single year by single year
    lists = ("SELECT lsoa_code, extract_date, sex, age, list_count FROM est_lsoa_single_years "
             "ORDER BY lsoa_code, extract_date, sex, age")
    pd.testing.assert_frame_equal(reg_con.execute(lists).df(), cnt_con.execute(lists).df(), check_exact=False,
                                  rtol=1e-9, atol=1e-9)
    # not vacuous: cohorts crossed bands and the lists changed
    assert row(reg_con, B, T2Y, "M", "5-9")["estimate"] > 0
    assert row(reg_con, C, T2Y)["estimate"] < row(reg_con, C, T0)["estimate"]


def test_no_revision_from_later_extracts():
    """The point estimate for a date uses the extracts up to that date only: adding a later
    extract (here a big list-cleaning burst) changes no estimate for an earlier date, in register
    mode (snapshots: cleaning judged against usual rates up to each extract) and in counts-only mode."""
    t2, t3 = T2Y, dt.date(2024, 12, 31)
    def district(last: dt.date | None, counts: bool) -> District:
        d = mixed_district()
        if last:  # a fourth extract: every list as at T2Y, less a third of LSOA C's (a clean-up)
            for r in [r for r in d.register if r["extract_date"] == t2]:
                d.register.append({**r, "extract_date": last})
            cut = [r for r in d.register if r["extract_date"] == last and r["lsoa_code"] == C][::3]
            d.register = [r for r in d.register if not any(r is c for c in cut)]
        if counts:
            d.tables.update(counts_of(d))
            d.register = []
        return d
    sql = ("SELECT area_code, reference_date, sex, age_band, estimate FROM population_estimates "
           "WHERE reference_date <= ? ORDER BY area_code, reference_date, sex, age_band")
    for counts in (False, True):
        short, long = district(None, counts).load(), district(t3, counts).load()
        estimate_populations(short, settings(shrinkage_strength=10.0, cell_inflation="shrunk"))
        estimate_populations(long, settings(shrinkage_strength=10.0, cell_inflation="shrunk"))
        a, b = short.execute(sql, [t2]).df(), long.execute(sql, [t2]).df()
        assert len(a) == len(b) > 0
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, atol=1e-9)
        assert row(long, C, t3)["estimate"] < row(long, C, t2)["estimate"]  # the later extract did move C


def test_young_share_by_hand():
    from pipeline.estimates.cohort_model import young_share
    listed = np.zeros((2, 2, 91))
    listed[0, 0, 20] = 30     # LSOA 1: 30 men aged 20 (young), 70 women aged 50: share 0.3 -> 300
    listed[0, 1, 50] = 70
    listed[1, 1, 17] = 10     # LSOA 2: 17 and 35 are outside 18-34: share 0
    listed[1, 0, 35] = 10
    assert young_share(listed).tolist() == pytest.approx([300.0, 0.0])
    assert young_share(np.zeros((1, 2, 91))).tolist() == [0.0]   # an empty list: 0, not a division by zero


def test_young_share_setting_runs_the_curve_by_list_age():
    """blend_covariate = "young_share" reaches the list-informed base (base.py needs 12 LSOAs in the LA
    to move anything). Fourteen LSOAs whose lists are inflated only at ages 18-34, more where more
    of the list is young, and two published bases 10% off: the LA-mean curve reads the young LSOAs'
    inflation as base error; the young-share curve explains it and moves the bases towards the truth."""
    from pipeline.config import EstimateSettings
    from pipeline.estimates.cohort_model import roll_cohorts
    n = 14
    lsoas = [f"E0100{i:04d}" for i in range(n)]
    geo = pd.DataFrame({"lsoa_code": lsoas, "ward_code": "W", "la_code": "LA", "ward_share": 1.0})
    true = np.full((n, 2, 91), 5.0)
    true[:, :, 18:35] *= np.linspace(0.5, 3.0, n)[:, None, None]   # young shares from about 10% to 40%
    lst = true.copy()
    lst[:, :, 18:35] *= 1.3                                         # the young are inflated by 30%
    error = np.ones(n)
    error[3], error[9] = 1.10, 0.90
    pub = true * error[:, None, None]
    ex = pd.DataFrame({"extract_date": [T0, dt.date(2023, 6, 30)], "k": [0, 1], "years_since_base": [0.0, 1.0]})
    off = {}
    for cov in ("none", "young_share"):
        cells, _, _ = roll_cohorts(pub, np.stack([lst, lst]), ex, lsoas, geo, EstimateSettings(blend_covariate=cov),
                                   {"counts_base_sd": 0.047}, T0)
        factor = cells[cells["k"] == 0].groupby("lsoa_code", sort=True)["base_factor"].first().to_numpy()
        off[cov] = np.abs(np.log(factor * error)).mean()   # how far the blended bases are from the truth
    # unblended, the bases are (log 1.1 + |log 0.9|) / 14 = 0.014334 off on average: the young-share
    # curve brings them nearer the truth, the LA-mean curve takes them further away
    unblended = (np.log(1.1) - np.log(0.9)) / 14
    assert off["young_share"] < unblended < off["none"]


def test_auto_blend_covariate_follows_whether_the_list_ages_are_observed():
    """blend_covariate = "auto" (the default): the young-share curve where the register gives the
    list's single years (register modes), the LA mean where they are modelled (counts-only mode);
    explicit settings are taken as they are; anything else is refused with the setting's name."""
    from pipeline.config import EstimateSettings
    from pipeline.estimates.cohort_model import choose_blend_covariate, roll_cohorts
    assert EstimateSettings().blend_covariate == "auto"
    assert choose_blend_covariate("auto", True) == "young_share"
    assert choose_blend_covariate("auto", False) == "none"
    for setting in ("none", "young_share"):
        assert choose_blend_covariate(setting, True) == choose_blend_covariate(setting, False) == setting
    with pytest.raises(ValueError, match="blend_covariate"):
        choose_blend_covariate("young", True)
    # the same fourteen LSOAs as above: "auto" gives the young-share factors in register mode and
    # the LA-mean factors in counts-only mode
    n = 14
    lsoas = [f"E0100{i:04d}" for i in range(n)]
    geo = pd.DataFrame({"lsoa_code": lsoas, "ward_code": "W", "la_code": "LA", "ward_share": 1.0})
    true = np.full((n, 2, 91), 5.0)
    true[:, :, 18:35] *= np.linspace(0.5, 3.0, n)[:, None, None]
    lst = true.copy()
    lst[:, :, 18:35] *= 1.3
    pub = true.copy()
    pub[3] *= 1.10
    ex = pd.DataFrame({"extract_date": [T0, dt.date(2023, 6, 30)], "k": [0, 1], "years_since_base": [0.0, 1.0]})

    def factors(cov, observed):
        cells, _, _ = roll_cohorts(pub, np.stack([lst, lst]), ex, lsoas, geo, EstimateSettings(blend_covariate=cov),
                                   {"counts_base_sd": 0.047}, T0, list_ages_observed=observed)
        return cells[cells["k"] == 0].groupby("lsoa_code", sort=True)["base_factor"].first().to_numpy()

    assert factors("auto", True) == pytest.approx(factors("young_share", False))
    assert factors("auto", False) == pytest.approx(factors("none", True))
    assert not np.allclose(factors("young_share", False), factors("none", False))
