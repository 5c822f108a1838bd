"""Issue 9: could the LA's list-to-base gap correct the published base's LA-wide error?

The margins already read the base's expected LA-wide error from the gap G = log(LA list / LA
published base) at the first extract (`margins.la_wide_sd`, `expected_la_base_error`: E[e | G] by normal theory from
England's published figures and one assumed spread). This asks whether the point estimate
should move by it too: LA total x exp(-E[e | G]). It compares, against the truth, the LA total
of ratio change (what the estimates' LA total follows), that total corrected by E[e | G], and
the list alone over England's list-to-census ratio.

Real data: the Census 2021 package (three Pennine Lancashire LAs, counts mode; the list of
4 January 2021 against the census of 21 March 2021). Simulated: the districts of a
`backtest_regimes.py` run, from the base error, list ratios and growth each drew
(`backtest_regimes.draws_table` on its work folder).

    python benchmarks/diagnose_la_anchor.py [--regimes WORK_DIR ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from backtest_real import census_totals, find_package, units
from backtest_regimes import _table, draws_table
from pipeline.estimates.margins import expected_la_base_error, load_mode_model


def real_districts(package: Path) -> pd.DataFrame:
    """Per LA: published base (mid-2019), list at the first and last extract, Census 2021 (backtest_real's
    comparison units, each within one LA)."""
    geo = pd.read_csv(package / "raw" / "geography" / "lsoa11-to-lad22.csv")
    la_of = dict(zip(geo["lsoa11cd"], geo["lad22cd"]))
    base = pd.read_csv(package / "raw" / "base_population" / "sape-mid-2019-lsoa11-persons.csv")
    out = pd.DataFrame({"base": base.groupby(base["LSOA Code"].map(la_of))["All Ages"].sum()})
    out.index.name = "la_code"
    for name, day in (("list_first", "2019-07-01"), ("list_last", "2021-01-04")):
        gp = pd.read_csv(package / "raw" / "gp_counts" / f"gp-reg-pat-prac-lsoa-all-{day}.csv")
        gp = gp[gp["LSOA_CODE"].isin(la_of)]
        out[name] = gp.groupby(gp["LSOA_CODE"].map(la_of))["NUMBER_OF_PATIENTS"].sum()
    u11, u21 = units(package)
    truth = census_totals(package, u21)
    out["truth"] = truth.groupby(truth.index.map(dict(zip(u11.to_numpy(), u11.index.map(la_of))))).sum()
    return out


def compare(frame: pd.DataFrame, p: dict) -> pd.DataFrame:
    """Signed % errors of each LA total against the truth."""
    f = frame.copy()
    f["gap"] = np.log(f["list_first"] / f["base"])
    f["expected_base_error"] = expected_la_base_error(p, f["gap"].to_numpy())
    ratio_change = f["base"] * f["list_last"] / f["list_first"]
    f["ratio_change_err"] = 100 * (ratio_change / f["truth"] - 1)
    f["gap_corrected_err"] = 100 * (ratio_change * np.exp(-f["expected_base_error"]) / f["truth"] - 1)
    f["list_over_england_err"] = 100 * (f["list_last"] / p["gap_list_ratio"] / f["truth"] - 1)
    return f


def regime_districts(work: Path) -> pd.DataFrame:
    """The districts of a backtest_regimes run, on the same footing: base = truth_t0 (1 + e),
    list_first = truth_t0 x list_ratio_first, truth = truth_t0 (1 + growth), list_last = truth x list_ratio_last."""
    d = draws_table(pd.read_csv(work / "cell_errors.csv"), work)
    t0 = 1.0
    truth = t0 * (1 + d["true_growth_pct"] / 100)
    return pd.DataFrame({"regime": d["regime"], "seed": d["seed"],
                         "base": t0 * (1 + d["base_la_error_pct"] / 100),
                         "list_first": t0 * d["list_ratio_first"], "list_last": truth * d["list_ratio_last"],
                         "truth": truth}).set_index(["regime", "seed"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--regimes", nargs="*", default=[], type=Path, help="work folders of backtest_regimes.py runs")
    args = ap.parse_args()
    p, _ = load_mode_model(mode="register_movements")  # the gap parameters the margins use
    cols = ["gap", "expected_base_error", "ratio_change_err", "gap_corrected_err", "list_over_england_err"]
    real = compare(real_districts(find_package(None)), p)
    print("Real: Census 2021 package, LA totals at 4 January 2021 against the census (signed %)")
    print(_table(real[cols].round(3).reset_index()))
    print("mean absolute:", real[cols[2:]].abs().mean().round(2).to_dict())
    for work in args.regimes:
        sim = compare(regime_districts(work), p)
        print(f"\nSimulated: {work} (two years after the first extract, signed %)")
        print(_table(sim[cols].round(3).reset_index()))
        print("mean absolute by regime:")
        print(_table(sim[cols[2:]].abs().groupby(level="regime").mean().round(2).reset_index()))


if __name__ == "__main__":
    main()
