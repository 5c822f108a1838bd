"""What `raw/` may hold, and which of its files a run reads.

The policy (ARCHITECTURE.md, "raw/ folder policy"):

- ``raw/<source>/`` folders, one per source in `schemas.contracts.SOURCES`; in each, the files
  ending ``.csv``, ``.parquet`` or ``.pq`` (any case) are read. A symbolic link to such a file is
  read like the file.
- Subfolders of a source folder (``archive/``, ``old/``) are not read, unless config.toml says
  ``[ingest] read_subfolders = true``; then their files are read like the others (and a patient
  in two files for the same extract date is caught as a duplicate across files).
- At the top of ``raw/``: README files and ``demo_manifest.json`` (the demo generator's mark of
  a synthetic district) are documentation and run metadata, not data.
- Everything else is not read, and listed in ``run_report.json`` (``not_read``) with the reason:
  other extensions (``.txt``, ``.json``, ``.xlsx``, ``.CSV.bak``), broken symbolic links, hidden
  files, files at the top of ``raw/``, folders that are not a source. Those that may be data a
  user expects to be read are warnings, repeated on the run's final line.
- A folder at the top of ``raw/`` that is not a source (``gp_registers/``) stops the run, naming
  the source it most resembles, because a whole source would otherwise be missing; with
  ``[ingest] unknown_folders = "skip"`` it is listed and warned about instead.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.ingest.reader import IngestError
from schemas.contracts import SOURCES

READ_SUFFIXES = (".csv", ".parquet", ".pq")
METADATA_FILES = ("demo_manifest.json",)  # written at the top of raw/ by the demo generator
DOCUMENTATION_SUFFIXES = (".md", ".rst")
SPREADSHEETS = (".xlsx", ".xls", ".xlsm", ".ods")


class RawFolderError(IngestError):
    """raw/ holds something the run must not go past (a misspelt source folder)."""


@dataclass
class NotRead:
    path: str  # relative to raw/
    reason: str
    warning: bool  # possibly data a user expects to be read: repeated on the run's final line

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class RawInventory:
    files: dict[str, list[Path]] = field(default_factory=dict)  # source -> files to read, in load order
    not_read: list[NotRead] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return [f"raw/{item.path}: not read ({item.reason})" for item in self.not_read if item.warning]


def take_inventory(raw_dir: Path, read_subfolders: bool = False, unknown_folders: str = "stop") -> RawInventory:
    """Sort everything under `raw_dir` into files to read (by source) and things not read, with reasons."""
    inventory = RawInventory(files={source: [] for source in SOURCES})
    if not raw_dir.is_dir():
        return inventory
    for entry in sorted(raw_dir.iterdir()):
        name = entry.name
        if entry.is_dir():
            if name in SOURCES:
                _take_source_folder(entry, raw_dir, name, read_subfolders, inventory)
            elif name.startswith("."):
                inventory.not_read.append(NotRead(f"{name}/", "hidden folder", False))
            else:
                close = difflib.get_close_matches(name.lower(), SOURCES, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]}/?" if close else f"sources are: {', '.join(SOURCES)}"
                reason = f"not a source folder; {hint}"
                if unknown_folders == "stop":
                    raise RawFolderError(
                        f"{entry}: not a source folder, so none of its files would be read ({hint}). Rename it, move it "
                        f"out of raw/, or set [ingest] unknown_folders = \"skip\" in config.toml to go on without it.")
                inventory.not_read.append(NotRead(f"{name}/", reason, True))
        elif name in METADATA_FILES or name.upper().startswith("README"):
            inventory.not_read.append(NotRead(name, "documentation / run metadata, not data", False))
        else:
            kind = _file_problem(entry)
            reason = kind or "a file at the top of raw/ belongs to no source; put it in raw/<source>/"
            inventory.not_read.append(NotRead(name, reason, not name.startswith(".")))
    return inventory


def _take_source_folder(folder: Path, raw_dir: Path, source: str, read_subfolders: bool, inventory: RawInventory) -> None:
    # a folder's own files first, then its subfolders: a copy in archive/ comes after the extract it copies
    for entry in sorted(folder.iterdir(), key=lambda e: (e.is_dir(), e.name)):
        relative = str(entry.relative_to(raw_dir))
        if entry.is_dir():
            if entry.name.startswith("."):
                inventory.not_read.append(NotRead(f"{relative}/", "hidden folder", False))
            elif read_subfolders:
                _take_source_folder(entry, raw_dir, source, read_subfolders, inventory)
            else:
                count = sum(1 for p in entry.rglob("*") if p.is_file())
                inventory.not_read.append(NotRead(
                    f"{relative}/", f"a subfolder ({count} file(s)); subfolders are not read unless config.toml "
                    f"sets [ingest] read_subfolders = true", True))
            continue
        problem = _file_problem(entry)
        if problem is None:
            inventory.files[source].append(entry)
        else:
            inventory.not_read.append(NotRead(relative, problem, not problem.startswith(("hidden", "documentation"))))


def _file_problem(path: Path) -> str | None:
    """Why a file in a source folder is not read, or None when it is read."""
    name = path.name
    if path.is_symlink() and not path.exists():
        return "a broken symbolic link (its target does not exist)"
    if name.startswith("."):
        return "hidden file"
    if not path.is_file():
        return "not a regular file"
    suffix = path.suffix.lower()
    if suffix in READ_SUFFIXES:
        return None
    if suffix in DOCUMENTATION_SUFFIXES or name.upper().startswith("README"):
        return "documentation, not data"
    if suffix in SPREADSHEETS:
        return f"a spreadsheet ({path.suffix}); save each sheet as CSV (UTF-8) to load it"
    shown = "".join(path.suffixes[-2:]) or "no extension"
    return f"not a CSV or Parquet file ({shown}); only .csv, .parquet and .pq files are read"
