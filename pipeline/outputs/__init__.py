"""Outputs: the one gateway between the pipeline's tables and what partners receive.

Every table partners receive is taken through `pipeline.outputs.disclosure.protect_frame` once
(`protect_tables`), and every writer - CSV (`publish_frame`), Excel (`excel.py`), charts
(`charts.py`, `maps.py`) and the report (`report.py`) - takes only those protected frames and
refuses any other (`require_protected`). Only this stage writes under ``processed/outputs/``.

The pack (spec/outputs.md):
    population_estimates.csv, indicators.csv (every ``*_indicators`` table stacked), alerts.csv,
    data_dictionary.csv, cohesion_tables.xlsx, metadata.json, README.md, charts/*.png, report.html

Indicator tables are optional inputs (the stage declares only ``population_estimates``): with none,
indicators.csv and alerts.csv are written with their headers only. Whether outputs are synthetic
comes from the run's own metadata (``run_report.json``'s ``synthetic``: the demo generator's
manifest), never from the data folder.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.config import Settings
from pipeline.db import table_exists
from pipeline.outputs.disclosure import Geography, protect_frame, require_protected
from schemas.published import ALERT_COLUMNS, INDICATOR_COLUMNS, POPULATION_ESTIMATE_COLUMNS
from schemas.vocabulary import AREA_TYPES

log = logging.getLogger(__name__)

SYNTHETIC_NOTE = "SYNTHETIC DEMO DATA: no real person"
LIMITS_998 = ("lower_99_8", "upper_99_8")


def is_synthetic(report: dict) -> bool:
    """The run read the demo generator's synthetic district (its manifest is in raw/)."""
    return bool((report.get("synthetic") or {}).get("synthetic"))


@dataclass
class PartnerTables:
    """The protected frames every writer uses, plus the public geography charts and maps need."""

    population: pd.DataFrame
    indicators: pd.DataFrame
    alerts: pd.DataFrame
    synthetic: bool
    run: dict
    area_names: pd.DataFrame = field(default_factory=pd.DataFrame)
    postcodes: pd.DataFrame = field(default_factory=pd.DataFrame)  # postcode, lsoa_code, ward_code, lat, lon
    lookup: pd.DataFrame = field(default_factory=pd.DataFrame)


def publish_frame(frame: pd.DataFrame, path: Path, synthetic: bool) -> Path:
    """Write one partner CSV: a frame that passed disclosure control, the synthetic flag in `note`."""
    require_protected(frame, f"the CSV writer ({path.name})")
    out = frame.copy()
    if synthetic:
        if "note" in out.columns:
            out["note"] = out["note"].fillna("").astype(str)
            out["note"] = out["note"].where(out["note"] == "", out["note"] + "; ") + SYNTHETIC_NOTE
        elif "message" in out.columns and len(out):
            out["message"] = out["message"].astype(str) + f" [{SYNTHETIC_NOTE}]"
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].dt.strftime("%Y-%m-%d")
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False, float_format="%.10g", lineterminator="\n")
    return path


AREA_ORDER = {**{area_type: i for i, area_type in enumerate(AREA_TYPES)}, "school": len(AREA_TYPES)}


def sort_for_partners(frame: pd.DataFrame) -> pd.DataFrame:
    """Largest areas first, then code, date, sex (All last) and age bands in age order."""
    if frame.empty:
        return frame.reset_index(drop=True)
    keys = pd.DataFrame(index=frame.index)
    if "indicator_id" in frame:
        keys["indicator_id"] = frame["indicator_id"]
    if "area_type" in frame:
        keys["area"] = frame["area_type"].map(AREA_ORDER).fillna(9)
    for column in ("area_code", "reference_date", "period_end", "breakdown"):
        if column in frame:
            keys[column] = frame[column].astype(str)
    if "sex" in frame:
        keys["sex"] = frame["sex"].map({"F": 0, "M": 1, "All": 2})
    if "age_band" in frame:
        keys["age"] = pd.to_numeric(frame["age_band"].astype(str).str.extract(r"^(\d+)")[0], errors="coerce").fillna(-1)
    order = keys.sort_values(list(keys.columns), kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def published_table_names() -> set[str]:
    """Tables some stage publishes (or that have a published contract): never a stage's working tables."""
    from pipeline.stages import registered_stages
    from schemas.published import PUBLISHED_TABLES

    return {t for stage in registered_stages() for t in stage.publishes} | set(PUBLISHED_TABLES)


def indicator_table_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The published indicator tables this run built: ``indicators`` and every ``*_indicators``."""
    existing = [r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY table_name").fetchall()]
    published = published_table_names()
    return [n for n in existing if (n == "indicators" or n.endswith("_indicators")) and n in published]


def read_indicators(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every published indicator table, stacked: the contract's columns first, then any further
    columns (the 99.8% limits first) in the order first seen."""
    return stack_indicators([con.execute(f'SELECT * FROM "{n}"').df() for n in indicator_table_names(con)])


def stack_indicators(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=list(INDICATOR_COLUMNS))
    extra = []
    for f in frames:
        extra += [c for c in f.columns if c not in INDICATOR_COLUMNS and c not in extra]
    # the contract's columns first (spec/outputs.md: more may follow them), then the 99.8% limits
    ordered = list(INDICATOR_COLUMNS) + [c for c in LIMITS_998 if c in extra]
    ordered += [c for c in extra if c not in LIMITS_998]
    stacked = pd.concat([f.reindex(columns=ordered) for f in frames], ignore_index=True)
    for column in ("period_start", "period_end"):
        stacked[column] = pd.to_datetime(stacked[column], errors="coerce")
    return stacked


def read_partner_tables(con: duckdb.DuckDBPyConnection, settings: Settings, report: dict) -> PartnerTables:
    """Read what the run built and take each table through disclosure control."""
    rules = settings.outputs
    lookup = _optional(con, "lsoa_lookup")
    geography = Geography.from_lookup(lookup)
    population = con.execute("SELECT * FROM population_estimates").df() if table_exists(con, "population_estimates") \
        else pd.DataFrame(columns=list(POPULATION_ESTIMATE_COLUMNS))
    indicators = read_indicators(con)
    alerts = _optional(con, "alerts")
    alerts = alerts.reindex(columns=[*ALERT_COLUMNS, *[c for c in alerts.columns if c not in ALERT_COLUMNS]])
    protected_indicators = protect_frame(sort_for_partners(indicators), "indicators", rules, geography)
    postcodes = _optional(con, "postcode_directory")
    if len(postcodes) and {"lat", "lon"} <= set(postcodes.columns):
        postcodes = postcodes[["postcode", "lsoa_code", "ward_code", "la_code", "lat", "lon"]].dropna(subset=["lat", "lon"])
    else:
        postcodes = pd.DataFrame()
    return PartnerTables(
        population=protect_frame(sort_for_partners(population), "population_estimates", rules, geography),
        indicators=protected_indicators,
        alerts=protect_frame(sort_for_partners(alerts), "alerts", rules, indicators=protected_indicators),
        synthetic=is_synthetic(report), run=report, area_names=_optional(con, "area_names"), postcodes=postcodes,
        lookup=lookup)


def _optional(con: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame:
    return con.execute(f'SELECT * FROM "{table}"').df() if table_exists(con, table) else pd.DataFrame()


def build_metadata(settings: Settings, report: dict, tables: PartnerTables) -> dict:
    """The sidecar: run id, input hashes, configuration, code version, disclosure rules, table sizes."""
    return {
        "run_id": report.get("run_id"),
        "started": report.get("started"),
        "finished": report.get("finished"),
        "code_version": report.get("code_version"),
        "synthetic": tables.synthetic,
        "synthetic_manifest": report.get("synthetic"),
        "inputs": [{"file": f.get("file"), "sha256": f.get("sha256"), "rows_loaded": f.get("rows_loaded"),
                    "rows_quarantined": f.get("rows_quarantined")} for f in report.get("files", [])],
        "configuration": json.loads(settings.as_json()),
        "disclosure_control": settings.outputs.model_dump(mode="json"),
        "tables": {"population_estimates.csv": len(tables.population), "indicators.csv": len(tables.indicators),
                   "alerts.csv": len(tables.alerts)},
    }


def publish_outputs(con: duckdb.DuckDBPyConnection, settings: Settings, folder: Path, report: dict) -> list[str]:
    """Write the whole partner pack into `folder`; return the files written (relative names)."""
    from pipeline.outputs.dictionary import build_data_dictionary, render_readme
    from pipeline.outputs.excel import write_workbook

    folder.mkdir(parents=True, exist_ok=True)
    tables = read_partner_tables(con, settings, report)
    rules = settings.outputs
    written = []
    for name, frame in (("population_estimates.csv", tables.population), ("indicators.csv", tables.indicators),
                        ("alerts.csv", tables.alerts)):
        publish_frame(frame, folder / name, tables.synthetic)
        written.append(name)
        log.info("published %s (%d rows)", name, len(frame))
    files = {name: list(pd.read_csv(folder / name, nrows=0).columns) for name in written}
    dictionary = protect_frame(build_data_dictionary(rules, files, tables.indicators), "dictionary", rules)
    publish_frame(dictionary, folder / "data_dictionary.csv", synthetic=False)
    written.append("data_dictionary.csv")
    metadata = build_metadata(settings, report, tables)
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=2, default=str), encoding="utf-8")
    written.append("metadata.json")
    write_workbook(folder / "cohesion_tables.xlsx", tables, dictionary, metadata)
    written.append("cohesion_tables.xlsx")
    if rules.charts:
        from pipeline.outputs.charts import draw_charts
        from pipeline.outputs.report import write_report

        charts = draw_charts(tables, folder / "charts")
        written.append("charts/")
        write_report(folder / "report.html", tables, charts, dictionary, metadata)
        written.append("report.html")
    (folder / "README.md").write_text(render_readme(rules, dictionary, metadata, tables.synthetic, written),
                                      encoding="utf-8")
    written.append("README.md")
    return written
