"""Read one raw file into DuckDB as text columns with their line numbers, without losing a row.

CSV (UTF-8, a BOM tolerated, CRLF or LF) and Parquet. Every column is read as text so that the
contract, not the reader, decides what is valid. Rows the CSV parser cannot split into the
header's columns (short or long rows, broken quoting, invalid UTF-8) come back as structural
rejects with their line number, for the quarantine. A file that cannot be read at all raises
`UnreadableFile` naming the file and the problem.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

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


class UnreadableFile(Exception):
    """The file cannot be read at all; the message names the file and what is wrong."""


@dataclass
class RawFile:
    path: Path
    table: str  # DuckDB table: __line plus the (mapped) text columns
    columns: list[str]  # mapped column names, in file order
    rows_read: int
    rejects: str | None  # DuckDB table of structural rejects: __line, rule, message, raw_line


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def _read_parquet(con, path: Path, table: str, source: str, header_map) -> RawFile:
    relation = con.sql(f"SELECT * FROM read_parquet({_lit(path)}) LIMIT 0")
    original = relation.columns
    mapped = _rename(original, source, header_map)
    select = ", ".join(f"CAST({quote(o)} AS VARCHAR) AS {quote(m)}" for o, m in zip(original, mapped))
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


def _read_csv(con, path: Path, table: str, source: str, header_map) -> RawFile:
    header = _read_header(path)
    mapped = _rename(header, source, header_map)
    column_types = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(header)))
    rejects, scans = f"{table}_rejects_raw", f"{table}_scans"
    options = (f"header = true, delim = ',', quote = '\"', escape = '\"', auto_detect = false, "
               f"columns = {{{column_types}}}, store_rejects = true, rejects_table = '{rejects}', "
               f"rejects_scan = '{scans}'")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table}__body AS "
                f"SELECT row_number() OVER () AS __row, * FROM read_csv({_lit(path)}, {options})")
    reject_lines = con.execute(f"SELECT DISTINCT line FROM {rejects}").fetchall()
    good = scalar(con, f"SELECT count(*) FROM {table}__body")
    data_lines = _count_data_lines(path)
    rows_read = good + len(reject_lines)
    if data_lines is None or data_lines != rows_read:
        # blank lines or line breaks inside quoted values: number the rows exactly with Python's csv reader
        return _read_csv_exactly(con, path, table, header, mapped)
    select = ", ".join(f"{quote(f'c{i}')} AS {quote(m)}" for i, m in enumerate(mapped))
    # the k-th good row sits on the k-th data line that is not a rejected one
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {table} AS
        WITH lines AS (
            SELECT line, row_number() OVER (ORDER BY line) AS __row
            FROM range(2, {rows_read + 2}) AS r(line)
            WHERE line NOT IN (SELECT line FROM {rejects})
        )
        SELECT lines.line AS __line, {select} FROM {table}__body AS b JOIN lines USING (__row)
        ORDER BY __line""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {table}_rejects AS
        SELECT line AS __line,
               CASE error_type WHEN 'MISSING COLUMNS' THEN 'short_row' WHEN 'TOO MANY COLUMNS' THEN 'long_row'
                    WHEN 'INVALID ENCODING' THEN 'invalid_encoding' WHEN 'INVALID UNICODE' THEN 'invalid_encoding'
                    WHEN 'UNQUOTED VALUE' THEN 'bad_quoting' ELSE 'unreadable_row' END AS rule,
               'the row does not split into the header''s {len(header)} columns: ' || error_message AS message,
               trim(csv_line, chr(10) || chr(13)) AS raw_line
        FROM (SELECT *, row_number() OVER (PARTITION BY line ORDER BY column_idx) AS k FROM {rejects}) WHERE k = 1""")
    con.execute(f"DROP TABLE {table}__body")
    return RawFile(path, table, mapped, rows_read, f"{table}_rejects")


def _count_data_lines(path: Path) -> int | None:
    """Lines after the header, or None when blank lines make positions ambiguous."""
    with open(path, "rb") as handle:
        data = handle.read()
    if b"\n\n" in data or b"\n\r\n" in data.rstrip(b"\r\n"):
        stripped = data.rstrip(b"\r\n")
        if b"\n\n" in stripped or b"\n\r\n" in stripped:
            return None
    lines = data.rstrip(b"\r\n").count(b"\n")  # newlines between lines = lines - 1; minus the header
    return lines


def _read_csv_exactly(con, path: Path, table: str, header: list[str], mapped: list[str]) -> RawFile:
    """Fallback for files with blank lines or quoted line breaks: exact line numbers, row by row.

    Slower than the DuckDB reader, so used only when line positions cannot be inferred.
    """
    columns = {name: [] for name in ["__line", *mapped]}
    rejects = {"__line": [], "rule": [], "message": [], "raw_line": []}
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            next(reader)
            start = reader.line_num + 1
            for row in reader:
                line, start = start, reader.line_num + 1
                if not row or not any(field.strip() for field in row):
                    continue
                if len(row) != len(header):
                    rejects["__line"].append(line)
                    rejects["rule"].append("short_row" if len(row) < len(header) else "long_row")
                    rejects["message"].append(f"the row has {len(row)} fields; the header has {len(header)}")
                    rejects["raw_line"].append(",".join(row))
                    continue
                columns["__line"].append(line)
                for name, value in zip(mapped, row):
                    columns[name].append(value)
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"{path}: not UTF-8 text ({exc.reason}); save the file as UTF-8 CSV") from exc
    except csv.Error as exc:
        raise UnreadableFile(f"{path}: not a readable CSV ({exc})") from exc
    body = pa.table({k: pa.array(v, type=pa.int64() if k == "__line" else pa.string()) for k, v in columns.items()})
    reject_table = pa.table({k: pa.array(v, type=pa.int64() if k == "__line" else pa.string()) for k, v in rejects.items()})
    con.register(f"{table}__arrow", body)
    con.register(f"{table}__arrow_rejects", reject_table)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM {table}__arrow")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table}_rejects AS SELECT * FROM {table}__arrow_rejects")
    con.unregister(f"{table}__arrow")
    con.unregister(f"{table}__arrow_rejects")
    return RawFile(path, table, mapped, body.num_rows + reject_table.num_rows, f"{table}_rejects")


def _lit(value) -> str:
    return "'" + str(value).replace("'", "''") + "'"
