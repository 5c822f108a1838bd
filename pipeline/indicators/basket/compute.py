"""From each indicator's SQL rows to published rows: roll-up, values and limits, comparisons,
baseline, trend and funnel limits. Pure functions of data frames (the stage does the I/O)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.indicators.basket.definition import IndicatorDefinition
from pipeline.stats.compare import compare_to_comparator
from schemas.vocabulary import AREA_TYPES
from pipeline.stats.funnel import calculate_funnel_limits
from pipeline.stats.proportion import calculate_proportion
from pipeline.stats.rate import calculate_rate
from pipeline.stats.segregation import summarise_segregation
from pipeline.stats.trend import calculate_trends_to_date

KEY = ["indicator_id", "area_code", "breakdown", "period_start", "period_end"]
LEVEL_ORDER = {a: -i for i, a in enumerate(AREA_TYPES)}  # larger areas higher: lsoa < msoa < ward < la


def name_variants(rows: pd.DataFrame, definition: IndicatorDefinition) -> pd.DataFrame:
    """indicator_id and indicator_name, one indicator per `variant` when the SQL returns one."""
    rows = rows.copy()
    if "variant" in rows and rows["variant"].notna().any():
        variant = rows["variant"].fillna("other").astype(str)
        rows["indicator_id"] = definition.id + "_" + variant.str.replace(r"[^a-z0-9_]", "_", regex=True)
        label = variant.str.replace("_", " ")
        if " per " in definition.name:  # "Incidents recorded (hate crime race) per 1,000 ..."
            head, tail = definition.name.split(" per ", 1)
            rows["indicator_name"] = head + " (" + label + ") per " + tail
        else:
            rows["indicator_name"] = definition.name + " (" + label + ")"
    else:
        rows["indicator_id"] = definition.id
        rows["indicator_name"] = definition.name
    return rows.drop(columns=["variant"], errors="ignore")


def roll_up(rows: pd.DataFrame, lookup: pd.DataFrame, levels: tuple[str, ...]) -> pd.DataFrame:
    """Sum numerators and denominators from the SQL's level up to each level asked for.

    LSOAs go into wards weighted by ward_share (an LSOA straddling two wards counts in each by its
    share, as the estimates do) and into their LA whole; wards go into their LA."""
    out = []
    group = ["indicator_id", "indicator_name", "breakdown", "period_start", "period_end"]
    maps = {
        ("lsoa", "ward"): lookup[["lsoa_code", "ward_code", "ward_share"]].rename(
            columns={"lsoa_code": "from", "ward_code": "to", "ward_share": "w"}),
        ("lsoa", "la"): lookup[["lsoa_code", "la_code"]].drop_duplicates().rename(
            columns={"lsoa_code": "from", "la_code": "to"}).assign(w=1.0),
        ("ward", "la"): lookup[["ward_code", "la_code"]].drop_duplicates().rename(
            columns={"ward_code": "from", "la_code": "to"}).assign(w=1.0),
    }
    for source_level, part in rows.groupby("area_type"):
        for level in levels:
            if level == source_level:
                out.append(part)
            elif LEVEL_ORDER[level] > LEVEL_ORDER.get(source_level, 9):
                m = maps[(source_level, level)]
                joined = part.merge(m, left_on="area_code", right_on="from")
                joined["numerator"] *= joined["w"]
                joined["denominator"] *= joined["w"]
                summed = joined.groupby(group + ["to"], as_index=False)[["numerator", "denominator"]].sum()
                out.append(summed.rename(columns={"to": "area_code"}).assign(area_type=level))
    if not out:
        return rows.iloc[0:0]
    return pd.concat(out, ignore_index=True)


def compute_rate_rows(rows: pd.DataFrame, definition: IndicatorDefinition, la_names: dict,
                      baseline_period, overdispersion: bool, lookup: pd.DataFrame) -> pd.DataFrame:
    """Values, 95% and 99.8% limits, significance against the LA (or, for the LA's own 'All' row,
    the baseline), change from the baseline, trend so far and funnel limits among areas of a type."""
    rows = rows.copy().reset_index(drop=True)
    rows["note"] = ""
    ok = rows["denominator"] > 0
    calc = calculate_rate if definition.statistic == "rate" else calculate_proportion
    limits = calc(rows.loc[ok, "numerator"], rows.loc[ok, "denominator"], confidence=(0.95, 0.998),
                  multiplier=definition.multiplier)
    limits.index = rows.index[ok]
    for column in limits:
        rows[column] = limits[column]
    rows.loc[~ok, "note"] = "no population to divide by"
    rows["unit"], rows["domain"], rows["polarity"] = definition.unit, definition.domain, definition.polarity
    rows = add_baseline(rows, baseline_period)
    # each area's LA, and the LA's overall value beside every smaller area and every LA breakdown
    la_of = pd.concat([lookup[["lsoa_code", "la_code"]].rename(columns={"lsoa_code": "area_code"}),
                       lookup[["ward_code", "la_code"]].rename(columns={"ward_code": "area_code"}),
                       lookup[["la_code"]].assign(area_code=lookup["la_code"])]).drop_duplicates("area_code")
    rows = rows.merge(la_of, on="area_code", how="left")
    la = rows[(rows["area_type"] == "la") & (rows["breakdown"] == "All")]
    la = la[["indicator_id", "period_start", "period_end", "area_code", "value"]].rename(
        columns={"area_code": "la_code", "value": "la_value"})
    rows = rows.merge(la, on=["indicator_id", "period_start", "period_end", "la_code"], how="left")
    smaller = (rows["area_type"] != "la") | (rows["breakdown"] != "All")
    rows["comparator"] = np.where(smaller, rows["la_code"].map(la_names).fillna(rows["la_code"]) + " (local authority)",
                                  np.where(rows["is_baseline"], "", "baseline period to " + rows["baseline_period_end"].astype(str)))
    rows["comparator_value"] = np.where(smaller, rows["la_value"], np.where(rows["is_baseline"], np.nan, rows["baseline_value"]))
    rows["significance"] = compare_to_comparator(rows["lower_95"], rows["upper_95"], rows["comparator_value"]).values
    rows["change_significance"] = compare_to_comparator(rows["lower_95"], rows["upper_95"],
                                                        rows["baseline_value"].where(~rows["is_baseline"])).values
    rows = add_trend(rows, definition.statistic)
    rows = add_funnel(rows, definition, overdispersion)
    small = ok & (rows["numerator"] < 10) & (definition.statistic == "rate")
    rows.loc[small & (rows["note"] == ""), "note"] = "fewer than 10 events: exact Poisson limits, read with care"
    return rows.drop(columns=["la_code", "la_value", "is_baseline"])


def add_baseline(rows: pd.DataFrame, baseline_period) -> pd.DataFrame:
    """The baseline period (the configured period_end when the indicator has it, else its first)
    and each row's change from its area's baseline value."""
    rows = rows.copy()
    rows["baseline_period_end"] = pd.NaT
    for indicator, part in rows.groupby("indicator_id"):
        ends = sorted(part["period_end"].unique())
        chosen = pd.Timestamp(baseline_period) if baseline_period is not None else None
        base = chosen if chosen is not None and chosen in set(pd.to_datetime(ends)) else pd.Timestamp(ends[0])
        rows.loc[part.index, "baseline_period_end"] = base
    rows["baseline_period_end"] = pd.to_datetime(rows["baseline_period_end"])
    base_rows = rows[pd.to_datetime(rows["period_end"]) == rows["baseline_period_end"]]
    base_values = base_rows.set_index(["indicator_id", "area_code", "breakdown"])["value"]
    keys = pd.MultiIndex.from_frame(rows[["indicator_id", "area_code", "breakdown"]])
    rows["baseline_value"] = base_values.reindex(keys).values
    rows["change_from_baseline"] = rows["value"] - rows["baseline_value"]
    rows["is_baseline"] = pd.to_datetime(rows["period_end"]) == rows["baseline_period_end"]
    rows["baseline_period_end"] = rows["baseline_period_end"].dt.date
    return rows


def add_trend(rows: pd.DataFrame, statistic: str) -> pd.DataFrame:
    """Trend across the periods up to each row's (three or more): rising / falling / no clear trend."""
    rows = rows.copy()
    direction = pd.Series("not tested", index=rows.index, dtype="object")
    p_value = pd.Series(np.nan, index=rows.index)
    usable = rows[rows["denominator"] > 0].sort_values("period_end")
    keys = usable[["indicator_id", "area_code", "breakdown"]]
    usable = usable[keys.notna().all(axis=1)]  # as groupby: a row without a key is in no series
    if len(usable):
        series = pd.MultiIndex.from_frame(usable[["indicator_id", "area_code", "breakdown"]]).factorize()[0]
        found = calculate_trends_to_date(usable["numerator"].astype(float), usable["denominator"].astype(float),
                                         series, "rate" if statistic == "rate" else "proportion")
        tested = found["direction"] != "not tested"
        direction[found.index[tested]] = found["direction"][tested]
        p_value[found.index[tested]] = found["p_value"][tested]
    rows["trend"], rows["trend_p_value"] = direction, p_value
    return rows


def add_funnel(rows: pd.DataFrame, definition: IndicatorDefinition, overdispersion: bool) -> pd.DataFrame:
    """Funnel limits for LSOAs and wards against all areas of their type in the same period."""
    rows = rows.copy()
    for column in ("funnel_lower_99_8", "funnel_upper_99_8"):
        rows[column] = np.nan
    rows["funnel_significance"] = ""
    areas = rows[(rows["area_type"] != "la") & (rows["denominator"] > 0)]
    for _, part in areas.groupby(["indicator_id", "area_type", "breakdown", "period_end"]):
        if len(part) < 3 or part["numerator"].sum() <= 0:
            continue
        x, n = part["numerator"], part["denominator"]
        if definition.statistic == "proportion" and (x >= n).all():
            continue
        funnel = calculate_funnel_limits(x, n, definition.statistic, definition.multiplier, overdispersion)
        funnel.index = part.index
        rows.loc[part.index, "funnel_lower_99_8"] = funnel["funnel_lower_99_8"]
        rows.loc[part.index, "funnel_upper_99_8"] = funnel["funnel_upper_99_8"]
        rows.loc[part.index, "funnel_significance"] = funnel["funnel_significance"]
    return rows


def compute_count_rows(rows: pd.DataFrame, definition: IndicatorDefinition) -> pd.DataFrame:
    rows = rows.copy()
    rows["unit"], rows["domain"], rows["polarity"] = definition.unit, definition.domain, definition.polarity
    rows["note"] = rows["note"].fillna("") if "note" in rows else ""
    rows["significance"] = "not compared"
    return rows[rows["area_type"].isin(definition.levels)]


SEGREGATION_KEYS = ["area_code", "area_type", "period_start", "period_end", "breakdown"]


def compute_segregation_rows(units: pd.DataFrame, definition: IndicatorDefinition, iterations: int,
                             seed: int, cache: dict | None = None) -> pd.DataFrame:
    """One row per area, period and group: the index, and random allocation as the comparator
    (units dealt in unit_code order, so the same counts give the same comparator whatever order the
    rows come in). `cache` keeps each group's four indices for the next indicator reading the same SQL.

    `units` is the SQL's rows as a frame; the stage itself hands over the same groups as arrays
    (`split_segregation_groups`), so that the units never become a frame at national scale."""
    return compute_segregation_groups(split_segregation_groups(units), definition, iterations, seed, cache)


def split_segregation_groups(units: pd.DataFrame):
    """(area_code, area_type, period_start, period_end, breakdown), group counts, unit totals: one
    per group of units, the units in unit_code order."""
    for key, part in units.groupby(SEGREGATION_KEYS):
        part = part.sort_values("unit_code", kind="stable")
        yield key, part["group_count"].to_numpy(float), part["unit_total"].to_numpy(float)


def compute_segregation_groups(groups, definition: IndicatorDefinition, iterations: int, seed: int,
                               cache: dict | None = None) -> pd.DataFrame:
    """`compute_segregation_rows` on groups already split: (key, group counts, unit totals) each, the
    key being (area_code, area_type, period_start, period_end, breakdown) and the units in the order
    random allocation deals them (unit_code order)."""
    cache = {} if cache is None else cache
    out = []
    for (area, area_type, start, end, breakdown), x, t in groups:
        units_used = int((t > 0).sum())
        if units_used < 2 or x.sum() == 0 or x.sum() == t.sum():
            continue
        key = (str(definition.sql_path), area, start, end, breakdown)
        if key not in cache:
            cache[key] = summarise_segregation(x, t, iterations=iterations, seed=seed)
        result = cache[key][definition.index]
        note = (f"{units_used} units; {int(x.sum())} of {int(t.sum())} in the group; 95% of random allocations "
                f"give {result['null_lower_95']:.3f} to {result['null_upper_95']:.3f}")
        if x.sum() < 20:
            note += "; fewer than 20 in the group: read with care"
        out.append({"area_code": area, "area_type": area_type, "period_start": start, "period_end": end,
                    "breakdown": breakdown, "value": result["value"],
                    "comparator": "random allocation (expected value)", "comparator_value": result["expected"],
                    "significance": result["significance"], "note": note})
    rows = pd.DataFrame(out)
    if rows.empty:
        return rows
    rows["unit"], rows["domain"], rows["polarity"] = definition.unit, definition.domain, definition.polarity
    return rows


def compute_diversity_rows(groups: pd.DataFrame, definition: IndicatorDefinition) -> pd.DataFrame:
    """Each area's diversity on each date (`pipeline.stats.segregation.calculate_diversity`: Shannon
    entropy over ln K), for every area at once (tens of thousands of wards and LAs x dates nationally):
    the same figures as calling it per area, without a Python loop over areas."""
    keys = SEGREGATION_KEYS
    counts = pd.to_numeric(groups["group_count"], errors="coerce").clip(lower=0).to_numpy(float)
    frame = groups[keys].assign(_c=counts)
    by = frame.groupby(keys, sort=True)
    size = by["_c"].transform("size").to_numpy()
    if np.isnan(counts[size >= 2]).any():
        raise ValueError("counts has missing or non-numeric values: drop or fill those rows before calling")
    total = by["_c"].transform("sum").to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        share = counts / total
        frame["_term"] = np.where(share > 0, share * np.log(np.where(share > 0, share, 1.0)), 0.0)
    frame["_total"], frame["_size"] = total, size
    summed = frame.groupby(keys, sort=True).agg(_term=("_term", "sum"), _total=("_total", "first"),
                                                _size=("_size", "first")).reset_index()
    summed = summed[(summed["_total"] > 0) & (summed["_size"] >= 2)]
    if summed.empty:
        return pd.DataFrame()
    rows = summed[keys].assign(value=-summed["_term"].to_numpy() / np.log(summed["_size"].to_numpy(float)),
                               significance="not compared", note="")
    rows = rows[rows["area_type"].isin(definition.levels)].reset_index(drop=True)
    rows["unit"], rows["domain"], rows["polarity"] = definition.unit, definition.domain, definition.polarity
    return rows
