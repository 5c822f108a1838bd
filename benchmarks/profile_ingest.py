"""CPU seconds of ingest + validation, statement by statement (issue 13).

    .venv/bin/python benchmarks/profile_ingest.py DATA_DIR [--memory-limit 1GB] [--top 25]

DATA_DIR holds `raw/` (e.g. a folder `bench_ingest.py --keep` left, or one made with its
`write_extract`); the run writes into a fresh temporary database beside it (`DATA_DIR/profile/`,
removed afterwards), never into `DATA_DIR/processed`. Ingest (`ingest_raw`) and validation
(`validate_batches`) run in process on one DuckDB connection set up as `pipeline.run` sets it up
(`configure_engine`, then `[engine] ingest_memory_limit`), and every statement they run is timed:
process CPU seconds (every thread, DuckDB's included: steadier than wall time on a shared machine)
and wall seconds. Printed: the costliest statements (first 110 characters of each), the phases
(ingest, validation) and peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.config import load_settings  # noqa: E402
from pipeline.run import configure_engine, size_ingest_memory  # noqa: E402


class TimedConnection:
    """A DuckDB connection whose `execute` records CPU and wall seconds per statement."""

    def __init__(self, con: duckdb.DuckDBPyConnection, timings: list):
        self._con, self._timings = con, timings

    def execute(self, sql, *args, **kwargs):
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            return self._con.execute(sql, *args, **kwargs)
        finally:
            text = " ".join(str(sql).split())
            self._timings.append((text, time.process_time() - cpu, time.perf_counter() - wall))

    def __getattr__(self, name):
        return getattr(self._con, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--memory-limit", default=None, help="override [engine] ingest_memory_limit")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    settings = load_settings(data_dir=args.data_dir.resolve())
    work = args.data_dir.resolve() / "profile"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    raw_con = duckdb.connect(str(work / "cohesion.duckdb"))
    raw_con.execute("SET enable_progress_bar = false")
    configure_engine(raw_con, settings, work)
    limit = args.memory_limit or settings.engine.ingest_memory_limit or settings.engine.memory_limit
    if limit == "auto":  # as the run sizes it (pipeline.run.stage_memory_limit)
        limit = size_ingest_memory(settings.raw_dir, settings.engine.memory_limit)
    if limit:
        raw_con.execute(f"SET memory_limit = '{limit}'")
    timings: list[tuple[str, float, float]] = []
    con = TimedConnection(raw_con, timings)
    from pipeline.ingest import ingest_raw
    from pipeline.validate import validate_batches

    phases = []
    try:
        for name, step in (("ingest", lambda: ingest_raw(con, settings)),
                           ("validation", lambda: validate_batches(con, settings, result.files, work / "out"))):
            cpu, wall = time.process_time(), time.perf_counter()
            out = step()
            if name == "ingest":
                result = out
            phases.append((name, time.process_time() - cpu, time.perf_counter() - wall))
    finally:
        raw_con.close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'CPU s':>7} {'wall s':>7}  statement (memory limit {limit})")
    for text, cpu, wall in sorted(timings, key=lambda t: -t[1])[:args.top]:
        print(f"{cpu:7.2f} {wall:7.2f}  {text[:110]}")
    print(f"{sum(t[1] for t in timings):7.2f} {sum(t[2] for t in timings):7.2f}  all {len(timings)} statements")
    for name, cpu, wall in phases:
        print(f"{cpu:7.2f} {wall:7.2f}  phase {name}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    for report in result.files:
        print(f"{report.file}: read {report.rows_read}, loaded {report.rows_loaded}, "
              f"quarantined {report.rows_quarantined} {report.quarantined_by_rule}")


if __name__ == "__main__":
    main()
