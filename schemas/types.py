"""Column types shared by the contracts, each with its Python and SQL reading.

Every type is an ``Annotated`` alias carrying:
- a pydantic ``BeforeValidator`` that normalises a raw string (so a single record validates in Python),
- a ``SqlForm`` that does the same in SQL over a whole file: ``clean`` normalises the trimmed text,
  ``cast`` turns it into the typed value or NULL when it does not parse.
Pydantic's own constraints (``Literal`` code lists, ``pattern``, ``ge``) become SQL checks in
`pipeline.ingest.rules`. Keep the Python and SQL readings in step: tests/test_contracts.py checks
that both give the same verdict on the same rows.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from schemas.vocabulary import SEX_CODES


@dataclass(frozen=True)
class SqlForm:
    """How a column reads in SQL. ``{x}`` stands for the trimmed raw text (NULL when blank)."""

    clean: str = "{x}"
    cast: str = "{x}"
    # computed once per row before ``clean``, which reads its result as ``{x}``: a costly step that
    # ``clean`` would otherwise repeat (the postcode's whitespace removal is used five times)
    prepare: str = "{x}"
    sql_type: str = "VARCHAR"
    expected: str = "text"  # the expected form, in plain English, for quarantine messages
    lenient: bool = False  # a value that does not parse becomes missing instead of quarantining the row
    # a date column: ``{date}`` in ``cast`` reads the accepted date forms (configured per source in
    # config.toml [ingest.date_forms]) plus these built-in ones (names in DATE_FORMS)
    dates: tuple[str, ...] | None = None
    # SQL over the typed value ``{v}`` that gives back the cleaned text of most values (a date's ISO text,
    # Y/N): the typed rows then keep the text only where it differs (pipeline.ingest.rules), which spares
    # a copy of every value in memory; the text is rebuilt for the messages of the few quarantined rows
    rebuild: str | None = None


@dataclass(frozen=True)
class DateForm:
    """One way a date may be written in a raw file. Adding a form is one more entry in DATE_FORMS."""

    name: str
    example: str
    pattern: str  # regular expression the whole trimmed text must match
    format: str  # strptime format, the same in Python and DuckDB
    separators: tuple[str, str] = ("", "")  # characters read as the format's separator (e.g. '-.' as '/')
    time: bool = False  # a time of day may follow (as spreadsheets and pandas write dates): the date is read


# what may follow a date whose form allows a time: ' 00:00', ' 13:45:00', 'T00:00:00.000'
TIME_SUFFIX = r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"


DATE_FORMS: dict[str, DateForm] = {f.name: f for f in (
    DateForm("iso", "2022-06-30", r"\d{4}-\d{2}-\d{2}", "%Y-%m-%d", time=True),
    # UK order, as Excel exports it; 30-06-2022 and 30.06.2022 read the same
    DateForm("dmy", "30/06/2022", r"\d{1,2}/\d{1,2}/\d{4}|\d{1,2}-\d{1,2}-\d{4}|\d{1,2}\.\d{1,2}\.\d{4}", "%d/%m/%Y",
             separators=("-.", "//"), time=True),
    DateForm("nhs", "30JUN2022", r"\d{2}[A-Za-z]{3}\d{4}", "%d%b%Y"),  # NHS Digital publications
)}
DEFAULT_DATE_FORMS: tuple[str, ...] = ("iso", "dmy")


def iso_fast_path(x: str, forms: tuple[str, ...]) -> str | None:
    """SQL for `x` read as an ISO date when it is written exactly as DuckDB writes one back (2022-06-30),
    else NULL: a cast and a comparison, far cheaper than the regular expressions of `date_sql` over a
    10-million-row extract. None when the ISO form is not accepted."""
    return f"TRY_CAST({x} AS DATE)" if "iso" in forms else None


def date_sql(x: str, forms: tuple[str, ...]) -> str:
    """SQL reading the text `x` as a date in any of `forms` (NULL when it is in none of them)."""
    def read(form: DateForm) -> str:
        # a time of day always has a ':'; the (slow) regexp_replace only runs on values that carry one
        text = f"CASE WHEN contains({x}, ':') THEN regexp_replace({x}, '[ T].*$', '') ELSE {x} END" if form.time else x
        text = f"translate({text}, '{form.separators[0]}', '{form.separators[1]}')" if form.separators[0] else text
        return f"TRY_CAST(try_strptime({text}, '{form.format}') AS DATE)"

    def pattern(form: DateForm) -> str:
        return f"(?:{form.pattern}){TIME_SUFFIX}" if form.time else form.pattern

    whens = " ".join(f"WHEN regexp_full_match({x}, '{pattern(DATE_FORMS[f])}') THEN {read(DATE_FORMS[f])}" for f in forms)
    return f"(CASE {whens} END)"


def date_examples(forms: tuple[str, ...]) -> str:
    return " or ".join(DATE_FORMS[f].example for f in forms)


@dataclass(frozen=True)
class RowRule:
    """A rule across columns of one row. ``bad`` is a SQL predicate over the typed columns."""

    rule: str
    column: str
    bad: str
    message: str
    redact: bool = False  # never copy the offending value into the quarantine file


class Contract(BaseModel):
    """Base of the row contracts. Strings are trimmed and blanks become missing."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    row_rules: ClassVar[tuple[RowRule, ...]] = ()
    unique_key: ClassVar[tuple[str, ...]] = ()  # one row per key value within a file
    constant_per_file: ClassVar[tuple[str, ...]] = ()  # e.g. the extract date of a snapshot
    place_by: ClassVar[str | None] = None  # column placed through the postcode directory / area codes
    keep_extra_columns: ClassVar[bool] = False  # load columns the contract does not name, as text
    # columns identifying a person: a value that looks like an NHS number (in any common form) is
    # refused (rule nhs_number) and never written in clear (pipeline.ingest redacts it everywhere)
    identifier_columns: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _blank_is_missing(cls, data):
        if isinstance(data, dict):
            return {k: (v.strip() or None) if isinstance(v, str) else v for k, v in data.items()}
        return data


# --- Python readings ---------------------------------------------------------------------

def _upper(value):
    return value.strip().upper() if isinstance(value, str) else value


def normalise_postcode(value):
    """'m154ab', ' M15  4AB ' -> 'M15 4AB' (outward code, one space, inward code)."""
    if not isinstance(value, str):
        return value
    compact = re.sub(r"\s+", "", value).upper()
    return f"{compact[:-3]} {compact[-3:]}" if len(compact) >= 5 else compact




def normalise_sex(value):
    return SEX_CODES.get(_upper(value), _upper(value)) if isinstance(value, str) else value


def parse_date(value, forms: tuple[str, ...] = DEFAULT_DATE_FORMS):
    """A date in any of `forms` (the default accepted forms when read outside a run)."""
    if isinstance(value, str):
        text = value.strip()
        for name in forms:
            form = DATE_FORMS[name]
            if re.fullmatch(f"(?:{form.pattern}){TIME_SUFFIX}" if form.time else form.pattern, text):
                text = re.split(r"[ T]", text)[0] if form.time else text
                text = text.translate(str.maketrans(*form.separators)) if form.separators[0] else text
                return dt.datetime.strptime(text.title() if name == "nhs" else text, form.format).date()
        raise ValueError(f"expected a date such as {date_examples(forms)}, got {value!r}")
    return value


def parse_partial_date(value):
    """A full date, or YYYY-MM with the day suppressed (read as the 15th: mid-month)."""
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}", value.strip()):
        return dt.datetime.strptime(value.strip() + "-15", "%Y-%m-%d").date()
    return parse_date(value)


def parse_nhs_date(value):
    """The accepted forms, or NHS Digital's published form '01JAN2021'."""
    return parse_date(value, tuple(dict.fromkeys(DEFAULT_DATE_FORMS + ("nhs",))))


def parse_yes_no(value):
    if isinstance(value, str):
        answer = {"Y": True, "N": False}.get(value.strip().upper())
        if answer is None:
            raise ValueError(f"expected Y or N, got {value!r}")
        return answer
    return value


def parse_lenient_int(value):
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


# --- SQL readings ------------------------------------------------------------------------

# a postcode without whitespace, upper case (a regular expression only for the rare tab or line break,
# found by `contains`, far cheaper than a regular expression on every row: RE2's \s is [\t\n\f\r ])
_COMPACT_POSTCODE_SQL = (
    "CASE WHEN contains({x}, chr(9)) OR contains({x}, chr(10)) OR contains({x}, chr(12)) OR contains({x}, chr(13)) "
    "THEN regexp_replace(upper({x}), '\\s', '', 'g') ELSE replace(upper({x}), ' ', '') END"
)
# the compact postcode with one space before the inward code ('M154AB' -> 'M15 4AB')
_SPACED_POSTCODE_SQL = "CASE WHEN length({x}) >= 5 THEN substr({x}, 1, length({x}) - 3) || ' ' || right({x}, 3) ELSE {x} END"
_POSTCODE_SQL = _SPACED_POSTCODE_SQL.replace("{x}", f"({_COMPACT_POSTCODE_SQL})")
# a postcode already written as it is read (2-4 capitals or digits, one space, 3 capitals or digits: most rows of an
# extract; the commonest length first) is its own compact-then-spaced reading, so the first step passes it through
# and the second leaves it as it is: a compact postcode holds no space, so a space there means it was passed through
_CANONICAL_POSTCODE = " OR ".join(f"{{x}} GLOB '{'[A-Z0-9]' * n} [A-Z0-9][A-Z0-9][A-Z0-9]'" for n in (3, 4, 2))
_COMPACT_OR_CANONICAL_SQL = f"CASE WHEN {_CANONICAL_POSTCODE} THEN {{x}} ELSE {_COMPACT_POSTCODE_SQL} END"
_SPACED_OR_CANONICAL_SQL = f"CASE WHEN contains({{x}}, ' ') THEN {{x}} ELSE {_SPACED_POSTCODE_SQL} END"
_SEX_SQL = "CASE upper({x}) " + " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in SEX_CODES.items()) + " ELSE upper({x}) END"
_PARTIAL_DATE = (
    "CASE WHEN regexp_full_match({x}, '\\d{4}-\\d{2}') THEN TRY_CAST(try_strptime({x} || '-15', '%Y-%m-%d') AS DATE) "
    "ELSE {date} END"
)

Text = Annotated[str, SqlForm()]
UpperText = Annotated[str, BeforeValidator(_upper), SqlForm(clean="upper({x})")]
# a date in the forms accepted for the source (config.toml [ingest.date_forms]; ISO and DD/MM/YYYY by default)
_ISO_TEXT = "CAST({v} AS VARCHAR)"  # a date as ISO text (2022-06-30)
IsoDate = Annotated[dt.date, BeforeValidator(parse_date),
                    SqlForm(cast="{date}", sql_type="DATE", expected="a date", dates=(), rebuild=_ISO_TEXT)]
PartialDate = Annotated[dt.date, BeforeValidator(parse_partial_date),
                        SqlForm(cast=_PARTIAL_DATE, sql_type="DATE", expected="a date (or YYYY-MM)", dates=(),
                                rebuild=_ISO_TEXT)]
NhsDate = Annotated[dt.date, BeforeValidator(parse_nhs_date),
                    SqlForm(cast="{date}", sql_type="DATE", expected="a date", dates=("nhs",), rebuild=_ISO_TEXT)]
Count = Annotated[int, Field(ge=0), SqlForm(cast="CASE WHEN regexp_full_match({x}, '[-+]?\\d+') THEN TRY_CAST({x} AS BIGINT) END", sql_type="BIGINT",
                                           expected="a whole number, 0 or more")]
Amount = Annotated[float, Field(ge=0), SqlForm(cast="TRY_CAST({x} AS DOUBLE)", sql_type="DOUBLE",
                                              expected="a number, 0 or more")]
YesNo = Annotated[bool, BeforeValidator(parse_yes_no),
                  SqlForm(clean="upper({x})", cast="CASE upper({x}) WHEN 'Y' THEN TRUE WHEN 'N' THEN FALSE END",
                          sql_type="BOOLEAN", expected="Y or N", rebuild="CASE WHEN {v} THEN 'Y' ELSE 'N' END")]
Postcode = Annotated[str, BeforeValidator(normalise_postcode),
                     Field(pattern=r"^[A-Z]{1,2}[0-9][0-9A-Z]? [0-9][A-Z]{2}$"),
                     SqlForm(prepare=_COMPACT_OR_CANONICAL_SQL, clean=_SPACED_OR_CANONICAL_SQL,
                             expected="a UK postcode such as M15 4AB")]
Sex = Annotated[Literal["M", "F", "U"], BeforeValidator(normalise_sex),
                SqlForm(clean=_SEX_SQL, expected="M, F, 1, 2, 0, 9, I or U")]
BinarySex = Annotated[Literal["M", "F"], BeforeValidator(normalise_sex), SqlForm(clean=_SEX_SQL, expected="M or F (also 1/2, Male/Female)")]


def answer(max_code: int):
    """A survey answer coded 1..max_code. Blank or out of range is a missing answer, not a bad row."""

    def read(value):
        code = parse_lenient_int(value)
        return code if code is not None and 1 <= code <= max_code else None

    cast = f"CASE WHEN TRY_CAST({{x}} AS INTEGER) BETWEEN 1 AND {max_code} THEN TRY_CAST({{x}} AS INTEGER) END"
    return Annotated[int | None, BeforeValidator(read), SqlForm(cast=cast, sql_type="INTEGER", lenient=True)]


_GSS = {"lsoa": r"E01\d{6}", "msoa": r"E02\d{6}", "ward": r"E05\d{6}", "la": r"E0[6-9]\d{6}"}
LsoaCode = Annotated[str, BeforeValidator(_upper), Field(pattern=f"^{_GSS['lsoa']}$"),
                     SqlForm(clean="upper({x})", expected="an LSOA code such as E01006112")]
MsoaCode = Annotated[str, BeforeValidator(_upper), Field(pattern=f"^{_GSS['msoa']}$"),
                     SqlForm(clean="upper({x})", expected="an MSOA code such as E02001259")]
WardCode = Annotated[str, BeforeValidator(_upper), Field(pattern=f"^{_GSS['ward']}$"),
                     SqlForm(clean="upper({x})", expected="a ward code such as E05015247")]
LaCode = Annotated[str, BeforeValidator(_upper), Field(pattern=r"^[ENSW]\d{8}$"),
                   SqlForm(clean="upper({x})", expected="a local authority code such as E08000009")]
AreaCode = Annotated[str, BeforeValidator(_upper), Field(pattern=f"^({_GSS['lsoa']}|{_GSS['msoa']}|{_GSS['ward']}|{_GSS['la']})$"),
                     SqlForm(clean="upper({x})", expected="an LSOA, MSOA, ward or LA code (E01…, E02…, E05…, E06–E09…)")]
# where a respondent or pupil lives: a postcode or an area code
Place = Annotated[str, BeforeValidator(lambda v: v.strip().upper() if isinstance(v, str) and re.fullmatch(r"E0\d{7}", v.strip(), re.I) else normalise_postcode(v)),
                  Field(pattern=r"^([A-Z]{1,2}[0-9][0-9A-Z]? [0-9][A-Z]{2}|E0[1256789]\d{6})$"),
                  SqlForm(clean=f"CASE WHEN regexp_full_match(upper({{x}}), 'E0\\d{{7}}') THEN upper({{x}}) ELSE {_POSTCODE_SQL} END",
                          expected="a postcode, or an LSOA or ward code")]
OdsPracticeCode = Annotated[str, BeforeValidator(_upper), Field(pattern=r"^[A-Z]\d{5}$"),
                            SqlForm(clean="upper({x})", expected="an ODS practice code such as M85001")]
Urn = Annotated[str, Field(pattern=r"^\d{6}$"), SqlForm(expected="a 6-digit school URN")]
PseudoId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{4,64}$"),
                     SqlForm(expected="a pseudonymised identifier (4-64 letters, digits, - or _)")]


def is_nhs_number(value: str | None) -> bool:
    """True when `value` is 10 digits passing the NHS modulus-11 check (NHS Data Dictionary),
    written in any common form: '9434765919', '943 476 5919', '943-476-5919'."""
    compact = re.sub(r"[\s-]", "", value) if value else ""
    if not re.fullmatch(r"\d{10}", compact):
        return False
    digits = [int(c) for c in compact]
    check = 11 - sum(d * (10 - i) for i, d in enumerate(digits[:9])) % 11
    check = 0 if check == 11 else check
    return check != 10 and check == digits[9]


def nhs_number_sql(column: str) -> str:
    """The same modulus-11 test as a SQL predicate, vectorised over a column (spaces and dashes ignored)."""
    compact = f"regexp_replace({column}, '[\\s-]', '', 'g')"
    d = lambda i: f"TRY_CAST(substr({compact}, {i}, 1) AS INTEGER)"  # noqa: E731
    weighted = " + ".join(f"{10 - (i - 1)} * {d(i)}" for i in range(1, 10))
    check = f"(11 - (({weighted}) % 11))"
    # first cheap tests that rule out almost every pseudonymised identifier: the first character (a
    # digit, a dash or white space: no regular expression; one range test first, which a first letter already
    # fails), then a character other than a digit, a space or a dash (the rest then runs on the few values left)
    return (
        f"(ascii({column}) BETWEEN 9 AND 57 AND (ascii({column}) >= 48 OR ascii({column}) IN (9, 10, 11, 12, 13, 32, 45)) AND "
        f"NOT regexp_matches({column}, '[^\\d\\s-]') AND regexp_full_match({compact}, '\\d{{10}}') AND "
        f"CASE WHEN {check} = 11 THEN 0 ELSE {check} END = {d(10)})"
    )


# ten digits, grouped by spaces or dashes or not at all: an NHS number in free text (no check digit
# test, so that nothing resembling one is ever copied into a file)
NHS_NUMBER_IN_TEXT = r"\b\d{3}[ -]*\d{3}[ -]*\d{4}\b"


def redact_nhs_numbers_sql(expression: str) -> str:
    return f"regexp_replace({expression}, '{NHS_NUMBER_IN_TEXT}', '[redacted]', 'g')"


def _lower(value):
    return value.strip().lower() if isinstance(value, str) else value


def code_list(values, expected: str, *, case: Literal["upper", "lower"] = "upper", clean: str | None = None, python=None):
    """A column restricted to a list of codes, compared after upper- (or lower-) casing."""
    python = python or (_upper if case == "upper" else _lower)
    return Annotated[Literal[tuple(values)], BeforeValidator(python),  # type: ignore[valid-type]
                     SqlForm(clean=clean or f"{case}({{x}})", expected=expected)]


def named_code(names: dict[str, str], expected: str):
    """A column whose values are names from the shared vocabulary, read case-insensitively and
    written in their canonical form (``names``: lower-case name as written -> canonical name)."""
    canonical = tuple(dict.fromkeys(names.values()))

    def read(value):
        return names.get(value.strip().lower(), value) if isinstance(value, str) else value

    cases = " ".join("WHEN '{}' THEN '{}'".format(k.replace("'", "''"), c.replace("'", "''")) for k, c in names.items())
    clean = f"CASE lower({{x}}) {cases} ELSE {{x}} END"
    return Annotated[Literal[canonical], BeforeValidator(read),  # type: ignore[valid-type]
                     SqlForm(clean=clean, expected=expected)]
