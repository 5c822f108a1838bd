"""Wall-time timeline of the whole `cohesion validate` command, phase by phase (issue 13).

    .venv/bin/python benchmarks/timeline_validate.py DATA_DIR [--min-seconds 0.3] [--json out.json]

DATA_DIR holds `raw/` (e.g. a folder `bench_ingest.py --keep-data` left). The command runs in this
process as the CLI runs it (`pipeline.run.run_pipeline(settings, "validate", reuse=False)`, on
`DATA_DIR/processed` like `cohesion validate`), with the run's functions and every DuckDB statement
timed: wall seconds, process CPU seconds (every thread, DuckDB's included) and their ratio, the cores
in use on average (a single-threaded phase shows 1.0 or less on the 2-core machine). The imports
(the CLI's, and great-expectations' when validation first needs it) are timed too. Printed as a
timeline: each timed call with its depth; statements shorter than `--min-seconds` are summed into
one line per enclosing call. The run's own log (`processed/logs`) is written as usual.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import resource
import sys
import time
from pathlib import Path

STARTED_WALL, STARTED_CPU = time.perf_counter(), time.process_time()

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

EVENTS: list[dict] = []  # {"depth", "name", "wall", "cpu", "start"} in the order they began
_STACK: list[dict] = []


class _Timed:
    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.event = {"depth": len(_STACK), "name": self.name, "start": time.perf_counter() - STARTED_WALL,
                      "_wall": time.perf_counter(), "_cpu": time.process_time()}
        EVENTS.append(self.event)
        _STACK.append(self.event)
        return self.event

    def __exit__(self, *exc):
        _STACK.pop()
        self.event["wall"] = time.perf_counter() - self.event.pop("_wall")
        self.event["cpu"] = time.process_time() - self.event.pop("_cpu")
        return False


def timed(module: str, attribute: str, label: str | None = None) -> None:
    """Replace module.attribute (a function) by a timed wrapper."""
    owner = importlib.import_module(module)
    original = getattr(owner, attribute)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        with _Timed(label or f"{module.rsplit('.', 1)[-1]}.{attribute}"):
            return original(*args, **kwargs)

    setattr(owner, attribute, wrapper)


class TimedConnection:
    """A DuckDB connection whose `execute` is timed (one event per statement)."""

    def __init__(self, con):
        self._con = con

    def execute(self, sql, *args, **kwargs):
        with _Timed("SQL " + " ".join(str(sql).split())[:100]):
            return self._con.execute(sql, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._con, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--min-seconds", type=float, default=0.3)
    parser.add_argument("--json", type=Path, default=None, help="also write the events as JSON")
    args = parser.parse_args()

    with _Timed("import the CLI (pipeline.cli: typer, rich, duckdb, pydantic, ...)"):
        import duckdb

        import pipeline.cli  # noqa: F401  (what `cohesion` imports before it runs anything)
        from pipeline.config import load_settings
        from pipeline.run import run_pipeline
    real_connect = duckdb.connect
    duckdb.connect = lambda *a, **k: TimedConnection(real_connect(*a, **k))

    import pipeline.ingest  # noqa: F401
    import pipeline.validate  # noqa: F401
    import pipeline.validate.summaries  # noqa: F401

    for module, attribute in [
        ("pipeline.run", "hash_raw_files"), ("pipeline.run", "fingerprint_stages"), ("pipeline.run", "reuse_previous"),
        ("pipeline.run", "configure_engine"), ("pipeline.run", "run_stage"), ("pipeline.run", "check_published_tables"),
        ("pipeline.run", "swap_in"), ("pipeline.run", "_write_json"), ("pipeline.run", "code_version"),
        ("pipeline.ingest", "ingest_raw"), ("pipeline.ingest", "load_file"), ("pipeline.ingest", "write_quarantine"),
        ("pipeline.ingest", "build_place_index"), ("pipeline.ingest", "load_vocabulary"),
        ("pipeline.ingest", "quarantine_frame"), ("pipeline.ingest", "insert_valid_rows"),
        ("pipeline.ingest", "check_keys_across_files"), ("pipeline.ingest", "take_inventory"),
        ("pipeline.ingest", "file_hash"), ("pipeline.ingest", "read_raw_file"),
        ("pipeline.ingest.reader", "finish_csv_pass"), ("pipeline.ingest", "finish_csv_pass"),
        ("pipeline.validate", "validate_batches"), ("pipeline.validate.summaries", "build_checks"),
        ("pipeline.validate.summaries", "register_check"), ("pipeline.validate.summaries", "list_change_checks"),
        ("pipeline.validate.summaries", "files_check"),
    ]:
        timed(module, attribute)

    def instrument_gx() -> None:
        """Time great-expectations' own steps once its module is loaded (by the warm-up or by validation)."""
        name = "pipeline.validate.gx_runner"
        gx = sys.modules[name]
        if getattr(gx, "_timed", False):
            return
        gx._timed = True
        for attribute in ("make_context", "_run"):
            timed(name, attribute)
        original_run = gx.run_checks

        def run_checks(checks, docs_dir):
            with _Timed("gx_runner.run_checks (context, suite, checkpoint, data docs)"):
                return original_run(checks, docs_dir)

        gx.run_checks = run_checks
        import great_expectations as ge

        original_cp_run = ge.Checkpoint.run

        def cp_run(self, *a, **k):
            with _Timed("great_expectations Checkpoint.run (validation + UpdateDataDocsAction)"):
                return original_cp_run(self, *a, **k)

        ge.Checkpoint.run = cp_run

    import builtins

    original_import = builtins.__import__

    def timed_import(name, globals=None, locals=None, fromlist=(), level=0):
        """great-expectations imported by validation itself (no warm-up ran, or it failed)."""
        if name == "pipeline.validate.gx_runner" and name not in sys.modules:
            with _Timed("import great_expectations (pipeline.validate.gx_runner)"):
                module = original_import(name, globals, locals, fromlist, level)
            instrument_gx()
            return module
        return original_import(name, globals, locals, fromlist, level)

    import pipeline.stages
    import pipeline.validate.stage

    original_wait = pipeline.stages.wait_for_warm_up

    def wait_for_warm_up():
        with _Timed("wait for the warm-up (great-expectations imported in the background during ingest)"):
            original_wait()
        if "pipeline.validate.gx_runner" in sys.modules:
            instrument_gx()

    pipeline.validate.stage.wait_for_warm_up = wait_for_warm_up
    builtins.__import__ = timed_import
    settings = load_settings(data_dir=args.data_dir.resolve())
    with _Timed("run_pipeline(validate)"):
        run_pipeline(settings, "validate", reuse=False)
    builtins.__import__ = original_import
    total_wall, total_cpu = time.perf_counter() - STARTED_WALL, time.process_time() - STARTED_CPU
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    print(f"{'start':>7} {'wall s':>7} {'CPU s':>7} {'cores':>5}  call (statements under {args.min_seconds} s summed)")
    small: dict[int, list] = {}

    def flush(parent_index: int) -> None:
        items = small.pop(parent_index, None)
        if items:
            wall, cpu = sum(e["wall"] for e in items), sum(e["cpu"] for e in items)
            depth = items[0]["depth"]
            print(f"{'':>7} {wall:7.2f} {cpu:7.2f} {cpu / wall if wall else 0:5.2f}  {'  ' * depth}"
                  f"({len(items)} shorter statements)")

    parents: list[int] = []
    for index, event in enumerate(EVENTS):
        while parents and EVENTS[parents[-1]]["depth"] >= event["depth"]:
            flush(parents.pop())
        if event["name"].startswith("SQL ") and event["wall"] < args.min_seconds:
            small.setdefault(parents[-1] if parents else -1, []).append(event)
            continue
        cores = event["cpu"] / event["wall"] if event["wall"] else 0
        print(f"{event['start']:7.2f} {event['wall']:7.2f} {event['cpu']:7.2f} {cores:5.2f}  "
              f"{'  ' * event['depth']}{event['name']}")
        parents.append(index)
    while parents:
        flush(parents.pop())
    flush(-1)
    print(f"{'':>7} {total_wall:7.2f} {total_cpu:7.2f} {total_cpu / total_wall:5.2f}  the whole process "
          f"(from the script's first line); peak RSS {rss:.2f} GiB")
    if args.json:
        args.json.write_text(json.dumps({"events": EVENTS, "wall": total_wall, "cpu": total_cpu, "peak_rss_gib": rss},
                                        indent=1))


if __name__ == "__main__":
    main()
