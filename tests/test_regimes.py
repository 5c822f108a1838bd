"""The regimes simulator (benchmarks/regimes) is what it claims: list inflation at the published
level, cleaning sweeps that remove ghosts, truth that ages by cohort, one stream per random
component, and extracts the pipeline loads without quarantining anything.

Small districts (30 LSOAs, a fifth of the real residents) keep these fast.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from benchmarks.regimes import RegimeSettings, Streams, simulate, write_raw
from benchmarks.regimes import facts as F
from benchmarks.regimes.extracts import movements_frame
from benchmarks.regimes.world import RESIDENT, ages_on, to_day
from pipeline.config import load_settings
from pipeline.ingest import ingest_raw

SMALL = dict(n_lsoas=30, scale=0.2)


@pytest.fixture(scope="module")
def steady():
    return simulate(RegimeSettings(regime="steady", seed=9101, **SMALL))


@pytest.fixture(scope="module")
def growing():
    return simulate(RegimeSettings(regime="growing", seed=9101, **SMALL))


def in_district(world, snap) -> np.ndarray:
    return world.geo.pc_lsoa[snap["postcode"].to_numpy()] >= 0


def ghosts_on(world, day: int) -> pd.DataFrame:
    """List records (in the district) of people who had left before `day`."""
    snap = world.snapshots[day]
    snap = snap[in_district(world, snap)]
    return snap[world.people.left[snap["person"].to_numpy()] < day]


def test_published_list_ratio_quantiles_are_reproduced():
    # README of shared/data/real/census2021_backtest: median 1.055, p90 1.18, p95 1.25, p99 1.44, 5% below 1
    p = np.array([0.05, 0.5, 0.9, 0.95, 0.99])
    assert F.quantile_interp(F.LIST_RATIO_QUANTILES, p) == pytest.approx([1.0, 1.055, 1.18, 1.25, 1.44])
    draws = F.quantile_interp(F.LIST_RATIO_QUANTILES, np.random.default_rng(3).random(40_000))
    assert np.median(draws) == pytest.approx(1.055, abs=0.003)
    assert (draws < 1).mean() == pytest.approx(0.05, abs=0.005)


def test_la_error_distribution_matches_the_england_figures():
    # issue 8: LA mid-2020 estimates vs Census 2021, mean 2.3%, 1st-99th percentile -6.5% to +14.2%
    c, mu, s = (F.LA_ERROR_SHIFTED_LOGNORMAL[k] for k in ("c", "mu", "s"))
    z = np.random.default_rng(5).standard_normal(200_000)
    e = c + np.exp(mu + s * z)
    assert e.mean() == pytest.approx(2.3, abs=0.05)
    assert np.percentile(e, [1, 99]) == pytest.approx([-6.5, 14.2], abs=0.15)


def test_list_starts_at_the_drawn_inflation_and_stays_there_in_the_steady_state(steady):
    w = steady
    truth = w.truth_lsoa.groupby(["reference_date", "lsoa_code"])["population"].sum()
    first, last = w.extract_days[0], w.extract_days[-1]
    lsoa_of_pc = w.geo.postcodes["lsoa_code"].to_numpy()
    realised = {}
    for day in (first, last):
        snap = w.snapshots[day]
        snap = snap[in_district(w, snap)]
        lst = pd.Series(lsoa_of_pc[snap["postcode"].to_numpy()]).value_counts()
        date = str(np.datetime64(day, "D"))
        realised[day] = lst.sum() / truth.loc[date].sum()
        if day == first:
            per = (lst / truth.loc[date]).reindex(w.lsoa_facts["lsoa_code"]).to_numpy()
            drawn = w.lsoa_facts["list_ratio_drawn"].to_numpy()
            assert np.median(np.abs(per - drawn)) < 0.03            # each area at its drawn level
    drawn_total = (w.lsoa_facts["list_ratio_drawn"] * w.lsoa_facts["residents_base"]).sum() / w.lsoa_facts["residents_base"].sum()
    assert realised[first] == pytest.approx(drawn_total, abs=0.015)
    assert abs(realised[last] - realised[first]) < 0.025            # steady: within 2.5 points over two years


def test_cleaning_sweeps_remove_ghosts_in_bursts(steady, growing):
    w = steady
    mv = movements_frame(w)
    cleaning = mv[(mv["event"] == 1) & (mv["reason"] == 3)]
    assert len(cleaning) > 0
    # bursts: each practice's cleaning falls on one day a year (27 months: at most 3), and nearly all
    # it removes are ghosts
    assert cleaning.groupby("practice")["day"].nunique().max() <= 3
    assert cleaning.groupby(["practice", "day"]).size().max() >= 20
    assert (w.people.status[cleaning["person"].to_numpy()] != RESIDENT).mean() > 0.6
    # quarter by quarter, practices that swept lose a larger share of their ghosts than those that did not
    ratios = {True: [], False: []}
    for d0, d1 in zip(w.extract_days[:-1], w.extract_days[1:]):
        g0 = ghosts_on(w, d0).groupby("practice").size()
        g1 = ghosts_on(w, d1).groupby("practice").size().reindex(g0.index, fill_value=0)
        swept = set(cleaning[(cleaning["day"] >= d0) & (cleaning["day"] < d1)]["practice"])
        for prac in g0.index[g0 >= 10]:
            ratios[prac in swept].append(g1[prac] / g0[prac])
    assert np.mean(ratios[True]) < np.mean(ratios[False]) - 0.1
    # growing inflation: no sweeps, and the ghosts on the list accumulate
    gmv = movements_frame(growing)
    assert not ((gmv["event"] == 1) & (gmv["reason"] == 3)).any()
    assert len(ghosts_on(growing, growing.extract_days[-1])) > 1.2 * len(ghosts_on(growing, growing.extract_days[0]))


def test_truth_ages_by_cohort_across_a_band_boundary(steady):
    w = steady
    t = w.truth_lsoa.groupby(["reference_date", "age"])["population"].sum()
    base = str(np.datetime64(w.base_day, "D"))
    later = str(np.datetime64(w.extract_days[3], "D"))    # 2023-07-01, a year and a day after the base
    for a in (4, 9, 19, 84):                              # the last age of a band moves into the next band
        assert 0.8 < t.loc[(later, a + 1)] / t.loc[(base, a)] < 1.2
    # a person born 2018-07-15 is 3 at the base (band 0-4) and 5 two years on (band 5-9)
    dob = np.array([to_day("2018-07-15")])
    assert ages_on(dob, w.base_day)[0] == 3 and ages_on(dob, w.extract_days[-1])[0] == 6


def test_deterministic_per_seed_and_streams_independent():
    tiny = dict(n_lsoas=30, scale=0.1, quarters=4)
    steady = simulate(RegimeSettings(regime="steady", seed=9101, **tiny))
    again = simulate(RegimeSettings(regime="steady", seed=9101, **tiny))
    pd.testing.assert_frame_equal(again.truth_lsoa, steady.truth_lsoa)
    pd.testing.assert_frame_equal(again.published_base, steady.published_base)
    for day in steady.extract_days:
        pd.testing.assert_frame_equal(again.snapshots[day], steady.snapshots[day])
    # re-seeding the base errors changes the published base only
    other = simulate(RegimeSettings(regime="steady", seed=9101, overrides={"base_error": 1}, **tiny))
    pd.testing.assert_frame_equal(other.truth_lsoa, steady.truth_lsoa)
    pd.testing.assert_frame_equal(other.snapshots[steady.extract_days[-1]], steady.snapshots[steady.extract_days[-1]])
    assert not other.published_base["population"].equals(steady.published_base["population"])
    # re-seeding the cleaning changes the list, never the true population
    clean = simulate(RegimeSettings(regime="steady", seed=9101, overrides={"cleaning": 1}, **tiny))
    pd.testing.assert_frame_equal(clean.truth_lsoa, steady.truth_lsoa)
    assert len(clean.snapshots[steady.extract_days[-1]]) != len(steady.snapshots[steady.extract_days[-1]])
    # the streams themselves: one component's seed leaves the others' draws unchanged
    a, b = Streams(5), Streams(5, overrides={"cleaning": 99})
    assert np.array_equal(a["mortality"].random(5), b["mortality"].random(5))
    assert not np.array_equal(a["cleaning"].random(5), b["cleaning"].random(5))


@pytest.fixture(scope="module")
def students_small():
    return simulate(RegimeSettings(regime="students", seed=9102, n_lsoas=30, scale=0.1, quarters=2))


@pytest.mark.parametrize("mode", ["movements", "counts"])
def test_extracts_pass_ingest_with_an_empty_quarantine(tmp_path, mode, students_small):
    world = students_small
    write_raw(world, tmp_path / "data", mode)
    settings = load_settings(data_dir=tmp_path / "data")
    con = duckdb.connect()
    result = ingest_raw(con, settings)
    assert result.quarantine == {}
    assert all(f.rows_read == f.rows_loaded and f.rows_read > 0 for f in result.files)
    table = "gp_register" if mode == "movements" else "gp_counts"
    n = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    assert n > 0
    assert con.execute("SELECT count(DISTINCT lsoa_code) FROM base_population").fetchone()[0] == len(world.geo.lsoas)
    # the school census is written in every mode and loads in full (placed by home postcode)
    pupils = con.execute("SELECT count(*), count(lsoa_code) FROM school_census").fetchone()
    assert pupils[0] > 0 and pupils[0] == pupils[1]


# ------------------------------------------------------------------------------ school census

def _frame_hash(df: pd.DataFrame) -> str:
    import hashlib

    return hashlib.sha256(pd.util.hash_pandas_object(df, index=False).values.tobytes()).hexdigest()[:16]


def test_school_census_leaves_registers_base_and_truth_byte_identical():
    # The values were computed with the simulator before it wrote a school census (main at a55d43b,
    # same seed and settings): adding the "schools" stream and the census changed no other draw.
    # lsoa_facts holds floats computed from the draws (exp, log): their last bits follow the numpy build, so it is
    # hashed rounded to 12 decimals (that value recomputed with a55d43b's simulator, numpy 2.4.6, 2026-12-01).
    from benchmarks.regimes.extracts import movements_frame as mf

    pinned = {"steady": ("f7fbb7e3c62509e7", "01459dce6c10c67f", "9a7150be17cc5dc5", "0183617884c99a0a",
                         "b05bae9468ba33dd", "7cd4dff3641fec4a")}
    for regime, want in pinned.items():
        w = simulate(RegimeSettings(regime=regime, seed=9101, n_lsoas=30, scale=0.1, quarters=4))
        snaps = pd.concat([s.assign(day=d) for d, s in sorted(w.snapshots.items())], ignore_index=True)
        got = tuple(_frame_hash(x) for x in (w.truth_lsoa, w.truth_ward, w.published_base, snaps, mf(w), w.lsoa_facts.round(12)))
        assert got == want
        assert len(w.school_rolls.records) > 0
    # the existing components' generators are the first children of the same SeedSequence
    children = np.random.SeedSequence(9101).spawn(16)
    st = Streams(9101)
    for i, name in enumerate(("population", "practice", "inflation", "unregistered", "ghosts", "mortality", "fertility",
                              "migration", "registration", "ghost_fate", "cleaning", "outside", "students", "base_error",
                              "ids", "untidy")):
        assert np.array_equal(st[name].random(3), np.random.Generator(np.random.PCG64(children[i])).random(3))


def test_census_days_and_school_years_by_hand():
    import datetime as dt

    from benchmarks.regimes.schools import academic_year_of, census_days, school_start_year
    from benchmarks.regimes.world import EPOCH

    # 2022-10-06, 2023-01-19 and 2023-05-18 were Thursdays (first of October, third of January and May)
    assert census_days(dt.date(2022, 7, 1), dt.date(2023, 6, 30)) == [dt.date(2022, 10, 6), dt.date(2023, 1, 19),
                                                                       dt.date(2023, 5, 18)]
    # born 31 Aug 2018: Reception in September 2022; born 1 Sep 2018: a year later
    dob = np.array([to_day("2018-08-31"), to_day("2018-09-01"), to_day("2012-01-15")])
    assert school_start_year(dob, EPOCH).tolist() == [2022, 2023, 2016]
    assert academic_year_of(dt.date(2023, 1, 19)) == 2022 and academic_year_of(dt.date(2023, 10, 5)) == 2023
    # so at the January 2023 census: R, not yet at school, and Year 6 (2022 - 2016)
    assert (academic_year_of(dt.date(2023, 1, 19)) - school_start_year(dob, EPOCH)).tolist() == [0, -1, 6]


@pytest.fixture(scope="module")
def growing_census():
    return simulate(RegimeSettings(regime="growing", seed=9103, n_lsoas=30, scale=0.2))


def test_school_census_counts_true_resident_children_not_the_list(growing_census):
    from benchmarks.regimes.schools import academic_year_of, school_start_year
    from benchmarks.regimes.world import EPOCH

    w = growing_census
    p = w.people
    recs = w.school_rolls.records
    assert len(recs) == 7        # Oct 2022 ... Oct 2024: three a year
    for rec in recs:
        day = int(rec["census_day"].iloc[0])
        date = (EPOCH + np.timedelta64(day, "D")).astype(object)
        person = rec["person"].to_numpy()
        # pupils are residents of the district of years R-11 (status now may have moved on: check year only)
        assert ((academic_year_of(date) - school_start_year(p.dob[person], EPOCH)) == rec["nc_year"].to_numpy()).all()
        assert rec["nc_year"].between(0, 11).all() and person.size == np.unique(person).size
        assert (w.geo.pc_lsoa[rec["postcode"].to_numpy()] >= 0).all()
        # no one who had left the district (a ghost on the list, say) is a pupil: the census is
        # counted at the month boundary nearest its day (at most 17 days away)
        assert (p.left[person] > day - 18).all()
    # about 87.5% of resident children are on the census (6.5% independent, 1% home-educated, 5% elsewhere)
    first = recs[0]
    t = w.truth_lsoa[w.truth_lsoa["reference_date"] == str(np.datetime64(w.extract_days[0], "D"))]
    kids = t[(t["age"] >= 5) & (t["age"] <= 15)]["population"].sum()
    on = ((first["nc_year"] >= 1) & (first["nc_year"] <= 10)).sum()   # about 10/11 of ages 5-15
    assert 0.80 < on / (kids * 10 / 11) < 0.95
    # pupils keep their UPN from one census to the next, and most are on both
    ids0, ids1 = set(recs[0]["person"]), set(recs[1]["person"])
    assert len(ids0 & ids1) > 0.9 * len(ids0)
    # the list's children grow against the census's where ghosts accumulate (no sweeps)
    lsoa_pc = w.geo.pc_lsoa

    def listed_kids(day):
        s = w.snapshots[day]
        s = s[lsoa_pc[s["postcode"].to_numpy()] >= 0]
        age = ages_on(s["dob"].to_numpy(), day)
        return ((age >= 5) & (age <= 15)).sum()

    r0 = listed_kids(w.extract_days[0]) / len(recs[0])
    r8 = listed_kids(w.extract_days[-1]) / len(recs[-1])
    assert r8 > r0
