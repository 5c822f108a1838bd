"""CPU seconds of the estimate stage, step by step, on a copy of a national benchmark's database (issue 13).

    .venv/bin/python benchmarks/profile_estimates.py DIR/data/processed/cohesion.duckdb /tmp/copy.duckdb

DIR is a folder `bench_national.py --keep` left after `cohesion estimates` (or later) ran in it; the
database is copied to the second path (left there for a re-run) and `estimate_populations` runs on the
copy with the [engine] settings of config.toml (the stage's memory limit: arrays_memory_limit). Printed per SQL step (create_table_as) and per Python
phase: process CPU seconds (every thread, DuckDB's included: steadier than wall time on a shared
machine) and wall seconds; then the total, peak RSS and the load average. Phases nest: roll_cohorts
includes estimate_inflation, and build_register_cells (not listed) includes register_arrays and
roll_cohorts.
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import engine as engine_module  # noqa: E402
from pipeline.config import load_settings  # noqa: E402
from pipeline.estimates import cohort_model, estimate  # noqa: E402
from pipeline.estimates import stage as estimates_stage  # noqa: E402
from pipeline.run import stage_memory_limit  # noqa: E402

PHASES = ("register_arrays", "build_turbulence", "roll_cohorts", "apply_constraint", "build_lsoa_rows",
          "build_ethnicity", "_write")


def main() -> None:
    source, copy = Path(sys.argv[1]), Path(sys.argv[2])
    if not copy.exists():
        shutil.copyfile(source, copy)
    timings: list[tuple[str, float, float]] = []

    def timed(label: str, func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            cpu, wall = time.process_time(), time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                name = f"{label} {args[1]}" if label == "_write" else label
                timings.append((name, time.process_time() - cpu, time.perf_counter() - wall))
        return wrapper

    for name in PHASES:
        setattr(estimate, name, timed(name, getattr(estimate, name)))
    cohort_model.estimate_inflation = timed("  estimate_inflation", cohort_model.estimate_inflation)
    create = engine_module.DuckDBEngine.create_table_as

    def create_table_as(self, table, select_sql, *, temp=False):
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            return create(self, table, select_sql, temp=temp)
        finally:
            timings.append((f"sql {table}", time.process_time() - cpu, time.perf_counter() - wall))

    engine_module.DuckDBEngine.create_table_as = create_table_as
    settings = load_settings()
    con = duckdb.connect(str(copy))
    spill = Path(tempfile.mkdtemp(prefix="profile-estimates-spill-"))
    con.execute(f"SET temp_directory = '{spill.as_posix()}'")
    limit = stage_memory_limit(estimates_stage.STAGE, settings)  # the stage's own limit, as in a run
    if limit:
        con.execute(f"SET memory_limit = '{limit}'")
    con.execute("SET enable_progress_bar = false")
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        estimate.estimate_populations(con, settings.estimates)
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    for name, c, w in timings:
        print(f"{name:45s} cpu {c:7.2f}  wall {w:7.2f}")
    print(f"{'TOTAL':45s} cpu {time.process_time() - cpu:7.2f}  wall {time.perf_counter() - wall:7.2f}  "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB  load {os.getloadavg()}")


if __name__ == "__main__":
    main()
