"""Back-test of the population estimates on districts from the independent regimes simulator.

For each regime (benchmarks/regimes: steady, growing, outside, students, base_tail) x fresh seed
it simulates a district once, writes it in each data mode an analyst may hold (register with
movements; register snapshots only; published counts only), runs the pipeline through the
normal CLI (`.venv/bin/cohesion estimates --data-dir <folder>`), and compares
`population_estimates` (and `population_estimates_methods` for ratio change and the base
carried forward) with the simulator's truth:

* MAPE and bias (mean of estimate / truth - 1) by level (LSOA, MSOA, ward, LA) x sex x age band
  x data mode x regime, at one and two years after the first extract;
* 95% coverage and mean relative width ((upper - lower) / truth) of the intervals;
* the figures issue 9's "Done when" names: LSOA MAPE against ratio change overall and in the
  third of LSOAs with the highest churn, coverage of LSOA totals and of LA and ward sex x age
  cells, LA sex x age mean absolute error at two years.

Wards are compared only where the district holds every postcode of the ward. Per-cell errors
(every area x date x sex x band, with ratio change beside) go to
benchmarks/work/backtest_regimes/cell_errors.csv for a calibration to consume
("calibrate on one regime, evaluate on another"); this script changes no model parameter.

Seeds: --first-seed (default 7101) + 100 x the regime's index + 0, 1, ... (never the demo's 101-106 /
201-206; seeds already used: 7101-7501, 8101-8106, 9101-9502, 11101-11503 (issue 9: used to choose
blend_covariate), 12101-12503 (issue 9: its confirmation), 13101-13503 (issue 9: choosing how to use
the school census), 14101-14503 (issue 9: confirming it), 15101-16503 (issue 9: margins), 17101-17503 (issue 9: choosing
the deaths and newborns rule for the LA cells), 18101-18503 (its confirmation)).

Every district now also writes the LA's school census (benchmarks/regimes/schools.py; its own
random stream, so the registers, base and truth of a seed are as before); `--no-school-census`
leaves it out, as every run before issue 9's school signal did.

    .venv/bin/python benchmarks/backtest_regimes.py                       # all regimes, 1 seed each
    .venv/bin/python benchmarks/backtest_regimes.py --seeds 2 --regimes steady students

Results: benchmarks/results/regimes_backtest.md and .csv (committed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.regimes import MODES, REGIMES, RegimeSettings, simulate, write_raw  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / "work" / "backtest_regimes"
FIRST_SEED = 7101
BANDS = [f"{a}-{a + 4}" for a in range(0, 85, 5)] + ["85+"]
HORIZONS = {1.0: "1y", 2.0: "2y"}


def band_of(age: np.ndarray) -> np.ndarray:
    return np.array(BANDS)[np.minimum(age // 5, 17)]


# ----------------------------------------------------------------------------------- truth

def truth_cells(data_dir: Path) -> pd.DataFrame:
    """True residents by area (LSOA, MSOA, complete wards, LA) x date x sex x band, with All margins."""
    t = data_dir / "truth"
    lsoa = pd.read_csv(t / "population_lsoa.csv")
    ward = pd.read_csv(t / "population_ward.csv")
    facts = pd.read_csv(t / "lsoa_facts.csv")
    pcs = pd.read_csv(data_dir / "raw" / "geography" / "postcode_directory.csv")
    district = set(facts["lsoa_code"])
    ward_in = pcs.groupby("wd23cd")["lsoa21cd"].agg(lambda s: set(s) <= district)
    complete_wards = set(ward_in[ward_in].index)
    la = pcs["lad23cd"].iloc[0]
    lsoa["age_band"] = band_of(lsoa["age"].to_numpy())
    lsoa = lsoa.merge(facts[["lsoa_code", "msoa_code"]], on="lsoa_code")
    parts = [lsoa.rename(columns={"lsoa_code": "area_code"}).assign(area_type="lsoa"),
             lsoa.rename(columns={"msoa_code": "area_code"}).assign(area_type="msoa"),
             lsoa.assign(area_code=la, area_type="la")]
    ward = ward[ward["ward_code"].isin(complete_wards)].copy()
    ward["age_band"] = band_of(ward["age"].to_numpy())
    parts.append(ward.rename(columns={"ward_code": "area_code"}).assign(area_type="ward"))
    keys = ["area_code", "area_type", "reference_date", "sex", "age_band"]
    cells = pd.concat([p[keys + ["population"]] for p in parts]).groupby(keys, as_index=False)["population"].sum()
    by_sex = cells.groupby(["area_code", "area_type", "reference_date", "sex"], as_index=False)["population"].sum().assign(age_band="All")
    by_band = cells.groupby(["area_code", "area_type", "reference_date", "age_band"], as_index=False)["population"].sum().assign(sex="All")
    total = cells.groupby(["area_code", "area_type", "reference_date"], as_index=False)["population"].sum().assign(sex="All", age_band="All")
    out = pd.concat([cells, by_sex, by_band, total], ignore_index=True).rename(columns={"population": "truth"})
    return out


# ------------------------------------------------------------------------------------ runs

def run_pipeline(folder: Path) -> tuple[bool, str, float]:
    t = time.perf_counter()
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "cohesion"), "estimates", "--data-dir", str(folder)],
                          capture_output=True, text=True, cwd=ROOT)
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
    return proc.returncode == 0, " ".join(x.strip() for x in tail), time.perf_counter() - t


def estimates_of(folder: Path) -> pd.DataFrame:
    con = duckdb.connect(str(folder / "processed" / "cohesion.duckdb"), read_only=True)
    try:
        pe = con.execute("SELECT area_code, area_type, CAST(reference_date AS VARCHAR) AS reference_date, sex, age_band, "
                         "estimate, lower_95, upper_95, method FROM population_estimates").df()
        me = con.execute("SELECT area_code, area_type, CAST(reference_date AS VARCHAR) AS reference_date, sex, age_band, "
                         "method, estimate FROM population_estimates_methods "
                         "WHERE method IN ('ratio_change', 'base_carried_forward', 'raw_list')").df()
    finally:
        con.close()
    me = me.pivot_table(index=["area_code", "area_type", "reference_date", "sex", "age_band"], columns="method",
                        values="estimate").reset_index()
    me.columns.name = None
    return pe.merge(me, on=["area_code", "area_type", "reference_date", "sex", "age_band"], how="left")


def quarantine_rows(folder: Path) -> int:
    report = json.loads((folder / "processed" / "run_report.json").read_text())
    return int(report.get("totals", {}).get("rows_quarantined", 0))


def compare(folder: Path, truth: pd.DataFrame, regime: str, seed: int, mode: str, first_extract: str,
            facts: pd.DataFrame) -> pd.DataFrame:
    est = estimates_of(folder)
    cells = est.merge(truth, on=["area_code", "area_type", "reference_date", "sex", "age_band"], how="inner")
    first = pd.Timestamp(first_extract)
    cells["years"] = ((pd.to_datetime(cells["reference_date"]) - first).dt.days / 365.25).round(2)
    churn = facts[["lsoa_code", "churn", "student_area"]].rename(columns={"lsoa_code": "area_code"})
    q = facts["churn"].quantile(2 / 3)
    churn["high_churn"] = churn["churn"] > q
    cells = cells.merge(churn, on="area_code", how="left")
    cells["regime"], cells["seed"], cells["mode"] = regime, seed, mode
    return cells


# --------------------------------------------------------------------------------- metrics

def ape(est, truth):
    return np.abs(est / truth - 1)


def summarise(cells: pd.DataFrame) -> pd.DataFrame:
    """MAPE, bias, coverage, width per regime x mode x horizon x level x sex x band."""
    c = cells[(cells["truth"] > 0) & cells["years"].isin(list(HORIZONS))].copy()
    c["horizon"] = c["years"].map(HORIZONS)
    c["rel"] = c["estimate"] / c["truth"] - 1
    c["rel_rc"] = c["ratio_change"] / c["truth"] - 1
    has_ci = c["lower_95"].notna() & c["upper_95"].notna()
    c["covered"] = np.where(has_ci, ((c["lower_95"] <= c["truth"]) & (c["truth"] <= c["upper_95"])).astype(float), np.nan)
    c["width"] = np.where(has_ci, (c["upper_95"] - c["lower_95"]) / c["truth"], np.nan)
    g = c.groupby(["regime", "mode", "horizon", "area_type", "sex", "age_band"])
    out = g.agg(n=("rel", "size"), mape=("rel", lambda x: np.abs(x).mean() * 100), bias=("rel", lambda x: x.mean() * 100),
                mape_ratio_change=("rel_rc", lambda x: np.abs(x).mean() * 100),
                bias_ratio_change=("rel_rc", lambda x: x.mean() * 100),
                coverage=("covered", lambda x: x.mean() * 100), width=("width", lambda x: x.mean() * 100)).reset_index()
    return out.round(3)


def headline(cells: pd.DataFrame) -> pd.DataFrame:
    """Issue 9's Done-when figures per regime x mode, at two years (and one)."""
    rows = []
    c = cells[cells["truth"] > 0].copy()
    c["rel"] = c["estimate"] / c["truth"] - 1
    c["rel_rc"] = c["ratio_change"] / c["truth"] - 1
    c["rel_cf"] = c["base_carried_forward"] / c["truth"] - 1
    c["covered"] = np.where(c["lower_95"].notna() & c["upper_95"].notna(),
                            ((c["lower_95"] <= c["truth"]) & (c["truth"] <= c["upper_95"])).astype(float), np.nan)
    for (regime, mode), d in c.groupby(["regime", "mode"]):
        for years, label in HORIZONS.items():
            h = d[d["years"] == years]
            tot = h[(h["area_type"] == "lsoa") & (h["sex"] == "All") & (h["age_band"] == "All")]
            hi = tot[tot["high_churn"] == True]  # noqa: E712
            stu = tot[tot["student_area"] == True]  # noqa: E712
            cell = (h["sex"] != "All") & (h["age_band"] != "All")
            la_cells = h[(h["area_type"] == "la") & cell]
            ward_cells = h[(h["area_type"] == "ward") & cell]
            la_tot = h[(h["area_type"] == "la") & (h["sex"] == "All") & (h["age_band"] == "All")]
            lsoa_all_cells = h[(h["area_type"] == "lsoa") & cell]
            rows.append({
                "regime": regime, "mode": mode, "horizon": label, "runs": d["seed"].nunique(),
                "lsoa_mape": tot["rel"].abs().mean() * 100, "lsoa_mape_ratio_change": tot["rel_rc"].abs().mean() * 100,
                "lsoa_mape_carried_forward": tot["rel_cf"].abs().mean() * 100,
                "lsoa_bias": tot["rel"].mean() * 100, "lsoa_bias_ratio_change": tot["rel_rc"].mean() * 100,
                "high_churn_mape": hi["rel"].abs().mean() * 100, "high_churn_mape_ratio_change": hi["rel_rc"].abs().mean() * 100,
                "student_area_mape": stu["rel"].abs().mean() * 100 if len(stu) else np.nan,
                "student_area_mape_ratio_change": stu["rel_rc"].abs().mean() * 100 if len(stu) else np.nan,
                "lsoa_total_coverage": tot["covered"].mean() * 100,
                "lsoa_total_width": ((tot["upper_95"] - tot["lower_95"]) / tot["truth"]).mean() * 100,
                "lsoa_cell_coverage": lsoa_all_cells["covered"].mean() * 100,
                "ward_cell_coverage": ward_cells["covered"].mean() * 100 if len(ward_cells) else np.nan,
                "la_cell_coverage": la_cells["covered"].mean() * 100,
                "la_cell_mae": la_cells["rel"].abs().mean() * 100,
                "la_cell_mae_ratio_change": la_cells["rel_rc"].abs().mean() * 100,
                "la_total_error": la_tot["rel"].mean() * 100,
                "la_total_error_ratio_change": la_tot["rel_rc"].mean() * 100,
            })
    return pd.DataFrame(rows).round(2)


def draws_table(cells: pd.DataFrame, work: Path) -> pd.DataFrame:
    """What each simulated district drew: the base's LA-wide error, the list / truth ratio (the
    pipeline's own raw list over the true residents, LA) at the first and last extract."""
    rows = []
    la = cells[(cells["area_type"] == "la") & (cells["sex"] == "All") & (cells["age_band"] == "All")
               & (cells["mode"] == cells["mode"].iloc[0])]
    for (regime, seed), d in la.groupby(["regime", "seed"]):
        d = d.sort_values("reference_date")
        facts_file = next(iter(sorted(work.glob(f"{regime}_s{seed}_*/truth/lsoa_facts.csv"))), None)
        base_err = pd.read_csv(facts_file)["base_error_la"].iloc[0] if facts_file else np.nan
        rows.append({"regime": regime, "seed": seed, "base_la_error_pct": np.expm1(base_err) * 100,
                     "list_ratio_first": d["raw_list"].iloc[0] / d["truth"].iloc[0],
                     "list_ratio_last": d["raw_list"].iloc[-1] / d["truth"].iloc[-1],
                     "true_growth_pct": (d["truth"].iloc[-1] / d["truth"].iloc[0] - 1) * 100})
    return pd.DataFrame(rows).round(3)


# ------------------------------------------------------------------------------------ main

def markdown(head: pd.DataFrame, summary: pd.DataFrame, meta: dict, draws: pd.DataFrame | None = None) -> str:
    lines = ["# Back-test on independently simulated regimes (benchmarks/regimes)", "",
             f"Model: the pipeline on `main` at `{meta.get('main', '?')}` (`pipeline/`, `schemas/`, `config.toml` last changed in "
             f"commit `{meta['commit']}`), run {meta['date']}. Command: `{meta['command']}`.",
             f"Districts: {meta['n_lsoas']} LSOAs of real Trafford geography each, real ONS mid-2022 residents; "
             f"seeds {meta['seeds']} (fresh: never the demo's 101-106/201-206, never used to choose a model); "
             "nine quarterly extracts from 2022-10-01 after a base dated 2022-06-30. Horizons are years after the "
             "first extract. Percentages: MAPE = mean |estimate / truth - 1|, bias = mean (estimate / truth - 1), "
             "coverage of the published 95% intervals, width = mean (upper - lower) / truth. High churn = the third "
             "of LSOAs with the highest churn multiplier (the simulator's, from the real share aged 20-34).", "",
             "What the simulator assumes and where each size comes from: `benchmarks/regimes/facts.py`.", ""]
    if draws is not None and len(draws):
        lines += ["## What each district drew", "",
                  "The published base's LA-wide error (estimate / truth - 1), and the district's list over its true "
                  "residents (in-district postcodes) at the first and last extract.", "", _table(draws), ""]
    if meta.get("failures"):
        lines += ["## Runs that did not complete", ""] + [f"- {f}" for f in meta["failures"]] + [""]
    lines += ["## Issue 9's figures (cohdmap against ratio change, per regime and data mode)", ""]
    cols = ["regime", "mode", "horizon", "runs", "lsoa_mape", "lsoa_mape_ratio_change", "lsoa_mape_carried_forward",
            "lsoa_bias", "high_churn_mape", "high_churn_mape_ratio_change", "student_area_mape",
            "student_area_mape_ratio_change", "lsoa_total_coverage", "lsoa_total_width", "ward_cell_coverage",
            "la_cell_coverage", "la_cell_mae", "la_cell_mae_ratio_change", "la_total_error", "la_total_error_ratio_change"]
    lines += [_table(head[cols])]
    lines += ["", "## LA by sex x age band at two years: bias % (cohdmap / ratio change)", ""]
    la = summary[(summary["area_type"] == "la") & (summary["horizon"] == "2y") & (summary["sex"] != "All")
                 & (summary["age_band"] != "All")].copy()
    if len(la):
        la["cell"] = la["bias"].map("{:+.1f}".format) + " / " + la["bias_ratio_change"].map("{:+.1f}".format)
        piv = la.pivot_table(index=["regime", "mode", "sex"], columns="age_band", values="cell", aggfunc="first")
        piv = piv[[b for b in BANDS if b in piv.columns]]
        lines += [_table(piv.reset_index())]
    lines += ["", "## By level at two years, all ages both sexes (MAPE / bias / coverage / width, %)", ""]
    lv = summary[(summary["horizon"] == "2y") & (summary["sex"] == "All") & (summary["age_band"] == "All")]
    lines += [_table(lv[["regime", "mode", "area_type", "n", "mape", "bias", "mape_ratio_change", "bias_ratio_change",
                         "coverage", "width"]])]
    lines += ["", "Full breakdown (level x sex x band x mode x regime x horizon): `regimes_backtest.csv`. "
              "Per-cell errors for calibration: `benchmarks/work/backtest_regimes/cell_errors.csv` (not committed; "
              "regenerate with the command above).", ""]
    return "\n".join(lines)


def _table(df: pd.DataFrame) -> str:
    df = df.copy()
    for c in df.columns:
        if df[c].dtype.kind == "f":
            df[c] = df[c].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "---|" * len(df.columns)
    body = ["| " + " | ".join(map(str, r)) + " |" for r in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=REGIMES)
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--seeds", type=int, default=1, help="seeds per regime (first-seed, first-seed + 1, ...)")
    ap.add_argument("--first-seed", type=int, default=FIRST_SEED,
                    help="seed of the first regime's first district; regime r (in REGIMES order) uses "
                         "first-seed + 100 r + 0, 1, ... (default 7101; pass a value never used before for fresh seeds)")
    ap.add_argument("--n-lsoas", type=int, default=35)
    ap.add_argument("--work", type=Path, default=WORK)
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--keep", action="store_true", help="keep each run's data folder")
    ap.add_argument("--no-school-census", action="store_true",
                    help="do not write raw/school_census/ (as every run before the school signal)")
    ap.add_argument("--reuse", action="store_true",
                    help="keep the last run's results for regime x seed x mode already in cell_errors.csv "
                         "(only valid when neither the simulator nor the pipeline changed since)")
    ap.add_argument("--report-only", action="store_true",
                    help="rebuild the results from the last run's cell_errors.csv without simulating or estimating")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "log", "-1", "--format=%h", "--", "pipeline", "schemas", "config.toml"],
                            capture_output=True, text=True, cwd=ROOT).stdout.strip()
    main_commit = subprocess.run(["git", "rev-parse", "--short", "main"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    all_cells, failures, seeds = [], [], []
    if args.report_only:
        previous = json.loads((args.work / "run.json").read_text())
        cells = pd.read_csv(args.work / "cell_errors.csv")
        return report(cells, args, previous)
    done = set()
    if args.reuse and (args.work / "cell_errors.csv").exists():
        old = pd.read_csv(args.work / "cell_errors.csv")
        all_cells.append(old)
        done = set(old[["regime", "seed", "mode"]].drop_duplicates().itertuples(index=False, name=None))
    for r_i, regime in enumerate(args.regimes):
        for s_i in range(args.seeds):
            seed = args.first_seed + 100 * REGIMES.index(regime) + s_i
            seeds.append(seed)
            if all((regime, seed, mode) in done for mode in args.modes):
                print(f"{regime} seed {seed}: reused", flush=True)
                continue
            t = time.perf_counter()
            settings = RegimeSettings(regime=regime, seed=seed, n_lsoas=args.n_lsoas)
            world = simulate(settings)
            print(f"{regime} seed {seed}: simulated in {time.perf_counter() - t:.1f}s", flush=True)
            truth = None
            for mode in args.modes:
                if (regime, seed, mode) in done:
                    continue
                folder = args.work / f"{regime}_s{seed}_{mode}"
                if folder.exists():
                    shutil.rmtree(folder)
                write_raw(world, folder, mode, school_census=not args.no_school_census)
                if truth is None:
                    truth = truth_cells(folder)
                    facts = pd.read_csv(folder / "truth" / "lsoa_facts.csv")
                ok, tail, secs = run_pipeline(folder)
                if not ok:
                    failures.append(f"{regime} seed {seed} {mode}: {tail}")
                    print(f"  {mode}: FAILED in {secs:.0f}s: {tail}", flush=True)
                    continue
                q = quarantine_rows(folder)
                cells = compare(folder, truth, regime, seed, mode, settings.first_extract, facts)
                cells["quarantined"] = q
                all_cells.append(cells)
                print(f"  {mode}: estimated in {secs:.0f}s ({q} rows quarantined)", flush=True)
                if not args.keep:
                    shutil.rmtree(folder / "raw", ignore_errors=True)
                    shutil.rmtree(folder / "processed" / "data_docs", ignore_errors=True)
    if not all_cells:
        print("no run completed:\n" + "\n".join(failures))
        return 1
    cells = pd.concat(all_cells, ignore_index=True)
    cells.to_csv(args.work / "cell_errors.csv", index=False)
    cmd = "python benchmarks/backtest_regimes.py " + " ".join(argv if argv is not None else sys.argv[1:])
    meta = {"commit": commit, "main": main_commit, "date": dt.date.today().isoformat(), "command": cmd.strip(), "n_lsoas": args.n_lsoas,
            "seeds": ", ".join(map(str, seeds)), "failures": failures}
    (args.work / "run.json").write_text(json.dumps(meta, indent=2))
    return report(cells, args, meta)


def report(cells: pd.DataFrame, args, meta: dict) -> int:
    summary = summarise(cells)
    head = headline(cells)
    args.results.mkdir(parents=True, exist_ok=True)
    summary.to_csv(args.results / "regimes_backtest.csv", index=False)
    head.to_csv(args.results / "regimes_backtest_headline.csv", index=False)
    draws = draws_table(cells, args.work)
    (args.results / "regimes_backtest.md").write_text(markdown(head, summary, meta, draws))
    print(head.to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
