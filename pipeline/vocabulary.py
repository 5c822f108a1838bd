"""The shared vocabulary (`schemas.vocabulary`) as reference tables every SQL step joins to.

| table | columns |
|---|---|
| ``ref_age`` | age (0-120), age_band (ONS 5-year), band_order, survey_band |
| ``ref_age_band`` | age_band, band_order, age_from, age_to |
| ``ref_age_label`` | label (as extracts write it: '7', '90+', '85-89', '15-19'), age_band |
| ``ref_sex_code`` | code (upper case, as extracts write it), sex (M/F/U) |
| ``ref_ethnic_code`` | scheme (nhs, dfe, survey), code, ethnic_group (5 census groups or Not stated) |
| ``ref_ethnic_group`` | ethnic_group, group_order |
| ``ref_religion`` | name (lower case), religion |
| ``ref_area_type`` | area_type, area_order (la first) |
"""

from __future__ import annotations

import duckdb
import pandas as pd

from schemas import vocabulary as v

REFERENCE_TABLES = ("ref_age", "ref_age_band", "ref_age_label", "ref_sex_code", "ref_ethnic_code",
                    "ref_ethnic_group", "ref_religion", "ref_area_type")


def build_reference_tables(chinese: v.ChineseGrouping = "Asian") -> dict[str, pd.DataFrame]:
    ages = range(v.MAX_AGE + 1)
    band_order = {band: i for i, band in enumerate(v.AGE_BANDS)}
    codes = [(scheme, code, group) for scheme in ("nhs", "dfe", "survey")
             for code, group in v.ethnic_group_map(scheme, chinese).items()]
    return {
        "ref_age": pd.DataFrame({"age": list(ages), "age_band": [v.age_band_of(a) for a in ages],
                                 "band_order": [band_order[v.age_band_of(a)] for a in ages],
                                 "survey_band": [v.survey_band_of(a) for a in ages]}),
        "ref_age_band": pd.DataFrame({"age_band": v.AGE_BANDS, "band_order": range(len(v.AGE_BANDS)),
                                      "age_from": [v.band_limits(b)[0] for b in v.AGE_BANDS],
                                      "age_to": [v.band_limits(b)[1] for b in v.AGE_BANDS]}),
        "ref_age_label": pd.DataFrame(list(v.age_labels().items()), columns=["label", "age_band"]),
        "ref_sex_code": pd.DataFrame(list(v.SEX_CODES.items()), columns=["code", "sex"]),
        "ref_ethnic_code": pd.DataFrame(codes, columns=["scheme", "code", "ethnic_group"]),
        "ref_ethnic_group": pd.DataFrame({"ethnic_group": [*v.ETHNIC_GROUPS, v.NOT_STATED],
                                          "group_order": range(len(v.ETHNIC_GROUPS) + 1)}),
        "ref_religion": pd.DataFrame(list(v.religion_names().items()), columns=["name", "religion"]),
        "ref_area_type": pd.DataFrame({"area_type": v.AREA_TYPES, "area_order": range(len(v.AREA_TYPES))}),
    }


def load_vocabulary(con: duckdb.DuckDBPyConnection, chinese: v.ChineseGrouping = "Asian") -> None:
    """Create (or replace) every ref_* table in `con`."""
    for name, frame in build_reference_tables(chinese).items():
        con.register("_ref_frame", frame)
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _ref_frame")
        con.unregister("_ref_frame")
