"""Benchmark of the PSA 21 survey indicators against the demo district's truth, over several seeds.

For each seed it generates a small demo district (all 139 LSOAs at a reduced scale, so every
ward is there), runs the pipeline up to the indicators, and compares psa21_indicators with
truth/survey_expected.csv (the population value of each indicator by ward and for the LA):

* LA: absolute error of the weighted value and of the unweighted value (same respondents);
* wards: coverage of the 95% intervals of the direct weighted estimates (published wards, n >= 50)
  and of the model-based (Fay-Herriot) estimates (every ward), and their mean absolute error and
  mean interval width.

    .venv/bin/python benchmarks/bench_psa21.py                 # seeds 301-304
    .venv/bin/python benchmarks/bench_psa21.py --seeds 301 302 --scale 0.2 --survey-size 1500

Results: benchmarks/results/psa21.md and psa21.csv (committed). Work folders go to
benchmarks/work/psa21 (git-ignored). Nothing here is fitted to the truth: the pipeline runs
exactly as `make indicators` would.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from pipeline.config import load_settings
from pipeline.demo import generate_district
from pipeline.run import run_pipeline

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "work" / "psa21"
RESULTS = ROOT / "results"


def run_seed(seed: int, scale: float, survey_size: int, churn_mix: str) -> pd.DataFrame:
    data = WORK / f"seed{seed}_{churn_mix}"
    if data.exists():
        shutil.rmtree(data)
    settings = load_settings(data_dir=data, demo={"seed": seed, "scale": scale, "quarters": 4,
                                                  "survey_size": survey_size, "churn_mix": churn_mix})
    generate_district(settings.demo, data)
    run_pipeline(settings, "indicators")
    con = duckdb.connect(str(data / "processed" / "cohesion.duckdb"), read_only=True)
    rows = con.execute("SELECT * FROM psa21_indicators WHERE breakdown = 'All'").df()
    con.close()
    truth = pd.read_csv(data / "truth" / "survey_expected.csv")
    rows["base_id"] = rows["indicator_id"].str.replace("_modelled", "", regex=False)
    merged = rows.merge(truth, left_on=["base_id", "area_code"], right_on=["indicator_id", "area_code"],
                        suffixes=("", "_truth"))
    merged["seed"], merged["churn_mix"] = seed, churn_mix
    return merged


def summarise(all_rows: pd.DataFrame) -> pd.DataFrame:
    out = []
    for (indicator, seed, mix), g in all_rows.groupby(["base_id", "seed", "churn_mix"]):
        la = g[(g["area_type"] == "la") & ~g["indicator_id"].str.endswith("_modelled")]
        direct = g[(g["area_type"] == "ward") & ~g["indicator_id"].str.endswith("_modelled") & g["value"].notna()]
        model = g[(g["area_type"] == "ward") & g["indicator_id"].str.endswith("_modelled")]

        def cover(frame):
            return float(((frame["lower_95"] <= frame["expected_value"]) & (frame["expected_value"] <= frame["upper_95"])).mean()) \
                if len(frame) else np.nan

        out.append({
            "indicator": indicator, "seed": seed, "churn_mix": mix,
            "la_truth": float(la["expected_value"].iloc[0]),
            "la_weighted_error": float(abs(la["value"].iloc[0] - la["expected_value"].iloc[0])),
            "la_unweighted_error": float(abs(la["unweighted_value"].iloc[0] - la["expected_value"].iloc[0])),
            "la_covered": bool(la["lower_95"].iloc[0] <= la["expected_value"].iloc[0] <= la["upper_95"].iloc[0]),
            "wards_direct": len(direct), "direct_coverage": cover(direct),
            "direct_mae": float((direct["value"] - direct["expected_value"]).abs().mean()),
            "direct_width": float((direct["upper_95"] - direct["lower_95"]).mean()),
            "wards_model": len(model), "model_coverage": cover(model),
            "model_mae": float((model["value"] - model["expected_value"]).abs().mean()) if len(model) else np.nan,
            "model_width": float((model["upper_95"] - model["lower_95"]).mean()) if len(model) else np.nan,
        })
    return pd.DataFrame(out)


def write_report(summary: pd.DataFrame, args, seconds: float) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary.to_csv(RESULTS / "psa21.csv", index=False, float_format="%.4f")
    by_ind = summary.groupby("indicator").agg(
        la_weighted_mae=("la_weighted_error", "mean"), la_unweighted_mae=("la_unweighted_error", "mean"),
        weighted_nearer=("la_weighted_error", lambda s: int((s < summary.loc[s.index, "la_unweighted_error"]).sum())),
        la_coverage=("la_covered", "mean"), direct_coverage=("direct_coverage", "mean"),
        model_coverage=("model_coverage", "mean"), direct_mae=("direct_mae", "mean"), model_mae=("model_mae", "mean"),
        direct_width=("direct_width", "mean"), model_width=("model_width", "mean"))
    wards = summary.assign(dc=summary["direct_coverage"] * summary["wards_direct"],
                           mc=summary["model_coverage"] * summary["wards_model"])
    pooled_direct = wards["dc"].sum() / wards["wards_direct"].sum()
    pooled_model = wards["mc"].sum() / wards["wards_model"].sum()
    runs = summary[["seed", "churn_mix"]].drop_duplicates()
    lines = [
        "# PSA 21 survey indicators against the demo truth",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_psa21.py --seeds {' '.join(map(str, args.seeds))} "
        f"--scale {args.scale} --survey-size {args.survey_size} --churn-mix {' '.join(args.churn_mix)}`  ",
        f"{len(runs)} districts (seeds x churn mixes), all 139 LSOAs / 21 wards at scale {args.scale}, "
        f"survey of about {args.survey_size} respondents each; {seconds:.0f} s.",
        "",
        "Truth: the population value of each indicator (truth/survey_expected.csv). Weighted = raked to our own",
        "ward x age x sex estimates at the fieldwork date; unweighted = the same respondents, equal weights.",
        "Direct ward intervals: Wilson on the effective n, published wards only (n >= 50).",
        "Model-based: Fay-Herriot on the logit scale, every ward.",
        "",
        "| indicator | LA error weighted | LA error unweighted | weighted nearer (runs) | LA coverage | "
        "ward direct coverage | ward model coverage | direct MAE | model MAE | direct width | model width |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for ind, r in by_ind.iterrows():
        lines.append(f"| {ind} | {r.la_weighted_mae:.2f} | {r.la_unweighted_mae:.2f} | {int(r.weighted_nearer)}/{len(runs)} | "
                     f"{r.la_coverage:.2f} | {r.direct_coverage:.3f} | {r.model_coverage:.3f} | {r.direct_mae:.2f} | "
                     f"{r.model_mae:.2f} | {r.direct_width:.1f} | {r.model_width:.1f} |")
    lines += [
        "",
        f"All indicators: LA mean absolute error {summary['la_weighted_error'].mean():.2f} points weighted vs "
        f"{summary['la_unweighted_error'].mean():.2f} unweighted; weighted nearer the truth in "
        f"{int((summary['la_weighted_error'] < summary['la_unweighted_error']).sum())} of {len(summary)} LA values.",
        f"Ward 95% interval coverage, pooled: direct {pooled_direct:.3f} ({int(wards['wards_direct'].sum())} ward values), "
        f"model-based {pooled_model:.3f} ({int(wards['wards_model'].sum())} ward values).",
        "",
        "Errors and widths in percentage points. Per-run figures: psa21.csv.",
    ]
    (RESULTS / "psa21.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[301, 302, 303, 304])
    parser.add_argument("--scale", type=float, default=0.15)
    parser.add_argument("--survey-size", type=int, default=2000)
    parser.add_argument("--churn-mix", nargs="+", default=["trafford"])
    args = parser.parse_args()
    start = time.time()
    frames = []
    for seed in args.seeds:
        for mix in args.churn_mix:
            print(f"seed {seed} {mix} ...", flush=True)
            frames.append(run_seed(seed, args.scale, args.survey_size, mix))
    all_rows = pd.concat(frames, ignore_index=True)
    write_report(summarise(all_rows), args, time.time() - start)


if __name__ == "__main__":
    main()
