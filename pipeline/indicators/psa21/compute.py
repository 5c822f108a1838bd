"""PSA 21 indicators (and further perception questions) from the resident survey.

    compute_psa21_indicators(con, settings) -> report dict; creates psa21_indicators

Steps (each in its own module):
1. the survey (survey_responses; the latest, or [psa21] survey_id) and its fieldwork dates;
2. population margins at the fieldwork date: ward × sex × survey age band from our estimates,
   interpolated between the extracts either side (margins.py, sql/population), or a table the
   analyst supplies ([psa21] weight_to = "table");
3. raked weights: age band × sex (LA) and ward, thin cells merged, weights trimmed at
   `trim_ratio` × median (pipeline/stats/raking.py); design effect and effective n reported;
4. scoring each respondent by the definitions file (definitions.py, config/surveys.toml);
5. direct weighted shares with Wilson limits on the effective n for the LA and each ward, by
   sex, age band, ethnic group, disability and religion (pipeline/stats/weighted_proportion.py),
   suppressed below `min_base` unweighted respondents with a note;
6. model-based ward estimates (Fay-Herriot on the logit scale, covariates turbulence and ethnic
   mix from the estimates; fallback to fewer covariates, then none), published as a separate
   indicator ``<id>_modelled`` beside the direct one (estimate_type says which);
7. comparisons: wards and groups against the LA; the LA against its Place Survey 2008 value
   (place_survey.py) or a published England benchmark; the comparator's value on the same row.

Partners tell the estimates apart by `indicator_id` (``psa21_get_on`` is the direct survey
estimate; ``psa21_get_on_modelled`` the model-based ward estimate) and by `estimate_type`.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.indicators.psa21.definitions import IndicatorDefinition, load_definitions, score_respondents
from pipeline.indicators.psa21.margins import (build_survey_band_population, interpolation_dates,
                                              list_ages_to_split, to_survey_band)
from pipeline.indicators.psa21.place_survey import baseline_for, load_place_survey
from pipeline.indicators.psa21.settings import Psa21Settings
from pipeline.indicators.psa21.vocabulary import BREAKDOWN_LABELS, to_ethnic_group, yes_no
from pipeline.sql import create_table_from
from pipeline.stats.compare import compare_to_comparator
from pipeline.stats.fay_herriot import estimate_fay_herriot_proportions
from pipeline.stats.raking import POOL_JOIN, pool_margin, pool_thin_levels, rake_weights
from pipeline.stats.weighted_proportion import calculate_grouped_weighted_proportions
from schemas.published import INDICATOR_COLUMNS
from schemas.vocabulary import AREA_TYPES

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).with_name("sql")
EXTRA_COLUMNS = ("estimate_type", "respondents", "effective_n", "design_effect", "unweighted_value", "survey_id",
                 "benchmark", "benchmark_value", "benchmark_significance")
OUTPUT_COLUMNS = INDICATOR_COLUMNS + EXTRA_COLUMNS
DIRECT = "direct (weighted survey estimate)"
UNWEIGHTED = "direct (unweighted: survey not weighted)"
MODELLED = "model-based (Fay-Herriot, logit scale)"


def compute_psa21_indicators(con, settings: Psa21Settings) -> dict:
    """Create psa21_indicators (and the ind_psa21_* audit tables); return the run-report entry."""
    definitions = load_definitions(settings.definitions)
    respondents, survey_id = _load_survey(con, settings.survey_id)
    if respondents is None:
        _write(con, pd.DataFrame(columns=list(OUTPUT_COLUMNS)))
        log.warning("no resident survey loaded: psa21_indicators is empty")
        return {"survey": None, "rows": 0, "note": "no resident survey loaded"}
    report: dict = {"survey": survey_id, "respondents": int(len(respondents))}
    bands = list(definitions.survey.age_bands)
    respondents["age_band"] = to_survey_band(respondents["age_band"], bands)
    respondents["ethnic_group"] = to_ethnic_group(respondents["ethnic_group"])
    respondents["disability"] = yes_no(respondents["disability"])
    dates = pd.to_datetime(respondents["interview_date"]).dropna()
    fieldwork = dates.sort_values().iloc[len(dates) // 2].date() if len(dates) else None
    period_start = dates.min().date() if len(dates) else None
    period_end = dates.max().date() if len(dates) else None
    la_code, la_name = _the_la(con, respondents)
    names = dict(con.execute("SELECT area_code, area_name FROM area_names").fetchall())

    weights, weighting = _weight(con, respondents, settings, bands, fieldwork)
    respondents["weight"] = weights
    report["weighting"] = weighting
    con.register("ind_psa21_weights_frame", respondents[["respondent_id", "ward_code", "sex", "age_band", "weight"]])
    con.execute("CREATE OR REPLACE TABLE ind_psa21_weights AS SELECT * FROM ind_psa21_weights_frame")
    con.unregister("ind_psa21_weights_frame")

    matched, unmatched = load_place_survey(settings.baseline_table or None)
    baseline, baseline_how = baseline_for(matched, la_code)
    report["place_survey_2008"] = {"authorities": int(len(matched) + len(unmatched)), "matched": int(len(matched)),
                                   "unmatched": unmatched.to_dict("records"), "district": baseline_how,
                                   "district_authority": None if baseline is None else baseline["authority"]}
    con.register("ind_psa21_place_survey_frame", matched)
    con.execute("CREATE OR REPLACE TABLE ind_psa21_place_survey AS SELECT * FROM ind_psa21_place_survey_frame")
    con.unregister("ind_psa21_place_survey_frame")

    covariates = _ward_covariates(con, fieldwork, settings.model_covariates)
    frames, skipped, models = [], [], {}
    context = dict(la_code=la_code, la_name=la_name, names=names, period_start=period_start, period_end=period_end,
                   survey_id=survey_id, min_base=settings.min_base, weighted=weighting["method"] != "none")
    for indicator in definitions.indicator:
        if not any(q in respondents.columns for q in indicator.questions):
            if indicator.optional:
                skipped.append(indicator.id)
                continue
            raise ValueError(f"indicator {indicator.id}: the survey {survey_id} has none of the columns "
                             f"{list(indicator.questions)}; map them in {settings.definitions}")
        scored = pd.concat([respondents, score_respondents(respondents, indicator)], axis=1)
        direct = _direct_rows(scored, indicator, definitions.survey.breakdowns, settings.breakdown_areas, context)
        direct = _compare_direct(direct, indicator, baseline, context)
        modelled, models[indicator.id] = _modelled_rows(direct, indicator, covariates, context)
        frames += [direct, modelled]
    table = pd.concat([f for f in frames if len(f)], ignore_index=True) if frames else pd.DataFrame()
    table = table.reindex(columns=list(OUTPUT_COLUMNS))
    _write(con, table)
    report.update({"rows": int(len(table)), "suppressed": int(table["note"].fillna("").str.startswith("suppressed").sum()),
                   "indicators_skipped_no_questions": skipped, "models": models, "fieldwork_date": str(fieldwork)})
    return report


# --- 1. the survey ------------------------------------------------------------------------
def _load_survey(con, survey_id: str):
    surveys = con.execute("SELECT survey_id, max(interview_date) AS last FROM survey_responses GROUP BY survey_id "
                          "ORDER BY last DESC NULLS LAST, survey_id DESC").fetchall()
    if not surveys:
        return None, None
    if survey_id and survey_id not in [s[0] for s in surveys]:
        raise ValueError(f"[psa21] survey_id = '{survey_id}' is not loaded; surveys loaded: {[s[0] for s in surveys]}")
    chosen = survey_id or surveys[0][0]
    frame = con.execute("SELECT * FROM survey_responses WHERE survey_id = ? ORDER BY respondent_id", [chosen]).df()
    return frame.reset_index(drop=True), chosen


def _the_la(con, respondents) -> tuple[str, str]:
    codes = respondents["la_code"].dropna()
    if codes.empty:
        raise ValueError("no survey respondent could be placed in the geography (area not in the postcode directory)")
    la_code = codes.mode().iloc[0]
    name = con.execute("SELECT area_name FROM area_names WHERE area_code = ?", [la_code]).fetchall()
    return la_code, (name[0][0] if name else la_code)


# --- 2-3. margins and weights ---------------------------------------------------------------
def _weight(con, respondents, settings: Psa21Settings, bands, fieldwork) -> tuple[np.ndarray, dict]:
    design = pd.to_numeric(respondents.get("weight"), errors="coerce") if "weight" in respondents else None
    start = design.fillna(1.0).to_numpy() if design is not None else np.ones(len(respondents))
    if settings.weight_to == "none":
        return start, {"method": "none"}
    if settings.weight_to == "table":
        margins = _margins_from_table(settings.margins_table)
        info = {"method": "table", "margins_table": settings.margins_table}
        columns = list(margins)
    else:
        population, info = _population_at(con, fieldwork, bands)
        eligible_wards = set(population["ward_code"])
        respondents["age_sex"] = respondents["sex"].astype(str) + " " + respondents["age_band"].astype(str)
        population["age_sex"] = population["sex"] + " " + population["age_band"]
        margins = {"age_sex": population.groupby("age_sex")["population"].sum().to_dict(),
                   "ward_code": population.groupby("ward_code")["population"].sum().to_dict()}
        respondents.loc[~respondents["ward_code"].isin(eligible_wards), "ward_code"] = None
        columns = ["age_sex", "ward_code"]
    usable = respondents[[c for c in columns if c != "age_sex"] + ["sex", "age_band"]].notna().all(axis=1)
    usable &= respondents["sex"].isin(["M", "F"]) if "age_sex" in columns else True
    frame = respondents.loc[usable, columns].astype(str).copy()
    pooled_margins = {}
    for col in columns:
        order = sorted(margins[col], key=_band_sort_key)
        within = (lambda level: level.split(" ")[0]) if col == "age_sex" else None  # pool ages within a sex
        pooled = pool_thin_levels(frame[col], order, settings.min_cell_respondents, within)
        pooled_margins[col] = pool_margin(margins[col], pooled, frame[col])
        frame[col] = pooled.to_numpy()
    # a level with population but (after pooling) no respondents cannot be carried: fold its population
    # proportionally into the rest, and say so
    dropped = {}
    for col in columns:
        present = set(frame[col])
        lost = {k: v for k, v in pooled_margins[col].items() if k not in present and v > 0}
        if lost:
            dropped[col] = sorted(lost)
            kept = {k: v for k, v in pooled_margins[col].items() if k in present}
            scale = sum(pooled_margins[col].values()) / sum(kept.values())
            pooled_margins[col] = {k: v * scale for k, v in kept.items()}
    result = rake_weights(frame, pooled_margins, start[usable.to_numpy()],
                          trim_ratio=settings.trim_ratio or None, tolerance=settings.rake_tolerance,
                          max_iter=settings.rake_max_iter)
    weights = np.full(len(respondents), np.nan)
    weights[usable.to_numpy()] = result.weights
    info.update({
        "method": info.get("method", "estimates"), "margins": columns, "respondents_weighted": int(usable.sum()),
        "respondents_not_weighted": int((~usable).sum()), "converged": result.converged,
        "max_relative_misfit": result.max_relative_misfit, "trim_ratio": settings.trim_ratio,
        "weights_at_cap": result.trimmed, "weights_above_cap": result.above_cap,
        "design_effect": round(result.design_effect, 4), "effective_n": round(result.effective_n, 1),
        "pooled_levels": {c: sorted(k for k in pooled_margins[c] if POOL_JOIN in k) for c in columns},
        "levels_without_respondents": dropped, "messages": result.messages})
    if (~usable).any():
        log.warning("%d survey respondents lack ward, sex or age band and are left out of weighted estimates",
                    int((~usable).sum()))
    return weights, info


def _band_sort_key(level: str):
    return (level.split(" ")[0], level.split(" ")[-1].rstrip("+").split("-")[0].zfill(3))


def _population_at(con, fieldwork, bands) -> tuple[pd.DataFrame, dict]:
    available = [r[0] for r in con.execute("SELECT DISTINCT reference_date FROM population_estimates").fetchall()]
    available = [d.date() if isinstance(d, dt.datetime) else d for d in available]
    fieldwork = fieldwork or max(available)
    d0, d1, frac, how = interpolation_dates(available, fieldwork)
    create_table_from(con, "ind_psa21_ward_bands", SQL_DIR / "population" / "01_ind_psa21_ward_bands.sql",
                      {"date_before": d0, "date_after": d1, "fraction": float(frac)})
    extracts = [r[0] for r in con.execute("SELECT DISTINCT extract_date FROM gp_register").fetchall()]
    extracts = [d.date() if isinstance(d, dt.datetime) else d for d in extracts]
    ward_bands = con.execute("SELECT * FROM ind_psa21_ward_bands").df()
    single = pd.DataFrame(columns=["ward_code", "sex", "age", "patients"])
    has_single = False
    if extracts:
        nearest = min(extracts, key=lambda d: abs((d - fieldwork).days))
        create_table_from(con, "ind_psa21_single_years", SQL_DIR / "population" / "02_ind_psa21_single_years.sql",
                          {"extract_date": nearest})
        has_single = con.execute("SELECT count(*) FROM ind_psa21_single_years").fetchall()[0][0] > 0
        # only the years of the bands a survey band cuts are needed (not every ward x sex x year)
        ages = list_ages_to_split(pd.unique(ward_bands["age_band"]), bands)
        wanted = f"age IN ({', '.join(str(a) for a in ages)})" if ages else "1 = 0"
        single = con.execute(f"SELECT * FROM ind_psa21_single_years WHERE {wanted}").df()
    population, split = build_survey_band_population(ward_bands, single, bands, register_has_single_years=has_single)
    if split == "even":
        log.warning("no single-year GP register: 5-year bands cut by survey bands are split evenly across their years")
    con.register("ind_psa21_population_frame", population)
    con.execute("CREATE OR REPLACE TABLE ind_psa21_population AS SELECT * FROM ind_psa21_population_frame")
    con.unregister("ind_psa21_population_frame")
    return population, {"method": "estimates", "fieldwork_date": str(fieldwork), "estimates_before": str(d0),
                        "estimates_after": str(d1), "fraction": round(frac, 4), "interpolation": how,
                        "band_split": split, "population_16_plus": round(float(population["population"].sum()), 1)}


def _margins_from_table(path: str) -> dict[str, dict[str, float]]:
    if not path:
        raise ValueError("[psa21] weight_to = 'table' needs margins_table = path of a CSV with columns margin, level, "
                         "population (margin is a survey column such as ward_code, sex, age_band)")
    table = pd.read_csv(path, dtype={"margin": str, "level": str})
    missing = {"margin", "level", "population"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: margins table lacks columns {sorted(missing)} (needs margin, level, population)")
    return {m: dict(zip(g["level"], g["population"].astype(float))) for m, g in table.groupby("margin")}


# --- 5. direct estimates ----------------------------------------------------------------------
def _direct_rows(scored, indicator: IndicatorDefinition, breakdowns, areas, ctx) -> pd.DataFrame:
    """One row per area (the LA, each ward) x breakdown (All, then each group of each dimension)."""
    base = scored[scored["in_base"]]
    la = base[base["la_code"] == ctx["la_code"]]
    wards = base[base["ward_code"].notna()]
    cuts = []
    for area_type, frame, code in (("la", la, la["la_code"]), ("ward", wards, wards["ward_code"])):
        cut = pd.DataFrame({"area_type": area_type, "area_code": code, "breakdown": "All",
                            "counted": frame["counted"], "weight": frame["weight"]})
        cuts.append(cut)
        if area_type not in areas:
            continue
        for dim in breakdowns:
            if dim not in frame.columns or frame[dim].isna().all():
                continue  # a dimension the survey does not carry ("where present")
            label = BREAKDOWN_LABELS.get(dim, dim.replace("_", " ").capitalize())
            has = frame[dim].notna()
            cuts.append(cut[has].assign(breakdown=label + ": " + frame.loc[has, dim].astype(str)))
    shares = calculate_grouped_weighted_proportions(pd.concat(cuts, ignore_index=True),
                                                    ["area_type", "area_code", "breakdown"])
    shares["_direct_value"] = shares["value"] / 100  # kept (unpublished) for the small-area model
    shares["_direct_n_eff"] = shares["effective_n"]
    small = shares["respondents"] < ctx["min_base"]
    unweighted = shares["weighted_respondents"] == 0
    shares["note"] = None
    shares.loc[shares["weighted_respondents"] < shares["respondents"], "note"] = (
        (shares["respondents"] - shares["weighted_respondents"]).astype(str) + " respondents without weights left out")
    shares.loc[unweighted, "note"] = "suppressed: no weighted respondents"
    shares.loc[small, "note"] = f"suppressed: fewer than {ctx['min_base']} respondents in the base"
    hide = small | unweighted
    for col in ("value", "lower_95", "upper_95", "weighted_numerator", "weighted_denominator", "effective_n",
                "design_effect"):
        shares.loc[hide, col] = np.nan
    shares["respondents"] = shares["respondents"].astype(float)
    shares.loc[small, ["unweighted_value", "respondents"]] = np.nan  # small bases are not published in any form
    order = {"All": 0}
    shares["_order"] = shares["breakdown"].map(lambda b: order.get(b, 1))
    shares = shares.sort_values(["area_type", "area_code", "_order", "breakdown"],
                                key=lambda c: c.map(AREA_TYPES.index) if c.name == "area_type" else c)
    return shares.drop(columns=["_order"]).rename(
        columns={"weighted_numerator": "numerator", "weighted_denominator": "denominator"}).assign(
        indicator_id=indicator.id, indicator_name=indicator.name, domain=indicator.domain,
        area_name=lambda f: f["area_code"].map(lambda c: ctx["names"].get(c, c)),
        period_start=ctx["period_start"], period_end=ctx["period_end"], unit=indicator.unit,
        polarity=indicator.polarity, survey_id=ctx["survey_id"],
        estimate_type=DIRECT if ctx["weighted"] else UNWEIGHTED).reset_index(drop=True)


# --- 7. comparisons ---------------------------------------------------------------------------
def _compare_direct(rows: pd.DataFrame, indicator: IndicatorDefinition, baseline, ctx) -> pd.DataFrame:
    rows = rows.copy()
    la_all = rows[(rows["area_type"] == "la") & (rows["breakdown"] == "All")]
    la_value = float(la_all["value"].iloc[0]) if len(la_all) and pd.notna(la_all["value"].iloc[0]) else np.nan
    rows["comparator"] = f"{ctx['la_name']} (all respondents, this survey)"
    rows["comparator_value"] = la_value
    is_la_all = (rows["area_type"] == "la") & (rows["breakdown"] == "All")
    baseline_value = (float(baseline[indicator.baseline]) if baseline is not None and indicator.baseline
                      and indicator.baseline in baseline and pd.notna(baseline[indicator.baseline]) else None)
    if baseline_value is not None:
        rows.loc[is_la_all, "comparator"] = f"Place Survey 2008: {baseline['authority']}"
        rows.loc[is_la_all, "comparator_value"] = baseline_value
    elif indicator.benchmark is not None:
        rows.loc[is_la_all, "comparator"] = indicator.benchmark
        rows.loc[is_la_all, "comparator_value"] = indicator.benchmark_value
    else:
        rows.loc[is_la_all, "comparator"] = None
        rows.loc[is_la_all, "comparator_value"] = np.nan
    if indicator.benchmark is not None:
        rows.loc[is_la_all, "benchmark"] = indicator.benchmark
        rows.loc[is_la_all, "benchmark_value"] = indicator.benchmark_value
        rows.loc[is_la_all, "benchmark_significance"] = compare_to_comparator(
            rows.loc[is_la_all, "lower_95"], rows.loc[is_la_all, "upper_95"],
            [indicator.benchmark_value] * int(is_la_all.sum())).to_numpy()
    rows["significance"] = compare_to_comparator(rows["lower_95"], rows["upper_95"], rows["comparator_value"]).to_numpy()
    return rows


# --- 6. model-based ward estimates -------------------------------------------------------------
def _ward_covariates(con, fieldwork, wanted) -> pd.DataFrame:
    """Ward covariates from the estimates at the date nearest the fieldwork: turbulence, minority share."""
    dates = [r[0] for r in con.execute("SELECT DISTINCT reference_date FROM population_estimates").fetchall()]
    if not dates:
        return pd.DataFrame(columns=["ward_code"])
    dates = [d.date() if isinstance(d, dt.datetime) else d for d in dates]
    nearest = min(dates, key=lambda d: abs((d - (fieldwork or max(dates))).days))
    cov = con.execute("""SELECT area_code AS ward_code, avg(turbulence) AS turbulence FROM population_estimates
        WHERE area_type = 'ward' AND sex = 'All' AND age_band = 'All' AND reference_date = ? GROUP BY area_code""",
                      [nearest]).df()
    try:
        mix = con.execute("""SELECT area_code AS ward_code, 1 - sum(CASE WHEN ethnic_group = 'White' THEN share ELSE 0 END)
            AS minority_share FROM ethnicity_estimates WHERE area_type = 'ward' AND reference_date = ?
            GROUP BY area_code""", [nearest]).df()
        cov = cov.merge(mix, on="ward_code", how="left")
    except Exception:  # noqa: BLE001 - a district without ethnicity estimates models without that covariate
        pass
    keep = ["ward_code"] + [c for c in wanted if c in cov.columns and cov[c].notna().all()]
    return cov[keep]


def _modelled_rows(direct: pd.DataFrame, indicator: IndicatorDefinition, covariates: pd.DataFrame, ctx):
    wards = direct[(direct["area_type"] == "ward") & (direct["breakdown"] == "All")].copy()
    all_wards = pd.DataFrame({"area_code": covariates["ward_code"]}) if len(covariates) else wards[["area_code"]]
    frame = all_wards.merge(wards, on="area_code", how="left")
    frame = frame.merge(covariates.rename(columns={"ward_code": "area_code"}), on="area_code", how="left")
    names = [c for c in covariates.columns if c != "ward_code"]
    info = {"fitted": False}
    fit = None
    for use in ([names, []] if names else [[]]):
        x = np.column_stack([np.ones(len(frame))] + [_standardise(frame[c]) for c in use])
        fit, info = estimate_fay_herriot_proportions(frame["_direct_value"], frame["_direct_n_eff"].fillna(0), x)
        info = {**info, "covariates": use}
        if info["fitted"]:
            break
    if fit is None or not info["fitted"]:
        info["note"] = "model not fitted: " + info.get("reason", "")
        log.warning("%s: Fay-Herriot ward model not fitted (%s); only direct ward estimates published",
                    indicator.id, info.get("reason"))
        return pd.DataFrame(), {k: v for k, v in info.items() if k != "beta"}
    la_all = direct[(direct["area_type"] == "la") & (direct["breakdown"] == "All")]
    la_value = float(la_all["value"].iloc[0]) if len(la_all) else np.nan
    rows = pd.DataFrame({
        "indicator_id": f"{indicator.id}_modelled",
        "indicator_name": f"{indicator.name} - model-based ward estimate",
        "domain": indicator.domain, "area_code": frame["area_code"],
        "area_name": frame["area_code"].map(lambda c: ctx["names"].get(c, c)), "area_type": "ward",
        "period_start": ctx["period_start"], "period_end": ctx["period_end"], "breakdown": "All",
        "value": fit["estimate"].to_numpy() * 100, "unit": indicator.unit,
        "lower_95": fit["lower_95"].to_numpy() * 100, "upper_95": fit["upper_95"].to_numpy() * 100,
        "comparator": f"{ctx['la_name']} (all respondents, this survey)", "comparator_value": la_value,
        "polarity": indicator.polarity, "estimate_type": MODELLED, "survey_id": ctx["survey_id"],
        "respondents": frame["respondents"].to_numpy(),  # empty where the direct base is suppressed
    })
    rows["note"] = np.where(fit["synthetic"], "no respondents: synthetic estimate from the ward's covariates only",
                            "Fay-Herriot: direct estimate shrunk towards the model by " +
                            ((1 - fit["gamma"]) * 100).round(0).astype(int).astype(str) + "%")
    rows["significance"] = compare_to_comparator(rows["lower_95"], rows["upper_95"], rows["comparator_value"]).to_numpy()
    out = {k: v for k, v in info.items()}
    return rows, out


def _standardise(values: pd.Series) -> np.ndarray:
    v = values.astype(float).to_numpy()
    sd = v.std()
    return (v - v.mean()) / sd if sd > 0 else np.zeros_like(v)


def _write(con, table: pd.DataFrame) -> None:
    table = table.reindex(columns=list(OUTPUT_COLUMNS))
    for col in ("numerator", "denominator", "value", "lower_95", "upper_95", "comparator_value", "effective_n",
                "design_effect", "unweighted_value", "benchmark_value"):
        table[col] = pd.to_numeric(table[col], errors="coerce").astype(float)
    table["respondents"] = pd.to_numeric(table["respondents"], errors="coerce").astype("Int64")
    for col in ("period_start", "period_end"):
        table[col] = pd.to_datetime(table[col]).dt.date.astype(object)  # DATE in DuckDB, as other indicator tables
    for col in set(OUTPUT_COLUMNS) - {"numerator", "denominator", "value", "lower_95", "upper_95", "comparator_value",
                                      "effective_n", "design_effect", "unweighted_value", "benchmark_value",
                                      "respondents", "period_start", "period_end"}:
        table[col] = table[col].astype(object).where(table[col].notna(), None)
    con.register("psa21_indicators_frame", table)
    con.execute("CREATE OR REPLACE TABLE psa21_indicators AS SELECT * FROM psa21_indicators_frame")
    con.unregister("psa21_indicators_frame")
