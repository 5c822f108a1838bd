"""Read one raw file into DuckDB as text columns with their line numbers, without losing a line.

CSV (UTF-8, a BOM tolerated, CRLF or LF) and Parquet. Every column is read as text so that the
contract, not the reader, decides what is valid.

CSV files are read by DuckDB in one streaming pass, one row per *physical line* (no record-level
data passes through Python), and split into fields in SQL. So ``rows_read`` is the number of
non-blank data lines, and every one of them ends up loaded or quarantined:

- a line that does not split into the header's columns is a ``short_row`` / ``long_row``;
- quotes that do not enclose whole values (``ab"c``) are ``bad_quoting``;
- every physical line is one record: a quote left open on a line (an unclosed quote, or a value
  with a line break inside quotes) is ``bad_quoting`` for that line alone, and never swallows the
  lines after it into one value, as a CSV parser would;
- a line that is not UTF-8 is ``invalid_encoding``.

The lines are split by a view (`RawFile.table`), read by the one pass that types the rows
(`pipeline.ingest.rules`): that pass also carries each line's structural problem (``__problem``),
from which `finish_csv_pass` makes the file's rejects and counts its lines, so no pass over the
lines runs only to find the odd ones.

Blank lines (and lines of commas only, as spreadsheets export) are not data lines: they are
counted in ``blank_lines``. Parquet columns of real DATE or TIMESTAMP type are read as ISO dates,
and whole numbers stored as floats (as pandas writes an integer column with gaps) without ``.0``.
A file that cannot be read at all raises `UnreadableFile` naming the file and the problem.
"""

from __future__ import annotations

import csv
import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from pipeline.db import scalar
from pipeline.ingest.rules import quote

READABLE_SUFFIXES = {".csv", ".parquet", ".pq"}

# Built-in names for columns whose published name varies (ONSPD boundary vintages, NHS Digital capitals).
ALIASES: list[tuple[str, str]] = [
    (r"pcds|pcd|pcd2|postcode", "postcode"),
    (r"lsoa\d{2}cd", "lsoa_code"), (r"msoa\d{2}cd", "msoa_code"),
    (r"wd\d{2}cd", "ward_code"), (r"lad\d{2}cd|lad_code|la_code", "la_code"),
    (r"lsoa\d{2}nm", "lsoa_name"), (r"msoa\d{2}nm|msoa_hcl_name", "msoa_name"),
    (r"wd\d{2}nm", "ward_name"), (r"lad\d{2}nm", "la_name"),
    (r"long|longitude", "lon"), (r"latitude", "lat"),
]


class IngestError(Exception):
    """Ingest stopped the run; the message names the file (and line) and what to do."""


class UnreadableFile(IngestError):
    """The file cannot be read at all; the message names the file and what is wrong."""


@dataclass
class RawFile:
    path: Path
    table: str  # DuckDB table: __line plus the (mapped) text columns
    columns: list[str]  # mapped column names, in file order
    known_rows: int | None  # rows_read once known (Parquet: at once; CSV: counted by the pass that types the rows)
    rejects: str | None  # DuckDB table of structural rejects: __line, rule, message, raw_line
    known_blank: int | None = 0
    temporaries: tuple[str, ...] = ()  # tables the view `table` reads (CSV): dropped with it
    # CSV: columns of the view beside the fields (`__problem`), which the pass that types the rows carries
    # through for `finish_csv_pass`; the physical lines' table, the SQL splitting a line, the header's width
    carry: tuple[str, ...] = ()
    plain: str | None = None  # CSV: the view's column that is true on lines whose fields need no trimming (PLAIN)
    lines: str | None = None
    fields_sql: str = ""
    width: int = 0
    con: duckdb.DuckDBPyConnection | None = field(default=None, repr=False)
    view_sql: str = ""  # CSV: the view `table`'s SELECT, reading the lines from _LINES_TOKEN
    stored: str | None = None  # CSV: the table of lines in file order whose rowid + 1 is the line (`_Lines.stored`)

    def rows_at(self, lines: str) -> str:
        """SQL for the rows of `table` whose __line is in the subquery `lines` (the quarantined lines'
        fields): for a CSV file, only those lines are split, not the whole file."""
        if not self.view_sql:
            return f"(SELECT * FROM {self.table} WHERE __line IN ({lines}))"
        return f"({self.view_sql.replace(_LINES_TOKEN, self.lines_at(lines))})"

    def lines_at(self, lines: str) -> str:
        """SQL for the physical lines (__line, text) whose number is in the subquery `lines` (one column, __line).
        Lines numbered by their position are picked by rowid: DuckDB then fetches only those rows' text, where a
        filter on the number (rowid + 1) reads every line's text first (10,000 of 10 million lines: 0.07 CPU-s
        against 0.24-0.62, and 1.9 in a run, where the lines spill; benchmarks/results/ingest_ing9.md)."""
        if self.stored:
            return (f"(SELECT rowid + 1 AS __line, text FROM {self.stored} "
                    f"WHERE rowid IN (SELECT __line - 1 FROM ({lines})))")
        return f"(SELECT * FROM {self.lines} WHERE __line IN ({lines}))"

    @property
    def rows_read(self) -> int:
        """Non-blank data lines (CSV) or rows (Parquet): every one of them is loaded or quarantined."""
        self._count_lines()
        return self.known_rows

    @property
    def blank_lines(self) -> int:
        self._count_lines()
        return self.known_blank

    def _count_lines(self) -> None:
        """A CSV file's lines counted before the pass that types them (which otherwise counts them)."""
        if self.known_rows is None:
            data, blank = self.con.execute(f"""SELECT count(*), count(*) FILTER (WHERE {_BLANK})
                FROM {self.lines} WHERE __line > 1""").fetchall()[0]
            self.known_rows = data - blank + scalar(self.con, f"SELECT count(*) FROM {self.lines}_encoding")
            self.known_blank = blank

    def drop(self, con: duckdb.DuckDBPyConnection) -> None:
        """Drop the file's temporary table or view, its rejects and what they read (frees their memory)."""
        _drop_relations(con, self.table, self.rejects, *self.temporaries)


_HASHES: dict[tuple, tuple[str, int]] = {}  # stat key -> (sha256, when it was hashed in ns): raw/ is hashed once
RACY_NS = 2_000_000_000  # a file changed this close to its hashing is hashed again (git's "racy clean" rule)


def _stat_key(path: Path) -> tuple:
    stat = Path(path).stat()
    return (str(Path(path).resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def file_hash(path: Path) -> str:
    """sha256 of the file's content; remembered while the file's inode, size, modification and change times are
    unchanged (the run's fingerprint and ingest both need it: a national extract takes seconds to hash)."""
    key = _stat_key(path)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = (digest.hexdigest(), time.time_ns())
    return _HASHES[key][0]


def remembered_hashes(paths: list[Path]) -> list[dict]:
    """What file_hash knows about `paths`, to be kept beside a run's outputs and given to remember_hashes next time.

    As DVC's state database and git's index do, a later run trusts a hash while the file's inode, size, modification
    time and change time are all as recorded. The change time cannot be set by a user: any write, touch or copy moves
    it. A file hashed within RACY_NS of its last change is left out, since a second write in the same clock tick could
    leave every time unchanged."""
    entries = []
    for path in paths:
        key = _stat_key(path)
        if key in _HASHES and _HASHES[key][1] - max(key[3], key[4]) > RACY_NS:
            sha256, hashed_at = _HASHES[key]
            entries.append({"path": key[0], "inode": key[1], "size": key[2], "mtime_ns": key[3], "ctime_ns": key[4],
                            "sha256": sha256, "hashed_at_ns": hashed_at})
    return entries


def remember_hashes(entries: list[dict]) -> None:
    """Seed file_hash with the hashes an earlier run recorded (remembered_hashes); a changed file no longer matches."""
    for entry in entries:
        try:
            key = (entry["path"], entry["inode"], entry["size"], entry["mtime_ns"], entry["ctime_ns"])
            _HASHES.setdefault(key, (entry["sha256"], entry["hashed_at_ns"]))
        except (KeyError, TypeError):  # an older or damaged record: those files are simply hashed again
            continue


def canonical_name(header: str, source: str, header_map: dict[str, dict[str, str]]) -> str:
    """A header as the contracts name it: trimmed, lower case, local variants mapped."""
    name = header.strip().lstrip("\ufeff").strip().lower()
    local = header_map.get(source, {})
    inverse = {theirs: ours for ours, theirs in local.items()}
    if name in inverse:
        return inverse[name]
    name = re.sub(r"\s+", "_", name)
    for pattern, canonical in ALIASES:
        if source == "geography" and re.fullmatch(pattern, name):
            return canonical
    return name


def read_raw_file(con: duckdb.DuckDBPyConnection, path: Path, table: str, source: str,
                  header_map: dict[str, dict[str, str]]) -> RawFile:
    suffix = path.suffix.lower()
    if suffix not in READABLE_SUFFIXES:
        raise UnreadableFile(f"{path}: not a CSV or Parquet file (expected .csv or .parquet)")
    RawFile(path, table, [], 0, None).drop(con)  # a previous file's table or view of that name (CSV: a view)
    try:
        if suffix == ".csv":
            return _read_csv(con, path, table, source, header_map)
        return _read_parquet(con, path, table, source, header_map)
    except duckdb.Error as exc:
        raise UnreadableFile(f"{path}: cannot be read as {suffix[1:].upper()}: {str(exc).splitlines()[0]}") from exc


def _rename(columns: list[str], source: str, header_map) -> list[str]:
    mapped = [canonical_name(c, source, header_map) for c in columns]
    seen = set()
    for name in mapped:
        if name in seen:
            raise UnreadableFile(f"two columns are both read as '{name}' (check the header and the header map)")
        seen.add(name)
    return mapped


_DATE_TYPES = ("DATE", "TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "TIMESTAMP WITH TIME ZONE")


def _read_parquet(con, path: Path, table: str, source: str, header_map) -> RawFile:
    described = con.execute(f"DESCRIBE SELECT * FROM read_parquet({_lit(path)})").fetchall()
    original = [row[0] for row in described]
    types = [row[1] for row in described]
    mapped = _rename(original, source, header_map)

    def as_text(column: str, sql_type: str) -> str:
        c = quote(column)
        if sql_type.upper() in _DATE_TYPES:  # a real date or timestamp: its calendar date, as ISO text
            return f"strftime(CAST({c} AS DATE), '%Y-%m-%d')"
        if sql_type.upper() in ("DOUBLE", "FLOAT"):  # whole numbers stored as floats (pandas, with gaps): 12, not 12.0
            return (f"CASE WHEN isfinite({c}) AND {c} = trunc({c}) AND abs({c}) < 1e15 "
                    f"THEN CAST(CAST({c} AS BIGINT) AS VARCHAR) ELSE CAST({c} AS VARCHAR) END")
        return f"CAST({c} AS VARCHAR)"

    select = ", ".join(f"{as_text(o, t)} AS {quote(m)}" for o, m, t in zip(original, mapped, types))
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT file_row_number + 2 AS __line, {select} "
                f"FROM read_parquet({_lit(path)}, file_row_number = true)")
    rows = scalar(con, f"SELECT count(*) FROM {table}")
    return RawFile(path, table, mapped, rows, None)


def _read_header(path: Path) -> list[str]:
    with open(path, "rb") as handle:
        first = handle.readline()
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"{path}: the header is not UTF-8 text ({exc.reason}); save the file as UTF-8 CSV") from exc
    if "\x00" in text:
        raise UnreadableFile(f"{path}: not a text file (it contains NUL bytes)")
    header = next(csv.reader([text.rstrip("\r\n")]), [])
    if not header or not any(h.strip() for h in header):
        raise UnreadableFile(f"{path}: the first line is empty; a header row is expected")
    return header


# One CSV field: a quoted value (quotes doubled inside, spaces around tolerated) or an unquoted one.
_FIELD = r'\s*"(?:[^"]|"")*"\s*|[^",]*'
_LINE = f"(?:{_FIELD})(?:,(?:{_FIELD}))*"
_NO_DELIMITER = "'\x01\x02\x03\x04'"  # never in text: each physical line is read as one value
_LINES_TOKEN = "<<lines>>"  # stands for the lines' table in RawFile.view_sql


def _read_csv(con, path: Path, table: str, source: str, header_map) -> RawFile:
    header = _read_header(path)
    mapped = _rename(header, source, header_map)
    n = len(header)
    lines = _read_lines(con, path, f"{table}__lines")
    # fields: split on commas, or (a line with quotes) by the CSV grammar, quotes removed and "" undoubled
    fields = (f"CASE WHEN contains(text, '\"') THEN list_transform(regexp_extract_all(',' || text, {_lit(',(' + _FIELD + ')')}, 1), "
              f"lambda f: CASE WHEN starts_with(trim(f), '\"') THEN replace(substr(trim(f), 2, length(trim(f)) - 2), '\"\"', '\"') "
              f"ELSE f END) ELSE string_split(text, ',') END")
    # a view, not a copy: the lines split into the header's columns when they are read (by the pass
    # that types the rows, and for the quarantined lines' fields), so the fields are never held as a
    # second copy of the file. `__problem` names what keeps a line from being a data row of the
    # header's width (NULL for almost every line): `finish_csv_pass` turns it into structural rejects
    odd = "(length(text) - length(replace(text, '\"', ''))) % 2 = 1"
    problem = (f"CASE WHEN {_BLANK} THEN 'blank' "
               f"WHEN contains(text, '\"') AND {odd} THEN 'unclosed_quote' "
               f"WHEN contains(text, '\"') AND NOT regexp_full_match(text, {_lit(_LINE)}) THEN 'stray_quote' "
               f"WHEN len(fields) < {n} THEN 'short_row' WHEN len(fields) > {n} THEN 'long_row' END")
    select = ", ".join(f"fields[{i + 1}] AS {quote(m)}" for i, m in enumerate(mapped))
    view = f"""SELECT __line, {problem} AS __problem, {PLAIN} AS __plain, {select}
        FROM (SELECT __line, text, {fields} AS fields FROM {_LINES_TOKEN} WHERE __line > 1)"""
    con.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS {view.replace(_LINES_TOKEN, lines.table)}")
    con.execute(f"DROP TABLE IF EXISTS {table}_rejects")
    # rows_read and blank_lines: counted by the pass that types the rows (`finish_csv_pass`)
    return RawFile(path, table, mapped, None, f"{table}_rejects", None, temporaries=(lines.table, lines.text, lines.encoding),
                   carry=("__problem",), plain="__plain", lines=lines.table, fields_sql=fields, width=n, con=con, view_sql=view,
                   stored=lines.stored)


# a line none of whose fields needs trimming (`rules.trimmed_sql`), found once for the line instead of once per field:
# ASCII, no quotes, and no space beside a comma or at either end (so no field split from it starts or ends with one)
PLAIN = ("(NOT contains(text, '\"') AND strlen(text) = length(text) AND NOT contains(text, ', ') "
         "AND NOT contains(text, ' ,') AND NOT starts_with(text, ' ') AND NOT ends_with(text, ' '))")

# blank: nothing but spaces, commas, tabs and carriage returns (the regular expression only runs on
# lines that are empty or start with one of them: a first character's code, ascii(), is one test of every line
# where five starts_with tests were five)
_BLANK = ("(text IS NULL OR (ascii(text) IN (0, 32, 44, 9, 13) AND NOT regexp_matches(text, '[^ ,\\t\\r]')))")


def finish_csv_pass(con: duckdb.DuckDBPyConnection, raw: RawFile, rows: str) -> None:
    """After the pass that read `raw`'s view into the table `rows` (carrying `__problem`): the file's
    structural rejects (bad quoting, short and long rows, lines that are not UTF-8) with their raw text,
    and its counts of data lines and blank lines."""
    if not raw.lines:
        return
    if raw.known_rows is None:
        lines, blank = con.execute(f"SELECT count(*), count(*) FILTER (WHERE __problem = 'blank') FROM {rows}").fetchall()[0]
        raw.known_rows = lines - blank + scalar(con, f"SELECT count(*) FROM {raw.lines}_encoding")
        raw.known_blank = blank
    count = f"CASE WHEN contains(text, '\"') THEN len({raw.fields_sql}) ELSE strlen(text) - strlen(replace(text, ',', '')) + 1 END"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {raw.rejects} AS
        SELECT __line,
               CASE WHEN __problem IN ('stray_quote', 'unclosed_quote') THEN 'bad_quoting' ELSE __problem END AS rule,
               CASE WHEN __problem = 'stray_quote'
                        THEN 'quotes do not enclose whole values (a stray " inside a value?); the line cannot be split into columns'
                    WHEN __problem = 'unclosed_quote'
                        THEN 'a quote opened on this line is not closed on it (a value may not run over a line break); only this line is quarantined, the lines after it are read as usual'
                    ELSE 'the line has ' || ({count}) || ' fields; the header has {raw.width}' END AS message,
               text AS raw_line
        FROM (SELECT p.__line, p.__problem, l.text
              FROM (SELECT __line, __problem FROM {rows} WHERE __problem IS NOT NULL AND __problem <> 'blank') AS p
              JOIN {raw.lines} AS l USING (__line)) AS odd
        UNION ALL SELECT * FROM {raw.lines}_encoding""")


@dataclass
class _Lines:
    table: str  # __line, text: every physical line of the file (the header is line 1)
    text: str  # the table the lines are stored in, in file order (`table` numbers them)
    encoding: str  # structural rejects for lines that are not UTF-8
    stored: str | None = None  # `text` when a line's number is its position there (rowid + 1): no line was rejected


def _read_lines(con, path: Path, table: str) -> _Lines:
    """Every physical line of the file with its number, read by DuckDB in one streaming pass.

    DuckDB's CSV reader is used with no quote and no usable delimiter, so every physical line is one
    value and nothing is interpreted yet. The lines are stored in file order (preserving insertion
    order, DuckDB's default, keeps the rows of a parallel read in file order), so a line's number is
    its position in the stored table: its rowid + 1. Numbering them as they are read
    (`row_number() OVER ()`) would be a single-threaded step over the whole file. Lines DuckDB cannot
    decode (invalid UTF-8) come back as rejects with their line numbers; the other lines then take
    the positions left once the rejected ones are taken out.
    """
    rejects, scans, text = f"{table}_enc_rejects", f"{table}_enc_scans", f"{table}_text"
    _drop_relations(con, rejects, scans, table, text)
    ordered = scalar(con, "SELECT current_setting('preserve_insertion_order')")
    con.execute("SET preserve_insertion_order = true")  # line numbers depend on it
    try:
        con.execute(f"""CREATE TEMP TABLE {text} AS
            SELECT l AS text
            FROM read_csv({_lit(path)}, header = false, columns = {{'l': 'VARCHAR'}}, delim = {_NO_DELIMITER},
                          quote = '', escape = '', auto_detect = false, strict_mode = false,
                          store_rejects = true, rejects_table = '{rejects}', rejects_scan = '{scans}')""")
    finally:
        con.execute(f"SET preserve_insertion_order = {'true' if ordered else 'false'}")
    bad = scalar(con, f"SELECT count(DISTINCT line) FROM {rejects}")
    if not bad:
        con.execute(f"CREATE TEMP VIEW {table} AS SELECT rowid + 1 AS __line, text FROM {text}")
    else:  # the k-th line read is the k-th line that was not rejected
        total = scalar(con, f"SELECT count(*) FROM {text}") + bad
        con.execute(f"""CREATE TEMP TABLE {table} AS
            SELECT p.line AS __line, r.text FROM (SELECT rowid + 1 AS __n, text FROM {text}) AS r JOIN (
                SELECT line, row_number() OVER (ORDER BY line) AS __n FROM range(1, {total + 1}) AS t(line)
                WHERE line NOT IN (SELECT line FROM {rejects})) AS p ON p.__n = r.__n""")
        con.execute(f"DROP TABLE {text}")
    encoding = f"{table}_encoding"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {encoding} AS
        SELECT line AS __line, 'invalid_encoding' AS rule,
               'the line is not UTF-8 text (save the file as UTF-8 CSV)' AS message, min(csv_line) AS raw_line
        FROM {rejects} WHERE line > 1 GROUP BY line""")
    return _Lines(table, text, encoding, None if bad else text)


def _drop_relations(con: duckdb.DuckDBPyConnection, *names: str | None) -> None:
    """Drop the temporary tables or views `names` (None: nothing), those that exist."""
    names = [name for name in names if name]
    listed = ", ".join(_lit(name) for name in names)
    views = {row[0] for row in con.execute(
        f"SELECT view_name FROM duckdb_views() WHERE temporary AND view_name IN ({listed})").fetchall()} if names else set()
    for name in names:
        con.execute(f"DROP {'VIEW' if name in views else 'TABLE'} IF EXISTS {name}")


def _lit(value) -> str:
    return "'" + str(value).replace("'", "''") + "'"
