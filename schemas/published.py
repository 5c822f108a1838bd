"""Contracts of the tables a stage publishes, checked on every run before anything leaves.

`pipeline.checks.check_published_tables` turns each contract into SQL checks (as GLA's popmodules
`validate_population` does for its population frames): unique keys, every combination of the
key's dimensions present, no negative counts, ``lower <= value <= upper`` where an interval is
given, and ``All`` rows equal to the sum of their parts. A run that breaks one fails, naming the
table, the check and an example row.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

# the columns of spec/outputs.md, in order (more may follow them)
POPULATION_ESTIMATE_COLUMNS = (
    "area_code", "area_name", "area_type", "reference_date", "sex", "age_band", "estimate", "lower_95", "upper_95",
    "gp_list", "base_population", "turbulence", "method",
)
INDICATOR_COLUMNS = (
    "indicator_id", "indicator_name", "domain", "area_code", "area_name", "area_type", "period_start", "period_end",
    "breakdown", "numerator", "denominator", "value", "unit", "lower_95", "upper_95", "comparator",
    "comparator_value", "significance", "polarity", "note",
)
ALERT_COLUMNS = (
    "indicator_id", "area_code", "area_name", "area_type", "period_end", "value", "expected", "lower_limit",
    "upper_limit", "direction", "message",
)
SIGNIFICANCE = ("higher", "lower", "similar", "not compared")
POLARITY = ("higher is better", "lower is better", "no judgement")


class PublishedTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    columns: tuple[str, ...]  # these columns come first, in this order
    keys: tuple[str, ...]  # unique together
    complete_over: tuple[str, ...] = ()  # every combination of these is present (per the rest of the key)
    non_negative: tuple[str, ...] = ()
    intervals: tuple[tuple[str, str, str], ...] = ()  # (lower, value, upper), checked where all three are set
    sums_to_all: tuple[tuple[str, str], ...] = ()  # (dimension, measure): the 'All' row = sum of the others
    allowed: dict[str, tuple[str, ...]] = {}  # column -> allowed values (NULL allowed)


def indicator_table(name: str) -> PublishedTable:
    """The contract of a table of indicators (spec/outputs.md indicators.csv): every stage that computes
    indicators publishes one, named ``<something>_indicators``; outputs stacks them into indicators.csv."""
    return PublishedTable(
        name=name,
        columns=INDICATOR_COLUMNS,
        keys=("indicator_id", "area_code", "period_start", "period_end", "breakdown"),
        non_negative=("numerator", "denominator"),
        intervals=(("lower_95", "value", "upper_95"),),
        allowed={"significance": SIGNIFICANCE, "polarity": POLARITY,
                 "area_type": ("lsoa", "msoa", "ward", "la", "school")},
    )


PUBLISHED_TABLES: dict[str, PublishedTable] = {t.name: t for t in (
    PublishedTable(
        name="population_estimates",
        columns=POPULATION_ESTIMATE_COLUMNS,
        keys=("area_code", "reference_date", "sex", "age_band"),
        complete_over=("area_code", "reference_date", "sex", "age_band"),
        non_negative=("estimate", "lower_95", "upper_95", "gp_list", "base_population"),
        intervals=(("lower_95", "estimate", "upper_95"),),
        sums_to_all=(("sex", "estimate"), ("age_band", "estimate")),
        allowed={"sex": ("M", "F", "All"), "area_type": ("lsoa", "msoa", "ward", "la")},
    ),
    indicator_table("indicators"),
    indicator_table("psa21_indicators"),
    indicator_table("basket_indicators"),
    PublishedTable(
        name="alerts",
        columns=ALERT_COLUMNS,
        keys=("indicator_id", "area_code", "period_end"),
        intervals=(("lower_limit", "expected", "upper_limit"),),
        allowed={"direction": ("rise", "fall")},
    ),
)}
