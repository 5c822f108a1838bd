"""Counts-only mode on real published data: 36 LSOAs of Ribble Valley (tests/fixtures/census2021_subset).

The fixture is a subset of ../shared/data/real/census2021_backtest/raw (published aggregates, Open
Government Licence): NHS Digital's practice x LSOA persons counts (SEX = ALL, dates as 01JUL2019) at
four dates, the practice x sex x single-year file for the eight practices holding most of these
LSOAs' patients, ONS's mid-2019 SAPE sheet (persons, wide, no date column) and an LSOA -> LA lookup
without postcodes. Accuracy against the census is the benchmark's business
(benchmarks/backtest_real.py); these tests check that the path runs and publishes what it should.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.config import load_settings
from pipeline.estimates.cohorts import age_counts, born_after, fit_ipf, fold_to_bands
from pipeline.run import run_pipeline

FIXTURE = Path(__file__).parent / "fixtures" / "census2021_subset" / "raw"
DATES = ["2019-07-01", "2020-01-01", "2020-04-01", "2021-01-04"]


@pytest.fixture(scope="module")
def counts_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("real") / "data"
    shutil.copytree(FIXTURE, data / "raw")
    settings = load_settings(data_dir=data)
    summary = run_pipeline(settings, "outputs")
    return summary


def test_published_forms_load_without_loss(counts_run):
    report = json.loads((counts_run.processed_dir / "run_report.json").read_text())
    assert report["totals"]["rows_quarantined"] == 0
    layouts = {f["file"].split("/")[0]: f["layout"] for f in report["files"]}
    assert layouts == {"geography": "area_lookup", "gp_counts": "nhsd_lsoa",
                       "gp_practice_age": "nhsd_practice_single_year", "base_population": "ons_sape_wide"}


def read_estimates(run) -> pd.DataFrame:
    """The estimates table itself: the partner CSV rounds modelled figures and suppresses small
    counts (pipeline/outputs/disclosure.py), so exact sums are checked on the table."""
    import duckdb

    with duckdb.connect(str(run.processed_dir / "cohesion.duckdb"), read_only=True) as con:
        est = con.execute("SELECT * FROM population_estimates").df()
    est["reference_date"] = pd.to_datetime(est["reference_date"]).dt.strftime("%Y-%m-%d")
    return est


def test_counts_only_estimates_every_lsoa_at_every_extract(counts_run):
    est = read_estimates(counts_run)
    report = json.loads((counts_run.processed_dir / "run_report.json").read_text())["estimates"]
    assert report["mode"] == "counts_only" and report["intervals_published"]
    assert set(est["method"]) == {"cohdmap:counts_only"}
    # the lookup has no wards or MSOAs: those levels are not produced (never invented)
    assert set(est["area_type"]) == {"lsoa", "la"}
    totals = est[(est.sex == "All") & (est.age_band == "All") & (est.area_type == "lsoa")]
    assert sorted(totals["reference_date"].unique()) == DATES
    assert len(totals) == 36 * 4
    # the base as published: the SAPE sheet's All Ages column, summed over the 36 LSOAs
    base = pd.read_csv(FIXTURE / "base_population" / "sape-mid-2019-lsoa11-persons.csv")
    first = totals[totals.reference_date == DATES[0]]
    assert first["published_base"].sum() == pytest.approx(base["All Ages"].sum())
    # the persons base is split by sex; sexes and bands add up to the totals
    lsoa = est[(est.area_type == "lsoa") & (est.reference_date == DATES[-1])]
    by_sex = lsoa[(lsoa.sex != "All") & (lsoa.age_band == "All")].groupby("area_code")["estimate"].sum()
    by_band = lsoa[(lsoa.sex == "All") & (lsoa.age_band != "All")].groupby("area_code")["estimate"].sum()
    all_ = lsoa[(lsoa.sex == "All") & (lsoa.age_band == "All")].set_index("area_code")["estimate"]
    assert np.allclose(by_sex.reindex(all_.index), all_) and np.allclose(by_band.reindex(all_.index), all_)
    # a checked mode publishes intervals around every total
    assert (totals["lower_95"] <= totals["estimate"]).all() and (totals["estimate"] <= totals["upper_95"]).all()
    assert (totals["upper_95"] > totals["lower_95"]).all()


def test_gp_list_is_the_published_count(counts_run):
    """gp_list of an LSOA's total is the sum of the published practice x LSOA counts."""
    est = read_estimates(counts_run)
    counts = pd.read_csv(FIXTURE / "gp_counts" / "gp-reg-pat-prac-lsoa-all-2021-01-04.csv")
    listed = counts.groupby("LSOA_CODE")["NUMBER_OF_PATIENTS"].sum()
    t = est[(est.sex == "All") & (est.age_band == "All") & (est.area_type == "lsoa") & (est.reference_date == DATES[-1])]
    assert np.allclose(t.set_index("area_code")["gp_list"].reindex(listed.index), listed)


# --------------------------------------------------------------------- cohorts and IPF by hand

def test_cohorts_age_across_a_band_boundary():
    # ages 0..5 (5 open); 10 people aged 4 aged by 1.25 years: 1 whole year -> all 5 (the open top
    # keeps them); aged by 0.25: 7.5 stay 4, 2.5 reach 5
    x = np.array([0, 0, 0, 0, 10.0, 0])
    assert age_counts(x, 1.25).tolist() == [0, 0, 0, 0, 0, 10.0]
    assert age_counts(x, 0.25).tolist() == [0, 0, 0, 0, 7.5, 2.5]
    # 4 aged 0 and 8 aged 1, by 1.5 years: whole year -> ages 1 and 2; half of each moves up one more
    y = age_counts(np.array([4.0, 8, 0, 0, 0, 0]), 1.5)
    assert y.tolist() == [0, 2.0, 6.0, 4.0, 0, 0]
    # nobody is lost: ageing keeps the total; the ages below 1.5 at the later date were born since
    assert y.sum() == 12
    assert born_after(5, 1.5).tolist() == [1.0, 0.5, 0, 0, 0, 0]
    # a cohort crosses the 4/5 band boundary (bands of 5 years: 0-4, 5-9, ...): 20 aged 4 by 0.5 years
    z = np.zeros(91)
    z[4] = 20
    bands = fold_to_bands(age_counts(z, 0.5))
    assert bands[0] == 10 and bands[1] == 10


def test_ipf_meets_both_margins():
    # seed all ones; rows 30 and 10, columns 20 and 20: the fitted table is rows x cols / total,
    # [[15, 15], [5, 5]] (independence of a uniform seed)
    x = fit_ipf(np.ones((2, 2)), [30, 10], [20, 20])
    assert np.allclose(x, [[15, 15], [5, 5]])
    # a seed with structure keeps its odds ratio: seed [[2, 1], [1, 2]] (odds ratio 4) raked to rows
    # 10, 10 and columns 10, 10 gives [[a, 10 - a], [10 - a, a]] with a^2 / (10 - a)^2 = 4: a = 20/3
    y = fit_ipf(np.array([[2.0, 1], [1, 2]]), [10, 10], [10, 10])
    assert np.allclose(y, [[20 / 3, 10 / 3], [10 / 3, 20 / 3]])
    # column totals are scaled to the rows' total first (the practice's in-area share)
    w = fit_ipf(np.ones((2, 2)), [30, 10], [100, 100])
    assert np.allclose(w.sum(axis=0), [20, 20])


# ------------------------------------------------------------------- published forms at ingest

def _ingest(tmp_path: Path, files: dict[str, str]):
    import duckdb

    data = tmp_path / "data"
    for name, text in files.items():
        (data / "raw" / name).parent.mkdir(parents=True, exist_ok=True)
        (data / "raw" / name).write_text(text, encoding="utf-8")
    summary = run_pipeline(load_settings(data_dir=data), "ingest")
    return duckdb.connect(str(summary.processed_dir / "cohesion.duckdb"), read_only=True)


LOOKUP = "lsoa21cd,lsoa21nm,lad22cd\nE01006074,Trafford 025A,E08000009\nE01006075,Trafford 025B,E08000009\n"


def test_persons_only_mid_year_estimates_keep_single_years(tmp_path):
    """ONS's wide layout with Persons rows only (no Males/Females): kept as sex P, by band and by single year."""
    mye = (Path(__file__).parent / "fixtures" / "ons_mye2022_3lsoa_sya.csv").read_text(encoding="utf-8").splitlines()
    persons = "\n".join([mye[0]] + [line for line in mye[1:] if ",Persons," in line and ("E01006074" in line
                                                                                        or "E01006075" in line)])
    con = _ingest(tmp_path, {"geography/lookup.csv": LOOKUP, "base_population/mye.csv": persons + "\n"})
    sexes = con.execute("SELECT DISTINCT sex FROM base_population").fetchall()
    assert sexes == [("P",)]
    # the fixture's own single-year columns, read independently: 30-34 is the sum of columns 30 ... 34
    frame = pd.read_csv(Path(__file__).parent / "fixtures" / "ons_mye2022_3lsoa_sya.csv")
    row = frame[(frame.area_code == "E01006074") & (frame.sex == "Persons")].iloc[0]
    expected = sum(float(row[str(a)]) for a in range(30, 35))
    got = con.execute("SELECT population FROM base_population WHERE lsoa_code = 'E01006074' AND age_band = '30-34'")
    assert got.fetchall()[0][0] == pytest.approx(expected)
    assert con.execute("SELECT population FROM base_population_sya WHERE lsoa_code = 'E01006074' AND age = 31"
                       ).fetchall()[0][0] == pytest.approx(float(row["31"]))
    # the lookup has no postcodes, wards or MSOAs: LSOA -> LA only, nothing invented
    assert con.execute("SELECT count(*) FROM lsoa_lookup WHERE ward_code IS NULL AND msoa_code IS NULL "
                       "AND la_code = 'E08000009'").fetchall()[0][0] == 2


def test_counts_files_in_the_published_form(tmp_path):
    """SEX = ALL, 01JUL2019 dates, MALE/FEMALE in the practice x age file, AGE 95+."""
    counts = ("PUBLICATION,EXTRACT_DATE,PRACTICE_CODE,PRACTICE_NAME,LSOA_CODE,SEX,NUMBER_OF_PATIENTS\n"
              "GP_PRAC_PAT_LIST,01JUL2019,P81005,\"SURGERY, ONE\",E01006074,ALL,120\n"
              "GP_PRAC_PAT_LIST,01JUL2019,P81005,\"SURGERY, ONE\",E01006075,PERSONS,80\n"
              "GP_PRAC_PAT_LIST,01JUL2019,P81005,\"SURGERY, ONE\",E01009999,ALL,5\n")
    ages = ("PUBLICATION,EXTRACT_DATE,ORG_CODE,SEX,AGE,NUMBER_OF_PATIENTS\n"
            "GP_PRAC_PAT_LIST,01JUL2019,P81005,MALE,0,58\nGP_PRAC_PAT_LIST,01JUL2019,P81005,FEMALE,95+,3\n"
            "GP_PRAC_PAT_LIST,01JUL2019,P81005,FEMALE,ninety,1\nGP_PRAC_PAT_LIST,01JUL2019,P81005,ALL,ALL,61\n")
    con = _ingest(tmp_path, {"geography/lookup.csv": LOOKUP, "gp_counts/counts.csv": counts,
                             "gp_practice_age/ages.csv": ages})
    rows = con.execute("SELECT extract_date, sex, sum(patients) FROM gp_counts GROUP BY 1, 2").fetchall()
    assert rows == [(pd.Timestamp("2019-07-01").date(), "ALL", 200)]
    got = con.execute("SELECT sex, age, patients FROM gp_practice_age ORDER BY sex").fetchall()
    assert got == [("ALL", "ALL", 61), ("F", "95+", 3), ("M", "0", 58)]  # totals rows load (the estimates skip them)
    report = json.loads((tmp_path / "data" / "processed" / "run_report.json").read_text())
    quarantined = {f["file"]: f["quarantined_by_rule"] for f in report["files"] if f["rows_quarantined"]}
    # an LSOA outside the lookup, and an age that is not a number, are quarantined (nothing lost)
    assert quarantined == {"gp_counts/counts.csv": {"unknown_area": 1}, "gp_practice_age/ages.csv": {"bad_format": 1}}


def test_sape_sheet_without_a_date_needs_the_year_in_its_name(tmp_path):
    from pipeline.run import RunError

    sape = "LSOA Code,LSOA Name,LA Code (2021 boundaries),All Ages," + ",".join([str(a) for a in range(90)] + ["90+"])
    sape += "\nE01006074,Trafford 025A,E08000009,91," + ",".join(["1"] * 91) + "\n"
    with pytest.raises((RunError, Exception), match="reference year"):
        _ingest(tmp_path, {"geography/lookup.csv": LOOKUP, "base_population/sape-persons.csv": sape})
    con = _ingest(tmp_path / "b", {"geography/lookup.csv": LOOKUP, "base_population/sape-mid-2019-persons.csv": sape})
    assert con.execute("SELECT DISTINCT reference_date, sex FROM base_population_sya").fetchall() == [
        (pd.Timestamp("2019-06-30").date(), "P")]


def test_ipf_keeps_the_rows_when_the_margins_conflict():
    # row 2's seed lives only in column 2, where the column total is 0: the margins cannot both hold;
    # the published row totals win (5 stays in row 2's only cell) and row 1 meets its column total
    x = fit_ipf(np.array([[1.0, 1.0], [0.0, 1.0]]), [10, 5], [15, 0])
    assert np.allclose(x.sum(axis=1), [10, 5])
    assert np.allclose(x, [[10, 0], [0, 5]])
    # an empty profile: rows alone
    assert np.allclose(fit_ipf(np.ones((2, 2)), [4, 2], [0, 0]), [[2, 2], [1, 1]])


def test_ipf_and_ageing_refuse_bad_input_with_a_message():
    with pytest.raises(ValueError, match="one row total per row"):
        fit_ipf(np.ones((2, 2)), [1, 2, 3])
    with pytest.raises(ValueError, match="negative"):
        fit_ipf(np.ones((2, 2)), [1, -2], [1, 1])
    with pytest.raises(ValueError, match="forward"):
        age_counts(np.ones(5), -0.5)


def test_long_base_by_single_year_keeps_its_single_years(tmp_path):
    base = ("reference_date,area_code,sex,age_band,population,source\n"
            "2019-06-30,E01006074,M,7,12,ons-mye-2019\n2019-06-30,E01006074,F,90+,3,ons-mye-2019\n"
            "2019-06-30,E01006075,F,25-29,40,ons-mye-2019\n")
    con = _ingest(tmp_path, {"geography/lookup.csv": LOOKUP, "base_population/base.csv": base})
    assert con.execute("SELECT lsoa_code, sex, age, population FROM base_population_sya ORDER BY age").fetchall() == [
        ("E01006074", "M", 7, 12.0), ("E01006074", "F", 90, 3.0)]  # the 5-year band is not split at ingest
    assert con.execute("SELECT population FROM base_population WHERE age_band = '5-9'").fetchall() == [(12.0,)]
