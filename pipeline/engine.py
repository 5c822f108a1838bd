"""Engine adapters for the SQL steps: one set of SQL, run on DuckDB (the default) or on Spark.

Modelled on MoJ's Splink, which keeps one set of SQL and a small adapter per backend
(``DuckDBAPI``, ``SparkAPI``). The SQL steps are written once, in DuckDB's dialect (what analysts
run locally), and translated with sqlglot for other engines. Every dialect difference lives in this
module:

* ``to_dialect`` transpiles a statement from DuckDB to another sqlglot dialect, raising on any
  construct sqlglot cannot carry across (``ErrorLevel.RAISE``) rather than silently dropping it;
* ``find_unportable`` lists the constructs that transpile without complaint but fail or mean
  something else on Spark (date - date is an interval there, ``row_number() OVER ()`` has no
  defined order, ...). The steps are kept free of them (tests/test_sql_portability.py);
* ``DuckDBEngine`` and ``SparkEngine`` run a SELECT into a named table and hand tables back as
  Arrow, so record-level data moves between engines without pandas.

Why sqlglot and not Ibis: the steps are plain SQL files that analysts read and edit; sqlglot
keeps them as SQL and only rewrites the text, where Ibis would mean rewriting them as Python.
"""

from __future__ import annotations

import re
from typing import Protocol

import sqlglot
from sqlglot import exp

SOURCE_DIALECT = "duckdb"
# Leads the SQL an adapter runs in its own engine's dialect (catalog look-ups): dialect-specific by design,
# so tests/test_sql_portability.py leaves it out of the statements it checks
ADAPTER_TAG = "-- engine adapter: "

# Functions that exist only in DuckDB (no Spark equivalent that sqlglot maps them to): a step
# using one of them would fail on Spark. Checked on the source text (case-insensitive).
DUCKDB_ONLY_FUNCTIONS = (
    "try_strptime", "strptime", "regexp_full_match", "list_value", "list_transform", "list_filter",
    "list_aggregate", "list_sort", "list_distinct", "list_contains", "list_extract", "list_concat",
    "struct_pack", "struct_extract", "struct_insert", "string_split_regex", "read_csv", "read_csv_auto",
    "read_parquet", "file_row_number", "epoch_ms", "strftime", "arg_max_null",
)
_FUNCTION_CALL = re.compile(r"\b(" + "|".join(DUCKDB_ONLY_FUNCTIONS) + r")\s*\(", re.IGNORECASE)
_GROUP_BY_ALL = re.compile(r"\bGROUP\s+BY\s+ALL\b", re.IGNORECASE)
_REGEXP_REPLACE_G = re.compile(r"regexp_replace\s*\((?:[^()]|\([^()]*\))*,\s*'[a-z]*g[a-z]*'\s*\)", re.IGNORECASE)
_COMMENT = re.compile(r"--[^\n]*")
_BY_NAME = re.compile(r"\bINSERT\b.*\bBY\s+NAME\b", re.IGNORECASE | re.DOTALL)
# DuckDB's catalog: information_schema, duckdb_tables() & co., pragma_table_info(), the temp.main schema
_CATALOG = re.compile(r"\b(information_schema\.\w+|duckdb_\w+\s*\(|pragma_\w+\s*\(|temp\.main\.)", re.IGNORECASE)
_DATE_DIFF_UNIT = re.compile(r"\bdate_?diff\s*\(\s*'(\w+)'", re.IGNORECASE)
# Column names that hold dates in our tables (schemas/): used to spot date - date subtraction.
_DATE_NAME = re.compile(r"(date|period_start|period_end|prev_census|^dob$)", re.IGNORECASE)


def to_dialect(sql: str, dialect: str) -> str:
    """Translate one DuckDB statement to `dialect` (a sqlglot dialect name, e.g. "spark").

    Raises ``sqlglot.errors.UnsupportedError`` naming the construct when sqlglot cannot translate it.
    """
    if dialect == SOURCE_DIALECT:
        return sql
    trees = [t for t in sqlglot.parse(sql, read=SOURCE_DIALECT) if t is not None]
    if dialect in ("spark", "spark2", "databricks"):
        trees = [t.transform(_decimal_literal_as_double) for t in trees]
    statements = [t.sql(dialect=dialect, unsupported_level=sqlglot.ErrorLevel.RAISE) for t in trees]
    statements = [s for s in statements if s.strip()]
    if len(statements) != 1:
        raise ValueError(f"expected one SQL statement, found {len(statements)}")
    return statements[0]


def _decimal_literal_as_double(node: exp.Expression) -> exp.Expression:
    """A literal such as 365.25 is DECIMAL on both engines, but DuckDB divides decimals in DOUBLE while
    Spark keeps DECIMAL (rounded to 6 places): on Spark such literals are made DOUBLE."""
    if isinstance(node, exp.Literal) and not node.is_string and re.fullmatch(r"\d*\.\d+", node.this or ""):
        return exp.cast(node.copy(), exp.DataType.build("DOUBLE"))
    return node


def _is_date_like(node: exp.Expression) -> bool:
    """True when `node` is (very probably) a DATE: a DATE literal or cast, or a date-named column."""
    if isinstance(node, exp.Paren):
        return _is_date_like(node.this)
    if isinstance(node, (exp.Date, exp.DateFromParts, exp.CurrentDate, exp.TsOrDsToDate, exp.StrToDate)):
        return True
    if isinstance(node, exp.Cast):
        return node.to.this in (exp.DataType.Type.DATE,)
    if isinstance(node, exp.Column):
        return bool(_DATE_NAME.search(node.name))
    if isinstance(node, (exp.Greatest, exp.Least, exp.Coalesce)):
        return any(_is_date_like(a) for a in [node.this, *node.expressions] if a is not None)
    if isinstance(node, (exp.Add, exp.Sub)):
        # date + n and date - n are dates; date - date is caught where it occurs
        return _is_date_like(node.left) and not _is_date_like(node.right)
    return False


def find_unportable(sql: str, *, step: bool = True) -> list[str]:
    """The constructs in one DuckDB statement that would fail or mean something else on Spark.

    Each finding says what to write instead. An empty list means the statement is portable as far
    as these checks go (sqlglot's own RAISE catches the rest when transpiling). `step`: the statement
    is (or becomes) a table, so an ORDER BY on its outer SELECT means nothing; a query whose rows
    are fetched into Python (``step=False``) may order them.
    """
    problems: list[str] = []
    text = _COMMENT.sub("", sql)
    for match in _CATALOG.finditer(text):
        problems.append(f"{match.group(1).rstrip('( ')} is DuckDB's catalog: ask the engine "
                        "(Engine.table_columns) instead")
    if _BY_NAME.search(text):
        problems.append("INSERT ... BY NAME is DuckDB-only: name the columns")
    if _GROUP_BY_ALL.search(text):
        problems.append("GROUP BY ALL (Spark 3.4+ only): list the grouping columns")
    for match in _FUNCTION_CALL.finditer(text):
        problems.append(f"{match.group(1)}() is DuckDB-only: use a portable function")
    for match in _DATE_DIFF_UNIT.finditer(text):
        if match.group(1).lower() != "day":
            problems.append(f"date_diff('{match.group(1)}', ...) counts boundaries on DuckDB but whole units on "
                            "Spark: use year(b) - year(a) (or date_diff('day', a, b))")
    if _REGEXP_REPLACE_G.search(text):
        problems.append("regexp_replace with the 'g' flag is DuckDB-only (Spark replaces every match)")
    for tree in sqlglot.parse(sql, read=SOURCE_DIALECT):
        if tree is None:
            continue
        if step and isinstance(tree, exp.Query) and tree.args.get("order") is not None:
            problems.append("ORDER BY on the step's outer SELECT (meaningless in CREATE TABLE AS): drop it")
        if isinstance(tree, exp.Create) and isinstance(tree.expression, exp.Query) \
                and tree.expression.args.get("order") is not None:
            problems.append("ORDER BY inside CREATE TABLE AS: drop it")
        for window in tree.find_all(exp.Window):
            func = window.this
            if isinstance(func, exp.RowNumber) and window.args.get("order") is None:
                problems.append("row_number() OVER () without ORDER BY: order it by a key")
            name = func.sql_name().lower() if isinstance(func, exp.Func) else ""
            if isinstance(func, exp.Median) or name in ("median", "quantile_cont", "quantile"):
                problems.append("median(...) OVER (Spark 3.4+ only, not a window function before): "
                                "aggregate in a subquery and join")
        for table in tree.find_all(exp.Table):
            if isinstance(table.this, (exp.Func, exp.Anonymous)) or isinstance(table.this, exp.GenerateSeries):
                problems.append(f"table function {table.this.sql(SOURCE_DIALECT)} (e.g. range(n) AS r(i)) "
                                "is DuckDB-only: join a reference table")
        for node in tree.find_all(exp.GenerateSeries, exp.ExplodingGenerateSeries):
            if node.find_ancestor(exp.Select) is not None and not isinstance(node.parent, exp.Table):
                problems.append("range()/generate_series() is DuckDB-only: join a reference table")
        for sub in tree.find_all(exp.Sub):
            if _is_date_like(sub.left) and _is_date_like(sub.right):
                problems.append(f"date - date ({sub.sql(SOURCE_DIALECT)}) is an interval on Spark: "
                                "use date_diff('day', a, b)")
        for func in tree.find_all(exp.Anonymous):
            if func.name.lower().startswith(("list_", "struct_")):
                problems.append(f"{func.name}() is DuckDB-only")
        for node in tree.find_all(exp.DataType):
            if node.this in (exp.DataType.Type.LIST, exp.DataType.Type.STRUCT, exp.DataType.Type.MAP):
                problems.append(f"{node.sql(SOURCE_DIALECT)} type: keep tables flat")
    return list(dict.fromkeys(problems))


class Engine(Protocol):
    """What `pipeline.sql` needs from an engine."""

    dialect: str

    def create_table_as(self, table: str, select_sql: str, *, temp: bool = False) -> None: ...

    def create_view_as(self, view: str, select_sql: str) -> None: ...

    def table_columns(self, table: str) -> list[str] | None: ...

    def count_rows(self, table: str) -> int: ...

    def to_arrow(self, sql: str): ...


class DuckDBEngine:
    """The default engine: a DuckDB connection (SQL runs as written)."""

    dialect = "duckdb"

    def __init__(self, con):
        self.con = con

    def create_table_as(self, table: str, select_sql: str, *, temp: bool = False) -> None:
        kind = "TEMP TABLE" if temp else "TABLE"
        self.con.execute(f"CREATE OR REPLACE {kind} {table} AS\n{select_sql}")

    def create_view_as(self, view: str, select_sql: str) -> None:
        """A temporary view (lives as long as the connection)."""
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS {select_sql}")

    def table_columns(self, table: str) -> list[str] | None:
        """Column names of `table` (or view) in the current schema, in order; None when it does not exist."""
        rows = self.con.execute(
            f"{ADAPTER_TAG}DuckDBEngine.table_columns (SparkEngine asks Spark's catalog)\n"
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = ? AND table_schema = current_schema() ORDER BY ordinal_position", [table]).fetchall()
        return [r[0] for r in rows] or None

    def count_rows(self, table: str) -> int:
        return self.con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0]

    def to_arrow(self, sql: str):
        return self.con.sql(sql).to_arrow_table()

    def load_arrow(self, table: str, data) -> None:
        self.con.register("_engine_arrow_in", data)
        try:
            self.con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _engine_arrow_in")
        finally:
            self.con.unregister("_engine_arrow_in")


class SparkEngine:
    """Spark SQL through a SparkSession: each step's SELECT is transpiled from DuckDB to Spark SQL.

    Each step's result is materialised (``localCheckpoint``: computed once, lineage cut) and
    registered as a temporary view named after the step, so the next step reads it by name as on
    DuckDB. With ``database`` set (it must exist), results are saved as Parquet tables in that Spark
    database instead (dropped and created again on each run), for clusters with a metastore; the
    database becomes the session's current one, so steps read each other's tables by bare name.
    """

    dialect = "spark"

    def __init__(self, spark, *, database: str | None = None):
        self.spark = spark
        self.database = database
        if database:  # steps read earlier steps' tables by their bare names
            spark.catalog.setCurrentDatabase(database)

    def create_table_as(self, table: str, select_sql: str, *, temp: bool = False) -> None:
        query = to_dialect(select_sql, self.dialect)
        if self.database and not temp:
            # Spark's built-in (v1) tables cannot be replaced in one statement (REPLACE TABLE AS SELECT
            # needs a v2 catalog such as Delta or Iceberg): drop, then create
            self.spark.sql(f"DROP TABLE IF EXISTS {self.database}.{table}")
            self.spark.sql(f"CREATE TABLE {self.database}.{table} USING parquet AS {query}")
            return
        frame = self.spark.sql(query).localCheckpoint(eager=True)
        frame.createOrReplaceTempView(table)

    def create_view_as(self, view: str, select_sql: str) -> None:
        """A temporary view of the session (not materialised: Spark computes it where it is read)."""
        self.spark.sql(to_dialect(select_sql, self.dialect)).createOrReplaceTempView(view)

    def table_columns(self, table: str) -> list[str] | None:
        """Column names of `table` (a temporary view, or a table of the current database); None when absent.
        Spark has no information_schema: the catalog answers."""
        if not self.spark.catalog.tableExists(table):
            return None
        return list(self.spark.table(table).columns)

    def count_rows(self, table: str) -> int:
        return self.spark.table(table).count()

    def to_arrow(self, sql: str):
        return self.spark.sql(to_dialect(sql, self.dialect)).toArrow()

    def load_arrow(self, table: str, data) -> None:
        """Register an Arrow table as a view (no pandas on the way: createDataFrame takes Arrow in 4.x)."""
        self.spark.createDataFrame(data).createOrReplaceTempView(table)


def engine_for(con_or_engine) -> Engine:
    """An Engine for a DuckDB connection, or the engine itself."""
    if hasattr(con_or_engine, "create_table_as"):
        return con_or_engine
    return DuckDBEngine(con_or_engine)
