"""Re-run only the estimates stage, with setting variants, on districts a regimes back-test kept.

    .venv/bin/python benchmarks/backtest_regimes.py --modes movements counts --work /tmp/w --results /tmp/r --keep
    .venv/bin/python benchmarks/regimes_variants.py /tmp/w/*_movements /tmp/w/*_counts \\
        --variant default --variant noblend:blend_base=false --variant young:blend_covariate=young_share

For each kept folder (its processed/cohesion.duckdb, already ingested) and each variant of
[estimates] settings, the estimates are made again on a copy of the database and LSOA totals
compared with the simulator's truth at one and two years after the first extract: MAPE and bias
of cohdmap, MAPE of ratio change (population_estimates_methods), and both in the third of LSOAs
with the highest churn (as backtest_regimes.py defines it). It reads the truth only to score; it
changes no parameter. Used to choose between settings without re-simulating (issue 9).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import duckdb
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.backtest_regimes import truth_cells  # noqa: E402
from pipeline.config import load_settings  # noqa: E402
from pipeline.estimates import estimate_populations  # noqa: E402


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, rest = text.partition(":")
    values = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        values[key] = {"true": True, "false": False}.get(value.lower(), value)
        try:
            values[key] = float(value) if not isinstance(values[key], bool) else values[key]
        except ValueError:
            pass
    return name, values


def score(folder: Path, settings) -> list[dict]:
    truth = truth_cells(folder)
    truth = truth[(truth.area_type == "lsoa") & (truth.sex == "All") & (truth.age_band == "All")]
    facts = pd.read_csv(folder / "truth" / "lsoa_facts.csv")
    high = set(facts.loc[facts["churn"] > facts["churn"].quantile(2 / 3), "lsoa_code"])
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "cohesion.duckdb"
        shutil.copy(folder / "processed" / "cohesion.duckdb", db)
        con = duckdb.connect(str(db))
        estimate_populations(con, settings)
        where = "area_type = 'lsoa' AND sex = 'All' AND age_band = 'All'"
        est = con.execute("SELECT area_code, CAST(reference_date AS VARCHAR) AS reference_date, estimate "
                          f"FROM population_estimates WHERE {where}").df()
        rc = con.execute("SELECT area_code, CAST(reference_date AS VARCHAR) AS reference_date, estimate AS rc "
                         f"FROM population_estimates_methods WHERE {where} AND method = 'ratio_change'").df()
        con.close()
    m = est.merge(rc, on=["area_code", "reference_date"]).merge(truth, on=["area_code", "reference_date"])
    dates = sorted(m["reference_date"].unique())
    out = []
    for horizon, date in (("1y", dates[min(4, len(dates) - 1)]), ("2y", dates[-1])):
        x = m[m["reference_date"] == date]
        err, err_rc = x["estimate"] / x["truth"] - 1, x["rc"] / x["truth"] - 1
        hi = x["area_code"].isin(high)
        out.append({"horizon": horizon, "lsoa_mape": 100 * err.abs().mean(), "lsoa_bias": 100 * err.mean(),
                    "lsoa_mape_ratio_change": 100 * err_rc.abs().mean(),
                    "high_churn_mape": 100 * err[hi].abs().mean(),
                    "high_churn_mape_ratio_change": 100 * err_rc[hi].abs().mean()})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path, help="kept back-test folders (<regime>_s<seed>_<mode>)")
    ap.add_argument("--variant", action="append", default=[],
                    help="name:key=value,... ([estimates] settings); 'default' = config.toml as it is")
    ap.add_argument("--out", type=Path, help="write the table here (CSV) as well as printing it")
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)
    base = load_settings().estimates
    rows = []
    for folder in args.folders:
        if not (folder / "processed" / "cohesion.duckdb").exists():
            continue
        for name, values in map(parse_variant, args.variant or ["default"]):
            for r in score(folder, base.model_copy(update=values)):
                rows.append({"folder": folder.name, "variant": name, **r})
                print({k: (round(float(v), 2) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
    table = pd.DataFrame(rows)
    if args.out:
        table.round(2).to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
