"""One vocabulary: defined once in schemas/vocabulary.py, agreeing across coding schemes, used everywhere."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from pipeline.vocabulary import load_vocabulary
from schemas import vocabulary as v

ROOT = Path(__file__).resolve().parent.parent
# DfE code -> the NHS ethnic category of the same 2001-census group (NHS Data Dictionary; DfE CBDS)
NHS_OF_DFE = {"WBRI": "A", "WIRI": "B", "WIRT": "C", "WOTH": "C", "WROM": "C", "MWBC": "D", "MWBA": "E",
              "MWAS": "F", "MOTH": "G", "AIND": "H", "APKN": "J", "ABAN": "K", "AOTH": "L", "BCRB": "M",
              "BAFR": "N", "BOTH": "P", "CHNE": "R", "OOTH": "S", "REFU": "Z", "NOBT": "Z"}


@pytest.mark.parametrize("chinese", ["Asian", "Other"])
def test_nhs_and_dfe_maps_agree_on_every_group(chinese):
    nhs, dfe = v.ethnic_group_map("nhs", chinese), v.ethnic_group_map("dfe", chinese)
    assert set(dfe) == set(NHS_OF_DFE)
    for dfe_code, nhs_code in NHS_OF_DFE.items():
        assert dfe[dfe_code] == nhs[nhs_code], dfe_code
    assert nhs["R"] == dfe["CHNE"] == chinese
    assert set(nhs.values()) <= {*v.ETHNIC_GROUPS, v.NOT_STATED}


def test_census_grouping_is_the_default_and_the_2001_grouping_an_option():
    con = duckdb.connect()
    load_vocabulary(con)
    assert con.execute("SELECT ethnic_group FROM ref_ethnic_code WHERE scheme = 'nhs' AND code = 'R'").fetchall() == [("Asian",)]
    load_vocabulary(con, "Other")
    assert con.execute("SELECT ethnic_group FROM ref_ethnic_code WHERE scheme = 'dfe' AND code = 'CHNE'").fetchall() == [("Other",)]


def test_age_bands_and_labels():
    assert v.age_band_of(0) == "0-4" and v.age_band_of(19) == "15-19" and v.age_band_of(85) == v.age_band_of(101) == "85+"
    assert v.survey_band_of(15) is None and v.survey_band_of(16) == "16-24" and v.survey_band_of(80) == "75+"
    labels = v.age_labels()
    assert labels["90+"] == labels["85-89"] == labels["95+"] == "85+" and labels["7"] == "5-9" and labels["15-19"] == "15-19"
    assert v.band_limits("15-19") == (15, 19) and v.band_limits("75+") == (75, v.MAX_AGE)


def _definitions(pattern: str) -> list[str]:
    found = []
    for path in [*ROOT.glob("pipeline/**/*.py"), *ROOT.glob("pipeline/**/*.sql"), *ROOT.glob("schemas/*.py")]:
        if "demo" in path.parts:  # the generator makes its own world; it is not part of the pipeline
            continue
        if re.search(pattern, path.read_text(encoding="utf-8")):
            found.append(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("what, pattern", [
    ("the 5-year age band rule", r"// 5 \* 5|//\s*5\s*\*\s*5"),
    ("the NHS ethnic category map", r"['\"]H['\"]: ['\"]Asian['\"]|WHEN eth IN \('H'"),
    ("the DfE ethnicity map", r"['\"]AIND['\"]: ['\"]Asian['\"]|ethnicity IN \('AIND'"),
    ("the sex codes", r"['\"]FEMALE['\"]: ['\"]F['\"]"),
    ("the area-type order", r"WHEN 'ward' THEN 1|['\"]ward['\"]: 1"),
])
def test_each_vocabulary_item_is_defined_once(what, pattern):
    assert set(_definitions(pattern)) <= {"schemas/vocabulary.py"}, f"{what} is defined outside schemas/vocabulary.py"


def test_survey_contract_reads_the_vocabulary_code_lists():
    from pydantic import ValidationError

    from schemas.contracts import SurveyRow

    row = SurveyRow(survey_id="s", respondent_id="r1", area="M15 4AB", age_band="16-24",
                    ethnic_group="Asian or Asian British", religion="prefer not to say")
    assert (row.age_band, row.ethnic_group, row.religion) == ("16-24", "Asian", "Not stated")
    assert SurveyRow(survey_id="s", respondent_id="r2", area="M15 4AB", ethnic_group="r").ethnic_group == "Chinese"
    with pytest.raises(ValidationError, match="Christian"):
        SurveyRow(survey_id="s", respondent_id="r3", area="M15 4AB", religion="Jedi")
    with pytest.raises(ValidationError, match="16-24"):
        SurveyRow(survey_id="s", respondent_id="r4", area="M15 4AB", age_band="16-25")
