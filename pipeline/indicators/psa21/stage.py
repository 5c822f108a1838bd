"""The psa21 stage: the four PSA 21 indicators (and further perception questions) from the resident survey."""

from __future__ import annotations

import logging

from pipeline.stages import Stage, StageContext

log = logging.getLogger(__name__)


def run_psa21(ctx: StageContext) -> dict:
    from pipeline.indicators.psa21.compute import compute_psa21_indicators

    log.info("PSA 21 indicators from the resident survey")
    return {"psa21": compute_psa21_indicators(ctx.con, ctx.settings.psa21)}


STAGE = Stage(
    name="psa21",
    run=run_psa21,
    reads=("survey_responses", "area_names", "gp_register", "population_estimates", "ethnicity_estimates"),
    publishes=("psa21_indicators",),
    config=("psa21",),
    code=("pipeline/indicators/psa21", "pipeline/stats", "config/surveys.toml"),
    target="indicators",
    streams_records=True,  # scans the GP register (single years); ~1 GiB of DuckDB memory is plenty
    description="PSA 21 indicators: raked survey shares, Fay-Herriot ward estimates, Place Survey 2008 baseline",
)
