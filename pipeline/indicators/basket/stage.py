"""The basket stage: the local basket of objective indicators and early warnings (alerts)."""

from __future__ import annotations

import logging

from pipeline.stages import Stage, StageContext

log = logging.getLogger(__name__)

READS = ("population_flows", "population_estimates", "ethnicity_estimates", "school_census", "vital_events",
         "incidents", "lsoa_lookup", "area_names", "ref_ethnic_code")


def run_basket(ctx: StageContext) -> dict:
    from pipeline.indicators.basket import build_basket

    log.info("computing the local basket of indicators")
    return build_basket(ctx.con, ctx.settings)


STAGE = Stage(
    name="basket",
    target="indicators",
    streams_records=True,  # copies and scans the school census (ind_basket_pupils): DuckDB needs little memory
    run=run_basket,
    reads=READS,
    publishes=("basket_indicators", "alerts"),
    config=("basket", "vocabulary"),
    code=("pipeline/indicators/basket", "pipeline/stats"),
    description="local basket of indicators against a baseline, with early warnings",
)
