"""Issue 7: the mistakes real extract folders contain, planted one by one (with variants), and the
documented outcome for each: nothing doubled, nothing leaked, nothing silently lost.

Each test plants one fault class in the small hand-written raw folder of conftest.py.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from conftest import REGISTER_HEADER, first_postcodes, write
from pipeline.config import load_settings
from pipeline.db import scalar
from pipeline.ingest import DuplicateAcrossFiles, NothingLoaded, RawFolderError, UnreadableFile, ingest_raw
from pipeline.run import run_pipeline

REGISTER_1 = "gp_register/gp_register_2024-01-01.csv"
SCHOOL_HEADER = ("census_date,pupil_id,urn,school_name,phase,nc_year,sex,ethnicity,first_language,fsm_eligible,"
                 "entry_date,home_postcode")
SURVEY_HEADER = "survey_id,respondent_id,interview_date,area,sex,q_get_on"


def ingest(data: Path, **overrides):
    con = duckdb.connect()
    return con, ingest_raw(con, load_settings(data_dir=data, **overrides))


def report_for(result, name: str):
    return next(f for f in result.files if f.file.endswith(name))


def register_rows(n: int, start: int = 1, extract: str = "2024-07-01", prefix: str = "Pq") -> list[str]:
    pc = first_postcodes(3)
    return [f"{extract},{prefix}{i:04d},P91003,{pc[i % 3]},{'MF'[i % 2]},1980-01-01,2000-01-01,N,A"
            for i in range(start, start + n)]


def edited_copy(src: Path, dst: Path) -> None:
    """A slightly edited older copy of an extract: one patient's postcode and another's sex changed."""
    lines = src.read_text().splitlines()
    lines[1] = lines[1].replace(",M,", ",F,")
    lines[2] = lines[2].replace("P91003", "P91004")
    write(dst, "\n".join(lines) + "\n")


# --- 1. Doubling --------------------------------------------------------------------------

@pytest.mark.parametrize("folder", ["archive", "old copies", "2023"])
def test_a_copy_in_a_subfolder_is_not_read_and_is_listed(mini_data, folder):
    edited_copy(mini_data / "raw" / REGISTER_1, mini_data / "raw" / "gp_register" / folder / "gp_register_old.csv")
    con, result = ingest(mini_data)
    assert scalar(con, "SELECT count(*) FROM gp_register") == 8  # not doubled
    item = next(i for i in result.not_read if i.path == f"gp_register/{folder}/")
    assert item.warning and "read_subfolders" in item.reason
    assert any(f"gp_register/{folder}/" in w for w in result.warnings)


def test_subfolders_read_when_configured_and_a_repeated_patient_stops_the_run(mini_data):
    edited_copy(mini_data / "raw" / REGISTER_1, mini_data / "raw" / "gp_register" / "archive" / "gp_register_old.csv")
    with pytest.raises(DuplicateAcrossFiles, match=r"gp_register/archive/gp_register_old.csv line 2: the same "
                                                   r"extract_date, patient_id was already loaded from "
                                                   r"gp_register/gp_register_2024-01-01.csv line 2"):
        ingest(mini_data, ingest={"read_subfolders": True})


def test_repeats_across_files_can_be_quarantined_instead_never_loaded_twice(mini_data):
    edited_copy(mini_data / "raw" / REGISTER_1, mini_data / "raw" / "gp_register" / "archive" / "gp_register_old.csv")
    con, result = ingest(mini_data, ingest={"read_subfolders": True, "on_duplicate_across_files": "quarantine",
                                            "on_nothing_loaded": "skip"})
    assert scalar(con, "SELECT count(*) FROM gp_register") == 8
    assert scalar(con, "SELECT count(*) FROM (SELECT extract_date, patient_id FROM gp_register GROUP BY ALL HAVING count(*) > 1)") == 0
    report = report_for(result, "gp_register_old.csv")
    assert (report.rows_read, report.rows_loaded, report.quarantined_by_rule) == (4, 0, {"duplicate_across_files": 4})
    q = result.quarantine["gp_register"]
    assert "gp_register/gp_register_2024-01-01.csv line" in q.loc[q["rule"] == "duplicate_across_files", "message"].iloc[0]
    assert any("gp_register_old.csv: none of its 4 rows loaded" in w for w in result.warnings)


def test_a_snapshot_split_across_files_loads_but_an_overlap_between_them_stops(mini_data):
    raw = mini_data / "raw" / "gp_register"
    write(raw / "july_practice_a.csv", "\n".join([REGISTER_HEADER, *register_rows(3, 1)]) + "\n")
    write(raw / "july_practice_b.csv", "\n".join([REGISTER_HEADER, *register_rows(3, 4)]) + "\n")
    con, _ = ingest(mini_data)
    assert scalar(con, "SELECT count(*) FROM gp_register WHERE extract_date = DATE '2024-07-01'") == 6
    write(raw / "july_practice_c.csv", "\n".join([REGISTER_HEADER, *register_rows(2, 6)]) + "\n")  # Pq0006 again
    with pytest.raises(DuplicateAcrossFiles, match="july_practice_c.csv line 2"):
        ingest(mini_data)


def test_a_pupil_twice_in_one_census_across_files_stops(mini_data):
    pc = first_postcodes(1)[0]
    row = f"2024-01-18,U001,123456,Oak,primary,3,F,WBRI,ENG,N,2021-09-01,{pc}"
    write(mini_data / "raw" / "school_census" / "spring.csv", f"{SCHOOL_HEADER}\n{row}\n")
    write(mini_data / "raw" / "school_census" / "spring_resent.csv", f"{SCHOOL_HEADER}\n{row.replace('Oak', 'Oak School')}\n")
    with pytest.raises(DuplicateAcrossFiles, match="census_date, pupil_id"):
        ingest(mini_data)


def test_counts_repeated_in_a_second_file_stop(mini_data):
    header = "period_start,period_end,area_code,sex,age_band,births,deaths\n"
    write(mini_data / "raw" / "vital_events" / "ve.csv", header + "2024-01-01,2024-03-31,E01006074,F,,12,\n")
    write(mini_data / "raw" / "vital_events" / "ve_v2.csv", header + "2024-01-01,2024-03-31,E01006074,F,,13,\n")
    with pytest.raises(DuplicateAcrossFiles, match="ve_v2.csv line 2"):
        ingest(mini_data)


def test_a_second_copy_of_the_base_population_stops(mini_data):
    src = mini_data / "raw" / "base_population" / "base.csv"
    write(src.with_name("base_v2.csv"), src.read_text().replace(",50,", ",51,"))
    with pytest.raises(DuplicateAcrossFiles, match="base_population cell"):
        ingest(mini_data)


# --- 2. NHS numbers -----------------------------------------------------------------------

NHS_FORMS = ["9434765919", "943 476 5919", "943-476-5919", " 943-476-5919 "]


@pytest.mark.parametrize("form", NHS_FORMS)
def test_nhs_numbers_are_refused_in_any_form_and_never_written(mini_data, form):
    pc = first_postcodes(1)[0]
    lines = [REGISTER_HEADER,
             f"2024-07-01,{form},P91003,{pc},M,1980-01-01,2000-01-01,N,A",        # alone
             f"2024-07-01,{form},P91003,{pc},M,1980-13-01,2000-01-01,N,A",        # with a bad date too
             f"2024-07-01,{form},P91003,{pc}",                                    # in a short row
             *register_rows(1)]
    write(mini_data / "raw" / "gp_register" / "leak.csv", "\n".join(lines) + "\n")
    con, result = ingest(mini_data)
    q = result.quarantine["gp_register"].set_index("line")
    assert q.loc[2, "rule"] == q.loc[3, "rule"] == "nhs_number"
    assert q.loc[4, "rule"] == "short_row"
    assert "9434765919" not in q.to_csv().replace(" ", "").replace("-", "")
    assert scalar(con, "SELECT count(*) FROM gp_register WHERE source_file = 'gp_register/leak.csv'") == 1


@pytest.mark.parametrize("source, header, row", [
    ("school_census", SCHOOL_HEADER, "2024-01-18,{id},123456,Oak,primary,3,F,WBRI,ENG,N,2021-09-01,{pc}"),
    ("survey", SURVEY_HEADER, "resident-2024,{id},2024-02-01,{pc},F,2"),
    ("gp_movements", "patient_id,practice_code,postcode,event_date,event,reason", "{id},P91003,{pc},2024-02-01,registration,birth"),
])
def test_nhs_numbers_are_refused_in_every_identifier_column(mini_data, source, header, row):
    pc = first_postcodes(1)[0]
    good = row.format(id="ID0001", pc=pc)
    write(mini_data / "raw" / source / "ids.csv", "\n".join([header, row.format(id="943 476 5919", pc=pc), good]) + "\n")
    con, result = ingest(mini_data)
    q = result.quarantine[source]
    assert q["rule"].tolist() == ["nhs_number"]
    assert "5919" not in q.to_csv()


def test_no_nhs_number_anywhere_under_processed(mini_data):
    """A whole run (ingest and validation, data docs included) with NHS numbers planted in three forms."""
    pc = first_postcodes(1)[0]
    lines = [REGISTER_HEADER, *register_rows(3),
             f"2024-07-01,9434765919,P91003,{pc},M,1980-01-01,2000-01-01,N,A",
             f"2024-07-01,943 476 5919,P91003,{pc},M,1980-01-01,2000-01-01,N,A",
             f"2024-07-01,943-476-5919,P91003,{pc},M,1980-01-01,2030-01-01,N,A",
             f"2024-07-01,943-476-5919,P91003,{pc}"]
    write(mini_data / "raw" / "gp_register" / "leak.csv", "\n".join(lines) + "\n")
    summary = run_pipeline(load_settings(data_dir=mini_data), "validate")
    for path in summary.processed_dir.rglob("*"):
        if path.is_file() and path.suffix != ".duckdb":
            text = path.read_bytes().decode("utf-8", errors="ignore")
            for form in ("9434765919", "943 476 5919", "943-476-5919"):
                assert form not in text, path
    con = duckdb.connect(str(summary.processed_dir / "cohesion.duckdb"), read_only=True)
    assert scalar(con, "SELECT count(*) FROM gp_register WHERE regexp_replace(patient_id, '[ -]', '', 'g') = '9434765919'") == 0


# --- 3. Silent loss: rows read are physical data lines --------------------------------------

@pytest.mark.parametrize("bad_line, rule", [
    ('2024-07-01,Pq0005,P91003,"M15 4AB,M,1980-01-01,2000-01-01,N,A', "bad_quoting"),   # unclosed quote
    ('2024-07-01,Pq0005,P91003,M15 "4AB",M,1980-01-01,2000-01-01,N,A', "bad_quoting"),  # stray quotes
    ("2024-07-01,Pq0005,P91003", "short_row"),
    ("2024-07-01,Pq0005,P91003,M15 4AB,M,1980-01-01,2000-01-01,N,A,extra", "long_row"),
])
def test_a_broken_line_quarantines_only_itself(mini_data, bad_line, rule):
    rows = register_rows(20)
    rows[3] = bad_line  # line 5
    write(mini_data / "raw" / "gp_register" / "twenty.csv", "\n".join([REGISTER_HEADER, *rows]) + "\n")
    con, result = ingest(mini_data)
    report = report_for(result, "twenty.csv")
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (20, 19, 1)
    q = result.quarantine["gp_register"]
    assert q[["line", "rule"]].values.tolist() == [[5, rule]]
    lines = sorted(r[0] for r in con.execute("SELECT source_line FROM gp_register WHERE source_file LIKE '%twenty.csv'").fetchall())
    assert lines == [n for n in range(2, 22) if n != 5]


def test_a_quoted_line_break_quarantines_both_lines_and_swallows_nothing(mini_data):
    rows = register_rows(6)
    rows[1] = '2024-07-01,Pq0002,P91003,"M15'  # line 3: a value broken over two lines
    rows[2] = '4AB",M,1980-01-01,2000-01-01,N,A'  # line 4
    write(mini_data / "raw" / "gp_register" / "broken.csv", "\r\n".join([REGISTER_HEADER, *rows, "", ",,,"]) + "\r\n")
    con, result = ingest(mini_data)
    report = report_for(result, "broken.csv")
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined, report.blank_lines) == (6, 4, 2, 2)
    assert result.quarantine["gp_register"]["line"].tolist() == [3, 4]


def test_invalid_utf8_line_is_quarantined_by_its_line(mini_data):
    rows = [r.encode() for r in [REGISTER_HEADER, *register_rows(4)]]
    rows[2] = rows[2].replace(b"P91003", b"P9\xff003")
    (mini_data / "raw" / "gp_register" / "latin.csv").write_bytes(b"\n".join(rows) + b"\n")
    _, result = ingest(mini_data)
    report = report_for(result, "latin.csv")
    assert (report.rows_read, report.rows_loaded) == (4, 3)
    assert result.quarantine["gp_register"][["line", "rule"]].values.tolist() == [[3, "invalid_encoding"]]


def test_quarantined_fields_come_from_their_own_line_after_a_line_that_is_not_utf8(mini_data):
    # the lines' table is dropped once the rows are typed; the quarantined lines are read again from
    # the file, and a line that is not UTF-8 before them must not shift which line's fields are shown
    rows = [r.encode() for r in [REGISTER_HEADER, *register_rows(6)]]
    rows[2] = rows[2].replace(b"P91003", b"P9\xff003")  # line 3
    rows[5] = rows[5].replace(b",F,", b",X,").replace(b",M,", b",X,")  # line 6: a bad sex code
    (mini_data / "raw" / "gp_register" / "latin.csv").write_bytes(b"\n".join(rows) + b"\n")
    _, result = ingest(mini_data)
    frame = result.quarantine["gp_register"]
    assert frame[["line", "rule"]].values.tolist() == [[3, "invalid_encoding"], [6, "bad_code"]]
    bad = frame[frame["line"] == 6].iloc[0]
    assert (bad["patient_id"], bad["sex"]) == ("Pq0005", "X")


def test_quarantined_fields_are_read_again_from_their_lines(mini_data):
    rows = register_rows(5)
    rows[3] = rows[3].replace("P91003", "P9100")  # line 5: a practice code too short
    write(mini_data / "raw" / "gp_register" / "short.csv", "\n".join([REGISTER_HEADER, *rows]) + "\n")
    _, result = ingest(mini_data)
    frame = result.quarantine["gp_register"]
    assert frame[["line", "rule", "patient_id", "practice_code"]].values.tolist() == [[5, "bad_format", "Pq0004", "P9100"]]


@pytest.mark.parametrize("separator", [";", "\t", "|"])
def test_a_file_with_another_separator_stops_naming_the_file(mini_data, separator):
    text = "\n".join([REGISTER_HEADER, *register_rows(3)]).replace(",", separator)
    write(mini_data / "raw" / "gp_register" / "other_sep.csv", text + "\n")
    with pytest.raises(UnreadableFile, match="other_sep.csv: the columns do not match"):
        ingest(mini_data)


def test_run_report_balances_over_lines(mini_data):
    rows = register_rows(20)
    rows[4] = '2024-07-01,Pq0005,P91003,"M15 4AB,M,1980-01-01,2000-01-01,N,A'
    write(mini_data / "raw" / "gp_register" / "twenty.csv", "\n".join([REGISTER_HEADER, *rows[:10], "", *rows[10:]]) + "\n")
    summary = run_pipeline(load_settings(data_dir=mini_data), "ingest")
    report = json.loads((summary.processed_dir / "run_report.json").read_text())
    twenty = next(f for f in report["files"] if f["file"].endswith("twenty.csv"))
    assert (twenty["rows_read"], twenty["rows_loaded"], twenty["rows_quarantined"], twenty["blank_lines"]) == (20, 19, 1, 1)
    totals = report["totals"]
    assert totals["rows_read"] == totals["rows_loaded"] + totals["rows_quarantined"]


# --- 4. Dates, and files whose rows are all refused ------------------------------------------

def _uk_dates(row: str) -> str:
    return ",".join(f"{v[8:10]}/{v[5:7]}/{v[:4]}" if len(v) == 10 and v[4] == "-" else v for v in row.split(","))


def test_uk_dates_read_in_every_date_column(mini_data):
    rows = [_uk_dates(r) for r in register_rows(3)]
    write(mini_data / "raw" / "gp_register" / "excel.csv", "\n".join([REGISTER_HEADER, *rows]) + "\n")
    other_separators = "30.06.2024,Pq0009,P91003,M15 4AB,M,1-7-1980,2.1.2000,N,A".replace("M15 4AB", first_postcodes(1)[0])
    write(mini_data / "raw" / "gp_register" / "dots.csv", "\n".join([REGISTER_HEADER, other_separators]) + "\n")
    with_times = [r.replace("2024-07-01,", "2024-08-01 00:00:00,").replace(",2000-01-01,", ",01/01/2000 00:00,")
                  .replace("Pq", "Pt") for r in register_rows(2)]  # as pandas and spreadsheets write dates
    write(mini_data / "raw" / "gp_register" / "times.csv", "\n".join([REGISTER_HEADER, *with_times]) + "\n")
    write(mini_data / "raw" / "vital_events" / "ve.csv", "period_start,period_end,area_code,sex,age_band,births,deaths\n"
          "01/01/2024,31/03/2024,E01006074,F,,12,\n")
    pc = first_postcodes(1)[0]
    write(mini_data / "raw" / "school_census" / "spring.csv",
          f"{SCHOOL_HEADER}\n18/01/2024,U001,123456,Oak,primary,3,F,WBRI,ENG,N,01/09/2021,{pc}\n")
    con, result = ingest(mini_data)
    assert "gp_register" not in result.quarantine and "vital_events" not in result.quarantine
    assert str(scalar(con, "SELECT min(date_of_birth) FROM gp_register WHERE source_file LIKE '%excel.csv'")) == "1980-01-01"
    assert str(scalar(con, "SELECT date_of_birth FROM gp_register WHERE patient_id = 'Pq0009' AND extract_date = DATE '2024-06-30'")) == "1980-07-01"
    assert str(scalar(con, "SELECT period_end FROM vital_events")) == "2024-03-31"
    assert scalar(con, "SELECT count(*) FROM gp_register WHERE extract_date = DATE '2024-08-01' "
                       "AND registration_date = DATE '2000-01-01'") == 2
    assert str(scalar(con, "SELECT entry_date FROM school_census")) == "2021-09-01"


def test_accepted_date_forms_are_configurable_per_source(mini_data):
    rows = [_uk_dates(r) for r in register_rows(3)]
    write(mini_data / "raw" / "gp_register" / "excel.csv", "\n".join([REGISTER_HEADER, *rows]) + "\n")
    with pytest.raises(NothingLoaded, match=r"excel.csv: none of its 3 rows loaded: all quarantined \(bad_date 3\).*"
                                            r"such as 2022-06-30 \("):
        ingest(mini_data, ingest={"date_forms": {"gp_register": ["iso"]}})


def test_us_dates_are_not_read_as_uk_ones(mini_data):
    rows = register_rows(2) + ["2024-07-01,Pq0100,P91003,{pc},M,12/31/1980,2000-01-01,N,A".format(pc=first_postcodes(1)[0])]
    write(mini_data / "raw" / "gp_register" / "us.csv", "\n".join([REGISTER_HEADER, *rows]) + "\n")
    _, result = ingest(mini_data)
    assert result.quarantine["gp_register"][["line", "rule"]].values.tolist() == [[4, "bad_date"]]


@pytest.mark.parametrize("kind", ["timestamp", "date"])
def test_parquet_with_real_date_types_loads(mini_data, kind):
    frame = pd.read_csv(mini_data / "raw" / REGISTER_1, dtype=str, keep_default_na=False)
    frame["extract_date"] = "2024-07-01"
    for column in ("extract_date", "registration_date"):
        frame[column] = pd.to_datetime(frame[column])  # pandas writes TIMESTAMP
        if kind == "date":
            frame[column] = frame[column].dt.date  # pyarrow writes DATE
    frame.to_parquet(mini_data / "raw" / "gp_register" / "typed.parquet", index=False)
    con, result = ingest(mini_data)
    assert report_for(result, "typed.parquet").rows_loaded == 4
    assert scalar(con, "SELECT count(*) FROM gp_register WHERE extract_date = DATE '2024-07-01'") == 4


@pytest.mark.parametrize("content, problem", [
    (REGISTER_HEADER + "\n", "holds a header but no data rows"),
    (REGISTER_HEADER + "\n\n\n", "holds a header but no data rows"),
    ("\n".join([REGISTER_HEADER, *[r.replace("P91003", "XX") for r in register_rows(4)]]) + "\n",
     "none of its 4 rows loaded: all quarantined (bad_format 4)"),
])
def test_a_file_that_loads_nothing_stops_the_run(mini_data, content, problem):
    write(mini_data / "raw" / "gp_register" / "nothing.csv", content)
    with pytest.raises(NothingLoaded, match="nothing.csv") as error:
        ingest(mini_data)
    assert problem in str(error.value)


def test_a_file_that_loads_nothing_can_be_skipped_with_a_warning_on_the_final_line(mini_data):
    from pipeline.cli import final_line

    write(mini_data / "raw" / "gp_register" / "nothing.csv", REGISTER_HEADER + "\n")
    summary = run_pipeline(load_settings(data_dir=mini_data, ingest={"on_nothing_loaded": "skip"}), "ingest")
    line = final_line(summary)
    assert line.startswith("Done with warnings") and "gp_register/nothing.csv: holds a header but no data rows" in line


# --- 5. Folders and files ignored without a trace --------------------------------------------

@pytest.mark.parametrize("folder, suggestion", [("gp_registers", "gp_register"), ("GP_Register", "gp_register"),
                                                ("school-census", "school_census"), ("extracts", None)])
def test_a_folder_that_is_not_a_source_stops_the_run(mini_data, folder, suggestion):
    shutil.copy(mini_data / "raw" / REGISTER_1, (mini_data / "raw" / folder).mkdir() or mini_data / "raw" / folder / "x.csv")
    with pytest.raises(RawFolderError, match=f"{folder}: not a source folder") as error:
        ingest(mini_data)
    if suggestion:
        assert f"did you mean {suggestion}/?" in str(error.value)


def test_unknown_folders_can_be_skipped_and_are_listed(mini_data):
    (mini_data / "raw" / "gp_registers").mkdir()
    _, result = ingest(mini_data, ingest={"unknown_folders": "skip"})
    assert [(i.path, i.warning) for i in result.not_read] == [("gp_registers/", True)]


def test_every_file_not_read_is_listed_with_its_reason(mini_data):
    raw = mini_data / "raw"
    register = raw / "gp_register"
    for name in ("notes.txt", "extract.json", "extract.xlsx", "gp_register_2024-01-01.CSV.bak", ".DS_Store", "README.md"):
        write(register / name, "x")
    os.symlink(register / "gone.csv", register / "broken_link.csv")
    write(raw / "README.md", "SYNTHETIC")
    write(raw / "demo_manifest.json", "{}")
    write(raw / "stray.csv", REGISTER_HEADER + "\n")
    shutil.copy(raw / REGISTER_1, register / "zz_copy.CSV")  # read: the extension's case does not matter
    summary = run_pipeline(load_settings(data_dir=mini_data), "ingest")
    report = json.loads((summary.processed_dir / "run_report.json").read_text())
    not_read = {item["path"]: item for item in report["not_read"]}
    expected = {"gp_register/notes.txt": (".txt", True), "gp_register/extract.json": (".json", True),
                "gp_register/extract.xlsx": ("spreadsheet", True), "gp_register/gp_register_2024-01-01.CSV.bak": (".CSV.bak", True),
                "gp_register/broken_link.csv": ("broken symbolic link", True), "gp_register/.DS_Store": ("hidden", False),
                "gp_register/README.md": ("documentation", False), "README.md": ("documentation", False),
                "demo_manifest.json": ("run metadata", False), "stray.csv": ("top of raw/", True)}
    assert set(not_read) == set(expected)
    for path, (words, warning) in expected.items():
        assert words in not_read[path]["reason"] and not_read[path]["warning"] is warning, path
    assert len(report["warnings"]) == 6
    copy = next(f for f in report["files"] if f["file"] == "gp_register/zz_copy.CSV")  # read (then skipped: same content)
    assert copy["sha256"] and "same content" in copy["skipped"]


def test_line_numbers_hold_on_a_large_file_read_in_parallel(tmp_path):
    """Each of 300,000 lines keeps its own number, even when the connection does not preserve order."""
    from pipeline.ingest.reader import read_raw_file

    path = tmp_path / "big.csv"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT i, 'x' || i AS s FROM range(300000) t(i)) TO '{path}' (HEADER)")
    con.execute("SET threads = 2")
    con.execute("SET preserve_insertion_order = false")
    raw = read_raw_file(con, path, "rf", "gp_register", {})
    assert raw.rows_read == 300000
    assert scalar(con, "SELECT count(*) FROM rf WHERE __line <> CAST(i AS BIGINT) + 2") == 0


def test_the_console_keeps_bracketed_text_and_ends_on_the_warnings(mini_data):
    from typer.testing import CliRunner

    from pipeline.cli import app

    runner = CliRunner()
    (mini_data / "raw" / "gp_registers").mkdir()
    result = runner.invoke(app, ["ingest", "--data-dir", str(mini_data)])
    assert result.exit_code == 1
    assert 'set [ingest] unknown_folders = "skip" in config.toml' in " ".join(result.output.split())
    (mini_data / "raw" / "gp_registers").rmdir()
    write(mini_data / "raw" / "gp_register" / "archive" / "old.csv", REGISTER_HEADER + "\n")
    result = runner.invoke(app, ["ingest", "--data-dir", str(mini_data)])
    assert result.exit_code == 0
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Done with warnings") and "raw/gp_register/archive/: not read" in last
    assert "[ingest] read_subfolders = true" in last


def test_parquet_numbers_stored_as_floats_read_as_whole_numbers(mini_data):
    """pandas writes an integer column with gaps as floats: an NHS number is still caught, counts still load."""
    frame = pd.read_csv(mini_data / "raw" / REGISTER_1, dtype=str, keep_default_na=False)
    frame["extract_date"] = "2024-07-01"
    frame["patient_id"] = [9434765919.0, 1234.0, 5678.0, float("nan")]
    frame.to_parquet(mini_data / "raw" / "gp_register" / "floats.parquet", index=False)
    write(mini_data / "raw" / "vital_events" / "ve.csv", "period_start,period_end,area_code,sex,age_band,births,deaths\n"
          "2024-01-01,2024-03-31,E01006074,F,,12,\n")
    pd.DataFrame({"period_start": ["2024-04-01"], "period_end": ["2024-06-30"], "area_code": ["E01006074"],
                  "births": [12.0], "deaths": [float("nan")]}).to_parquet(mini_data / "raw" / "vital_events" / "q2.parquet")
    con, result = ingest(mini_data)
    q = result.quarantine["gp_register"].set_index("line")
    assert q["rule"].to_dict() == {2: "nhs_number", 5: "missing_value"}
    assert "9434765919" not in q.to_csv()
    assert scalar(con, "SELECT births FROM vital_events WHERE period_start = DATE '2024-04-01'") == 12


def test_lines_found_plain_type_exactly_as_the_per_value_trim_test_does(tmp_path):
    """reader.PLAIN marks a line none of whose fields needs trimming, so that rules.trimmed_sql skips its per-value
    test; the typed rows must be the same with and without the mark, whatever spaces, quotes, tabs and non-ASCII
    characters the lines hold."""
    from pipeline.ingest.reader import read_raw_file
    from pipeline.ingest.rules import compile_checks
    from schemas.contracts import GpRegisterRow

    pc = first_postcodes(1)[0]
    lines = [
        f"2024-01-01,Pa0001,P91003,{pc},M,1980-05-01,2001-01-01,N,A",  # plain
        f" 2024-01-01,Pa0002,P91003,{pc},M,1980-05-01,2001-01-01,N,A",  # space at the start of the line
        f"2024-01-01,Pa0003,P91003,{pc},M,1980-05-01,2001-01-01,N,A ",  # and at the end
        f"2024-01-01, Pa0004 ,P91003,{pc},M,1980-05-01,2001-01-01,N,A",  # beside commas
        f"2024-01-01,Pa0005,P91003,{pc},\u00a0F\u00a0,1980-05-01,2001-01-01,N,A",  # no-break spaces (non-ASCII)
        f"2024-01-01,Pa0006,P91003,\" {pc} \",F,1980-05-01,2001-01-01,N,A",  # spaces inside quotes
        f"2024-01-01,Pa0007,P91003,{pc},\tF,1980-05-01,2001-01-01,N,A",  # a tab (not trimmed either way)
        f"2024-01-01,Pa0008,Zoë,{pc},F,1980-05-01,2001-01-01,N,",  # non-ASCII inside a value, a blank last field
        "2024-01-01,Pa0009,P91003",  # short
    ]
    path = tmp_path / "register.csv"
    write(path, "\n".join([REGISTER_HEADER, *lines]) + "\n")
    con = duckdb.connect()
    raw = read_raw_file(con, path, "raw_file", "gp_register", {})
    assert raw.plain == "__plain"
    assert [r[0] for r in con.execute("SELECT __plain FROM raw_file ORDER BY __line").fetchall()] == \
        [True, False, False, False, False, False, True, False, True]
    with_mark = compile_checks(GpRegisterRow, raw.table, carry=raw.carry, plain=raw.plain).store
    without = compile_checks(GpRegisterRow, raw.table, carry=raw.carry).store
    assert with_mark != without
    rows = [con.execute(f"SELECT * FROM ({sql}) ORDER BY __line").fetchall() for sql in (with_mark, without)]
    assert rows[0] == rows[1]
    ids = con.execute(f"SELECT patient_id__text, sex__text FROM ({with_mark}) ORDER BY __line").fetchall()
    assert [i for i, _ in ids[:4]] == ["Pa0001", "Pa0002", "Pa0003", "Pa0004"]  # trimmed
    assert [sex for _, sex in ids[4:7]] == ["F", "F", "\tF"]  # no-break spaces trimmed; a tab is not
