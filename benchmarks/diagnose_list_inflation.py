"""How each district's list inflation moves over the run, and what the school signal saw of it.

For folders a regimes back-test kept (`backtest_regimes.py --keep`), per extract: the list / true
residents for student areas, the high-churn third and the rest (all ages, and ages 18-24), and the
LA's school signal g - 1 (school_signal.measure_inflation_change, as the estimates use it) beside the
true change of the LA's all-age inflation since t0. Reads the truth only to score; fits nothing.

    .venv/bin/python benchmarks/diagnose_list_inflation.py /tmp/rc9/w15/steady_s15101_movements ...
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.diagnose_cohorts import capture, truth_array  # noqa: E402
from pipeline.estimates import school_signal  # noqa: E402


def describe_inflation(folder: Path) -> list[str]:
    inp = capture(folder)
    dates = list(pd.to_datetime(inp["ex"].sort_values("k")["extract_date"]))
    truth = truth_array(folder, inp["lsoas"], dates)
    L = inp["L"]
    facts = pd.read_csv(folder / "truth" / "lsoa_facts.csv").set_index("lsoa_code").reindex(inp["lsoas"])
    student = facts["student_area"].fillna(False).astype(bool).to_numpy()
    high = (facts["churn"] > facts["churn"].quantile(2 / 3)).to_numpy()
    lines = [f"{folder.name}: extracts " + " ".join(d.strftime("%Y-%m") for d in dates)]
    for name, m in (("student areas", student), ("high churn", high & ~student), ("rest", ~high & ~student)):
        if not m.any():
            continue
        ratio = [L[k][m].sum() / truth[k][m].sum() for k in range(len(dates))]
        young = [L[k][m][:, :, 18:25].sum() / max(truth[k][m][:, :, 18:25].sum(), 1.0) for k in range(len(dates))]
        lines.append(f"  {name:13s} list / truth " + " ".join(f"{x:.3f}" for x in ratio))
        lines.append(f"  {'':13s} ages 18-24   " + " ".join(f"{x:.3f}" for x in young))
    pupils = inp["kwargs"].get("school_pupils")
    if pupils is not None:
        g = school_signal.measure_inflation_change(school_signal.count_list_children(L, dates), pupils[1],
                                                   school_signal.pair_censuses(dates, pupils[0]),
                                                   np.zeros(len(inp["lsoas"])))[:, 0]
        infl = np.array([L[k].sum() / truth[k].sum() for k in range(len(dates))])
        lines.append("  school signal g - 1 (%)    " + " ".join(f"{100 * (x - 1):+.1f}" for x in g))
        lines.append("  true all-age change (%)    " + " ".join(f"{100 * (x / infl[0] - 1):+.1f}" for x in infl))
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path)
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)
    for folder in args.folders:
        if (folder / "processed" / "cohesion.duckdb").exists():
            print("\n".join(describe_inflation(folder)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
