"""Shared fixtures: a tiny hand-written raw folder on real Trafford geography (3 LSOAs)."""

from __future__ import annotations

import sys

# With pyspark installed (the optional `spark` extra), great-expectations imports pyspark.sql.connect,
# which calls sys.exit(0) when __main__ has neither __spec__ nor __file__ - as in pytest-xdist workers.
_main = sys.modules.get("__main__")
if _main is not None and getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__"):
    _main.__file__ = "<pytest-xdist worker>"

import dataclasses
import os
import re
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline.config import load_settings

FIXTURES = Path(__file__).parent / "fixtures"
POSTCODES = FIXTURES / "trafford_postcodes_3lsoa.csv"

REGISTER_HEADER = "extract_date,patient_id,practice_code,postcode,sex,date_of_birth,registration_date,from_abroad,ethnic_category"


def first_postcodes(n: int = 3) -> list[str]:
    lines = POSTCODES.read_text().splitlines()[1:]
    return [line.split(",")[0] for line in lines[:n]]


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def make_raw(root: Path) -> Path:
    """A minimal, clean raw folder: geography, two register extracts, a base population."""
    raw = root / "raw"
    (raw / "geography").mkdir(parents=True, exist_ok=True)
    shutil.copy(POSTCODES, raw / "geography" / "trafford_postcodes.csv")
    pc = first_postcodes(3)
    rows = [
        f"2024-01-01,Pa0001,P91003,{pc[0]},M,1980-05-01,2001-01-01,N,A",
        f"2024-01-01,Pa0002,P91003,{pc[1].lower().replace(' ', '')},2,1990-07,2010-03-01,,H",
        f"2024-01-01,Pa0003,P91004,{pc[2]},F,2023-12-01,2023-12-20,N,",
        f"2024-01-01,Pa0004,P91004,{pc[0]},1,1950-01-31,1970-01-01,Y,Z",
    ]
    write(raw / "gp_register" / "gp_register_2024-01-01.csv", "\n".join([REGISTER_HEADER, *rows]) + "\n")
    rows2 = [r.replace("2024-01-01,", "2024-04-01,", 1) for r in rows]
    write(raw / "gp_register" / "gp_register_2024-04-01.csv", "\r\n".join([REGISTER_HEADER, *rows2]) + "\r\n")
    base = ["reference_date,area_code,sex,age_band,population,source"]
    for lsoa in ("E01006074", "E01006075", "E01006076"):
        for sex in "MF":
            bands = [f"{a}-{a + 4}" for a in range(0, 85, 5) if a != 30] + ["85+"]
            base += [f"2023-06-30,{lsoa},{sex},{band},50,ons-mye-2023" for band in bands]
            base += [f"2023-06-30,{lsoa},{sex},30,12,ons-mye-2023", f"2023-06-30,{lsoa},{sex},31,13,ons-mye-2023"]
    write(raw / "base_population" / "base.csv", "\n".join(base) + "\n")
    return root


@pytest.fixture
def mini_data(tmp_path: Path) -> Path:
    return make_raw(tmp_path / "data")


@pytest.fixture
def settings_for():
    def build(data_dir: Path, **overrides):
        return load_settings(data_dir=data_dir, **overrides)
    return build


# stage name -> every statement DuckDB ran for that stage in this session's demo_run (its QueryLog);
# tests/test_sql_portability.py checks what the stages that can run on Spark build in Python
EXECUTED_SQL: dict[str, list[str]] = {}


@contextmanager
def capturing_stage_sql(into: dict[str, list[str]]):
    """Record, per stage, the SQL statements the stage runs on the run's DuckDB connection (DuckDB's
    QueryLog, switched on around each stage's own code only: the runner's bookkeeping is not included)."""
    import pipeline.run as run_module

    original = run_module.run_stage

    def run_stage(stage, ctx, fingerprint):
        def run(c):
            c.con.execute("CALL enable_logging('QueryLog')").fetchall()
            try:
                return stage.run(c)
            finally:
                rows = c.con.execute("SELECT message FROM duckdb_logs WHERE type = 'QueryLog'").fetchall()
                into[stage.name] = [r[0] for r in rows if "duckdb_logs" not in r[0]]
                c.con.execute("CALL disable_logging()").fetchall()
                c.con.execute("CALL truncate_duckdb_logs()").fetchall()
        return original(dataclasses.replace(stage, run=run), ctx, fingerprint)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_module, "run_stage", run_stage)
        yield into


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """A small demo district (12 LSOAs, 30% scale, a year of extracts) run through every built stage
    (the SQL each stage ran is kept in EXECUTED_SQL)."""
    from pipeline.demo import generate_district
    from pipeline.run import run_pipeline

    data = tmp_path_factory.mktemp("demo") / "data"
    settings = load_settings(data_dir=data, demo={"n_lsoas": 12, "scale": 0.3, "quarters": 4, "survey_size": 600})
    generate_district(settings.demo, data)
    with capturing_stage_sql(EXECUTED_SQL):
        summary = run_pipeline(settings, "outputs")
    return settings, summary


# ---------------------------------------------------------------------------------------------- Spark

def spark_unavailable() -> str | None:
    """Why local Spark cannot run here (pyspark missing, no Java 17+), or None when it can."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (the `spark` extra: pip install -e '.[dev,spark]', as `make test` does)"
    java = shutil.which("java", path=os.path.join(os.environ["JAVA_HOME"], "bin")) if os.environ.get("JAVA_HOME") \
        else shutil.which("java")
    if java is None:
        return "Spark needs a Java runtime 17+ (Debian: apt-get install openjdk-17-jre-headless, as .ci/run does)"
    version = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    major = re.search(r'version "(\d+)', version)
    if major is None or int(major.group(1)) < 17:
        return f"Spark 4 needs Java 17+, found: {version.splitlines()[0] if version else java}"
    return None


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """One local SparkSession for the whole test session (each pytest-xdist worker starts its own).

    Kept small and quick for tiny tables: two cores, two shuffle partitions, no UI, no whole-stage
    code generation or adaptive execution (compiling and re-planning cost more than they save on a
    few thousand rows), and a driver JVM that only JIT-compiles with C1 (-XX:TieredStopAtLevel=1):
    on a 2-core machine these roughly halve the start-up and per-query time. Skipped where pyspark or
    Java is missing, except under CI (CI=true), where that is a failure: the Spark tests must run there.
    """
    problem = spark_unavailable()
    if problem:
        if in_ci():
            pytest.fail(f"CI must run the Spark tests, but {problem}")
        pytest.skip(problem)
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("cohesion-tests")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.default.parallelism", "2")
               .config("spark.sql.codegen.wholeStage", "false")
               .config("spark.sql.adaptive.enabled", "false")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.warehouse.dir", str(tmp_path_factory.mktemp("spark-warehouse")))
               .config("spark.driver.memory", "1g")
               .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
