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
import subprocess
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
        return _run_locked(settings, stages, progress_factory)
    finally:
        lock.release()


def recover_interrupted_swap(data_dir: Path) -> None:
    """Tidy what a killed run left: restore a half-swapped processed/, drop stale staging folders."""
    processed = data_dir / "processed"
    olds = sorted(data_dir.glob(".processed-old-*"))
    if olds and not processed.exists():
        olds[-1].rename(processed)
        log.warning("restored %s from an interrupted swap", processed)
    for stale in [*data_dir.glob(".processed-staging-*"), *data_dir.glob(".processed-old-*")]:
        shutil.rmtree(stale, ignore_errors=True)


def _run_locked(settings: Settings, stages: list[str], progress_factory) -> RunSummary:
    data_dir = settings.data_dir
    run_id = dt.datetime.now().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    staging = data_dir / f".processed-staging-{run_id}"
    staging.mkdir(parents=True)
    handler = _log_to_file(staging / "logs" / f"run-{run_id}.log")
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
        log.exception("run %s failed; %s is unchanged", run_id, data_dir / "processed")
        _detach(handler)
        failed_log = data_dir / "failed-runs" / f"run-{run_id}.log"
        failed_log.parent.mkdir(exist_ok=True)
        shutil.copy(staging / "logs" / f"run-{run_id}.log", failed_log)
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
        report["files"] = [f.as_dict() for f in result.files]
        report["totals"] = {key: sum(f.as_dict()[key] for f in result.files)
                            for key in ("rows_read", "rows_loaded", "rows_quarantined")}
        report["files_skipped"] = [f.file for f in result.files if f.skipped]
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
        # the mode (register_movements / register_snapshots / counts_only), and whether its margins were checked
        report["estimates"] = estimate_populations(con, settings.estimates)
    if "outputs" in stages:
        from pipeline.outputs import publish_outputs

        report["outputs"] = publish_outputs(con, settings, staging / "outputs")


def swap_in(staging: Path, processed: Path, run_id: str) -> None:
    """Replace `processed` by `staging` with two renames (restored by the next run if cut between them)."""
    old = processed.parent / f".processed-old-{run_id}"
    if processed.exists():
        processed.rename(old)
    staging.rename(processed)
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
