"""The accessible Excel workbook of the pack, written with ONS's gptables (Analysis Function
guidance on releasing statistics in spreadsheets): a cover, a contents sheet, one table per sheet
with a title and source, no merged cells, no colour-only meaning. It holds the same protected
frames as the CSVs, so a partner who lives in Excel sees exactly what the CSVs say."""

from __future__ import annotations

import warnings
from pathlib import Path

import gptables as gpt
import pandas as pd

from pipeline.outputs.disclosure import require_protected

SOURCE = "Community cohesion indicator pipeline (GP registers, school census, resident survey, ONS)"
# Excel's limit is 1,048,576 rows; a sheet larger than this points to the CSV instead
MAX_SHEET_ROWS = 1_000_000


def _for_sheet(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].dt.strftime("%Y-%m-%d")
        elif pd.api.types.is_numeric_dtype(out[column]) and not pd.api.types.is_bool_dtype(out[column]):
            out[column] = pd.to_numeric(out[column], errors="coerce").astype(float)
        else:
            text = out[column].astype(object).where(out[column].notna(), "").astype(str)
            # the guidance refuses symbol-only cells: the unit "%" is written out as "percent"
            text = text.replace("%", "percent")
            out[column] = text.where(~text.str.fullmatch(r"[^a-zA-Z0-9]+"), "")
    # gptables writes NaN as an empty cell; the reason is in the note column
    return out.astype(object).where(out.notna(), None)


def write_workbook(path: Path, tables, dictionary: pd.DataFrame, metadata: dict) -> Path:
    """population estimates, indicators, alerts and the data dictionary, one sheet each."""
    sheets = {}
    pop = tables.population
    all_ages = pop[pop.age_band == "All"] if len(pop) else pop
    latest = pop[(pop.reference_date == pop.reference_date.max()) & pop.area_type.isin(["la", "ward"])] if len(pop) else pop
    all_ages, latest = all_ages.reset_index(drop=True), latest.reset_index(drop=True)
    all_ages.attrs, latest.attrs = dict(pop.attrs), dict(pop.attrs)
    specs = [
        ("Population", "population_estimates", all_ages,
         "Population estimates with 95% margins of error, every area and date, all ages (by age band: next sheet "
         "and population_estimates.csv)"),
        ("Population by age", "population_by_age", latest,
         "Population estimates by sex and 5-year age band, LA and wards, latest extract (every area and date: "
         "population_estimates.csv)"),
        ("Indicators", "indicators", tables.indicators,
         "Cohesion indicators by area, period and breakdown, with 95% intervals and comparisons"),
        ("Alerts", "alerts", tables.alerts, "Early warnings of sudden change"),
        ("Dictionary", "data_dictionary", dictionary, "Data dictionary: every column and indicator"),
    ]
    for label, name, frame, title in specs:
        require_protected(frame, f"the Excel writer ({label})")
        sheet = _for_sheet(frame)
        if len(sheet) > MAX_SHEET_ROWS:
            sheet = sheet.head(MAX_SHEET_ROWS)
            title += f" (first {MAX_SHEET_ROWS:,} rows: the CSV holds them all)"
        if sheet.empty:
            sheet = pd.DataFrame([["no rows in this run"] + [""] * (len(sheet.columns) - 1)], columns=sheet.columns)
        subtitles = ["Empty cells are missing or suppressed to protect individuals: the note column says why."]
        if tables.synthetic:
            subtitles.insert(0, "SYNTHETIC DEMO DATA: no real person")
        sheets[label] = gpt.GPTable(table=sheet, table_name=name, title=title, subtitles=subtitles,
                                    source=SOURCE, index_columns={})
    intro = ["SYNTHETIC DEMO DATA: made-up people over real geography; no real person."] if tables.synthetic else []
    cover = gpt.Cover(
        title="Community cohesion indicators: partner tables",
        intro=intro + [f"Run {metadata['run_id']}, code version {metadata['code_version']}."],
        about=["The same tables as the CSV files of the pack. Modelled figures are rounded and small counts "
               "suppressed so that no person can be identified; see the Dictionary sheet and README.md."],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no notes sheet": the notes are in the note columns
        gpt.write_workbook(filename=str(path), sheets=sheets, cover=cover,
                           contentsheet_options={"additional_elements": ["subtitles", "source"]})
    return path
