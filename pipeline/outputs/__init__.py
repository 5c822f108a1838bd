"""Outputs: the one gateway between the pipeline's tables and what partners receive.

Everything written under ``processed/outputs/`` goes through `publish_frame`, where disclosure
control is applied. Only what partners receive passes here: the quarantine (raw fields) is
written by ingest. Whether outputs are synthetic comes from the run's own metadata
(``run_report.json``'s ``synthetic``: the demo generator's manifest).
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.config import Settings
from pipeline.db import table_exists
from pipeline.outputs.disclosure import protect_frame

log = logging.getLogger(__name__)

SYNTHETIC_NOTE = "SYNTHETIC DEMO DATA: no real person"

# partner tables: the table, the CSV it becomes, and its columns that are counts of people
PARTNER_TABLES = {
    "population_estimates": ("population_estimates.csv", ["gp_list"]),
}


def is_synthetic(report: dict) -> bool:
    """The run read the demo generator's synthetic district (its manifest is in raw/)."""
    return bool((report.get("synthetic") or {}).get("synthetic"))


def publish_frame(frame: pd.DataFrame, path: Path, count_columns: list[str], settings: Settings,
                  synthetic: bool) -> Path:
    """Write one partner CSV, after disclosure control."""
    safe = suppress_small_counts(frame, count_columns, settings.outputs.min_cell_count)
    if synthetic:
        safe["note"] = safe["note"].where(safe["note"] == "", safe["note"] + "; ") + SYNTHETIC_NOTE
    path.parent.mkdir(parents=True, exist_ok=True)
    safe.to_csv(path, index=False, float_format="%.6g")
    return path


AREA_ORDER = {"la": 0, "ward": 1, "msoa": 2, "lsoa": 3}


def sort_for_partners(frame: pd.DataFrame) -> pd.DataFrame:
    """Largest areas first, then code, date, sex (All last) and age bands in age order."""
    keys = pd.DataFrame(index=frame.index)
    if "area_type" in frame:
        keys["area"] = frame["area_type"].map(AREA_ORDER)
    for column in ("area_code", "reference_date", "period_end", "indicator_id"):
        if column in frame:
            keys[column] = frame[column]
    if "sex" in frame:
        keys["sex"] = frame["sex"].map({"F": 0, "M": 1, "All": 2})
    if "age_band" in frame:
        keys["age"] = pd.to_numeric(frame["age_band"].str.extract(r"^(\d+)")[0], errors="coerce").fillna(999)
    order = keys.sort_values(list(keys.columns), kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def publish_outputs(con: duckdb.DuckDBPyConnection, settings: Settings, folder: Path, report: dict) -> list[str]:
    """Publish every partner table the run has built; return the files written."""
    written = []
    synthetic = is_synthetic(report)
    for table, (filename, counts) in PARTNER_TABLES.items():
        if not table_exists(con, table):
            continue
        frame = sort_for_partners(con.execute(f"SELECT * FROM {table}").df())
        publish_frame(frame, folder / filename, counts, settings, synthetic)
        written.append(filename)
        log.info("published %s (%d rows)", filename, len(frame))
    if synthetic:
        (folder / "README.md").write_text(f"# {SYNTHETIC_NOTE}\n\nThese outputs were made from the bundled demo "
                                          "district: synthetic people laid over Trafford's real geography.\n")
    return written
