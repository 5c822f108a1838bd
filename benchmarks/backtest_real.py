"""Real back-test: counts-only estimates on published data against Census 2021.

The package ``../shared/data/real/census2021_backtest`` (Blackburn with Darwen, Burnley, Ribble
Valley: 191 LSOAs of 2011) holds what an analyst could hold - ONS mid-2019 LSOA estimates (persons),
NHS Digital practice x LSOA counts at four dates to 4 January 2021, practice x sex x single-year
lists, an LSOA -> LA lookup - and, apart, the census of 21 March 2021 as the truth.

This script copies the package's raw/ into a temporary data folder, runs the pipeline there through
the normal CLI (``cohesion outputs --data-dir ...``, what ``make all DATA_DIR=...`` runs), and compares
the estimates at the last extract with the census on the package's comparison units (the smallest
groups of 2011 and 2021 LSOAs that cover the same ground): MAPE, bias, 95% coverage and width,
overall, by district, for the quarter of units where ratio change errs most, and by the census's
six age groups - beside carry-forward and ratio change from the same run.

Calibration (``--calibrate``) of the counts-only margins, from this package, written to
pipeline/estimates/margin_model.json (modes.counts_only):
    c, b  random-walk variance of an LSOA's (log) estimate per year since the base (c) and per unit of
       cumulative counts-mode turbulence tau = T/1000 x y (b), beyond what the list-informed base
       leaves (V, base.py): e^2 - V = c y + b tau by non-negative least squares, e the unit's log
       error less its district's mean (the district-wide part is the LA term's business);
    g, psi_share  independent relative error of a sex x age cell, and a composition variance per person
       (people counted at the wrong age within the LSOA: psi_share E_g (1 - E_g / E), nothing for the
       total): non-negative least squares on the six age groups,
       e_g^2 - V - c y = g^2 sum_c E_c^2 / E_g^2 + psi_share (1 - E_g / E) / E_g;
and from England's figures (issue 8; README of the package), not from these districts:
    l0 = 0.042  the SD of LA-level errors of ONS mid-2020 estimates against the census;
    counts_base_sd = 0.047  the LSOA-specific error of the published base: England's mid-2020 LSOA
       estimates err by a median 3.7% (a normal SD of 3.7 / 0.674 = 5.5%), less the LA-wide part
       (LA errors of 2.3% on average, read as a mean absolute error: a normal SD of 2.9%):
       sqrt(5.5^2 - 2.9^2) = 4.7%. The England figures do not pin it down: read the 2.3% as a signed
       mean beside the SD of 4.2% (an LA part of about 4.4% RMS once the right tail is discounted)
       and it is about 3.3%; start from the LSOA mean absolute error of 5.5% (SD 6.9%) instead of
       the median and it is about 5.3%. The sensitivity table shows what that range does, and what
       leave-one-district-out would choose;
Each fitted value is also fitted leave-one-district-out (on two districts, scored on the third):
those held-out coverages are the honest figures and are reported beside the in-sample ones.

    .venv/bin/python benchmarks/backtest_real.py              # run and report with the committed model
    .venv/bin/python benchmarks/backtest_real.py --calibrate  # refit c, g; write margin_model.json; report
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import EstimateSettings  # noqa: E402
from pipeline.estimates import estimate_populations  # noqa: E402
from pipeline.estimates.margins import MODEL_PATH, age_terms_frame, load_mode_model  # noqa: E402

PACKAGE = ROOT.parent / "shared" / "data" / "real" / "census2021_backtest"
RESULTS = ROOT / "benchmarks" / "results"
Z = 1.959964
BANDS_5 = [f"{a}-{a + 4}" for a in range(0, 85, 5)] + ["85+"]
AGE_GROUPS = [("Aged 15 years and under", 0, 15), ("Aged 16 to 24 years", 16, 24), ("Aged 25 to 34 years", 25, 34),
              ("Aged 35 to 49 years", 35, 49), ("Aged 50 to 64 years", 50, 64), ("Aged 65 years and over", 65, 200)]
METHODS = {"cohdmap": "cohdmap (counts only)", "ratio_change": "ratio change", "base_carried_forward": "carry-forward"}
ENGLAND = {"l0": 0.042, "counts_base_sd": 0.047}


def find_package(path: str | None) -> Path:
    candidates = [Path(path)] if path else [PACKAGE, Path("/work/shared/data/real/census2021_backtest")]
    for c in candidates:
        if (c / "raw").is_dir() and (c / "truth").is_dir():
            return c
    raise SystemExit(f"the census 2021 back-test package was not found (tried {', '.join(map(str, candidates))})")


def run_pipeline(package: Path, work: Path) -> Path:
    """Copy raw/ into a fresh data folder and run every stage through the CLI; return processed/."""
    data = work / "data"
    shutil.copytree(package / "raw", data / "raw")
    cli = Path(sys.executable).parent / "cohesion"
    cmd = [str(cli), "outputs", "--data-dir", str(data)] if cli.exists() else \
        [sys.executable, "-m", "pipeline.cli", "outputs", "--data-dir", str(data)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the pipeline run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return data / "processed"


# ------------------------------------------------------------------------------------ the truth

def units(package: Path) -> tuple[pd.Series, pd.Series]:
    cu = pd.read_csv(package / "truth" / "comparison-units.csv", dtype=str)
    u11 = cu[cu["vintage"] == "2011"].set_index("lsoa_code")["unit_id"]
    u21 = cu[cu["vintage"] == "2021"].set_index("lsoa_code")["unit_id"]
    return u11, u21


def census_totals(package: Path, u21: pd.Series) -> pd.Series:
    c = pd.read_csv(package / "truth" / "census2021-usual-residents-lsoa21-total.csv")
    return c.assign(unit=c["lsoa21_code"].map(u21)).groupby("unit")["total_residents"].sum()


def census_age6(package: Path, u21: pd.Series) -> pd.Series:
    c = pd.read_csv(package / "truth" / "census2021-usual-residents-lsoa21-age6.csv")
    return c.assign(unit=c["lsoa21_code"].map(u21)).groupby(["unit", "age_group"])["usual_residents"].sum()


# ------------------------------------------------------------------------------- the estimates

def unit_frame(con, u11: pd.Series, truth: pd.Series, model: dict) -> pd.DataFrame:
    """Per comparison unit at the last extract: each method's estimate, cohdmap's variance parts, truth."""
    last = con.execute("SELECT max(reference_date) FROM population_estimates").fetchall()[0][0]
    rows = con.execute("""
        SELECT r.lsoa_code, r.estimate, r.variance, r.base_variance, r.years_since_base, r.turbulence,
               r.est_ratio_change, r.est_base_carried_forward, g.la_code
        FROM est_lsoa_rows r JOIN (SELECT lsoa_code, any_value(la_code) AS la_code FROM est_lsoa_geo GROUP BY 1) g
          USING (lsoa_code)
        WHERE r.sex = 'All' AND r.age_band = 'All' AND r.reference_date = ?""", [last]).df()
    rows["unit"] = rows["lsoa_code"].map(u11)
    rows["sd"] = np.sqrt(rows["variance"])
    rho = float(model["rho"])
    u = rows.groupby("unit").agg(
        cohdmap=("estimate", "sum"), ratio_change=("est_ratio_change", "sum"),
        base_carried_forward=("est_base_carried_forward", "sum"), v_sum=("variance", "sum"), sd_sum=("sd", "sum"),
        V=("base_variance", "mean"), y=("years_since_base", "first"), turbulence=("turbulence", "mean"),
        la_code=("la_code", "first"), lsoas=("lsoa_code", "count"))
    u["truth"] = truth.reindex(u.index)
    # the LA-wide error by age band (m0, m1; the roll-up sql/publish/03_est_area_rows.sql): sum over the
    # unit's bands of (m0_g^2 + (m1_g y)^2) E_b^2, E_b both sexes of all its LSOAs
    bands = con.execute("""SELECT lsoa_code, age_band, estimate, years_since_base FROM est_lsoa_rows
                           WHERE sex = 'All' AND age_band <> 'All' AND reference_date = ?""", [last]).df()
    u["v_age"] = age_band_variance(bands.assign(unit=bands["lsoa_code"].map(u11)), model).reindex(u.index).fillna(0.0)
    u["variance"] = ((1 - rho) * u["v_sum"] + rho * u["sd_sum"] ** 2
                     + (model["l0"] ** 2 + (model["l1"] * u["y"]) ** 2) * u["cohdmap"] ** 2 + u["v_age"])
    pub = con.execute("""SELECT area_code AS lsoa_code, lower_95, upper_95 FROM population_estimates
                         WHERE area_type = 'lsoa' AND sex = 'All' AND age_band = 'All' AND reference_date = ?""",
                      [last]).df()
    u = u.reset_index()
    single = u[u["lsoas"] == 1].merge(rows[["unit", "lsoa_code"]], on="unit").merge(pub, on="lsoa_code")
    u = u.merge(single[["unit", "lower_95", "upper_95"]], on="unit", how="left")
    published = u["lower_95"].notna()
    u["lower"] = np.where(published, u["lower_95"], np.maximum(u["cohdmap"] - Z * np.sqrt(u["variance"]), 0))
    u["upper"] = np.where(published, u["upper_95"], u["cohdmap"] + Z * np.sqrt(u["variance"]))
    if published.any():  # the published interval is the variance model's: check the two agree
        recomputed = u.loc[published, "cohdmap"] + Z * np.sqrt(u.loc[published, "variance"])
        if not np.allclose(recomputed, u.loc[published, "upper_95"], rtol=1e-6):
            raise SystemExit("published intervals differ from the variance model's: the back-test is out of step")
    return u


def age_band_variance(bands: pd.DataFrame, model: dict, by=("unit",)) -> pd.Series:
    """Per `by` group: sum over its 5-year bands of (m0_g^2 + (m1_g y)^2) (sum of the group's estimates
    in the band)^2 - the LA-wide error by age (margins.py), fully correlated between LSOAs.
    `bands`: estimate, age_band, years_since_base and the `by` columns."""
    terms = age_terms_frame(model).set_index("age_band")
    b = bands.groupby([*by, "age_band"], as_index=False).agg(e=("estimate", "sum"), y=("years_since_base", "first"))
    m0, m1 = terms["m0"].reindex(b["age_band"]).to_numpy(), terms["m1"].reindex(b["age_band"]).to_numpy()
    b["v"] = (m0 ** 2 + (m1 * b["y"]) ** 2) * b["e"] ** 2
    return b.groupby(list(by))["v"].sum()


def age_frame(con, u11: pd.Series, truth6: pd.Series, lsoa_var: pd.DataFrame, model: dict) -> pd.DataFrame:
    """Per unit x census age group at the last extract: each method's estimate and cohdmap's variance.

    The age groups are not 5-year bands: they are summed from the single years the counts-only mode
    keeps (est_lsoa_single_years). A group's variance is the margin model's for a row made of the
    sex x band pieces it covers, var = E^2 s^2 + g^2 sum_c E_c^2 + psi E, plus the LA-wide term.
    """
    last = con.execute("SELECT max(extract_date) FROM est_lsoa_single_years").fetchall()[0][0]
    s = con.execute("SELECT * FROM est_lsoa_single_years WHERE extract_date = ?", [last]).df()
    s["unit"] = s["lsoa_code"].map(u11)
    s["age_group"] = None
    for name, lo, hi in AGE_GROUPS:
        s.loc[(s["age"] >= lo) & (s["age"] <= hi), "age_group"] = name
    s["band"] = np.minimum(s["age"] // 5, 17)
    piece = s.groupby(["unit", "age_group", "sex", "band"], as_index=False)["estimate"].sum()
    piece["sq"] = piece["estimate"] ** 2
    sq = piece.groupby(["unit", "age_group"])["sq"].sum()
    g = s.groupby(["unit", "age_group"])[["estimate", "est_ratio_change", "published_base"]].sum()
    g = g.rename(columns={"estimate": "cohdmap", "est_ratio_change": "ratio_change",
                          "published_base": "base_carried_forward"})
    g["cell_sq"] = sq
    s["age_band"] = np.array(BANDS_5)[s["band"].to_numpy()]
    ysb = con.execute("SELECT max(years_since_base) FROM est_lsoa_rows WHERE reference_date = ?", [last]).fetchall()[0][0]
    g["v_age"] = age_band_variance(s.assign(years_since_base=float(ysb or 0.0)), model, by=("unit", "age_group"))
    g["truth"] = truth6.reindex(g.index)
    g = g.reset_index().merge(lsoa_var, on="unit", how="left")
    g["unit_total"] = g.groupby("unit")["cohdmap"].transform("sum")
    g["s2"] = group_relative_variance(g, model)
    g["variance"] = (g["cohdmap"] ** 2 * (g["s2"] + model["l0"] ** 2 + (model["l1"] * g["y"]) ** 2)
                     + model["g"] ** 2 * g["cell_sq"] + model["psi"] * np.maximum(g["cohdmap"], 1.0)
                     + composition(g, model) + g["v_age"].fillna(0.0))
    g["lower"] = np.maximum(g["cohdmap"] - Z * np.sqrt(g["variance"]), 0)
    g["upper"] = g["cohdmap"] + Z * np.sqrt(g["variance"])
    return g


def composition(frame: pd.DataFrame, model: dict) -> np.ndarray:
    """psi_share E (1 - E / E_unit): people at the wrong age within the unit (margins.predict_variance)."""
    share = (frame["cohdmap"] / np.maximum(frame["unit_total"], 1e-9)).clip(0, 1)
    return model.get("psi_share", 0.0) * frame["cohdmap"] * (1 - share)


def group_relative_variance(frame: pd.DataFrame, model: dict) -> np.ndarray:
    """The LSOA-shared relative variance of the counts-only model: j V + c y (margins.relative_variance)."""
    return model["j"] * frame["V"] + model["c"] * frame["y"] + model["b"] * frame["turbulence"] / 1000 * frame["y"]


# ------------------------------------------------------------------------------------- scoring

def summarise(frame: pd.DataFrame, intervals: bool = True) -> dict:
    out = {"units": int(len(frame))}
    for m in METHODS:
        err = frame[m] / frame["truth"] - 1
        out[f"{m}_mape"] = 100 * err.abs().mean()
        out[f"{m}_bias"] = 100 * err.mean()
    if intervals:
        covered = (frame["truth"] >= frame["lower"]) & (frame["truth"] <= frame["upper"])
        out["coverage_95"] = 100 * covered.mean()
        out["width_pct"] = 100 * ((frame["upper"] - frame["lower"]) / frame["cohdmap"]).mean()
    return out


def score_tables(u: pd.DataFrame, g: pd.DataFrame) -> dict[str, pd.DataFrame]:
    rc_err = (u["ratio_change"] / u["truth"] - 1).abs()
    hard = u[rc_err >= rc_err.quantile(0.75)]
    overall = pd.DataFrame([{"units": "all", **summarise(u)},
                            {"units": "quarter where ratio change errs most", **summarise(hard)}])
    by_la = pd.DataFrame([{"district": la, **summarise(d)} for la, d in u.groupby("la_code")])
    by_age = pd.DataFrame([{"age_group": a, **summarise(d)} for a, d in g.groupby("age_group", sort=False)])
    order = {name: i for i, (name, _, _) in enumerate(AGE_GROUPS)}
    by_age = by_age.sort_values("age_group", key=lambda s: s.map(order)).reset_index(drop=True)
    thirds = pd.qcut(u["turbulence"], 3, labels=["lowest third", "middle third", "highest third"])
    by_turb = pd.DataFrame([{"turbulence": str(t), "mean_turbulence": d["turbulence"].mean(), **summarise(d)}
                            for t, d in u.groupby(thirds, observed=True)])
    return {"overall": overall, "by_district": by_la, "by_turbulence": by_turb, "by_age_group": by_age}


def la_table(con, truth: pd.Series, u: pd.DataFrame) -> pd.DataFrame:
    """District totals: the published LA rows at the last extract against the census."""
    last = con.execute("SELECT max(reference_date) FROM population_estimates").fetchall()[0][0]
    la = con.execute("""SELECT area_code AS la_code, estimate AS cohdmap, lower_95 AS lower, upper_95 AS upper
                        FROM population_estimates WHERE area_type = 'la' AND sex = 'All' AND age_band = 'All'
                          AND reference_date = ?""", [last]).df()
    sums = u.groupby("la_code")[["ratio_change", "base_carried_forward", "truth"]].sum().reset_index()
    la = la.merge(sums, on="la_code")
    rows = []
    for r in la.itertuples(index=False):
        rows.append({"district": r.la_code, "census": r.truth, **{f"{m}_error_pct": 100 * (getattr(r, m) / r.truth - 1)
                                                                   for m in METHODS},
                     "covered": bool(r.lower <= r.truth <= r.upper), "width_pct": 100 * (r.upper - r.lower) / r.cohdmap})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------- calibration

def fit_time_variance(u: pd.DataFrame) -> tuple[float, float]:
    """c and b: e^2 - V = c y + b tau (tau = turbulence / 1000 x years) by non-negative least
    squares, e the unit's log error less its district's mean (the district-wide part is l0's)."""
    from scipy.optimize import nnls

    e = np.log(u["cohdmap"] / u["truth"])
    e = e - e.groupby(u["la_code"]).transform("mean")
    design = np.column_stack([u["y"], u["turbulence"] / 1000.0 * u["y"]])
    (c, b), _ = nnls(design, (e ** 2 - u["V"]).to_numpy())
    return float(c), float(b)


def fit_cell_variance(g: pd.DataFrame, model: dict) -> tuple[float, float]:
    """g and psi_share from the age groups' errors by non-negative least squares (module docstring):
    e_g^2 - V - c y = g^2 sum_c E_c^2 / E_g^2 + psi_share (1 - E_g / E) / E_g, e_g less its district's mean."""
    from scipy.optimize import nnls

    e = g["cohdmap"] / g["truth"] - 1
    e = e - e.groupby(g["la_code"]).transform("mean")
    rest = e ** 2 - group_relative_variance(g, model)
    size = np.maximum(g["cohdmap"], 1.0)
    design = np.column_stack([g["cell_sq"] / size ** 2, (1.0 - g["cohdmap"] / g["unit_total"]).clip(0, 1) / size])
    (g2, psi), _ = nnls(design, rest.to_numpy())
    return float(np.sqrt(g2)), float(psi)


def interval_frame(frame: pd.DataFrame, model: dict, kind: str) -> pd.DataFrame:
    """Recompute intervals with other parameters (leave-one-district-out scoring)."""
    f = frame.copy()
    shared = group_relative_variance(f, model) + model["l0"] ** 2 + (model["l1"] * f["y"]) ** 2
    v_age = f["v_age"].fillna(0.0) if "v_age" in f else 0.0  # the LA-wide error by age (not refitted here)
    if kind == "total":
        var = f["cohdmap"] ** 2 * shared + model["psi"] * np.maximum(f["cohdmap"], 1.0) + v_age
    else:
        var = (f["cohdmap"] ** 2 * shared + model["g"] ** 2 * f["cell_sq"] + model["psi"] * np.maximum(f["cohdmap"], 1.0)
               + composition(f, model) + v_age)
    f["lower"] = np.maximum(f["cohdmap"] - Z * np.sqrt(var), 0)
    f["upper"] = f["cohdmap"] + Z * np.sqrt(var)
    return f


def leave_one_district_out(u: pd.DataFrame, g: pd.DataFrame, model: dict) -> pd.DataFrame:
    rows = []
    for la in sorted(u["la_code"].unique()):
        c, b = fit_time_variance(u[u["la_code"] != la])
        fit = {**model, "c": c, "b": b}
        fit["g"], fit["psi_share"] = fit_cell_variance(g[g["la_code"] != la], fit)
        tu = interval_frame(u[u["la_code"] == la], fit, "total")
        tg = interval_frame(g[g["la_code"] == la], fit, "group")
        cu = (tu["truth"] >= tu["lower"]) & (tu["truth"] <= tu["upper"])
        cg = (tg["truth"] >= tg["lower"]) & (tg["truth"] <= tg["upper"])
        rows.append({"held_out": la, "c_fitted_on_others": fit["c"], "b_fitted_on_others": fit["b"],
                     "g_fitted_on_others": fit["g"],
                     "psi_share_fitted_on_others": fit["psi_share"],
                     "units": len(tu), "coverage_totals": 100 * cu.mean(),
                     "width_totals_pct": 100 * ((tu["upper"] - tu["lower"]) / tu["cohdmap"]).mean(),
                     "coverage_age_groups": 100 * cg.mean()})
    out = pd.DataFrame(rows)
    n = out["units"].sum()
    out.loc[len(out)] = {"held_out": "all (pooled held-out)", "c_fitted_on_others": np.nan, "b_fitted_on_others": np.nan,
                         "g_fitted_on_others": np.nan,
                         "psi_share_fitted_on_others": np.nan,
                         "units": n, "coverage_totals": (out["coverage_totals"] * out["units"]).sum() / n,
                         "width_totals_pct": (out["width_totals_pct"] * out["units"]).sum() / n,
                         "coverage_age_groups": (out["coverage_age_groups"] * out["units"]).sum() / n}
    return out


def base_sd_sensitivity(processed: Path, u11: pd.Series, truth: pd.Series) -> pd.DataFrame:
    """MAPE of LSOA totals for other values of counts_base_sd, and the value leave-one-district-out
    would choose from a grid (scored on the held-out district), beside England's 0.047."""
    grid = [0.0, 0.03, 0.035, 0.04, 0.047, 0.053, 0.06, 0.08]
    per = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "copy.duckdb"
        shutil.copy(processed / "cohesion.duckdb", db)
        con = duckdb.connect(str(db))
        for sd in grid:
            estimate_populations(con, EstimateSettings(margin_overrides={"counts_base_sd": sd}))
            m = unit_frame(con, u11, truth, load_mode_model(mode="counts_only")[0])
            per[sd] = m.set_index("unit")[["cohdmap", "ratio_change", "truth", "la_code"]]
        con.close()
    rows = []
    for sd, m in per.items():
        err = (m["cohdmap"] / m["truth"] - 1).abs()
        rows.append({"counts_base_sd": sd, "mape_all": 100 * err.mean(),
                     **{f"mape_{la}": 100 * e.mean() for la, e in err.groupby(m["la_code"])}})
    table = pd.DataFrame(rows)
    las = sorted(next(iter(per.values()))["la_code"].unique())
    lodo = []
    for la in las:
        others = [c for c in las if c != la]
        n_others = [int((next(iter(per.values()))["la_code"] == c).sum()) for c in others]
        score = {sd: np.average([table.loc[table["counts_base_sd"] == sd, f"mape_{c}"].iloc[0] for c in others],
                                weights=n_others) for sd in grid}
        chosen = min(score, key=score.get)
        lodo.append(f"{la}: chosen {chosen} on the other two, held-out MAPE "
                    f"{table.loc[table['counts_base_sd'] == chosen, f'mape_{la}'].iloc[0]:.2f}% "
                    f"(England's 0.047: {table.loc[table['counts_base_sd'] == 0.047, f'mape_{la}'].iloc[0]:.2f}%)")
    held = []
    frame0 = next(iter(per.values()))
    for la, line in zip(las, lodo):
        chosen = float(line.split("chosen ")[1].split(" ")[0])
        m = per[chosen]
        err = (m["cohdmap"] / m["truth"] - 1).abs()
        held.append(err[frame0["la_code"] == la])
    rc = 100 * (frame0["ratio_change"] / frame0["truth"] - 1).abs().mean()
    lodo.append(f"pooled over the held-out districts, each with the s_B chosen on the others: MAPE "
                f"{100 * pd.concat(held).mean():.2f}% (ratio change {rc:.2f}% on the same units)")
    table.attrs["lodo"] = lodo
    return table


def write_model(c: float, b: float, g: float, psi: float, lodo: pd.DataFrame, units_n: int) -> None:
    doc = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    doc.setdefault("modes", {})
    doc["modes"]["counts_only"] = {
        "checked_on": (f"Census 2021 on {units_n} comparison units of 3 real districts (Blackburn with Darwen, "
                       "Burnley, Ribble Valley; LSOA totals and six age groups), held-out coverage by "
                       "leave-one-district-out: benchmarks/results/estimates_backtest_real.md"),
        "parameters": {
            "a": 0.0, "f": 0.0, "q": 0.0, "j": 1.0, "b": round(b, 6), "c": round(c, 6), "d": 0.0, "e": 0.0,
            "g": round(g, 5), "h": 0.0, "psi": 0.0, "psi_share": round(psi, 4), "kappa": 1.0, "kappa_t": 0.0, "kappa_y": 0.0,
            "kappa_n": 0.0, "rho": 0.0, "omega": 0.0, "l0": ENGLAND["l0"], "l1": 0.0,
            "counts_base_sd": ENGLAND["counts_base_sd"],
        },
        "sources": {
            "counts_base_sd": "England: ONS mid-2020 LSOA estimates vs Census 2021, median abs error 3.7% (normal SD 5.5%) "
                              "less the LA-wide part (mean abs 2.3%, SD 2.9%): sqrt(5.5^2 - 2.9^2) = 4.7% (issue 8)",
            "l0": "England: SD of LA-level mid-2020 estimate errors against Census 2021, 4.2% (issue 8)",
            "psi_share": "this package: composition variance per person (people in the wrong age within the LSOA, "
                         "0 for its total), fitted with g on the six age groups",
            "psi": "0: the composition term psi_share takes its place",
            "j": "the list-informed base's remaining variance V enters as it is (base.py)",
            "c, b": "this package: LSOA log errors less their district's mean, e^2 - V = c y + b tau by non-negative "
                    "least squares (tau = counts-mode turbulence / 1000 x years since base); leave-one-district-out "
                    "values in the results",
            "g": "this package: six census age groups, non-negative least squares with psi_share after V and c y",
            "rho, omega": "no MSOA or ward truth in the package: rho 0 (LSOA errors independent beyond the LA-wide term)",
        },
        "leave_one_district_out": lodo.round(5).to_dict(orient="records"),
    }
    MODEL_PATH.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------------- report

def _num(v) -> str:
    if isinstance(v, (float, np.floating)):
        return "" if np.isnan(v) else (f"{v:.2f}" if abs(v) >= 1 or v == 0 else f"{v:.3g}")
    return str(v)


def fmt(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(_num(v) for v in r) + " |")
    return "\n".join(lines)


def write_report(tables, lodo, sens, model, checked, report, seconds, command) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    overall = tables["overall"].iloc[0]
    ratio = overall["cohdmap_mape"] / overall["ratio_change_mape"]
    frames = []
    for name, t in tables.items():
        frames.append(t.assign(table=name))
    pd.concat(frames, ignore_index=True).round(6).to_csv(RESULTS / "estimates_backtest_real.csv", index=False)
    lines = [
        "# Real back-test: counts-only estimates against Census 2021",
        "",
        f"Command: `{command}` ({seconds:.0f} s). Package: `../shared/data/real/census2021_backtest` (3 districts, "
        f"{int(overall['units'])} comparison units). The pipeline ran through the CLI on a copy of raw/ in a temporary "
        f"data folder; run mode `{report.get('mode')}`, rows' method `{report.get('method')}`, intervals published: "
        f"{report.get('intervals_published')}.",
        "",
        f"Estimates at the last extract (4 January 2021) against the census (21 March 2021). LSOA MAPE "
        f"**{overall['cohdmap_mape']:.2f}%** against ratio change's {overall['ratio_change_mape']:.2f}% "
        f"(x{ratio:.2f}; target x0.85) and carry-forward's {overall['base_carried_forward_mape']:.2f}%; 95% intervals "
        f"cover **{overall['coverage_95']:.1f}%** of units (target 90-98%), mean width {overall['width_pct']:.1f}% of "
        "the estimate.",
        "",
        "## LSOA totals (comparison units)",
        fmt(tables["overall"]),
        "",
        "## By district",
        fmt(tables["by_district"]),
        "",
        "## By turbulence (gross practice x LSOA change per 1,000 list-years), thirds of units",
        fmt(tables["by_turbulence"]),
        "",
        "## District totals (published LA rows; the LA-wide term l0 is England's)",
        fmt(tables["la_totals"]),
        "",
        "## By the census's six age groups (persons; summed from the single years kept by cohort)",
        fmt(tables["by_age_group"]),
        "",
        "## Margins held out: leave-one-district-out",
        "c, b, g and psi_share fitted on two districts, intervals scored on the third (the LA-wide term l0 and the base's "
        "error s_B are England's figures throughout, not fitted here).",
        fmt(lodo),
        "",
        "## The published base's LSOA error s_B (counts_base_sd): sensitivity",
        "s_B is taken from England's figures (0.047); the MAPE of LSOA totals for other values, and what "
        "leave-one-district-out would have chosen from this grid:",
        fmt(sens),
        "",
        *[f"- {line}" for line in sens.attrs.get("lodo", [])],
        "",
        "## Model used (pipeline/estimates/margin_model.json, modes.counts_only)",
        f"checked on: {checked}",
        "",
        "```",
        json.dumps({k: model[k] for k in ("counts_base_sd", "j", "c", "b", "g", "psi", "psi_share", "l0", "l1", "rho")}, indent=1),
        "```",
        "",
        "Ratio change: ONS's simplest form, P x L(4 Jan 2021) / L(1 Jul 2019) on LSOA totals (by sex x band within, "
        "constrained to that); carry-forward: the mid-2019 estimate as published. Age groups compare the "
        "estimate for 4 January 2021 with the census of 21 March 2021 without ageing the 11 weeks between.",
    ]
    (RESULTS / "estimates_backtest_real.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--package", help="the census2021_backtest folder (default: ../shared/data/real/...)")
    ap.add_argument("--calibrate", action="store_true", help="refit c and g on this package and write margin_model.json")
    ap.add_argument("--keep", help="keep the data folder here instead of a temporary one")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    package = find_package(args.package)
    u11, u21 = units(package)
    truth = census_totals(package, u21)
    truth6 = census_age6(package, u21)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        if args.keep and work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
        processed = run_pipeline(package, work)
        if args.calibrate:
            model, _ = load_mode_model(mode="counts_only")
            model.update({"j": 1.0, "a": 0.0, "f": 0.0, "b": 0.0, "c": 0.0, "g": 0.0, "psi": 0.0, "psi_share": 0.0,
                          **ENGLAND})
            con = duckdb.connect(str(processed / "cohesion.duckdb"), read_only=True)
            u = unit_frame(con, u11, truth, {**model, "rho": 0.0, "l1": 0.0})
            lsoa_var = u[["unit", "V", "y", "turbulence", "la_code"]]
            g = age_frame(con, u11, truth6, lsoa_var, model)
            con.close()
            model["c"], model["b"] = fit_time_variance(u)
            model["g"], model["psi_share"] = fit_cell_variance(g, model)
            lodo = leave_one_district_out(u, g, model)
            write_model(model["c"], model["b"], model["g"], model["psi_share"], lodo, len(u))
            shutil.rmtree(work / "data")
            processed = run_pipeline(package, work)  # again, with the model just written
        model, checked = load_mode_model(mode="counts_only")
        report = json.loads((processed / "run_report.json").read_text())["estimates"]
        con = duckdb.connect(str(processed / "cohesion.duckdb"), read_only=True)
        u = unit_frame(con, u11, truth, model)
        g = age_frame(con, u11, truth6, u[["unit", "V", "y", "turbulence", "la_code"]], model)
        con.close()
        tables = score_tables(u, g)
        con = duckdb.connect(str(processed / "cohesion.duckdb"), read_only=True)
        tables["la_totals"] = la_table(con, truth, u)
        con.close()
        lodo = leave_one_district_out(u, g, model)
        sens = base_sd_sensitivity(processed, u11, truth)
    command = "python benchmarks/backtest_real.py" + (" --calibrate" if args.calibrate else "")
    write_report(tables, lodo, sens, model, checked, report, time.perf_counter() - started, command)
    print((RESULTS / "estimates_backtest_real.md").read_text())


if __name__ == "__main__":
    main()
