"""Writing the raw extracts and the truth: the file forms of shared/spec/inputs.md.

Columns are built as numpy / Arrow arrays and written by DuckDB's COPY (no Python loop over
rows). Extracts carry the untidiness real ones have: postcodes in mixed case and spacing,
a few numeric or unknown sex codes, some dates of birth with the day suppressed, blank
Flag 4 fields from some practices' systems.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.demo.frame import AGE_COLUMNS, Frame
from pipeline.demo.population import DFE_CODES, LANGUAGES, RECORDED_BLANK, People
from pipeline.demo.rates import NHS_ETHNIC_CODES
from pipeline.demo.register import REASONS, REGISTRATION
from pipeline.demo.schools import NC_YEAR_LABELS, PHASES, Schools

SYNTHETIC_NOTE = "SYNTHETIC DEMO DATA — no real person"
MASK40 = (1 << 40) - 1
HEX = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)


def write_csv(path: Path, columns: dict) -> int:
    """Write columns (numpy arrays, Arrow arrays or scalars) as a CSV; returns the row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = max(len(v) for v in columns.values() if not np.isscalar(v) and not isinstance(v, str))
    arrays = {name: _to_arrow(value, n) for name, value in columns.items()}
    con = duckdb.connect()
    try:
        con.execute("SET threads = 2")
        con.register("extract", pa.table(arrays))
        con.execute(f"COPY extract TO '{path}' (HEADER, DELIMITER ',')")
    finally:
        con.close()
    return n


def _to_arrow(value, n: int):
    if isinstance(value, (pa.Array, pa.ChunkedArray)):
        return value
    if isinstance(value, str) or np.isscalar(value):
        return pa.array(np.full(n, value, dtype=object))
    if isinstance(value, np.ma.MaskedArray):
        return pa.array(value.data, mask=np.ma.getmaskarray(value))
    value = np.asarray(value)
    if value.dtype.kind == "M":
        return pa.array(value.astype("M8[D]"))
    return pa.array(value)


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def write_json(path: Path, payload: dict) -> None:
    write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


# --- identifiers and untidy codes --------------------------------------------------------

def pseudonym_numbers(index: np.ndarray, seed: int, key: int) -> np.ndarray:
    """A keyed bijection of row indices onto 40-bit numbers: unique, random-looking, stable."""
    x = (np.asarray(index, dtype=np.uint64) + np.uint64((seed * 0x9E3779B1 + key) & MASK40)) & np.uint64(MASK40)
    for shift, mult in ((21, 0x5DEECE66D), (17, 0x2545F4914F), (19, 0xD6E8FEB86659)):
        x ^= x >> np.uint64(shift)
        x = (x * np.uint64(mult | 1)) & np.uint64(MASK40)
    return x


def hex_ids(numbers: np.ndarray, prefix: str) -> np.ndarray:
    """prefix + 10 upper-case hex digits, so an id is never an NHS-number-like run of digits."""
    nibbles = (numbers[:, None] >> (np.arange(36, -1, -4, dtype=np.uint64))[None, :]) & np.uint64(15)
    chars = np.concatenate([np.full((len(numbers), 1), ord(prefix), dtype=np.uint8),
                            HEX[nibbles.astype(np.intp)]], axis=1)
    return np.ascontiguousarray(chars).view(f"S{chars.shape[1]}").ravel().astype(str)


def pseudonymise(index: np.ndarray, seed: int, prefix: str, key: int) -> np.ndarray:
    return hex_ids(pseudonym_numbers(index, seed, key), prefix)


def untidy_postcodes(postcode: np.ndarray, frame: Frame, rng, tidy_share: float = 0.88) -> pa.DictionaryArray:
    """Postcodes as extracts hold them: mostly 'M15 4AB', some 'M154AB', 'm15 4ab', 'm154ab'."""
    base = frame.pc_code.astype(str)
    no_space = np.char.replace(base, " ", "")
    variants = np.concatenate([base, no_space, np.char.lower(base), np.char.lower(no_space)])
    rest = (1 - tidy_share) / 12
    variant = rng.choice(4, len(postcode), p=[tidy_share, 5 * rest, 5 * rest, 2 * rest])
    return _dictionary(variant * len(base) + postcode, variants)


def _dictionary(indices: np.ndarray, values, mask=None) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(np.asarray(indices, dtype=np.int32), mask=mask),
                                          pa.array(np.asarray(values, dtype=object)))


def _dob_text(dob: np.ndarray, month_only: np.ndarray) -> np.ndarray:
    return np.where(month_only, np.datetime_as_string(dob, unit="M"), np.datetime_as_string(dob, unit="D"))


# --- raw extracts ----------------------------------------------------------------------------

def write_register_extract(path: Path, people: People, frame: Frame, on, seed: int,
                           blank_flag_practices: np.ndarray, rng) -> int:
    """One GP register snapshot: everyone on a list on the extract date, by practice."""
    idx = np.flatnonzero(people.reg_practice >= 0)
    numbers = pseudonym_numbers(idx, seed, 1)
    order = np.lexsort((numbers, people.reg_practice[idx]))
    idx, numbers = idx[order], numbers[order]
    practice = people.reg_practice[idx]
    sex_code = np.where(people.sex_numeric[idx], 2 + people.sex[idx], people.sex[idx])
    sex_code = np.where(people.sex_unknown[idx], 4 + (idx % 5 == 0), sex_code)
    flag = np.where(people.reg_from_abroad[idx], 0, 1)
    recorded = people.recorded_ethnic[idx]
    return write_csv(path, {
        "extract_date": np.full(len(idx), np.datetime64(on, "D")),
        "patient_id": hex_ids(numbers, "P"),
        "practice_code": _dictionary(practice, frame.practice_code),
        "postcode": untidy_postcodes(people.reg_postcode[idx], frame, rng),
        "sex": _dictionary(sex_code, ["M", "F", "1", "2", "U", "I"]),
        "date_of_birth": _dob_text(people.dob[idx], people.dob_month_only[idx]),
        "registration_date": people.reg_date[idx],
        "from_abroad": _dictionary(flag, ["Y", "N"], mask=(flag == 1) & blank_flag_practices[practice]),
        "ethnic_category": _dictionary(np.minimum(recorded, len(NHS_ETHNIC_CODES)), list(NHS_ETHNIC_CODES) + ["Z"],
                                       mask=recorded == RECORDED_BLANK),
    })


def write_movements(path: Path, moves: dict, frame: Frame, seed: int, rng) -> int:
    n = len(moves["person"])
    return write_csv(path, {
        "patient_id": pseudonymise(moves["person"], seed, "P", 1) if n else np.empty(0, dtype=object),
        "practice_code": _dictionary(moves["practice"], frame.practice_code),
        "postcode": untidy_postcodes(moves["postcode"].astype(int), frame, rng, tidy_share=0.95),
        "event_date": moves["date"].astype("M8[D]"),
        "event": np.where(moves["event"] == REGISTRATION, "registration", "deregistration").astype(object),
        "reason": np.asarray(REASONS, dtype=object)[moves["reason"].astype(int)],
    })


def write_school_census(path: Path, census: dict, people: People, schools: Schools, frame: Frame, seed: int) -> int:
    idx, school = census["person"], census["school"].astype(int)
    return write_csv(path, {
        "census_date": np.full(len(idx), census["census_date"]),
        "pupil_id": pseudonymise(idx, seed, "U", 2),
        "urn": schools.urn[school],
        "school_name": _dictionary(school, schools.name),
        "phase": np.asarray(PHASES, dtype=object)[schools.phase[school]],
        "nc_year": NC_YEAR_LABELS[census["nc_year"]],
        "sex": np.where(people.sex[idx] == 0, "M", "F").astype(object),
        "ethnicity": np.asarray(DFE_CODES, dtype=object)[people.dfe_ethnic[idx]],
        "first_language": np.asarray(LANGUAGES, dtype=object)[people.language[idx]],
        "fsm_eligible": np.where(people.fsm[idx] == 1, "Y", "N").astype(object),
        "entry_date": people.school_entry[idx],
        "home_postcode": frame.pc_code[people.postcode[idx]],
    })


SURVEY_QUESTIONS = ("q_get_on", "q_belong", "q_influence", "q_mix_home", "q_mix_work", "q_mix_school",
                    "q_mix_pub", "q_mix_group", "q_mix_worship", "q_mix_shops")


def write_survey(path: Path, survey: dict, frame: Frame) -> int:
    n = len(survey["person"])
    respondent = np.char.add("R", np.char.zfill(np.arange(1, n + 1).astype(str), 6))
    return write_csv(path, {
        "survey_id": survey["survey_id"],
        "respondent_id": respondent.astype(object),
        "interview_date": survey["interview_date"],
        "area": frame.pc_code[survey["postcode"]],
        "sex": np.where(survey["sex"] == 0, "M", "F").astype(object),
        "age_band": survey["age_band"],
        "ethnic_group": survey["ethnic_group"],
        "religion": survey["religion"],
        "disability": survey["disability"],
        **{q: survey["answers"][q] for q in SURVEY_QUESTIONS},
    })


def write_base_population(path: Path, published: np.ndarray, frame: Frame, period) -> int:
    """The published base in ONS's wide single-year layout (as the frame file): one row per
    LSOA x Females/Males/Persons, columns all_ages, broad ages, then 0 ... 90+."""
    by_sex = {"Males": published[:, 0, :], "Females": published[:, 1, :], "Persons": published.sum(axis=1)}
    rows = frame.mye_rows[["area_code", "area_name", "geography", "sex"]].copy()
    lsoa = np.searchsorted(frame.lsoa_code, rows["area_code"].to_numpy())
    values = np.stack([by_sex[s][i] for s, i in zip(rows["sex"], lsoa)]).astype(np.int64)
    table = pd.DataFrame(values, columns=AGE_COLUMNS)
    out = {"period": np.full(len(rows), np.datetime64(period, "D")), **{c: rows[c].to_numpy() for c in rows},
           "all_ages": values.sum(axis=1), "aged_0_to_15": values[:, :16].sum(axis=1),
           "aged_16_to_64": values[:, 16:65].sum(axis=1), "aged_65_and_over": values[:, 65:].sum(axis=1),
           **{c: table[c].to_numpy() for c in AGE_COLUMNS}}
    return write_csv(path, out)


def write_geography(path: Path, frame: Frame) -> int:
    """The kept rows of the frame's postcode directory, unchanged."""
    return write_csv(path, {c: frame.postcode_rows[c].to_numpy(dtype=object) for c in frame.postcode_rows.columns})


RAW_README = f"""# {SYNTHETIC_NOTE}

Every record under this folder was generated by `pipeline.demo` (the demo district
microsimulation). The people, patients, pupils, survey respondents and events are
invented; only the geography (postcodes, LSOAs, wards) and the ONS mid-2022 population
structure the simulation starts from are real published statistics.

Treat the folder as read-only raw data, as partners' extracts would be. The ground truth
the simulation knows is in `../truth/`; no pipeline stage reads it.
"""

TRUTH_README = f"""# {SYNTHETIC_NOTE}

Ground truth of the synthetic demo district written by `pipeline.demo`, for tests and
benchmarks only (no pipeline stage reads it).

| file | contents |
|---|---|
| population_lsoa.csv | true residents by LSOA x sex x ONS 5-year band at every extract date |
| population_ward.csv | the same by ward (the ward of each person's postcode) |
| ethnicity_ward.csv | true residents by ward x broad ethnic group |
| lsoa_churn.csv | each LSOA's churn level and its measured annual turnover |
| register_truth.csv | GP list (by the postcode the practice holds), residents and ghosts per LSOA |
| survey_expected.csv | population values of the PSA 21 indicators the survey estimates |
| manifest.json | settings, seed, rates, counts and the planted events (list cleaning, incident spike) |
"""
