"""Validate: batch expectations pass on clean data, and each kind of corruption fails exactly its
own expectation on its own batch; great-expectations writes the data docs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from conftest import REGISTER_HEADER, first_postcodes, make_raw, write
from pipeline.config import load_settings
from pipeline.ingest import ingest_raw
from pipeline.validate import validate_batches
from schemas.contracts import AGE_BANDS_5Y

REGISTER_1 = "gp_register/gp_register_2024-01-01.csv"
REGISTER_2 = "gp_register/gp_register_2024-04-01.csv"
BASE = "base_population/base.csv"
LA = "E08000009"
LSOAS = ("E01006074", "E01006075", "E01006076")


class Loaded:
    """A tiny raw folder ingested into an in-memory database, ready to corrupt and validate."""

    def __init__(self, root: Path, **overrides):
        data = make_raw(root / "data")
        complete_base_population(data)
        self.settings = load_settings(data_dir=data, **overrides)
        self.con = duckdb.connect()
        self.files = ingest_raw(self.con, self.settings).files
        self.out = root / "out"

    def sql(self, statement: str) -> Loaded:
        self.con.execute(statement)
        return self

    def validate(self) -> list[dict]:
        return validate_batches(self.con, self.settings, self.files, self.out)


def complete_base_population(data: Path) -> None:
    """The shared fixture's base population has two age bands; validation expects all 18."""
    lines = ["reference_date,area_code,sex,age_band,population,source"]
    lines += [f"2023-06-30,{lsoa},{sex},{band},40,ons-mye-2023" for lsoa in LSOAS for sex in "MF" for band in AGE_BANDS_5Y]
    write(data / "raw" / "base_population" / "base.csv", "\n".join(lines) + "\n")


def failures(results: list[dict]) -> set[tuple[str, str]]:
    return {(r["expectation"], r["batch"]) for r in results if not r["success"]}


def result(results: list[dict], expectation: str, batch: str) -> dict:
    [found] = [r for r in results if r["expectation"] == expectation and r["batch"] == batch]
    return found


def add_patients(loaded: Loaded, n: int, lsoa: str, file: str, prefix: str) -> None:
    """`n` synthetic patients in `lsoa` on the extract of `file` (its date is in the name)."""
    date = file.rsplit("_", 1)[1].removesuffix(".csv")
    loaded.sql(f"""INSERT INTO gp_register (extract_date, patient_id, practice_code, postcode, sex, lsoa_code, la_code,
                                            source_file, source_line)
                   SELECT DATE '{date}', '{prefix}' || i, 'P91003', 'WA14 1AB', 'F', '{lsoa}', '{LA}', '{file}', 100 + i
                   FROM range({n}) AS t(i)""")


@pytest.fixture
def loaded(tmp_path) -> Loaded:
    return Loaded(tmp_path)


def test_clean_data_passes_and_writes_data_docs_and_results(loaded):
    results = loaded.validate()
    assert failures(results) == set()
    assert (loaded.out / "data_docs" / "index.html").is_file()
    assert list((loaded.out / "data_docs" / "validations").rglob("*.html"))
    assert json.loads((loaded.out / "validation_results.json").read_text()) == results
    for r in results:
        assert set(r) == {"batch", "expectation", "success", "observed", "details"}
        assert isinstance(r["success"], bool) and isinstance(r["details"], str)
    by_batch = {}
    for r in results:
        by_batch.setdefault(r["batch"], set()).add(r["expectation"])
    assert by_batch[REGISTER_1] == {"rows_accounted_for", "one_row_per_patient", "one_extract_date", "postcode_match"}
    # the later extract is also compared with the one before it
    assert by_batch[REGISTER_2] == by_batch[REGISTER_1] | {"lsoa_list_change", "la_list_change"}
    assert by_batch[BASE] == {"rows_accounted_for", "non_negative_population", "all_sex_age_cells"}
    assert result(results, "postcode_match", REGISTER_1)["observed"] == 1.0
    assert result(results, "all_sex_age_cells", BASE)["observed"] == 0


def test_importing_validate_does_not_import_great_expectations():
    code = "import sys, pipeline.validate; assert 'great_expectations' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


def test_duplicate_patient_row_fails_one_row_per_patient(loaded):
    loaded.sql(f"INSERT INTO gp_register SELECT * FROM gp_register WHERE source_file = '{REGISTER_1}' LIMIT 1")
    results = loaded.validate()
    assert failures(results) == {("one_row_per_patient", REGISTER_1)}
    assert result(results, "one_row_per_patient", REGISTER_1)["observed"] == 2  # both rows of the pair
    assert "2 of 5 rows" in result(results, "one_row_per_patient", REGISTER_1)["details"]


def test_repeated_keys_are_taken_from_ingest_only_while_the_table_holds_its_rows(loaded):
    """Ingest quarantines every repeated (extract_date, patient_id), within a file and across files, and records
    the key it checked; validation then skips grouping the keys, but only while each file's rows are exactly the
    rows ingest loaded from it."""
    from pipeline.validate.summaries import _keys_checked_at_ingest, _snapshot_summary

    register = [f for f in loaded.files if f.file in (REGISTER_1, REGISTER_2)]
    assert [f.keys_checked for f in register] == [["extract_date", "patient_id"]] * 2
    key = ("extract_date", "patient_id")
    lines = dict(loaded.con.execute("SELECT source_file, sum(source_line) FROM gp_register GROUP BY 1").fetchall())
    assert [f.lines_loaded_sum for f in register] == [lines[REGISTER_1], lines[REGISTER_2]]
    frame = _snapshot_summary(loaded.con, "gp_register", *key, loaded.files)
    with_lines = frame.assign(lines_sum=frame["batch"].map(lines))
    assert _keys_checked_at_ingest(with_lines, loaded.files, key)
    assert not _keys_checked_at_ingest(with_lines, loaded.files, ("census_date", "pupil_id"))  # another key
    assert not _keys_checked_at_ingest(with_lines, [], key)  # no reports: counted
    # as many rows as ingest loaded, but one of them a copy of another line's row under a repeated key
    loaded.sql(f"DELETE FROM gp_register WHERE source_file = '{REGISTER_1}' AND patient_id = 'Pa0001'")
    loaded.sql(f"""INSERT INTO gp_register SELECT * REPLACE ('Pa0002' AS patient_id)
                   FROM gp_register WHERE source_file = '{REGISTER_1}' AND patient_id = 'Pa0003'""")
    frame = _snapshot_summary(loaded.con, "gp_register", *key, loaded.files)
    assert frame.set_index("batch").loc[REGISTER_1, "duplicate_rows"] == 2  # counted, not taken from ingest


def test_duplicate_across_files_fails_both_files(loaded):
    loaded.sql(f"""INSERT INTO gp_register SELECT * REPLACE ('gp_register/resent.csv' AS source_file)
                   FROM gp_register WHERE source_file = '{REGISTER_2}' AND patient_id = 'Pa0001'""")
    assert failures(loaded.validate()) == {("one_row_per_patient", REGISTER_2),
                                           ("one_row_per_patient", "gp_register/resent.csv")}


def test_second_extract_date_in_a_file_fails_one_extract_date(loaded):
    loaded.sql(f"""INSERT INTO gp_register SELECT * REPLACE (DATE '2024-02-01' AS extract_date, 'Pz0001' AS patient_id)
                   FROM gp_register WHERE source_file = '{REGISTER_1}' LIMIT 1""")
    results = loaded.validate()
    assert failures(results) == {("one_extract_date", REGISTER_1)}
    assert "2024-01-01 to 2024-02-01" in result(results, "one_extract_date", REGISTER_1)["details"]


def test_negative_count_fails_non_negative(loaded):
    loaded.sql("""INSERT INTO vital_events (period_start, period_end, area_code, area_type, births, deaths, source_file)
                  VALUES (DATE '2024-01-01', DATE '2024-03-31', 'E01006074', 'lsoa', -3, 2, 'vital_events/q1.csv'),
                         (DATE '2024-01-01', DATE '2024-03-31', 'E01006075', 'lsoa', 4, NULL, 'vital_events/q1.csv'),
                         (DATE '2024-04-01', DATE '2024-06-30', 'E01006074', 'lsoa', 5, 1, 'vital_events/q2.csv')""")
    results = loaded.validate()
    assert failures(results) == {("non_negative_births", "vital_events/q1.csv")}
    assert result(results, "non_negative_births", "vital_events/q1.csv")["observed"] == -3
    assert result(results, "non_negative_deaths", "vital_events/q1.csv")["success"]


@pytest.mark.parametrize("table, column", [("asylum_allocations", "persons_allocated"), ("incidents", "count"),
                                           ("gp_counts", "patients")])
def test_negative_counts_in_other_tables(loaded, table, column):
    loaded.sql(f"""INSERT INTO {table} (lsoa_code, "{column}", source_file) VALUES
                   ('E01006074', 7, '{table}/a.csv'), ('E01006075', -1, '{table}/b.csv')""")
    assert failures(loaded.validate()) == {(f"non_negative_{column}", f"{table}/b.csv")}


def test_lsoa_list_jump_fails_lsoa_list_change_only(loaded):
    # 600 patients move from one LSOA to another between the extracts: both LSOAs jump, the LA total does not
    add_patients(loaded, 600, "E01006074", REGISTER_1, "Mv")
    add_patients(loaded, 600, "E01006076", REGISTER_2, "Mv")
    results = loaded.validate()
    assert failures(results) == {("lsoa_list_change", REGISTER_2)}
    jump = result(results, "lsoa_list_change", REGISTER_2)
    assert jump["observed"] == 0.0  # share of the checked LSOAs within the bound
    assert "2 of 2" in jump["details"] and "E01006074: 600 → 0" in jump["details"] and "E01006076: 0 → 600" in jump["details"]
    assert result(results, "la_list_change", REGISTER_2)["observed"] == 0.0


def _many_lsoas(loaded: Loaded, n: int = 25, size: int = 600) -> None:
    for k in range(n):
        for file in (REGISTER_1, REGISTER_2):
            add_patients(loaded, size, f"E0199{k:04d}", file, f"L{k}_")


def test_one_area_jumping_among_many_is_noted_but_passes(loaded):
    _many_lsoas(loaded)
    add_patients(loaded, 150, "E01990003", REGISTER_2, "New")  # +25% in 1 of 25 LSOAs (4% < 5%)
    results = loaded.validate()
    assert failures(results) == set()
    noted = result(results, "lsoa_list_change", REGISTER_2)
    assert noted["observed"] == pytest.approx(24 / 25)
    assert "1 of 25" in noted["details"] and "E01990003: 600 → 750 (+25.0%)" in noted["details"]


def test_la_total_jump_fails_la_list_change(loaded):
    _many_lsoas(loaded)
    add_patients(loaded, 1800, "E01990003", REGISTER_2, "New")  # the LA total grows by 12%
    results = loaded.validate()
    assert failures(results) == {("la_list_change", REGISTER_2)}
    assert result(results, "la_list_change", REGISTER_2)["observed"] == pytest.approx(1800 / 15004, abs=1e-6)


def test_list_change_bounds_come_from_settings(tmp_path):
    loaded = Loaded(tmp_path, validation={"max_list_change": 0.3, "list_change_mostly": 1.0})
    _many_lsoas(loaded)
    add_patients(loaded, 150, "E01990003", REGISTER_2, "New")  # +25%: within 30%
    add_patients(loaded, 210, "E01990004", REGISTER_2, "New2_")  # +35%: one area out, and mostly is 100%
    assert failures(loaded.validate()) == {("lsoa_list_change", REGISTER_2)}


def test_school_census_duplicates_and_dates(loaded):
    loaded.sql("""INSERT INTO school_census (census_date, pupil_id, urn, lsoa_code, source_file) VALUES
                  (DATE '2024-01-18', 'U1', '100001', 'E01006074', 'school_census/a.csv'),
                  (DATE '2024-01-18', 'U1', '100001', 'E01006074', 'school_census/a.csv'),
                  (DATE '2024-01-18', 'U2', '100001', 'E01006074', 'school_census/b.csv'),
                  (DATE '2024-05-16', 'U3', '100001', 'E01006074', 'school_census/b.csv'),
                  (DATE '2024-10-03', 'U1', '100001', 'E01006074', 'school_census/c.csv')""")
    assert failures(loaded.validate()) == {("one_row_per_pupil", "school_census/a.csv"),
                                           ("one_census_date", "school_census/b.csv")}


def test_survey_duplicate_respondent_and_weights(loaded):
    loaded.sql("""INSERT INTO survey_responses (survey_id, respondent_id, lsoa_code, weight, source_file) VALUES
                  ('S2024', 'R1', 'E01006074', 1.2, 'survey/a.csv'),
                  ('S2024', 'R1', 'E01006074', 0.8, 'survey/a.csv'),
                  ('S2023', 'R1', 'E01006074', NULL, 'survey/b.csv'),
                  ('S2023', 'R2', 'E01006074', 0, 'survey/b.csv'),
                  ('S2025', 'R1', 'E01006074', NULL, 'survey/c.csv')""")
    results = loaded.validate()
    assert failures(results) == {("unique_respondent", "survey/a.csv"), ("positive_weight", "survey/b.csv")}
    assert result(results, "positive_weight", "survey/c.csv")["observed"] is None  # no weights given: nothing to check


def test_base_population_missing_cell_and_negative_population(loaded):
    loaded.sql("DELETE FROM base_population WHERE lsoa_code = 'E01006075' AND sex = 'F' AND age_band = '85+'")
    loaded.sql("UPDATE base_population SET population = -1 WHERE lsoa_code = 'E01006074' AND sex = 'M' AND age_band = '0-4'")
    results = loaded.validate()
    assert failures(results) == {("all_sex_age_cells", BASE), ("non_negative_population", BASE)}
    assert "E01006075 2023-06-30 (35 of 36 cells)" in result(results, "all_sex_age_cells", BASE)["details"]


def test_unknown_postcodes_fail_postcode_match(tmp_path):
    data = make_raw(tmp_path / "data")
    complete_base_population(data)
    pc = first_postcodes(1)[0]
    rows = [f"2024-07-01,Pa{i:04d},P91003,{pc if i > 1 else 'ZZ99 9ZZ'},F,1980-01-01,2000-01-01,N,A" for i in range(1, 11)]
    write(data / "raw" / "gp_register" / "gp_register_2024-07-01.csv", "\n".join([REGISTER_HEADER, *rows]) + "\n")
    settings = load_settings(data_dir=data)
    con = duckdb.connect()
    files = ingest_raw(con, settings).files
    results = validate_batches(con, settings, files, tmp_path / "out")
    third = "gp_register/gp_register_2024-07-01.csv"
    assert failures(results) == {("postcode_match", third)}
    assert result(results, "postcode_match", third)["observed"] == 0.9
    assert result(results, "rows_accounted_for", third)["success"]  # the quarantined row is accounted for


def test_rows_not_accounted_for_and_skipped_files(tmp_path):
    data = make_raw(tmp_path / "data")
    complete_base_population(data)
    shutil.copy(data / "raw" / REGISTER_1, data / "raw" / "gp_register" / "resent_copy.csv")  # skipped as a duplicate
    settings = load_settings(data_dir=data)
    con = duckdb.connect()
    files = ingest_raw(con, settings).files
    assert any(f.skipped for f in files)
    next(f for f in files if f.file == BASE).rows_read += 1
    results = validate_batches(con, settings, files, tmp_path / "out")
    assert failures(results) == {("rows_accounted_for", BASE)}
    assert "gp_register/resent_copy.csv" not in {r["batch"] for r in results}


def test_a_broken_table_is_reported_not_raised(loaded):
    loaded.sql("""INSERT INTO survey_responses (survey_id, respondent_id, weight, source_file)
                  VALUES ('S', 'R1', 1.0, 'survey/a.csv')""")
    loaded.sql("ALTER TABLE survey_responses DROP COLUMN weight")
    results = loaded.validate()
    assert failures(results) == {("summary", "survey_responses")}
    assert "could not be computed" in result(results, "summary", "survey_responses")["details"]
    assert (loaded.out / "data_docs" / "index.html").is_file()
