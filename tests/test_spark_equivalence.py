"""The same SQL steps on Spark (local[1]) give the same tables as on DuckDB (pipeline/engine.py).

A tiny demo district is run through ingest and estimates on DuckDB; the tables the estimates'
``sql/prepare`` steps and the PSA 21 indicator population steps read are moved DuckDB -> Arrow ->
Spark (no pandas: pyspark does not fully support pandas 3), the steps are run on both engines from
the same files and parameters, and every resulting table must be equal (rows sorted, floats to
1e-9 relative). Skipped where pyspark or Java is missing (install the ``spark`` extra).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import shutil
from pathlib import Path

import pytest

pyspark = pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("Spark needs a Java runtime (java on PATH)", allow_module_level=True)

import duckdb  # noqa: E402
import sqlglot  # noqa: E402
from sqlglot import exp  # noqa: E402

from pipeline.config import load_settings  # noqa: E402
from pipeline.engine import DuckDBEngine, SparkEngine  # noqa: E402
from pipeline.estimates.estimate import COMMON_DIR, PREPARE_DIR, choose_base  # noqa: E402
from pipeline.estimates.sources import prepare_sources  # noqa: E402
from pipeline.sql import list_steps, render, run_steps  # noqa: E402

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
    settings = load_settings(data_dir=data, demo={"n_lsoas": 4, "scale": 0.15, "quarters": 4, "survey_size": 200})
    generate_district(settings.demo, data)
    run_pipeline(settings, "estimates")
    db = tmp_path_factory.mktemp("spark_db") / "copy.duckdb"
    shutil.copy(data / "processed" / "cohesion.duckdb", db)
    return settings, db


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[1]").appName("cohesion-equivalence")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "1")
               .config("spark.sql.session.timeZone", "UTC").config("spark.driver.memory", "1g")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def run_on_both(con, spark, steps: list[tuple[str, str]]) -> list[str]:
    """Run (table, select) pairs on DuckDB and on Spark, inputs copied across via Arrow; compare."""
    duck, sparky = DuckDBEngine(con), SparkEngine(spark)
    made: set[str] = set()
    for table, select in steps:
        for source in sorted(tables_read(select) - made):
            sparky.load_arrow(source, duck.to_arrow(f"SELECT * FROM {source}"))
        duck.create_table_as(f"duck_{table}", select)
        sparky.create_table_as(table, select)
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM duck_{table}")
        assert_tables_equal(table, duck.to_arrow(f"SELECT * FROM duck_{table}"),
                            spark.table(table).toArrow())
        made.add(table)
    return sorted(made)


def test_estimate_prepare_steps_equal_on_spark(estimated_district, spark):
    settings, db = estimated_district
    con = duckdb.connect(str(db))
    prepare_sources(con)
    first = con.execute("SELECT min(extract_date) FROM est_src_gp_register").fetchall()[0][0]
    base_date, base_source = choose_base(con, first, settings.estimates.base_source)
    params = {"base_date": base_date, "base_source": base_source,
              "birth_lag_days": int(settings.estimates.birth_registration_lag_days),
              "death_lag_days": int(settings.estimates.death_removal_lag_days),
              "flows_from_movements": False, "cleaning_threshold": float(settings.estimates.cleaning_threshold)}
    steps = [(s.name, render(s.sql, params)) for s in list_steps(COMMON_DIR) + list_steps(PREPARE_DIR)]
    made = run_on_both(con, spark, steps)
    assert len(made) == len(steps) >= 13
    # the comparison is not vacuous: the district has patients, flows and vital events
    for table in ("est_gp_patients", "est_cells", "est_gp_flows", "est_vital_lag"):
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
    folder = Path(__file__).resolve().parents[1] / "pipeline" / "estimates" / "sql" / "prepare"
    first = list_steps(folder)[0]
    sparky = SparkEngine(spark)
    sparky.load_arrow("est_src_gp_register", DuckDBEngine(con).to_arrow(
        "SELECT DISTINCT extract_date FROM gp_register"))
    tmp = Path(db).parent / "one_step"
    tmp.mkdir(exist_ok=True)
    (tmp / first.path.name).write_text(first.sql)
    assert run_steps(sparky, tmp, {"base_date": dt.date(2022, 6, 30)}) == [first.name]
    assert spark.table(first.name).count() == con.execute(
        "SELECT count(DISTINCT extract_date) FROM gp_register").fetchall()[0][0]
