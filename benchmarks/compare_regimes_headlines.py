"""Two regimes back-test headlines side by side (before / after a change), as a markdown table.

Reads the `*_headline.csv` files `backtest_regimes.py` writes and prints, per regime at one horizon,
each measure as "before / after" beside ratio change (the same in both runs: it does not depend on
the model).

    .venv/bin/python benchmarks/compare_regimes_headlines.py benchmarks/results/regimes_rc9_before_headline.csv \\
        benchmarks/results/regimes_rc9_after_headline.csv --horizon 2y
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.diagnose_cohorts import _md  # noqa: E402

PAIRS = [  # (column, its ratio-change column or None)
    ("lsoa_mape", "lsoa_mape_ratio_change"),
    ("lsoa_bias", "lsoa_bias_ratio_change"),
    ("high_churn_mape", "high_churn_mape_ratio_change"),
    ("student_area_mape", "student_area_mape_ratio_change"),
    ("lsoa_total_coverage", None),
    ("lsoa_total_width", None),
    ("ward_cell_coverage", None),
    ("la_cell_coverage", None),
    ("la_cell_mae", "la_cell_mae_ratio_change"),
    ("la_total_error", "la_total_error_ratio_change"),
]


def compare_headlines(before: pd.DataFrame, after: pd.DataFrame, horizon: str) -> pd.DataFrame:
    """One row per regime (and mode): 'before / after' for every measure, ratio change beside."""
    keys = ["regime", "mode"]
    b = before[before["horizon"] == horizon].set_index(keys)
    a = after[after["horizon"] == horizon].set_index(keys)
    out = pd.DataFrame(index=b.index.intersection(a.index))
    for col, rc in PAIRS:
        if col not in b or col not in a:
            continue
        out[f"{col} before / after"] = [_pair(b.at[i, col], a.at[i, col]) for i in out.index]
        if rc and rc in a:
            out[f"{col} ratio change"] = [_fmt(a.at[i, rc]) for i in out.index]
    return out.reset_index()


def _fmt(x) -> str:
    return "" if pd.isna(x) else f"{x:.2f}"


def _pair(x, y) -> str:
    return "" if pd.isna(x) and pd.isna(y) else f"{_fmt(x)} / {_fmt(y)}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--horizon", default="2y")
    args = ap.parse_args(argv)
    print(_md(compare_headlines(pd.read_csv(args.before), pd.read_csv(args.after), args.horizon)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
