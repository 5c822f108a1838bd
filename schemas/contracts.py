"""Row contracts for every raw layout the pipeline accepts (shared/spec/inputs.md).

A *source* is a folder under ``raw/``; a source may accept several *layouts* (the canonical
one and real published ones), told apart by their columns. Each layout names its contract,
the canonical table it loads into and, where the layout is not already canonical, the SQL
(in ``pipeline/ingest/sql/``) that reshapes its valid rows into that table.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, Field, create_model

from schemas.vocabulary import (
    AGE_BANDS, RELIGIONS, SURVEY_AGE_BANDS, SURVEY_ETHNIC_NAMES, religion_names,
)
from schemas.vocabulary import DFE_ETHNICITY as DFE_ETHNIC_CODES, NHS_ETHNIC_CATEGORIES as NHS_ETHNIC_CODES
from schemas.types import (
    AreaCode, Amount, BinarySex, Contract, Count, IsoDate, LaCode, LsoaCode, MsoaCode, NhsDate,
    OdsPracticeCode, PartialDate, Place, Postcode, PseudoId, RowRule, Sex, SqlForm, Text, UpperText, Urn, WardCode,
    YesNo, answer, code_list, named_code, normalise_sex,
)

NHS_ETHNIC_CATEGORIES = tuple(NHS_ETHNIC_CODES)
DFE_ETHNICITY = tuple(DFE_ETHNIC_CODES)
KNOWN_LANGUAGES = ("ENG", "ENB", "OTH", "OTB", "REFU", "NOBT", "POL", "URD", "PNJ", "BNG", "SOM", "ARA", "RUM",
                   "GUJ", "TUR", "POR", "SPA", "FRN", "CHI", "TAM", "LIT", "PAT", "KUR", "FAR", "ALB", "TIG")
AGE_BANDS_5Y = AGE_BANDS  # the ONS 5-year bands (schemas.vocabulary)

# NHS numbers: every contract's identifier_columns are checked (pipeline.ingest.rules.compile_checks)


SchoolPhase = code_list(["primary", "secondary", "special", "pru", "all-through"],
                        "primary, secondary, special, pru or all-through", case="lower")
_PERIOD_IN_ORDER = RowRule("period_reversed", "period_end", "period_end < period_start",
                           "period_end is before period_start")
_EARLIEST_BIRTH = ("CASE WHEN length(date_of_birth__text) = 7 THEN CAST(date_trunc('month', date_of_birth) AS DATE) "
                   "ELSE date_of_birth END")


# --- 1. GP patient register snapshot ------------------------------------------------------
class GpRegisterRow(Contract):
    extract_date: IsoDate
    patient_id: PseudoId
    practice_code: OdsPracticeCode
    postcode: Postcode
    sex: Sex
    date_of_birth: PartialDate
    registration_date: IsoDate
    from_abroad: YesNo | None = None
    ethnic_category: code_list(NHS_ETHNIC_CATEGORIES, "an NHS ethnic category A-S or Z") | None = None

    identifier_columns: ClassVar = ("patient_id",)
    row_rules: ClassVar = (
        # a YYYY-MM date of birth is read as the 15th; these rules give it the benefit of the whole month
        RowRule("birth_after_extract", "date_of_birth", f"{_EARLIEST_BIRTH} > extract_date",
                "date of birth is after the extract date"),
        RowRule("registered_before_birth", "registration_date", f"registration_date < {_EARLIEST_BIRTH}",
                "registration date is before the date of birth"),
        RowRule("registered_after_extract", "registration_date", "registration_date > extract_date",
                "registration date is after the extract date"),
        RowRule("implausible_age", "date_of_birth", "date_diff('year', date_of_birth, extract_date) > 115",
                "date of birth makes the patient older than 115"),
    )
    unique_key: ClassVar = ("extract_date", "patient_id")
    constant_per_file: ClassVar = ("extract_date",)
    place_by: ClassVar = "postcode"


# --- 2. GP register movements -------------------------------------------------------------
DEREGISTRATION_REASONS = ("death", "emigration", "transfer", "list_cleaning", "other")
REGISTRATION_REASONS = ("birth", "from_abroad", "transfer_in", "other")


class GpMovementRow(Contract):
    patient_id: PseudoId
    practice_code: OdsPracticeCode
    postcode: Postcode
    event_date: IsoDate
    event: code_list(["registration", "deregistration"], "registration or deregistration", case="lower")
    reason: code_list(sorted(set(DEREGISTRATION_REASONS + REGISTRATION_REASONS)), "a reason from the inputs spec",
                      case="lower") | None = None

    identifier_columns: ClassVar = ("patient_id",)
    row_rules: ClassVar = (
        RowRule("reason_mismatch", "reason",
                f"(event = 'registration' AND reason IN ('death', 'emigration', 'transfer', 'list_cleaning')) OR "
                f"(event = 'deregistration' AND reason IN ('birth', 'from_abroad', 'transfer_in'))",
                "reason does not fit the event (e.g. a registration for 'death')"),
    )
    unique_key: ClassVar = ("patient_id", "practice_code", "event_date", "event")
    place_by: ClassVar = "postcode"


# --- 3. GP registration counts (NHS Digital, published) -----------------------------------
# NHS Digital publishes practice x LSOA counts by sex (MALE/FEMALE) and, in the persons files, SEX = ALL
_COUNT_SEX_SQL = ("CASE upper({x}) WHEN 'MALE' THEN 'M' WHEN 'MALES' THEN 'M' WHEN '1' THEN 'M' WHEN 'FEMALE' THEN 'F' "
                  "WHEN 'FEMALES' THEN 'F' WHEN '2' THEN 'F' WHEN 'PERSONS' THEN 'ALL' ELSE upper({x}) END")
CountSex = code_list(["M", "F", "ALL"], "MALE, FEMALE or ALL (persons)", clean=_COUNT_SEX_SQL,
                     python=lambda v: ({"PERSONS": "ALL", "ALL": "ALL"}.get(v.strip().upper()) or normalise_sex(v))
                     if isinstance(v, str) else v)


class GpCountRow(Contract):
    """Practice x LSOA registrations (NHS Digital "Patients Registered at a GP Practice", as published).

    SEX is MALE/FEMALE, or ALL in the persons files; EXTRACT_DATE as published (01JUL2019) or ISO;
    LSOA codes of the 2011 or the 2021 boundaries (whichever the area lookup holds).
    """

    publication: Text | None = None
    extract_date: NhsDate
    practice_code: OdsPracticeCode
    practice_name: Text | None = None
    lsoa_code: LsoaCode
    sex: CountSex
    age_band: Text | None = None
    number_of_patients: Count

    unique_key: ClassVar = ("extract_date", "practice_code", "lsoa_code", "sex", "age_band")
    place_by: ClassVar = "lsoa_code"


class GpPracticeAgeRow(Contract):
    """The same publication's practice x sex x single year of age file (``gp_practice_age/``).

    All of each practice's patients, wherever they live. AGE is ``0`` ... ``95+`` (the open top).
    """

    publication: Text | None = None
    extract_date: NhsDate
    practice_code: Annotated[OdsPracticeCode, Field(alias="org_code")]
    org_type: Text | None = None
    sex: CountSex  # the full publication also has SEX = ALL and AGE = ALL total rows: loaded, not used
    age: Annotated[str, BeforeValidator(lambda v: v.strip().upper() if isinstance(v, str) else v),
                   Field(pattern=r"^(\d{1,3}\+?|ALL)$"),
                   SqlForm(clean="upper({x})", expected="a single year of age 0 ... 95+ (or ALL)")]
    number_of_patients: Count

    unique_key: ClassVar = ("extract_date", "practice_code", "sex", "age")


# --- 4. School census ---------------------------------------------------------------------
class SchoolCensusRow(Contract):
    census_date: IsoDate
    pupil_id: PseudoId
    urn: Urn
    school_name: Text | None = None
    phase: SchoolPhase
    nc_year: code_list(["R", "N1", "N2"] + [str(y) for y in range(1, 15)], "R, N1, N2 or 1-14")
    sex: BinarySex
    ethnicity: code_list(DFE_ETHNICITY, "a DfE ethnicity code such as WBRI")
    first_language: Annotated[str, BeforeValidator(str.upper), Field(pattern=r"^[A-Z]{3,4}$"),
                              SqlForm(clean="upper({x})", expected="a DfE language code such as ENG")]
    fsm_eligible: YesNo
    entry_date: IsoDate
    home_postcode: Postcode | None = None
    home_lsoa: LsoaCode | None = None

    identifier_columns: ClassVar = ("pupil_id",)
    row_rules: ClassVar = (
        RowRule("no_home_area", "home_postcode", "home_postcode IS NULL AND home_lsoa IS NULL",
                "neither home_postcode nor home_lsoa is given"),
        RowRule("entry_after_census", "entry_date", "entry_date > census_date", "entry date is after the census date"),
    )
    unique_key: ClassVar = ("census_date", "pupil_id")
    constant_per_file: ClassVar = ("census_date",)
    place_by: ClassVar = "coalesce(home_lsoa, home_postcode)"


class SchoolCountRow(Contract):
    """School-level aggregate counts (as in DfE's school-level underlying data), where pupil records
    are not available: pupils by school and ethnic group or first language."""

    census_date: IsoDate
    urn: Urn
    school_name: Text | None = None
    phase: SchoolPhase | None = None
    characteristic: code_list(["ethnicity", "first_language"], "ethnicity or first_language", case="lower")
    group: Annotated[str, BeforeValidator(str.upper), SqlForm(clean="upper({x})", expected="a DfE code or major group")]
    pupils: Count

    unique_key: ClassVar = ("census_date", "urn", "characteristic", "group")


# --- 5. Resident survey -------------------------------------------------------------------
# Code lists from the shared vocabulary, so that raking can match survey groups to population margins.
SurveyAgeBand = named_code({b.lower(): b for b in (*SURVEY_AGE_BANDS, *AGE_BANDS)},
                           "an age band: survey bands 16-24 ... 75+ or ONS 5-year bands 0-4 ... 85+")
# Chinese stays Chinese here; ingest places it by the configured grouping (ref_ethnic_code, scheme 'survey')
SurveyEthnicGroup = named_code({**SURVEY_ETHNIC_NAMES, **{k.lower(): g for k, g in NHS_ETHNIC_CODES.items()}},
                               "a census ethnic group (White, Mixed, Asian, Black, Other, Not stated; Chinese) or "
                               "an NHS ethnic category letter A-S, Z")
SurveyReligion = named_code(religion_names(), "a census religion: " + ", ".join(RELIGIONS))


class SurveyRow(Contract):
    survey_id: Text
    respondent_id: Text
    interview_date: IsoDate | None = None
    area: Place
    sex: BinarySex | None = None
    age_band: SurveyAgeBand | None = None
    ethnic_group: SurveyEthnicGroup | None = None
    religion: SurveyReligion | None = None
    disability: YesNo | None = None
    weight: Annotated[float | None, Field(gt=0), SqlForm(cast="TRY_CAST({x} AS DOUBLE)", sql_type="DOUBLE", expected="a positive number")] = None
    q_get_on: answer(7) = None
    q_belong: answer(5) = None
    q_influence: answer(5) = None
    q_mix_home: answer(6) = None
    q_mix_work: answer(6) = None
    q_mix_school: answer(6) = None
    q_mix_pub: answer(6) = None
    q_mix_group: answer(6) = None
    q_mix_worship: answer(6) = None
    q_mix_shops: answer(6) = None

    keep_extra_columns: ClassVar = True  # further perception questions for the local basket
    identifier_columns: ClassVar = ("respondent_id",)

    unique_key: ClassVar = ("survey_id", "respondent_id")
    place_by: ClassVar = "area"


# --- 6. Births and deaths -----------------------------------------------------------------
class VitalEventsRow(Contract):
    period_start: IsoDate
    period_end: IsoDate
    area_code: AreaCode
    sex: Sex | None = None
    age_band: Text | None = None
    births: Count | None = None
    deaths: Count | None = None

    row_rules: ClassVar = (
        _PERIOD_IN_ORDER,
        RowRule("no_counts", "births", "births IS NULL AND deaths IS NULL", "neither births nor deaths is given"),
    )
    unique_key: ClassVar = ("period_start", "period_end", "area_code", "sex", "age_band")
    place_by: ClassVar = "area_code"


# --- 7. Asylum: local allocations, and Home Office Asy_D11 (published) --------------------
class AsylumAllocationRow(Contract):
    period_start: IsoDate
    period_end: IsoDate
    area_code: AreaCode
    persons_allocated: Count

    row_rules: ClassVar = (
        _PERIOD_IN_ORDER,
    )
    unique_key: ClassVar = ("period_start", "period_end", "area_code")
    place_by: ClassVar = "area_code"


class AsylumSupportRow(Contract):
    """Home Office table Asy_D11: people in receipt of asylum support by local authority (a stock)."""

    date: IsoDate
    year: Text | None = None
    quarter: Text | None = None
    support_type: Text
    uk_region: Text | None = None
    local_authority: Text
    lad_code: LaCode
    accommodation_type: Text
    people: Count


# --- 8. Base population: canonical long form, and ONS mid-year estimates (wide) ------------
class BasePopulationRow(Contract):
    reference_date: IsoDate
    area_code: LsoaCode
    sex: Sex
    age_band: Annotated[str, Field(pattern=r"^(\d{1,2}|90\+|\d{1,2}-\d{1,2}|85\+)$"),
                        SqlForm(expected="an ONS 5-year band (0-4 … 85+) or single year (0 … 90+)")]
    population: Amount
    source: Text

    row_rules: ClassVar = (
        RowRule("unknown_sex", "sex", "sex = 'U'", "base population needs M or F"),
    )
    unique_key: ClassVar = ("reference_date", "area_code", "sex", "age_band", "source")
    place_by: ClassVar = "area_code"


class OnsMidYearWideRow(Contract):
    """ONS mid-year estimates as published: one row per area × sex, a column per single year 0 … 90+.

    The published file also has a Persons row per area; it is accepted (it is part of the layout)
    but the base population is taken from the Females and Males rows.
    """

    period: IsoDate
    area_code: LsoaCode
    area_name: Text | None = None
    geography: Text | None = None
    sex: code_list(["M", "F", "P"], "Females, Males or Persons", python=lambda v: {"PERSONS": "P"}.get(
        v.strip().upper(), normalise_sex(v)) if isinstance(v, str) else v,
        clean="CASE upper({x}) WHEN 'FEMALES' THEN 'F' WHEN 'MALES' THEN 'M' WHEN 'PERSONS' THEN 'P' ELSE upper({x}) END")

    unique_key: ClassVar = ("period", "area_code", "sex")
    place_by: ClassVar = "area_code"


SINGLE_YEAR_COLUMNS = tuple([str(a) for a in range(90)] + ["90+"])


class OnsSapeWideRow(Contract):
    """ONS small-area population estimates as in the SAPE workbooks: one sheet per sex (or Persons),
    ``LSOA Code, LSOA Name, LA Code (… boundaries), All Ages, 0, 1, … 90+``.

    The sheet has no date or sex column: the reference date is 30 June of the year in the file's
    name (``sape-mid-2019-lsoa11-persons.csv``; a ``period`` column, where present, wins) and the
    sex comes from the name (``males`` / ``females``; otherwise persons). Persons-only files load
    with sex ``P``: the estimates then split them by sex from the GP list (and say so).
    """

    period: IsoDate | None = None
    lsoa_code: LsoaCode
    lsoa_name: Text | None = None
    all_ages: Amount | None = None

    place_by: ClassVar = "lsoa_code"
    unique_key: ClassVar = ("lsoa_code",)
# the 91 single-year columns, each a count of people (Python names age_0 … age_90plus, raw names 0 … 90+)
OnsMidYearWideRow = create_model(
    "OnsMidYearWideRow", __base__=OnsMidYearWideRow, __module__=__name__,
    **{"age_" + c.replace("+", "plus"): (Amount, Field(alias=c)) for c in SINGLE_YEAR_COLUMNS},
)


OnsSapeWideRow = create_model(
    "OnsSapeWideRow", __base__=OnsSapeWideRow, __module__=__name__,
    **{"age_" + c.replace("+", "plus"): (Amount, Field(alias=c)) for c in SINGLE_YEAR_COLUMNS},
)


# --- 9. Geography ---------------------------------------------------------------------------
class PostcodeDirectoryRow(Contract):
    postcode: Postcode
    lsoa_code: LsoaCode
    msoa_code: MsoaCode
    ward_code: WardCode
    la_code: LaCode
    lat: Annotated[float | None, SqlForm(cast="TRY_CAST({x} AS DOUBLE)", sql_type="DOUBLE", expected="a latitude")] = None
    lon: Annotated[float | None, SqlForm(cast="TRY_CAST({x} AS DOUBLE)", sql_type="DOUBLE", expected="a longitude")] = None
    lsoa_name: Text | None = None
    msoa_name: Text | None = None
    ward_name: Text | None = None
    la_name: Text | None = None

    unique_key: ClassVar = ("postcode",)


class AreaLookupRow(Contract):
    """An area lookup without postcodes (``lsoa11cd`` or ``lsoa21cd``, optionally ``msoa..cd``,
    ``wd..cd``, ``lad..cd`` and names), for an analyst who holds only published counts. Levels it
    lacks are simply not produced."""

    lsoa_code: LsoaCode
    msoa_code: MsoaCode | None = None
    ward_code: WardCode | None = None
    la_code: LaCode | None = None
    lsoa_name: Text | None = None
    msoa_name: Text | None = None
    ward_name: Text | None = None
    la_name: Text | None = None

    unique_key: ClassVar = ("lsoa_code", "ward_code")


class AreaNameRow(Contract):
    area_code: AreaCode
    area_name: Text
    area_type: code_list(["lsoa", "msoa", "ward", "la"], "lsoa, msoa, ward or la", case="lower")

    unique_key: ClassVar = ("area_code",)


# --- 10. Incidents --------------------------------------------------------------------------
class IncidentRow(Contract):
    period_start: IsoDate
    period_end: IsoDate
    area_code: AreaCode
    category: Text
    count: Count

    row_rules: ClassVar = (
        _PERIOD_IN_ORDER,
    )
    unique_key: ClassVar = ("period_start", "period_end", "area_code", "category")
    place_by: ClassVar = "area_code"


# --- Layouts --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """One accepted form of a source's files."""

    source: str
    name: str
    contract: type[Contract]
    table: str  # the canonical table its rows end up in
    reshape: str | None = None  # SQL file in pipeline/ingest/sql/ turning valid rows into `table`
    also: tuple[tuple[str, str], ...] = ()  # further (table, SQL file) each layout's valid rows load into
    # SQL file run first, into the temporary table `unpivoted` that `reshape` and `also` then read (one
    # unpivot of a wide layout feeding both its 5-year-band and single-year forms)
    unpivot: str | None = None

    @property
    def required(self) -> set[str]:
        """Raw column names a file must have to be read as this layout."""
        return {f.alias or n for n, f in self.contract.model_fields.items() if f.is_required()}

    @property
    def columns(self) -> list[str]:
        return [f.alias or n for n, f in self.contract.model_fields.items()]


LAYOUTS: tuple[Layout, ...] = (
    Layout("geography", "postcode_directory", PostcodeDirectoryRow, "postcode_directory"),
    Layout("geography", "area_names", AreaNameRow, "area_names"),
    Layout("geography", "area_lookup", AreaLookupRow, "area_lookup"),
    Layout("gp_register", "gp_register", GpRegisterRow, "gp_register"),
    Layout("gp_movements", "gp_movements", GpMovementRow, "gp_movements"),
    Layout("gp_counts", "nhsd_lsoa", GpCountRow, "gp_counts"),
    Layout("gp_practice_age", "nhsd_practice_single_year", GpPracticeAgeRow, "gp_practice_age"),
    Layout("school_census", "pupil_level", SchoolCensusRow, "school_census"),
    Layout("school_census", "school_level_counts", SchoolCountRow, "school_counts"),
    Layout("survey", "canonical", SurveyRow, "survey_responses"),
    Layout("vital_events", "canonical", VitalEventsRow, "vital_events"),
    Layout("asylum", "allocations", AsylumAllocationRow, "asylum_allocations"),
    Layout("asylum", "home_office_asy_d11", AsylumSupportRow, "asylum_support"),
    Layout("base_population", "long", BasePopulationRow, "base_population", reshape="base_population_long.sql",
           also=(("base_population_sya", "base_population_long_sya.sql"),)),
    Layout("base_population", "ons_mye_wide", OnsMidYearWideRow, "base_population",
           unpivot="base_population_wide_unpivot.sql", reshape="base_population_bands.sql",
           also=(("base_population_sya", "base_population_single_years.sql"),)),
    Layout("base_population", "ons_sape_wide", OnsSapeWideRow, "base_population",
           unpivot="base_population_sape_unpivot.sql", reshape="base_population_bands.sql",
           also=(("base_population_sya", "base_population_single_years.sql"),)),
    Layout("incidents", "canonical", IncidentRow, "incidents"),
)

# sources in load order: geography first, since every other source is placed through it
SOURCES: tuple[str, ...] = tuple(dict.fromkeys(layout.source for layout in LAYOUTS))


def layouts_for(source: str) -> list[Layout]:
    return [layout for layout in LAYOUTS if layout.source == source]
