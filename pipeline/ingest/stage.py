"""The ingest stage: raw/ -> canonical tables, quarantine/ and the per-file balance."""

from __future__ import annotations

from pipeline.stages import Stage, StageContext, warm_up_stages
from pipeline.vocabulary import REFERENCE_TABLES

CANONICAL_TABLES = (
    "postcode_directory", "area_names", "lsoa_lookup", "place_index", "gp_register", "gp_movements", "gp_counts",
    "school_census", "school_counts", "survey_responses", "vital_events", "asylum_allocations", "asylum_support",
    "base_population", "incidents", "area_lookup", "gp_practice_age", "base_population_sya",
) + REFERENCE_TABLES


def run_ingest(ctx: StageContext) -> dict:
    from pipeline.ingest import ingest_raw, write_quarantine

    # the later stages' slow imports (validation's great-expectations) load in the background meanwhile
    warm_up_stages(ctx.report.get("stages", []), after="ingest")
    progress = ctx.progress_factory("Ingest") if ctx.progress_factory else None
    try:
        result = ingest_raw(ctx.con, ctx.settings, progress)
    finally:
        if progress:
            progress.stop()
    write_quarantine(result, ctx.out_dir / "quarantine")
    ctx.memory["ingest_files"] = result.files  # for validation in the same run
    return result.report_fields()  # files, totals, files_skipped, not_read, warnings


STAGE = Stage(
    name="ingest",
    run=run_ingest,
    publishes=CANONICAL_TABLES,
    config=("ingest", "vocabulary"),
    code=("pipeline/ingest", "pipeline/vocabulary.py"),
    reads_raw=True,
    streams_records=True,
    description="check and load raw extracts into canonical tables, quarantining bad rows",
)
