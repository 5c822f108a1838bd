"""Where the LA sex x age error at two years comes from: the published base's own error, or the drift since.

Works on folders a regimes back-test kept (`backtest_regimes.py --keep`), re-running the cohort
chassis in process (diagnose_cohorts.capture / run_variant: point estimates only, no margins or
publishing). For every LA x sex x 5-year band cell it compares with the simulator's truth:

* `pub`:  the published base against the truth on the base date (the base's own error; ratio
          change keeps it: its estimate is the published base times the list's change);
* `t0`:   the estimate at the first extract (the base aged by cohort to t0, the list-informed
          blend, births since the base date) against the truth at t0;
* `t`:    the estimate at t (one and two years after t0);
* `drift` = error(t) - error(t0): what the roll-forward added (cohort ageing, births, deaths,
          flows, the change in inflation);
* `tb_`:   the same model and ratio change started from the TRUE base (the truth on the base
          date in place of the published base): the error the roll-forward makes on its own;
* `lsoa_mape` (`_high_churn`): the LSOA totals' MAPE (in the third of LSOAs with most churn), for
          the cost of any change to the cells at the LSOA level;
* `struct`: error(t) after dividing out the LA total's error, i.e. the error of the age-sex
          structure alone (the LA-wide level is the published base's and no method here sees it).

Reported per regime x seed x horizon: the mean absolute error over the 36 LA cells (MAE) of each,
the same for ratio change (`rc_`), the LA total's error, and the signed error by broad age group
(0-4, 5-15, 16-24, 25-44, 45-64, 65-84, 85+) at t0 and its drift.
Reads the truth only to score; fits nothing.

    .venv/bin/python benchmarks/diagnose_la_cells.py /tmp/w/*_movements --out /tmp/la_cells.csv
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.diagnose_cohorts import _md, capture, run_variant, truth_array  # noqa: E402
from pipeline.config import load_settings  # noqa: E402
from pipeline.estimates.cohorts import fold_to_bands  # noqa: E402

BROAD = {"0-4": (0, 1), "5-14": (1, 3), "15-24": (3, 5), "25-44": (5, 9), "45-64": (9, 13),
         "65-84": (13, 17), "85+": (17, 18)}  # 5-year band indices [a, b)


def la_cells(x: np.ndarray) -> np.ndarray:
    """[.., n, 2, AGES] single years by LSOA -> [.., 2, 18] LA sex x band."""
    return fold_to_bands(x.sum(axis=-3))


def mae(e: np.ndarray) -> float:
    return float(100 * np.mean(np.abs(e)))


def score_la(est, rc, truth, truth_b, pub, horizons=(("1y", 4), ("2y", 8)), high=None) -> list[dict]:
    """Rows of the decomposition (see the module docstring); est, rc, truth [K, n, 2, AGES],
    truth_b and pub [n, 2, AGES] on the base date; `high`: [n] the high-churn LSOAs (the LSOA
    totals' MAPE there and overall is reported beside, as backtest_regimes.py measures it)."""
    tb, pb = la_cells(truth_b), la_cells(pub)
    e_pub = pb / tb - 1
    rows = []
    for horizon, k in horizons:
        if k >= est.shape[0]:
            continue
        row = {"horizon": horizon, "pub_mae": mae(e_pub),
               "pub_total": 100 * (pb.sum() / tb.sum() - 1),
               "pub_struct_mae": mae((pb / tb) / (pb.sum() / tb.sum()) - 1)}
        for pre, x in (("", est), ("rc_", rc)):
            c0, ct = la_cells(x[0]), la_cells(x[k])
            t0, tt = la_cells(truth[0]), la_cells(truth[k])
            e0, et = c0 / t0 - 1, ct / tt - 1
            tot_t = ct.sum() / tt.sum()
            rel = x[k].sum((1, 2)) / truth[k].sum((1, 2)) - 1
            row[pre + "lsoa_mape"] = mae(rel)
            if high is not None:
                row[pre + "lsoa_mape_high_churn"] = mae(rel[high])
            row[pre + "t0_mae"] = mae(e0)
            row[pre + "t_mae"] = mae(et)
            row[pre + "drift_mae"] = mae(et - e0)
            row[pre + "total"] = 100 * (tot_t - 1)
            row[pre + "total_t0"] = 100 * (c0.sum() / t0.sum() - 1)
            row[pre + "struct_mae"] = mae((ct / tt) / tot_t - 1)
            for g, (a, b) in BROAD.items():
                row[f"{pre}t0_{g}"] = 100 * (c0[:, a:b].sum() / t0[:, a:b].sum() - 1)
                row[f"{pre}drift_{g}"] = 100 * (ct[:, a:b].sum() / tt[:, a:b].sum() - c0[:, a:b].sum() / t0[:, a:b].sum())
            if pre == "":
                row["pub_bands"] = " ".join(f"{v:+.1f}" for v in 100 * (pb.sum(0) / tb.sum(0) - 1))
                row["t_bands"] = " ".join(f"{v:+.1f}" for v in 100 * (ct.sum(0) / tt.sum(0) - 1))
                row["drift_bands"] = " ".join(
                    f"{v:+.1f}" for v in 100 * (ct.sum(0) / tt.sum(0) - c0.sum(0) / t0.sum(0)))
        rows.append(row)
    return rows


SUMMARY = ["lsoa_mape", "rc_lsoa_mape", "lsoa_mape_high_churn", "rc_lsoa_mape_high_churn", "pub_mae", "pub_abs_total", "pub_struct_mae", "t0_mae", "t_mae", "struct_mae", "drift_mae",
           "rc_t_mae", "rc_struct_mae", "tb_t0_mae", "tb_t_mae", "rc_tb_t_mae"]


def summary_tables(table: pd.DataFrame, horizon: str = "2y") -> str:
    """Markdown: per regime (means over seeds) the MAE decomposition, before and after, and the
    signed error by broad age group from the true base (the roll-forward's own)."""
    t = table[table["horizon"] == horizon].copy()
    t["pub_abs_total"] = t["pub_total"].abs()
    keys = ["variant", "regime"]
    a = t.groupby(keys)[SUMMARY].mean().round(2)
    a.insert(0, "seeds", t.groupby(keys)["seed"].nunique())
    m = t.groupby("variant")[SUMMARY].mean().round(2)
    m.insert(0, "seeds", t.groupby("variant")["seed"].nunique())
    m.index = pd.MultiIndex.from_tuples([(v, "mean") for v in m.index], names=keys)
    a = pd.concat([a, m]).reset_index()
    groups = [f"tb_t0_{g}" for g in BROAD] + [f"tb_drift_{g}" for g in BROAD]
    b = t.groupby(keys)[groups].mean().round(1).reset_index()
    c = t.groupby(keys)[[f"t0_{g}" for g in BROAD] + [f"drift_{g}" for g in BROAD]].mean().round(1).reset_index()
    return "\n".join([f"### MAE over the LA's 36 sex x band cells at {horizon} (%; means over seeds)", "",
                      _md(a), "", f"### Signed error by age group, started from the TRUE base ({horizon}; %)", "",
                      _md(b), "", f"### Signed error by age group, from the published base ({horizon}; %)", "",
                      _md(c), ""])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="*", type=Path)
    ap.add_argument("--tables", nargs="+", type=Path, help="only print the summary tables of earlier --out CSVs")
    ap.add_argument("--setting", action="append", default=[], help="estimates setting key=value (a variant)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--before", action="store_true",
                    help="the roll-forward as before issue 9's LA-cells change (main 97d9060): no deaths from "
                         "vital events, babies born since t0 divided by the youngest band's inflation")
    args = ap.parse_args(argv)
    if args.tables:
        table = pd.concat([pd.read_csv(f) for f in args.tables], ignore_index=True)
        print(summary_tables(table, "2y"))
        print(summary_tables(table, "1y"))
        return 0
    logging.disable(logging.WARNING)
    settings = load_settings().estimates
    upd = {}
    for kv in args.setting:
        k, v = kv.split("=", 1)
        upd[k] = {"true": True, "false": False}.get(v.lower(), v)
    if upd:
        settings = settings.model_copy(update=upd)
    if args.before:
        from pipeline.estimates import cohort_model
        at_par = cohort_model.roll_list_change
        cohort_model.roll_list_change = lambda *a, **k: at_par(*a[:5], None, False)
    rows = []
    variant = "before" if args.before else "after"
    for folder in args.folders:
        if not (folder / "processed" / "cohesion.duckdb").exists():
            continue
        regime, seed, mode = folder.name.rsplit("_", 2)[0], folder.name.rsplit("_", 2)[1][1:], folder.name.rsplit("_", 1)[1]
        inp = capture(folder)
        if args.before:
            inp["kwargs"] = {**inp["kwargs"], "deaths": None}
        dates = list(pd.to_datetime(inp["ex"].sort_values("k")["extract_date"]))
        truth = truth_array(folder, inp["lsoas"], [pd.Timestamp(inp["base_date"]), *dates])
        est, rc = run_variant(inp, settings)
        # the same model started from the true base: what the roll-forward alone gets wrong
        est_tb, rc_tb = run_variant({**inp, "pub": truth[0]}, settings)
        oracle = score_la(est_tb, rc_tb, truth[1:], truth[0], truth[0])
        f = pd.read_csv(folder / "truth" / "lsoa_facts.csv").set_index("lsoa_code").reindex(inp["lsoas"])
        high = (f["churn"] > f["churn"].quantile(2 / 3)).to_numpy()  # as backtest_regimes.py
        for r, o in zip(score_la(est, rc, truth[1:], truth[0], inp["pub"], high=high), oracle):
            r.update({"tb_t_mae": o["t_mae"], "tb_t0_mae": o["t0_mae"], "rc_tb_t_mae": o["rc_t_mae"],
                      "tb_t_bands": o["t_bands"]})
            r.update({f"tb_{k}": v for k, v in o.items() if k.startswith(("t0_", "drift_")) and k.split("_", 1)[1] in BROAD})
            rows.append({"regime": regime, "seed": int(seed), "mode": mode, "variant": variant, **r})
        print(folder.name, flush=True)
    table = pd.DataFrame(rows)
    cols = ["regime", "seed", "horizon", "pub_mae", "pub_total", "pub_struct_mae", "t0_mae", "t_mae", "drift_mae",
            "struct_mae", "total", "rc_t0_mae", "rc_t_mae", "rc_drift_mae", "rc_struct_mae", "rc_total",
            "tb_t0_mae", "tb_t_mae", "rc_tb_t_mae"]
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        print(table[cols].round(2).to_string(index=False))
        g = [c for c in table if c.startswith(("t0_", "drift_")) and c.split("_", 1)[1] in BROAD]
        print(table[["regime", "seed", "horizon", *g]].round(1).to_string(index=False))
        for r in table.itertuples():
            print(r.regime, r.seed, r.horizon, "pub:", r.pub_bands, "| t:", r.t_bands, "| drift:", r.drift_bands,
                  "| true base, t:", r.tb_t_bands)
    if args.out:
        table.round(3).to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
