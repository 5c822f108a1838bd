"""Failure paths of a run (issue 7): a full disk, SIGTERM and SIGKILL never leave the staging folder
behind, the failed run's log is kept, `make clean` respects the lock."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from pipeline.clean import main as clean_main
from pipeline.config import PROJECT_ROOT, load_settings
from pipeline.ingest import UnreadableFile
from pipeline.run import run_pipeline
from test_run import snapshot

# a run whose ingest stage hangs, so that it can be signalled mid-run
HANGING_RUN = """
import sys, time
import pipeline.ingest
def hang(con, settings, progress=None):
    print("started", flush=True)
    time.sleep(120)
pipeline.ingest.ingest_raw = hang
sys.argv = ["cohesion", "ingest", "--data-dir", sys.argv[1]]
from pipeline.cli import app
app()
"""


def start_hanging_run(data: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HANGING_RUN, str(data)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=PROJECT_ROOT)
    assert proc.stdout.readline().strip() == "started", proc.stderr.read()
    assert list(data.glob(".processed-staging-*"))
    return proc


def test_full_disk_while_keeping_the_log_still_removes_staging(mini_data, monkeypatch):
    settings = load_settings(data_dir=mini_data)
    run_pipeline(settings, "ingest")
    before = snapshot(mini_data / "processed")
    (mini_data / "raw" / "gp_register" / "broken.csv").write_bytes(b"\x00\x00")

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("pipeline.run.shutil.copyfile", disk_full)
    with pytest.raises(UnreadableFile):  # the run's own error, not the disk's
        run_pipeline(settings, "ingest")
    assert not list(mini_data.glob(".processed-*"))
    assert snapshot(mini_data / "processed") == before


def test_full_disk_before_the_log_opens_removes_staging(mini_data, monkeypatch):
    def disk_full(path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("pipeline.run._log_to_file", disk_full)
    with pytest.raises(OSError):
        run_pipeline(load_settings(data_dir=mini_data), "ingest")
    assert not list(mini_data.glob(".processed-*"))


def test_sigterm_keeps_the_failed_run_log_and_removes_staging(mini_data):
    run_pipeline(load_settings(data_dir=mini_data), "ingest")
    before = snapshot(mini_data / "processed")
    proc = start_hanging_run(mini_data)
    time.sleep(0.5)  # inside the hang
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in " ".join(err.split())
    logs = list((mini_data / "failed-runs").glob("run-*.log"))
    assert len(logs) == 1 and "SIGTERM" in logs[0].read_text()
    assert not list(mini_data.glob(".processed-staging-*"))
    assert snapshot(mini_data / "processed") == before


def test_sigterm_inside_a_duckdb_query_is_reported_as_the_signal(mini_data, monkeypatch):
    """DuckDB turns a signal that arrives mid-query into its own 'interrupted' error: still a SIGTERM stop."""
    import duckdb

    from pipeline.run import RunInterrupted, _stop_on_sigterm

    def interrupted(con, settings, progress=None):
        _stop_on_sigterm.received = signal.SIGTERM  # what the handler records before DuckDB raises
        raise duckdb.InterruptException("INTERRUPT Error: Interrupted!")

    monkeypatch.setattr("pipeline.ingest.ingest_raw", interrupted)
    with pytest.raises(RunInterrupted, match="SIGTERM"):
        run_pipeline(load_settings(data_dir=mini_data), "ingest")
    assert not list(mini_data.glob(".processed-staging-*"))
    assert list((mini_data / "failed-runs").glob("run-*.log"))


def test_after_sigkill_the_next_run_keeps_the_killed_runs_log(mini_data):
    proc = start_hanging_run(mini_data)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed = list(mini_data.glob(".processed-staging-*"))[0].name.removeprefix(".processed-staging-")
    run_pipeline(load_settings(data_dir=mini_data), "ingest")
    kept = mini_data / "failed-runs" / f"run-{killed}.log"
    assert kept.exists() and "this run was killed" in kept.read_text()
    assert not list(mini_data.glob(".processed-staging-*"))


def test_make_clean_respects_the_lock(mini_data):
    run_pipeline(load_settings(data_dir=mini_data), "ingest")
    with FileLock(str(mini_data / ".pipeline.lock")):
        assert clean_main([str(mini_data)]) == 1
        assert (mini_data / "processed" / "run_report.json").exists()
        made = subprocess.run(["make", "-s", "clean", f"DATA_DIR={mini_data}", f"PYTHON={sys.executable}"],
                              cwd=PROJECT_ROOT, capture_output=True, text=True)
        assert made.returncode != 0 and "a pipeline run is using" in made.stderr
        assert (mini_data / "processed").exists()
    made = subprocess.run(["make", "-s", "clean", f"DATA_DIR={mini_data}", f"PYTHON={sys.executable}"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert not (mini_data / "processed").exists()
    assert (mini_data / "raw" / "gp_register").exists()  # raw data is never touched


def test_a_swap_that_fails_halfway_puts_the_previous_outputs_back(mini_data, monkeypatch):
    settings = load_settings(data_dir=mini_data)
    run_pipeline(settings, "ingest")
    before = snapshot(mini_data / "processed")
    rename = Path.rename

    def failing_rename(self, target):
        if self.name.startswith(".processed-staging-"):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", failing_rename)
    with pytest.raises(OSError):
        run_pipeline(settings, "ingest")
    monkeypatch.undo()
    assert snapshot(mini_data / "processed") == before
    assert not list(mini_data.glob(".processed-*"))
    assert list((mini_data / "failed-runs").glob("run-*.log"))
