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
    g(t)      = [Lc(t) / S(c(t))] / [Lc(t0) / S(c(t0))] over the LA: list / school census of
                children of years R-11 (1 without a census)                   (school_signal.py)
    est(t)    = B~(t) + (L*(t) / g(t) - L~*(t0 -> t)) / I~, floored at 0 by band (cohort_model.py)
                ~ = aged by birth cohort from the base date / t0 (cohorts.py)
    Deaths are in the list change once; list cleaning is not added back; flows are not uplifted.
    T       = moves per 1,000 a year: GP and pupil churn pooled, + asylum    (turbulence.py)
    var     = K^2 [E^2 s^2(T, y, tau, V) + (g^2 + h tau) sum E_c^2 + psi max(E,1)]  (margins.py)
    var_A   = (1 - rho) sum w^2 var + rho (sum w sd)^2 + (l0^2 + (l1 y)^2) E_A^2
              + sum_b (m0_g^2 + (m1_g y)^2) E_A,b^2
              [+ omega^2 sum w(1-w) E^2 for wards]        up the geography (sql/publish/03)

Revision policy: the estimate for extract t uses the base, the first extract and extract t only
(the list-informed base and the inflation are fixed at t0), and its margin the turbulence of the
periods up to t only (turbulence.py), so a later extract never revises either. With a school
census, g(t) uses the census nearest t (up to 62 days after it): the estimate at t is revised once,
when that census arrives.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.config import EstimateSettings, parse_memory_size
from pipeline.sql import BackgroundSteps, create_table_from, run_steps

from .cohort_model import AGES, SEXES, roll_cohorts, split_persons_base
from .cohorts import BAND_LABELS
from .constrain import constrain_to_total
from .counts import estimate_from_counts
from .ethnicity import GROUPS, share_variance, shrink_shares
from .geography import assign_la
from .margins import age_terms_frame, load_mode_model, lsoa_la_wide_sd, predict_variance, z_value
from .school_signal import read_school_pupils
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
# sql/prepare steps whose tables only the later Python phases read (est_school_moves: build_turbulence;
# est_ethnic_counts: build_ethnicity): in register modes they run on a second DuckDB connection while the
# single-threaded phases before those (register_arrays, roll_cohorts, build_lsoa_rows) use one core
BACKGROUND_STEPS = ("est_school_moves", "est_ethnic_counts")


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
    with BackgroundSteps(con) as background:
        return _estimate_populations(con, settings, background)


def _estimate_populations(con: duckdb.DuckDBPyConnection, settings: EstimateSettings,
                          background: BackgroundSteps) -> dict:
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
    restore_limit = lambda: None  # noqa: E731 (register modes: DuckDB's memory limit while steps run in the background)
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
        params = {
            "base_date": base_date,
            "base_source": base_source,
            "birth_lag_days": int(settings.birth_registration_lag_days),
            "death_lag_days": int(settings.death_removal_lag_days),
            "flows_from_movements": flows_from_movements,
            "cleaning_threshold": float(settings.cleaning_threshold),
        }
        run_steps(con, PREPARE_DIR, params, skip=BACKGROUND_STEPS)
        restore_limit = _lower_memory_limit(con)  # DuckDB's share while its background steps run beside the arrays
        background.run_steps(PREPARE_DIR, BACKGROUND_STEPS, params, setup=prepare_sources)  # the est_src_* views
        _log_coverage(con)
        geo = con.execute("SELECT * FROM est_lsoa_geo").df()
        cells, notes = build_register_cells(con, settings, model, base_date, geo)
        background.wait("est_school_moves")
        turb = build_turbulence(con, model)
        report["register"] = {k: v for k, v in notes.items() if k != "single_years"}
    # single years of age by cohort (the bands are only for publishing), kept for audit and the back-test
    _write(con, "est_lsoa_single_years", notes.pop("single_years"), date_cols=("extract_date",))
    la_totals = con.execute("SELECT reference_date, la_code, population FROM est_src_la_totals "
                            "WHERE population IS NOT NULL").df() if info.has("la_totals") else None
    cells = apply_constraint(cells, geo, la_totals)
    rows = build_lsoa_rows(cells, turb, model)
    # the LA-wide error's SD at the base, each LA's own from its list-to-base gap (margins.la_wide_sd)
    rows["la_wide_sd"] = lsoa_la_wide_sd(model, rows, assign_la(geo, "lsoa_code"))
    audit_columns = [c for c in CELL_AUDIT_COLUMNS if c in cells.columns]
    _write(con, "est_lsoa_cells", cells[audit_columns], date_cols=("extract_date",))
    _write(con, "est_lsoa_rows", rows, date_cols=("reference_date",))
    background.wait()  # est_ethnic_counts
    restore_limit()
    ethnic = build_ethnicity(con, cells, rows, settings)
    _write(con, "est_lsoa_ethnic", ethnic, date_cols=("reference_date",))
    # the LA-wide error by age band, read by the roll-up (sql/publish/03_est_area_rows.sql)
    _write(con, "est_margin_age_terms", age_terms_frame(model))
    del cells, rows, ethnic  # the frames are in the database now: free their memory for the publish steps
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
    (est_list_sya), births not yet registered [K, n, 2] (est_vital_lag, band 0-4; added at age 0)
    and the deaths since the base date [K, n, 2, bands] (est_deaths; None without vital events).

    The tables are read as integer positions (LSOA, extract, sex, age: joined in SQL to the sorted
    LSOA list) and summed into the arrays with one np.bincount each: no string column per row
    passes through Python (at national scale est_list_sya has millions of rows)."""
    lsoas = sorted(r[0] for r in con.execute("SELECT DISTINCT lsoa_code FROM est_base_sya").fetchall())
    n, K = len(lsoas), len(ex)
    with _lsoa_positions(con, lsoas) as lsoa_index:
        lst = con.execute(
            "SELECT e.k, x.i, CASE WHEN l.sex = 'M' THEN 0 ELSE 1 END AS s, l.age, l.list_count "
            f"FROM est_list_sya l JOIN {lsoa_index} x ON x.lsoa_code = l.lsoa_code "
            "JOIN est_extracts e ON e.extract_date = l.extract_date").fetchnumpy()
        births = con.execute(
            "SELECT e.k, x.i, CASE WHEN v.sex = 'M' THEN 0 ELSE 1 END AS s, v.births_lag "
            f"FROM est_vital_lag v JOIN {lsoa_index} x ON x.lsoa_code = v.lsoa_code "
            "JOIN est_extracts e ON e.extract_date = v.extract_date "
            "WHERE v.age_band = '0-4' AND v.births_lag > 0").fetchnumpy()
        base = con.execute(
            "SELECT x.i, b.sex, b.age, b.population "
            f"FROM est_base_sya b JOIN {lsoa_index} x ON x.lsoa_code = b.lsoa_code").fetchnumpy()
        dead = con.execute(
            "SELECT e.k, x.i, CASE WHEN d.sex = 'M' THEN 0 ELSE 1 END AS s, b.band_order, d.deaths "
            f"FROM est_deaths d JOIN {lsoa_index} x ON x.lsoa_code = d.lsoa_code "
            "JOIN est_extracts e ON e.extract_date = d.extract_date "
            "JOIN ref_age_band b ON b.age_band = d.age_band WHERE d.deaths > 0").fetchnumpy()
    L = _scatter((K, n, 2, AGES), (lst["k"], lst["i"], lst["s"], lst["age"]), lst["list_count"])
    deaths = None
    if len(dead["k"]):  # vital events: deaths since the base date by extract x LSOA x sex x band
        deaths = _scatter((K, n, 2, len(BAND_LABELS)), (dead["k"], dead["i"], dead["s"], dead["band_order"]),
                          dead["deaths"])
    extra = _scatter((K, n, 2), (births["k"], births["i"], births["s"]), births["births_lag"])
    sex = np.asarray(base["sex"], dtype=object)
    by_sex = np.isin(sex, SEXES)
    if not by_sex.any():  # a persons-only base: split by the list's sex shares at t0
        pp = _scatter((n, AGES), (base["i"], base["age"]), base["population"])
        total = L[0].sum(axis=0)
        share = np.where(total.sum(axis=0) > 0, total / np.maximum(total.sum(axis=0), 1e-12), 0.5)
        pub = split_persons_base(pp, L[0], share)
    else:
        pub = _scatter((n, 2, AGES), (base["i"][by_sex], (sex[by_sex] == "F").astype(np.int64), base["age"][by_sex]),
                       base["population"][by_sex])
    return lsoas, pub, L, extra, deaths


class _positions:
    """A temporary view (<column>, i) giving each of `codes` its position, so that SQL hands back
    positions, not text (e.g. the sorted LSOA list: i indexes the arrays)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, name: str, column: str, codes: list[str]):
        self.con, self.name, self.column, self.codes = con, name, column, codes

    def __enter__(self) -> str:
        self.con.register(self.name, pd.DataFrame({self.column: pd.array(self.codes, dtype="string"),
                                                   "i": np.arange(len(self.codes), dtype=np.int64)}))
        return self.name

    def __exit__(self, *exc) -> None:
        self.con.unregister(self.name)


def _lsoa_positions(con: duckdb.DuckDBPyConnection, lsoas: list[str]) -> _positions:
    return _positions(con, "_est_lsoa_positions", "lsoa_code", lsoas)


def _scatter(shape: tuple, positions: tuple, values) -> np.ndarray:
    """An array of `shape` holding the sum of `values` at each position (one index array per axis)."""
    flat = np.ravel_multi_index(tuple(np.asarray(p, dtype=np.int64) for p in positions), shape)
    return np.bincount(flat, weights=np.asarray(values, dtype=float), minlength=int(np.prod(shape))).reshape(shape)


def build_register_cells(con: duckdb.DuckDBPyConnection, settings: EstimateSettings, model: dict, base_date,
                         geo: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Register mode on the cohort chassis (cohort_model.py): the list by LSOA x sex x single year
    exactly as the register shows it, rolled forward by cohort from the base date. The flows by
    reason (est_gp_flows) and the vital-event lags are joined for audit only: deaths are in the
    list change once (the vital events' deaths, est_deaths, only take the deaths before t0 off the
    aged base and count those since t0 one for one: cohort_model.roll_list_change), list cleaning
    is not added back and no flow is uplifted."""
    ex = con.execute("SELECT extract_date, k, years_since_base FROM est_extracts ORDER BY k").df()
    ex["extract_date"] = pd.to_datetime(ex["extract_date"])
    lsoas, pub, L, extra, deaths = register_arrays(con, ex)
    cells, single, notes = roll_cohorts(pub, L, ex, lsoas, geo, settings, model, base_date, births_unregistered=extra,
                                        constrain_ratio_change=False, list_ages_observed=True,
                                        school_pupils=read_school_pupils(con, lsoas), deaths=deaths)
    # the audit columns, by integer position (extract, LSOA, sex, band) rather than a merge on text keys
    pos = (cells["k"].to_numpy(np.int64), pd.Categorical(cells["lsoa_code"], categories=lsoas).codes.astype(np.int64),
           (cells["sex"] == "F").to_numpy(np.int64), cells["band_order"].to_numpy(np.int64))
    shape = (len(ex), len(lsoas), 2, len(BAND_LABELS))
    cumulative: dict[str, np.ndarray] = {}
    with _lsoa_positions(con, lsoas) as lsoa_index:
        for table, cols in (("est_vital_lag", ("births_lag", "deaths_lag")),
                            ("est_gp_flows", ("registrations", "from_abroad", "deregistrations", "cleaning"))):
            found = con.execute(
                f"SELECT e.k, x.i, CASE WHEN t.sex = 'M' THEN 0 ELSE 1 END AS s, b.band_order, "
                f"{', '.join('t.' + c for c in cols)} FROM {table} t "
                f"JOIN {lsoa_index} x ON x.lsoa_code = t.lsoa_code "
                "JOIN est_extracts e ON e.extract_date = t.extract_date "
                "JOIN ref_age_band b ON b.age_band = t.age_band WHERE t.sex IN ('M', 'F')").fetchnumpy()
            for col in cols:
                arr = _scatter(shape, (found["k"], found["i"], found["s"], found["band_order"]), found[col])
                cells[col] = arr[pos]
                if col in ("cleaning", "registrations", "deregistrations"):  # summed over the extracts so far
                    cumulative[col] = np.cumsum(arr, axis=0)[pos]
    for col in ("cleaning", "registrations", "deregistrations"):
        cells[f"cum_{col}"] = cumulative[col]
    # rows in the order of [*CELL_KEYS, "k"] as text (LSOA codes sort as `lsoas`, 'F' before 'M', bands as text)
    band_rank = np.argsort(np.argsort(np.array(BAND_LABELS, dtype=object)))
    order = np.lexsort((pos[0], band_rank[pos[3]], 1 - pos[2], pos[1]))
    cells = cells.iloc[order].reset_index(drop=True)
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
    cells = cells.assign(constrained=False)  # copy-on-write (pandas 3): the cells' data is not copied
    if la_totals is None or la_totals.empty:
        return cells
    lsoa_la = assign_la(geo, "lsoa_code")
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
    """LSOA rows by sex x band, plus the All margins, with their variances.

    Summed on arrays [extract, LSOA, sex (M, F, All), band (18 bands, All)] by integer position;
    LSOA, sex and band are categoricals in the frame returned (no text per row)."""
    value_cols = ["estimate", "est_sq", "list_count", "base_population", "published_base", "est_ratio_change",
                  "est_raw_list", "est_base_carried_forward"]
    codes = pd.Categorical(cells["lsoa_code"])
    lsoas = codes.categories
    k = cells["k"].to_numpy(np.int64)
    K, n, nb = int(k.max()) + 1, len(lsoas), len(BAND_LABELS)
    i = codes.codes.astype(np.int64)
    pos = (k, i, (cells["sex"] == "F").to_numpy(np.int64), cells["band_order"].to_numpy(np.int64))
    shape = (K, n, 3, nb + 1)  # sex: M, F, All; band: the bands, All

    def margins(values: np.ndarray, how) -> np.ndarray:
        grid = np.zeros(shape, dtype=values.dtype)
        grid[:, :, :2, :nb][pos] = values
        cell = grid[:, :, :2, :nb]
        grid[:, :, :2, nb] = how(cell, axis=3)
        grid[:, :, 2, :nb] = how(cell, axis=2)
        grid[:, :, 2, nb] = how(cell, axis=(2, 3))
        return grid

    estimate = cells["estimate"].to_numpy(float)
    grids = {col: margins(estimate ** 2 if col == "est_sq" else cells[col].to_numpy(float), np.sum) for col in value_cols}
    constrained = margins(cells["constrained"].to_numpy(bool), np.all)
    dates = np.empty(K, dtype=cells["extract_date"].to_numpy().dtype)
    dates[k] = cells["extract_date"].to_numpy()
    years = np.zeros(K)
    years[k] = cells["years_since_base"].to_numpy(float)
    # per LSOA x extract: turbulence (NaN where est_turbulence has none), the LSOA's base variance and total
    per_lsoa = {col: np.full((K, n), np.nan) for col in ("turbulence", "tau", "residents")}
    t_i = pd.Categorical(turb["lsoa_code"], categories=lsoas).codes.astype(np.int64)
    t_k = pd.Index(pd.to_datetime(dates)).get_indexer(pd.to_datetime(turb["extract_date"]))
    found = (t_i >= 0) & (t_k >= 0)
    for col in per_lsoa:
        per_lsoa[col][t_k[found], t_i[found]] = turb[col].to_numpy(float)[found]
    base_variance = np.full(n, np.nan)
    base_variance[i] = cells["base_variance"].to_numpy(float)
    flat = lambda a: np.broadcast_to(a, shape).reshape(-1)  # noqa: E731
    by_lsoa = lambda a: flat(a[:, :, None, None])  # noqa: E731
    rows = pd.DataFrame({
        "lsoa_code": pd.Categorical.from_codes(np.repeat(np.arange(n), 3 * (nb + 1))[None, :].repeat(K, 0).reshape(-1),
                                               categories=lsoas),
        "reference_date": np.repeat(dates, n * 3 * (nb + 1)),
        "sex": pd.Categorical.from_codes(flat(np.arange(3)[None, None, :, None]), categories=[*SEXES, "All"]),
        "age_band": pd.Categorical.from_codes(flat(np.arange(nb + 1)[None, None, None, :]),
                                              categories=[*BAND_LABELS, "All"]),
        "band_order": flat(np.arange(nb + 1, dtype=np.int64)[None, None, None, :]),
        **{col: grids[col].reshape(-1) for col in value_cols},
        "constrained": constrained.reshape(-1),
        "years_since_base": flat(years[:, None, None, None]),
        **{col: by_lsoa(per_lsoa[col]) for col in per_lsoa},
        "base_variance": flat(base_variance[None, :, None, None]),
        "lsoa_total": by_lsoa(grids["estimate"][:, :, 2, nb]),
    }, copy=False)  # the arrays are the columns (none is used again): not copied into one block of floats
    rows["variance"] = predict_variance(model, rows["estimate"], rows["years_since_base"], rows["tau"], rows["est_sq"],
                                        rows["turbulence"], rows["base_variance"], rows["residents"], rows["lsoa_total"])
    # a constraint to a known LA total removes the error the LSOAs share
    rows.loc[rows["constrained"], "variance"] *= (1.0 - model["rho"])
    rows = rows.rename(columns={"list_count": "gp_list"})
    return rows[["lsoa_code", "reference_date", "sex", "age_band", "band_order", "estimate", "variance", "gp_list",
                 "base_population", "published_base", "turbulence", "tau", "residents", "years_since_base", "constrained",
                 "est_ratio_change", "est_raw_list", "est_base_carried_forward", "est_sq", "base_variance"]]


# ------------------------------------------------------------------------------------- ethnicity

def build_ethnicity(con: duckdb.DuckDBPyConnection, cells: pd.DataFrame, rows: pd.DataFrame,
                    settings: EstimateSettings) -> pd.DataFrame:
    """Broad ethnic group estimates per LSOA x date with v_pop and v_share (see ethnicity.py)."""
    columns = ["lsoa_code", "reference_date", "ethnic_group", "estimate", "v_pop", "v_share", "total_estimate",
               "years_since_base"]
    n_rows, stated = con.execute("SELECT count(*), coalesce(sum(n) FILTER (WHERE ethnic_group <> 'Not stated'), 0) "
                                 "FROM est_ethnic_counts").fetchall()[0]
    if n_rows == 0 or stated <= 0:
        log.info("no recorded ethnicity: ethnicity_estimates will be empty")
        return pd.DataFrame({c: pd.Series(dtype="object" if c in ("lsoa_code", "ethnic_group") else "float")
                             for c in columns}).assign(reference_date=pd.Series(dtype="datetime64[us]"))
    alpha = settings.ethnicity_shrinkage
    groups = list(GROUPS)
    G = len(groups)
    # every array is indexed [extract k, LSOA i, sex s, band b (, group g)]: no text key per cell
    codes = pd.Categorical(cells["lsoa_code"])
    lsoas = list(codes.categories)
    k = cells["k"].to_numpy(np.int64)
    K, n, nb = int(k.max()) + 1, len(lsoas), len(BAND_LABELS)
    pos = (k, codes.codes.astype(np.int64), (cells["sex"] == "F").to_numpy(np.int64),
           cells["band_order"].to_numpy(np.int64))
    est = np.zeros((K, n, 2, nb))
    est[pos] = cells["estimate"].to_numpy(float)
    present = np.zeros((K, n), bool)
    present[pos[:2]] = True
    dates = np.empty(K, dtype=cells["extract_date"].to_numpy().dtype)
    dates[k] = cells["extract_date"].to_numpy()
    with _lsoa_positions(con, lsoas) as lsoa_index, \
            _positions(con, "_est_group_positions", "ethnic_group", [*groups, "Not stated"]) as group_index:
        found = con.execute(
            "SELECT e.k, x.i, CASE WHEN c.sex = 'M' THEN 0 ELSE 1 END AS s, b.band_order, g.i AS g, "
            "coalesce(c.n, 0) AS n FROM est_ethnic_counts c "
            f"JOIN {lsoa_index} x ON x.lsoa_code = c.lsoa_code "
            f"JOIN {group_index} g ON g.ethnic_group = c.ethnic_group "
            "JOIN est_extracts e ON e.extract_date = c.extract_date "
            "JOIN ref_age_band b ON b.age_band = c.age_band WHERE c.sex IN ('M', 'F')").fetchnumpy()
        geo = assign_la(con.execute("SELECT lsoa_code, la_code, ward_share FROM est_lsoa_geo").df(), "lsoa_code")
    wide = _scatter((K, n, 2, nb, G + 1), (found["k"], found["i"], found["s"], found["band_order"], found["g"]),
                    found["n"])
    x_all, not_stated = wide[..., :G], wide[..., G]
    la_of = geo.set_index("lsoa_code")["la_code"].reindex(lsoas).fillna("?").to_numpy(dtype=object)
    la_idx, la_codes = pd.factorize(la_of)

    # the LA's recorded shares, then each LSOA's shrunk towards its LA's (LSOA-dates of an LA without any: none)
    lsoa_counts = x_all.sum(axis=(2, 3))  # [K, n, G]
    la_counts = np.zeros((K, len(la_codes), G))
    np.add.at(la_counts, (slice(None), la_idx), lsoa_counts)
    la_total = la_counts.sum(axis=-1)
    la_shares = la_counts / np.where(la_total > 0, la_total, 1.0)[..., None]
    keep = present & (la_total[:, la_idx] > 0)  # [K, n]
    lsoa_prior = np.zeros((K, n, G))
    lsoa_prior[keep] = shrink_shares(lsoa_counts[keep], la_shares[:, la_idx][keep], alpha)

    # each cell's shares shrunk towards its LSOA's, applied to its estimate
    x = x_all[keep].reshape(-1, G)  # [cells of kept LSOA-dates, G]
    stated_n = x.sum(axis=1)
    recorded = stated_n + not_stated[keep].reshape(-1)
    q = np.where(recorded > 0, not_stated[keep].reshape(-1) / np.where(recorded > 0, recorded, 1.0), 1.0)
    prior = np.broadcast_to(lsoa_prior[keep][:, None, None, :], (int(keep.sum()), 2, nb, G)).reshape(-1, G)
    p = shrink_shares(x, prior, alpha)
    e = est[keep].reshape(-1, 1)
    e_g = (e * p).reshape(-1, 2 * nb, G).sum(axis=1)  # [kept LSOA-dates, G]
    v_share = (e ** 2 * share_variance(p, stated_n, q, alpha)).reshape(-1, 2 * nb, G).sum(axis=1)
    kk, ii = np.nonzero(keep)
    out = pd.DataFrame({
        "lsoa_code": np.repeat(np.asarray(lsoas, dtype=object)[ii], G),
        "reference_date": np.repeat(dates[kk], G),
        "ethnic_group": np.tile(np.asarray(groups, dtype=object), len(kk)),
        "estimate": e_g.ravel(),
        "v_share": v_share.ravel(),
    })
    tot = rows[(rows["sex"] == "All") & (rows["age_band"] == "All")][["lsoa_code", "reference_date", "estimate", "variance",
                                                                        "years_since_base"]]
    tot = tot.rename(columns={"estimate": "total_estimate", "variance": "total_variance"})
    tot["lsoa_code"] = np.asarray(tot["lsoa_code"], dtype=object)  # a categorical in build_lsoa_rows
    out = out.merge(tot, on=["lsoa_code", "reference_date"], how="left")
    share = np.where(out["total_estimate"] > 0, out["estimate"] / out["total_estimate"].where(out["total_estimate"] > 0, 1.0), 0.0)
    out["v_pop"] = share ** 2 * out["total_variance"]
    return out[columns]


# --------------------------------------------------------------------------------------- helpers

def _write(con: duckdb.DuckDBPyConnection, table: str, df: pd.DataFrame, date_cols=()) -> None:
    """CREATE OR REPLACE `table` from a frame; categorical columns (codes, e.g. lsoa_code of the
    single years) are written as text, `date_cols` as dates. The frame reaches DuckDB as an Arrow
    table (NaN as NULL, as DuckDB reads a frame): measured cheaper than its scan of the frame
    (12M single years at scale 0.1: 3.7 CPU-s against 4.3)."""
    name = f"_est_frame_{table}"
    con.register(name, pa.Table.from_pandas(df, preserve_index=False))
    try:
        def column(c: str) -> str:
            if c in date_cols:
                return f'CAST("{c}" AS DATE) AS "{c}"'
            if isinstance(df[c].dtype, pd.CategoricalDtype):
                return f'CAST("{c}" AS VARCHAR) AS "{c}"'
            return f'"{c}"'
        select = ", ".join(column(c) for c in df.columns)
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT {select} FROM {name}")
    finally:
        con.unregister(name)


def _lower_memory_limit(con: duckdb.DuckDBPyConnection, share: float = 0.5):
    """Lower DuckDB's memory limit to `share` of what it is, for the background steps: they run while
    the numpy arrays (register_arrays, roll_cohorts) sit on top of DuckDB's memory, which the stage's
    limit (arrays_memory_limit) leaves room for only when DuckDB is not working at the same time.
    Returns the function that sets the limit back (to DuckDB's own reading of it: 0.1 GiB steps)."""
    before = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]  # e.g. '3.7 GiB'
    size = parse_memory_size(str(before))
    if size is None:  # not a size DuckDB wrote as expected: left as it is
        return lambda: None
    con.execute(f"SET memory_limit = '{int(size * share)}B'")
    return lambda: con.execute(f"SET memory_limit = '{before}'")


def _log_coverage(con: duckdb.DuckDBPyConnection) -> None:
    dropped = con.execute(
        "SELECT count(*) FROM est_src_gp_register WHERE lsoa_code IS NOT NULL AND "
        "(date_of_birth IS NULL OR date_of_birth > extract_date)").fetchall()[0][0]
    if dropped:
        log.warning("%d GP register rows without a usable date of birth were left out of the list counts", dropped)
    outside = con.execute(  # est_gp_ages: the register counted by LSOA x extract x age (est_gp_patients is a view)
        "SELECT count(DISTINCT lsoa_code), coalesce(sum(m + f + u), 0) FROM est_gp_ages "
        "WHERE lsoa_code NOT IN (SELECT lsoa_code FROM est_base)").fetchall()[0]
    if outside[0]:
        log.info("%d patient-extract rows in %d LSOAs without a base population are outside the estimates",
                 outside[1], outside[0])
