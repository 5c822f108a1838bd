"""Does the school census measure how the GP list's inflation changes? (issue 9, before using it)

On districts of the independent regimes simulator (benchmarks/regimes, which writes the LA's
school census from the true residents), per LSOA, ward (the LSOAs' best-fit wards) and LA, at
every extract t after the first (t0):

* the observed signal: g_obs(t) = [Lc(t) / S(t)] / [Lc(t0) / S(t0)], with Lc the list's children
  of years R-11 (from single years of age at the extract, weighted by the share of each age in
  years R-11 on that date: age 4 x (1 - f), 5-15 x 1, 16 x f, f = share of the academic year gone)
  and S the pupils on the census nearest the extract (home postcode);
* the truth it should track: the change in the list's inflation of the same children,
  g_child(t) = [Lc(t) / Tc(t)] / [Lc(t0) / Tc(t0)] (Tc = true resident children, same weights),
  and of all ages, g_all(t) = [L(t) / T(t)] / [L(t0) / T(t0)].

What the estimates assume today is g = 1 (inflation fixed at t0). The table compares the mean
absolute error of g_obs (taken at the area's own level, and at its ward's or LA's for an LSOA)
against that of g = 1, per regime x horizon, for children and for all ages, and the correlation
across areas. Errors of g are, to first order, errors of the estimated change as a share of the
population.

    .venv/bin/python benchmarks/diagnose_school_signal.py --seeds 3 --first-seed 13101

Results: benchmarks/results/regimes_school_signal_diagnostic.md and .csv.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.regimes import REGIMES, RegimeSettings, simulate  # noqa: E402
from benchmarks.regimes.world import EPOCH, ages_on  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
AGES = 91


def school_age_weights(day: dt.date) -> np.ndarray:
    """Weight of each single year of age (0..90) at `day` in national curriculum years R-11, births
    spread evenly over the year: age 4 x (1 - f), 5-15 x 1, 16 x f, f = share of the academic year
    (from 1 September) gone by `day`."""
    start = dt.date(day.year if day.month >= 9 else day.year - 1, 9, 1)
    f = (day - start).days / 365.25
    w = np.zeros(AGES)
    w[5:16] = 1.0
    w[4] = 1.0 - f
    w[16] = f
    return w


def date_of(day: int) -> dt.date:
    return (EPOCH + np.timedelta64(int(day), "D")).astype(object)


def area_series(world) -> pd.DataFrame:
    """Per LSOA x extract: Lc, S (nearest census), Tc, L, T; with ward and churn."""
    geo = world.geo
    n = len(geo.lsoas)
    census = {int(r["census_day"].iloc[0]): r for r in world.school_rolls.records if len(r)}
    cdays = np.array(sorted(census))
    truth = world.truth_lsoa
    lsoa_index = dict(zip(geo.lsoas["lsoa_code"], geo.lsoas["idx"]))
    rows = []
    for k, day in enumerate(world.extract_days):
        w = school_age_weights(date_of(day))
        snap = world.snapshots[day]
        li = geo.pc_lsoa[snap["postcode"].to_numpy()]
        keep = li >= 0
        li = li[keep]
        age = np.minimum(ages_on(snap["dob"].to_numpy()[keep], day), AGES - 1)
        L = np.bincount(li, minlength=n).astype(float)
        Lc = np.bincount(li, weights=w[np.maximum(age, 0)], minlength=n)
        t = truth[truth["reference_date"] == str(date_of(day))]
        ti = t["lsoa_code"].map(lsoa_index).to_numpy()
        T = np.bincount(ti, weights=t["population"].to_numpy(float), minlength=n)
        Tc = np.bincount(ti, weights=t["population"].to_numpy(float) * w[t["age"].to_numpy()], minlength=n)
        c = int(cdays[np.argmin(np.abs(cdays - day))])
        rec = census[c]
        pl = geo.pc_lsoa[rec["postcode"].to_numpy()]
        S = np.bincount(pl[pl >= 0], minlength=n).astype(float)
        rows.append(pd.DataFrame({"k": k, "extract_date": str(date_of(day)), "census_date": str(date_of(c)),
                                  "lsoa_code": geo.lsoas["lsoa_code"], "ward_code": geo.lsoas["ward_code"],
                                  "L": L, "Lc": Lc, "S": S, "T": T, "Tc": Tc}))
    out = pd.concat(rows, ignore_index=True)
    facts = world.lsoa_facts[["lsoa_code", "churn", "student_area"]]
    out = out.merge(facts, on="lsoa_code", how="left")
    out["high_churn"] = out["churn"] > facts["churn"].quantile(2 / 3)
    return out


def changes(series: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """g_obs, g_child and g_all for the areas named by `keys` (sums of the LSOAs' counts)."""
    agg = series.groupby([*keys, "k"], as_index=False)[["L", "Lc", "S", "T", "Tc"]].sum()
    first = agg[agg["k"] == 0].drop(columns="k")
    agg = agg.merge(first, on=keys, how="left", suffixes=("", "0"))
    with np.errstate(divide="ignore", invalid="ignore"):
        agg["g_obs"] = (agg["Lc"] / agg["S"]) / (agg["Lc0"] / agg["S0"])
        agg["g_child"] = (agg["Lc"] / agg["Tc"]) / (agg["Lc0"] / agg["Tc0"])
        agg["g_all"] = (agg["L"] / agg["T"]) / (agg["L0"] / agg["T0"])
    return agg


def lsoa_signals(series: pd.DataFrame) -> pd.DataFrame:
    """Per LSOA x extract: the truth (g_child, g_all) beside the observed signal at the LSOA's own
    level, its ward's and its LA's."""
    own = changes(series, ["lsoa_code"])
    ward = changes(series, ["ward_code"])[["ward_code", "k", "g_obs"]].rename(columns={"g_obs": "g_obs_ward"})
    la = changes(series.assign(la="LA"), ["la"])[["k", "g_obs"]].rename(columns={"g_obs": "g_obs_la"})
    out = own.merge(series[["lsoa_code", "k", "ward_code", "high_churn", "student_area", "Tc"]].rename(columns={"Tc": "tc"}),
                    on=["lsoa_code", "k"])
    return out.merge(ward, on=["ward_code", "k"]).merge(la, on="k")


def score(d: pd.DataFrame, signal: str, target: str) -> dict:
    ok = d[[signal, target]].replace([np.inf, -np.inf], np.nan).dropna()
    e = (ok[signal] - ok[target]).abs().mean() * 100
    e1 = (1 - ok[target]).abs().mean() * 100
    r = ok[signal].corr(ok[target]) if len(ok) > 2 and ok[signal].std() > 0 else np.nan
    return {"mae": e, "mae_no_change": e1, "corr": r, "mean_signal": (ok[signal].mean() - 1) * 100,
            "mean_target": (ok[target].mean() - 1) * 100, "n": len(ok)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=REGIMES)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=13101)
    ap.add_argument("--n-lsoas", type=int, default=35)
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--name", default="regimes_school_signal_diagnostic")
    args = ap.parse_args(argv)
    rows, per_area = [], []
    for regime in args.regimes:
        for s in range(args.seeds):
            seed = args.first_seed + 100 * REGIMES.index(regime) + s
            t = time.perf_counter()
            world = simulate(RegimeSettings(regime=regime, seed=seed, n_lsoas=args.n_lsoas))
            series = area_series(world)
            lsoa = lsoa_signals(series).assign(regime=regime, seed=seed, level="lsoa")
            ward = changes(series, ["ward_code"]).assign(regime=regime, seed=seed, level="ward")
            la = changes(series.assign(la="LA"), ["la"]).assign(regime=regime, seed=seed, level="la")
            per_area += [lsoa, ward, la]
            print(f"{regime} seed {seed}: {time.perf_counter() - t:.0f}s", flush=True)
    allx = pd.concat(per_area, ignore_index=True)
    years = {4: "1y", 8: "2y"}
    for (regime, level), d in allx.groupby(["regime", "level"]):
        for k, label in years.items():
            h = d[d["k"] == k]
            subsets = [("all", h)]
            if level == "lsoa":
                subsets.append(("high_churn", h[h["high_churn"] == True]))  # noqa: E712
            for subset, x in subsets:
                signals = [("own", "g_obs")] + ([("ward", "g_obs_ward"), ("la", "g_obs_la")] if level == "lsoa" else [])
                for sig_level, col in signals:
                    for target in ("g_child", "g_all"):
                        rows.append({"regime": regime, "level": level, "subset": subset, "horizon": label,
                                     "signal_from": sig_level, "target": target, **score(x, col, target)})
    table = pd.DataFrame(rows)
    mean = (table.groupby(["level", "subset", "horizon", "signal_from", "target"], as_index=False)
            [["mae", "mae_no_change", "corr", "mean_signal", "mean_target", "n"]].mean().assign(regime="mean"))
    table = pd.concat([table, mean], ignore_index=True).round(3)
    args.results.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.results / f"{args.name}.csv", index=False)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    cmd = "python benchmarks/diagnose_school_signal.py " + " ".join(argv if argv is not None else sys.argv[1:])
    (args.results / f"{args.name}.md").write_text(markdown(table, cmd.strip(), commit, args))
    print(table[(table["subset"] == "all") & (table["horizon"] == "2y")].to_string())
    return 0


def markdown(table: pd.DataFrame, cmd: str, commit: str, args) -> str:
    def fmt(df):
        df = df.copy()
        for c in df.columns:
            if df[c].dtype.kind == "f":
                df[c] = df[c].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
        return "\n".join(["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns),
                          *("| " + " | ".join(map(str, r)) + " |" for r in df.itertuples(index=False))])
    lines = [f"# Issue 9: does the school census measure the change in list inflation? ({args.name})", "",
             f"Command: `{cmd}` at `{commit}`. Districts: {args.n_lsoas} LSOAs of the regimes simulator, "
             f"{args.seeds} seeds per regime from {args.first_seed} (regime r: + 100 r). Method: the module docstring "
             "of `benchmarks/diagnose_school_signal.py`.", "",
             "`mae`: mean |signal - truth| in points (signal = the observed g_obs from the area's own counts, or "
             "for an LSOA from its ward's or the LA's); `mae_no_change`: the same for g = 1, what the estimates "
             "assume today; `corr`: correlation across areas of signal and truth; `mean_*`: mean change in %; "
             "g_child: change in the list's inflation of children of years R-11; g_all: of all ages.", ""]
    for target in ("g_all", "g_child"):
        for horizon in ("2y", "1y"):
            t = table[(table["target"] == target) & (table["horizon"] == horizon)]
            lines += [f"## {target}, {horizon}", "",
                      fmt(t[["regime", "level", "subset", "signal_from", "mae", "mae_no_change", "corr", "mean_signal",
                             "mean_target", "n"]]), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
