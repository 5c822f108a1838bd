"""The same SQL steps on local Spark give the same tables as on DuckDB (pipeline/engine.py).

The smallest demo district that still exercises every step (3 LSOAs straddling wards, 10% scale, a
year of extracts, with movements, school censuses, vital events and asylum allocations) is run
through ingest and estimates on DuckDB; the tables the estimates' ``sql/prepare`` steps and the
PSA 21 indicator population steps read are moved DuckDB -> Arrow -> Spark (no pandas: pyspark does
not fully support pandas 3), the steps are run on both engines from the same files and parameters,
and every resulting table must be equal (rows sorted, floats to 1e-9 relative). The est_src_* views
are made on Spark by the estimates' own ``prepare_sources`` through the engine adapter.

One SparkSession serves the whole test session (the ``spark`` fixture in conftest.py). Where pyspark or
Java 17+ is missing the tests are skipped, except under CI (CI=true), where that fails: `make test`
installs the ``spark`` extra and .ci/run installs Java when it is absent.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import shutil
from pathlib import Path

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from pipeline.config import load_settings
from pipeline.engine import DuckDBEngine, SparkEngine
from pipeline.estimates.estimate import COMMON_DIR, PREPARE_DIR, choose_base, choose_mode
from pipeline.estimates.sources import SOURCE_COLUMNS, prepare_sources
from pipeline.sql import list_steps, render, run_steps

# Under pytest-xdist each worker that gets a test from here starts its own JVM and builds its own district
# (--dist loadfile would keep them on one worker, but lets tests/test_stages.py re-run the shared demo_run
# folder before the tests that read its outputs; xdist_group did not group with pytest 9.2 and xdist 3.8)
PSA21_SQL = Path(__file__).resolve().parents[1] / "pipeline" / "indicators" / "psa21" / "sql" / "population"


def tables_read(sql: str) -> set[str]:
    """Tables a statement reads (CTE names excluded)."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    return {t.name for t in tree.find_all(exp.Table) if t.name and t.name not in ctes}


def normalise(value):
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.date() if value.time() == dt.time(0) else value
    return value


def sorted_rows(table) -> list[tuple]:
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    rows = [tuple(normalise(v) for v in row) for row in zip(*columns)]
    return sorted(rows, key=lambda r: tuple((v is None, str(type(v)), v if v is not None else 0) for v in r))


def assert_tables_equal(name: str, duck, spark) -> None:
    assert [c.lower() for c in duck.column_names] == [c.lower() for c in spark.column_names], name
    a, b = sorted_rows(duck), sorted_rows(spark)
    assert len(a) == len(b), f"{name}: {len(a)} rows on DuckDB, {len(b)} on Spark"
    for i, (ra, rb) in enumerate(zip(a, b)):
        for col, va, vb in zip(duck.column_names, ra, rb):
            if isinstance(va, float) or isinstance(vb, float):
                assert va is not None and vb is not None and math.isclose(va, vb, rel_tol=1e-9, abs_tol=1e-9), \
                    f"{name} row {i} {col}: DuckDB {va!r}, Spark {vb!r}"
            else:
                assert va == vb, f"{name} row {i} {col}: DuckDB {va!r}, Spark {vb!r}"


@pytest.fixture(scope="module")
def estimated_district(tmp_path_factory):
    from pipeline.demo import generate_district
    from pipeline.run import run_pipeline

    data = tmp_path_factory.mktemp("spark") / "data"
    settings = load_settings(data_dir=data, demo={"n_lsoas": 3, "scale": 0.1, "quarters": 4, "survey_size": 150})
    generate_district(settings.demo, data)
    run_pipeline(settings, "estimates")
    db = tmp_path_factory.mktemp("spark_db") / "copy.duckdb"
    shutil.copy(data / "processed" / "cohesion.duckdb", db)
    return settings, db


def run_on_both(con, spark, steps: list[tuple[str, str]], ready: set[str] = frozenset()) -> list[str]:
    """Run (table, select) pairs on DuckDB and on Spark, inputs not `ready` on Spark copied across via
    Arrow; compare."""
    duck, sparky = DuckDBEngine(con), SparkEngine(spark)
    made: set[str] = set(ready)
    for table, select in steps:
        for source in sorted(tables_read(select) - made):
            sparky.load_arrow(source, duck.to_arrow(f"SELECT * FROM {source}"))
        duck.create_table_as(f"duck_{table}", select)
        sparky.create_table_as(table, select)
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM duck_{table}")
        assert_tables_equal(table, duck.to_arrow(f"SELECT * FROM duck_{table}"),
                            spark.table(table).toArrow())
        made.add(table)
    return sorted(made - set(ready))


def test_estimate_prepare_steps_equal_on_spark(estimated_district, spark):
    settings, db = estimated_district
    con = duckdb.connect(str(db))
    duck, sparky = DuckDBEngine(con), SparkEngine(spark)
    # the canonical tables go across as they are; est_src_* are made on each engine by prepare_sources
    for table in SOURCE_COLUMNS:
        if duck.table_columns(table) is not None:
            sparky.load_arrow(table, duck.to_arrow(f"SELECT * FROM {table}"))
    info, spark_info = prepare_sources(duck), prepare_sources(sparky)
    assert spark_info.rows == info.rows and spark_info.present == info.present
    for view in ("est_src_gp_register", "est_src_vital_events", "est_src_la_totals"):
        assert_tables_equal(view, duck.to_arrow(f"SELECT * FROM {view}"), spark.table(view).toArrow())
    mode = choose_mode(info)
    assert mode == "register_movements"  # the demo has movement records: the events branch of est_gp_flows
    first = con.execute("SELECT min(extract_date) FROM est_src_gp_register").fetchall()[0][0]
    base_date, base_source = choose_base(con, first, settings.estimates.base_source)
    params = {"base_date": base_date, "base_source": base_source,
              "birth_lag_days": int(settings.estimates.birth_registration_lag_days),
              "death_lag_days": int(settings.estimates.death_removal_lag_days),
              "flows_from_movements": True, "cleaning_threshold": float(settings.estimates.cleaning_threshold)}
    steps = [(s.name, render(s.sql, params)) for s in list_steps(COMMON_DIR) + list_steps(PREPARE_DIR)]
    # and the snapshots branch (a register without movement records), on the same tables
    flows = next(s for s in list_steps(PREPARE_DIR) if s.name == "est_gp_flows")
    steps.append(("est_gp_flows_snapshots", render(flows.sql, {**params, "flows_from_movements": False})))
    made = run_on_both(con, spark, steps, ready={f"est_src_{t}" for t in SOURCE_COLUMNS})
    assert len(made) == len(steps) >= 14
    # the comparison is not vacuous: the district has patients, flows, moves, asylum and vital events
    for table in ("est_gp_patients", "est_cells", "est_gp_flows", "est_gp_flows_snapshots", "est_vital_lag",
                  "est_school_moves", "est_school_pupils", "est_asylum", "est_ethnic_counts"):
        assert con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] > 0, table


def test_indicator_population_steps_equal_on_spark(estimated_district, spark):
    _, db = estimated_district
    con = duckdb.connect(str(db))
    dates = [r[0] for r in con.execute("SELECT DISTINCT reference_date FROM population_estimates "
                                       "ORDER BY 1").fetchall()]
    extract = con.execute("SELECT max(extract_date) FROM gp_register").fetchall()[0][0]
    steps = [
        ("ind_psa21_ward_bands", render((PSA21_SQL / "01_ind_psa21_ward_bands.sql").read_text(),
                                        {"date_before": dates[0], "date_after": dates[-1], "fraction": 0.25})),
        ("ind_psa21_single_years", render((PSA21_SQL / "02_ind_psa21_single_years.sql").read_text(),
                                          {"extract_date": extract})),
    ]
    run_on_both(con, spark, steps)
    assert con.execute("SELECT count(*) FROM ind_psa21_ward_bands").fetchall()[0][0] > 0


def test_run_steps_accepts_a_spark_engine(estimated_district, spark):
    """pipeline.sql.run_steps drives Spark exactly as it drives DuckDB (tables by step name)."""
    _, db = estimated_district
    con = duckdb.connect(str(db))
    first = list_steps(COMMON_DIR)[0]  # est_extracts
    sparky = SparkEngine(spark)
    sparky.load_arrow("est_src_gp_register", DuckDBEngine(con).to_arrow(
        "SELECT DISTINCT extract_date FROM gp_register"))
    sparky.load_arrow("est_src_gp_counts", DuckDBEngine(con).to_arrow("SELECT extract_date FROM gp_counts"))
    tmp = Path(db).parent / "one_step"
    tmp.mkdir(exist_ok=True)
    (tmp / first.path.name).write_text(first.sql)
    assert run_steps(sparky, tmp, {"base_date": dt.date(2022, 6, 30)}) == [first.name]
    assert spark.table(first.name).count() == con.execute(
        "SELECT count(DISTINCT extract_date) FROM gp_register").fetchall()[0][0]


def test_steps_saved_as_tables_of_a_spark_database(spark, tmp_path):
    """SparkEngine(database=...) saves each step as a Parquet table of that database, replaced on a re-run."""
    import pyarrow as pa

    for n, step in enumerate(["SELECT a, a * 2 AS b FROM step_input", "SELECT sum(b) AS total FROM doubled"]):
        (tmp_path / f"0{n + 1}_{'doubled' if n == 0 else 'summed'}.sql").write_text(step)
    spark.sql("CREATE DATABASE IF NOT EXISTS cohesion_test")
    try:
        engine = SparkEngine(spark, database="cohesion_test")
        for values, total in (([1, 2, 3], 12), ([10], 20)):  # the second run replaces the tables
            engine.load_arrow("step_input", pa.table({"a": values}))
            assert run_steps(engine, tmp_path) == ["doubled", "summed"]
            assert spark.table("cohesion_test.summed").collect()[0]["total"] == total
        assert {t.name for t in spark.catalog.listTables("cohesion_test") if not t.isTemporary} >= {"doubled", "summed"}
        assert engine.table_columns("doubled") == ["a", "b"] and engine.table_columns("absent") is None
    finally:
        spark.catalog.setCurrentDatabase("default")
        spark.sql("DROP DATABASE IF EXISTS cohesion_test CASCADE")
