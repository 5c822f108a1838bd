"""A small runner for named SQL steps: each `.sql` file is one step that creates one table.

Steps live beside the stage that owns them (``pipeline/<stage>/sql/NN_name.sql``) and run in
file-name order. A step is a single SELECT; the runner wraps it as
``CREATE OR REPLACE TABLE <name> AS <select>``, so tables are the interface between steps
and the SQL stays portable. A step whose first line is a ``-- view: <why>`` comment becomes a
temporary view instead: an intermediate the later steps read but nobody keeps (e.g. the register
row by row, which the steps reading it aggregate in their own pass), so it is never materialised. The steps run on an engine (``pipeline/engine.py``): a DuckDB connection
by default, or a ``SparkEngine``, which transpiles each step from DuckDB's dialect to Spark SQL with
sqlglot; every dialect difference lives in that module. A caller may leave some steps out of
the run (``run_steps(..., skip=...)``) to run them on a second DuckDB connection in a thread while it
does other work (``BackgroundSteps``). Parameters are
written ``{{ name }}`` and substituted from a dict of plain values (numbers, dates, strings)
before execution; file I/O stays in Python.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Collection
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


def run_steps(con: duckdb.DuckDBPyConnection | Engine, folder: Path, params: dict | None = None, *,
              skip: Collection[str] = ()) -> list[str]:
    """Run every step in `folder` in order on `con` (a DuckDB connection or an Engine); return the
    names of the tables (and temporary views) created. Steps named in `skip` are left out (the caller
    runs them later, e.g. with `BackgroundSteps`)."""
    engine = engine_for(con)
    created = []
    for step in list_steps(folder):
        if step.name not in skip:
            _run_step(engine, step, params)
            created.append(step.name)
    return created


def _run_step(engine: Engine, step: SqlStep, params: dict | None) -> None:
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


class BackgroundSteps:
    """Work done in order in one thread, on a second connection to the same DuckDB database (a cursor
    of `con`), while the caller goes on with its own: DuckDB releases the GIL while a statement runs,
    so the caller's single-threaded Python and the background's SQL share the cores.

    ``run_steps`` queues SQL steps of a folder, ``submit`` any other work (a function of the cursor,
    e.g. writing a frame the caller will not read again). A cursor does not see `con`'s temporary
    views: `setup(cursor)` creates those the steps read (e.g. the sources), and a step may not itself
    be a ``-- view:`` step. The work may read only tables that exist when it is queued; the caller
    reads what a job creates only after ``wait(name)``, which re-raises the first error. On another
    engine than DuckDB (Spark) the work is done at once, in order. Use as a context manager: on
    leaving, the running statement is interrupted, the rest of the queue dropped and the thread joined.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection | Engine):
        self.con = con
        self._jobs: queue.Queue = queue.Queue()
        self._done: dict[str, threading.Event] = {}
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cursor: duckdb.DuckDBPyConnection | None = None

    def run_steps(self, folder: Path, names: Collection[str], params: dict | None = None, *,
                  setup: Callable[[duckdb.DuckDBPyConnection], object] | None = None) -> None:
        """Queue the steps of `folder` named in `names` (in the folder's order), after `setup`."""
        steps = [s for s in list_steps(folder) if s.name in names]
        unknown = set(names) - {s.name for s in steps}
        if unknown:
            raise ValueError(f"{folder}: no SQL step creates {sorted(unknown)}")
        views = [s.name for s in steps if s.is_view]
        if views:
            raise ValueError(f"{views}: a view lives on its own connection and cannot be created in the background")
        if setup is not None:
            self.submit(f"setup of {', '.join(names)}", setup)
        for step in steps:
            self.submit(step.name, lambda con, step=step: _run_step(engine_for(con), step, params))

    def submit(self, name: str, work: Callable[[duckdb.DuckDBPyConnection], object]) -> None:
        """Queue `work(cursor)` under `name` (what ``wait`` is given)."""
        if not isinstance(self.con, duckdb.DuckDBPyConnection):  # another engine: now, in order
            work(self.con)
            return
        if self._thread is None:
            self._cursor = self.con.cursor()
            self._thread = threading.Thread(target=self._work, name="sql-background", daemon=True)
            self._thread.start()
        self._done[name] = threading.Event()
        self._jobs.put((name, work))

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            name, work = job
            job = None  # noqa: F841 (the job's data, e.g. a frame to write, is not held once done)
            try:
                if self._error is None and not self._stop.is_set():
                    work(self._cursor)
            except BaseException as exc:  # noqa: BLE001 (handed to the caller by wait)
                self._error = exc
            finally:
                work = None
                self._done[name].set()

    def wait(self, name: str | None = None) -> None:
        """Block until the job `name` (every job queued, when None) is done; raise the first error.
        A name never queued (or done at once on another engine) has nothing to wait for."""
        events = list(self._done.values()) if name is None else [self._done[name]] if name in self._done else []
        for event in events:
            event.wait()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> BackgroundSteps:
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._jobs.put(None)
            if not all(event.is_set() for event in self._done.values()):
                self._cursor.interrupt()
            self._thread.join()
            self._cursor.close()


def create_table_from(con: duckdb.DuckDBPyConnection | Engine, table: str, path: Path, params: dict | None = None,
                      *, temp: bool = False) -> None:
    """Create (or replace) `table` from the single SELECT in the file at `path`."""
    select_sql = render(Path(path).read_text(encoding="utf-8"), params)
    try:
        engine_for(con).create_table_as(table, select_sql, temp=temp)
    except Exception as exc:
        raise RuntimeError(f"SQL {path} failed: {exc}") from exc
