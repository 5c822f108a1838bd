"""Deprivation breakdowns: LA values by IMD 2019 quintile and the slope index of inequality.

Only when config.toml ``[basket] imd_path`` names an IMD 2019 LSOA file (columns ``lsoa_code`` and
``IMD_rank``, as MHCLG publishes it). IMD 2019 is on 2011 LSOAs: with ``imd_lookup_path`` (the ONS
2011 -> 2021 LSOA lookup: lsoa11_code, change_code, lsoa21_code) ranks are carried to 2021 LSOAs
by ``sql/deprivation/imd_lsoa21.sql`` (splits inherit, merges average); without it codes are
joined as they are (unchanged LSOAs match; others are reported as unmatched).
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from pipeline.sql import create_table_from
from pipeline.stats.sii import calculate_sii

log = logging.getLogger(__name__)

SQL = Path(__file__).resolve().parent / "sql" / "deprivation" / "imd_lsoa21.sql"
ENGLAND_LSOAS_2011 = 32844
QUINTILE_LABELS = {1: "1 (most deprived)", 2: "2", 3: "3", 4: "4", 5: "5 (least deprived)"}
SII_BREAKDOWN = "Deprivation: slope index of inequality (IMD 2019 quintiles)"


class DeprivationFileError(Exception):
    """An IMD or lookup file named in config.toml cannot be used: the message says which and why."""


def load_imd_quintiles(con: duckdb.DuckDBPyConnection, imd_path: str, lookup_path: str) -> pd.DataFrame | None:
    """lsoa_code (2021) -> imd_rank, imd_quintile, change_code; None when no IMD file is configured."""
    if not imd_path:
        return None
    _read(con, "ind_basket_imd_raw", imd_path, {"lsoa_code": ("lsoa_code", "lsoa11cd", "lsoa_code_2011"),
                                                "imd_rank": ("imd_rank", "index of multiple deprivation (imd) rank")})
    if lookup_path:
        _read(con, "ind_basket_lsoa11_lookup", lookup_path, {"lsoa11_code": ("lsoa11_code", "lsoa11cd"),
                                                             "change_code": ("change_code", "chgind"),
                                                             "lsoa21_code": ("lsoa21_code", "lsoa21cd")})
    else:
        con.execute("CREATE OR REPLACE TABLE ind_basket_lsoa11_lookup AS SELECT lsoa_code AS lsoa11_code, "
                    "'U' AS change_code, lsoa_code AS lsoa21_code FROM ind_basket_imd_raw")
    create_table_from(con, "ind_basket_imd", SQL, {"n_lsoas": ENGLAND_LSOAS_2011})
    return con.execute("SELECT * FROM ind_basket_imd").df()


def _read(con, table: str, path: str, columns: dict[str, tuple[str, ...]]) -> None:
    if not Path(path).is_file():
        raise DeprivationFileError(f"{path} (config.toml [basket]) does not exist")
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table}_in AS SELECT * FROM read_csv(?, header = true, "
                    "all_varchar = true)", [str(path)])
    except duckdb.Error as exc:
        raise DeprivationFileError(f"{path}: cannot be read as CSV: {str(exc).splitlines()[0]}") from exc
    have = {c.lower().strip(): c for c in
            (r[0] for r in con.execute(f"DESCRIBE {table}_in").fetchall())}
    select = []
    for name, aliases in columns.items():
        found = next((have[a] for a in aliases if a in have), None)
        if found is None:
            raise DeprivationFileError(f"{path}: no column {name} (looked for {', '.join(aliases)})")
        select.append(f'trim("{found}") AS {name}')
    con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT {', '.join(select)} FROM {table}_in")


def add_quintile_rows(rows: pd.DataFrame, imd: pd.DataFrame, lookup: pd.DataFrame) -> pd.DataFrame:
    """LA rows by IMD quintile summed from LSOA rows (breakdown 'Deprivation quintile: ...')."""
    lsoa = rows[(rows["area_type"] == "lsoa") & (rows["breakdown"] == "All")]
    if lsoa.empty:
        return rows.iloc[0:0]
    la_of = lookup[["lsoa_code", "la_code"]].drop_duplicates()
    joined = lsoa.merge(imd[["lsoa_code", "imd_quintile"]], left_on="area_code", right_on="lsoa_code") \
                 .merge(la_of, left_on="area_code", right_on="lsoa_code", suffixes=("", "_la"))
    if joined.empty:
        return rows.iloc[0:0]
    joined["breakdown"] = "Deprivation quintile: " + joined["imd_quintile"].map(QUINTILE_LABELS)
    group = ["indicator_id", "indicator_name", "breakdown", "period_start", "period_end", "la_code"]
    out = joined.groupby(group, as_index=False)[["numerator", "denominator"]].sum()
    return out.rename(columns={"la_code": "area_code"}).assign(area_type="la")


def compute_sii_rows(rows: pd.DataFrame, statistic: str, multiplier: float) -> pd.DataFrame:
    """One SII row per indicator, LA and period with three or more quintiles."""
    quint = rows[rows["breakdown"].str.startswith("Deprivation quintile: ") & (rows["denominator"] > 0)].copy()
    if quint.empty:
        return pd.DataFrame()
    quint["q"] = quint["breakdown"].str.extract(r"quintile: (\d)")[0].astype(int)
    out = []
    for (indicator, area, start, end), part in quint.groupby(["indicator_id", "area_code", "period_start", "period_end"]):
        part = part.sort_values("q")
        if len(part) < 3:
            continue
        x, n = part["numerator"].to_numpy(float), part["denominator"].to_numpy(float)
        if statistic == "rate":
            var = x * multiplier ** 2 / n ** 2
        else:
            p = x / n
            var = p * (1 - p) / n * multiplier ** 2
        sii = calculate_sii(part["value"], n, var)
        sig = "higher" if sii["lower"] > 0 else "lower" if sii["upper"] < 0 else "similar"
        out.append({"indicator_id": indicator, "indicator_name": part["indicator_name"].iloc[0], "area_code": area,
                    "area_type": "la", "period_start": start, "period_end": end, "breakdown": SII_BREAKDOWN,
                    "value": sii["sii"], "lower_95": sii["lower"], "upper_95": sii["upper"],
                    "comparator": "no inequality (0)", "comparator_value": 0.0, "significance": sig,
                    "note": f"SII = most deprived end minus least deprived end of the fitted line; "
                            f"{len(part)} quintiles present"})
    return pd.DataFrame(out)
