"""The outputs stage: everything partners receive, through the one disclosure-control gateway."""

from __future__ import annotations

from pipeline.stages import Stage, StageContext


def run_outputs(ctx: StageContext) -> dict:
    from pipeline.outputs import publish_outputs

    return {"outputs": publish_outputs(ctx.con, ctx.settings, ctx.out_dir / "outputs", ctx.report)}


STAGE = Stage(
    name="outputs",
    run=run_outputs,
    reads=("population_estimates",),
    config=("outputs",),
    code=("pipeline/outputs",),
    description="publish partner outputs through disclosure control",
)
