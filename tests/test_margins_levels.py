"""Margins at every level (issue 9): the roll-up up the geography, no revision from the future,
and the calibration's fitting of known variances.

Expected values are worked by hand in the comments (the roll-up formula is the one in
pipeline/estimates/margins.py's docstring, not the SQL's output)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from pipeline.estimates import estimate_populations
from pipeline.estimates.margins import (age_terms_frame, calibrate_age_common, calibrate_correlation,
                                        load_margin_model)
from pipeline.sql import create_table_from
from tests.test_estimates import A, B, C, DOB_22, LA, T0, T1, T2, District, row, settings

PUBLISH = Path(__file__).resolve().parent.parent / "pipeline" / "estimates" / "sql" / "publish"
L1, L2, M1, LAX = "E01000101", "E01000102", "E02000101", "E08000099"


def _frame(con, name: str, df: pd.DataFrame) -> None:
    con.register("_f", df)
    con.execute(f"CREATE TABLE {name} AS SELECT * FROM _f")
    con.unregister("_f")


def _lsoa_rows(lsoa: str, cells: dict[tuple[str, str], tuple[float, float]]) -> list[dict]:
    """est_lsoa_rows for one LSOA: the given sex x band cells (estimate, variance) and their
    margins (sums of the cells' estimates; margin variances given explicitly below)."""
    out = []
    for (sex, band), (est, var) in cells.items():
        out.append(dict(lsoa_code=lsoa, sex=sex, age_band=band, estimate=est, variance=var))
    return out


def rolled_up(rows: list[dict], ethnic: list[dict], params: dict) -> pd.DataFrame:
    """Run the publish roll-up steps (02, 03) on hand-made LSOA rows; returns est_area_rows."""
    con = duckdb.connect()
    r = pd.DataFrame(rows)
    ref = dt.date(2023, 6, 30)
    r = r.assign(reference_date=ref, band_order=0, gp_list=0.0, base_population=0.0, published_base=0.0,
                 residents=100.0, turbulence=0.0, years_since_base=1.0, constrained=False,
                 est_base_carried_forward=0.0, est_raw_list=0.0, est_ratio_change=0.0,
                 la_wide_sd=float(params.get("la_wide_sd", params.get("l0", load_margin_model(None, None)["l0"]))))
    r["reference_date"] = pd.to_datetime(r["reference_date"])
    _frame(con, "est_lsoa_rows", r)
    e = pd.DataFrame(ethnic).assign(reference_date=pd.Timestamp(ref), years_since_base=1.0)
    _frame(con, "est_lsoa_ethnic", e)
    _frame(con, "est_area_members", pd.DataFrame([
        dict(lsoa_code=L1, area_code=L1, area_type="lsoa", w=1.0), dict(lsoa_code=L2, area_code=L2, area_type="lsoa", w=1.0),
        dict(lsoa_code=L1, area_code=M1, area_type="msoa", w=1.0), dict(lsoa_code=L2, area_code=M1, area_type="msoa", w=1.0),
        dict(lsoa_code=L1, area_code=LAX, area_type="la", w=1.0), dict(lsoa_code=L2, area_code=LAX, area_type="la", w=1.0)]))
    model = load_margin_model(None, None)
    model.update(params)
    _frame(con, "est_margin_age_terms", age_terms_frame(model))
    p = {k: float(model[k]) for k in ("rho", "omega", "l0", "l1")}
    create_table_from(con, "est_lsoa_margin_rows", PUBLISH / "02_est_lsoa_margin_rows.sql", p)
    create_table_from(con, "est_area_rows", PUBLISH / "03_est_area_rows.sql", p)
    return con.execute("SELECT * FROM est_area_rows").df()


def two_lsoas() -> tuple[list[dict], list[dict]]:
    """Two LSOAs, one age band (0-4). L1: men 40 (var 9), women 60 (var 16); L2: men 100 (var 25),
    women 200 (var 36). Margins: L1 All/All 100 (var 16), L2 All/All 300 (var 36); sex and band
    margins as below. Ethnic group White: L1 50 (v_pop 4, v_share 1), L2 150 (v_pop 9, v_share 4)."""
    rows = _lsoa_rows(L1, {("M", "0-4"): (40, 9), ("F", "0-4"): (60, 16), ("M", "All"): (40, 9),
                           ("F", "All"): (60, 16), ("All", "0-4"): (100, 16), ("All", "All"): (100, 16)})
    rows += _lsoa_rows(L2, {("M", "0-4"): (100, 25), ("F", "0-4"): (200, 36), ("M", "All"): (100, 25),
                            ("F", "All"): (200, 36), ("All", "0-4"): (300, 36), ("All", "All"): (300, 36)})
    ethnic = [dict(lsoa_code=L1, ethnic_group="White", estimate=50.0, v_pop=4.0, v_share=1.0, total_estimate=100.0),
              dict(lsoa_code=L2, ethnic_group="White", estimate=150.0, v_pop=9.0, v_share=4.0, total_estimate=300.0)]
    return rows, ethnic


def pick(df, area, sex="All", band="All", group="All"):
    return df[(df["area_code"] == area) & (df["sex"] == sex) & (df["age_band"] == band)
              & (df["ethnic_group"] == group)].iloc[0]


def test_roll_up_carries_the_la_wide_term_fully_correlated_by_hand():
    rows, ethnic = two_lsoas()
    out = rolled_up(rows, ethnic, {"rho": 0.5, "omega": 0.0, "l0": 0.1, "l1": 0.0})
    # LSOA L1 total: its own 16 + l0^2 E^2 = 16 + 0.01 x 100^2 = 116
    assert pick(out, L1)["variance"] == pytest.approx(116.0)
    # LA total: (1 - 0.5)(16 + 36) + 0.5 (4 + 6)^2 + 0.01 x (100 + 300)^2 = 26 + 50 + 1600 = 1676
    # (were the LA-wide term independent between the LSOAs it would be 0.01 (100^2 + 300^2) = 1000)
    la = pick(out, LAX)
    assert la["estimate"] == pytest.approx(400.0)
    assert la["variance"] == pytest.approx(1676.0)
    # the MSOA (both LSOAs) the same
    assert pick(out, M1)["variance"] == pytest.approx(1676.0)
    # LA men 0-4: 0.5 (9 + 25) + 0.5 (3 + 5)^2 + 0.01 x 140^2 = 17 + 32 + 196 = 245
    assert pick(out, LAX, "M", "0-4")["variance"] == pytest.approx(245.0)
    # ethnic group White at the LA: 0.5 (4 + 9) + 0.5 (2 + 3)^2 = 6.5 + 12.5 = 19, plus the LA-wide
    # term in proportion, 0.01 x 200^2 = 400: 419; v_share sums independently, 1 + 4 = 5
    white = pick(out, LAX, group="White")
    assert white["variance"] == pytest.approx(419.0)
    assert white["v_share"] == pytest.approx(5.0)
    assert white["total_estimate"] == pytest.approx(400.0)


def test_roll_up_adds_the_age_term_by_band_shared_by_the_sexes_by_hand():
    rows, ethnic = two_lsoas()
    out = rolled_up(rows, ethnic, {"rho": 0.0, "omega": 0.0, "l0": 0.0, "l1": 0.0, "m0_0_4": 0.2, "m1_0_4": 0.1})
    # age term for 0-4 at y = 1: m0^2 + (m1 y)^2 = 0.04 + 0.01 = 0.05
    # LA men 0-4: 9 + 25 + 0.05 x 140^2 = 34 + 980 = 1014
    assert pick(out, LAX, "M", "0-4")["variance"] == pytest.approx(1014.0)
    # LA all ages, both sexes: 16 + 36 + 0.05 x (sum of the band over both sexes, 400)^2 = 52 + 8000
    assert pick(out, LAX)["variance"] == pytest.approx(8052.0)
    # L1 all ages: 16 + 0.05 x 100^2 = 516 (the LSOA carries the LA-wide term in full)
    assert pick(out, L1)["variance"] == pytest.approx(516.0)
    # White at the LA: 4 + 9 + (8000 / 400^2) x 200^2 = 13 + 2000
    assert pick(out, LAX, group="White")["variance"] == pytest.approx(2013.0)
    # a band with no term adds nothing
    out0 = rolled_up(rows, ethnic, {"rho": 0.0, "omega": 0.0, "l0": 0.0, "l1": 0.0, "m0_85": 0.5})
    assert pick(out0, LAX, "M", "0-4")["variance"] == pytest.approx(34.0)


T3 = dt.date(2023, 3, 31)


def district(dates) -> District:
    """Men aged 20-24 in three LSOAs: A gains 6 at T1 and 20 more at T3; C loses 7 at T1."""
    d = District()
    keep = lambda ds: [x for x in ds if x in dates]  # noqa: E731
    d.patients(14, A, "M", DOB_22, keep([T0, T1, T2, T3]))
    d.patients(6, A, "M", DOB_22, keep([T1, T2, T3]))
    d.patients(20, A, "M", DOB_22, keep([T3]))
    d.patients(33, B, "M", DOB_22, keep([T0, T1, T2, T3]), practice="P00002")
    d.patients(56, C, "M", DOB_22, keep([T0, T1, T2, T3]), practice="P00003")
    d.patients(7, C, "M", DOB_22, keep([T0]), practice="P00003")
    d.base_cell(A, "M", "20-24", 10)
    d.base_cell(B, "M", "20-24", 30)
    d.base_cell(C, "M", "20-24", 60)
    return d


def test_an_estimate_at_t_ignores_later_extracts():
    # margins that depend on turbulence (f) and on time (c): a later extract with many arrivals in A
    # must leave the intervals of the earlier dates as they were (no revision from the future).
    s = settings(overrides={"f": 2.0, "c": 0.01, "kappa_t": 1.0})
    con_a = district([T0, T1, T2]).load()
    estimate_populations(con_a, s)
    con_b = district([T0, T1, T2, T3]).load()
    estimate_populations(con_b, s)
    for area in (A, B, C, LA):
        for date in (T0, T1, T2):
            before, after = row(con_a, area, date), row(con_b, area, date)
            for col in ("estimate", "lower_95", "upper_95", "turbulence"):
                assert after[col] == pytest.approx(before[col]), (area, date, col)
    # the new extract does see the arrivals: A's turbulence rises at T3
    assert row(con_b, A, T3)["turbulence"] > row(con_b, A, T2)["turbulence"] > 0


def test_calibration_recovers_a_known_age_term():
    # relative errors drawn with variance m0^2 + (m1 y)^2 + known, m0 = 0.03, m1 = 0.02, known 0.0004
    rng = np.random.default_rng(20261130)
    y = np.tile([0.25, 0.5, 1.0, 1.5, 2.0], 800)
    known = np.full(len(y), 0.0004)
    err = rng.normal(0.0, np.sqrt(0.03 ** 2 + (0.02 * y) ** 2 + known))
    m0, m1 = calibrate_age_common(err, y, known)
    assert m0 == pytest.approx(0.03, rel=0.1)
    assert m1 == pytest.approx(0.02, rel=0.1)
    # errors no larger than the known part leave the terms at 0
    m0, m1 = calibrate_age_common(rng.normal(0.0, 0.02, len(y)), y, known)
    assert m0 == 0.0 and m1 < 0.004


def test_calibration_recovers_a_known_correlation():
    # area errors with variance (1 - rho) ind + rho cor, rho = 0.4, on a tiny synthetic table
    rng = np.random.default_rng(7)
    ind = rng.uniform(50, 150, 3000)
    cor = ind * rng.uniform(3, 6, 3000)
    err = rng.normal(0.0, np.sqrt(0.6 * ind + 0.4 * cor))
    assert calibrate_correlation(err, ind, cor) == pytest.approx(0.4, abs=0.05)
