"""Benchmark: ingest + validation of a 1-million-row GP register extract.

Writes a synthetic extract (postcodes drawn from the real Trafford directory, a few per cent of
them in lower case or without the space, 0.1% bad rows), then times `ingest_raw` and
`validate_batches` on it in a fresh DuckDB, and records rows per second and peak memory.

    .venv/bin/python benchmarks/bench_ingest.py [--rows 1000000]

Results: benchmarks/results/ingest.json and ingest.md (committed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from pipeline.config import load_settings
from pipeline.ingest import ingest_raw

ROOT = Path(__file__).resolve().parent.parent
FRAME = ROOT / "pipeline" / "demo" / "frame" / "trafford_postcodes.csv"
RESULTS = ROOT / "benchmarks" / "results"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        write_extract(data / "raw", args.rows)
        size_mb = (data / "raw" / "gp_register" / "gp_register_2024-06-30.csv").stat().st_size / 1e6
        settings = load_settings(data_dir=data)
        con = duckdb.connect(str(Path(tmp) / "bench.duckdb"))
        load = os.getloadavg()[0]  # a shared machine: wall time means little without it
        start, cpu = time.perf_counter(), time.process_time()
        result = ingest_raw(con, settings)
        ingest_seconds = time.perf_counter() - start
        ingest_cpu = time.process_time() - cpu  # CPU of every thread (DuckDB's too): steadier under load
        validate_seconds = validate_cpu = None
        try:
            from pipeline.validate import validate_batches
        except ImportError:
            validate_batches = None
        if validate_batches:
            start, cpu = time.perf_counter(), time.process_time()
            validate_batches(con, settings, result.files, Path(tmp) / "processed")
            validate_seconds = time.perf_counter() - start
            validate_cpu = time.process_time() - cpu
        con.close()
    register = next(f for f in result.files if f.source == "gp_register")
    total = ingest_seconds + (validate_seconds or 0)
    figures = {
        "rows": register.rows_read,
        "file_mb": round(size_mb, 1),
        "rows_loaded": register.rows_loaded,
        "rows_quarantined": register.rows_quarantined,
        "quarantined_by_rule": register.quarantined_by_rule,
        "ingest_seconds": round(ingest_seconds, 2),
        "validate_seconds": round(validate_seconds, 2) if validate_seconds is not None else None,
        "ingest_cpu_seconds": round(ingest_cpu, 2),
        "validate_cpu_seconds": round(validate_cpu, 2) if validate_cpu is not None else None,
        "rows_per_second": round(register.rows_read / total),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, duckdb {duckdb.__version__}",
        "load_average_at_start": round(load, 1),
        "measured": time.strftime("%Y-%m-%d %H:%M"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps(figures, indent=2))
    lines = ["# Ingest + validation benchmark", "", "`.venv/bin/python benchmarks/bench_ingest.py` "
             f"(one {figures['rows']:,}-row GP register extract, {figures['file_mb']} MB CSV)", "",
             "| measure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in figures.items()]
    (RESULTS / "ingest.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
