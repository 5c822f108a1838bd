"""A run of the pipeline: one data folder, one lock, one staging directory, one atomic swap.

Stages run in order (ingest -> validate -> estimates -> outputs) and each run rebuilds from
``raw/``, so re-running is idempotent. Everything is built in ``.processed-staging-<run id>/``
beside ``processed/``; only when every stage has succeeded is it swapped in. A failed or killed
run therefore leaves the previous ``processed/`` exactly as it was. A file lock on the data
folder stops two runs from interleaving.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import signal
import subprocess
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from filelock import FileLock, Timeout

from pipeline import __version__
from pipeline.config import PROJECT_ROOT, Settings

log = logging.getLogger("pipeline")

STAGES = ("ingest", "validate", "estimates", "outputs")
NOT_BUILT = {"indicators": "the PSA 21 indicators, local basket and alerts are a later issue"}
DATABASE = "cohesion.duckdb"


class RunError(Exception):
    """A run stopped; the message says why and what to do."""


class RunInterrupted(RunError):
    """The run was stopped by a signal (SIGTERM); its staging folder is removed and its log kept."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"the run was stopped by {signal.Signals(signum).name}")


@dataclass
class RunSummary:
    run_id: str
    status: str
    processed_dir: Path
    report: dict = field(default_factory=dict)


def stages_up_to(last: str) -> list[str]:
    if last in NOT_BUILT:
        raise RunError(f"The '{last}' stage is not built yet: {NOT_BUILT[last]}. Nothing was written.")
    if last not in STAGES:
        raise RunError(f"Unknown stage '{last}'; choose one of {', '.join(STAGES)}")
    return list(STAGES[: STAGES.index(last) + 1])


def code_version() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                                text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def run_pipeline(settings: Settings, last_stage: str = "outputs", progress_factory=None) -> RunSummary:
    """Run every stage up to `last_stage` on `settings.data_dir` and swap the result in."""
    stages = stages_up_to(last_stage)
    data_dir = settings.data_dir
    if not settings.raw_dir.is_dir():
        raise RunError(f"No raw data folder at {settings.raw_dir}. Put extracts in raw/<source>/ "
                       f"or run `make demo-data` to generate the demo district.")
    lock = FileLock(str(data_dir / ".pipeline.lock"))
    try:
        lock.acquire(timeout=settings.ingest.lock_timeout_seconds)
    except Timeout as exc:
        raise RunError(f"Another pipeline run is using {data_dir} (lock {lock.lock_file}). Wait for it to finish, "
                       f"or set [ingest] lock_timeout_seconds in config.toml to wait for it.") from exc
    try:
        recover_interrupted_swap(data_dir)
        with _stop_on_sigterm():
            return _run_locked(settings, stages, progress_factory)
    finally:
        lock.release()


class _stop_on_sigterm:
    """While a run holds the lock, SIGTERM raises `RunInterrupted`, so the failure path runs:
    the staging folder is removed and the run's log kept in failed-runs/ (SIGKILL cannot be caught:
    the next run keeps the killed run's log, see `recover_interrupted_swap`)."""

    def __enter__(self):
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._raise)
        return self

    @staticmethod
    def _raise(signum, frame):
        raise RunInterrupted(signum)

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        return False


def recover_interrupted_swap(data_dir: Path) -> None:
    """Tidy what a killed run left: restore a half-swapped processed/, keep the killed run's log in
    failed-runs/, drop stale staging folders."""
    processed = data_dir / "processed"
    olds = sorted(data_dir.glob(".processed-old-*"))
    if olds and not processed.exists():
        olds[-1].rename(processed)
        log.warning("restored %s from an interrupted swap", processed)
    for stale in sorted(data_dir.glob(".processed-staging-*")):
        for run_log in (stale / "logs").glob("run-*.log"):
            kept = _keep_failed_log(run_log, data_dir, note=f"(this run was killed; its log was kept by a later run "
                                                            f"on {dt.datetime.now().isoformat(timespec='seconds')})")
            if kept:
                log.warning("an earlier run was killed before it finished; its log is in %s", kept)
    for stale in [*data_dir.glob(".processed-staging-*"), *data_dir.glob(".processed-old-*")]:
        shutil.rmtree(stale, ignore_errors=True)


def _keep_failed_log(run_log: Path, data_dir: Path, note: str = "") -> Path | None:
    """Copy a failed run's log to failed-runs/; a full disk must not stop the clean-up, so errors are reported, not raised."""
    target = data_dir / "failed-runs" / run_log.name
    try:
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(run_log, target)
        if note:
            with open(target, "a", encoding="utf-8") as handle:
                handle.write(note + "\n")
        return target
    except OSError as exc:
        log.error("could not keep the failed run's log in %s: %s", target.parent, exc)
        return None


def _run_locked(settings: Settings, stages: list[str], progress_factory) -> RunSummary:
    data_dir = settings.data_dir
    run_id = dt.datetime.now().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    staging = data_dir / f".processed-staging-{run_id}"
    staging.mkdir(parents=True)
    try:
        handler = _log_to_file(staging / "logs" / f"run-{run_id}.log")
    except BaseException:  # e.g. a full disk: nothing to keep, but the staging folder must not stay
        shutil.rmtree(staging, ignore_errors=True)
        raise
    started = dt.datetime.now(dt.timezone.utc)
    report: dict = {"run_id": run_id, "started": started.isoformat(timespec="seconds"), "code_version": code_version(),
                    "data_dir": str(data_dir), "stages": stages, "status": "running"}
    try:
        log.info("run %s: stages %s on %s", run_id, " -> ".join(stages), data_dir)
        log.info("configuration: %s (written to config_used.json)", settings.as_json().replace("\n", " "))
        (staging / "config_used.json").write_text(settings.as_json(), encoding="utf-8")
        con = duckdb.connect(str(staging / DATABASE))
        try:
            _run_stages(con, settings, stages, staging, report, progress_factory)
        finally:
            con.close()
        report["status"] = "succeeded"
        report["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        _write_json(staging / "run_report.json", report)
        log.info("run %s succeeded", run_id)
        _detach(handler)
        swap_in(staging, data_dir / "processed", run_id)
        return RunSummary(run_id, "succeeded", data_dir / "processed", report)
    except BaseException:
        # every failure that leaves the process alive (an error, a full disk, SIGTERM, Ctrl-C) ends here:
        # the log is kept in failed-runs/ when it can be, and the staging folder always goes
        try:
            log.exception("run %s failed; %s is unchanged", run_id, data_dir / "processed")
            _detach(handler)
            _keep_failed_log(staging / "logs" / f"run-{run_id}.log", data_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        raise


def _run_stages(con, settings: Settings, stages: list[str], staging: Path, report: dict, progress_factory) -> None:
    if "ingest" in stages:
        from pipeline.ingest import ingest_raw
        from pipeline.outputs import write_quarantine

        progress = progress_factory("Ingest") if progress_factory else None
        try:
            result = ingest_raw(con, settings, progress)
        finally:
            if progress:
                progress.stop()
        report.update(result.report_fields())  # files, totals, files_skipped, not_read, warnings
        write_quarantine(result, staging / "quarantine")
        report["ingest_files"] = result.files  # kept in memory for validation; dropped before writing
    if "validate" in stages:
        from pipeline.validate import validate_batches

        results = validate_batches(con, settings, report.get("ingest_files", []), staging)
        report["expectations"] = {"evaluated": len(results), "failed": [r for r in results if not r["success"]]}
    report.pop("ingest_files", None)
    if "estimates" in stages:
        from pipeline.estimates import estimate_populations

        log.info("estimating small-area populations")
        estimate_populations(con, settings.estimates)
    if "outputs" in stages:
        from pipeline.outputs import publish_outputs

        report["outputs"] = publish_outputs(con, settings, staging / "outputs")


def swap_in(staging: Path, processed: Path, run_id: str) -> None:
    """Replace `processed` by `staging` with two renames (restored by the next run if cut between them)."""
    old = processed.parent / f".processed-old-{run_id}"
    if processed.exists():
        processed.rename(old)
    try:
        staging.rename(processed)
    except BaseException:
        if old.exists() and not processed.exists():
            old.rename(processed)  # put the previous outputs back at once
        raise
    shutil.rmtree(old, ignore_errors=True)


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")


def _log_to_file(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    if logging.getLogger().level > logging.INFO or logging.getLogger().level == logging.NOTSET:
        logging.getLogger().setLevel(logging.INFO)
    return handler


def _detach(handler: logging.Handler) -> None:
    logging.getLogger().removeHandler(handler)
    handler.close()
