"""COHDMAP population estimates on tiny hand-built districts.

Every expected number is worked by hand in the comment beside it; none is copied from the
code's output. The model's calibrated parameters are pinned with `margin_overrides` where a test
depends on them, so re-calibrating margin_model.json never changes these tests.
"""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import numpy as np
import pandas as pd
import pytest

from pipeline.vocabulary import load_vocabulary
from pipeline.config import EstimateSettings
from pipeline.estimates import estimate_populations
from pipeline.estimates.cohort_model import choose_inflation_strength
from pipeline.estimates.constrain import constrain_to_total
from pipeline.estimates.ethnicity import shrink_shares
from pipeline.estimates.inflation import estimate_inflation, shrink_inflation
from pipeline.estimates.margins import combine_variances, interval_bounds, predict_variance
from pipeline.estimates.turbulence import score_turbulence

T0 = dt.date(2022, 6, 30)
T1 = dt.date(2022, 9, 30)
T2 = dt.date(2022, 12, 31)
LA = "E08000009"
W1, W2 = "E05000001", "E05000002"
M1, M2 = "E02000001", "E02000002"
A, B, C = "E01000001", "E01000002", "E01000003"

# Parameters pinned for the tests: a margin model simple enough to work by hand
# (shared relative SD a = 10%, Poisson term psi = 1, nothing else).
PINNED = {"a": 0.1, "b": 0.0, "c": 0.0, "d": 0.0, "e": 0.0,
          "f": 0.0, "q": 0.0, "j": 0.0, "g": 0.0, "h": 0.0, "psi": 1.0, "kappa": 1.0, "kappa_t": 0.0, "kappa_y": 0.0, "kappa_n": 0.0, "rho": 0.5, "omega": 0.0, "l0": 0.0, "l1": 0.0, "eta": 0.0,
          "base_a": 0.02, "base_f": 0.025,
          "w_school": 1.0, "w_asylum": 1.0,
          # no LA-wide error by age (margin_model.json's modes.*.parameters may set it)
          **{f"m{i}_{g}": 0.0 for g in ("0_4", "5_14", "15_24", "25_44", "45_64", "65_84", "85") for i in (0, 1)}}
Z95 = 1.959963984540054


def checked_model_path() -> str:
    """The committed margin model with every run mode marked as checked.

    These districts have patient registers without movement records (register_snapshots mode),
    whose margins the back-test has not checked, so the pipeline publishes no intervals for them;
    the margin arithmetic tests below need intervals, so they run with this copy of the model.
    (test_unchecked_mode_publishes_no_interval checks the real behaviour.)"""
    import json
    import tempfile
    from pathlib import Path

    from pipeline.estimates.margins import MODEL_PATH

    doc = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    for mode in ("register_movements", "register_snapshots", "counts_only"):
        doc.setdefault("modes", {}).setdefault(mode, {})["checked_on"] = "unit tests: margin arithmetic only"
    path = Path(tempfile.mkdtemp(prefix="margin-model-")) / "margin_model.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


CHECKED_MODEL = checked_model_path()


def settings(**kw) -> EstimateSettings:
    overrides = dict(PINNED)
    overrides.update(kw.pop("overrides", {}))
    kw.setdefault("margin_model_path", CHECKED_MODEL)
    return EstimateSettings(margin_overrides=overrides, **kw)


# ------------------------------------------------------------------------------ builders

def lookup_rows() -> list[dict]:
    """Ward W1 = LSOAs A and B (MSOA M1); ward W2 = LSOA C (MSOA M2); one LA."""
    return [
        dict(lsoa_code=A, msoa_code=M1, ward_code=W1, la_code=LA, ward_share=1.0),
        dict(lsoa_code=B, msoa_code=M1, ward_code=W1, la_code=LA, ward_share=1.0),
        dict(lsoa_code=C, msoa_code=M2, ward_code=W2, la_code=LA, ward_share=1.0),
    ]


class District:
    """Collects register rows and other tables, then loads them into a DuckDB connection."""

    def __init__(self) -> None:
        self.register: list[dict] = []
        self.base: list[dict] = []
        self.lookup = lookup_rows()
        self.tables: dict[str, list[dict]] = {}
        self._n = 0

    def patients(self, n: int, lsoa: str, sex: str, dob: dt.date, dates, practice: str = "P00001",
                 ethnic: str = "", from_abroad: bool = False, prefix: str | None = None) -> list[str]:
        ids = []
        for _ in range(n):
            self._n += 1
            pid = f"{prefix or 'x'}{self._n}"
            ids.append(pid)
            for d in dates:
                self.register.append(dict(
                    extract_date=d, patient_id=pid, practice_code=practice, postcode="M16 0AA", sex=sex,
                    date_of_birth=dob, registration_date=dt.date(2010, 1, 1), from_abroad=from_abroad,
                    ethnic_category=ethnic, lsoa_code=lsoa,
                    msoa_code=next(r["msoa_code"] for r in self.lookup if r["lsoa_code"] == lsoa),
                    ward_code=next(r["ward_code"] for r in self.lookup if r["lsoa_code"] == lsoa), la_code=LA))
        return ids

    def base_cell(self, lsoa: str, sex: str, band: str, population: float, date: dt.date = T0,
                  source: str = "ons-mye-2022") -> None:
        self.base.append(dict(reference_date=date, lsoa_code=lsoa, sex=sex, age_band=band,
                              population=population, source=source))

    def load(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        load_vocabulary(con)  # published by ingest in a real run
        frames = {"gp_register": self.register, "base_population": self.base, "lsoa_lookup": self.lookup,
                  **self.tables}
        for name, rows in frames.items():
            if not rows:
                continue
            df = pd.DataFrame(rows)
            con.register("_frame", df)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM _frame")
            con.unregister("_frame")
        con.execute("CREATE TABLE area_names AS SELECT * FROM (VALUES "
                    f"('{LA}', 'Trafford', 'la'), ('{W1}', 'Old Trafford', 'ward'), ('{W2}', 'Longford', 'ward'), "
                    f"('{A}', 'Trafford 001A', 'lsoa')) AS t(area_code, area_name, area_type)")
        return con


def row(con, area: str, date: dt.date, sex: str = "All", band: str = "All", table: str = "population_estimates",
        method: str | None = None) -> dict:
    sql = f"SELECT * FROM {table} WHERE area_code = ? AND reference_date = ? AND sex = ? AND age_band = ?"
    params = [area, date, sex, band]
    if method:
        sql += " AND method = ?"
        params.append(method)
    df = con.execute(sql, params).df()
    assert len(df) == 1, f"expected one row for {area} {date} {sex} {band}, got {len(df)}"
    return df.iloc[0].to_dict()


DOB_22 = dt.date(2000, 1, 1)   # aged 22 at every extract date here: band 20-24
DOB_2 = dt.date(2020, 1, 1)    # aged 2: band 0-4


def three_lsoa_district() -> District:
    """Men aged 20-24 only.  A: base 10, list 14 -> 20 -> 20.  B: base 30, list 33 throughout.
    C: base 60, list 63 -> 56 -> 56."""
    d = District()
    d.patients(14, A, "M", DOB_22, [T0, T1, T2])
    d.patients(6, A, "M", DOB_22, [T1, T2])
    d.patients(33, B, "M", DOB_22, [T0, T1, T2], practice="P00002")
    d.patients(56, C, "M", DOB_22, [T0, T1, T2], practice="P00003")
    d.patients(7, C, "M", DOB_22, [T0], practice="P00003")
    d.base_cell(A, "M", "20-24", 10)
    d.base_cell(B, "M", "20-24", 30)
    d.base_cell(C, "M", "20-24", 60)
    return d


# ------------------------------------------------------------------------ pure functions

def test_shrink_inflation_by_hand():
    # (L + k prior) / (P + k): (14 + 10 x 1.16) / (10 + 10) = 25.6 / 20 = 1.28
    assert shrink_inflation([14], [10], [1.16], 10.0)[0] == pytest.approx(1.28)
    # k = 0 gives the raw ratio 14 / 10 = 1.4
    assert shrink_inflation([14], [10], [1.16], 0.0)[0] == pytest.approx(1.4)
    # no residents and k = 0: the prior itself
    assert shrink_inflation([3], [0], [1.1], 0.0)[0] == pytest.approx(1.1)
    # a big cell keeps its own ratio: (1100 + 50 x 1.5) / (1000 + 50) = 1175 / 1050 = 1.119048
    assert shrink_inflation([1100], [1000], [1.5], 50.0)[0] == pytest.approx(1175 / 1050)


def test_inflation_shrinks_through_ward_and_la_by_hand():
    cells = pd.DataFrame({"lsoa_code": [A, B, C], "sex": "M", "age_band": "20-24",
                          "registered": [14.0, 33.0, 63.0], "resident": [10.0, 30.0, 60.0]})
    geo = pd.DataFrame(lookup_rows())
    out = estimate_inflation(cells, geo, strength=10.0).set_index("lsoa_code")
    # LA ratio: (14 + 33 + 63) / (10 + 30 + 60) = 110 / 100 = 1.10
    # ward W1: (14 + 33 + 10 x 1.10) / (10 + 30 + 10) = 58 / 50 = 1.16
    # ward W2: (63 + 11) / (60 + 10) = 74 / 70 = 1.0571429
    # A: (14 + 10 x 1.16) / 20 = 1.28;  B: (33 + 11.6) / 40 = 1.115
    # C: (63 + 10 x 74/70) / 70 = (63 + 10.5714286) / 70 = 1.0510204
    assert out.loc[A, "inflation_prior"] == pytest.approx(1.16)
    assert out.loc[C, "inflation_prior"] == pytest.approx(74 / 70)
    assert out.loc[A, "inflation"] == pytest.approx(1.28)
    assert out.loc[B, "inflation"] == pytest.approx(1.115)
    assert out.loc[C, "inflation"] == pytest.approx(73.5714286 / 70)
    assert out.loc[A, "inflation_raw"] == pytest.approx(1.4)


def test_inflation_prior_for_lsoa_spanning_two_wards():
    # LSOA B split 40/60 between W1 and W2: its prior is 0.4 x I_W1 + 0.6 x I_W2.
    geo = pd.DataFrame(lookup_rows()[:1] + [
        dict(lsoa_code=B, msoa_code=M1, ward_code=W1, la_code=LA, ward_share=0.4),
        dict(lsoa_code=B, msoa_code=M1, ward_code=W2, la_code=LA, ward_share=0.6),
        lookup_rows()[2]])
    cells = pd.DataFrame({"lsoa_code": [A, B, C], "sex": "F", "age_band": "30-34",
                          "registered": [12.0, 50.0, 22.0], "resident": [10.0, 40.0, 20.0]})
    out = estimate_inflation(cells, geo, strength=0.0).set_index("lsoa_code")
    # k = 0: W1 = (12 + 0.4 x 50) / (10 + 0.4 x 40) = 32 / 26;  W2 = (0.6 x 50 + 22) / (0.6 x 40 + 20) = 52 / 44
    # prior(B) = 0.4 x 32/26 + 0.6 x 52/44 = 0.4923077 + 0.7090909 = 1.2013986
    assert out.loc[B, "inflation_prior"] == pytest.approx(0.4 * 32 / 26 + 0.6 * 52 / 44)
    assert out.loc[B, "inflation"] == pytest.approx(1.25)  # k = 0: its own 50 / 40


def test_turbulence_score_function_by_hand():
    # 18 GP moves in 1,000 resident-years, 4 pupil moves in 16 pupil-years, 5 asylum placements:
    # pooled 1000 x (18 + 4) / (1000 + 16) = 21.653543; asylum 1000 x 5 / 1000 = 5; T = 26.653543
    assert score_turbulence([18], [1000], [4], [16], [5])[0] == pytest.approx(26.653543)
    # no pupils: the GP rate alone, 18 + 5 = 23
    assert score_turbulence([18], [1000], [0], [0], [5])[0] == pytest.approx(23.0)
    # school weighted double: 1000 x (18 + 8) / (1000 + 32) + 5 = 25.193798 + 5 = 30.193798
    assert score_turbulence([18], [1000], [4], [16], [5], w_school=2.0)[0] == pytest.approx(30.193798)
    # no exposure at all: 0
    assert score_turbulence([0], [0], [0], [0], [0])[0] == 0.0


def test_margin_formulas_by_hand():
    p = dict(PINNED)
    # var = E^2 a^2 + psi E = 100^2 x 0.01 + 100 = 200; sd 14.1421; 95%: 100 -/+ 27.7181
    v = predict_variance(p, [100.0], [1.0], [0.1], [100.0 ** 2])
    assert v[0] == pytest.approx(200.0)
    lo, hi = interval_bounds([100.0], v, 0.95)
    assert lo[0] == pytest.approx(100 - Z95 * math.sqrt(200))
    assert hi[0] == pytest.approx(100 + Z95 * math.sqrt(200))
    # time and turbulence terms: a=0, c=0.01, b=0.02, e=0.1, d=0.05, y=2, tau=0.5:
    # s^2 = 0.01 x 2 + 0.02 x 0.5 + (0.1 x 0.5)^2 + (0.05 x 2)^2 = 0.02 + 0.01 + 0.0025 + 0.01 = 0.0425
    # plus g^2 sum E_c^2 with g = 0.2 and cells 30, 40: 0.04 x 2500 = 100; psi = 0, kappa = 2:
    # var = 4 x (70^2 x 0.0425 + 100) = 4 x (208.25 + 100) = 1233
    q = dict(p, a=0.0, c=0.01, b=0.02, e=0.1, d=0.05, g=0.2, psi=0.0, kappa=2.0)
    assert predict_variance(q, [70.0], [2.0], [0.5], [30 ** 2 + 40 ** 2])[0] == pytest.approx(1233.0)
    # K = kappa (1 + kappa_t x)(1 + kappa_y y): kappa 1, kappa_t 2, x = 0.25, kappa_y 0.5, y = 2:
    # K = 1.5 x 2 = 3 -> var = 9 x (208.25 + 100) = 2774.25
    k = dict(q, kappa=1.0, kappa_t=2.0, kappa_y=0.5)
    assert predict_variance(k, [70.0], [2.0], [0.5], [30 ** 2 + 40 ** 2], turbulence=[250.0])[0] == \
        pytest.approx(2774.25)
    # base-error term that grows with the turbulence rate: f x T/1000 with T = 200, f = 0.05 -> 0.01
    # var = 100^2 x 0.01 = 100 (psi = 0)
    r = dict(p, a=0.0, f=0.05, psi=0.0)
    assert predict_variance(r, [100.0], [0.0], [0.0], [0.0], turbulence=[200.0])[0] == pytest.approx(100.0)
    # a small-count cell estimated at 0 still gets psi x 1
    assert predict_variance(p, [0.0], [0.0], [0.0], [0.0])[0] == pytest.approx(1.0)


def test_combine_variances_by_hand():
    # v = 4, 9; w = 1, 0.5; rho = 0.5:
    # 0.5 x (4 + 0.25 x 9) + 0.5 x (2 + 0.5 x 3)^2 = 0.5 x 6.25 + 0.5 x 12.25 = 9.25
    assert combine_variances([4, 9], [1, 0.5], 0.5) == pytest.approx(9.25)
    # independent: 4 + 9 = 13; fully correlated: (2 + 3)^2 = 25
    assert combine_variances([4, 9], [1, 1], 0.0) == pytest.approx(13.0)
    assert combine_variances([4, 9], [1, 1], 1.0) == pytest.approx(25.0)


def test_constrain_to_total_by_hand():
    # 60 + 40 = 100 scaled to 110: 66 and 44
    assert constrain_to_total([60, 40], 110).tolist() == pytest.approx([66.0, 44.0])
    assert constrain_to_total([0, 0], 10).tolist() == [0.0, 0.0]


def test_shrink_shares_by_hand():
    # counts White 6, Asian 2 of 8 stated; prior 0.5/0.5 over (White, Asian); alpha 2:
    # White (6 + 1) / 10 = 0.7, Asian (2 + 1) / 10 = 0.3
    out = shrink_shares([[6, 2]], [[0.5, 0.5]], 2.0)
    assert out[0].tolist() == pytest.approx([0.7, 0.3])


def test_cell_inflation_own_by_hand():
    # issue 9 (rc9): "auto" takes each cell's own list / base where the register gives the list (k = 0)
    # and the configured pseudo-count where the list is modelled (counts-only)
    assert choose_inflation_strength("auto", 50.0, list_ages_observed=True) == 0.0
    assert choose_inflation_strength("auto", 50.0, list_ages_observed=False) == 50.0
    assert choose_inflation_strength("own", 50.0, list_ages_observed=False) == 0.0
    assert choose_inflation_strength("shrunk", 50.0, list_ages_observed=True) == 50.0
    with pytest.raises(ValueError, match="cell_inflation"):
        choose_inflation_strength("estimated", 50.0, True)
    # k = 0: 14 / 10 = 1.4 is the cell's own; a cell of 5 residents and nobody listed, or of nobody,
    # says nothing about ghosts and takes its prior (1.2), not MIN_INFLATION
    out = shrink_inflation([14, 0, 3], [10, 5, 0], [1.2, 1.2, 1.2], 0.0)
    assert out.tolist() == pytest.approx([1.4, 1.2, 1.2])
    # k = 10 still shrinks the empty-list cell: (0 + 10 x 1.2) / (5 + 10) = 0.8
    assert shrink_inflation([0], [5], [1.2], 10.0).tolist() == pytest.approx([0.8])


def test_cell_inflation_own_is_ratio_change_within_a_cell():
    # register mode, default cell_inflation = "auto": each cell's inflation is its own list / base, so the
    # cell's base moves by its own list ratio. A: 10 + (20 - 14) / (14 / 10) = 10 x 20 / 14 = 14.285714;
    # B: 30 (list unchanged); C: 60 + (56 - 63) / (63 / 60) = 60 x 56 / 63 = 53.333333 (no other cell's
    # inflation enters, as it does with a pseudo-count: 14.6875 and 53.339806 at k = 10, above)
    con = three_lsoa_district().load()
    estimate_populations(con, settings())
    assert row(con, A, T1, "M")["estimate"] == pytest.approx(10 * 20 / 14)
    assert row(con, B, T2, "M")["estimate"] == pytest.approx(30.0)
    assert row(con, C, T2, "M")["estimate"] == pytest.approx(60 * 56 / 63)
    # ratio change beside it gives the same here (one band, one sex)
    assert row(con, A, T1, "M", table="population_estimates_methods", method="ratio_change")["estimate"] == \
        pytest.approx(10 * 20 / 14)


# ------------------------------------------------------------------------- through the SQL

def test_cohdmap_roll_forward_end_to_end():
    con = three_lsoa_district().load()
    estimate_populations(con, settings(shrinkage_strength=10.0, cell_inflation="shrunk"))
    # inflation as worked above: A 1.28, B 1.115, C 1.0510204 (men 20-24)
    # A: 10 + (20 - 14) / 1.28 = 14.6875;  B: 30 + 0 = 30;  C: 60 + (56 - 63) / 1.0510204 = 53.339806
    assert row(con, A, T1, "M")["estimate"] == pytest.approx(14.6875)
    assert row(con, B, T2, "M")["estimate"] == pytest.approx(30.0)
    assert row(con, C, T2, "M")["estimate"] == pytest.approx(60 - 7 / (73.5714286 / 70))
    # by cohort: A's base of 10 is 2 at each age 20 ... 24; by T1 (92 days = 0.251882 years) a share
    # 0.251882 of the 2 aged 24 are 25: 0.503765 in 25-29, the rest (and the list change) in 20-24
    f = 92 / 365.25
    assert row(con, A, T1, "M", "25-29")["estimate"] == pytest.approx(2 * f)
    assert row(con, A, T1, "M", "20-24")["estimate"] == pytest.approx(10 - 2 * f + 6 / 1.28)
    # the first extract is the base
    assert row(con, A, T0)["estimate"] == pytest.approx(10.0)
    # other cells are empty: A's total is its one cell
    assert row(con, A, T1)["estimate"] == pytest.approx(14.6875)
    assert row(con, A, T1, "M")["estimate"] == pytest.approx(14.6875)
    assert row(con, A, T1, "F")["estimate"] == pytest.approx(0.0)
    assert row(con, A, T1)["gp_list"] == pytest.approx(20)
    assert row(con, A, T1)["base_population"] == pytest.approx(10)
    assert row(con, A, T1)["method"] == "cohdmap:register_snapshots"  # the run mode is part of the tag
    assert row(con, A, T1)["area_name"] == "Trafford 001A"
    # methods table: ratio change 10 x 20 / 14 = 14.285714; raw list 20; base carried 10
    m = "population_estimates_methods"
    assert row(con, A, T1, table=m, method="ratio_change")["estimate"] == pytest.approx(200 / 14)
    assert row(con, A, T1, table=m, method="raw_list")["estimate"] == pytest.approx(20.0)
    assert row(con, A, T1, table=m, method="base_carried_forward")["estimate"] == pytest.approx(10.0)
    assert row(con, A, T1, table=m, method="cohdmap")["estimate"] == pytest.approx(14.6875)
    # C by ratio change: 60 x 56 / 63 = 53.333333
    assert row(con, C, T1, table=m, method="ratio_change")["estimate"] == pytest.approx(60 * 56 / 63)


def test_sums_up_the_geography_with_partially_correlated_margins():
    con = three_lsoa_district().load()
    estimate_populations(con, settings(shrinkage_strength=10.0, cell_inflation="shrunk"))
    a, b, c = 14.6875, 30.0, 60 - 7 / (73.5714286 / 70)
    # ward W1 = A + B = 44.6875; MSOA M1 the same; W2 = C; LA = A + B + C = 98.0273
    assert row(con, W1, T1)["estimate"] == pytest.approx(a + b)
    assert row(con, M1, T1)["estimate"] == pytest.approx(a + b)
    assert row(con, W2, T1)["estimate"] == pytest.approx(c)
    assert row(con, LA, T1)["estimate"] == pytest.approx(a + b + c)
    assert row(con, LA, T1)["gp_list"] == pytest.approx(20 + 33 + 56)
    assert row(con, LA, T1)["base_population"] == pytest.approx(100)
    # LSOA variance (pinned model): E^2 x 0.1^2 + E.  A: 14.6875^2 x 0.01 + 14.6875 = 2.157227 + 14.6875
    va, vb = a * a * 0.01 + a, b * b * 0.01 + b
    lo = row(con, A, T1)
    assert lo["upper_95"] == pytest.approx(a + Z95 * math.sqrt(va))
    assert lo["lower_95"] == pytest.approx(a - Z95 * math.sqrt(va))
    # W1 with rho = 0.5: 0.5 (va + vb) + 0.5 (sqrt va + sqrt vb)^2
    vw = 0.5 * (va + vb) + 0.5 * (math.sqrt(va) + math.sqrt(vb)) ** 2
    w = row(con, W1, T1)
    assert w["upper_95"] - w["estimate"] == pytest.approx(Z95 * math.sqrt(vw))
    # narrower than adding the margins (full correlation), wider than independence
    assert math.sqrt(va + vb) < math.sqrt(vw) < math.sqrt(va) + math.sqrt(vb)


def test_ward_split_by_ward_share():
    d = three_lsoa_district()
    d.lookup = [lookup_rows()[0],
                dict(lsoa_code=B, msoa_code=M1, ward_code=W1, la_code=LA, ward_share=0.25),
                dict(lsoa_code=B, msoa_code=M1, ward_code=W2, la_code=LA, ward_share=0.75),
                lookup_rows()[2]]
    con = d.load()
    estimate_populations(con, settings(shrinkage_strength=0.0))
    # k = 0: each cell's own ratio, so the LSOA totals are exact ratio change.
    # A: 10 x 20 / 14 = 14.285714;  B: 30;  C: 60 x 56 / 63 = 53.333333
    # W1 = A + 0.25 B = 14.285714 + 7.5 = 21.785714;  W2 = 0.75 B + C = 22.5 + 53.333333 = 75.833333
    assert row(con, W1, T1)["estimate"] == pytest.approx(200 / 14 + 7.5)
    assert row(con, W2, T1)["estimate"] == pytest.approx(22.5 + 60 * 56 / 63)
    # the LA counts B once: 14.285714 + 30 + 53.333333
    assert row(con, LA, T1)["estimate"] == pytest.approx(200 / 14 + 30 + 60 * 56 / 63)


def test_births_and_deaths_corrections():
    d = District()
    # LSOA A: 5 boys aged 2 (base 5), 40 men aged 22 (base 40), same list all three dates.
    d.patients(5, A, "M", DOB_2, [T0, T1, T2])
    d.patients(40, A, "M", DOB_22, [T0, T1, T2])
    d.base_cell(A, "M", "0-4", 5)
    d.base_cell(A, "M", "20-24", 40)
    d.tables["vital_events"] = [
        # 6 boys born in September 2022 (30 days), in A
        dict(period_start=dt.date(2022, 9, 1), period_end=dt.date(2022, 9, 30), area_code=A, area_type="lsoa",
             sex="M", age_band=None, births=6, deaths=0),
        # 2 men aged 20-24 died 21-30 December 2022, reported for ward W1 (A and B; B has no list)
        dict(period_start=dt.date(2022, 12, 21), period_end=dt.date(2022, 12, 30), area_code=W1, area_type="ward",
             sex="M", age_band="20-24", births=0, deaths=2),
    ]
    con = d.load()
    estimate_populations(con, settings(birth_registration_lag_days=60, death_removal_lag_days=30,
                                       shrinkage_strength=0.0))
    # Births: at T1 (30 Sep) the window (1 Aug, 30 Sep] holds all 6 births, not yet on the list, so
    # they are added at age 0 (inflation of boys 0-4: 5 / 5 = 1): the boys total 5 + 6 = 11, the men
    # 40 unchanged -> M at T1 = 51. (By cohort the base's 1 boy a year of age 0 ... 4 ages a quarter,
    # so a share 92 / 365.25 of the one aged 4 is 5-9 by T1: 0-4 = 11 - 0.251882.)
    f = 92 / 365.25
    assert row(con, A, T1, "M")["estimate"] == pytest.approx(51.0)
    assert row(con, A, T1, "M", "0-4")["estimate"] == pytest.approx(11.0 - f)
    # At T2 (31 Dec) the window (2 Nov, 31 Dec] holds no births: they are on the list by now (or
    # not: this list never took them, so the estimate falls back to 5 - a list that misses babies).
    # Deaths are in the list change once: the 2 deaths of December, whether or not the register has
    # removed them yet, are not subtracted again (the list here still holds 40 men: estimate 40)
    assert row(con, A, T2, "M")["estimate"] == pytest.approx(45.0)
    assert row(con, A, T2, "M", "20-24")["estimate"] + row(con, A, T2, "M", "25-29")["estimate"] == \
        pytest.approx(40.0)
    # a 20-day birth window would take 20 of the 30 September days at T1: 6 x 20/30 = 4 -> 5 + 4 + 40
    con2 = d.load()
    estimate_populations(con2, settings(birth_registration_lag_days=20, shrinkage_strength=0.0))
    assert row(con2, A, T1, "M")["estimate"] == pytest.approx(49.0)


def test_cleaning_burst_in_a_steady_state_list_only_removes_the_ghosts_it_counted():
    """A list in steady state: 10 resident women aged 22 and 2 ghosts at T0 (inflation 12 / 10 = 1.2).
    Each quarter 2 residents leave without deregistering (they stay on the list as ghosts) and 2
    newcomers register, so the true population stays 10. At T2 the practice cleans the 4 ghosts
    made since T0 (movement records, reason list_cleaning)."""
    d = District()
    t3 = dt.date(2023, 3, 31)
    d.patients(6, A, "F", DOB_22, [T0, T1, T2, t3])                   # residents throughout
    d.patients(2, A, "F", DOB_22, [T0, T1, T2, t3], prefix="old")     # ghosts from before T0, never cleaned
    leave1 = d.patients(2, A, "F", DOB_22, [T0, T1], prefix="g1")     # leave silently in period 1
    leave2 = d.patients(2, A, "F", DOB_22, [T0, T1], prefix="g2")     # leave silently in period 2
    new1 = d.patients(2, A, "F", DOB_22, [T1, T2, t3], prefix="n1")   # register in period 1
    new2 = d.patients(2, A, "F", DOB_22, [T2, t3], prefix="n2")       # register in period 2
    d.base_cell(A, "F", "20-24", 10)
    # lists: T0 6 + 2 + 2 + 2 = 12; T1 12 + 2 = 14 (the leavers are still on it); T2 14 + 2 - 4 = 12
    # (the 4 ghosts cleaned); T3 12 (steady)
    mv = [dict(patient_id=g, practice_code="P00001", postcode="M16 0AA", event_date=dt.date(2022, 11, 15),
               event="deregistration", reason="list_cleaning", lsoa_code=A) for g in leave1 + leave2]
    mv += [dict(patient_id=n, practice_code="P00001", postcode="M16 0AA", event_date=day,
                event="registration", reason="transfer_in", lsoa_code=A)
           for ids, day in ((new1, dt.date(2022, 8, 1)), (new2, dt.date(2022, 11, 1))) for n in ids]
    d.tables["gp_movements"] = mv
    con = d.load()
    estimate_populations(con, settings(shrinkage_strength=0.0))
    assert con.execute("SELECT sum(cleaning) FROM est_gp_flows").fetchall()[0][0] == pytest.approx(4.0)
    # T1: the 2 silent leavers are not yet visible: 10 + (14 - 12) / 1.2 = 11.666667 (the ghosts' error)
    assert row(con, A, T1, "F")["estimate"] == pytest.approx(10 + 2 / 1.2)
    # T2: the burst removes exactly the ghosts the estimate had counted as residents: back to the
    # truth, 10 + (12 - 12) / 1.2 = 10, and steady after it. Adding the 4 cleaned back (as if they
    # had left now) would give 10 + 4 / 1.2 = 13.333333: ghosts who never were taken off.
    assert row(con, A, T2, "F")["estimate"] == pytest.approx(10.0)
    assert row(con, A, t3, "F")["estimate"] == pytest.approx(10.0)
    assert row(con, A, T2, table="population_estimates_methods", method="ratio_change")["estimate"] == \
        pytest.approx(10.0)


def test_deaths_in_snapshot_mode_are_counted_once():
    """Register snapshots only (no movement records): 40 men aged 80, base 40. Two die in September
    2022 (vital events, inside the 30-day death lag before T1) and the register has already dropped
    them at T1. The list change says 38; the death lag must not take them off again (36)."""
    d = District()
    d.patients(38, A, "M", dt.date(1942, 1, 1), [T0, T1])
    d.patients(2, A, "M", dt.date(1942, 1, 1), [T0], prefix="died")
    d.base_cell(A, "M", "80-84", 40)
    d.tables["vital_events"] = [
        dict(period_start=dt.date(2022, 9, 10), period_end=dt.date(2022, 9, 20), area_code=A, area_type="lsoa",
             sex="M", age_band="80-84", births=0, deaths=2)]
    con = d.load()
    report = estimate_populations(con, settings(death_removal_lag_days=30, shrinkage_strength=0.0))
    assert report["mode"] == "register_snapshots"
    # 40 + (38 - 40) / 1 = 38 (the men 80-84 and those aged into 85+ together)
    assert row(con, A, T1, "M")["estimate"] == pytest.approx(38.0)


def test_list_cleaning_at_an_extract_is_not_revised_by_later_extracts():
    """Snapshot mode judges a practice's leaving rate against its usual rate up to that extract only.
    Hand-worked: lists T0 96, T1 94, T2 64, T3 62; leaving rates 2/96, 30/94 = 0.319, 2/64, 2/62.
    At T2 the usual rate is max(earlier median 0.021, median up to T2 0.170) = 0.170 and 0.319 is below
    3 x 0.170: people leaving, not cleaning. A median over every period (0.032) would call it cleaning
    once T3 and T4 arrived, revising T2's flows."""
    t3, t4 = dt.date(2023, 3, 31), dt.date(2023, 6, 30)

    def flows(dates):
        d = District()
        d.patients(60, A, "M", DOB_22, dates)
        for n, present in ((2, [T0]), (30, [T0, T1]), (2, [T0, T1, T2]), (2, [T0, T1, T2, t3])):
            d.patients(n, A, "M", DOB_22, [x for x in present if x in dates], prefix=f"p{len(present)}")
        d.base_cell(A, "M", "20-24", 96)
        con = d.load()
        estimate_populations(con, settings(shrinkage_strength=0.0))
        return con.execute("SELECT extract_date, sum(cleaning) AS c, sum(deregistrations) AS d FROM est_gp_flows "
                           f"WHERE extract_date <= DATE '{T2}' GROUP BY 1 ORDER BY 1").df()

    early, late = flows([T0, T1, T2]), flows([T0, T1, T2, t3, t4])
    pd.testing.assert_frame_equal(early, late)
    assert early["c"].sum() == pytest.approx(0.0) and early["d"].tolist() == pytest.approx([2.0, 30.0])


def test_list_cleaning_detected_from_snapshots():
    t = [T0, T1, T2, dt.date(2023, 3, 31)]
    # one practice, men aged 22, base 100:
    d = District()
    d.patients(68, A, "M", DOB_22, t)            # stay throughout
    d.patients(2, A, "M", DOB_22, [T0])          # leave in period 1
    d.patients(2, A, "M", DOB_22, [T0, T1])      # leave in period 2
    d.patients(28, A, "M", DOB_22, [T0, T1, T2])  # leave in period 3 (with the 2 joiners below)
    d.patients(2, A, "M", DOB_22, [T1, T2])      # join in period 1, leave in period 3
    # lists: T0 = 68+2+2+28 = 100; T1 = 68+2+28+2 = 100; T2 = 68+28+2 = 98 (2 left, none joined)
    # period rates: 2/100, 2/100, 30/98 = 0.306122; usual 0.02; excess share (0.306122 - 0.02)/0.306122
    # = 0.934667 -> cleaning 30 x 0.934667 = 28.04; the rest 1.96 deregistrations
    d.base_cell(A, "M", "20-24", 100)
    con = d.load()
    estimate_populations(con, settings(shrinkage_strength=0.0))
    flows = con.execute("SELECT extract_date, sum(cleaning) AS c, sum(deregistrations) AS d, "
                        "sum(registrations) AS r FROM est_gp_flows GROUP BY 1 ORDER BY 1").df()
    per3 = flows[flows["extract_date"] == pd.Timestamp(t[3])].iloc[0]
    share = (30 / 98 - 0.02) / (30 / 98)
    assert per3["c"] == pytest.approx(30 * share)
    assert per3["d"] == pytest.approx(30 * (1 - share))
    per1 = flows[flows["extract_date"] == pd.Timestamp(T1)].iloc[0]
    assert per1["c"] == pytest.approx(0.0) and per1["d"] == pytest.approx(2.0) and per1["r"] == pytest.approx(2.0)
    # T3 list = the 68 who stayed. The detected cleaning is reported (population_flows) but not added
    # back to the estimate: nothing took these ghosts off when they left, so the clean-up is the first
    # time the list counts them leaving. Estimate (inflation 1): 100 + (68 - 100) / 1 = 68, as ratio change
    assert row(con, A, t[3])["estimate"] == pytest.approx(68.0)
    m = row(con, A, t[3], table="population_estimates_methods", method="ratio_change")
    assert m["estimate"] == pytest.approx(68.0)


def test_turbulence_from_gp_school_and_asylum_by_hand():
    d = District()
    t1 = dt.date(2023, 6, 30)
    d.patients(1000, A, "F", dt.date(1980, 3, 3), [T0, t1])
    d.base_cell(A, "F", "40-44", 1000)
    mv = []
    for i in range(10):   # 10 registrations, 3 of them from abroad
        mv.append(dict(patient_id=f"r{i}", practice_code="P00001", postcode="M16 0AA", event_date=dt.date(2022, 9, 1),
                       event="registration", reason="from_abroad" if i < 3 else "transfer_in", lsoa_code=A))
    for i in range(5):    # 5 transfers out
        mv.append(dict(patient_id=f"d{i}", practice_code="P00001", postcode="M16 0AA", event_date=dt.date(2022, 10, 1),
                       event="deregistration", reason="transfer", lsoa_code=A))
    for reason in ("death", "list_cleaning", "list_cleaning"):   # not churn
        mv.append(dict(patient_id="z", practice_code="P00001", postcode="M16 0AA", event_date=dt.date(2022, 11, 1),
                       event="deregistration", reason=reason, lsoa_code=A))
    mv.append(dict(patient_id="b", practice_code="P00001", postcode="M16 0AA", event_date=dt.date(2022, 11, 1),
                   event="registration", reason="birth", lsoa_code=A))  # births are not churn either
    d.tables["gp_movements"] = mv
    # school census: May 2022 (before T0), Oct 2022, Jan 2023, all pupils living in A, school 100001.
    c1, c2, c3 = dt.date(2022, 5, 19), dt.date(2022, 10, 6), dt.date(2023, 1, 19)
    sc = []

    def pupil(census, pid, year):
        sc.append(dict(census_date=census, pupil_id=pid, urn="100001", nc_year=year, sex="F", ethnicity="WBRI",
                       ethnic_major="White", lsoa_code=A))
    pupil(c1, "p1", "6")                      # Year 6 leaver in the summer: normal
    pupil(c1, "p2", "3")                      # Year 3 leaver in the summer: mobile
    for i in range(3, 21):                    # 18 who stay throughout (p5 leaves in January)
        pupil(c1, f"p{i}", "2")
        pupil(c2, f"p{i}", "3")
        if i != 5:
            pupil(c3, f"p{i}", "3")
    pupil(c2, "p21", "R"); pupil(c3, "p21", "R")   # Reception in September: normal
    pupil(c2, "p22", "4"); pupil(c3, "p22", "4")   # Year 4 joiner in September: mobile
    pupil(c3, "p23", "2")                          # Year 2 joiner in January: mobile
    d.tables["school_census"] = sc
    d.tables["asylum_allocations"] = [dict(period_start=dt.date(2022, 7, 1), period_end=dt.date(2023, 6, 30),
                                           area_code=A, area_type="lsoa", persons_allocated=5)]
    con = d.load()
    estimate_populations(con, settings())
    # GP moves: 10 registrations + 5 deregistrations + 3 from abroad = 18, over
    #   1000 residents x 365/365.25 years = 999.315537 resident-years
    # school: pair c1->c2 (spans 1 Sept): joiners p21 (R, normal), p22 (mobile); leavers p1 (Y6,
    #   normal), p2 (mobile) -> 2 moves; pair c2->c3: joiner p23, leaver p5 -> 2 moves. 4 moves.
    #   exposure: 20 pupils at c1 x 140 days + 20 pupils at c2 x 105 days = 20 x 245 / 365.25
    #   = 13.415469 pupil-years
    # asylum: 5 allocations, all in the period: 1000 x 5 / 999.315537 = 5.003425
    # pooled: 1000 x (18 + 4) / (999.315537 + 13.415469) = 22000 / 1012.731006 = 21.723440
    # T = 21.723440 + 5.003425 = 26.726865
    years = 365 / 365.25
    expected = 1000 * (18 + 4) / (1000 * years + 20 * 245 / 365.25) + 5 / years
    assert expected == pytest.approx(26.726865, abs=1e-5)
    moves = con.execute("SELECT sum(pupil_moves), sum(pupil_years) FROM est_school_moves").fetchall()[0]
    assert moves[0] == pytest.approx(4.0) and moves[1] == pytest.approx(20 * 245 / 365.25)
    assert row(con, A, t1)["turbulence"] == pytest.approx(expected)
    # nothing is known of moves at the first extract (no later extract enters its margins)
    assert row(con, A, T0)["turbulence"] == pytest.approx(0.0)
    # and the LA's is the residents-weighted mean of its one LSOA
    assert row(con, LA, t1)["turbulence"] == pytest.approx(expected)


def test_counts_only_turbulence_from_list_change_school_and_asylum_by_hand():
    """Counts-only mode: gross practice x LSOA change per list-year, pooled with pupil moves, plus asylum."""
    d = District()
    t1 = dt.date(2023, 6, 30)
    d.base_cell(A, "F", "40-44", 1000)
    # practice P1 in A: 600 -> 620, P2: 400 -> 370: gross change 20 + 30 = 50 over 1000 x 365/365.25 list-years
    d.tables["gp_counts"] = [dict(extract_date=t, practice_code=p, lsoa_code=A, sex="ALL", age_band=None, patients=n)
                             for p, series in (("P00001", (600, 620)), ("P00002", (400, 370)))
                             for t, n in zip((T0, t1), series)]
    c1, c2, c3 = dt.date(2022, 5, 19), dt.date(2022, 10, 6), dt.date(2023, 1, 19)
    sc = []

    def pupil(census, pid, year):
        sc.append(dict(census_date=census, pupil_id=pid, urn="100001", nc_year=year, sex="F", ethnicity="WBRI",
                       ethnic_major="White", lsoa_code=A))
    pupil(c1, "p1", "6")                      # as in the register test above: 4 mobile moves over
    pupil(c1, "p2", "3")                      # 20 x 245 / 365.25 pupil-years
    for i in range(3, 21):
        pupil(c1, f"p{i}", "2")
        pupil(c2, f"p{i}", "3")
        if i != 5:
            pupil(c3, f"p{i}", "3")
    pupil(c2, "p21", "R"); pupil(c3, "p21", "R")
    pupil(c2, "p22", "4"); pupil(c3, "p22", "4")
    pupil(c3, "p23", "2")
    d.tables["school_census"] = sc
    d.tables["asylum_allocations"] = [dict(period_start=dt.date(2022, 7, 1), period_end=dt.date(2023, 6, 30),
                                           area_code=A, area_type="lsoa", persons_allocated=5)]
    d.register = []
    con = d.load()
    con.execute("CREATE TABLE gp_register (extract_date DATE, patient_id VARCHAR, practice_code VARCHAR, "
                "sex VARCHAR, date_of_birth DATE, lsoa_code VARCHAR)")
    report = estimate_populations(con, settings())
    assert report["mode"] == "counts_only"
    years = 365 / 365.25
    expected = 1000 * (50 + 4) / (1000 * years + 20 * 245 / 365.25) + 1000 * 5 / (1000 * years)
    assert row(con, A, t1)["turbulence"] == pytest.approx(expected)
    assert row(con, A, T0)["turbulence"] == pytest.approx(0.0)  # nothing is known of turbulence at the first extract
    flows = con.execute("SELECT pupil_moves, asylum_allocated, turbulence FROM population_flows").fetchall()
    assert flows == [(pytest.approx(4.0), pytest.approx(5.0), pytest.approx(expected))]


def test_turbulence_from_snapshots_when_no_movements():
    d = District()
    # 100 women aged 40-44 at T0; by T1 10 have left and 5 (2 from abroad) joined; one baby born
    # after T0 joined too (not churn). Leaving rate 10/100 is the only period: usual = itself, so no
    # cleaning. gp events = 5 joiners + 10 leavers + 2 from abroad = 17 over 92 days:
    # T = 1000 x 17 / (95 x 92/365.25) ... residents = base 95
    d.patients(90, A, "F", dt.date(1980, 3, 3), [T0, T1])
    d.patients(10, A, "F", dt.date(1980, 3, 3), [T0])
    d.patients(3, A, "F", dt.date(1980, 3, 3), [T1])
    d.patients(2, A, "F", dt.date(1980, 3, 3), [T1], from_abroad=True)
    d.patients(1, A, "F", dt.date(2022, 8, 1), [T1])
    d.base_cell(A, "F", "40-44", 95)
    con = d.load()
    estimate_populations(con, settings())
    expected = 1000 * 17 / (95 * 92 / 365.25)
    assert row(con, A, T1)["turbulence"] == pytest.approx(expected)


def test_constrained_to_la_total():
    d = District()
    d.patients(60, A, "F", DOB_22, [T0, T1])
    d.patients(40, C, "F", DOB_22, [T0, T1])
    d.base_cell(A, "F", "20-24", 60)
    d.base_cell(C, "F", "20-24", 40)
    d.tables["la_totals"] = [dict(reference_date=T1, la_code=LA, population=110.0)]
    con = d.load()
    estimate_populations(con, settings())
    # unchanged lists: 60 and 40, scaled to 110: 66 and 44
    assert row(con, A, T1)["estimate"] == pytest.approx(66.0)
    assert row(con, C, T1)["estimate"] == pytest.approx(44.0)
    la = row(con, LA, T1)
    assert la["estimate"] == pytest.approx(110.0)
    assert la["lower_95"] == la["upper_95"] == pytest.approx(110.0)
    assert bool(la["constrained"])
    # the constrained LSOA keeps only its own share of the error: (1 - rho) x (66^2 x 0.01 + 66)
    v = 0.5 * (66 * 66 * 0.01 + 66)
    assert row(con, A, T1)["upper_95"] == pytest.approx(66 + Z95 * math.sqrt(v))
    # T0 has no total: untouched
    assert row(con, LA, T0)["estimate"] == pytest.approx(100.0)
    assert not bool(row(con, LA, T0)["constrained"])
    # ratio change is constrained the same way in the comparison table
    assert row(con, A, T1, table="population_estimates_methods", method="ratio_change")["estimate"] == pytest.approx(66.0)


def test_unknown_sex_apportioned_pro_rata():
    d = District()
    # cell A, 20-24: 3 men, 1 woman, 2 unknown -> men 3 + 2 x 3/4 = 4.5, women 1 + 2 x 1/4 = 1.5
    d.patients(3, A, "M", DOB_22, [T0, T1])
    d.patients(1, A, "F", DOB_22, [T0, T1])
    d.patients(2, A, "U", DOB_22, [T0, T1])
    d.base_cell(A, "M", "20-24", 4)
    d.base_cell(A, "F", "20-24", 2)
    con = d.load()
    estimate_populations(con, settings())
    assert row(con, A, T1, "M", "20-24")["gp_list"] == pytest.approx(4.5)
    assert row(con, A, T1, "F", "20-24")["gp_list"] == pytest.approx(1.5)
    assert row(con, A, T1)["gp_list"] == pytest.approx(6.0)


def test_age_at_extract_counts_birthdays():
    d = District()
    # born 30 June 2002: 20 on 30 June 2022 (band 20-24); born 1 July 2002: still 19 (15-19)
    d.patients(1, A, "F", dt.date(2002, 6, 30), [T0])
    d.patients(1, A, "F", dt.date(2002, 7, 1), [T0])
    d.base_cell(A, "F", "20-24", 1)
    d.base_cell(A, "F", "15-19", 1)
    con = d.load()
    estimate_populations(con, settings())
    assert row(con, A, T0, "F", "20-24")["gp_list"] == pytest.approx(1.0)
    assert row(con, A, T0, "F", "15-19")["gp_list"] == pytest.approx(1.0)


def test_every_area_and_date_has_all_rows():
    con = three_lsoa_district().load()
    estimate_populations(con, settings())
    pe = con.execute("SELECT * FROM population_estimates").df()
    cols = ["area_code", "area_name", "area_type", "reference_date", "sex", "age_band", "estimate", "lower_95",
            "upper_95", "gp_list", "base_population", "turbulence", "method"]
    assert list(pe.columns[: len(cols)]) == cols
    # areas: 3 LSOAs, 2 MSOAs, 2 wards, 1 LA = 8; dates 3; rows per area-date: 2 x 18 cells,
    # 2 sex totals, 18 band totals, 1 overall = 57
    assert len(pe) == 8 * 3 * 57
    assert set(pe["area_type"]) == {"lsoa", "msoa", "ward", "la"}
    alls = pe[(pe["sex"] == "All") & (pe["age_band"] == "All")]
    assert len(alls) == 8 * 3
    assert alls.groupby("area_code")["reference_date"].nunique().eq(3).all()
    assert (pe["lower_95"] <= pe["estimate"]).all() and (pe["estimate"] <= pe["upper_95"]).all()
    assert (pe["lower_95"] >= 0).all()
    # the All rows add up: sex totals and band totals both sum to the overall total
    lsoa = pe[(pe["area_code"] == A) & (pe["reference_date"] == pd.Timestamp(T1))]
    total = lsoa[(lsoa["sex"] == "All") & (lsoa["age_band"] == "All")]["estimate"].iloc[0]
    assert lsoa[(lsoa["sex"] != "All") & (lsoa["age_band"] == "All")]["estimate"].sum() == pytest.approx(total)
    assert lsoa[(lsoa["sex"] == "All") & (lsoa["age_band"] != "All")]["estimate"].sum() == pytest.approx(total)
    methods = con.execute("SELECT DISTINCT method FROM population_estimates_methods").df()["method"]
    assert set(methods) == {"base_carried_forward", "raw_list", "ratio_change", "cohdmap"}


def test_runs_with_only_the_required_tables():
    d = three_lsoa_district()
    d.lookup = []   # no lookup table at all: geography from the register
    con = duckdb.connect()
    load_vocabulary(con)
    for name, rows in {"gp_register": d.register, "base_population": d.base}.items():
        con.register("_f", pd.DataFrame(rows))
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM _f")
        con.unregister("_f")
    estimate_populations(con, settings(shrinkage_strength=10.0, cell_inflation="shrunk"))
    assert row(con, A, T1)["estimate"] == pytest.approx(14.6875)
    assert row(con, W1, T1)["estimate"] == pytest.approx(44.6875)
    assert row(con, LA, T1)["area_name"] is None or pd.isna(row(con, LA, T1)["area_name"])
    assert con.execute("SELECT count(*) FROM ethnicity_estimates").fetchall()[0][0] == 0


def test_required_tables_missing_is_a_clear_error():
    con = duckdb.connect()
    with pytest.raises(ValueError, match="gp_register"):
        estimate_populations(con, settings())


def test_base_population_choice():
    d = three_lsoa_district()
    # an older census base (2021) and a later one (2023, after the first extract): the 2022 MYE wins
    for lsoa, pop in ((A, 8), (B, 25), (C, 50)):
        d.base_cell(lsoa, "M", "20-24", pop, date=dt.date(2021, 3, 21), source="census-2021")
        d.base_cell(lsoa, "M", "20-24", pop * 3, date=dt.date(2023, 6, 30), source="ons-mye-2023")
    con = d.load()
    estimate_populations(con, settings())
    assert row(con, LA, T0)["base_population"] == pytest.approx(100.0)
    # naming the census as the base source picks it: base 8 + 25 + 50 = 83
    con2 = d.load()
    estimate_populations(con2, settings(base_source="census-2021"))
    assert row(con2, LA, T0)["base_population"] == pytest.approx(83.0)
    # years since base count from census day: 30 June 2022 - 21 March 2021 = 466 days
    assert row(con2, LA, T0)["years_since_base"] == pytest.approx(466 / 365.25)


def test_ethnicity_shares_not_stated_apportioned():
    d = District()
    # A, women 20-24: White (A) 6, Asian (H) 2, not stated (Z) 2 on the list; base 10, list 10.
    d.patients(6, A, "F", DOB_22, [T0], ethnic="A")
    d.patients(2, A, "F", DOB_22, [T0], ethnic="H")
    d.patients(2, A, "F", DOB_22, [T0], ethnic="Z")
    d.base_cell(A, "F", "20-24", 10)
    con = d.load()
    estimate_populations(con, settings(ethnicity_shrinkage=0.0))
    eth = con.execute("SELECT * FROM ethnicity_estimates WHERE area_code = ? ORDER BY ethnic_group", [W1]).df()
    eth = eth.set_index("ethnic_group")
    # not stated apportioned pro rata: White 6/8 = 0.75, Asian 2/8 = 0.25 of the estimate 10
    assert eth.loc["White", "share"] == pytest.approx(0.75)
    assert eth.loc["White", "estimate"] == pytest.approx(7.5)
    assert eth.loc["Asian", "estimate"] == pytest.approx(2.5)
    assert eth.loc["Black", "estimate"] == pytest.approx(0.0)
    # share margin (alpha = 0): p(1-p)/(n+1) + (0.5 q)^2 p(1-p), q = 2/10:
    # 0.1875/9 + 0.01 x 0.1875 = 0.0208333 + 0.001875 = 0.0227083; sd 0.150693
    sd = math.sqrt(0.1875 / 9 + 0.01 * 0.1875)
    # 0.75 -/+ 1.96 x 0.150693 = 0.454645 to 1.045355, clipped to 1
    assert eth.loc["White", "share_lower_95"] == pytest.approx(0.75 - Z95 * sd)
    assert eth.loc["White", "share_upper_95"] == pytest.approx(1.0)
    # Asian: the same sd; 0.25 - 0.295355 clipped to 0, upper 0.545355
    assert eth.loc["Asian", "share_lower_95"] == pytest.approx(0.0)
    assert eth.loc["Asian", "share_upper_95"] == pytest.approx(0.25 + Z95 * sd)
    # estimate margin adds the population margin (pinned: 10^2 x 0.01 + 10 = 11) x share^2
    v = 0.75 ** 2 * 11 + 100 * sd ** 2
    assert eth.loc["White", "upper_95"] == pytest.approx(7.5 + Z95 * math.sqrt(v))
    assert set(con.execute("SELECT DISTINCT area_type FROM ethnicity_estimates").df()["area_type"]) == \
        {"lsoa", "msoa", "ward", "la"}
    # a composition term eta = 0.1 adds 0.01 x 0.1875 to the share variance:
    # sd = sqrt(0.0227083 + 0.001875) = 0.156791; lower 0.75 - 1.96 x 0.156791 = 0.442695
    con2 = d.load()
    estimate_populations(con2, settings(ethnicity_shrinkage=0.0, overrides={"eta": 0.1}))
    e2 = con2.execute("SELECT * FROM ethnicity_estimates WHERE area_code = ? AND ethnic_group = 'White'", [W1]).df()
    assert e2["share_lower_95"].iloc[0] == pytest.approx(0.75 - Z95 * math.sqrt(0.1875 / 9 + 0.01 * 0.1875 + 0.001875))
    assert e2["share_sampling_se"].iloc[0] == pytest.approx(sd)


def test_margins_widen_with_turbulence_and_time():
    # with the committed (calibrated) margin model, a churning LSOA's interval is wider than a
    # settled one's, and both widen with time since the base
    from pipeline.estimates.margins import load_margin_model
    p = load_margin_model()
    settled = predict_variance(p, [1500.0, 1500.0], [0.5, 2.0], [0.03, 0.12], [1500 ** 2 / 36] * 2,
                               turbulence=[60.0, 60.0])
    churning = predict_variance(p, [1500.0, 1500.0], [0.5, 2.0], [0.15, 0.6], [1500 ** 2 / 36] * 2,
                                turbulence=[300.0, 300.0])
    assert np.all(churning > settled)
    assert settled[1] > settled[0] and churning[1] > churning[0]


def test_runs_on_published_counts_when_there_is_no_register():
    d = three_lsoa_district()
    counts = [dict(extract_date=t, practice_code="P00001", lsoa_code=lsoa, sex="M", age_band="20-24", patients=n)
              for lsoa, series in ((A, (14, 20, 20)), (B, (33, 33, 33)), (C, (63, 56, 56)))
              for t, n in zip((T0, T1, T2), series)]
    # an unbanded count for women in A (no base for them but 20-24 F = 4, 25-29 F = 12): 8 then 12,
    # spread by base: 20-24 gets 4/16, 25-29 12/16
    d.base_cell(A, "F", "20-24", 4)
    d.base_cell(A, "F", "25-29", 12)
    counts += [dict(extract_date=T0, practice_code="P00001", lsoa_code=A, sex="F", age_band=None, patients=8),
               dict(extract_date=T1, practice_code="P00001", lsoa_code=A, sex="F", age_band=None, patients=12)]
    d.tables["gp_counts"] = counts
    d.register = []
    con = d.load()
    con.execute("CREATE TABLE gp_register (extract_date DATE, patient_id VARCHAR, practice_code VARCHAR, "
                "sex VARCHAR, date_of_birth DATE, lsoa_code VARCHAR)")
    estimate_populations(con, settings(shrinkage_strength=10.0, cell_inflation="shrunk"))
    # counts only: cohorts are aged by single year (bands spread evenly: A's men 20-24 are 2 a year,
    # women 20-24 0.8 and 25-29 2.4 a year). T1 is f = 92 / 365.25 years after T0 (the base date):
    # a share f of each single-year cohort has had its birthday.
    f = 92 / 365.25
    assert row(con, A, T1)["method"] == "cohdmap:counts_only"
    # women in A: the unbanded count (8, then 12) spread like the base aged by cohort. At T0 25-29
    # holds 12 of 16: 8 x 12/16 = 6. At T1 age 25 holds (1 - f) 2.4 + f 0.8 and ages 26-29 2.4 each
    # (f 2.4 of age 29 has moved on to 30): 25-29 holds 2.4 - 1.6 f + 9.6 of 16
    assert row(con, A, T0, "F", "25-29")["gp_list"] == pytest.approx(6.0)
    assert row(con, A, T1, "F", "25-29")["gp_list"] == pytest.approx(12 * (12.0 - 1.6 * f) / 16)
    assert row(con, A, T1, "F")["gp_list"] == pytest.approx(12.0)
    # men 20-24 in A: the banded count as published (20), by age: at T0 14 over 5 years = 2.8 each;
    # aged to T1 the 20-24 cohorts hold (1 - f) 2.8 + 4 x 2.8 of the list and (1 - f) 2 + 4 x 2 of
    # the base (the rest of age 24 is now 25). Inflation 1.28 as in register mode (ward prior
    # (47 + 10 x 1.1) / 50 = 1.16; (14 + 11.6) / 20). est = base + (20 - list aged) / 1.28
    assert row(con, A, T1, "M", "20-24")["gp_list"] == pytest.approx(20.0)
    expected = (1 - f) * 2 + 8 + (20 - ((1 - f) * 2.8 + 11.2)) / 1.28
    assert row(con, A, T1, "M", "20-24")["estimate"] == pytest.approx(expected)


def test_blend_base_by_hand():
    from pipeline.estimates.base import blend_base
    # 12 LSOAs of 100 residents, all with turbulence 100 (x = 0.1), so the fitted log inflation is
    # the plain mean. Log inflation r = log(list / base): six at 0.10, three at 0.14, three at 0.06.
    # m = 0.10; residuals 0, +0.04, -0.04; v_R = 6 x 0.0016 / 12 = 0.0008; support n = 12.
    # base error: s_B^2 = 0.02^2 + 0.003 x 0.1 = 0.0007
    # s_U^2 = max(0.0008 - 0.0007, 0.01^2) + 0.0008 / 12 = 0.0001 + 0.0000667 = 0.0001667
    # w = 0.0007 / (0.0007 + 0.0001667) = 0.807692
    # shift +-0.04 x 0.807692 = +-0.032308 (cap 2 sqrt(0.0007) = 0.0529 not reached)
    # F = exp(0.032308) = 1.032835, exp(-0.032308) = 0.968208, 1; LA total kept:
    # sum F P = 600 + 309.8505 + 290.4624 = 1200.3129 -> x 1200 / 1200.3129 = 0.999739
    r = np.array([0.10] * 6 + [0.14] * 3 + [0.06] * 3)
    base = np.full(12, 100.0)
    factor, weight, variance = blend_base(base, base * np.exp(r), np.full(12, 100.0), base_a=0.02, base_f=0.003)
    assert weight[0] == pytest.approx(0.807692, abs=1e-6)
    assert factor[6] == pytest.approx(1.032835 * 0.999739, abs=1e-5)
    assert factor[9] == pytest.approx(0.968208 * 0.999739, abs=1e-5)
    assert factor[0] == pytest.approx(0.999739, abs=1e-5)
    assert np.sum(base * factor) == pytest.approx(1200.0)
    # the variance left: w s_U^2 = 0.807692 x 0.0001667 = 0.00013462
    assert variance[0] == pytest.approx(0.00013462, rel=1e-3)
    # too few LSOAs (under 12): nothing moves and the variance is the base's own
    f2, w2, v2 = blend_base(base[:5], base[:5] * np.exp(r[6:11]), np.full(5, 100.0), base_a=0.02, base_f=0.003)
    assert np.all(f2 == 1.0) and np.all(w2 == 0.0)
    assert v2[0] == pytest.approx(0.0007)


def test_variance_components_recovered_from_synthetic_errors():
    from pipeline.estimates.margins import COMPONENTS, fit_variance_components, variance_design
    # errors drawn with known components: relative base variance f x with f = 0.012, growth
    # b tau with b = 0.004, small-count psi = 1; the fit should find them again
    rng = np.random.default_rng(7)
    n = 40000
    est = rng.uniform(300, 3000, n)
    years = rng.choice([0.0, 0.5, 1.0, 1.5, 2.0], n)
    turb = rng.uniform(10, 300, n)
    tau = turb / 1000 * years
    X = variance_design(est, years, tau, est ** 2 / 36, turb)
    truth = np.zeros(len(COMPONENTS))
    truth[COMPONENTS.index("f")] = 0.012
    truth[COMPONENTS.index("b")] = 0.004
    truth[COMPONENTS.index("psi")] = 1.0
    err = rng.normal(0.0, np.sqrt(X @ truth))
    free = np.array([c in ("f", "b", "psi") for c in COMPONENTS])
    start = np.zeros(len(COMPONENTS))
    start[free] = [0.001, 0.001, 0.5]
    fit = fit_variance_components(err, X, start, free)
    assert fit[COMPONENTS.index("f")] == pytest.approx(0.012, rel=0.1)
    assert fit[COMPONENTS.index("b")] == pytest.approx(0.004, rel=0.2)
    assert fit[COMPONENTS.index("psi")] == pytest.approx(1.0, rel=0.3)


def test_even_coverage_widens_where_errors_are_wider():
    from pipeline.estimates.margins import even_coverage
    # errors twice as wide where x is high, modelled variance 1 everywhere (plus a common part
    # of 0.25 in the second test): the search should find a positive kappa_t and cover about 95%
    # in both halves
    rng = np.random.default_rng(3)
    x = np.repeat([0.02, 0.2], 6000)
    err = rng.normal(0, 1, 12000) * np.where(x > 0.1, 2.0, 1.0)
    for common in (0.0, 0.25):
        kt, ky, kn, k = even_coverage(err, np.ones(12000), np.full(12000, common), x, np.zeros(12000))
        covered = np.abs(err) <= 1.959964 * np.sqrt((k * (1 + kt * x)) ** 2 + common)
        assert kt > 0
        assert covered[x < 0.1].mean() == pytest.approx(0.95, abs=0.015)
        assert covered[x > 0.1].mean() == pytest.approx(0.95, abs=0.015)


def unchecked_model_path(mode: str) -> str:
    """The committed margin model with `mode`'s checked_on removed (a mode never checked)."""
    import json
    import tempfile
    from pathlib import Path

    from pipeline.estimates.margins import MODEL_PATH

    doc = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    doc.setdefault("modes", {}).setdefault(mode, {}).pop("checked_on", None)
    path = Path(tempfile.mkdtemp(prefix="margin-model-")) / "margin_model.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


def test_unchecked_mode_publishes_no_interval():
    """A run mode whose margins have never been checked against a known truth (no
    modes.<mode>.checked_on in margin_model.json; here register_snapshots with it removed): the
    estimates are published without intervals and every row says why."""
    con = three_lsoa_district().load()
    report = estimate_populations(con, EstimateSettings(margin_overrides=PINNED,
                                                        margin_model_path=unchecked_model_path("register_snapshots")))
    assert report["mode"] == "register_snapshots" and not report["intervals_published"]
    rows = con.execute("SELECT lower_95, upper_95, note, method FROM population_estimates").df()
    assert rows["lower_95"].isna().all() and rows["upper_95"].isna().all()
    assert rows["note"].str.contains("not been checked").all()
    assert set(rows["method"]) == {"cohdmap:register_snapshots"}
    # the same district with the mode marked as checked publishes intervals
    con = three_lsoa_district().load()
    assert estimate_populations(con, settings())["intervals_published"]
    assert con.execute("SELECT count(*) FROM population_estimates WHERE upper_95 IS NULL").fetchall()[0][0] == 0


def test_assign_la_takes_the_largest_share_whatever_the_row_order():
    """Hand-computed: ward W1 has 0.7 of its LSOAs' shares in LA B and 0.3 in A -> B; ward W2 is split
    0.5 / 0.5 -> the lower code, A. Shuffling the rows must not change the answer (it did with first())."""
    from pipeline.estimates.geography import assign_la

    geo = pd.DataFrame({
        "lsoa_code": ["L1", "L2", "L3", "L4", "L5"],
        "ward_code": ["W1", "W1", "W1", "W2", "W2"],
        "la_code": ["A", "B", "B", "B", "A"],
        "ward_share": [0.3, 0.4, 0.3, 0.5, 0.5],
    })
    for seed in range(5):
        shuffled = geo.sample(frac=1, random_state=seed)
        got = assign_la(shuffled, "ward_code").set_index("ward_code")["la_code"].to_dict()
        assert got == {"W1": "B", "W2": "A"}
    with pytest.raises(ValueError, match="ward_share"):
        assign_la(geo.drop(columns="ward_share"), "ward_code")
