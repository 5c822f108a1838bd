"""The validate stage: batch expectations on the loaded tables, data docs; critical failures stop the run."""

from __future__ import annotations

from pipeline.ingest.stage import CANONICAL_TABLES
from pipeline.stages import Stage, StageContext, wait_for_warm_up


class CriticalExpectationFailed(Exception):
    """A batch expectation configured as critical failed: nothing is estimated from that data."""


def run_validate(ctx: StageContext) -> dict:
    from pipeline.validate import validate_batches

    wait_for_warm_up()  # great-expectations, imported in the background while ingest ran
    files = ctx.memory.get("ingest_files")
    if files is None:  # ingest was reused from the last run: rebuild its file reports from the report
        from pipeline.ingest import FileReport

        files = [FileReport(**f) for f in ctx.report.get("files", [])]
    results = validate_batches(ctx.con, ctx.settings, files, ctx.out_dir)
    failed = [r for r in results if not r["success"]]
    critical = set(ctx.settings.validation.critical_expectations)
    stopping = [r for r in failed if r["expectation"] in critical]
    if stopping:
        listed = "; ".join(f"{r['expectation']} on {r['batch']} (observed {r['observed']})" for r in stopping)
        raise CriticalExpectationFailed(
            f"critical batch expectation failed: {listed}. Fix the extract, or remove the expectation from "
            f"[validation] critical_expectations in config.toml to let the run continue")
    return {"expectations": {"evaluated": len(results), "failed": failed}}


STAGE = Stage(
    name="validate",
    run=run_validate,
    reads=CANONICAL_TABLES,
    config=("validation",),
    code=("pipeline/validate",),
    streams_records=True,
    warm_up=("pipeline.validate.gx_runner",),
    description="batch expectations (great-expectations) and data docs",
)
