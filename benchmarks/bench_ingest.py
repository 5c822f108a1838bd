"""Benchmark: ingest + validation of one GP register extract (issue 13: 10 million rows).

Writes a synthetic extract (postcodes drawn from the real Trafford directory, a few per cent of
them in lower case or without the space, 0.1% bad rows), then, each in its own process:
- the floor: DuckDB reading the same file, joining the postcode directory and counting patients
  by LSOA x sex x age band (`bare_scan`);
- `cohesion validate` (ingest + validation, the normal CLI and config.toml; `--memory-limit`
  overrides `[engine] ingest_memory_limit`, the limit these two stages run under, in a copy of the
  config), under GNU time.
It records wall and CPU seconds, peak resident memory and the load average (a shared machine).
With `--repeat N` (default 3) the two are timed alternately N times, after one untimed read of the
files (so that neither side pays for reading them from disk), and the ratios are of the medians:
one run of each moved the ratio from x8.5 to x10.6 on the same machine, mostly in the 3-second floor.

    .venv/bin/python benchmarks/bench_ingest.py [--rows 10000000] [--memory-limit 1GB] [--results-name NAME]
                                                [--data-dir DIR] [--repeat N]

Results: benchmarks/results/ingest.json and ingest.md (committed), or NAME.{json,md} with `--results-name`.
`--data-dir DIR` keeps the generated data folder in DIR (written when DIR/raw does not exist, reused
when it does: same rows, no time spent writing them again; DIR/processed is removed before the run,
so that nothing of an earlier run is reused).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from bench_national import LoadSampler, read_once, run_stage  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parent.parent
FRAME = ROOT / "pipeline" / "demo" / "frame" / "trafford_postcodes.csv"
RESULTS = ROOT / "benchmarks" / "results"
COHESION = Path(sys.executable).parent / "cohesion"


def write_extract(raw: Path, rows: int) -> None:
    (raw / "geography").mkdir(parents=True)
    (raw / "gp_register").mkdir(parents=True)
    shutil.copy(FRAME, raw / "geography" / "postcode_directory.csv")
    con = duckdb.connect()
    con.execute(f"CREATE TABLE pc AS SELECT postcode, row_number() OVER () - 1 AS k FROM read_csv('{FRAME}')")
    n_pc = con.execute("SELECT count(*) FROM pc").fetchall()[0][0]
    con.execute(f"""
        COPY (
            SELECT DATE '2024-06-30' AS extract_date,
                   'P' || lpad(to_hex(i * 2654435761 % 1099511627776), 10, '0') AS patient_id,
                   'P910' || lpad(CAST(i % 60 AS VARCHAR), 2, '0') AS practice_code,
                   CASE WHEN i % 50 = 0 THEN lower(replace(pc.postcode, ' ', '')) ELSE pc.postcode END AS postcode,
                   CASE WHEN i % 2 = 0 THEN 'M' ELSE 'F' END AS sex,
                   CASE WHEN i % 1000 = 7 THEN '2030-01-01'  -- 0.1% impossible dates
                        ELSE CAST(DATE '1930-01-01' + CAST(i * 7919 % 34000 AS INTEGER) AS VARCHAR) END AS date_of_birth,
                   CAST(greatest(DATE '2024-06-01' - CAST(i % 3000 AS INTEGER),
                                 DATE '1930-01-01' + CAST(i * 7919 % 34000 AS INTEGER)) AS VARCHAR) AS registration_date,
                   CASE WHEN i % 40 = 0 THEN 'Y' ELSE 'N' END AS from_abroad,
                   substr('ABCDEFGHJKLMNPRSZ', CAST(i % 17 AS INTEGER) + 1, 1) AS ethnic_category
            FROM range({rows}) AS t(i) JOIN pc ON pc.k = i % {n_pc}
        ) TO '{raw / "gp_register" / "gp_register_2024-06-30.csv"}' (HEADER, DELIMITER ',')""")
    con.close()


def time_bare_scan(raw: Path) -> dict:
    """The floor, in a fresh process: read the extract, join the directory, count by LSOA x sex x band."""
    register = raw / "gp_register" / "gp_register_2024-06-30.csv"
    directory = raw / "geography" / "postcode_directory.csv"
    script = f"""
import duckdb, time, resource
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
started, cpu = time.perf_counter(), time.process_time()
con.execute(\"\"\"CREATE TABLE counts AS
    SELECT d.lsoa_code, r.sex,
           least(CAST(date_diff('year', TRY_CAST(r.date_of_birth AS DATE), r.extract_date) AS INTEGER) // 5, 18) AS band,
           count(*) AS patients
    FROM read_csv('{register.as_posix()}') r JOIN read_csv('{directory.as_posix()}') d
      ON replace(d.postcode, ' ', '') = replace(upper(r.postcode), ' ', '')
    GROUP BY d.lsoa_code, r.sex, band\"\"\")
print("RESULT", time.perf_counter() - started, time.process_time() - cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
    with LoadSampler() as load:
        stdout = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    out = stdout[stdout.rindex("RESULT"):].split()[1:]
    return {"seconds": round(float(out[0]), 2), "cpu_seconds": round(float(out[1]), 2),
            "peak_rss_gib": round(int(out[2]) / 2**20, 2), "load_average": load.summary()}


def time_validate(data: Path, config: Path, log_dir: Path) -> dict:
    """`cohesion validate` on the data folder (its processed/ removed first), timed by bench_national.run_stage."""
    shutil.rmtree(data / "processed", ignore_errors=True)
    run = run_stage("validate", data, log_dir, "--config", str(config))
    if run["exit_code"]:
        raise SystemExit(f"cohesion validate failed:\n{run['log_tail']}")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--memory-limit", default=None, help="override [engine] ingest_memory_limit (e.g. 6GB)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the temporary data folder goes")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="keep the data folder here (reused when it already holds raw/)")
    parser.add_argument("--results-name", default=None,
                        help="write benchmarks/results/NAME.{json,md} (default: ingest, or ingest_memory_<limit>)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="time the bare scan and the command alternately this many times; ratios of the medians")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        data = args.data_dir.resolve() if args.data_dir else Path(tmp) / "data"
        if not (data / "raw").is_dir():
            write_extract(data / "raw", args.rows)
        size_mb = (data / "raw" / "gp_register" / "gp_register_2024-06-30.csv").stat().st_size / 1e6
        config = ROOT / "config.toml"
        if args.memory_limit:
            text = re.sub(r'(?m)^ingest_memory_limit = "[^"]*"', f'ingest_memory_limit = "{args.memory_limit}"',
                          config.read_text())
            config = Path(tmp) / "config.toml"
            config.write_text(text)
        read_once(data / "raw")
        floors, runs = [], []
        for _ in range(max(args.repeat, 1)):
            floors.append(time_bare_scan(data / "raw"))
            runs.append(time_validate(data, config, Path(tmp)))
        report = json.loads((data / "processed" / "run_report.json").read_text())
    register = next(f for f in report["files"] if f["source"] == "gp_register")
    floor_s = statistics.median(f["seconds"] for f in floors)
    floor_cpu = statistics.median(f["cpu_seconds"] for f in floors)
    seconds = statistics.median(r["seconds"] for r in runs)
    cpu = statistics.median(r["cpu_seconds"] for r in runs)
    figures = {
        "rows": register["rows_read"],
        "file_mb": round(size_mb, 1),
        "rows_loaded": register["rows_loaded"],
        "rows_quarantined": register["rows_quarantined"],
        "quarantined_by_rule": register["quarantined_by_rule"],
        "repeats": len(runs),
        "bare_scan_seconds": floor_s,
        "bare_scan_cpu_seconds": floor_cpu,
        "bare_scan_peak_rss_gib": max(f["peak_rss_gib"] for f in floors),
        "ingest_validate_seconds": seconds,
        "ingest_validate_cpu_seconds": cpu,
        "ingest_validate_peak_rss_gib": max(r["peak_rss_gib"] for r in runs),
        "ratio_to_bare_scan": round(seconds / floor_s, 1),
        "cpu_ratio_to_bare_scan": round(cpu / floor_cpu, 1),
        "bare_scan_runs": [[f["seconds"], f["cpu_seconds"]] for f in floors],
        "ingest_validate_runs": [[r["seconds"], r["cpu_seconds"]] for r in runs],
        "ingest_memory_limit": args.memory_limit or re.search(r'(?m)^ingest_memory_limit = "([^"]*)"',
                                                              (ROOT / "config.toml").read_text()).group(1),
        "rows_per_second": round(register["rows_read"] / seconds),
        "stage_seconds": {name: run["seconds"] for name, run in report.get("stage_runs", {}).items()},
        "load_average_bare_scan": [f["load_average"] for f in floors],
        "load_average_validate": [r["load_average"] for r in runs],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, duckdb {duckdb.__version__}",
        "command": " ".join([".venv/bin/python", "benchmarks/bench_ingest.py"] + sys.argv[1:]),
        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = args.results_name or ("ingest" if not args.memory_limit else f"ingest_memory_{args.memory_limit.lower()}")
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    lines = ["# Ingest + validation benchmark", "", f"`{figures['command']}`: one {figures['rows']:,}-row GP register "
             f"extract, {figures['file_mb']} MB CSV; `cohesion validate` (ingest + validation) against DuckDB's bare "
             "scan of the same file (read, join the postcode directory, count by LSOA x sex x age band), each in its "
             "own process, alternately `repeats` times after one untimed read of the files; the figures are medians "
             "(every run in `*_runs`: wall, CPU s). CPU seconds are every thread's (steadier than wall time on the "
             "shared 2-core machine; the load average says how busy it was).", "",
             "| measure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in figures.items()]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
