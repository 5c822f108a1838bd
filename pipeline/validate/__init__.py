"""Batch expectations on the loaded tables, checked with great-expectations, and its HTML data docs.

Runs after ingest. A *batch* is one loaded file (``source_file`` in every table). The heavy work is
SQL in DuckDB (`summaries`: one ``GROUP BY source_file`` per table); great-expectations checks only
the small pandas frames of those summaries (`gx_runner`, imported lazily) and writes the data docs
to ``out_dir/data_docs/index.html``.

Expectations (short names as reported):

| table | expectation | passes when |
|---|---|---|
| every file | rows_accounted_for | rows_read = rows_loaded + rows_quarantined (files not skipped) |
| gp_register | one_row_per_patient | no (extract_date, patient_id) appears twice in the table |
| gp_register | one_extract_date | the file holds exactly one extract date |
| gp_register | postcode_match | share of the file's rows whose postcode is in the directory ≥ min_postcode_match |
| gp_register | lsoa_list_change | per later extract, ≥ list_change_mostly of LSOAs (list ≥ min_list_for_change_check) have abs(L(t)/L(t-1) - 1) ≤ max_list_change |
| gp_register | la_list_change | the same bound for every local authority's total list |
| school_census | one_row_per_pupil, one_census_date | as for the register |
| vital_events | non_negative_births, non_negative_deaths | no negative counts |
| asylum_allocations | non_negative_persons_allocated | |
| incidents | non_negative_count | |
| gp_counts | non_negative_patients | |
| base_population | non_negative_population, all_sex_age_cells | and every LSOA has M and F × all 18 age bands |
| survey_responses | unique_respondent, positive_weight | respondent_id unique within survey_id; weight > 0 where given |

Failures are returned and logged as warnings, never raised.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import duckdb

from pipeline.config import Settings

log = logging.getLogger(__name__)

__all__ = ["validate_batches"]


def validate_batches(con: duckdb.DuckDBPyConnection, settings: Settings, files: list, out_dir: Path) -> list[dict]:
    """Check every loaded batch; write data docs and validation_results.json under `out_dir`.

    Returns one dict per expectation per batch:
    ``{"batch", "expectation", "success", "observed", "details"}``.
    """
    from pipeline.validate.summaries import build_checks

    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    docs_dir = out_dir / "data_docs"
    shutil.rmtree(docs_dir, ignore_errors=True)  # no stale pages from an earlier run

    checks, results = build_checks(con, settings, files)
    from pipeline.validate.gx_runner import run_checks  # slow import: only when validating

    results += run_checks(checks, docs_dir)

    (out_dir / "validation_results.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    failed = [r for r in results if not r["success"]]
    for r in failed:
        log.warning("expectation failed: %s on %s (observed %s): %s", r["expectation"], r["batch"], r["observed"],
                    r["details"])
    log.info("validation: %d expectation results on %d checks, %d failed, in %.1f s; data docs in %s",
             len(results), len(checks), len(failed), time.perf_counter() - started, docs_dir / "index.html")
    return results
