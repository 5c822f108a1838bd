"""The local basket: objective indicators from the published tables, against a baseline, with early warnings.

    build_basket(con, settings)  ->  basket_indicators, alerts   (tables in the run's database)

What the basket holds is `basket.toml` beside this file (analysts edit it; each indicator's SQL is a
file in ``sql/indicators/``). Steps:

1. ``sql/prepare/NN_*.sql``: the basket's own working tables (``ind_basket_*``): populations per
   area and estimate date (denominators) and pupils with census ethnic groups, FSM and EAL.
2. Each indicator's SQL, then by its statistic (`compute`):
   - rate / proportion: summed up from its level to ward and LA (LSOAs into wards by ward_share);
     Byar's/exact (rates) or Wilson (proportions) limits at 95% and 99.8% (`pipeline.stats`);
     LSOAs and wards compared with their LA (``significance``, Fingertips' rule), the LA with the
     baseline period; change from the baseline and its significance, a trend test across the
     periods so far, funnel limits among areas of the same type (overdispersion optional);
   - segregation: the index across the LA's units with its expected value under random allocation
     as the comparator (small schools read as segregated even when pupils are dealt at random);
   - diversity: normalised Shannon entropy of each area's ethnic composition;
   - count: the SQL's value as it is (e.g. languages new to an area).
3. `alerts.find_alerts`: early warnings for the rate indicators marked ``alert = true``.

Columns of ``basket_indicators``: the indicators.csv contract (`schemas.published.INDICATOR_COLUMNS`),
then lower_99_8, upper_99_8, baseline_period_end, baseline_value, change_from_baseline,
change_significance, trend, trend_p_value, funnel_lower_99_8, funnel_upper_99_8, funnel_significance.
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from pipeline.config import Settings
from pipeline.indicators.basket.alerts import find_alerts
from pipeline.indicators.basket.compute import (SEGREGATION_KEYS, compute_count_rows, compute_diversity_rows,
                                                compute_rate_rows, compute_segregation_groups, name_variants,
                                                roll_up)
from pipeline.indicators.basket.definition import BasketError, load_basket
from pipeline.indicators.basket.deprivation import add_quintile_rows, compute_sii_rows, load_imd_quintiles
from pipeline.engine import engine_for
from pipeline.sql import render, run_steps
from schemas.published import ALERT_COLUMNS, INDICATOR_COLUMNS
from schemas.vocabulary import AREA_TYPES

log = logging.getLogger(__name__)

PREPARE = Path(__file__).resolve().parent / "sql" / "prepare"
EXTRA_COLUMNS = ("lower_99_8", "upper_99_8", "baseline_period_end", "baseline_value", "change_from_baseline",
                 "change_significance", "trend", "trend_p_value", "funnel_lower_99_8", "funnel_upper_99_8",
                 "funnel_significance")
TEXT_COLUMNS = {"indicator_id", "indicator_name", "domain", "area_code", "area_name", "area_type", "breakdown",
                "unit", "comparator", "significance", "polarity", "note", "change_significance", "trend",
                "funnel_significance"}


def build_basket(con: duckdb.DuckDBPyConnection, settings: Settings) -> dict:
    """Compute every indicator of the basket and the alerts; return a summary for the run report."""
    cfg = settings.basket
    definitions = load_basket(cfg.definition_path or None)
    run_steps(con, PREPARE)
    lookup = con.execute("SELECT lsoa_code, ward_code, la_code, ward_share FROM lsoa_lookup").df()
    imd = load_imd_quintiles(con, cfg.imd_path, cfg.imd_lookup_path)
    summary = {}
    if imd is not None:
        lsoas = set(lookup["lsoa_code"])
        matched = lsoas & set(imd["lsoa_code"])
        summary["imd_lsoas_matched"] = f"{len(matched)} of {len(lsoas)}"
        if len(matched) < len(lsoas):
            log.warning("basket: %d of the district's LSOAs have no IMD 2019 rank (not in the IMD file or "
                        "the 2011->2021 lookup); they are left out of the deprivation quintiles",
                        len(lsoas) - len(matched))
    names = dict(con.execute("SELECT area_code, max(area_name) FROM area_names GROUP BY area_code").fetchall())
    frames, rate_rows, cache, segregation_cache = [], [], {}, {}
    for definition in definitions:
        path = definition.sql_path
        fetch = fetch_segregation_units if definition.statistic == "segregation" else fetch_indicator_rows
        if (path, fetch) not in cache:
            try:
                cache[path, fetch] = fetch(con, render(path.read_text(encoding="utf-8")))
            except duckdb.Error as exc:
                raise BasketError(f"indicator {definition.id}: SQL {path} failed: {exc}") from exc
        rows = cache[path, fetch]
        if len(rows) == 0:
            log.warning("basket: %s has no rows (its source tables are empty)", definition.id)
            continue
        if definition.statistic == "segregation":
            out = compute_segregation_groups(rows, definition, cfg.segregation_iterations, cfg.segregation_seed,
                                             segregation_cache)
        elif definition.statistic in ("rate", "proportion"):
            named = name_variants(rows, definition)
            rows = roll_up(named, lookup, definition.levels)
            if imd is not None and "la" in definition.levels:
                rows = pd.concat([rows, add_quintile_rows(named, imd, lookup)], ignore_index=True)
            out = compute_rate_rows(rows, definition, names, cfg.baseline_period, cfg.funnel_overdispersion, lookup)
            out["base_id"] = definition.id
            rate_rows.append(out)
            if imd is not None:
                sii = compute_sii_rows(out, definition.statistic, definition.multiplier)
                if not sii.empty:
                    sii["unit"], sii["domain"], sii["polarity"] = definition.unit, definition.domain, definition.polarity
                    frames.append(sii)
        elif definition.statistic == "count":
            out = compute_count_rows(name_variants(rows, definition), definition)
        else:
            out = compute_diversity_rows(rows, definition)
        if out.empty:
            continue
        if "indicator_id" not in out:
            out["indicator_id"], out["indicator_name"] = definition.id, definition.name
        frames.append(out)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(INDICATOR_COLUMNS))
    table["area_name"] = table["area_code"].map(names).fillna(table["area_code"])
    write_table(con, "basket_indicators", shape_indicators(table))
    rates = pd.concat(rate_rows, ignore_index=True) if rate_rows else pd.DataFrame()
    if not rates.empty:
        rates["area_name"] = rates["area_code"].map(names).fillna(rates["area_code"])
        alerts = find_alerts(rates, definitions, cfg)
    else:
        alerts = pd.DataFrame(columns=list(ALERT_COLUMNS))
    write_table(con, "alerts", alerts)
    log.info("basket: %d indicator rows (%d indicators), %d alerts", len(table), table["indicator_id"].nunique(),
             len(alerts))
    return {"basket": {"indicators": int(table["indicator_id"].nunique()), "rows": int(len(table)),
                       "alerts": int(len(alerts)), **summary}}


def fetch_indicator_rows(con, sql: str) -> pd.DataFrame:
    """An indicator's rows (rates, proportions, counts, diversity: one per area, period and group, so
    tens of thousands nationally), period_start and period_end as dates."""
    rows = con.execute(sql).df()
    for column in ("period_start", "period_end"):
        rows[column] = pd.to_datetime(rows[column]).dt.date
    return rows


def fetch_segregation_units(con, sql: str) -> list[tuple[tuple, np.ndarray, np.ndarray]]:
    """A segregation indicator's units (one row per school or LSOA, per group, area and period: about a
    million school rows nationally) as (key, group counts, unit totals) per group, key = area_code,
    area_type, period_start, period_end, breakdown, units in unit_code order: the rows are kept in a
    temporary table and read back as two numeric columns and the groups' keys, never as a frame."""
    engine = engine_for(con)
    engine.create_table_as("ind_basket_units", sql, temp=True)
    try:
        keys = ", ".join(SEGREGATION_KEYS)
        known = " AND ".join(f"{k} IS NOT NULL" for k in SEGREGATION_KEYS)  # as pandas' groupby, keyless rows drop
        dated = keys.replace("period_start", "CAST(period_start AS DATE) AS period_start").replace(
            "period_end", "CAST(period_end AS DATE) AS period_end")
        groups = engine.to_arrow(f"SELECT {dated}, count(*) AS units FROM ind_basket_units WHERE {known} "
                                 f"GROUP BY {keys} ORDER BY {keys}")
        values = engine.to_arrow(
            "SELECT CAST(group_count AS DOUBLE) AS group_count, CAST(unit_total AS DOUBLE) AS unit_total "
            f"FROM ind_basket_units WHERE {known} ORDER BY {keys}, unit_code NULLS LAST, group_count, unit_total")
    finally:
        con.execute("DROP TABLE IF EXISTS ind_basket_units")
    x = values.column("group_count").to_numpy()
    t = values.column("unit_total").to_numpy()
    ends = np.cumsum(groups.column("units").to_numpy())
    key_columns = [groups.column(k).to_pylist() for k in SEGREGATION_KEYS]
    return [(key, x[end - n:end], t[end - n:end])
            for key, end, n in zip(zip(*key_columns), ends, groups.column("units").to_numpy())]


def shape_indicators(table: pd.DataFrame) -> pd.DataFrame:
    """The contract's columns in order, then the basket's extra columns; empty text as ''."""
    for column in (*INDICATOR_COLUMNS, *EXTRA_COLUMNS):
        if column not in table:
            table[column] = "" if column in TEXT_COLUMNS else np.nan
    for column in TEXT_COLUMNS:
        table[column] = table[column].fillna("").astype(str)
    table["significance"] = table["significance"].replace("", "not compared")
    order = table["area_type"].map({a: i for i, a in enumerate(AREA_TYPES)})
    table = table.assign(_o=order).sort_values(["indicator_id", "_o", "area_code", "breakdown", "period_end"])
    return table[[*INDICATOR_COLUMNS, *EXTRA_COLUMNS]].reset_index(drop=True)


def write_table(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> None:
    """Write a frame as a table, dates as DATE and numbers as DOUBLE."""
    con.register("basket_frame", frame)
    casts = []
    for column in frame.columns:
        if column in ("period_start", "period_end", "baseline_period_end"):
            casts.append(f"CAST({column} AS DATE) AS {column}")
        elif column in TEXT_COLUMNS or column in ("message", "direction"):
            casts.append(f"CAST({column} AS VARCHAR) AS {column}")
        else:
            casts.append(f"CAST({column} AS DOUBLE) AS {column}")
    con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT {', '.join(casts)} FROM basket_frame")
    con.unregister("basket_frame")
