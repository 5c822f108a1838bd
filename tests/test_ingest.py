"""Ingest: every kind of bad input lands in the quarantine with its file, line and rule;
nothing is lost or doubled; the real published layouts load."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from conftest import REGISTER_HEADER, first_postcodes, write
from pipeline.config import load_settings
from pipeline.db import scalar
from pipeline.ingest import ingest_raw
from pipeline.ingest.reader import UnreadableFile
from pipeline.run import run_pipeline

REAL = Path(__file__).parent / "fixtures"


def ingest(data: Path, **overrides):
    con = duckdb.connect()
    result = ingest_raw(con, load_settings(data_dir=data, **overrides))
    return con, result


def quarantine(result, source: str) -> pd.DataFrame:
    return result.quarantine.get(source, pd.DataFrame(columns=["file", "line", "column", "rule"]))


def report_for(result, name: str):
    return next(f for f in result.files if f.file.endswith(name))


def test_record_identifiers_are_stored_as_zstd_and_read_back_unchanged(mini_data, tmp_path):
    """pipeline.ingest.COMPRESSION: the register's patient_id and postcode are written with ZSTD (cheaper to write than
    DuckDB's automatic DICT_FSST for columns of many distinct values); the table's columns and rows are as declared."""
    con = duckdb.connect(str(tmp_path / "stored.duckdb"))
    ingest_raw(con, load_settings(data_dir=mini_data))
    con.execute("CHECKPOINT")
    for column in ("patient_id", "postcode"):
        stored = {r[0] for r in con.execute("""SELECT DISTINCT compression FROM pragma_storage_info('gp_register')
                                              WHERE column_name = ? AND segment_type = 'VARCHAR'""", [column]).fetchall()}
        assert stored == {"ZSTD"}, column
    plain = duckdb.connect()
    plain.execute((Path(__file__).parent.parent / "pipeline/ingest/sql/canonical_tables.sql").read_text())
    columns = "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position"
    for table in ("gp_register", "school_census"):
        assert con.execute(columns, [table]).fetchall() == plain.execute(columns, [table]).fetchall()
    assert sorted(r[0] for r in con.execute("SELECT patient_id FROM gp_register").fetchall()) == \
        sorted([f"Pa000{i}" for i in range(1, 5)] * 2)  # conftest.make_raw: two extracts of the same 4 patients


def test_clean_folder_loads_everything_with_an_empty_quarantine(mini_data):
    con, result = ingest(mini_data)
    assert result.quarantine == {}
    for f in result.files:
        assert f.rows_read == f.rows_loaded + f.rows_quarantined
    assert scalar(con, "SELECT count(*) FROM gp_register") == 8
    # postcodes normalised and placed: 'm154ab'-style and '2' for female both read
    rows = con.execute("SELECT DISTINCT sex FROM gp_register ORDER BY 1").fetchall()
    assert rows == [("F",), ("M",)]
    assert scalar(con, "SELECT count(*) FROM gp_register WHERE lsoa_code IS NULL OR ward_code IS NULL") == 0
    assert scalar(con, "SELECT count(*) FROM gp_register WHERE postcode NOT LIKE '% %'") == 0
    # YYYY-MM dates of birth read as mid-month
    assert str(scalar(con, "SELECT date_of_birth FROM gp_register WHERE patient_id = 'Pa0002' LIMIT 1")) == "1990-07-15"
    # single years 30 and 31 summed into the 30-34 band
    assert scalar(con, "SELECT population FROM base_population WHERE lsoa_code = 'E01006074' AND sex = 'M' AND age_band = '30-34'") == 25


def test_each_fault_lands_in_quarantine_with_its_line_and_rule(mini_data):
    pc = first_postcodes(1)[0]
    lines = [
        REGISTER_HEADER,
        f"2024-07-01,Pb0001,P91003,{pc},M,1980-01-01,2000-01-01,N,A",      # line 2: good
        f"2024-07-01,Pb0002,P91003,{pc},X,1980-01-01,2000-01-01,N,A",      # line 3: bad sex code
        f"2024-07-01,Pb0003,P91003,{pc},F,2025-01-01,2000-01-01,N,A",      # line 4: born after extract
        f"2024-07-01,Pb0004,P91003,{pc},F,1990-01-01,1985-01-01,N,A",      # line 5: registered before birth
        f"2024-07-01,Pb0005,P91003,ZZ99 9ZZ,F,1990-01-01,2000-01-01,N,A",  # line 6: unknown postcode
        f"2024-07-01,Pb0006,P91003,{pc}",                                   # line 7: short row
        f"2024-07-01,Pb0001,P91003,{pc},M,1980-01-01,2000-01-01,N,A",      # line 8: duplicate of line 2
        f"2024-07-01,9434765919,P91003,{pc},M,1980-01-01,2000-01-01,N,A",  # line 9: a real-looking NHS number
        f"2024-07-01,Pb0009,P91003,{pc},F,1990-13-01,2000-01-01,N,A",      # line 10: impossible date
        f"2024-07-01,Pb0010,XYZ,{pc},F,1990-01-01,2000-01-01,N,Q",         # line 11: bad ODS code, bad ethnic category
        f"2024-07-01,Pb0011,P91003,{pc},F,2024-05,2024-05-03,N,A",         # line 12: good (day of birth suppressed)
        f"2024-07-01,Pb0012,P91003,{pc},F,2024-05,2024-04-30,N,A",         # line 13: registered the month before birth
    ]
    write(mini_data / "raw" / "gp_register" / "faulty.csv", "\n".join(lines) + "\n")
    con, result = ingest(mini_data)
    q = quarantine(result, "gp_register").set_index("line")
    expected = {3: ("sex", "bad_code"), 4: ("date_of_birth", "birth_after_extract"),
                5: ("registration_date", "registered_before_birth"), 6: ("postcode", "unknown_postcode"),
                7: (None, "short_row"), 8: ("patient_id", "duplicate_record"), 9: ("patient_id", "nhs_number"),
                10: ("date_of_birth", "bad_date"), 11: ("practice_code", "bad_format"),
                13: ("registration_date", "registered_before_birth")}
    assert sorted(q.index) == sorted(expected)
    for line, (column, rule) in expected.items():
        assert q.loc[line, "rule"] == rule, line
        assert q.loc[line, "file"] == "gp_register/faulty.csv"
        if column:
            assert q.loc[line, "column"] == column
        assert q.loc[line, "message"]
    assert "1 more problem" in q.loc[11, "message"]  # the bad ethnic category is counted too
    # the NHS number is never copied into the quarantine
    assert "9434765919" not in q.to_csv()
    report = report_for(result, "faulty.csv")
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (12, 2, 10)


def test_bad_codes_in_other_sources(mini_data):
    write(mini_data / "raw" / "vital_events" / "ve.csv",
          "period_start,period_end,area_code,sex,age_band,births,deaths\n"
          "2024-01-01,2024-03-31,E01006074,F,,12,\n"
          "2024-01-01,2024-03-31,E01006074,M,70-74,,-1\n"         # negative count
          "2024-04-01,2024-03-31,E01006075,M,,3,\n"               # period reversed
          "2024-01-01,2024-03-31,E01999999,M,,3,\n")              # unknown area
    write(mini_data / "raw" / "school_census" / "spring.csv",
          "census_date,pupil_id,urn,school_name,phase,nc_year,sex,ethnicity,first_language,fsm_eligible,entry_date,home_postcode\n"
          f"2024-01-18,U001,123456,Oak,primary,3,F,WBRI,ENG,N,2021-09-01,{first_postcodes(1)[0]}\n"
          f"2024-01-18,U002,123456,Oak,primary,3,F,XXXX,ENG,N,2021-09-01,{first_postcodes(1)[0]}\n"   # bad ethnicity
          f"2024-01-18,U003,123456,Oak,primary,3,F,WBRI,TIG,N,2021-09-01,{first_postcodes(1)[0]}\n"   # new language: loads
          f"2024-01-18,U004,12345,Oak,primary,3,F,WBRI,ENG,N,2021-09-01,{first_postcodes(1)[0]}\n")   # 5-digit URN
    con, result = ingest(mini_data)
    ve = quarantine(result, "vital_events").set_index("line")
    assert ve["rule"].to_dict() == {3: "out_of_range", 4: "period_reversed", 5: "unknown_area"}
    sc = quarantine(result, "school_census").set_index("line")
    assert sc["rule"].to_dict() == {3: "bad_code", 5: "bad_format"}
    assert scalar(con, "SELECT ethnic_major FROM school_census WHERE pupil_id = 'U001'") == "White"
    assert scalar(con, "SELECT count(*) FROM school_census") == 2


def test_school_level_counts_load_where_pupil_records_are_missing(mini_data):
    write(mini_data / "raw" / "school_census" / "school_counts_2024.csv",
          "census_date,urn,school_name,phase,characteristic,group,pupils\n"
          "2024-01-18,123456,Oak,primary,ethnicity,WBRI,120\n"
          "2024-01-18,123456,Oak,primary,ethnicity,APKN,35\n"
          "2024-01-18,123456,Oak,primary,first_language,ENG,140\n"
          "2024-01-18,123456,Oak,primary,first_language,ENG,-3\n")   # negative, and a second row for the key
    con, result = ingest(mini_data)
    assert report_for(result, "school_counts_2024.csv").layout == "school_level_counts"
    assert scalar(con, "SELECT sum(pupils) FROM school_counts") == 295
    assert quarantine(result, "school_census")["rule"].tolist() == ["out_of_range"]


def test_resent_file_is_skipped_not_double_counted(mini_data):
    src = mini_data / "raw" / "gp_register" / "gp_register_2024-01-01.csv"
    shutil.copy(src, src.with_name("resent_copy.csv"))
    con, result = ingest(mini_data)
    report = report_for(result, "resent_copy.csv")
    assert report.skipped and "duplicate of gp_register/gp_register_2024-01-01.csv" in report.skipped
    assert report.rows_loaded == 0
    assert scalar(con, "SELECT count(*) FROM gp_register") == 8


@pytest.mark.parametrize("content, problem", [
    (b"\x89PNG\r\n\x1a\n\x00\x00binary", "not UTF-8"),
    (b"extract_date,patient_id\x00\x00\n", "NUL"),
    ("patient,when\nP1,2024-01-01\n".encode(), "missing"),
    ("extract_date;patient_id\n".encode("utf-16"), "UTF-8"),
])
def test_unreadable_file_stops_the_run_naming_the_file(mini_data, content, problem):
    (mini_data / "raw" / "gp_register" / "broken.csv").write_bytes(content)
    with pytest.raises(UnreadableFile, match="broken.csv") as error:
        ingest(mini_data)
    assert problem in str(error.value)


def test_unreadable_file_can_be_skipped_and_is_reported(mini_data):
    (mini_data / "raw" / "gp_register" / "broken.csv").write_bytes(b"\x00\x01\x02")
    con, result = ingest(mini_data, ingest={"on_unreadable": "skip"})
    assert report_for(result, "broken.csv").skipped.startswith("unreadable")
    assert scalar(con, "SELECT count(*) FROM gp_register") == 8


def test_bom_crlf_blank_lines_and_quoted_fields_keep_exact_line_numbers(mini_data):
    pc = first_postcodes(1)[0]
    text = (REGISTER_HEADER + "\r\n"
            f"2024-07-01,Pc0001,P91003,{pc},M,1980-01-01,2000-01-01,N,A\r\n"
            "\r\n"                                                                   # line 3 blank
            f"2024-07-01,Pc0002,P91003,\"{pc}\",M,1980-01-01,2000-01-01,N,A\r\n"   # line 4 quoted
            f"2024-07-01,Pc0003,P91003,{pc},M,1980-01-01,2030-01-01,N,A\r\n")       # line 5 registered after extract
    write(mini_data / "raw" / "gp_register" / "bom.csv", "\ufeff" + text)
    con, result = ingest(mini_data)
    q = quarantine(result, "gp_register")
    assert q[["line", "rule"]].values.tolist() == [[5, "registered_after_extract"]]
    assert scalar(con, "SELECT source_line FROM gp_register WHERE patient_id = 'Pc0002'") == 4


def test_parquet_extract_loads_like_csv(mini_data):
    src = mini_data / "raw" / "gp_register" / "gp_register_2024-04-01.csv"
    frame = pd.read_csv(src, dtype=str, keep_default_na=False)
    frame["extract_date"] = "2024-07-01"
    frame.to_parquet(mini_data / "raw" / "gp_register" / "gp_register_2024-07-01.parquet", index=False)
    con, result = ingest(mini_data)
    assert report_for(result, ".parquet").rows_loaded == 4
    assert scalar(con, "SELECT min(source_line) FROM gp_register WHERE extract_date = DATE '2024-07-01'") == 2


def test_header_map_reads_a_local_variant(mini_data):
    src = mini_data / "raw" / "gp_register" / "gp_register_2024-01-01.csv"
    text = src.read_text().replace("patient_id", "NHS_PSEUDO_ID").replace("postcode", "Patient Postcode")
    src.write_text(text)
    with pytest.raises(UnreadableFile, match="missing patient_id, postcode"):
        ingest(mini_data)
    con, result = ingest(mini_data, ingest={"header_map": {"gp_register": {
        "patient_id": "nhs_pseudo_id", "postcode": "patient postcode"}}})
    assert scalar(con, "SELECT count(*) FROM gp_register") == 8


def test_real_published_layouts_load(tmp_path):
    """Real layouts from shared/data/real: ONS mid-year estimates (wide), Home Office Asy_D11,
    the ONSPD-style Trafford postcode directory, NHS Digital LSOA counts."""
    data = tmp_path / "data"
    raw = data / "raw"
    write(raw / "geography" / "pc.csv", (REAL / "trafford_postcodes_3lsoa.csv").read_text())
    shutil.copy(REAL / "ons_mye2022_3lsoa_sya.csv", (raw / "base_population").mkdir(parents=True) or raw / "base_population" / "mye.csv")
    shutil.copy(REAL / "asy_d11_sample.csv", (raw / "asylum").mkdir(parents=True) or raw / "asylum" / "asy_d11.csv")
    write(raw / "gp_counts" / "gp_reg_pat_prac_lsoa.csv",
          "PUBLICATION,EXTRACT_DATE,PRACTICE_CODE,PRACTICE_NAME,LSOA_CODE,SEX,NUMBER_OF_PATIENTS\n"
          "GP_PRAC_PAT_LIST,01JAN2021,P91003,PARK MEDICAL PRACTICE,E01006074,MALE,105\n"
          "GP_PRAC_PAT_LIST,01JAN2021,P91003,PARK MEDICAL PRACTICE,E01006074,FEMALE,98\n")
    con, result = ingest(data)
    assert result.quarantine == {}
    # ONS mid-2022, Trafford 025A (E01006074): 857 females and 803 males, from the published file
    totals = dict(con.execute("SELECT sex, sum(population) FROM base_population WHERE lsoa_code = 'E01006074' GROUP BY 1").fetchall())
    assert totals == {"F": 857, "M": 803}
    assert scalar(con, "SELECT count(DISTINCT age_band) FROM base_population") == 18
    assert scalar(con, "SELECT sum(patients) FROM gp_counts") == 203
    assert scalar(con, "SELECT count(*) FROM asylum_support") == report_for(result, "asy_d11.csv").rows_read
    assert scalar(con, "SELECT count(*) FROM area_names WHERE area_type = 'ward'") == 3


def test_every_row_accounted_for_in_the_run_report(mini_data):
    pc = first_postcodes(1)[0]
    write(mini_data / "raw" / "gp_register" / "bad.csv", REGISTER_HEADER + "\n2024-07-01,Pzz001,,,,,,,\n"
          f"2024-07-01,Pzz002,P91003,{pc},M,1980-01-01,2000-01-01,N,A\n")
    summary = run_pipeline(load_settings(data_dir=mini_data), "ingest")
    report = json.loads((summary.processed_dir / "run_report.json").read_text())
    for f in report["files"]:
        assert f["rows_read"] == f["rows_loaded"] + f["rows_quarantined"]
        assert len(f["sha256"]) == 64
    with open(summary.processed_dir / "quarantine" / "gp_register.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["file"], r["line"], r["rule"]) for r in rows] == [("gp_register/bad.csv", "2", "missing_value")]
    assert report["code_version"] and report["started"] and report["finished"]
