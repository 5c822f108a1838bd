"""The stages of a run, declared once: what each reads, what it publishes, what it depends on.

A stage is a `Stage`: a name, the tables it reads (each published by an earlier stage), the
tables it publishes (the only ones later stages may read), the configuration sections and
code it depends on, and a function ``run(ctx) -> dict`` whose result is merged into
``run_report.json``. The runner (`pipeline.run`) walks `registered_stages()` in order and knows
nothing about any particular stage: adding one is declaring it here (or calling
`register_stage`, as the tests do with a toy stage).

    ingest -> validate -> estimates -> indicators -> outputs

Tables a stage creates but does not publish (``est_*``, ``ind_*`` working tables) are its own
audit trail; no other stage reads them.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import duckdb

from pipeline.config import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)

# The built-in stages, in order: each module defines STAGE.
BUILT_IN = (
    "pipeline.ingest.stage",
    "pipeline.validate.stage",
    "pipeline.estimates.stage",
    "pipeline.indicators.psa21.stage",
    # indicator stages (target "indicators") go here
    "pipeline.indicators.basket.stage",
    "pipeline.outputs.stage",
)

# Code every stage depends on (a change here re-runs everything).
SHARED_CODE = ("pipeline/config.py", "pipeline/sql.py", "pipeline/db.py", "pipeline/stages.py", "schemas")


@dataclass
class StageContext:
    """What a stage gets: the run's database, settings, output folder and report so far."""

    con: duckdb.DuckDBPyConnection
    settings: Settings
    out_dir: Path  # the run's processed/ folder (a staging folder until the run succeeds)
    report: dict  # run_report.json as built so far (read it; return what you add)
    progress_factory: Callable | None = None
    memory: dict = field(default_factory=dict)  # passed between stages of one run, never written


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[StageContext], dict | None]
    reads: tuple[str, ...] = ()  # tables published by earlier stages
    publishes: tuple[str, ...] = ()  # tables later stages may read
    config: tuple[str, ...] = ()  # settings sections the stage depends on
    code: tuple[str, ...] = ()  # files or folders (relative to the project root) whose content it depends on
    reads_raw: bool = False  # the stage reads raw/ (its fingerprint includes every raw file)
    streams_records: bool = False  # record-level rows stream through it: runs under [engine] ingest_memory_limit
    holds_arrays: bool = False  # Python holds per-cell arrays beside DuckDB: runs under [engine] arrays_memory_limit
    target: str = ""  # the make/CLI target that ends with it ("" = its own name)
    # modules the stage imports when it runs that are slow to import (great-expectations, about 3 CPU-s): an
    # earlier stage of the same run imports them in the background while DuckDB works (`warm_up_stages`)
    warm_up: tuple[str, ...] = ()
    description: str = ""

    @property
    def target_name(self) -> str:
        return self.target or self.name


_REGISTRY: list[Stage] = []
_LOADED = False


def registered_stages() -> list[Stage]:
    """Every stage, in run order (the built-in stages are declared on first use)."""
    _load_built_ins()
    return list(_REGISTRY)


def register_stage(stage: Stage, after: str | None = None) -> Stage:
    """Add `stage` (at the end, or right after the stage named `after`).

    Refuses a stage that reuses a name or reads a table no earlier stage publishes.
    """
    _load_built_ins()
    return _add(stage, after)


def unregister_stage(name: str) -> None:
    """Remove a stage (tests that register toy stages tidy up with this)."""
    _REGISTRY[:] = [s for s in _REGISTRY if s.name != name]


def _load_built_ins() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        for module in BUILT_IN:
            _add(importlib.import_module(module).STAGE, None)


def _add(stage: Stage, after: str | None) -> Stage:
    if any(s.name == stage.name for s in _REGISTRY):
        raise ValueError(f"a stage named '{stage.name}' is already registered")
    names = [s.name for s in _REGISTRY]
    if after is not None and after not in names:
        raise ValueError(f"cannot register '{stage.name}' after '{after}': no such stage ({', '.join(names)})")
    position = len(names) if after is None else names.index(after) + 1
    published = {t for s in _REGISTRY[:position] for t in s.publishes}
    missing = [t for t in stage.reads if t not in published]
    if missing:
        raise ValueError(f"stage '{stage.name}' reads {', '.join(missing)}, which no earlier stage publishes; "
                         f"declare them in that stage's `publishes` or register '{stage.name}' later")
    _REGISTRY.insert(position, stage)
    return stage


def targets() -> list[str]:
    """The names a run can stop after: every stage's target, in order."""
    names: list[str] = []
    for stage in registered_stages():
        if stage.target_name not in names:
            names.append(stage.target_name)
    return names


def stages_up_to(target: str) -> list[Stage]:
    """The stages to run for `target`: every stage up to the last one belonging to it."""
    stages = registered_stages()
    ends = [i for i, s in enumerate(stages) if s.target_name == target or s.name == target]
    if not ends:
        raise KeyError(f"unknown stage '{target}'; choose one of {', '.join(targets())}")
    return stages[: ends[-1] + 1]


def fingerprint_stages(stages: list[Stage], settings: Settings, raw_hashes: dict[str, str]) -> dict[str, str]:
    """A content fingerprint per stage: its code, its settings, its raw inputs and everything upstream.

    Two runs whose fingerprints agree up to a stage built identical tables up to it, so a later run
    may reuse them (`pipeline.run`).
    """
    shared = _hash_paths(SHARED_CODE)
    upstream = ""
    prints = {}
    settings_json = json.loads(settings.as_json())
    for stage in stages:
        digest = hashlib.sha256()
        digest.update(f"{stage.name}|{upstream}|{shared}|{_hash_paths(stage.code)}".encode())
        digest.update(json.dumps({k: settings_json.get(k) for k in stage.config}, sort_keys=True).encode())
        if stage.reads_raw:
            digest.update(json.dumps(raw_hashes, sort_keys=True).encode())
        upstream = prints[stage.name] = digest.hexdigest()[:16]
    return prints


def _hash_paths(paths: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for rel in paths:
        root = PROJECT_ROOT / rel
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in {".py", ".sql", ".json", ".toml"}
                       and "__pycache__" not in p.parts) if root.is_dir() else [root]
        for path in files:
            if path.exists():
                digest.update(str(path.relative_to(PROJECT_ROOT)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


_WARM_UPS: list[threading.Thread] = []


def warm_up_stages(run_stages: list[str], after: str) -> None:
    """Import the slow modules (`Stage.warm_up`) of the stages that follow `after` in `run_stages` (a run's
    stage names) in a background thread.

    Called by a long stage whose time is DuckDB's (ingest): DuckDB releases Python's lock while a statement
    runs, so the import uses time a single-threaded step (reading a file's lines, Python between statements)
    leaves on the other core, instead of adding seconds of one core to the run's wall time when the later
    stage starts. A stage that warms up calls `wait_for_warm_up` before importing. An import that fails here
    is only logged: the stage imports the module again itself and reports the error there."""
    later = set(run_stages[run_stages.index(after) + 1:]) if after in run_stages else set()
    modules = [m for stage in registered_stages() if stage.name in later for m in stage.warm_up]
    if not modules or any(thread.is_alive() for thread in _WARM_UPS):
        return

    def import_all() -> None:
        for module in modules:
            try:
                importlib.import_module(module)
            except Exception as exc:  # noqa: BLE001 - the stage imports it again and reports the error
                log.debug("warming up %s failed: %s", module, exc)

    thread = threading.Thread(target=import_all, name="stage-warm-up", daemon=True)
    _WARM_UPS.append(thread)
    thread.start()


def wait_for_warm_up() -> None:
    """Wait until a background warm-up (`warm_up_stages`) has finished."""
    while _WARM_UPS:
        _WARM_UPS.pop().join()
