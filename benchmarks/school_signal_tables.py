"""Issue 9's school-signal tables: the regimes back-test with [estimates] school_signal "la" and
"off" side by side (benchmarks/results/regimes_school_signal.md and .csv).

Reads the headline CSVs that `backtest_regimes.py --results DIR` wrote for each run, and
optionally the point-estimate rows of `diagnose_cohorts.py --variant default --variant noschool`
on a run's kept databases (a run made only with the default: the "off" point estimates re-run in
process by roll_cohorts itself).

    .venv/bin/python benchmarks/school_signal_tables.py --run "choosing|la|13101-13503|DIR|CMD" ... \\
        [--points "confirmation|14101-14503|CSV|CMD"]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.backtest_regimes import _table  # noqa: E402

COLS = ["set", "seeds", "school_signal", "regime", "horizon", "lsoa_mape", "lsoa_mape_ratio_change", "lsoa_bias",
        "high_churn_mape", "high_churn_mape_ratio_change", "lsoa_total_coverage", "lsoa_total_width",
        "ward_cell_coverage", "la_cell_coverage", "la_cell_mae", "la_cell_mae_ratio_change", "la_total_error",
        "la_total_error_ratio_change"]


def headline_rows(spec: str) -> tuple[pd.DataFrame, str]:
    name, signal, seeds, folder, cmd = spec.split("|", 4)
    h = pd.read_csv(Path(folder) / "regimes_backtest_headline.csv")
    mean = h.groupby(["mode", "horizon"], as_index=False).mean(numeric_only=True).assign(regime="mean")
    h = pd.concat([h, mean], ignore_index=True).assign(set=name, seeds=seeds, school_signal=signal)
    return h[COLS], f"- {name} set, school_signal = {signal}: `{cmd}`"


def point_rows(spec: str) -> tuple[pd.DataFrame, str]:
    name, seeds, csv, cmd = spec.split("|", 3)
    d = pd.read_csv(csv)
    d["school_signal"] = d["variant"].map({"default": "la", "noschool": "off"})
    cols = ["mape", "rc_mape", "bias", "mape_high_churn", "rc_mape_high_churn", "mape_in", "rc_mape_in", "chg", "rc_chg",
            "chg_bias", "rc_chg_bias"]
    g = d.groupby(["school_signal", "regime", "horizon"], as_index=False)[cols].mean()
    mean = g.groupby(["school_signal", "horizon"], as_index=False)[cols].mean().assign(regime="mean")
    g = pd.concat([g, mean], ignore_index=True).assign(set=name, seeds=seeds)
    return g[["set", "seeds", "school_signal", "regime", "horizon", *cols]], f"- {name} set, point estimates: `{cmd}`"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", default=[], help="set|school_signal|seeds|results folder|command")
    ap.add_argument("--points", action="append", default=[], help="set|seeds|diagnose_cohorts CSV|command")
    ap.add_argument("--intro", type=Path, help="markdown put before the tables")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "regimes_school_signal")
    args = ap.parse_args(argv)
    parts, cmds = [], []
    for spec in args.run:
        rows, cmd = headline_rows(spec)
        parts.append(rows)
        cmds.append(cmd)
    head = pd.concat(parts, ignore_index=True).sort_values(["set", "horizon", "regime", "school_signal"])
    head.round(2).to_csv(args.out.with_suffix(".csv"), index=False)
    lines = [args.intro.read_text() if args.intro else "", "## Commands", "", *cmds]
    points = []
    for spec in args.points:
        rows, cmd = point_rows(spec)
        points.append(rows)
        lines.append(cmd)
    lines += ["", "## The full pipeline (movements mode), per regime: means over the seeds", ""]
    for horizon in ("2y", "1y"):
        lines += [f"### {horizon}", "", _table(head[head["horizon"] == horizon].drop(columns="horizon").round(2)), ""]
    if points:
        p = pd.concat(points, ignore_index=True).sort_values(["set", "horizon", "regime", "school_signal"])
        p.round(3).to_csv(args.out.with_name(args.out.name + "_points.csv"), index=False)
        lines += ["## Point estimates re-run in process (diagnose_cohorts.py: default = la, noschool = off)", "",
                  "`mape_in`: within the LA (the district's common error divided out); `high_churn`: the third of "
                  "LSOAs with the highest churn (student areas included), as in backtest_regimes.py; `chg`: mean |error of "
                  "the change since the first extract| in points of the truth, `chg_bias` its mean.", ""]
        for horizon in ("2y", "1y"):
            lines += [f"### {horizon}", "", _table(p[p["horizon"] == horizon].drop(columns="horizon").round(2)), ""]
    args.out.with_suffix(".md").write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
