"""Per-batch summaries of the loaded tables, computed in DuckDB, and the expectations on them.

Great Expectations never sees the database (its DuckDB/SQLAlchemy connector is unreliable): every
heavy step is a vectorised ``GROUP BY source_file`` here, and GX only checks the small pandas frames
that come out: one row per batch (loaded file), or one row per area × extract for the list-change
check. This module does not import great_expectations.

A `Check` is one such frame plus its expectations. An `Expect` is always "the values of one summary
column lie between min and max" (`expect_column_values_to_be_between`), read in one of two ways:

- ``per_row``: the frame has one row per batch; a batch passes when its row is within bounds;
- ``per_batch_mostly``: the frame has many rows per batch (areas); a batch passes when at least
  ``mostly`` of its rows are within bounds (GX evaluates it per batch with a row condition).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from pipeline.config import Settings
from pipeline.db import table_exists
from schemas.contracts import AGE_BANDS_5Y, LAYOUTS

# which canonical table each (source, layout) loads into
LAYOUT_TABLE = {(layout.source, layout.name): layout.table for layout in LAYOUTS}
log = logging.getLogger(__name__)
LIST_EXAMPLES = 5  # areas / codes quoted in a failure's details


@dataclass
class Expect:
    name: str  # short name reported in the results, e.g. "one_row_per_patient"
    column: str  # summary column checked
    min_value: float | None = None
    max_value: float | None = None
    strict_min: bool = False
    mostly: float = 1.0
    per_batch_mostly: bool = False
    details: str = ""  # template: filled from the batch's summary row (per_row), or with {unexpected} and {checked}
    notes: str = ""  # what the expectation means, shown in the data docs


@dataclass
class Check:
    name: str  # names its rows in the frame handed to GX (the `summary` column)
    table: str  # the canonical table it summarises ("files" for the ingest reports)
    frame: pd.DataFrame  # always has a `batch` column
    expectations: list[Expect]
    batches: list[str] = field(default_factory=list)  # batches to report (per_batch_mostly checks)


def batches_by_table(files) -> dict[str, list[str]]:
    """The loaded (not skipped) files of each canonical table, from the ingest reports."""
    out: dict[str, list[str]] = {}
    for report in files:
        if report.skipped or not report.layout:
            continue
        table = LAYOUT_TABLE.get((report.source, report.layout))
        if table:
            out.setdefault(table, []).append(report.file)
    return out


def build_checks(con: duckdb.DuckDBPyConnection, settings: Settings, files) -> tuple[list[Check], list[dict]]:
    """Every check that applies to what was loaded (tables without batches are left out), and a
    failed result for any summary that could not be computed."""
    batches = batches_by_table(files)
    builders = [("files", lambda: [files_check(files)])]
    if _has(con, batches, "gp_register"):
        builders += [("gp_register", lambda: [register_check(con, settings, files, batches.get("gp_register", []))]),
                     ("gp_register", lambda: list_change_checks(con, settings))]
    if _has(con, batches, "school_census"):
        builders.append(("school_census", lambda: [census_check(con, batches.get("school_census", []), files)]))
    for table, columns in COUNT_COLUMNS.items():
        if table != "base_population" and _has(con, batches, table):
            builders.append((table, lambda t=table, c=columns: [counts_check(con, t, c, batches.get(t, []))]))
    if _has(con, batches, "base_population"):
        builders.append(("base_population", lambda: [base_population_check(con, batches.get("base_population", []))]))
    if _has(con, batches, "survey_responses"):
        builders.append(("survey_responses", lambda: [survey_check(con, batches.get("survey_responses", []))]))
    checks, errors = [], []
    for table, build in builders:
        try:
            checks += build()
        except Exception as exc:  # reported, never raised: the other checks still run
            log.warning("validation summary for %s could not be computed: %s", table, exc, exc_info=True)
            errors.append({"batch": table, "expectation": "summary", "success": False, "observed": None,
                           "details": f"the summary could not be computed: {exc}"})
    return [check for check in checks if len(check.frame) or check.batches], errors


def _has(con, batches: dict[str, list[str]], table: str) -> bool:
    """The table exists and has batches (files reported for it, or rows loaded)."""
    if not table_exists(con, table):
        return False
    return bool(batches.get(table)) or bool(con.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchall())


def _with_batches(frame: pd.DataFrame, batches: list[str], fill: dict[str, object]) -> pd.DataFrame:
    """Add a row for every reported file the SQL summary did not see (a file with no rows loaded)."""
    missing = [b for b in batches if b not in set(frame["batch"])]
    if missing:
        extra = pd.DataFrame({"batch": missing, **{k: [v] * len(missing) for k, v in fill.items()}})
        frame = pd.concat([frame, extra], ignore_index=True) if len(frame) else extra
    order = {b: i for i, b in enumerate(batches)}
    return frame.sort_values("batch", key=lambda s: s.map(lambda b: order.get(b, len(order))),
                             kind="stable").reset_index(drop=True)


# --- every file ------------------------------------------------------------------------------
def files_check(files) -> Check:
    rows = [{"batch": r.file, "table": LAYOUT_TABLE.get((r.source, r.layout), r.source), "rows_read": r.rows_read,
             "rows_loaded": r.rows_loaded, "rows_quarantined": r.rows_quarantined,
             "rows_unaccounted": r.rows_read - r.rows_loaded - r.rows_quarantined}
            for r in files if not r.skipped]
    frame = pd.DataFrame(rows, columns=["batch", "table", "rows_read", "rows_loaded", "rows_quarantined",
                                        "rows_unaccounted"])
    return Check("files", "files", frame, [Expect(
        "rows_accounted_for", "rows_unaccounted", 0, 0,
        details="{rows_read} rows read = {rows_loaded} loaded + {rows_quarantined} quarantined "
                "+ {rows_unaccounted} unaccounted",
        notes="Every row read from a file is either loaded or quarantined.")])


# --- snapshots: one row per person per date, one date per file --------------------------------
def _snapshot_summary(con, table: str, date: str, key: str, files=()) -> pd.DataFrame:
    """One row per file: rows loaded, rows sharing their (date, key) with another row of the table, dates."""
    frame = con.execute(f"""
        SELECT source_file AS batch, count(*) AS rows_loaded, 0 AS duplicate_rows,
               count(DISTINCT {date}) AS dates,
               CAST(min({date}) AS VARCHAR) AS first_date, CAST(max({date}) AS VARCHAR) AS last_date,
               CAST(sum(source_line) AS BIGINT) AS lines_sum
        FROM {table} GROUP BY source_file ORDER BY source_file""").df()
    checked = _keys_checked_at_ingest(frame, files, (date, key))
    frame = frame.drop(columns="lines_sum")
    if checked:
        return frame
    # the repeated keys: none when the 64-bit hashes of the keys all differ (counting distinct hashes is
    # cheaper than grouping them); else a hash of the key is grouped (cheaper than the key's text over
    # tens of millions of rows), then the exact key only among the rows whose hash repeats
    if con.execute(f"SELECT count(*) = count(DISTINCT hash({date}, {key})) FROM {table}").fetchall()[0][0]:
        return frame
    return con.execute(f"""
        WITH dup AS (SELECT {date}, {key} FROM {table}
                     WHERE hash({date}, {key}) IN (SELECT hash({date}, {key}) AS h FROM {table} GROUP BY h HAVING count(*) > 1)
                     GROUP BY {date}, {key} HAVING count(*) > 1)
        SELECT t.source_file AS batch, count(*) AS rows_loaded,
               count(d.{key}) AS duplicate_rows,
               count(DISTINCT t.{date}) AS dates,
               CAST(min(t.{date}) AS VARCHAR) AS first_date, CAST(max(t.{date}) AS VARCHAR) AS last_date
        FROM {table} AS t LEFT JOIN dup AS d ON d.{date} = t.{date} AND d.{key} = t.{key}
        GROUP BY t.source_file ORDER BY t.source_file""").df()


def _keys_checked_at_ingest(frame: pd.DataFrame, files, key: tuple[str, ...]) -> bool:
    """True when the table holds the rows ingest loaded (each file's row count and sum of line numbers are its
    report's) and ingest checked every one of them on `key` (`FileReport.keys_checked`): no row repeats another's
    key, so the keys need not be grouped again (2-3 CPU-s per 10 million rows). A row added, removed, copied or
    loaded by other means, or a report without the check, sends the summary to the full count. (A key edited in
    place between ingest and validation would not be seen; nothing in the pipeline edits a loaded table.)"""
    reports = {r.file: r for r in files if not r.skipped}
    for batch, rows, lines in zip(frame["batch"], frame["rows_loaded"], frame["lines_sum"]):
        report = reports.get(batch)
        if (report is None or report.rows_loaded != rows or tuple(getattr(report, "keys_checked", ())) != key
                or getattr(report, "lines_loaded_sum", None) is None or pd.isna(lines)
                or int(report.lines_loaded_sum) != int(lines)):
            return False
    return len(frame) > 0


def register_check(con, settings: Settings, files, batches: list[str]) -> Check:
    frame = _snapshot_summary(con, "gp_register", "extract_date", "patient_id", files)
    frame = _with_batches(frame, batches, {"rows_loaded": 0, "duplicate_rows": 0, "dates": 0,
                                           "first_date": None, "last_date": None})
    reports = {r.file: r for r in files if not r.skipped}
    matched, read, unknown = [], [], []
    for batch in frame["batch"]:
        report = reports.get(batch)
        n_read = report.rows_read if report else None
        n_unknown = report.quarantined_by_rule.get("unknown_postcode", 0) if report else None
        read.append(n_read)
        unknown.append(n_unknown)
        matched.append(round((n_read - n_unknown) / n_read, 6) if n_read else None)
    frame["rows_read"] = pd.array(read, dtype="Int64")
    frame["unknown_postcode_rows"] = pd.array(unknown, dtype="Int64")
    frame["postcode_match"] = pd.array(matched, dtype="Float64")
    v = settings.validation
    return Check("gp_register", "gp_register", frame, [
        *snapshot_expectations("patient", "extract", "register"),
        Expect("postcode_match", "postcode_match", v.min_postcode_match, 1,
               details="{unknown_postcode_rows} of {rows_read} rows had a postcode not in the directory "
                       f"(share found: {{postcode_match}}; at least {v.min_postcode_match} expected)",
               notes="Share of the file's rows whose postcode is in the postcode directory "
                     "(rows with an unknown postcode are quarantined)."),
    ])


def snapshot_expectations(unit: str, snapshot: str, file_kind: str) -> list[Expect]:
    """One row per unit per snapshot, and one snapshot date per file (register extracts, school censuses)."""
    key = f"({snapshot}_date, {unit}_id)"
    return [
        Expect(f"one_row_per_{unit}", "duplicate_rows", 0, 0,
               details=f"{{duplicate_rows}} of {{rows_loaded}} rows share their {key} with another row",
               notes=f"One row per {unit} per {snapshot}: no {key} appears twice in the table (taken from ingest's "
                     f"row checks while the table holds exactly the rows ingest loaded and checked; counted otherwise)."),
        Expect(f"one_{snapshot}_date", "dates", 1, 1,
               details=f"{{dates}} distinct {snapshot} date(s) ({{first_date}} to {{last_date}})",
               notes=f"A {file_kind} file is one snapshot: exactly one {snapshot} date."),
    ]


def census_check(con, batches: list[str], files=()) -> Check:
    frame = _snapshot_summary(con, "school_census", "census_date", "pupil_id", files)
    frame = _with_batches(frame, batches, {"rows_loaded": 0, "duplicate_rows": 0, "dates": 0,
                                           "first_date": None, "last_date": None})
    return Check("school_census", "school_census", frame, [
        *snapshot_expectations("pupil", "census", "census"),
    ])


# --- list change between consecutive register extracts --------------------------------------
def list_pairs(con, area: str, min_list: int) -> pd.DataFrame:
    """Area × consecutive-extract pairs with list ≥ `min_list` in either extract, and their change.

    An area missing from one of the two extracts counts as a list of 0 there. ``batch`` is the
    file (or files, joined by '; ') of the later extract.
    """
    return con.execute(f"""
        WITH lists AS (
            SELECT extract_date, {area} AS area, count(*) AS n FROM gp_register
            WHERE {area} IS NOT NULL AND extract_date IS NOT NULL GROUP BY ALL),
        dates AS (
            SELECT extract_date, lag(extract_date) OVER (ORDER BY extract_date) AS prev_date
            FROM (SELECT DISTINCT extract_date FROM lists)),
        files AS (
            SELECT extract_date, string_agg(DISTINCT source_file, '; ' ORDER BY source_file) AS batch
            FROM gp_register WHERE extract_date IS NOT NULL GROUP BY extract_date),
        areas AS (SELECT DISTINCT area FROM lists),
        pairs AS (
            SELECT d.extract_date, d.prev_date, a.area,
                   coalesce(cur.n, 0) AS list_now, coalesce(prev.n, 0) AS list_prev
            FROM dates AS d CROSS JOIN areas AS a
            LEFT JOIN lists AS cur ON cur.extract_date = d.extract_date AND cur.area = a.area
            LEFT JOIN lists AS prev ON prev.extract_date = d.prev_date AND prev.area = a.area
            WHERE d.prev_date IS NOT NULL)
        SELECT f.batch, p.area, CAST(p.prev_date AS VARCHAR) AS prev_date, CAST(p.extract_date AS VARCHAR) AS extract_date,
               p.list_prev, p.list_now,
               round(abs(p.list_now - p.list_prev) / greatest(p.list_prev, 1), 6) AS change,
               greatest(p.list_now, p.list_prev) >= {int(min_list)} AS checked
        FROM pairs AS p JOIN files AS f USING (extract_date)
        ORDER BY p.extract_date, p.area""").df()


def _later_batches(con) -> list[str]:
    """The files of every register extract after the first (those with a previous extract to compare)."""
    rows = con.execute("""
        SELECT string_agg(DISTINCT source_file, '; ' ORDER BY source_file) FROM gp_register
        WHERE extract_date IS NOT NULL GROUP BY extract_date ORDER BY extract_date""").fetchall()
    return [r[0] for r in rows[1:]]


def change_text(row) -> str:
    return f"{row['area']}: {row['list_prev']} → {row['list_now']} ({row['list_now'] / max(row['list_prev'], 1) - 1:+.1%})"


def list_change_checks(con, settings: Settings) -> list[Check]:
    v = settings.validation
    mostly = getattr(v, "list_change_mostly", 0.95)
    later = _later_batches(con)
    checks = []
    lsoa = list_pairs(con, "lsoa_code", v.min_list_for_change_check)
    lsoa = lsoa[lsoa["checked"]].drop(columns="checked").reset_index(drop=True)
    checks.append(Check("gp_register_lsoa_list_change", "gp_register", lsoa, [Expect(
        "lsoa_list_change", "change", 0, v.max_list_change, mostly=mostly, per_batch_mostly=True,
        details=f"{{unexpected}} of {{checked}} LSOA(s) with a list of at least {v.min_list_for_change_check} "
                f"changed by more than {v.max_list_change:.0%} since the previous extract "
                f"(at least {mostly:.0%} must be within)",
        notes=f"Per LSOA with a list of at least {v.min_list_for_change_check} in either extract, "
              f"|list(t) / list(t-1) - 1| <= {v.max_list_change} between consecutive extracts, "
              f"for at least {mostly:.0%} of the LSOAs of each extract.")], batches=later))

    la = list_pairs(con, "la_code", v.min_list_for_change_check)
    rows = []
    for batch in later:
        own = la[la["batch"] == batch]
        checked = own[own["checked"]]
        worst = checked.sort_values("change", ascending=False)
        rows.append({
            "batch": batch,
            "las_checked": len(checked),
            "max_change": float(worst["change"].iloc[0]) if len(worst) else None,
            "la_lists": "; ".join(change_text(r) for _, r in worst.iterrows()) if len(worst)
            else f"no local authority with a list of {v.min_list_for_change_check} or more",
        })
    frame = pd.DataFrame(rows, columns=["batch", "las_checked", "max_change", "la_lists"])
    frame["max_change"] = frame["max_change"].astype("Float64")
    checks.append(Check("gp_register_la_list_change", "gp_register", frame, [Expect(
        "la_list_change", "max_change", 0, v.max_list_change,
        details="largest change in a local authority's list: {max_change} ({la_lists})",
        notes=f"Per local authority (list of at least {v.min_list_for_change_check}), "
              f"|list(t) / list(t-1) - 1| <= {v.max_list_change} between consecutive extracts.")]))
    return checks


# --- counts that cannot be negative ----------------------------------------------------------
COUNT_COLUMNS = {
    "vital_events": ("births", "deaths"),
    "asylum_allocations": ("persons_allocated",),
    "incidents": ("count",),
    "gp_counts": ("patients",),
    "base_population": ("population",),
}


def _count_summary(table: str, columns: tuple[str, ...]) -> str:
    parts = []
    for c in columns:
        parts.append(f'min("{c}") AS min_{c}, count(*) FILTER (WHERE "{c}" < 0) AS negative_{c}')
    return f"SELECT source_file AS batch, count(*) AS rows_loaded, {', '.join(parts)} FROM {table} GROUP BY source_file"


def _count_expects(columns: tuple[str, ...]) -> list[Expect]:
    return [Expect(f"non_negative_{c}", f"min_{c}", 0, None,
                   details=f"{{negative_{c}}} of {{rows_loaded}} rows with negative {c} (smallest: {{min_{c}}})",
                   notes=f"No negative {c}.") for c in columns]


def _counts_frame(con, table: str, columns: tuple[str, ...], batches: list[str]) -> pd.DataFrame:
    frame = con.execute(_count_summary(table, columns) + " ORDER BY batch").df()
    return _with_batches(frame, batches, {"rows_loaded": 0, **{f"negative_{c}": 0 for c in columns},
                                          **{f"min_{c}": None for c in columns}})


def counts_check(con, table: str, columns: tuple[str, ...], batches: list[str]) -> Check:
    return Check(table, table, _counts_frame(con, table, columns, batches), _count_expects(columns))


def base_population_check(con, batches: list[str]) -> Check:
    columns = COUNT_COLUMNS["base_population"]
    frame = _counts_frame(con, "base_population", columns, batches)
    expects = _count_expects(columns)
    bands = ", ".join(f"'{b}'" for b in AGE_BANDS_5Y)
    cells = 2 * len(AGE_BANDS_5Y)
    complete = con.execute(f"""
        WITH per_area AS (
            SELECT source_file, reference_date, lsoa_code,
                   greatest(count(DISTINCT (sex, age_band)) FILTER (WHERE sex IN ('M', 'F') AND age_band IN ({bands})),
                            -- a persons-only base (sex P) is complete with every band: the estimates split it by sex
                            2 * count(DISTINCT age_band) FILTER (WHERE sex = 'P' AND age_band IN ({bands}))) AS n
            FROM base_population GROUP BY ALL)
        SELECT source_file AS batch, count(*) AS areas,
               count(*) FILTER (WHERE n < {cells}) AS incomplete_areas,
               coalesce(nullif(array_to_string(list_slice(
                   list(lsoa_code || ' ' || reference_date || ' (' || n || ' of {cells} cells)' ORDER BY lsoa_code, reference_date)
                       FILTER (WHERE n < {cells}), 1, {LIST_EXAMPLES}), ', '), ''), 'none') AS examples
        FROM per_area GROUP BY source_file""").df()
    frame = frame.merge(complete, on="batch", how="left")
    frame["areas"] = frame["areas"].fillna(0).astype("int64")
    frame["incomplete_areas"] = frame["incomplete_areas"].fillna(0).astype("int64")
    frame["examples"] = frame["examples"].fillna("none")
    expects.append(Expect(
        "all_sex_age_cells", "incomplete_areas", 0, 0,
        details=f"{{incomplete_areas}} of {{areas}} LSOA(s) lack some of the {cells} sex × age-band cells "
                "(e.g. {examples})",
        notes=f"Every LSOA has both sexes and all {len(AGE_BANDS_5Y)} five-year age bands."))
    return Check("base_population", "base_population", frame, expects)


# --- survey -------------------------------------------------------------------------------
def survey_check(con, batches: list[str]) -> Check:
    frame = con.execute("""
        WITH dup AS (SELECT survey_id, respondent_id FROM survey_responses GROUP BY ALL HAVING count(*) > 1)
        SELECT s.source_file AS batch, count(*) AS rows_loaded, count(d.respondent_id) AS duplicate_rows,
               min(s.weight) AS min_weight, count(*) FILTER (WHERE s.weight <= 0) AS non_positive_weights
        FROM survey_responses AS s
        LEFT JOIN dup AS d ON d.survey_id IS NOT DISTINCT FROM s.survey_id AND d.respondent_id = s.respondent_id
        GROUP BY s.source_file ORDER BY s.source_file""").df()
    frame = _with_batches(frame, batches, {"rows_loaded": 0, "duplicate_rows": 0, "min_weight": None,
                                           "non_positive_weights": 0})
    return Check("survey_responses", "survey_responses", frame, [
        Expect("unique_respondent", "duplicate_rows", 0, 0,
               details="{duplicate_rows} of {rows_loaded} rows share their respondent_id with another row of the same survey",
               notes="respondent_id is unique within survey_id."),
        Expect("positive_weight", "min_weight", 0, None, strict_min=True,
               details="{non_positive_weights} of {rows_loaded} rows with a weight of 0 or less (smallest: {min_weight})",
               notes="Weights, where given, are greater than 0."),
    ])


def plain(value):
    """A JSON-friendly Python value."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, (dt.date, dt.datetime, pd.Timestamp)):
        return value.isoformat()
    return value
