"""The contracts in schemas/ read the same in Python (pydantic) and in SQL (compiled checks):
on the same rows, both must accept and refuse the same values."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
from pydantic import ValidationError

from pipeline.ingest.rules import compile_checks
from schemas.contracts import GpRegisterRow, SchoolCensusRow, SurveyRow, VitalEventsRow
from schemas.types import is_nhs_number

GOOD_REGISTER = dict(extract_date="2024-01-01", patient_id="Pa0001", practice_code="P91003", postcode="M15 4AB",
                     sex="M", date_of_birth="1980-05-01", registration_date="2001-01-01", from_abroad="N",
                     ethnic_category="A")

REGISTER_CASES = [
    {},  # the good row itself
    {"postcode": "m154ab"}, {"postcode": " M15  4AB "}, {"postcode": "M1 5"}, {"postcode": "1234567"},
    {"sex": "2"}, {"sex": "I"}, {"sex": "X"}, {"sex": ""},
    {"date_of_birth": "1980-05"}, {"date_of_birth": "1980-13-01"}, {"date_of_birth": "01/05/1980"},
    {"date_of_birth": "1.5.1980"}, {"date_of_birth": "05/31/1980"}, {"date_of_birth": "1980-05-01 00:00:00"},
    {"extract_date": "01JAN2024"}, {"registration_date": "2001-01-01T09:30"},
    {"practice_code": "p91003"}, {"practice_code": "P9100"}, {"practice_code": "XYZ"},
    {"ethnic_category": "z"}, {"ethnic_category": "I"}, {"ethnic_category": ""},
    {"from_abroad": "y"}, {"from_abroad": "maybe"}, {"from_abroad": ""},
    {"patient_id": "P1"}, {"patient_id": "abc def"}, {"extract_date": ""},
]


def python_accepts(contract, row: dict) -> bool:
    try:
        contract.model_validate(row)
        return True
    except ValidationError:
        return False


def sql_accepts(contract, rows: list[dict]) -> list[bool]:
    """Field-level SQL verdicts (cross-row rules, row rules and places are not pydantic's business)."""
    con = duckdb.connect()
    columns = [f.alias or n for n, f in contract.model_fields.items()]
    frame = pd.DataFrame(rows).reindex(columns=columns).fillna("").astype(str)
    frame.insert(0, "__line", range(2, len(rows) + 2))
    con.register("frame", frame)
    con.execute("CREATE TABLE raw AS SELECT * FROM frame")
    plain = type("Plain", (contract,), {"row_rules": (), "unique_key": (), "constant_per_file": (), "place_by": None,
                                        "__module__": __name__})
    checks = compile_checks(plain, "raw")
    con.execute(f"CREATE TABLE typed AS {checks.typed}")
    bad = {line for (line,) in con.execute(f"SELECT DISTINCT __line FROM ({checks.violations})").fetchall()}
    return [line not in bad for line in frame["__line"]]


@pytest.mark.parametrize("contract, base, cases", [
    (GpRegisterRow, GOOD_REGISTER, REGISTER_CASES),
    (SchoolCensusRow, dict(census_date="2024-01-18", pupil_id="U001", urn="123456", school_name="Oak", phase="primary",
                           nc_year="R", sex="F", ethnicity="WBRI", first_language="ENG", fsm_eligible="N",
                           entry_date="2021-09-01", home_postcode="M15 4AB", home_lsoa=""),
     [{}, {"nc_year": "15"}, {"nc_year": "n1"}, {"phase": "Secondary"}, {"phase": "college"}, {"urn": "12345"},
      {"ethnicity": "wbri"}, {"ethnicity": "WXYZ"}, {"first_language": "TIG"}, {"first_language": "E1"},
      {"fsm_eligible": "yes"}, {"sex": "U"}, {"home_lsoa": "E01006074"}, {"home_lsoa": "E02001259"}]),
    (VitalEventsRow, dict(period_start="2024-01-01", period_end="2024-03-31", area_code="E01006074", sex="F",
                          age_band="", births="12", deaths=""),
     [{}, {"births": "-1"}, {"births": "1.5"}, {"births": "x"}, {"area_code": "E05015247"}, {"area_code": "E1234"},
      {"deaths": "0"}]),
    (SurveyRow, dict(survey_id="residents-2024", respondent_id="r1", interview_date="2024-02-01", area="M15 4AB",
                     sex="F", age_band="25-34", ethnic_group="Asian", religion="", disability="N", weight="1.2",
                     q_get_on="1", q_belong="2", q_influence="5"),
     [{}, {"q_get_on": "9"}, {"q_get_on": "x"}, {"weight": "0"}, {"weight": "-2"}, {"area": "e01006074"},
      {"area": "nowhere"}, {"disability": "Q"}]),
])
def test_python_and_sql_readings_agree(contract, base, cases):
    rows = [{**base, **case} for case in cases]
    rows_py = [{k: v for k, v in row.items()} for row in rows]
    assert [python_accepts(contract, r) for r in rows_py] == sql_accepts(contract, rows)


def test_verdicts_are_not_trivial():
    """The case list holds both accepted and refused rows (so the agreement test can fail)."""
    rows = [{**GOOD_REGISTER, **case} for case in REGISTER_CASES]
    verdicts = sql_accepts(GpRegisterRow, rows)
    assert 8 <= sum(verdicts) <= len(verdicts) - 8


def test_nhs_number_check_digit():
    # 943 476 5919 is the NHS Data Dictionary's worked example of a valid number (modulus 11)
    assert is_nhs_number("9434765919")
    assert is_nhs_number("943 476 5919")
    assert not is_nhs_number("9434765918")  # wrong check digit
    assert not is_nhs_number("P434765919")


def test_postcode_sql_reading_passes_written_forms_through_and_matches_python():
    """schemas.types.Postcode: a postcode already written as it is read skips the compact-then-spaced rebuild; every
    value reads as the rebuild (the form before the shortcut) and as `normalise_postcode` read it."""
    from schemas.types import _COMPACT_OR_CANONICAL_SQL, _POSTCODE_SQL, _SPACED_OR_CANONICAL_SQL, normalise_postcode

    values = ["M15 4AB", "EC1A 1BB", "M1 1AA", "m15 4ab", "M154AB", "M15  4AB", "M15\t4AB", "AB 1 1AA", "1234 567",
              "M1 5", "A 1AA", "Zoë 1AA", "M15 4Ab", "EC1A 1BBX", "ZZ999 9ZZ", ""]
    prepared = _COMPACT_OR_CANONICAL_SQL.replace("{x}", "x")
    read = _SPACED_OR_CANONICAL_SQL.replace("{x}", "p")
    rows = duckdb.connect().execute(
        f"SELECT x, {read}, {_POSTCODE_SQL.replace('{x}', 'x')} FROM (SELECT x, {prepared} AS p FROM (SELECT unnest(?) AS x))",
        [values]).fetchall()
    for value, sql, rebuilt in rows:
        assert sql == rebuilt == normalise_postcode(value), value
