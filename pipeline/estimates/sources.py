"""The canonical tables the estimates read, presented to the SQL steps as ``est_src_<table>`` views.

Required: ``base_population`` and a GP list: ``gp_register`` (patient level), or failing that
the published counts ``gp_counts`` (counts-only mode, counts.py: with ``gp_practice_age`` and
``base_population_sya`` where present; no ethnicity, no flows by reason). Everything else is optional: an absent (or
column-short) table becomes an empty view with the expected columns, so every SQL step runs and
the model degrades to what the data can support (no movements -> flows and list cleaning from
consecutive snapshots; no school census or asylum allocations -> turbulence from the GP list
alone; no vital events -> no birth/death corrections; no lsoa_lookup -> geography from the GP
register; no la_totals -> no constraint).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from pipeline.engine import Engine, engine_for

# table -> [(column, duckdb type)] the steps read
SOURCE_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "gp_register": [
        ("extract_date", "DATE"), ("patient_id", "VARCHAR"), ("practice_code", "VARCHAR"),
        ("sex", "VARCHAR"), ("date_of_birth", "DATE"), ("from_abroad", "BOOLEAN"),
        ("ethnic_category", "VARCHAR"), ("lsoa_code", "VARCHAR"), ("msoa_code", "VARCHAR"),
        ("ward_code", "VARCHAR"), ("la_code", "VARCHAR"),
    ],
    "base_population": [
        ("reference_date", "DATE"), ("lsoa_code", "VARCHAR"), ("sex", "VARCHAR"),
        ("age_band", "VARCHAR"), ("population", "DOUBLE"), ("source", "VARCHAR"),
    ],
    "gp_counts": [
        ("extract_date", "DATE"), ("practice_code", "VARCHAR"), ("lsoa_code", "VARCHAR"), ("sex", "VARCHAR"),
        ("age_band", "VARCHAR"), ("patients", "DOUBLE"),
    ],
    "base_population_sya": [
        ("reference_date", "DATE"), ("lsoa_code", "VARCHAR"), ("sex", "VARCHAR"), ("age", "INTEGER"),
        ("population", "DOUBLE"), ("source", "VARCHAR"),
    ],
    "gp_practice_age": [
        ("extract_date", "DATE"), ("practice_code", "VARCHAR"), ("sex", "VARCHAR"), ("age", "VARCHAR"),
        ("patients", "DOUBLE"),
    ],
    "gp_movements": [
        ("patient_id", "VARCHAR"), ("practice_code", "VARCHAR"), ("event_date", "DATE"),
        ("event", "VARCHAR"), ("reason", "VARCHAR"), ("lsoa_code", "VARCHAR"),
    ],
    "school_census": [
        ("census_date", "DATE"), ("pupil_id", "VARCHAR"), ("urn", "VARCHAR"), ("nc_year", "VARCHAR"),
        ("sex", "VARCHAR"), ("ethnicity", "VARCHAR"), ("ethnic_major", "VARCHAR"), ("lsoa_code", "VARCHAR"),
    ],
    "vital_events": [
        ("period_start", "DATE"), ("period_end", "DATE"), ("area_code", "VARCHAR"), ("area_type", "VARCHAR"),
        ("sex", "VARCHAR"), ("age_band", "VARCHAR"), ("births", "DOUBLE"), ("deaths", "DOUBLE"),
    ],
    "asylum_allocations": [
        ("period_start", "DATE"), ("period_end", "DATE"), ("area_code", "VARCHAR"), ("area_type", "VARCHAR"),
        ("persons_allocated", "DOUBLE"),
    ],
    "lsoa_lookup": [
        ("lsoa_code", "VARCHAR"), ("msoa_code", "VARCHAR"), ("ward_code", "VARCHAR"), ("la_code", "VARCHAR"),
        ("ward_share", "DOUBLE"),
    ],
    "area_names": [("area_code", "VARCHAR"), ("area_name", "VARCHAR"), ("area_type", "VARCHAR")],
    "la_totals": [("reference_date", "DATE"), ("la_code", "VARCHAR"), ("population", "DOUBLE")],
}
REQUIRED = ("base_population",)  # and a GP list: gp_register, or else gp_counts


@dataclass
class SourceInfo:
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows (absent tables: 0)
    present: set[str] = field(default_factory=set)
    missing_columns: dict[str, list[str]] = field(default_factory=dict)

    def has(self, table: str) -> bool:
        return self.rows.get(table, 0) > 0


def table_columns(con: duckdb.DuckDBPyConnection | Engine, table: str) -> list[str] | None:
    """Column names of `table` in the current schema, or None when it does not exist."""
    return engine_for(con).table_columns(table)


def prepare_sources(con: duckdb.DuckDBPyConnection | Engine) -> SourceInfo:
    """Create the ``est_src_*`` temporary views on `con` (a DuckDB connection or an Engine: the views'
    SQL is the engine's to translate); raise when a required table is absent."""
    engine = engine_for(con)
    info = SourceInfo()
    for table, columns in SOURCE_COLUMNS.items():
        present = engine.table_columns(table)
        if present is None:
            selects = ", ".join(f"CAST(NULL AS {typ}) AS {col}" for col, typ in columns)
            engine.create_view_as(f"est_src_{table}", f"SELECT {selects} WHERE FALSE")
            info.rows[table] = 0
            continue
        lower = {c.lower(): c for c in present}
        missing = [col for col, _ in columns if col not in lower]
        if table in REQUIRED and missing and table == "base_population" and set(missing) - {"source"}:
            raise ValueError(f"'{table}' lacks columns {missing}")
        if missing:
            info.missing_columns[table] = missing
        selects = ", ".join(
            (f'TRY_CAST("{lower[col]}" AS {typ}) AS {col}' if col in lower else f"CAST(NULL AS {typ}) AS {col}")
            for col, typ in columns
        )
        engine.create_view_as(f"est_src_{table}", f'SELECT {selects} FROM "{table}"')
        info.present.add(table)
        info.rows[table] = engine.count_rows(table)
    if info.rows["gp_register"] == 0 and info.rows["gp_counts"] == 0:
        raise ValueError("population estimates need the gp_register table (or, failing that, gp_counts): "
                         "neither is in the database or both are empty")
    for table in REQUIRED:
        if table not in info.present:
            raise ValueError(f"population estimates need the '{table}' table, which is not in the database")
    if info.rows["base_population"] == 0:
        raise ValueError("the base_population table is empty: there is nothing to roll forward")
    return info
