"""Survey code lists in one place, until the shared vocabulary (schemas/vocabulary.py) lands on main.

Ethnic groups: the five ONS 2021 census groups. NHS ethnic category letters map as methods.md
gives them (A-C White, D-G Mixed, H-L Asian, M-P Black, R Chinese -> Asian, S Other, Z not
stated); the 2021 census 19-category labels are matched on their group word; the five group
names pass through. Anything else stays as written (and so forms its own breakdown group).
"""

from __future__ import annotations

import pandas as pd

ETHNIC_GROUPS = ("White", "Mixed", "Asian", "Black", "Other")
NHS_LETTER_GROUP = {**dict.fromkeys("ABC", "White"), **dict.fromkeys("DEFG", "Mixed"), **dict.fromkeys("HJKLR", "Asian"),
                    **dict.fromkeys("MNP", "Black"), "S": "Other"}
_WORDS = (("mixed", "Mixed"), ("multiple", "Mixed"), ("asian", "Asian"), ("chinese", "Asian"), ("black", "Black"),
          ("african", "Black"), ("caribbean", "Black"), ("white", "White"), ("arab", "Other"), ("other", "Other"))
BREAKDOWN_LABELS = {"sex": "Sex", "age_band": "Age", "ethnic_group": "Ethnic group", "disability": "Disability",
                    "religion": "Religion"}


def to_ethnic_group(values: pd.Series) -> pd.Series:
    def one(value):
        if value is None or pd.isna(value):
            return None
        text = str(value).strip()
        if text in ETHNIC_GROUPS:
            return text
        if len(text) == 1 and text.upper() in NHS_LETTER_GROUP:
            return NHS_LETTER_GROUP[text.upper()]
        if text.upper() in ("Z", "NOT STATED", ""):
            return None
        lowered = text.lower()
        for word, group in _WORDS:
            if word in lowered:
                return group
        return text

    return values.map(one)


def yes_no(values: pd.Series) -> pd.Series:
    """Disability as Y/N (the canonical table holds a boolean)."""
    return values.map(lambda v: None if v is None or pd.isna(v) else ("Y" if v in (True, "Y", "y", 1, "1") else "N"))
