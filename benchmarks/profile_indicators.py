"""CPU seconds and memory of the indicator stage (PSA 21 + local basket), step by step, on a copy of a
national benchmark's database (issue 13).

    .venv/bin/python benchmarks/profile_indicators.py DIR/data/processed/cohesion.duckdb /tmp/copy.duckdb

DIR is a folder `bench_national.py --keep` left after `cohesion estimates` (or later) ran in it; the
database is copied to the second path (left there for a re-run) and the two indicator stages
(`compute_psa21_indicators`, `build_basket`) run on the copy with the [engine] settings of config.toml,
as `cohesion indicators` runs them (DuckDB's memory limit per stage as `pipeline.run` sets it). Printed per SQL statement (named SQL steps, each basket indicator's
query and the fetch of its result into Python) and per Python phase: process CPU seconds (every
thread, DuckDB's included: steadier than wall time on a shared machine), wall seconds, the largest
resident set size seen while it ran (sampled every 20 ms) and the resident set size when it ended;
then the total, peak RSS and the load average. Phases nest (`_weight` includes `_population_at`);
calls of the same phase are summed into one line with their count. Phases the code does not have
(names changed under issue 13) are left out, so the script profiles the code before and after.
"""

from __future__ import annotations

import functools
import os
import re
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import engine as engine_module  # noqa: E402
from pipeline.config import load_settings  # noqa: E402
from pipeline.indicators import basket as basket_module  # noqa: E402
from pipeline.indicators.basket import alerts as alerts_module  # noqa: E402
from pipeline.indicators.basket import compute as basket_compute  # noqa: E402
from pipeline.indicators.psa21 import compute as psa21_module  # noqa: E402

PSA21_PHASES = ("_load_survey", "_weight", "_population_at", "build_survey_band_population", "rake_weights",
                "_ward_covariates", "_direct_rows", "_compare_direct", "_modelled_rows", "_write")
BASKET_PHASES = ("run_steps", "load_imd_quintiles", "fetch_indicator_rows", "fetch_segregation_units", "name_variants",
                 "roll_up", "add_quintile_rows", "compute_rate_rows", "compute_sii_rows", "compute_count_rows",
                 "compute_segregation_rows", "compute_segregation_groups", "compute_diversity_rows", "find_alerts",
                 "shape_indicators", "write_table")  # those the code has (it changed under issue 13)
SEGREGATION_STATISTIC = ("calculate_segregation", "summarise_segregation")


def rss_gib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20
    return 0.0


class RssSampler:
    """The resident set size every 20 ms; `peak_since(mark)` = the largest seen since a mark."""

    def __init__(self):
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.samples.append(rss_gib())

    def mark(self) -> int:
        self.samples.append(rss_gib())
        return len(self.samples) - 1

    def peak_since(self, mark: int) -> float:
        return max(self.samples[mark:] + [rss_gib()])

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class Timings:
    def __init__(self, sampler: RssSampler):
        self.sampler = sampler
        self.rows: OrderedDict[str, list] = OrderedDict()  # name -> [calls, cpu, wall, peak rss, end rss]

    def measure(self, name: str, func, *args, **kwargs):
        mark, cpu, wall = self.sampler.mark(), time.process_time(), time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            row = self.rows.setdefault(name, [0, 0.0, 0.0, 0.0, 0.0])
            row[0] += 1
            row[1] += time.process_time() - cpu
            row[2] += time.perf_counter() - wall
            row[3] = max(row[3], self.sampler.peak_since(mark))
            row[4] = rss_gib()

    def wrap(self, module, name: str, label: str | None = None) -> None:
        func = getattr(module, name)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            return self.measure(label or name, func, *args, **kwargs)

        setattr(module, name, wrapper)


class TimedResult:
    """A DuckDB result whose fetches are timed under its statement's label."""

    def __init__(self, result, label: str, timings: Timings):
        self._result, self._label, self._timings = result, label, timings

    def __getattr__(self, name):
        attr = getattr(self._result, name)
        if name in ("df", "fetchall", "fetchone", "fetchdf", "arrow", "fetch_arrow_table"):
            return lambda *a, **k: self._timings.measure(f"{self._label} -> {name}", attr, *a, **k)
        return attr


class TimedConnection:
    """Delegates to a DuckDB connection; times each execute() labelled by the SQL file it came from (a
    basket indicator's query) or by its first words."""

    def __init__(self, con, timings: Timings, labels: dict[str, str]):
        self._con, self._timings, self._labels = con, timings, labels

    def execute(self, sql, *args, **kwargs):
        label = self._label(sql)
        result = self._timings.measure(label, self._con.execute, sql, *args, **kwargs)
        return TimedResult(result, label, self._timings)

    def _label(self, sql: str) -> str:
        for text, name in self._labels.items():
            if sql.strip().startswith(text):
                return f"sql {name}"
        return "sql " + re.sub(r"\s+", " ", sql.strip())[:50]

    def __getattr__(self, name):
        return getattr(self._con, name)


def set_stage_memory_limit(con, name: str, settings) -> None:
    """DuckDB's memory limit for the stage, as `pipeline.run` sets it (where the code says)."""
    from pipeline import run as run_module
    from pipeline.stages import registered_stages

    if hasattr(run_module, "stage_memory_limit"):
        stage = next(s for s in registered_stages() if s.name == name)
        limit = run_module.stage_memory_limit(stage, settings)
    else:
        limit = settings.engine.memory_limit
    con.execute(f"SET memory_limit = '{limit}'" if limit else "RESET memory_limit")
    print(f"{name}: DuckDB memory_limit {limit or 'default'}", flush=True)


def main() -> None:
    source, copy = Path(sys.argv[1]), Path(sys.argv[2])
    if not copy.exists():
        shutil.copyfile(source, copy)
    settings = load_settings()
    sql_dir = Path(basket_module.__file__).parent / "sql" / "indicators"
    labels = {path.read_text(encoding="utf-8").strip()[:200]: path.name for path in sorted(sql_dir.glob("*.sql"))}
    con = duckdb.connect(str(copy))
    spill = Path(tempfile.mkdtemp(prefix="profile-indicators-spill-"))
    con.execute(f"SET temp_directory = '{spill.as_posix()}'")
    if settings.engine.memory_limit:
        con.execute(f"SET memory_limit = '{settings.engine.memory_limit}'")
    if settings.engine.threads:
        con.execute(f"SET threads = {int(settings.engine.threads)}")
    with RssSampler() as sampler:
        timings = Timings(sampler)
        for name in PSA21_PHASES:
            timings.wrap(psa21_module, name, f"psa21 {name}")
        for name in BASKET_PHASES:
            if hasattr(basket_module, name):
                timings.wrap(basket_module, name, f"basket {name}")
        for name in SEGREGATION_STATISTIC:
            if hasattr(basket_compute, name):
                timings.wrap(basket_compute, name, f"basket   {name}")
        timings.wrap(alerts_module, "_alerts_for", "basket   _alerts_for")
        create = engine_module.DuckDBEngine.create_table_as

        def create_table_as(self, table, select_sql, *, temp=False):
            return timings.measure(f"sql step {table}", create, self, table, select_sql, temp=temp)

        engine_module.DuckDBEngine.create_table_as = create_table_as
        timed = TimedConnection(con, timings, labels)
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            set_stage_memory_limit(con, "psa21", settings)
            timings.measure("PSA21 STAGE", psa21_module.compute_psa21_indicators, timed, settings.psa21)
            set_stage_memory_limit(con, "basket", settings)
            timings.measure("BASKET STAGE", basket_module.build_basket, timed, settings)
        finally:
            total_cpu, total_wall = time.process_time() - cpu, time.perf_counter() - wall
            rows = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                    for t in ("psa21_indicators", "basket_indicators", "alerts")
                    if con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [t]).fetchall()[0][0]}
            con.close()
            shutil.rmtree(spill, ignore_errors=True)
    print(f"{'step / phase':58s} {'calls':>5s} {'cpu s':>8s} {'wall s':>8s} {'peak GiB':>9s} {'end GiB':>8s}")
    for name, (calls, c, w, peak, end) in timings.rows.items():
        print(f"{name[:58]:58s} {calls:5d} {c:8.2f} {w:8.2f} {peak:9.2f} {end:8.2f}")
    print(f"{'TOTAL':58s} {'':5s} {total_cpu:8.2f} {total_wall:8.2f}  peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB  load {os.getloadavg()}")
    print(f"tables: {rows}")


if __name__ == "__main__":
    main()
