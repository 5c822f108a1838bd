"""Where the cohort chassis loses to ratio change on the regimes districts, and what a variant does.

Works on folders a regimes back-test kept (`backtest_regimes.py --keep`): for each, the inputs
of `roll_cohorts` are captured once (the estimates stage is run on a copy of the database up to
the chassis call; cached as chassis_inputs.pkl in the folder), then the chassis is re-run in
process for every variant and its single-year estimates compared with the simulator's truth
(truth/population_lsoa.csv) by LSOA x sex x single year, at one and two years after the first
extract. Margins, constraint and publishing are not re-run: this looks at the point estimate only.

Reported per variant, regime, mode and horizon (LSOA totals unless said):
* mape / bias, and the same for ratio change (rc_);
* the LA total's error at t0 and at t (`la_err0`, `la_err`);
* within-LA MAPE (`mape_in`): each LSOA's error after dividing out the district's total error,
  i.e. what is left once the LA-wide error of the published base (shared by both methods, and not
  something either can correct) is removed;
* the decomposition of the error at t into the error at the first extract and the error of the
  change since (`lvl0`: mean |est(t0)/truth(t0) - 1|, `chg`: mean |(est(t) - est(t0)) - (truth(t) -
  truth(t0))| / truth(t));
* by kind of LSOA (student areas, the high-churn third, the rest) and by broad age group.

Reads the truth only to score; fits nothing.

    .venv/bin/python benchmarks/diagnose_cohorts.py /tmp/w/*_movements /tmp/w/*_counts --variant default \\
        --variant noblend --out /tmp/diag.csv
"""

from __future__ import annotations

import argparse
import logging
import pickle
import shutil
import sys
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.config import load_settings  # noqa: E402
from pipeline.estimates import cohort_model, counts, estimate  # noqa: E402
from pipeline.estimates.cohort_model import AGES  # noqa: E402

GROUPS = {"0-4": (0, 5), "5-15": (5, 16), "16-24": (16, 25), "25-44": (25, 45), "45-64": (45, 65), "65+": (65, AGES)}


class _Captured(Exception):
    pass


def capture(folder: Path) -> dict:
    """roll_cohorts' arguments for this folder (run the estimates stage on a copy until the call)."""
    cache = folder / "chassis_inputs.pkl"
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    got = {}

    def grab(*args, **kwargs):
        got["args"], got["kwargs"] = args, kwargs
        raise _Captured

    settings = load_settings().estimates
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "cohesion.duckdb"
        shutil.copy(folder / "processed" / "cohesion.duckdb", db)
        con = duckdb.connect(str(db))
        saved = estimate.roll_cohorts, counts.roll_cohorts
        estimate.roll_cohorts = counts.roll_cohorts = grab
        try:
            estimate.estimate_populations(con, settings)
        except _Captured:
            pass
        finally:
            estimate.roll_cohorts, counts.roll_cohorts = saved
            con.close()
    pub, L, ex, lsoas, geo, _settings, model, base_date = got["args"]
    out = {"pub": pub, "L": L, "ex": ex, "lsoas": lsoas, "geo": geo, "model": model, "base_date": base_date,
           "kwargs": got["kwargs"]}
    cache.write_bytes(pickle.dumps(out))
    return out


def truth_array(folder: Path, lsoas: list[str], dates) -> np.ndarray:
    t = pd.read_csv(folder / "truth" / "population_lsoa.csv")
    t["reference_date"] = pd.to_datetime(t["reference_date"])
    k_of = {pd.Timestamp(d): k for k, d in enumerate(dates)}
    t = t[t["reference_date"].isin(k_of) & t["lsoa_code"].isin(set(lsoas))]
    idx = {c: i for i, c in enumerate(lsoas)}
    out = np.zeros((len(dates), len(lsoas), 2, AGES))
    np.add.at(out, (t["reference_date"].map(k_of).to_numpy(), t["lsoa_code"].map(idx).to_numpy(),
                    t["sex"].map({"M": 0, "F": 1}).to_numpy(), np.minimum(t["age"].to_numpy(), AGES - 1)),
              t["population"].to_numpy())
    return out


def run_variant(inp: dict, settings) -> tuple[np.ndarray, np.ndarray]:
    """Single-year estimates and ratio change [K, n, 2, AGES]."""
    _cells, single, _notes = cohort_model.roll_cohorts(inp["pub"], inp["L"], inp["ex"], inp["lsoas"], inp["geo"],
                                                       settings, inp["model"], inp["base_date"], **inp["kwargs"])
    K, n = inp["L"].shape[:2]
    est = single["estimate"].to_numpy().reshape(K, n, 2, AGES)
    rc = single["est_ratio_change"].to_numpy().reshape(K, n, 2, AGES)
    return est, rc


def score(est: np.ndarray, rc: np.ndarray, truth: np.ndarray, facts: pd.DataFrame, lsoas: list[str]) -> list[dict]:
    f = facts.set_index("lsoa_code").reindex(lsoas)
    high = (f["churn"] > f["churn"].quantile(2 / 3)).to_numpy()
    student = f["student_area"].fillna(False).astype(bool).to_numpy()
    kinds = {"all": np.ones(len(lsoas), bool), "student": student, "high_churn": high & ~student,
             "other": ~high & ~student}
    rows = []
    for horizon, k in (("1y", 4), ("2y", 8)):
        if k >= est.shape[0]:
            continue
        row = {"horizon": horizon}
        for name, x in (("ours", est), ("rc", rc)):
            e_t, e_0, tr_t, tr_0 = x[k].sum((1, 2)), x[0].sum((1, 2)), truth[k].sum((1, 2)), truth[0].sum((1, 2))
            rel = e_t / tr_t - 1
            la = e_t.sum() / tr_t.sum()
            rel_in = e_t / (tr_t * la) - 1
            pre = "" if name == "ours" else "rc_"
            row[pre + "mape"] = 100 * np.abs(rel).mean()
            row[pre + "bias"] = 100 * rel.mean()
            row[pre + "mape_in"] = 100 * np.abs(rel_in).mean()
            # the LA's own total: its error at t0 (the published base's LA-wide error, as moved) and at t
            row[pre + "la_err0"] = 100 * (e_0.sum() / tr_0.sum() - 1)
            row[pre + "la_err"] = 100 * (la - 1)
            row[pre + "mape_high_churn"] = 100 * np.abs(rel[high]).mean()  # as backtest_regimes.py (students included)
            row[pre + "lvl0"] = 100 * np.abs(e_0 / tr_0 - 1).mean()
            row[pre + "chg"] = 100 * np.abs((e_t - e_0) - (tr_t - tr_0)).mean() / tr_t.mean()
            row[pre + "chg_bias"] = 100 * np.mean(((e_t - e_0) - (tr_t - tr_0)) / tr_t)
            for kind, m in kinds.items():
                if kind != "all" and m.any():
                    row[f"{pre}mape_in_{kind}"] = 100 * np.abs(rel_in[m]).mean()
            for g, (a, b) in GROUPS.items():
                eg, tg = x[k][:, :, a:b].sum((1, 2)), truth[k][:, :, a:b].sum((1, 2))
                ok = tg > 0
                lag = eg.sum() / tg.sum()
                row[f"{pre}la_bias_{g}"] = 100 * (lag - 1)
                row[f"{pre}mape_in_{g}"] = 100 * np.abs(eg[ok] / (tg[ok] * lag) - 1).mean()
                # change of the group since t0 against the true change, relative to the truth at t
                e0g, t0g = x[0][:, :, a:b].sum((1, 2)), truth[0][:, :, a:b].sum((1, 2))
                row[f"{pre}chg_bias_{g}"] = 100 * ((eg - e0g).sum() - (tg - t0g).sum()) / tg.sum()
        rows.append(row)
    return rows


def roll_experimental(inp: dict, settings, opts: dict) -> tuple[np.ndarray, np.ndarray]:
    """roll_cohorts' point estimate, re-written with switches for the variants tried (issue 9);
    with no switches it gives what roll_cohorts gives (checked in main). Switches:
    change: "I" (the list change / the cohort's inflation at t0, the default), "one" (additive:
    the list change counted one for one), "marginal" (the list change / 1 + (I - 1) x share of the
    t0 ghost stock still on the list: here I - 1 decays with the list's own turnover);
    newborn: "band" (born since t0 take the youngest band's inflation, default), "one";
    composite: weight on ratio change per LSOA from the two methods' own disagreement (see
    composite_weights)."""
    from pipeline.estimates.base import blend_base
    from pipeline.estimates.cohorts import BAND_LABELS, age_counts, band_of_age, born_after, fold_to_bands
    from pipeline.estimates.inflation import estimate_inflation

    pub, L, ex, lsoas, geo, model, base_date = (inp[k] for k in ("pub", "L", "ex", "lsoas", "geo", "model", "base_date"))
    kw = inp["kwargs"]
    ex = ex.sort_values("k").reset_index(drop=True)
    ex["extract_date"] = pd.to_datetime(ex["extract_date"])
    n = len(lsoas)
    Ls = L.copy()
    if kw.get("births_unregistered") is not None:
        Ls[..., 0] += kw["births_unregistered"]
    band = band_of_age(AGES - 1)
    nb = band.max() + 1
    t0 = ex["extract_date"].iloc[0]
    L0 = Ls[0]
    gap0 = max(cohort_model.years_between(base_date, t0), 0.0)
    B0 = age_counts(pub, gap0)
    new0 = born_after(AGES - 1, gap0)
    la = geo.groupby("lsoa_code")["la_code"].first().reindex(lsoas).fillna("?").to_numpy()
    listed = L0 * (1 - new0)[None, None, :]
    if settings.blend_base:
        chosen = cohort_model.choose_blend_covariate(settings.blend_covariate, kw.get("list_ages_observed", False))
        covariate = cohort_model.young_share(listed) if chosen == "young_share" else np.zeros(n)
        factor, _, _ = blend_base(B0.sum(axis=(1, 2)), listed.sum(axis=(1, 2)), covariate,
                                  float(model["counts_base_sd"]), 0.0, groups=la)
    else:
        factor = np.ones(n)
    Bb = B0 * factor[:, None, None]
    SEXES = cohort_model.SEXES
    inf_cells = pd.DataFrame({
        "lsoa_code": np.repeat(lsoas, 2 * nb), "sex": np.tile(np.repeat(SEXES, nb), n),
        "age_band": np.tile(BAND_LABELS, 2 * n), "registered": fold_to_bands(listed).reshape(-1),
        "resident": fold_to_bands(Bb).reshape(-1)})
    infl = estimate_inflation(inf_cells, geo, settings.shrinkage_strength)
    I_age = infl["inflation"].to_numpy().reshape(n, 2, nb)[:, :, band]
    if opts.get("inflation") == "sya":  # single years shrunk towards the LSOA's band (k residents)
        k_sya = float(opts.get("k_sya", settings.shrinkage_strength))
        I_age = np.maximum((listed + k_sya * I_age) / (Bb + k_sya), 0.2)
    if opts.get("change") == "raw_inflation":  # the change scaled as ratio change does (published base)
        I_raw_band = fold_to_bands(listed) / np.maximum(fold_to_bands(B0), 1e-9)
        I_chg = np.where(fold_to_bands(B0) > 0, I_raw_band, 1.0)[:, :, band]
    Bb = Bb + new0[None, None, :] * L0 / I_age
    # the change in inflation measured against the school census (as roll_cohorts: 1 = none)
    from pipeline.estimates import school_signal as ss
    g = np.ones((len(ex), n))
    sp = kw.get("school_pupils")
    if ss.choose_school_signal(getattr(settings, "school_signal", "off"), sp) == "la":
        g = ss.measure_inflation_change(ss.count_list_children(L, ex["extract_date"]), sp[1],
                                        ss.pair_censuses(ex["extract_date"], sp[0]), la)
    # the LA's inflation at single year 0 at t0 (babies under one: the newborns' own), list over base
    i_age0 = float(np.clip(L0[:, :, 0].sum() / max(Bb[:, :, 0].sum(), 1e-9), 0.5, 2.0))
    K = len(ex)
    est = np.zeros((K, n, 2, AGES))
    rc = np.zeros((K, n, 2, AGES))
    for row in ex.itertuples(index=False):
        d = max(cohort_model.years_between(t0, row.extract_date), 0.0)
        Lt = Ls[row.k]
        L0a = age_counts(L0, d)
        I_src = I_chg if opts.get("change") == "raw_inflation" else I_age
        IL = age_counts(I_src * L0, d)
        own = np.where(np.arange(AGES)[None, None, :] < np.ceil(d), I_src[:, :, :1], I_src)
        Ia = np.where(L0a > 1e-9, IL / np.maximum(L0a, 1e-9), own)
        newborn = opts.get("newborn", "band")
        if newborn != "band":  # the share of each age born since t0 takes the newborns' inflation
            i_new = 1.0 if newborn == "one" else i_age0
            s_new = born_after(AGES - 1, d)[None, None, :]
            Ia = 1.0 / (s_new / i_new + (1 - s_new) / Ia)
        change = opts.get("change", "I")
        if change == "one":
            Ia = np.ones_like(Ia)
        base_aged = age_counts(Bb, d)
        est[row.k] = cohort_model.floor_by_band(base_aged + (Lt / g[row.k][:, None, None] - L0a) / Ia, band)
        rc[row.k] = cohort_model._ratio_change(pub, L[row.k], L[0], band, kw.get("constrain_ratio_change", True))
    return est, rc


VARIANTS: dict[str, dict] = {"default": {}, "noblend": {"blend_base": False}, "k0": {"shrinkage_strength": 0.0},
                             "noblend_k0": {"blend_base": False, "shrinkage_strength": 0.0},
                             "k10": {"shrinkage_strength": 10.0}, "k200": {"shrinkage_strength": 200.0},
                             "young": {"blend_covariate": "young_share"},
                             "noschool": {"school_signal": "off"},
                             "shrunk": {"cell_inflation": "shrunk"}}
EXPERIMENTS: dict[str, tuple[dict, dict]] = {
    "x_default": ({}, {}), "x_additive": ({}, {"change": "one"}), "x_newborn1": ({}, {"newborn": "one"}), "x_newborn0": ({}, {"newborn": "age0"}),
    "x_additive_noblend": ({"blend_base": False}, {"change": "one"}),
    "x_sya": ({}, {"inflation": "sya"}), "x_sya200": ({}, {"inflation": "sya", "k_sya": 200.0}),
    "x_rawinfl": ({}, {"change": "raw_inflation"}),
    "x_young": ({"blend_covariate": "young_share"}, {}), "x_noyoung": ({"blend_covariate": "none"}, {}),
    "x_young_sya": ({"blend_covariate": "young_share"}, {"inflation": "sya"}),
    "x_young_sya_nb1": ({"blend_covariate": "young_share"}, {"inflation": "sya", "newborn": "one"}),
    "x_young_k0": ({"blend_covariate": "young_share", "shrinkage_strength": 0.0}, {}),
}


def markdown_tables(table: pd.DataFrame, measures=("mape", "mape_in", "mape_in_high_churn", "mape_in_student")) -> str:
    """Per measure, a table regime x mode x horizon with a column per variant and ratio change
    (means over seeds), then the means over regimes."""
    out = []
    keys = ["regime", "mode", "horizon"]
    for m in measures:
        if m not in table:
            continue
        p = table.pivot_table(index=keys, columns="variant", values=m)
        p["ratio_change"] = table.groupby(keys)["rc_" + m].mean()
        q = table.pivot_table(index=["mode", "horizon"], columns="variant", values=m)
        q["ratio_change"] = table.groupby(["mode", "horizon"])["rc_" + m].mean()
        q.insert(0, "regime", "mean")
        q = q.reset_index()[["regime", "mode", "horizon", *p.columns]]
        both = pd.concat([p.reset_index(), q], ignore_index=True)
        out += [f"### {m} (%)", "", _md(both), ""]
    return "\n".join(out)


def _md(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for r in df.itertuples(index=False):
        lines.append("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="*", type=Path)
    ap.add_argument("--variant", action="append", default=[], choices=sorted(VARIANTS) + sorted(EXPERIMENTS))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--tables", nargs="+", type=Path, help="only print markdown tables of earlier --out CSVs")
    args = ap.parse_args(argv)
    if args.tables:
        table = pd.concat([pd.read_csv(f) for f in args.tables]).drop_duplicates(
            subset=["regime", "seed", "mode", "variant", "horizon"])
        print(markdown_tables(table))
        return 0
    logging.disable(logging.WARNING)
    base = load_settings().estimates
    rows = []
    for folder in args.folders:
        if not (folder / "processed" / "cohesion.duckdb").exists():
            continue
        regime, seed, mode = folder.name.rsplit("_", 2)[0], folder.name.rsplit("_", 2)[1][1:], folder.name.rsplit("_", 1)[1]
        inp = capture(folder)
        inp["kwargs"].setdefault("list_ages_observed", mode != "counts")  # caches made before the flag existed
        dates = list(pd.to_datetime(inp["ex"].sort_values("k")["extract_date"]))
        truth = truth_array(folder, inp["lsoas"], dates)
        facts = pd.read_csv(folder / "truth" / "lsoa_facts.csv")
        for name in args.variant or ["default"]:
            if name in EXPERIMENTS:
                upd, opts = EXPERIMENTS[name]
                est, rc = roll_experimental(inp, base.model_copy(update=upd), opts)
                if name == "x_default":  # the re-write must give what the pipeline gives
                    ref, _ = run_variant(inp, base)
                    assert np.allclose(est, ref), f"roll_experimental differs from roll_cohorts on {folder}"
            else:
                est, rc = run_variant(inp, base.model_copy(update=VARIANTS[name]))
            for r in score(est, rc, truth, facts, inp["lsoas"]):
                rows.append({"regime": regime, "seed": int(seed), "mode": mode, "variant": name, **r})
        print(folder.name, flush=True)
    table = pd.DataFrame(rows)
    if args.out:
        table.round(3).to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
