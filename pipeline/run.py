"""A run of the pipeline: one data folder, one lock, one staging directory, one atomic swap.

Stages are declared in `pipeline.stages` and run in their registered order; the runner knows
none of them by name. A run rebuilds every stage whose code, settings or inputs changed since
the last good run and reuses the database of the unchanged stages before the requested one,
so re-running is idempotent and re-running one late stage is cheap. Everything is built in ``.processed-staging-<run id>/``
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
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from filelock import FileLock, Timeout

from pipeline import __version__
from pipeline.checks import check_published_tables
from pipeline.config import GB, PROJECT_ROOT, Settings, parse_memory_size
from pipeline.stages import Stage, StageContext, fingerprint_stages, stages_up_to, targets

log = logging.getLogger("pipeline")

DATABASE = "cohesion.duckdb"
DEMO_MANIFEST = "demo_manifest.json"  # written at the root of raw/ by the demo generator
# what a reused stage leaves in processed/ besides the database (the rest is rebuilt every run)
RAW_HASHES = "raw_hashes.json"  # the raw files' sha256 with their stat, so the next run need not hash them again
NOT_CARRIED_OVER = {"logs", "outputs", "run_report.json", "config_used.json", RAW_HASHES}
NOT_BUILT: dict[str, str] = {}  # targets a later issue will build: name -> what it will be


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


def stages_for(target: str) -> list[Stage]:
    try:
        return stages_up_to(target)
    except KeyError as exc:
        if target in NOT_BUILT:
            raise RunError(f"The '{target}' stage is not built yet: {NOT_BUILT[target]}. Nothing was written.") from exc
        raise RunError(f"Unknown stage '{target}'; choose one of {', '.join(targets())}") from exc


def code_version() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                                text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def configure_engine(con: duckdb.DuckDBPyConnection, settings: Settings, staging: Path) -> Path:
    """Bound DuckDB's memory and let it spill to disk ([engine] in config.toml): national extracts
    then run on a 24 GiB machine, tables larger than memory going to the spill directory."""
    engine = settings.engine
    spill = (Path(engine.temp_directory) if engine.temp_directory else staging) / ".spill"
    spill.mkdir(parents=True, exist_ok=True)
    con.execute(f"SET temp_directory = '{spill.as_posix()}'")
    if engine.memory_limit:
        con.execute(f"SET memory_limit = '{engine.memory_limit}'")
    if engine.threads:
        con.execute(f"SET threads = {int(engine.threads)}")
    return spill


def run_pipeline(settings: Settings, last_stage: str = "outputs", progress_factory=None,
                 reuse: bool = True) -> RunSummary:
    """Run every stage up to `last_stage` on `settings.data_dir` and swap the result in.

    With `reuse`, the stages before `last_stage`'s own are taken from the last good run when their
    fingerprints (code, settings, raw files, upstream) are unchanged.
    """
    stages = stages_for(last_stage)
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
            return _run_locked(settings, stages, last_stage, progress_factory, reuse)
    finally:
        lock.release()


class _stop_on_sigterm:
    """While a run holds the lock, SIGTERM raises `RunInterrupted`, so the failure path runs:
    the staging folder is removed and the run's log kept in failed-runs/ (SIGKILL cannot be caught:
    the next run keeps the killed run's log, see `recover_interrupted_swap`)."""

    received: int | None = None  # the signal, once received (DuckDB turns it into its own "interrupted" error)

    def __enter__(self):
        self.previous = None
        _stop_on_sigterm.received = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._raise)
        return self

    @staticmethod
    def _raise(signum, frame):
        _stop_on_sigterm.received = signum
        raise RunInterrupted(signum)

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        _stop_on_sigterm.received = None
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


def _expected(exc: BaseException) -> bool:
    """Stops that explain themselves (bad input, a signal): logged as one line, without a traceback."""
    from pipeline.ingest.reader import IngestError

    return isinstance(exc, (RunError, IngestError))


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


def _run_locked(settings: Settings, stages: list[Stage], target: str, progress_factory, reuse: bool) -> RunSummary:
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
                    "data_dir": str(data_dir), "stages": [s.name for s in stages], "status": "running",
                    "synthetic": read_demo_manifest(settings.raw_dir)}
    try:
        log.info("run %s: stages %s on %s", run_id, " -> ".join(s.name for s in stages), data_dir)
        log.info("configuration: %s (written to config_used.json)", settings.as_json().replace("\n", " "))
        (staging / "config_used.json").write_text(settings.as_json(), encoding="utf-8")
        prints = fingerprint_stages(stages, settings, hash_raw_files(settings.raw_dir, data_dir / "processed", staging))
        reused = reuse_previous(data_dir / "processed", staging, stages, prints, target, report) if reuse else []
        con = duckdb.connect(str(staging / DATABASE))
        spill = configure_engine(con, settings, staging)
        try:
            if reused:
                drop_tables_not_from(con, reused, report)
            ctx = StageContext(con, settings, staging, report, progress_factory)
            for stage in stages[len(reused):]:
                run_stage(stage, ctx, prints[stage.name])
        finally:
            con.close()
            shutil.rmtree(spill, ignore_errors=True)
        report["status"] = "succeeded"
        report["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        _write_json(staging / "run_report.json", report)
        log.info("run %s succeeded", run_id)
        _detach(handler)
        swap_in(staging, data_dir / "processed", run_id)
        return RunSummary(run_id, "succeeded", data_dir / "processed", report)
    except BaseException as exc:
        # every failure that leaves the process alive (an error, a full disk, SIGTERM, Ctrl-C) ends here:
        # the log is kept in failed-runs/ when it can be, and the staging folder always goes
        signalled = _stop_on_sigterm.received
        converted = None
        if signalled and not isinstance(exc, RunInterrupted):  # a query DuckDB interrupted on the signal
            converted = RunInterrupted(signalled)
        try:
            if converted or _expected(exc):  # a stop with a message for the user: no traceback on the console
                log.error("run %s stopped: %s; %s is unchanged", run_id, converted or exc, data_dir / "processed")
            else:
                log.exception("run %s failed; %s is unchanged", run_id, data_dir / "processed")
            _detach(handler)
            _keep_failed_log(staging / "logs" / f"run-{run_id}.log", data_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if converted:
            raise converted from exc
        raise


def stage_memory_limit(stage: Stage, settings: Settings) -> str:
    """The DuckDB memory limit a stage runs under ("" = DuckDB's default)."""
    engine = settings.engine
    if stage.streams_records and engine.ingest_memory_limit == "auto":
        return size_ingest_memory(settings.raw_dir, engine.memory_limit)
    if stage.streams_records and engine.ingest_memory_limit:
        return engine.ingest_memory_limit
    if stage.holds_arrays and engine.arrays_memory_limit:
        return engine.arrays_memory_limit
    return engine.memory_limit


def size_ingest_memory(raw_dir: Path, memory_limit: str) -> str:
    """`ingest_memory_limit = "auto"`: the size of the largest raw file, at least 1GB, at most memory_limit less 2GB
    (memory_limit "" or a form not read here counts as 6GB).

    Ingest holds one file's lines and its typed rows while it checks them; what does not fit is spilled to disk and
    read back. A limit near the largest file's size keeps that in memory, and the 2GB left under memory_limit are for
    Python and what DuckDB holds beyond its limit (national scale: a 4 GB extract under 4GB, peak 5.03 GiB)."""
    largest = max((p.stat().st_size for p in raw_dir.rglob("*") if p.is_file()), default=0) if raw_dir.is_dir() else 0
    ceiling = (parse_memory_size(memory_limit) or 6 * GB) - 2 * GB
    return f"{max(GB, min(largest, ceiling)) // 10**6}MB"


def run_stage(stage: Stage, ctx: StageContext, fingerprint: str) -> None:
    """Run one stage, record what it made, and check every table it publishes."""
    before = set(list_tables(ctx.con))
    started = time.perf_counter()
    log.info("stage %s: %s", stage.name, stage.description or "running")
    limit = stage_memory_limit(stage, ctx.settings)
    ctx.con.execute(f"SET memory_limit = '{limit}'" if limit else "RESET memory_limit")
    added = stage.run(ctx) or {}
    ctx.report.update(added)
    made = sorted(set(list_tables(ctx.con)) - before)
    missing = [t for t in stage.publishes if t not in set(list_tables(ctx.con))]
    if missing:
        raise RunError(f"stage '{stage.name}' declares it publishes {', '.join(missing)} but did not create them")
    check_published_tables(ctx.con, stage.publishes)
    seconds = round(time.perf_counter() - started, 2)
    ctx.report.setdefault("stage_runs", {})[stage.name] = {
        "fingerprint": fingerprint, "seconds": seconds, "reused": False, "tables": made, "report_keys": sorted(added)}
    log.info("stage %s done in %.1f s (%d tables)", stage.name, seconds, len(made))


def reuse_previous(processed: Path, staging: Path, stages: list[Stage], prints: dict[str, str], target: str,
                   report: dict) -> list[Stage]:
    """Carry over the last good run's work for the unchanged stages before `target`'s own; return them."""
    previous = _read_json(processed / "run_report.json")
    if not previous or previous.get("status") != "succeeded" or not (processed / DATABASE).exists():
        return []
    runs = previous.get("stage_runs", {})
    reused: list[Stage] = []
    for stage in stages:
        if stage.target_name == target or stage.name == target:
            break
        if runs.get(stage.name, {}).get("fingerprint") != prints[stage.name]:
            changed = "its first run" if stage.name not in runs else "its code, settings or inputs changed"
            log.info("stage %s runs again (%s)", stage.name, changed)
            break
        reused.append(stage)
    if not reused:
        return []
    for item in processed.iterdir():
        if item.name in NOT_CARRIED_OVER:
            continue
        (shutil.copytree if item.is_dir() else shutil.copy2)(item, staging / item.name)
    for stage in reused:
        entry = dict(runs[stage.name], reused=previous["run_id"])
        report.setdefault("stage_runs", {})[stage.name] = entry
        report.update({key: previous[key] for key in entry.get("report_keys", []) if key in previous})
    log.info("reusing %s from run %s (unchanged raw files, settings and code)",
             ", ".join(s.name for s in reused), previous["run_id"])
    return reused


def drop_tables_not_from(con: duckdb.DuckDBPyConnection, reused: list[Stage], report: dict) -> None:
    """Drop every table in a carried-over database that the reused stages did not make."""
    keep = {t for s in reused for t in report["stage_runs"][s.name]["tables"]}
    for table in list_tables(con):
        if table not in keep:
            con.execute(f'DROP TABLE "{table}"')


def list_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' AND table_type = 'BASE TABLE'"
    ).fetchall()]


def hash_raw_files(raw_dir: Path, processed: Path, staging: Path) -> dict[str, str]:
    """sha256 of every file under raw/ (what the ingest stage's fingerprint depends on).

    A file the last run hashed is not read again while its inode, size and times are unchanged
    (`processed/raw_hashes.json`; `pipeline.ingest.reader.remembered_hashes` says when that is safe). Files are
    hashed two at a time (hashlib releases the GIL while it digests): nothing else runs yet, and a national raw/
    folder is 9 GB."""
    from pipeline.ingest.reader import file_hash, remember_hashes, remembered_hashes  # ingest reuses these hashes

    remember_hashes((_read_json(processed / RAW_HASHES) or {}).get("files", []))
    paths = sorted(p for p in raw_dir.rglob("*") if p.is_file())
    with ThreadPoolExecutor(max_workers=2) as pool:
        digests = list(pool.map(file_hash, paths))
    hashes = {str(path.relative_to(raw_dir)): digest for path, digest in zip(paths, digests)}
    _write_json(staging / RAW_HASHES, {"files": remembered_hashes(paths)})
    return hashes


def read_demo_manifest(raw_dir: Path) -> dict | None:
    """The demo generator's manifest when raw/ holds the synthetic district (None for real extracts)."""
    return _read_json(raw_dir / DEMO_MANIFEST)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


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
