"""The estimates stage: COHDMAP small-area populations with margins, and the flows later stages use."""

from __future__ import annotations

import logging

from pipeline.ingest.stage import CANONICAL_TABLES
from pipeline.stages import Stage, StageContext

log = logging.getLogger(__name__)

PUBLISHED = ("population_estimates", "population_estimates_methods", "ethnicity_estimates", "population_flows")


def run_estimates(ctx: StageContext) -> dict:
    from pipeline.estimates import estimate_populations

    log.info("estimating small-area populations")
    # the run mode (register_movements / register_snapshots / counts_only) and whether its margins were checked
    return {"estimates": estimate_populations(ctx.con, ctx.settings.estimates)}


STAGE = Stage(
    name="estimates",
    run=run_estimates,
    reads=CANONICAL_TABLES,
    publishes=PUBLISHED,
    config=("estimates",),
    code=("pipeline/estimates",),
    holds_arrays=True,  # the cohort chassis, margins and ethnicity work on numpy arrays beside DuckDB
    description="COHDMAP small-area population estimates with margins of error",
)
