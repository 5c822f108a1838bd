"""A small runner for named SQL steps: each `.sql` file is one step that creates one table.

Steps live beside the stage that owns them (``pipeline/<stage>/sql/NN_name.sql``) and run in
file-name order. A step is a single SELECT; the runner wraps it as
``CREATE OR REPLACE TABLE <name> AS <select>``, so tables are the interface between steps
and the SQL stays portable. A step whose first line is a ``-- view: <why>`` comment becomes a
temporary view instead: an intermediate the later steps read but nobody keeps (e.g. the register
row by row, which the steps reading it aggregate in their own pass), so it is never materialised. The steps run on an engine (``pipeline/engine.py``): a DuckDB connection
by default, or a ``SparkEngine``, which transpiles each step from DuckDB's dialect to Spark SQL with
sqlglot; every dialect difference lives in that module. Parameters are
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

from pipeline.engine import Engine, engine_for

log = logging.getLogger(__name__)

_PARAM = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_STEP_NAME = re.compile(r"^\d+_(\w+)\.sql$")
_VIEW_MARK = re.compile(r"\A\s*--\s*view:")


@dataclass(frozen=True)
class SqlStep:
    name: str  # the table it creates
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def is_view(self) -> bool:
        """The step is a temporary view, not a table: its first line is ``-- view: <why>``."""
        return _VIEW_MARK.match(self.sql) is not None


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


def run_steps(con: duckdb.DuckDBPyConnection | Engine, folder: Path, params: dict | None = None) -> list[str]:
    """Run every step in `folder` in order on `con` (a DuckDB connection or an Engine); return the
    names of the tables (and temporary views) created."""
    engine = engine_for(con)
    created = []
    for step in list_steps(folder):
        started = time.perf_counter()
        select_sql = render(step.sql, params)
        try:
            if step.is_view:
                engine.create_view_as(step.name, select_sql)
            else:
                engine.create_table_as(step.name, select_sql)
        except Exception as exc:
            raise RuntimeError(f"SQL step {step.path} failed: {exc}") from exc
        if step.is_view:  # counting its rows would run it
            log.info("SQL step %s: a view (not materialised)", step.path.name)
        else:
            rows = engine.count_rows(step.name)
            log.info("SQL step %s: %d rows in %.2f s", step.path.name, rows, time.perf_counter() - started)
        created.append(step.name)
    return created


def create_table_from(con: duckdb.DuckDBPyConnection | Engine, table: str, path: Path, params: dict | None = None,
                      *, temp: bool = False) -> None:
    """Create (or replace) `table` from the single SELECT in the file at `path`."""
    select_sql = render(Path(path).read_text(encoding="utf-8"), params)
    try:
        engine_for(con).create_table_as(table, select_sql, temp=temp)
    except Exception as exc:
        raise RuntimeError(f"SQL {path} failed: {exc}") from exc
