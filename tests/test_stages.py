"""The stage registry, reuse of unchanged stages, and the checks on published tables."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import duckdb
import pytest

from pipeline.checks import PublishedTableError, check_published_tables
from pipeline.config import load_settings
from pipeline.run import run_pipeline
from pipeline.stages import (Stage, register_stage, registered_stages, stages_up_to, unregister_stage, wait_for_warm_up,
                             warm_up_stages)


def test_built_in_stages_run_in_order_and_each_reads_only_what_an_earlier_one_publishes():
    names = [s.name for s in registered_stages()]
    assert names[:3] == ["ingest", "validate", "estimates"] and names[-1] == "outputs"
    published: set[str] = set()
    for stage in registered_stages():
        assert set(stage.reads) <= published, stage.name
        published |= set(stage.publishes)
    assert "population_flows" in published


def test_a_later_stage_of_the_run_is_warmed_up_in_the_background_and_an_earlier_one_is_not():
    import sys

    sys.modules.pop("colorsys", None)  # a standard-library module nothing here imports
    register_stage(Stage(name="toy_warm", run=lambda ctx: None, warm_up=("colorsys", "no_such_module_for_warm_up")))
    try:
        warm_up_stages(["toy_warm", "ingest"], after="ingest")  # toy_warm is not after ingest in this run
        wait_for_warm_up()
        assert "colorsys" not in sys.modules
        warm_up_stages(["ingest", "validate", "toy_warm"], after="ingest")
        wait_for_warm_up()  # a module that cannot be imported is left to the stage itself: no error here
        assert "colorsys" in sys.modules
    finally:
        unregister_stage("toy_warm")


def test_validation_warms_up_great_expectations():
    validate = next(s for s in registered_stages() if s.name == "validate")
    assert validate.warm_up == ("pipeline.validate.gx_runner",)


def test_a_stage_reading_an_unpublished_table_is_refused():
    with pytest.raises(ValueError, match="est_gp_flows, which no earlier stage publishes"):
        register_stage(Stage(name="sneaky", run=lambda ctx: None, reads=("est_gp_flows",)))


def test_a_new_stage_is_added_by_declaring_it(demo_run, tmp_path):
    """A toy stage reading population_estimates runs after estimates, without touching the runner.
    It runs on a copy of the demo run's folder: the shared folder's outputs stay as other tests read them."""
    shared, _ = demo_run
    shutil.copytree(shared.data_dir, tmp_path / "data", ignore=shutil.ignore_patterns("*.lock"))
    settings = shared.model_copy(update={"data_dir": tmp_path / "data"})

    def count_areas(ctx):
        ctx.con.execute("CREATE TABLE toy_area_count AS SELECT count(DISTINCT area_code) AS n FROM population_estimates")
        return {"toy": "ran"}

    register_stage(Stage(name="toy", run=count_areas, reads=("population_estimates",), publishes=("toy_area_count",)),
                   after="estimates")
    try:
        assert [s.name for s in stages_up_to("toy")][-2:] == ["estimates", "toy"]
        summary = run_pipeline(settings, "toy")
        assert summary.report["toy"] == "ran"
        runs = summary.report["stage_runs"]
        # everything before the toy stage was unchanged since the demo run: reused, not rebuilt
        assert runs["ingest"]["reused"] and runs["estimates"]["reused"] and not runs["toy"]["reused"]
        assert summary.report["totals"]["rows_read"] > 0  # the reused stages' report entries carried over
        con = duckdb.connect(str(settings.processed_dir / "cohesion.duckdb"), read_only=True)
        assert con.execute("SELECT n FROM toy_area_count").fetchall()[0][0] > 0
        con.close()
    finally:
        unregister_stage("toy")


def test_an_unchanged_rerun_reuses_upstream_and_a_changed_raw_file_rebuilds(mini_data):
    settings = load_settings(data_dir=mini_data)
    first = run_pipeline(settings, "validate")
    assert not first.report["stage_runs"]["ingest"]["reused"]
    again = run_pipeline(settings, "validate")
    assert again.report["stage_runs"]["ingest"]["reused"] == first.run_id
    assert again.report["files"] == first.report["files"]
    log = (mini_data / "processed" / "logs" / f"run-{again.run_id}.log").read_text()
    assert "reusing ingest" in log
    # one raw file changes: ingest runs again
    path = mini_data / "raw" / "gp_register" / "gp_register_2024-04-01.csv"
    path.write_text(path.read_text().replace("Pa0004", "Pa0005"))
    changed = run_pipeline(settings, "validate")
    assert not changed.report["stage_runs"]["ingest"]["reused"]
    con = duckdb.connect(str(mini_data / "processed" / "cohesion.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM gp_register WHERE patient_id = 'Pa0005'").fetchall()[0][0] == 1
    con.close()
    report = json.loads((mini_data / "processed" / "run_report.json").read_text())
    assert report["stage_runs"]["validate"]["fingerprint"]


def test_a_rerun_trusts_the_last_runs_hashes_until_a_file_changes(mini_data, monkeypatch):
    """Hashing a national folder's 9.3 GB took about 15 s of every command; a rerun takes the hashes the last run
    recorded in processed/raw_hashes.json while each file's inode, size and times are unchanged (as DVC and git do)."""
    import pipeline.ingest.reader as reader

    monkeypatch.setattr(reader, "RACY_NS", -10**18)  # the files were written a moment ago: trust them all the same
    settings = load_settings(data_dir=mini_data)
    run_pipeline(settings, "validate")
    recorded = json.loads((mini_data / "processed" / "raw_hashes.json").read_text())["files"]
    raw_files = sorted(p for p in (mini_data / "raw").rglob("*") if p.is_file())
    assert sorted(e["path"] for e in recorded) == [str(p.resolve()) for p in raw_files]
    # a fresh process, whose only knowledge is the record: a doctored hash shows the file was not read again
    path = mini_data / "raw" / "gp_register" / "gp_register_2024-04-01.csv"
    for entry in recorded:
        if entry["path"] == str(path.resolve()):
            entry["sha256"] = "f" * 64
    (mini_data / "processed" / "raw_hashes.json").write_text(json.dumps({"files": recorded}))
    monkeypatch.setattr(reader, "_HASHES", {})
    trusted = run_pipeline(settings, "validate")
    by_file = {f["file"]: f["sha256"] for f in trusted.report["files"]}
    assert by_file["gp_register/gp_register_2024-04-01.csv"] == "f" * 64
    # touching the file moves its change time: it is hashed again, from its content
    os.utime(path)
    monkeypatch.setattr(reader, "_HASHES", {})
    touched = run_pipeline(settings, "validate")
    by_file = {f["file"]: f["sha256"] for f in touched.report["files"]}
    assert by_file["gp_register/gp_register_2024-04-01.csv"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_file_hashed_just_after_it_changed_is_not_remembered(tmp_path):
    """git's "racily clean" rule: a second write in the same clock tick could leave every time unchanged."""
    from pipeline.ingest.reader import file_hash, remembered_hashes

    path = tmp_path / "extract.csv"
    path.write_text("a,b\n1,2\n")
    assert file_hash(path) == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert remembered_hashes([path]) == []


def _estimates(con, rows):
    con.execute("""CREATE OR REPLACE TABLE population_estimates (area_code VARCHAR, area_name VARCHAR,
        area_type VARCHAR, reference_date DATE, sex VARCHAR, age_band VARCHAR, estimate DOUBLE, lower_95 DOUBLE,
        upper_95 DOUBLE, gp_list DOUBLE, base_population DOUBLE, turbulence DOUBLE, method VARCHAR)""")
    con.executemany("INSERT INTO population_estimates VALUES (?, 'A', 'lsoa', DATE '2024-01-01', ?, ?, ?, ?, ?, 1, 1, 0, "
                    "'cohdmap')", rows)


GOOD = [("E01", "M", "0-4", 10, 8, 12), ("E01", "F", "0-4", 20, 18, 22), ("E01", "All", "0-4", 30, 27, 33),
        ("E01", "M", "All", 10, 8, 12), ("E01", "F", "All", 20, 18, 22), ("E01", "All", "All", 30, 27, 33)]


def test_published_estimates_pass_their_contract_when_sound():
    con = duckdb.connect()
    _estimates(con, GOOD)
    check_published_tables(con, ["population_estimates"])


@pytest.mark.parametrize("change, rule", [
    (lambda rows: rows + [rows[0]], "unique key"),
    (lambda rows: rows[1:], "every combination present"),
    (lambda rows: [(*rows[0][:3], 10, 11, 12), *rows[1:]], "lower_95 <= estimate <= upper_95"),
    (lambda rows: [*rows[:5], ("E01", "All", "All", 31, 27, 33)], "'All' sex = sum of the parts"),
    (lambda rows: [(*rows[0][:3], -1, -2, 1), *rows[1:]], "estimate not negative"),
])
def test_a_broken_published_table_fails_the_run_naming_the_rule(change, rule):
    con = duckdb.connect()
    _estimates(con, change(list(GOOD)))
    with pytest.raises(PublishedTableError, match=rule.replace("(", r"\(").replace(")", r"\)")):
        check_published_tables(con, ["population_estimates"])


def _register_with_unknown_postcodes(mini_data):
    """An extract where a third of the postcodes are not in the directory: postcode_match fails."""
    from conftest import REGISTER_HEADER, first_postcodes

    pc = first_postcodes(1)[0]
    rows = [f"2024-07-01,Pu{i:04d},P91003,{pc if i % 3 else 'ZZ9 9ZZ'},F,1980-01-01,2000-01-01,N,A" for i in range(9)]
    (mini_data / "raw" / "gp_register" / "july.csv").write_text("\n".join([REGISTER_HEADER, *rows]) + "\n")


def test_a_critical_expectation_stops_the_run_before_estimates(mini_data):
    """A failed expectation marked critical in the configuration stops the run before estimates.

    (An edited older copy of an extract beside it, the case this guarded first, no longer reaches
    validation: ingest refuses a patient twice for one extract date, tests/test_ingest_faults.py.)"""
    from pipeline.validate.stage import CriticalExpectationFailed

    _register_with_unknown_postcodes(mini_data)
    settings = load_settings(data_dir=mini_data, validation={"critical_expectations": ["postcode_match"]})
    with pytest.raises(CriticalExpectationFailed, match="postcode_match"):
        run_pipeline(settings, "estimates")
    assert not (mini_data / "processed").exists()


def test_failed_expectations_are_on_the_final_line(mini_data):
    from pipeline.cli import final_line

    _register_with_unknown_postcodes(mini_data)
    settings = load_settings(data_dir=mini_data, validation={"critical_expectations": []})
    summary = run_pipeline(settings, "validate")
    line = final_line(summary)
    assert "FAILED (postcode_match" in line, line
    assert line.startswith("Done (") and str(settings.processed_dir) in line
