"""COHDMAP small-area population estimates with margins of error: the stage's entry point.

    estimate_populations(con, settings)

chooses the run mode from the data (register_movements, register_snapshots or counts_only; see
choose_mode), reads the canonical tables (see sources.py), runs the SQL steps every mode shares
(``sql/common``: the extract dates, the base by single year of age), then the mode's own
(``sql/prepare`` for a register, ``sql/counts`` for published counts; one table each, ``est_*``),
makes the list by LSOA x sex x single year of age (register: read off it exactly; counts: IPF,
counts.py) and hands it to the one cohort chassis (cohort_model.py), applies the margins
(turbulence.py, margins.py), constrain.py and ethnicity.py in Python, writes ``est_lsoa_rows`` and
``est_lsoa_ethnic``, then runs the SQL steps in ``sql/publish`` that sum up the geography and create

* ``population_estimates``          the partner contract (spec/outputs.md), method 'cohdmap:<mode>'
* ``population_estimates_methods``  cohdmap beside base_carried_forward, raw_list and
                                     ratio_change at every level, for the back-test
* ``ethnicity_estimates``           broad ethnic groups by area with margins

The model in one place (details in each module's docstring), by LSOA i x sex s x single year a:

    L*(t)     = L(t) + births not yet registered (age 0)                    (register mode)
    P(b)      = published base x F, F moving it towards L*(t0) / I           (base.py; first extract only)
    I         = (L*(t0) + k prior) / (P(b) + k) by sex x band, aged with its cohort   (inflation.py)
    est(t)    = B~(t) + (L*(t) - L~*(t0 -> t)) / I~, floored at 0 by band   (cohort_model.py)
                ~ = aged by birth cohort from the base date / t0 (cohorts.py)
    Deaths are in the list change once; list cleaning is not added back; flows are not uplifted.
    T       = moves per 1,000 a year: GP and pupil churn pooled, + asylum    (turbulence.py)
    var     = K^2 [E^2 s^2(T, y, tau, V) + (g^2 + h tau) sum E_c^2 + psi max(E,1)]  (margins.py)
    var_A   = (1 - rho) sum w^2 var + rho (sum w sd)^2 + (l0^2 + (l1 y)^2) E_A^2
              + sum_b (m0_g^2 + (m1_g y)^2) E_A,b^2
              [+ omega^2 sum w(1-w) E^2 for wards]        up the geography (sql/publish/03)

Revision policy: the estimate for extract t uses the base, the first extract and extract t only
(the list-informed base and the inflation are fixed at t0), and its margin the turbulence of the
periods up to t only (turbulence.py), so a later extract never revises either.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from pipeline.config import EstimateSettings
from pipeline.sql import create_table_from, run_steps

from .cohort_model import AGES, SEXES, roll_cohorts, split_persons_base
from .constrain import constrain_to_total
from .counts import estimate_from_counts
from .ethnicity import GROUPS, share_variance, shrink_shares
from .margins import age_terms_frame, load_mode_model, predict_variance, z_value
from .sources import prepare_sources
from .turbulence import score_turbulence, score_turbulence_to_date

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).with_name("sql")
COMMON_DIR = SQL_DIR / "common"
PREPARE_DIR = SQL_DIR / "prepare"
PUBLISH_DIR = SQL_DIR / "publish"
COUNTS_DIR = SQL_DIR / "counts"
CELL_KEYS = ["lsoa_code", "sex", "age_band"]
# est_lsoa_cells: every cell's working, kept for audit (and for the back-test's calibration)
CELL_AUDIT_COLUMNS = [
    "lsoa_code", "extract_date", "k", "years_since_base", "sex", "age_band", "published_base", "base_factor",
    "base_variance",
    "base_population", "list_count",
    "list_t0", "births_lag", "deaths_lag", "list_star", "list_star_t0", "registrations", "from_abroad",
    "deregistrations", "cleaning", "cum_cleaning", "cum_registrations", "cum_deregistrations", "inflation_raw", "inflation_prior",
    "inflation", "estimate", "est_ratio_change", "constrained",
]


MODES = ("register_movements", "register_snapshots", "counts_only")


def choose_mode(info) -> str:
    """register_movements (patient register + movement records), register_snapshots (register only:
    flows from consecutive snapshots), or counts_only (published practice x LSOA counts)."""
    if info.has("gp_register"):
        return "register_movements" if info.has("gp_movements") else "register_snapshots"
    return "counts_only"


def estimate_populations(con: duckdb.DuckDBPyConnection, settings: EstimateSettings) -> dict:
    """Create population_estimates, population_estimates_methods and ethnicity_estimates in `con`.

    Returns what the run report records: the mode, whether its margins were checked (and on what),
    and, where they were not, why the estimates carry no interval.
    """
    info = prepare_sources(con)
    mode = choose_mode(info)
    model, checked = load_mode_model(settings.margin_model_path or None, settings.margin_overrides, mode=mode)
    intervals = bool(checked)
    note = "" if intervals else (f"no interval: the margins of mode {mode} have not been checked against a known "
                                 "truth (margin_model.json)")
    report = {"mode": mode, "method": f"{settings.method}:{mode}", "margins_checked_on": checked or None,
              "intervals_published": intervals, "interval_note": note or None}
    if not intervals:
        log.warning("%s: publishing estimates without intervals", note)
    list_table = "gp_counts" if mode == "counts_only" else "gp_register"
    first_extract = con.execute(f"SELECT min(extract_date) FROM est_src_{list_table}").fetchall()[0][0]
    base_date, base_source = choose_base(con, first_extract, settings.base_source)
    report["base_date"] = base_date.isoformat()
    log.info("population estimates (%s): base %s (%s), first extract %s", mode, base_date,
             base_source or "any source", first_extract)
    # the extract dates and the base by single year of age: the same steps in every mode
    run_steps(con, COMMON_DIR, {"base_date": base_date, "base_source": base_source})
    if mode == "counts_only":
        run_steps(con, COUNTS_DIR, {"base_date": base_date, "base_source": base_source})
        # the school census and asylum allocations, where present, add to counts-mode turbulence
        for table, step in (("est_school_moves", "09_est_school_moves.sql"), ("est_asylum", "10_est_asylum.sql")):
            create_table_from(con, table, PREPARE_DIR / step, {})
        geo = con.execute("SELECT * FROM est_lsoa_geo").df()
        cells, turb, notes = estimate_from_counts(con, settings, model, base_date, geo)
        audit = notes.pop("audit")
        _write(con, "est_turbulence", audit, date_cols=("extract_date",))
        # what counts cannot show: recorded ethnicity, flows by reason (empty, for the publish steps)
        con.execute("CREATE OR REPLACE TABLE est_ethnic_counts (lsoa_code VARCHAR, extract_date DATE, sex VARCHAR, "
                    "age_band VARCHAR, ethnic_group VARCHAR, n DOUBLE)")
        con.execute("CREATE OR REPLACE TABLE est_gp_flows (lsoa_code VARCHAR, extract_date DATE, sex VARCHAR, "
                    "age_band VARCHAR, registrations DOUBLE, from_abroad DOUBLE, deregistrations DOUBLE, cleaning DOUBLE)")
        report["counts_only"] = notes
        log.info("counts-only mode: %s", notes)
    else:
        flows_from_movements = mode == "register_movements"
        run_steps(con, PREPARE_DIR, {
            "base_date": base_date,
            "base_source": base_source,
            "birth_lag_days": int(settings.birth_registration_lag_days),
            "death_lag_days": int(settings.death_removal_lag_days),
            "flows_from_movements": flows_from_movements,
            "cleaning_threshold": float(settings.cleaning_threshold),
        })
        _log_coverage(con)
        turb = build_turbulence(con, model)
        geo = con.execute("SELECT * FROM est_lsoa_geo").df()
        cells, notes = build_register_cells(con, settings, model, base_date, geo)
        report["register"] = {k: v for k, v in notes.items() if k != "single_years"}
    # single years of age by cohort (the bands are only for publishing), kept for audit and the back-test
    _write(con, "est_lsoa_single_years", notes.pop("single_years"), date_cols=("extract_date",))
    la_totals = con.execute("SELECT reference_date, la_code, population FROM est_src_la_totals "
                            "WHERE population IS NOT NULL").df() if info.has("la_totals") else None
    cells = apply_constraint(cells, geo, la_totals)
    rows = build_lsoa_rows(cells, turb, model)
    audit_columns = [c for c in CELL_AUDIT_COLUMNS if c in cells.columns]
    _write(con, "est_lsoa_cells", cells[audit_columns], date_cols=("extract_date",))
    _write(con, "est_lsoa_rows", rows, date_cols=("reference_date",))
    ethnic = build_ethnicity(con, cells, rows, settings)
    _write(con, "est_lsoa_ethnic", ethnic, date_cols=("reference_date",))
    # the LA-wide error by age band, read by the roll-up (sql/publish/03_est_area_rows.sql)
    _write(con, "est_margin_age_terms", age_terms_frame(model))
    run_steps(con, PUBLISH_DIR, publish_parameters(model, settings, base_date, report["method"], intervals, note))
    n = con.execute("SELECT count(*), count(DISTINCT area_code) FROM population_estimates").fetchall()[0]
    log.info("population_estimates: %d rows for %d areas", n[0], n[1])
    return report


def publish_parameters(model: dict, settings: EstimateSettings, base_date, method: str, intervals: bool,
                       note: str) -> dict:
    """The parameters of the sql/publish steps (the roll-up's margin terms among them)."""
    return {
        "z": z_value(settings.interval_level),
        "rho": float(model["rho"]),
        "omega": float(model["omega"]),
        "eta": float(model["eta"]),
        "l0": float(model["l0"]),
        "l1": float(model["l1"]),
        "base_date": base_date,
        "method": method,
        "intervals": intervals,
        "interval_note": note,
    }


# ------------------------------------------------------------------------------------------ base

def choose_base(con: duckdb.DuckDBPyConnection, first_extract: dt.date, wanted_source: str = "") -> tuple[dt.date, str]:
    """The base population's date and source.

    With no source named: the latest reference_date on or before the first extract (the earliest
    date if all are later). Several sources on that date: the alphabetically first, with a
    warning (summing them would double count). A named source: its latest date on or before the
    first extract (else its earliest).
    """
    avail = con.execute(
        "SELECT DISTINCT reference_date, coalesce(source, '') AS source FROM est_src_base_population "
        "WHERE reference_date IS NOT NULL ORDER BY 1, 2").df()
    if wanted_source:
        avail = avail[avail["source"] == wanted_source]
        if avail.empty:
            raise ValueError(f"base_population has no rows from source '{wanted_source}' (settings.estimates.base_source)")
    dates = pd.to_datetime(avail["reference_date"]).dt.date
    before = avail[dates <= first_extract]
    if before.empty:
        log.warning("no base population on or before the first extract %s: using the earliest", first_extract)
        chosen_date = dates.min()
    else:
        chosen_date = pd.to_datetime(before["reference_date"]).dt.date.max()
    sources = sorted(avail.loc[dates == chosen_date, "source"].unique())
    if len(sources) > 1 and not wanted_source:
        log.warning("several base populations dated %s (%s): using '%s'", chosen_date, ", ".join(sources), sources[0])
    source = wanted_source or (sources[0] if len(sources) > 1 else "")
    return chosen_date, source


# ----------------------------------------------------------------------------------------- cells

def register_arrays(con: duckdb.DuckDBPyConnection, ex: pd.DataFrame):
    """The register's arrays for the cohort chassis: LSOAs, the published base by sex x single year
    [n, 2, AGES] (a persons-only base split by the list's sex shares), the list [K, n, 2, AGES]
    (est_list_sya) and births not yet registered [K, n, 2] (est_vital_lag, band 0-4; added at age 0)."""
    base = con.execute("SELECT lsoa_code, sex, age, population FROM est_base_sya").df()
    lsoas = sorted(base["lsoa_code"].unique())
    index = {c: i for i, c in enumerate(lsoas)}
    n, K = len(lsoas), len(ex)
    k_of = {pd.Timestamp(d): k for d, k in zip(ex["extract_date"], ex["k"])}
    lst = con.execute("SELECT lsoa_code, extract_date, sex, age, list_count FROM est_list_sya").df()
    L = np.zeros((K, n, 2, AGES))
    np.add.at(L, (pd.to_datetime(lst["extract_date"]).map(k_of).to_numpy(), lst["lsoa_code"].map(index).to_numpy(),
                  lst["sex"].map({"M": 0, "F": 1}).to_numpy(), lst["age"].to_numpy().astype(int)),
              lst["list_count"].to_numpy())
    births = con.execute("SELECT lsoa_code, extract_date, sex, births_lag FROM est_vital_lag "
                         "WHERE age_band = '0-4' AND births_lag > 0").df()
    births = births[births["lsoa_code"].isin(index)]
    extra = np.zeros((K, n, 2))
    np.add.at(extra, (pd.to_datetime(births["extract_date"]).map(k_of).to_numpy(),
                      births["lsoa_code"].map(index).to_numpy(), births["sex"].map({"M": 0, "F": 1}).to_numpy()),
              births["births_lag"].to_numpy())
    by_sex = base[base["sex"].isin(SEXES)]
    if by_sex.empty:  # a persons-only base: split by the list's sex shares at t0
        pp = np.zeros((n, AGES))
        np.add.at(pp, (base["lsoa_code"].map(index).to_numpy(), base["age"].to_numpy().astype(int)),
                  base["population"].to_numpy())
        total = L[0].sum(axis=0)
        share = np.where(total.sum(axis=0) > 0, total / np.maximum(total.sum(axis=0), 1e-12), 0.5)
        pub = split_persons_base(pp, L[0], share)
    else:
        pub = np.zeros((n, 2, AGES))
        np.add.at(pub, (by_sex["lsoa_code"].map(index).to_numpy(), by_sex["sex"].map({"M": 0, "F": 1}).to_numpy(),
                        by_sex["age"].to_numpy().astype(int)), by_sex["population"].to_numpy())
    return lsoas, pub, L, extra


def build_register_cells(con: duckdb.DuckDBPyConnection, settings: EstimateSettings, model: dict, base_date,
                         geo: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Register mode on the cohort chassis (cohort_model.py): the list by LSOA x sex x single year
    exactly as the register shows it, rolled forward by cohort from the base date. The flows by
    reason (est_gp_flows) and the vital-event lags are joined for audit only: deaths are in the
    list change once, list cleaning is not added back and no flow is uplifted."""
    ex = con.execute("SELECT extract_date, k, years_since_base FROM est_extracts ORDER BY k").df()
    ex["extract_date"] = pd.to_datetime(ex["extract_date"])
    lsoas, pub, L, extra = register_arrays(con, ex)
    cells, single, notes = roll_cohorts(pub, L, ex, lsoas, geo, settings, model, base_date, births_unregistered=extra,
                                        constrain_ratio_change=False, list_ages_observed=True)
    vital = con.execute("SELECT * FROM est_vital_lag").df()
    flows = con.execute("SELECT * FROM est_gp_flows").df()
    keys = [*CELL_KEYS, "extract_date"]
    for df in (vital, flows):
        df["extract_date"] = pd.to_datetime(df["extract_date"])
        cells = cells.merge(df, on=keys, how="left")
    for col in ("births_lag", "deaths_lag", "registrations", "from_abroad", "deregistrations", "cleaning"):
        cells[col] = cells[col].fillna(0.0).astype(float)
    cells = cells.sort_values([*CELL_KEYS, "k"]).reset_index(drop=True)
    g = cells.groupby(CELL_KEYS, sort=False)
    for col in ("cleaning", "registrations", "deregistrations"):
        cells[f"cum_{col}"] = g[col].cumsum()
    notes.update({"lsoas": len(lsoas), "extracts": len(ex), "single_years": single})
    return cells, notes


def build_turbulence(con: duckdb.DuckDBPyConnection, model: dict) -> pd.DataFrame:
    """Turbulence per LSOA x extract (see turbulence.py).

    The score that drives the margins at extract k pools the periods up to k only (0 at the
    first extract: score_turbulence_to_date), so an estimate is never revised by later extracts.
    Each period's own score is kept in est_turbulence beside its components, for audit and for
    indicators of change.
    """
    ex = con.execute("SELECT extract_date, k, years_since_base, coalesce(period_years, 0) AS period_years "
                     "FROM est_extracts ORDER BY k").df()
    lsoas = con.execute("SELECT lsoa_code, sum(population) AS residents FROM est_base GROUP BY 1").df()
    gp = con.execute("SELECT lsoa_code, extract_date, sum(registrations + deregistrations + from_abroad) AS gp_events "
                     "FROM est_gp_flows GROUP BY lsoa_code, extract_date").df()
    school = con.execute("SELECT lsoa_code, extract_date, pupil_moves, pupil_years FROM est_school_moves").df()
    asylum = con.execute("SELECT lsoa_code, extract_date, asylum_allocated FROM est_asylum").df()
    frame = lsoas.merge(ex, how="cross")
    for df in (gp, school, asylum):
        frame = frame.merge(df, on=["lsoa_code", "extract_date"], how="left")
    cols = ["gp_events", "pupil_moves", "pupil_years", "asylum_allocated"]
    frame[cols] = frame[cols].fillna(0.0).astype(float)
    frame["resident_years"] = frame["residents"] * frame["period_years"]
    frame = frame.sort_values(["lsoa_code", "k"]).reset_index(drop=True)
    weights = dict(w_school=model["w_school"], w_asylum=model["w_asylum"])
    frame["period_score"] = score_turbulence(frame["gp_events"], frame["resident_years"], frame["pupil_moves"],
                                             frame["pupil_years"], frame["asylum_allocated"], **weights)
    frame.loc[frame["k"] == 0, "period_score"] = np.nan
    frame["turbulence"] = score_turbulence_to_date(frame, **weights)
    frame["tau"] = frame["turbulence"] * np.maximum(frame["years_since_base"], 0.0) / 1000.0
    _write(con, "est_turbulence", frame[["lsoa_code", "extract_date", "k", "residents", "resident_years", *cols,
                                         "period_score", "turbulence", "tau"]],
           date_cols=("extract_date",))
    return frame[["lsoa_code", "extract_date", "turbulence", "tau", "residents"]]


def apply_constraint(cells: pd.DataFrame, geo: pd.DataFrame, la_totals: pd.DataFrame | None) -> pd.DataFrame:
    """Scale cohdmap (and ratio-change) cells so each LA sums to a supplied total for that date."""
    cells = cells.copy()
    cells["constrained"] = False
    if la_totals is None or la_totals.empty:
        return cells
    lsoa_la = geo.groupby("lsoa_code", as_index=False)["la_code"].first()
    cells = cells.merge(lsoa_la, on="lsoa_code", how="left")
    totals = la_totals.copy()
    totals["reference_date"] = pd.to_datetime(totals["reference_date"])
    cells_date = pd.to_datetime(cells["extract_date"])
    for row in totals.itertuples(index=False):
        mask = (cells["la_code"] == row.la_code) & (cells_date == row.reference_date)
        if not mask.any():
            continue
        for col in ("estimate", "est_ratio_change"):
            cells.loc[mask, col] = constrain_to_total(cells.loc[mask, col].to_numpy(), row.population)
        cells.loc[mask, "constrained"] = True
    return cells.drop(columns=["la_code"])


def build_lsoa_rows(cells: pd.DataFrame, turb: pd.DataFrame, model: dict) -> pd.DataFrame:
    """LSOA rows by sex x band, plus the All margins, with their variances."""
    c = cells.copy()
    c["est_sq"] = c["estimate"] ** 2
    value_cols = ["estimate", "est_sq", "list_count", "base_population", "published_base", "est_ratio_change",
                  "est_raw_list", "est_base_carried_forward"]
    keys = ["lsoa_code", "extract_date", "years_since_base"]
    parts = [c[[*keys, "sex", "age_band", "band_order", "constrained", *value_cols]]]
    for by_sex, by_band in ((True, False), (False, True), (False, False)):
        group = keys + (["sex"] if by_sex else []) + (["age_band", "band_order"] if by_band else [])
        agg = c.groupby(group, as_index=False).agg(
            **{col: (col, "sum") for col in value_cols}, constrained=("constrained", "all"))
        if not by_sex:
            agg["sex"] = "All"
        if not by_band:
            agg["age_band"] = "All"
            agg["band_order"] = 18
        parts.append(agg)
    rows = pd.concat(parts, ignore_index=True)
    rows = rows.merge(turb, on=["lsoa_code", "extract_date"], how="left")
    rows = rows.merge(c.groupby("lsoa_code", as_index=False)["base_variance"].first(), on="lsoa_code", how="left")
    totals = rows[(rows["sex"] == "All") & (rows["age_band"] == "All")][["lsoa_code", "extract_date", "estimate"]]
    rows = rows.merge(totals.rename(columns={"estimate": "lsoa_total"}), on=["lsoa_code", "extract_date"], how="left")
    rows["variance"] = predict_variance(model, rows["estimate"], rows["years_since_base"], rows["tau"], rows["est_sq"],
                                        rows["turbulence"], rows["base_variance"], rows["residents"], rows["lsoa_total"])
    # a constraint to a known LA total removes the error the LSOAs share
    rows.loc[rows["constrained"], "variance"] *= (1.0 - model["rho"])
    rows = rows.rename(columns={"extract_date": "reference_date", "list_count": "gp_list"})
    return rows[["lsoa_code", "reference_date", "sex", "age_band", "band_order", "estimate", "variance", "gp_list",
                 "base_population", "published_base", "turbulence", "tau", "residents", "years_since_base", "constrained",
                 "est_ratio_change", "est_raw_list", "est_base_carried_forward", "est_sq", "base_variance"]]


# ------------------------------------------------------------------------------------- ethnicity

def build_ethnicity(con: duckdb.DuckDBPyConnection, cells: pd.DataFrame, rows: pd.DataFrame,
                    settings: EstimateSettings) -> pd.DataFrame:
    """Broad ethnic group estimates per LSOA x date with v_pop and v_share (see ethnicity.py)."""
    columns = ["lsoa_code", "reference_date", "ethnic_group", "estimate", "v_pop", "v_share", "total_estimate",
               "years_since_base"]
    counts = con.execute("SELECT * FROM est_ethnic_counts").df()
    if counts.empty or counts.loc[counts["ethnic_group"] != "Not stated", "n"].sum() <= 0:
        log.info("no recorded ethnicity: ethnicity_estimates will be empty")
        return pd.DataFrame({c: pd.Series(dtype="object" if c in ("lsoa_code", "ethnic_group") else "float")
                             for c in columns}).assign(reference_date=pd.Series(dtype="datetime64[us]"))
    alpha = settings.ethnicity_shrinkage
    keys = [*CELL_KEYS, "extract_date"]
    wide = counts.pivot_table(index=keys, columns="ethnic_group", values="n", aggfunc="sum", fill_value=0.0)
    for g in (*GROUPS, "Not stated"):
        if g not in wide.columns:
            wide[g] = 0.0
    wide = wide[[*GROUPS, "Not stated"]].reset_index()
    c = cells[[*keys, "estimate"]].merge(wide, on=keys, how="left").fillna({g: 0.0 for g in (*GROUPS, "Not stated")})
    geo = con.execute("SELECT lsoa_code, any_value(la_code) AS la_code FROM est_lsoa_geo GROUP BY 1").df()
    c = c.merge(geo, on="lsoa_code", how="left")
    c["la_code"] = c["la_code"].fillna("?")
    groups = list(GROUPS)

    la = c.groupby(["la_code", "extract_date"], as_index=False)[groups].sum()
    la_has = la[groups].sum(axis=1) > 0
    la = la[la_has]
    la_shares = la[groups].to_numpy() / la[groups].sum(axis=1).to_numpy()[:, None]
    la_prior = pd.concat([la[["la_code", "extract_date"]].reset_index(drop=True),
                          pd.DataFrame(la_shares, columns=[f"p_{g}" for g in groups])], axis=1)

    ls = c.groupby(["lsoa_code", "la_code", "extract_date"], as_index=False)[groups].sum()
    ls = ls.merge(la_prior, on=["la_code", "extract_date"], how="inner")
    ls_shares = shrink_shares(ls[groups].to_numpy(), ls[[f"p_{g}" for g in groups]].to_numpy(), alpha)
    lsoa_prior = pd.concat([ls[["lsoa_code", "extract_date"]].reset_index(drop=True),
                            pd.DataFrame(ls_shares, columns=[f"q_{g}" for g in groups])], axis=1)

    c = c.merge(lsoa_prior, on=["lsoa_code", "extract_date"], how="inner")
    x = c[groups].to_numpy()
    n = x.sum(axis=1)
    recorded = n + c["Not stated"].to_numpy()
    q = np.where(recorded > 0, c["Not stated"].to_numpy() / np.where(recorded > 0, recorded, 1.0), 1.0)
    p = shrink_shares(x, c[[f"q_{g}" for g in groups]].to_numpy(), alpha)
    est = c["estimate"].to_numpy()[:, None]
    e_g = est * p
    v_share = est ** 2 * share_variance(p, n, q, alpha)
    long = pd.DataFrame({
        "lsoa_code": np.repeat(c["lsoa_code"].to_numpy(), len(groups)),
        "reference_date": np.repeat(c["extract_date"].to_numpy(), len(groups)),
        "ethnic_group": np.tile(groups, len(c)),
        "estimate": e_g.ravel(),
        "v_share": v_share.ravel(),
    })
    out = long.groupby(["lsoa_code", "reference_date", "ethnic_group"], as_index=False)[["estimate", "v_share"]].sum()
    tot = rows[(rows["sex"] == "All") & (rows["age_band"] == "All")][["lsoa_code", "reference_date", "estimate", "variance",
                                                                        "years_since_base"]]
    tot = tot.rename(columns={"estimate": "total_estimate", "variance": "total_variance"})
    out = out.merge(tot, on=["lsoa_code", "reference_date"], how="left")
    share = np.where(out["total_estimate"] > 0, out["estimate"] / out["total_estimate"].where(out["total_estimate"] > 0, 1.0), 0.0)
    out["v_pop"] = share ** 2 * out["total_variance"]
    return out[columns]


# --------------------------------------------------------------------------------------- helpers

def _write(con: duckdb.DuckDBPyConnection, table: str, df: pd.DataFrame, date_cols=()) -> None:
    name = f"_est_frame_{table}"
    con.register(name, df)
    try:
        select = ", ".join(f'CAST("{c}" AS DATE) AS "{c}"' if c in date_cols else f'"{c}"' for c in df.columns)
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT {select} FROM {name}")
    finally:
        con.unregister(name)


def _log_coverage(con: duckdb.DuckDBPyConnection) -> None:
    dropped = con.execute(
        "SELECT count(*) FROM est_src_gp_register WHERE lsoa_code IS NOT NULL AND "
        "(date_of_birth IS NULL OR date_of_birth > extract_date)").fetchall()[0][0]
    if dropped:
        log.warning("%d GP register rows without a usable date of birth were left out of the list counts", dropped)
    outside = con.execute(
        "SELECT count(DISTINCT lsoa_code), count(*) FROM est_gp_patients "
        "WHERE lsoa_code NOT IN (SELECT lsoa_code FROM est_base)").fetchall()[0]
    if outside[0]:
        log.info("%d patient-extract rows in %d LSOAs without a base population are outside the estimates",
                 outside[1], outside[0])
