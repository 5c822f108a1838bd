"""Survey code lists, from the shared vocabulary (schemas/vocabulary.py).

Ingest already places survey ethnic groups in the five ONS 2021 groups (Chinese by the configured
grouping); `to_ethnic_group` repeats that mapping for surveys loaded otherwise (NHS letters, group
names) and treats "Not stated" as no answer, so it forms no breakdown group.
"""

from __future__ import annotations

import pandas as pd

from schemas.vocabulary import ETHNIC_GROUPS, NOT_STATED, SURVEY_AGE_BANDS, ethnic_group_map

__all__ = ["BREAKDOWN_LABELS", "SURVEY_AGE_BANDS", "to_ethnic_group", "yes_no"]

BREAKDOWN_LABELS = {"sex": "Sex", "age_band": "Age", "ethnic_group": "Ethnic group", "disability": "Disability",
                    "religion": "Religion"}
_CODES = {**{k.upper(): g for k, g in ethnic_group_map("nhs").items()},
          **{k.upper(): g for k, g in ethnic_group_map("survey").items()}}


def to_ethnic_group(values: pd.Series) -> pd.Series:
    def one(value):
        if value is None or pd.isna(value):
            return None
        text = str(value).strip()
        group = text if text in ETHNIC_GROUPS else _CODES.get(text.upper(), text)
        return None if group in (NOT_STATED, "") else group

    return values.map(one)


def yes_no(values: pd.Series) -> pd.Series:
    """Disability as Y/N (the canonical table holds a boolean)."""
    return values.map(lambda v: None if v is None or pd.isna(v) else ("Y" if v in (True, "Y", "y", 1, "1") else "N"))
