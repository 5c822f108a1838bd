"""What the notebooks in ``notebooks/`` start from: the run's settings, wherever Jupyter was opened.

An analyst opens a notebook from ``notebooks/``, so a relative data folder (``data`` in
config.toml) must be read against the project root, not the notebook's folder.
``COHESION_DATA_DIR`` (as ``make all DATA_DIR=...`` uses) points elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.config import DEFAULT_CONFIG, PROJECT_ROOT, Settings, load_settings


def analyst_settings(data_dir: str | Path | None = None) -> Settings:
    """The settings of config.toml with the data folder resolved against the project root."""
    chosen = data_dir or os.environ.get("COHESION_DATA_DIR")
    if not chosen:
        import tomllib

        chosen = tomllib.loads(DEFAULT_CONFIG.read_text(encoding="utf-8")).get("data_dir", "data")
    path = Path(chosen).expanduser()
    if not path.is_absolute():
        path = PROJECT_ROOT / path
    settings = load_settings(data_dir=path)
    if not (settings.processed_dir / "run_report.json").exists():
        raise FileNotFoundError(f"No finished run in {settings.processed_dir}: run `make all` at the project root "
                                f"first, or set COHESION_DATA_DIR to the data folder you ran it on.")
    return settings
