"""The demo district generator: file forms, determinism and the truths it must plant."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
from pathlib import Path

import pandas as pd
import pytest

from pipeline.config import DemoSettings
from pipeline.demo import RATES, generate_district
from pipeline.demo.frame import FRAME_DIR

SMALL = dict(n_lsoas=12, scale=0.3, quarters=4)

INPUT_COLUMNS = {  # shared/spec/inputs.md
    "gp_register": ["extract_date", "patient_id", "practice_code", "postcode", "sex", "date_of_birth",
                    "registration_date", "from_abroad", "ethnic_category"],
    "gp_movements": ["patient_id", "practice_code", "postcode", "event_date", "event", "reason"],
    "school_census": ["census_date", "pupil_id", "urn", "school_name", "phase", "nc_year", "sex", "ethnicity",
                      "first_language", "fsm_eligible", "entry_date", "home_postcode"],
    "survey": ["survey_id", "respondent_id", "interview_date", "area", "sex", "age_band", "ethnic_group",
               "religion", "disability", "q_get_on", "q_belong", "q_influence", "q_mix_home", "q_mix_work",
               "q_mix_school", "q_mix_pub", "q_mix_group", "q_mix_worship", "q_mix_shops"],
    "vital_events": ["period_start", "period_end", "area_code", "sex", "age_band", "births", "deaths"],
    "asylum": ["period_start", "period_end", "area_code", "persons_allocated"],
    "incidents": ["period_start", "period_end", "area_code", "category", "count"],
}


def header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as f:
        return next(csv.reader(f))


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def district(tmp_path_factory):
    folder = tmp_path_factory.mktemp("district")
    summary = generate_district(DemoSettings(**SMALL), folder)
    return folder, summary


@pytest.fixture(scope="module")
def register(district):
    folder, _ = district
    files = sorted((folder / "raw/gp_register").glob("gp_register_*.csv"))
    return {f: pd.read_csv(f, dtype=str, keep_default_na=False) for f in files}


def read_truth(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / "truth" / name)


# --- determinism -----------------------------------------------------------------------------

def test_same_seed_gives_identical_files(district, tmp_path):
    folder, _ = district
    generate_district(DemoSettings(**SMALL), tmp_path)
    assert digest(tmp_path / "raw") == digest(folder / "raw")
    assert digest(tmp_path / "truth") == digest(folder / "truth")


def test_another_seed_gives_another_district(district, tmp_path):
    folder, summary = district
    generate_district(DemoSettings(**SMALL, seed=summary["seed"] + 1), tmp_path)
    ours, theirs = digest(folder / "raw"), digest(tmp_path / "raw")
    assert ours.keys() == theirs.keys()
    name = "gp_register/gp_register_2022-06-30.csv"
    assert ours[name] != theirs[name]
    assert ours["survey/residents_survey.csv"] != theirs["survey/residents_survey.csv"]


# --- file forms ------------------------------------------------------------------------------

def test_raw_files_have_exactly_the_input_columns(district):
    folder, _ = district
    raw = folder / "raw"
    for source, columns in INPUT_COLUMNS.items():
        files = sorted((raw / source).glob("*.csv"))
        assert files, source
        for f in files:
            assert header(f) == columns, f
    frame_mye = header(FRAME_DIR / "trafford_mye2022_lsoa_sya.csv")
    assert header(raw / "base_population/ons_mye_2022_lsoa_sya.csv") == frame_mye
    assert header(raw / "geography/postcode_directory.csv") == header(FRAME_DIR / "trafford_postcodes.csv")


def test_files_say_they_are_synthetic(district):
    folder, summary = district
    for readme in (folder / "raw/README.md", folder / "truth/README.md"):
        assert "SYNTHETIC DEMO DATA" in readme.read_text(encoding="utf-8")
    assert "SYNTHETIC" in summary["note"]
    assert (folder / "truth/manifest.json").read_text(encoding="utf-8").count("SYNTHETIC") >= 1


def test_one_extract_per_date_with_unique_pseudonymous_ids(register, district):
    _, summary = district
    assert [f.stem.removeprefix("gp_register_") for f in register] == summary["extract_dates"]
    for path, extract in register.items():
        assert extract["extract_date"].unique().tolist() == [path.stem.removeprefix("gp_register_")]
        assert extract["patient_id"].is_unique
        assert not extract["patient_id"].str.fullmatch(r"\d+").any()
        assert extract["patient_id"].str.fullmatch(r"P[0-9A-F]{10}").all()


def test_register_codes_are_untidy_but_valid(register):
    extract = pd.concat(register.values())
    assert set(extract["sex"]) <= {"M", "F", "1", "2", "U", "I"}
    assert extract["sex"].isin(["M", "F"]).mean() > 0.95
    assert set(extract["from_abroad"]) <= {"Y", "N", ""}
    assert set(extract["ethnic_category"]) <= set("ABCDEFGHJKLMNPRSZ") | {""}
    month_only = extract["date_of_birth"].str.fullmatch(r"\d{4}-\d{2}")
    assert 0.005 < month_only.mean() < 0.05
    assert (extract["date_of_birth"].str.fullmatch(r"\d{4}-\d{2}-\d{2}") | month_only).all()
    canonical = extract["postcode"].str.fullmatch(r"[A-Z]{1,2}\d{1,2}[A-Z]? \d[A-Z]{2}")
    assert 0.8 < canonical.mean() < 0.99


def test_patients_are_stable_across_extracts(register):
    first, last = (set(x["patient_id"]) for x in (list(register.values())[0], list(register.values())[-1]))
    assert len(first & last) > 0.8 * len(first)


def test_movements_use_the_spec_reasons(district):
    folder, _ = district
    moves = pd.read_csv(folder / "raw/gp_movements/gp_movements.csv")
    reg = moves[moves["event"] == "registration"]
    dereg = moves[moves["event"] == "deregistration"]
    assert len(reg) + len(dereg) == len(moves)
    assert set(reg["reason"]) <= {"birth", "from_abroad", "transfer_in", "other"}
    assert set(dereg["reason"]) <= {"death", "emigration", "transfer", "list_cleaning", "other"}
    assert {"birth", "transfer_in", "from_abroad"} <= set(reg["reason"])
    assert {"death", "transfer", "list_cleaning"} <= set(dereg["reason"])


def test_school_census_pupils(district):
    folder, summary = district
    files = sorted((folder / "raw/school_census").glob("*.csv"))
    assert [f.stem.removeprefix("school_census_") for f in files] == summary["census_dates"]
    for f in files:
        census = pd.read_csv(f, dtype=str)
        assert census["pupil_id"].is_unique
        assert census["urn"].str.fullmatch(r"1\d{5}").all()
        assert set(census["nc_year"]) <= {"R"} | {str(k) for k in range(1, 12)}
        assert (census["entry_date"] <= census["census_date"]).all()
        assert set(census["phase"]) <= {"primary", "secondary", "special"}


def test_survey_answer_codes(district):
    folder, _ = district
    survey = pd.read_csv(folder / "raw/survey/residents_survey.csv")
    assert survey["respondent_id"].is_unique
    allowed = {"q_get_on": range(1, 8), "q_belong": range(1, 6), "q_influence": range(1, 6)}
    allowed.update({q: range(1, 7) for q in INPUT_COLUMNS["survey"] if q.startswith("q_mix_")})
    for question, codes in allowed.items():
        answers = survey[question].dropna()
        assert ((answers.isin(list(codes))) | (answers == 9)).all(), question
        assert answers.isin(list(codes)).mean() > 0.98


def test_people_live_at_postcodes_of_the_directory(district, register):
    folder, _ = district
    directory = set(pd.read_csv(folder / "raw/geography/postcode_directory.csv")["postcode"])
    survey = pd.read_csv(folder / "raw/survey/residents_survey.csv")
    assert survey["area"].isin(directory).all()
    for f in (folder / "raw/school_census").glob("*.csv"):
        assert pd.read_csv(f)["home_postcode"].isin(directory).all()
    for extract in register.values():
        tidy = extract["postcode"].str.upper().str.replace(" ", "").str.replace(r"(\d[A-Z]{2})$", r" \1", regex=True)
        assert tidy.isin(directory).all()


def test_aggregates_are_non_negative_integers(district):
    folder, _ = district
    for name, columns in (("vital_events/vital_events.csv", ["births", "deaths"]),
                          ("asylum/asylum_allocations.csv", ["persons_allocated"]),
                          ("incidents/incidents.csv", ["count"])):
        table = pd.read_csv(folder / "raw" / name)
        for column in columns:
            assert pd.api.types.is_integer_dtype(table[column]) and (table[column] >= 0).all(), name


def test_geography_copies_the_frame_rows(district):
    folder, summary = district
    ours = pd.read_csv(folder / "raw/geography/postcode_directory.csv", dtype=str, keep_default_na=False)
    frame = pd.read_csv(FRAME_DIR / "trafford_postcodes.csv", dtype=str, keep_default_na=False)
    kept = sorted(frame["lsoa_code"].unique())[:SMALL["n_lsoas"]]
    expected = frame[frame["lsoa_code"].isin(kept)].reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, expected)
    assert ours["lsoa_code"].nunique() == summary["lsoas"] == SMALL["n_lsoas"]


# --- the truths the district plants ----------------------------------------------------------

def test_base_truth_is_near_the_scaled_mye_and_the_published_base_errs(district):
    folder, _ = district
    truth = read_truth(folder, "population_lsoa.csv")
    truth = truth[truth["reference_date"] == "2022-06-30"].groupby("lsoa_code")["population"].sum()
    mye = pd.read_csv(FRAME_DIR / "trafford_mye2022_lsoa_sya.csv")
    mye = mye[(mye["sex"] == "Persons") & mye["area_code"].isin(truth.index)].set_index("area_code")["all_ages"]
    scaled = mye * SMALL["scale"]
    assert len(truth) == SMALL["n_lsoas"]
    assert (truth / scaled - 1).abs().max() < 0.03          # integerising only
    published = pd.read_csv(folder / "raw/base_population/ons_mye_2022_lsoa_sya.csv")
    persons = published[published["sex"] == "Persons"].set_index("area_code")["all_ages"]
    error = persons / truth - 1
    assert abs(persons.sum() / truth.sum() - 1) < 0.02
    assert error.abs().max() < 0.3 and error.abs().mean() > 0.003   # perturbed, not copied
    by_sex = published[published["sex"] != "Persons"].groupby("area_code")[["all_ages", "0", "90+"]].sum()
    assert (by_sex["all_ages"] == persons.loc[by_sex.index]).all()


def test_list_inflation_at_base_is_highest_where_churn_is_high(district):
    folder, summary = district
    reg = read_truth(folder, "register_truth.csv").merge(read_truth(folder, "lsoa_churn.csv"), on="lsoa_code")
    base = reg[reg["reference_date"] == "2022-06-30"].groupby("churn_level")[["registered", "resident"]].sum()
    inflation = base["registered"] / base["resident"] - 1
    assert inflation["high"] > inflation["medium"] > inflation["low"] > 0
    assert 0.12 < inflation["high"] < 0.35 and inflation["low"] < 0.08
    assert summary["list_inflation_at_base"]["high"] == pytest.approx(inflation["high"], abs=1e-3)


def test_turnover_follows_churn_level(district):
    folder, _ = district
    churn = read_truth(folder, "lsoa_churn.csv").groupby("churn_level")["annual_turnover"].mean()
    assert churn["high"] > churn["medium"] > churn["low"]


def test_survey_non_response_under_represents_young_men(district):
    folder, summary = district
    survey = pd.read_csv(folder / "raw/survey/residents_survey.csv")
    population = read_truth(folder, "population_lsoa.csv")
    population = population[population["reference_date"] == summary["survey_date"]]

    def representation(sex: str, bands: list[str], survey_band: str) -> float:
        in_survey = ((survey["sex"] == sex) & (survey["age_band"] == survey_band)).mean()
        adults = population[~population["age_band"].isin(["0-4", "5-9", "10-14", "15-19"])]["population"].sum()
        in_population = population[(population["sex"] == sex) & population["age_band"].isin(bands)]["population"].sum()
        return in_survey / (in_population / adults)

    young_men = representation("M", ["25-29", "30-34"], "25-34")
    older_women = representation("F", ["65-69", "70-74"], "65-74")
    assert young_men < 0.8 < older_women
    assert ((survey["sex"] == "M") & (survey["age_band"] == "16-24")).sum() < \
        ((survey["sex"] == "F") & (survey["age_band"] == "16-24")).sum()


def test_survey_truth_covers_every_indicator_by_ward_and_la(district):
    folder, _ = district
    expected = read_truth(folder, "survey_expected.csv")
    wards = read_truth(folder, "population_ward.csv")["ward_code"].unique()
    for indicator in ("psa21_get_on", "psa21_belong", "psa21_meaningful_interaction", "psa21_influence"):
        rows = expected[expected["indicator_id"] == indicator]
        assert set(rows[rows["area_type"] == "ward"]["area_code"]) == set(wards)
        assert (rows["area_type"] == "la").sum() == 1
        assert rows["expected_value"].between(0, 100).all()


def test_truth_population_by_ward_matches_by_lsoa(district):
    folder, _ = district
    lsoa = read_truth(folder, "population_lsoa.csv").groupby("reference_date")["population"].sum()
    ward = read_truth(folder, "population_ward.csv").groupby("reference_date")["population"].sum()
    ethnicity = read_truth(folder, "ethnicity_ward.csv").groupby("reference_date")["population"].sum()
    pd.testing.assert_series_equal(lsoa, ward)
    pd.testing.assert_series_equal(lsoa, ethnicity)


# --- raw data is read-only ---------------------------------------------------------------------

def test_refuses_to_write_into_a_raw_folder_that_holds_files(tmp_path):
    existing = tmp_path / "raw/gp_register/partner_extract.csv"
    existing.parent.mkdir(parents=True)
    existing.write_text("extract_date,patient_id\n", encoding="utf-8")
    summary = generate_district(DemoSettings(**SMALL), tmp_path)
    assert summary["skipped"] is True
    assert [p for p in (tmp_path / "raw").rglob("*") if p.is_file()] == [existing]
    assert existing.read_text(encoding="utf-8") == "extract_date,patient_id\n"
    assert not (tmp_path / "truth").exists()


def test_writes_into_an_empty_raw_folder(tmp_path):
    (tmp_path / "raw/gp_register").mkdir(parents=True)
    summary = generate_district(DemoSettings(**SMALL, survey_size=0), tmp_path)
    assert summary["skipped"] is False
    assert any((tmp_path / "raw/gp_register").glob("gp_register_*.csv"))
    assert not (tmp_path / "raw/survey").exists()
    assert not list(tmp_path.glob(".demo-staging-*"))
    assert sum(1 for _ in (tmp_path / "raw").rglob("*.csv")) == len(summary["raw_files"])


def test_out_of_area_patients_can_be_switched_on(tmp_path):
    rates = dataclasses.replace(RATES, outside_patient_share=0.02, keep_practice_on_leaving=0.05)
    generate_district(DemoSettings(n_lsoas=3, scale=0.3, quarters=4, survey_size=0), tmp_path, rates=rates)
    directory = set(pd.read_csv(tmp_path / "raw/geography/postcode_directory.csv")["postcode"])
    extract = pd.read_csv(tmp_path / "raw/gp_register/gp_register_2022-06-30.csv")
    tidy = extract["postcode"].str.upper().str.replace(" ", "").str.replace(r"(\d[A-Z]{2})$", r" \1", regex=True)
    assert 0.9 < tidy.isin(directory).mean() < 0.995
