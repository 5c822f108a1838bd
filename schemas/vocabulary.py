"""One vocabulary for every stage: age bands, sex codes, ethnic groups, religions, area types.

Defined once here, loaded into DuckDB as small reference tables (``ref_*``, see
`pipeline.vocabulary.load_vocabulary`) at the start of ingest, and used by every SQL step and
Python module instead of copies of their own.

Ethnic groups follow the five ONS 2021 census groups. NHS ethnic category codes (NHS Data
Dictionary, 2001-census based) and DfE ethnicity codes map onto them as shared/spec/methods.md
says: the Chinese codes (NHS ``R``, DfE ``CHNE``) go to Asian, as in the 2011 and 2021
censuses, unless the configuration asks for the 2001 grouping (``Other``).
"""

from __future__ import annotations

from typing import Literal

# --- areas --------------------------------------------------------------------------------
AREA_TYPES = ("la", "ward", "msoa", "lsoa")  # largest first: the order partners read them in

# --- sex ----------------------------------------------------------------------------------
SEXES = ("M", "F")
ALL = "All"  # the total over a dimension, in every published table
SEX_CODES = {"M": "M", "1": "M", "MALE": "M", "MALES": "M", "F": "F", "2": "F", "FEMALE": "F", "FEMALES": "F",
             "0": "U", "9": "U", "I": "U", "U": "U"}  # U: not known or indeterminate

# --- age ----------------------------------------------------------------------------------
MAX_AGE = 120
AGE_BANDS = tuple(f"{a}-{a + 4}" for a in range(0, 85, 5)) + ("85+",)  # ONS 5-year bands
SURVEY_AGE_BANDS = ("16-24", "25-34", "35-44", "45-54", "55-64", "65-74", "75+")  # resident surveys (16+)


def age_band_of(age: int) -> str:
    """The ONS 5-year band of a single year of age."""
    if age < 0:
        raise ValueError(f"age must be 0 or more, got {age}")
    return "85+" if age >= 85 else f"{age // 5 * 5}-{age // 5 * 5 + 4}"


def survey_band_of(age: int) -> str | None:
    """The resident-survey band of a single year of age (None under 16)."""
    for band in SURVEY_AGE_BANDS:
        low, _, high = band.replace("+", "-").partition("-")
        if age >= int(low) and (not high or age <= int(high)):
            return band
    return None


def band_limits(band: str) -> tuple[int, int]:
    """First and last single year of a band such as '15-19', '75+' or '90+' (open bands end at MAX_AGE)."""
    low, _, high = band.replace("+", "-").partition("-")
    return int(low), int(high) if high else MAX_AGE


def age_labels() -> dict[str, str]:
    """Every age label an extract may carry -> its ONS 5-year band.

    Single years ``0`` ... ``120`` and ``90+``/``95+`` (ONS mid-year estimates, NHS Digital's lists),
    the 5-year bands themselves, and the bands above 85 that some publications split
    (``85-89``, ``90-94``).
    """
    labels = {str(age): age_band_of(age) for age in range(MAX_AGE + 1)}
    labels.update({f"{age}+": age_band_of(age) for age in range(MAX_AGE + 1)})
    labels.update({band: band for band in AGE_BANDS})
    labels.update({f"{a}-{a + 4}": "85+" for a in range(85, MAX_AGE, 5)})
    return labels


# --- ethnic group ---------------------------------------------------------------------------
ETHNIC_GROUPS = ("White", "Mixed", "Asian", "Black", "Other")  # ONS 2021 census, five groups
NOT_STATED = "Not stated"
ChineseGrouping = Literal["Asian", "Other"]  # Asian: 2011/2021 censuses (default); Other: 2001 census

CHINESE_CODES = {"nhs": "R", "dfe": "CHNE"}
NHS_ETHNIC_CATEGORIES = {  # NHS Data Dictionary ethnic category (2001 census based)
    "A": "White", "B": "White", "C": "White",
    "D": "Mixed", "E": "Mixed", "F": "Mixed", "G": "Mixed",
    "H": "Asian", "J": "Asian", "K": "Asian", "L": "Asian",
    "M": "Black", "N": "Black", "P": "Black",
    "R": "Chinese", "S": "Other", "Z": NOT_STATED,
}
DFE_ETHNICITY = {  # DfE school census ethnicity codes
    "WBRI": "White", "WIRI": "White", "WIRT": "White", "WOTH": "White", "WROM": "White",
    "MWBC": "Mixed", "MWBA": "Mixed", "MWAS": "Mixed", "MOTH": "Mixed",
    "AIND": "Asian", "APKN": "Asian", "ABAN": "Asian", "AOTH": "Asian",
    "BCRB": "Black", "BAFR": "Black", "BOTH": "Black",
    "CHNE": "Chinese", "OOTH": "Other", "REFU": NOT_STATED, "NOBT": NOT_STATED,
}
SURVEY_ETHNIC_NAMES = {  # how surveys write the five groups (and Chinese, which follows the grouping)
    "white": "White", "mixed": "Mixed", "mixed or multiple": "Mixed", "mixed/multiple ethnic groups": "Mixed",
    "asian": "Asian", "asian or asian british": "Asian", "asian/asian british": "Asian",
    "black": "Black", "black or black british": "Black", "black/african/caribbean/black british": "Black",
    "other": "Other", "other ethnic group": "Other", "any other": "Other", "chinese": "Chinese",
    "not stated": NOT_STATED, "prefer not to say": NOT_STATED,
}


def ethnic_group_map(scheme: Literal["nhs", "dfe", "survey"], chinese: ChineseGrouping = "Asian") -> dict[str, str]:
    """code -> census group for one coding scheme, with the Chinese codes placed as configured."""
    table = {"nhs": NHS_ETHNIC_CATEGORIES, "dfe": DFE_ETHNICITY, "survey": SURVEY_ETHNIC_NAMES}[scheme]
    return {code: (chinese if group == "Chinese" else group) for code, group in table.items()}


# --- religion (ONS 2021 census categories) --------------------------------------------------
RELIGIONS = ("No religion", "Christian", "Buddhist", "Hindu", "Jewish", "Muslim", "Sikh", "Other religion",
             NOT_STATED)
RELIGION_ALIASES = {"none": "No religion", "other": "Other religion", "any other religion": "Other religion",
                    "prefer not to say": NOT_STATED}


def religion_names() -> dict[str, str]:
    """Lower-cased names a survey may use -> the census category."""
    names = {r.lower(): r for r in RELIGIONS}
    names.update(RELIGION_ALIASES)
    return names
