"""Ingest: raw extracts -> checked, placed, canonical DuckDB tables, with nothing lost.

Which files are read is the raw/ folder policy (`inventory`); everything else in raw/ is listed
with the reason it was not read. For every file read (geography first, since every other source
is placed through the postcode directory):

1. hash it; a file whose content was already loaded under another name is skipped and reported;
2. read it as text with line numbers (`reader`), mapping local header variants;
3. recognise its layout from its columns (`schemas.contracts.LAYOUTS`);
4. check every row at once with the SQL compiled from its contract (`rules`), dates in the forms
   configured for the source;
5. check its keys against the rows already loaded from other files (a patient twice for one
   extract date): the run stops, or (configured) the repeats are quarantined - never loaded twice;
6. load the valid rows into the canonical table (reshaping published layouts), and send every
   other row to the quarantine with its file, line, column, rule and a plain message; anything
   that looks like an NHS number is redacted there;
7. a file with no data rows, or whose every row was quarantined, stops the run (or, configured,
   is reported as a warning on the run's final line).

`ingest_raw` returns one `FileReport` per file; rows_read (non-blank data lines) =
rows_loaded + rows_quarantined always.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.config import Settings
from pipeline.db import scalar
from pipeline.ingest.inventory import NotRead, RawFolderError, take_inventory
from pipeline.ingest.reader import IngestError, UnreadableFile, file_hash, finish_csv_pass, read_raw_file
from pipeline.ingest.rules import compile_checks, quote
from pipeline.sql import create_table_from
from pipeline.vocabulary import load_vocabulary
from schemas.contracts import KNOWN_LANGUAGES, SOURCES, Layout, layouts_for
from schemas.types import redact_nhs_numbers_sql

__all__ = ["IngestError", "IngestResult", "FileReport", "RawFolderError", "UnreadableFile", "NothingLoaded",
           "DuplicateAcrossFiles", "ingest_raw", "write_quarantine"]

log = logging.getLogger(__name__)
SQL = Path(__file__).parent / "sql"

# columns computed on load from columns of the same row
DERIVED = {
    "school_census": {
        "ethnic_major": "(SELECT r.ethnic_group FROM ref_ethnic_code r WHERE r.scheme = 'dfe' AND r.code = valid.ethnicity)",
    },
    "survey_responses": {  # the census group, with Chinese placed as configured
        "ethnic_group": "(SELECT r.ethnic_group FROM ref_ethnic_code r WHERE r.scheme = 'survey' "
                        "AND r.code = lower(valid.ethnic_group))",
    },
    "gp_counts": {"patients": "number_of_patients"},
    "gp_practice_age": {"patients": "number_of_patients"},
    "asylum_support": {"reference_date": "date", "la_code": "lad_code", "la_name": "local_authority"},
}


@dataclass
class FileReport:
    source: str
    file: str
    sha256: str
    layout: str | None = None
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    blank_lines: int = 0  # blank lines (not data lines; not counted in rows_read)
    skipped: str | None = None  # why the file was not loaded (duplicate of another file, unreadable)
    quarantined_by_rule: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # the unique key (`Contract.unique_key`) every loaded row was checked on: no row loaded from this file repeats
    # the key of another of its rows (`duplicate_record`) or of a row loaded before it (`duplicate_across_files`);
    # validation reads it instead of grouping every key again while the table holds exactly these rows: as many,
    # and the same lines (the sum of their line numbers, `lines_loaded_sum`)
    keys_checked: list[str] = field(default_factory=list)
    lines_loaded_sum: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


QUARANTINE_COLUMNS = ["file", "line", "column", "rule", "message", "value"]


class NothingLoaded(IngestError):
    """A file gave no rows to load: empty, or every row quarantined."""


class DuplicateAcrossFiles(IngestError):
    """Rows of one file repeat keys already loaded from another (a patient twice for one extract date)."""


@dataclass
class IngestResult:
    files: list[FileReport]
    quarantine: dict[str, pd.DataFrame]  # source -> quarantined rows (file, line, column, rule, message, value, …)
    not_read: list[NotRead] = field(default_factory=list)  # what raw/ holds that was not read, and why
    warnings: list[str] = field(default_factory=list)  # for the run's final line

    def report_fields(self) -> dict:
        """What ingest adds to run_report.json (rows are balanced over data lines)."""
        return {
            "files": [f.as_dict() for f in self.files],
            "totals": {key: sum(getattr(f, key) for f in self.files)
                       for key in ("rows_read", "rows_loaded", "rows_quarantined", "blank_lines")},
            "files_skipped": [f.file for f in self.files if f.skipped],
            "not_read": [item.as_dict() for item in self.not_read],
            "warnings": list(self.warnings),
        }


def write_quarantine(result: IngestResult, folder: Path) -> None:
    """processed/quarantine/<source>.csv for every source read (header only when nothing failed).

    For the analyst only: it holds raw fields, so it is never copied into the partner pack.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for source in sorted({f.source for f in result.files}):
        frame = result.quarantine.get(source, pd.DataFrame(columns=QUARANTINE_COLUMNS))
        frame.to_csv(folder / f"{source}.csv", index=False)


# canonical tables whose rows are counted: a key loaded from two files would count twice
CROSS_FILE_KEYS = ("gp_register", "gp_movements", "gp_counts", "gp_practice_age", "school_census", "school_counts", "survey_responses",
                   "vital_events", "asylum_allocations", "incidents", "base_population")


def list_raw_files(raw_dir: Path, source: str, read_subfolders: bool = False) -> list[Path]:
    """The files of one source that a run reads (the raw/ folder policy in `inventory`)."""
    return take_inventory(raw_dir, read_subfolders, unknown_folders="skip").files.get(source, [])


# DuckDB's storage of record-level identifiers (one distinct value a row): ZSTD instead of the automatic choice
# (DICT_FSST, whose dictionary is as long as the column). Measured on 3 million patient_ids: 0.35 CPU-s to write
# against 1.23, a third of the blocks, the same CPU to read (benchmarks/results/ing4.md). The people's postcodes
# likewise (millions of distinct values, read by no later stage: places come from the geography codes): on 6.2 million
# register rows the whole insert took 6.4-6.5 CPU-s against 7.7-8.0, in 507 blocks against 606
# (benchmarks/results/ingest_ing7.md). The geography codes keep DICT_FSST: the stages group by them, and ZSTD
# made those reads 1.3 to 6 times slower. A storage hint, not part of canonical_tables.sql, which stays portable SQL.
COMPRESSION = {"gp_register": {"patient_id": "zstd", "postcode": "zstd"},
               "school_census": {"pupil_id": "zstd", "home_postcode": "zstd"}}


def create_canonical_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The canonical tables, empty (`sql/canonical_tables.sql`), with `COMPRESSION`'s columns stored as it says."""
    con.execute((SQL / "canonical_tables.sql").read_text())
    for table, methods in COMPRESSION.items():
        columns = con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
                              "AND table_catalog = current_database() AND table_schema = current_schema() "
                              "ORDER BY ordinal_position", [table]).fetchall()
        defined = ", ".join(f"{quote(name)} {sql_type}" + (f" USING COMPRESSION {methods[name]}" if name in methods else "")
                            for name, sql_type in columns)
        con.execute(f"CREATE OR REPLACE TABLE {table} ({defined})")


def ingest_raw(con: duckdb.DuckDBPyConnection, settings: Settings, progress=None) -> IngestResult:
    """Load every raw file into the canonical tables of `con` (which should be a fresh database)."""
    create_canonical_tables(con)
    load_vocabulary(con, settings.vocabulary.chinese_ethnic_group)
    reports: list[FileReport] = []
    quarantine: dict[str, list[pd.DataFrame]] = {}
    seen: dict[str, str] = {}
    inventory = take_inventory(settings.raw_dir, settings.ingest.read_subfolders, settings.ingest.unknown_folders)
    for item in inventory.not_read:
        (log.warning if item.warning else log.info)("raw/%s: not read (%s)", item.path, item.reason)
    warnings = list(inventory.warnings)
    files = inventory.files
    if progress:
        progress.start(sum(len(paths) for paths in files.values()))
    for source, paths in files.items():
        for path in paths:
            report = FileReport(source, _relative(path, settings.raw_dir), file_hash(path))
            reports.append(report)
            if report.sha256 in seen:
                report.skipped = f"duplicate of {seen[report.sha256]} (same content); not loaded again"
                log.warning("%s: skipped, same content as %s", report.file, seen[report.sha256])
            else:
                try:
                    frame = load_file(con, path, source, report, settings)
                    seen[report.sha256] = report.file
                    if frame is not None and len(frame):
                        quarantine.setdefault(source, []).append(frame)
                    if report.rows_loaded == 0:
                        warnings.append(_nothing_loaded(report, frame, settings))
                except UnreadableFile as exc:
                    _unreadable(report, settings, str(exc))
                    warnings.append(f"{report.file}: {report.skipped}")
            if progress:
                progress.advance(report.file)
        if source == "geography":  # every later source is placed through it
            build_place_index(con)
    return IngestResult(reports, {s: pd.concat(f, ignore_index=True) for s, f in quarantine.items()},
                        inventory.not_read, warnings)


def _nothing_loaded(report: FileReport, frame: pd.DataFrame | None, settings: Settings) -> str:
    """A file that loaded nothing stops the run, or (configured) becomes a warning for the final line."""
    if report.rows_read == 0:
        problem = "holds a header but no data rows"
    else:
        rules = ", ".join(f"{rule} {n}" for rule, n in sorted(report.quarantined_by_rule.items(), key=lambda kv: -kv[1]))
        first = frame.iloc[0]
        problem = (f"none of its {report.rows_read} rows loaded: all quarantined ({rules}); first at line {first['line']}: "
                   f"{first['message']}")
    if settings.ingest.on_nothing_loaded == "stop":
        raise NothingLoaded(f"{report.file}: {problem}. Fix or remove the file, or set "
                            f"[ingest] on_nothing_loaded = \"skip\" in config.toml to go on without it.")
    log.warning("%s: %s", report.file, problem)
    return f"{report.file}: {problem}"


def _unreadable(report: FileReport, settings: Settings, message: str) -> None:
    if settings.ingest.on_unreadable == "stop":
        raise UnreadableFile(message)
    report.skipped = f"unreadable: {message}"
    log.error("skipped unreadable file %s", message)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def build_place_index(con: duckdb.DuckDBPyConnection) -> None:
    """Once the postcode directory is in: the place index, the LSOA lookup and area names."""
    create_table_from(con, "place_index", SQL / "place_index.sql")
    create_table_from(con, "lsoa_lookup", SQL / "lsoa_lookup.sql")
    con.execute(f"INSERT INTO area_names {(SQL / 'area_names_from_directory.sql').read_text()}")


def choose_layout(source: str, columns: list[str], path: Path) -> Layout:
    candidates = layouts_for(source)
    fitting = [layout for layout in candidates if layout.required <= set(columns)]
    if fitting:
        return max(fitting, key=lambda layout: len(layout.required))
    nearest = min(candidates, key=lambda layout: len(layout.required - set(columns)))
    missing = ", ".join(sorted(nearest.required - set(columns)))
    raise UnreadableFile(
        f"{path}: the columns do not match any accepted {source} layout; missing {missing} "
        f"(found: {', '.join(columns)}). Map local column names in config.toml [ingest.header_map.{source}]")


def load_file(con, path: Path, source: str, report: FileReport, settings: Settings) -> pd.DataFrame | None:
    """Check one file and load its valid rows; return its quarantined rows."""
    raw = read_raw_file(con, path, "raw_file", source, settings.ingest.header_map)
    layout = choose_layout(source, raw.columns, path)
    report.layout = layout.name
    _check_reference_date(layout, raw.columns, path)
    contract = layout.contract
    contract_columns = set(layout.columns)
    extra = [c for c in raw.columns if c not in contract_columns] if contract.keep_extra_columns else []
    source_table = raw.table
    missing = [c for c in layout.columns if c not in raw.columns]  # optional columns absent from the file
    if missing:
        source_table = "raw_file_all"
        nulls = ", ".join(f"CAST(NULL AS VARCHAR) AS {quote(c)}" for c in missing)
        con.execute(f"CREATE OR REPLACE TEMP VIEW {source_table} AS SELECT *, {nulls} FROM {raw.table}")
    checks = compile_checks(contract, source_table, extra, settings.ingest.date_forms_for(source), carry=raw.carry,
                            plain=raw.plain)
    con.execute("DROP VIEW IF EXISTS typed")
    # one pass over the file's lines: split, cleaned, typed (and, for a CSV file, each line's structural
    # problem found: its rejects are made from the typed rows, which then leave those lines out)
    con.execute(f"CREATE OR REPLACE TEMP TABLE typed_store AS {checks.store}")
    finish_csv_pass(con, raw, "typed_store")
    report.rows_read = raw.rows_read
    report.blank_lines = raw.blank_lines
    rows = "typed_store" if not raw.carry else "(SELECT * FROM typed_store WHERE __problem IS NULL)"
    con.execute(f"CREATE OR REPLACE TEMP VIEW typed AS {checks.typed_view.format(store=rows)}")
    keys_unique = bool(checks.keys_unique) and scalar(con, checks.keys_unique)
    con.execute(f"CREATE OR REPLACE TEMP TABLE violations AS "
                f"{checks.violations_keys_unique if keys_unique else checks.violations}")
    if raw.rejects:
        con.execute(f"""INSERT INTO violations SELECT __line, 0, NULL, rule, message, raw_line, 1 FROM {raw.rejects}""")
    check_keys_across_files(con, layout, report.file, settings)
    # violations: each bad row's first problem and how many it has (row checks; structural rejects and
    # repeats across files are one problem each); a row with several sources keeps its first
    con.execute("""CREATE OR REPLACE TEMP TABLE failed AS
        SELECT __line, "column", rule, message, value, sum(problems) OVER (PARTITION BY __line) - 1 AS other_problems
        FROM (SELECT *, row_number() OVER (PARTITION BY __line ORDER BY check_order) AS k FROM violations)
        QUALIFY k = 1""")
    redacted = [r.column for r in contract.row_rules if r.redact] + list(contract.identifier_columns)
    frame = quarantine_frame(con, report, raw, redacted)
    report.rows_quarantined = len(frame)
    report.quarantined_by_rule = frame["rule"].value_counts().to_dict() if len(frame) else {}
    con.execute("DROP VIEW IF EXISTS raw_file_all")
    raw.drop(con)  # the raw text is done with: free its memory before the insert
    report.rows_loaded = insert_valid_rows(con, layout, report.file, extra)
    if contract.unique_key and layout.table in CROSS_FILE_KEYS and not layout.reshape:
        report.keys_checked = list(contract.unique_key)
        report.lines_loaded_sum = scalar(
            con, "SELECT coalesce(sum(__line), 0) FROM typed WHERE __line NOT IN (SELECT __line FROM failed)")
    if layout.table == "school_census":
        _note_new_languages(con, report)
    _drop_temporary(con, "typed", "violations", "failed", "repeats", "reshaped")
    if report.rows_loaded + report.rows_quarantined != report.rows_read:
        raise RuntimeError(f"{path}: {report.rows_read} rows read but {report.rows_loaded} loaded and "
                           f"{report.rows_quarantined} quarantined; this is a bug, please report it")
    log.info("%s: %s layout, %d read, %d loaded, %d quarantined", report.file, layout.name,
             report.rows_read, report.rows_loaded, report.rows_quarantined)
    return frame


def _drop_temporary(con, *tables: str | None) -> None:
    """Drop a file's temporary tables as soon as they are done with, so that they do not hold memory
    (a 10-million-row extract's text and typed columns are gigabytes) while the next step runs."""
    if "typed" in tables:
        con.execute("DROP VIEW IF EXISTS valid")
        con.execute("DROP VIEW IF EXISTS typed")
        tables = tuple(t for t in tables if t != "typed") + ("typed_store",)
    for table in tables:
        if table:
            con.execute(f"DROP TABLE IF EXISTS {table}")


def _check_reference_date(layout: Layout, columns: list[str], path: Path) -> None:
    """A SAPE-style sheet has no date column: its reference date must come from the file name."""
    import re

    if layout.name == "ons_sape_wide" and "period" not in columns and not re.search(r"(?i)mid-?\d{4}", path.name):
        raise UnreadableFile(
            f"{path}: an ONS small-area estimates sheet without a period column; name the file after its "
            "reference year (e.g. sape-mid-2019-lsoa11-persons.csv, read as 30 June 2019) or add a period column")


def quarantine_frame(con, report: FileReport, raw, redacted: list[str]) -> pd.DataFrame:
    """Quarantined rows: file, line, column, rule, message, value, then the row's original fields.

    Nothing that looks like an NHS number is copied: identifier columns, the offending value of a
    key or identifier rule and the raw text of unreadable lines are redacted, whatever the row's
    first problem was.
    """
    originals = ", ".join(
        f"{redact_nhs_numbers_sql(f'r.{quote(c)}')} AS {quote(c)}" if c in redacted
        else f"r.{quote(c)}" for c in raw.columns)
    structural = f"LEFT JOIN {raw.rejects} AS s USING (__line)" if raw.rejects else ""
    raw_line = redact_nhs_numbers_sql("s.raw_line") if raw.rejects else "NULL"
    keyed = ", ".join(_lit(c) for c in redacted) or "''"
    value = (f"CASE WHEN f.\"column\" IS NULL OR f.\"column\" IN ({keyed}) OR f.rule IN ('duplicate_record', 'duplicate_across_files') "
             f"THEN {redact_nhs_numbers_sql('f.value')} ELSE f.value END")
    frame = con.execute(f"""
        SELECT {_lit(report.file)} AS file, f.__line AS line, f."column", f.rule,
               f.message || CASE WHEN f.other_problems > 0 THEN ' (and ' || f.other_problems || ' more problem(s) in this row)' ELSE '' END AS message,
               {value} AS value, {originals}, {raw_line} AS raw_line
        FROM failed AS f LEFT JOIN {raw.rows_at("SELECT __line FROM failed")} AS r USING (__line)
        {structural}
        ORDER BY f.__line""").df()
    if not raw.rejects or frame["raw_line"].isna().all():
        frame = frame.drop(columns="raw_line")
    return frame


def check_keys_across_files(con, layout: Layout, file: str, settings: Settings) -> None:
    """Rows whose key (e.g. extract_date x patient_id) was already loaded from another file.

    The run stops naming both files and lines, or (``on_duplicate_across_files = "quarantine"``)
    the repeats are quarantined as ``duplicate_across_files``; they are never loaded twice.
    """
    table, key = layout.table, layout.contract.unique_key
    if table not in CROSS_FILE_KEYS or layout.reshape or not key or not scalar(con, f"SELECT count(*) FROM {table}"):
        return
    if not _shares_first_key_value(con, table, key[0]):
        return
    on = " AND ".join(f"t.{quote(k)} IS NOT DISTINCT FROM l.{quote(k)}" for k in key)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE repeats AS
        SELECT t.__line, min(l.source_file || ' line ' || l.source_line) AS other
        FROM typed AS t JOIN {table} AS l ON {on}
        WHERE t.__line NOT IN (SELECT __line FROM violations)
        GROUP BY t.__line""")
    repeats = scalar(con, "SELECT count(*) FROM repeats")
    if not repeats:
        return
    names = ", ".join(key)
    if settings.ingest.on_duplicate_across_files == "stop":
        line, other = con.execute("SELECT __line, other FROM repeats ORDER BY __line LIMIT 1").fetchall()[0]
        raise DuplicateAcrossFiles(
            f"{file} line {line}: the same {names} was already loaded from {other} ({repeats} row(s) of this file "
            f"repeat rows of another file: a second copy of an extract?). Keep one copy in raw/{layout.source}/, or set "
            f"[ingest] on_duplicate_across_files = \"quarantine\" in config.toml to quarantine the repeats.")
    value = "concat_ws(' / ', " + ", ".join(f"CAST(t.{quote(k)} AS VARCHAR)" for k in key) + ")"
    con.execute(f"""INSERT INTO violations
        SELECT r.__line, 1000, {_lit(key[-1])}, 'duplicate_across_files',
               'the same {names} was already loaded from ' || r.other || '; not loaded twice', {value}, 1
        FROM repeats AS r JOIN typed AS t USING (__line)""")


def _shares_first_key_value(con, table: str, column: str) -> bool:
    """Whether any row of the file has a value of the key's first column (an extract or census date) that a row
    already loaded has. When none has, no key of the file can repeat one loaded before, and the join over every key
    (a second national extract: 62 million rows on each side) is not needed. Compared as the join compares them
    (NULL equals NULL), over every typed row, so the answer is never no when the join would find a repeat."""
    c = quote(column)
    return scalar(con, f"""SELECT count(*) > 0 FROM (SELECT DISTINCT {c} FROM typed) AS t
                           JOIN (SELECT DISTINCT {c} FROM {table}) AS l ON t.{c} IS NOT DISTINCT FROM l.{c}""")


def insert_valid_rows(con, layout: Layout, file: str, extra: list[str]) -> int:
    table = layout.table
    place = layout.contract.place_by
    target = [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position", [table]).fetchall()]
    typed_columns = [s.name for s in compile_checks(layout.contract, "raw_file").columns] + extra
    derived = DERIVED.get(table, {})
    # a view, not a copy: the rows are materialised once, by the INSERT into the canonical table
    con.execute(f"""CREATE OR REPLACE TEMP VIEW valid AS
        SELECT t.* EXCLUDE (__line), {_lit(file)} AS source_file, t.__line AS source_line
               {', p.area_type AS __area_type, p.lsoa_code AS __lsoa, p.msoa_code AS __msoa, p.ward_code AS __ward, p.la_code AS __la' if place else ''}
        FROM typed AS t {f'LEFT JOIN place_index AS p ON p.place = {_qualify(place)}' if place else ''}
        WHERE t.__line NOT IN (SELECT __line FROM failed)""")
    if layout.reshape:
        loaded = scalar(con, "SELECT count(*) FROM valid")
        if layout.unpivot:
            create_table_from(con, "unpivoted", SQL / layout.unpivot, temp=True)
        create_table_from(con, "reshaped", SQL / layout.reshape, temp=True)
        _refuse_reshaped_repeats(con, table, file)
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM reshaped")
        for other, sql in layout.also:
            create_table_from(con, "reshaped", SQL / sql, temp=True)
            con.execute(f"INSERT INTO {other} BY NAME SELECT * FROM reshaped")
        con.execute("DROP TABLE IF EXISTS unpivoted")
        return loaded
    for column in extra:
        if column not in target:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {quote(column)} VARCHAR")
            target.append(column)
    geo = {"area_type": "__area_type", "lsoa_code": "__lsoa", "msoa_code": "__msoa", "ward_code": "__ward", "la_code": "__la"}
    select = []
    for column in target:
        if column in derived:
            select.append(f"{derived[column]} AS {quote(column)}")
        elif column in typed_columns or column in ("source_file", "source_line"):
            select.append(quote(column))
        elif place and column in geo:
            select.append(f"{geo[column]} AS {quote(column)}")
    return con.execute(f"INSERT INTO {table} BY NAME SELECT {', '.join(select)} FROM valid").fetchall()[0][0]


RESHAPED_KEYS = {"base_population": ("reference_date", "lsoa_code", "sex", "age_band", "source")}


def _refuse_reshaped_repeats(con, table: str, file: str) -> None:
    """Reshaped layouts (ONS wide tables) have no one-line-per-row key to quarantine: repeats stop the run."""
    key = RESHAPED_KEYS.get(table)
    if not key:
        return
    on = " AND ".join(f"r.{quote(k)} IS NOT DISTINCT FROM l.{quote(k)}" for k in key)
    rows = con.execute(f"SELECT min(l.source_file), count(*) FROM reshaped AS r JOIN {table} AS l ON {on}").fetchall()
    if rows and rows[0][1]:
        raise DuplicateAcrossFiles(
            f"{file}: {rows[0][1]} {table} cell(s) ({', '.join(key)}) were already loaded from {rows[0][0]}: a second "
            f"copy of the same population? Keep one of the two files in raw/.")


def _qualify(expression: str) -> str:
    """Prefix the typed table's alias to the column names of a place expression."""
    import re

    return re.sub(r"\b(?!coalesce\b)([a-z_]+)\b", r"t.\1", expression)


def _note_new_languages(con, report: FileReport) -> None:
    known = ", ".join(_lit(code) for code in KNOWN_LANGUAGES)
    rows = con.execute(f"""SELECT first_language, count(*) FROM valid
                           WHERE first_language NOT IN ({known}) GROUP BY 1 ORDER BY 2 DESC""").fetchall()
    if rows:
        report.notes.append("first-language codes not in the built-in list (loaded as given): "
                            + ", ".join(f"{code} ({n})" for code, n in rows))


def _lit(value) -> str:
    return "'" + str(value).replace("'", "''") + "'"
