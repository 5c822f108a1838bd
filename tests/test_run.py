"""A run: failed or killed runs leave the previous outputs intact; runs never interleave;
re-running gives the same result; unbuilt stages say so and write nothing."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from filelock import FileLock

from conftest import REGISTER_HEADER, first_postcodes, write
from pipeline.config import load_settings
from pipeline.ingest.reader import UnreadableFile
from pipeline.run import RunError, run_pipeline


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` with the hash of its content."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def table_digest(processed: Path, table: str) -> list:
    con = duckdb.connect(str(processed / "cohesion.duckdb"), read_only=True)
    try:
        return con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
    finally:
        con.close()


def test_rerun_is_idempotent(mini_data):
    settings = load_settings(data_dir=mini_data)
    raw_before = snapshot(mini_data / "raw")
    run_pipeline(settings, "ingest")
    first = table_digest(mini_data / "processed", "gp_register")
    quarantine = (mini_data / "processed" / "quarantine" / "gp_register.csv").read_bytes()
    run_pipeline(settings, "ingest")
    assert table_digest(mini_data / "processed", "gp_register") == first
    assert (mini_data / "processed" / "quarantine" / "gp_register.csv").read_bytes() == quarantine
    assert snapshot(mini_data / "raw") == raw_before  # raw data is never modified
    assert not list(mini_data.glob(".processed-*"))


def test_failed_run_leaves_previous_outputs_intact(mini_data):
    settings = load_settings(data_dir=mini_data)
    run_pipeline(settings, "ingest")
    before = snapshot(mini_data / "processed")
    (mini_data / "raw" / "gp_register" / "broken.csv").write_bytes(b"\x00\x00")
    with pytest.raises(UnreadableFile):
        run_pipeline(settings, "ingest")
    assert snapshot(mini_data / "processed") == before
    assert list((mini_data / "failed-runs").glob("run-*.log"))
    assert not list(mini_data.glob(".processed-staging-*"))


def test_second_run_on_the_same_folder_stops_with_a_clear_message(mini_data):
    settings = load_settings(data_dir=mini_data)
    held = FileLock(str(mini_data / ".pipeline.lock"))
    with held:
        with pytest.raises(RunError, match="Another pipeline run is using"):
            run_pipeline(settings, "ingest")
    run_pipeline(settings, "ingest")  # free again once the first run ends


def test_unbuilt_stage_fails_and_writes_nothing(mini_data, monkeypatch):
    import pipeline.run

    monkeypatch.setitem(pipeline.run.NOT_BUILT, "alerts", "early warnings are a later issue")
    with pytest.raises(RunError, match="not built yet"):
        run_pipeline(load_settings(data_dir=mini_data), "alerts")
    assert not (mini_data / "processed").exists()


def _big_register(path: Path, rows: int) -> None:
    pc = first_postcodes(1)[0]
    con = duckdb.connect()
    con.execute(f"""COPY (SELECT DATE '2024-07-01' AS extract_date, 'Pk' || lpad(CAST(i AS VARCHAR), 8, '0') AS patient_id,
                          'P91003' AS practice_code, '{pc}' AS postcode, 'F' AS sex, DATE '1980-01-01' AS date_of_birth,
                          DATE '2000-01-01' AS registration_date, 'N' AS from_abroad, 'A' AS ethnic_category
                   FROM range({rows}) t(i)) TO '{path}' (HEADER, DELIMITER ',')""")
    con.close()


@pytest.mark.slow
def test_killed_run_leaves_previous_outputs_intact_and_the_next_run_recovers(mini_data):
    settings = load_settings(data_dir=mini_data)
    run_pipeline(settings, "ingest")
    before = snapshot(mini_data / "processed")
    for k in range(6):  # enough work that the run is still going when it is killed
        _big_register(mini_data / "raw" / "gp_register" / f"big_{k}.csv", 400_000)
    env = dict(os.environ, COHESION_DATA_DIR=str(mini_data))
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "ingest"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        staging = list(mini_data.glob(".processed-staging-*"))
        if staging and list(staging[0].glob("cohesion.duckdb*")):
            break
        time.sleep(0.05)
    time.sleep(0.5)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(mini_data.glob(".processed-staging-*")), "killed mid-run: its staging folder is left behind"
    assert snapshot(mini_data / "processed") == before
    summary = run_pipeline(settings, "ingest")  # the lock died with the process; stale staging is cleared
    assert summary.status == "succeeded"
    assert not list(mini_data.glob(".processed-staging-*"))


def test_parse_memory_size_reads_duckdb_sizes():
    from pipeline.config import parse_memory_size
    # DuckDB's units: GB = 10^9 bytes, GiB = 2^30 (DuckDB documentation, "memory_limit" configuration option)
    assert parse_memory_size("6GB") == 6_000_000_000
    assert parse_memory_size("1.5 GiB") == 1_610_612_736
    assert parse_memory_size("800mb") == 800_000_000
    # DuckDB's own display of a setting (current_setting('memory_limit') after SET memory_limit = '4GB')
    assert parse_memory_size("3.7 GiB") == int(3.7 * 2**30) and parse_memory_size("512 bytes") == 512
    assert parse_memory_size("") is None and parse_memory_size("lots") is None


def test_auto_ingest_memory_follows_the_largest_raw_file_within_bounds(tmp_path):
    from pipeline.run import size_ingest_memory
    raw = tmp_path / "raw"
    (raw / "gp_register").mkdir(parents=True)
    small = raw / "gp_register" / "a.csv"
    small.write_text("header\n")
    assert size_ingest_memory(raw, "6GB") == "1000MB"  # a small district: the 1GB floor
    with open(raw / "gp_register" / "b.csv", "wb") as handle:  # sparse: 3 GB of size, no disk used
        handle.truncate(3_000_000_000)
    assert size_ingest_memory(raw, "6GB") == "3000MB"
    assert size_ingest_memory(raw, "4GB") == "2000MB"  # at most memory_limit less 2GB
    assert size_ingest_memory(raw, "2GB") == "1000MB"  # never under the floor
    assert size_ingest_memory(raw, "") == "3000MB"  # DuckDB's default limit: counted as 6GB
    assert size_ingest_memory(tmp_path / "missing", "6GB") == "1000MB"
