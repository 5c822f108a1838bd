"""A small runner for named SQL steps: each `.sql` file is one step that creates one table.

Steps live beside the stage that owns them (``pipeline/<stage>/sql/NN_name.sql``) and run in
file-name order. A step is a single SELECT; the runner wraps it as
``CREATE OR REPLACE TABLE <name> AS <select>``, so tables are the interface between steps
and the SQL stays portable (DuckDB here; the same SELECTs run on Spark SQL). Parameters are
written ``{{ name }}`` and substituted from a dict of plain values (numbers, dates, strings)
before execution; file I/O stays in Python.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)

_PARAM = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_STEP_NAME = re.compile(r"^\d+_(\w+)\.sql$")


@dataclass(frozen=True)
class SqlStep:
    name: str  # the table it creates
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def list_steps(folder: Path) -> list[SqlStep]:
    """The steps in `folder`, in order: files named ``NN_<table>.sql``."""
    steps = []
    for path in sorted(Path(folder).glob("*.sql")):
        match = _STEP_NAME.match(path.name)
        if not match:
            raise ValueError(f"{path}: SQL step files are named NN_<table>.sql")
        steps.append(SqlStep(match.group(1), path))
    return steps


def render(sql: str, params: dict[str, object] | None = None) -> str:
    """Substitute ``{{ name }}`` placeholders with SQL literals."""
    params = params or {}

    def literal(match: re.Match) -> str:
        key = match.group(1)
        if key not in params:
            raise KeyError(f"SQL parameter '{key}' was not supplied")
        return to_sql_literal(params[key])

    return _PARAM.sub(literal, sql)


def to_sql_literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(to_sql_literal(v) for v in value) + ")"
    return "'" + str(value).replace("'", "''") + "'"


def run_steps(con: duckdb.DuckDBPyConnection, folder: Path, params: dict | None = None) -> list[str]:
    """Run every step in `folder` in order; return the names of the tables created."""
    created = []
    for step in list_steps(folder):
        started = time.perf_counter()
        try:
            con.execute(f"CREATE OR REPLACE TABLE {step.name} AS\n{render(step.sql, params)}")
        except duckdb.Error as exc:
            raise RuntimeError(f"SQL step {step.path} failed: {exc}") from exc
        rows = con.execute(f"SELECT count(*) FROM {step.name}").fetchall()[0][0]
        log.info("SQL step %s: %d rows in %.2f s", step.path.name, rows, time.perf_counter() - started)
        created.append(step.name)
    return created


def create_table_from(con: duckdb.DuckDBPyConnection, table: str, path: Path, params: dict | None = None,
                      *, temp: bool = False) -> None:
    """Create (or replace) `table` from the single SELECT in the file at `path`."""
    kind = "TEMP TABLE" if temp else "TABLE"
    try:
        con.execute(f"CREATE OR REPLACE {kind} {table} AS\n{render(Path(path).read_text(encoding='utf-8'), params)}")
    except duckdb.Error as exc:
        raise RuntimeError(f"SQL {path} failed: {exc}") from exc
