"""Margins of error: a variance model driven by turbulence and time since the base.

For an LSOA row (a cell, a sex or age margin, or the total) with estimate E, reference date
y years after the base, turbulence T (moves per 1,000 a year; x = T/1000) and cumulative
turbulence tau = x y (moves per resident since the base; see turbulence.py):

    s^2       = a^2 + f x + (q x)^2 + j V + c y + b tau + (e tau)^2 + (d y)^2   shared, relative
    var(E)    = K^2 [ E^2 s^2 + (g^2 + h tau) sum_cells E_c^2 + psi max(E, 1) ]
    K         = kappa (1 + kappa_t x) (1 + kappa_y y) (N / 1500)^kappa_n      N = LSOA residents

* a^2 + f x + (q x)^2 + j V: error of the base the estimate builds on, larger where people move
  more (official estimates are least accurate where in-migration is high, and lists are least
  informative there too); V is the variance the list-informed base leaves (base.py);
* c y + b tau: random-walk error that grows with time and with the number of moves since the
  base (variance linear in time); (d y)^2 + (e tau)^2: drift (ghosts accumulating, arrivals
  who never register) that grows linearly, so its variance grows with the square;
* (g^2 + h tau) sum E_c^2: independent errors of the age-sex cells that make up the row (a cell
  is noisier than the LSOA total: its inflation is less certain and people age across bands);
* psi max(E, 1): a Poisson-like small-count term, so a cell estimated at 0-3 people still has
  a margin;
* K: a final scale of the standard error. The variance model is fitted by maximum likelihood,
  which matches variances, not tails; kappa_t, kappa_y and kappa_n even out the coverage of the
  calibration totals across thirds of turbulence and of time since the base (errors in churning
  areas are heavier-tailed), and kappa then sets the coverage of all calibration totals to 95%.

The back-test fits a, f, j, c, b (the shared part; q, e and d stay 0: with them the likelihood
chases the heaviest tails and the intervals grow the wrong way with time), g, h and psi.

The interval is E -/+ z sqrt(var), the lower limit floored at 0.

Up the geography (LSOA -> MSOA, ward, LA), with weights w_i (1, or ward_share for wards), in one
SQL step for population and ethnic rows alike (sql/publish/03_est_area_rows.sql):

    E_A   = sum w_i E_i
    var_A = (1 - rho) sum w_i^2 var_i + rho (sum w_i sqrt(var_i))^2
            + (l0^2 + (l1 y)^2) E_A^2
            + sum over the row's bands b of (m0_g(b)^2 + (m1_g(b) y)^2) E_A,b^2
            [+ omega^2 sum w_i (1 - w_i) E_i^2 for wards]

where var_i is the LSOA-specific variance above and the last two terms the error common to the
whole LA, in every area including the LSOA itself (whose interval is specific + common): the LA's
all-ages error (l0, l1) and its error by age (m0, m1 per broad age group g, AGE_GROUPS: the
published base's LA-wide error differs by age - ONS's mid-year estimates missed young adults and
infants most against Census 2021 - and list inflation and late registration differ by age too).
Both are fully correlated between LSOAs (computed on the area's summed estimate); the age term is
independent between bands and shared by the sexes.

i.e. LSOA errors are partially correlated with correlation rho. Independent errors (rho = 0)
would make the margin of a big area shrink like 1/sqrt(n) and give too-narrow intervals for the
LA: part of the error (drift in list inflation, a practice's list-cleaning campaign) is shared by
neighbouring LSOAs. The (l0^2 + (l1 y)^2) E_A^2 term is error common to the whole LA, in every
area in proportion to its size: the published base's LA total and LA-wide drift in the list
(a relative SD of l0 at the base, growing by l1 a year); it is what dominates the LA's own
margin. The omega term is the error of splitting an LSOA between wards by its share of
postcodes rather than of people. In calibration the errors are split: each district's common
relative error at each date (its all-LSOA total against the truth) gives l0 and l1, the LSOA
errors less that common part give the specific model, rho comes from MSOA totals and omega from
ward totals. When the LA total is supplied (la_totals),
estimates are scaled to it, the common term is dropped and the shared part of each LSOA variance
is removed (var_i x (1 - rho)); the LA all-ages total then has no margin.

The parameters are calibrated by back-testing against a known truth and stored in
margin_model.json with what each was fitted to: the top level by the demo back-test
(benchmarks/backtest_estimates.py); each run mode's margin terms (modes.<mode>.parameters) by
benchmarks/calibrate_margins.py, which fits them on one world of simulated districts (the demo
generator's, or the independent regimes simulator's) and tests them on the other, both ways
(benchmarks/results/margins_cross_world.md), then fits them on both; counts-only mode's by the
real back-test against Census 2021 (benchmarks/backtest_real.py) with only the age terms from the
simulated worlds. The LA-wide all-ages term l0 is never below the real back-test's 4.2% (England's
LA-level errors against Census 2021): a few simulated districts cannot estimate it, and the LSOA
scale K is then set on the errors less each district's own common error (common_in_scale=False).

Issue 9 (margins9): two changes make the width follow what a user can measure and no wider than
coverage needs.
* The LA-wide term at the base is each LA's own, read from its list-to-base gap
  G = log(LA's list / LA's published base) at the first extract (la_wide_sd): with England's
  published LA errors of the base (mean +2.3%, SD 4.2%) and England's list 7.2% above the census,
  E[base error | G] and Var[base error | G] follow by normal theory, and the term is their mean
  square. A list far below its base (a base too high) widens it; an LA at England's usual gap
  gets less than 4.2%. The one setting no published figure pins down, the spread of LAs' list
  inflation (gap_list_sd), is ASSUMED (equal to the base's 4.2%), not fitted. It is carried per
  LSOA (est_lsoa_rows.la_wide_sd) into the roll-up; l0 remains where the gap is unknown and in
  counts-only mode (gap_list_sd = 0 there: its terms come from the real back-test).
* K (common_in_scale="expected"): set so that the specific errors plus an LA-wide error drawn
  from N(0, la_wide_sd^2 + (l1 y)^2) are covered 95% of the time (expected_coverage_scale). Set
  on the specific errors alone (False), the specific part covered 95% before the LA-wide term was
  added, so the sum over-covered wherever the LA's error was small.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import optimize, stats

MODEL_PATH = Path(__file__).with_name("margin_model.json")
MARGIN_KEYS = ("a", "f", "q", "j", "b", "c", "d", "e", "g", "h", "psi", "kappa", "kappa_t", "kappa_y", "kappa_n")
DEFAULT_PARAMETERS = {
    "a": 0.02, "f": 0.01, "q": 0.0, "j": 0.0, "b": 0.0, "c": 0.0004, "d": 0.005, "e": 0.02, "g": 0.08, "h": 0.0, "psi": 1.0,
    "kappa": 1.0, "kappa_t": 0.0, "kappa_y": 0.0, "kappa_n": 0.0, "rho": 0.3, "omega": 0.0, "l0": 0.004, "l1": 0.005, "eta": 0.02,
    "base_a": 0.02, "base_f": 0.025,
    "w_school": 1.0, "w_asylum": 1.0,
    "counts_base_sd": 0.047, "psi_share": 0.0,
    # the LA-wide error read from the LA's list-to-base gap (la_wide_sd); gap_list_sd = 0 leaves it off (l0)
    "gap_base_mean": 0.023, "gap_base_sd": 0.042, "gap_list_ratio": 1.072, "gap_list_sd": 0.0,
}
# The LA-wide error by age: one (m0, m1) pair per broad age group, (m0^2 + (m1 y)^2) E_A,b^2 for
# every 5-year band b of the group, fully correlated between the LSOAs, independent between bands.
AGE_GROUPS = {
    "0_4": ("0-4",), "5_14": ("5-9", "10-14"), "15_24": ("15-19", "20-24"),
    "25_44": ("25-29", "30-34", "35-39", "40-44"), "45_64": ("45-49", "50-54", "55-59", "60-64"),
    "65_84": ("65-69", "70-74", "75-79", "80-84"), "85": ("85+",),
}
for _group in AGE_GROUPS:
    DEFAULT_PARAMETERS[f"m0_{_group}"] = 0.0
    DEFAULT_PARAMETERS[f"m1_{_group}"] = 0.0


def age_group_of(age_band: str) -> str:
    """The broad age group (a key of AGE_GROUPS) of a 5-year band."""
    for group, bands in AGE_GROUPS.items():
        if age_band in bands:
            return group
    raise ValueError(f"unknown age band '{age_band}' (expected an ONS 5-year band, 0-4 ... 85+)")


def age_terms_frame(params: dict):
    """est_margin_age_terms: one row per 5-year band with its LA-wide error terms m0, m1."""
    import pandas as pd

    rows = [{"age_band": band, "m0": float(params.get(f"m0_{g}", 0.0)), "m1": float(params.get(f"m1_{g}", 0.0))}
            for g, bands in AGE_GROUPS.items() for band in bands]
    return pd.DataFrame(rows)


def load_margin_model(path: str | Path | None = None, overrides: dict[str, float] | None = None) -> dict[str, float]:
    """The model parameters: defaults < margin_model.json (or `path`) < `overrides` (from config)."""
    params = dict(DEFAULT_PARAMETERS)
    path = Path(path) if path else MODEL_PATH
    if path.exists():
        doc = json.loads(path.read_text(encoding="utf-8"))
        params.update({k: float(v) for k, v in doc.get("parameters", {}).items()})
    for key, value in (overrides or {}).items():
        if key not in DEFAULT_PARAMETERS:
            raise KeyError(f"unknown margin model parameter '{key}' (known: {sorted(DEFAULT_PARAMETERS)})")
        params[key] = float(value)
    return params


def load_mode_model(path: str | Path | None = None, overrides: dict[str, float] | None = None,
                    mode: str = "register_movements") -> tuple[dict[str, float], str]:
    """The parameters for a run mode, and what its margins were checked on ("" = never checked).

    margin_model.json's top-level parameters are register mode's (calibrated on demo districts
    with movement records); ``modes.<mode>.parameters`` replace them for another mode, and
    ``modes.<mode>.checked_on`` says against what truth that mode's intervals were checked. A mode
    with no ``checked_on`` publishes estimates without intervals (estimate.py says why).
    Config overrides apply last.
    """
    params = load_margin_model(path, None)
    path = Path(path) if path else MODEL_PATH
    doc = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    entry = doc.get("modes", {}).get(mode, {})
    params.update({k: float(v) for k, v in entry.get("parameters", {}).items()})
    for key, value in (overrides or {}).items():
        if key not in params:
            raise KeyError(f"unknown margin model parameter '{key}' (known: {sorted(params)})")
        params[key] = float(value)
    return params, str(entry.get("checked_on", ""))


def relative_variance(params: dict, years, tau, turbulence=0.0, base_variance=0.0) -> np.ndarray:
    """s^2 = a^2 + f x + (q x)^2 + j V + c y + b tau + (e tau)^2 + (d y)^2 (x = T/1000), shared by an LSOA."""
    y = np.maximum(np.asarray(years, float), 0.0)
    tau = np.maximum(np.asarray(tau, float), 0.0)
    rate = np.maximum(np.asarray(turbulence, float), 0.0) / 1000.0
    p = params
    v_base = np.maximum(np.asarray(base_variance, float), 0.0)
    return (p["a"] ** 2 + p["f"] * rate + (p["q"] * rate) ** 2 + p["j"] * v_base + p["c"] * y + p["b"] * tau
            + (p["e"] * tau) ** 2 + (p["d"] * y) ** 2)


def predict_variance(params: dict, estimate, years, tau, cell_square_sum, turbulence=0.0,
                     base_variance=0.0, residents=None, lsoa_total=None) -> np.ndarray:
    """var(E) = K^2 [E^2 s^2 + (g^2 + h tau) sum E_c^2 + psi max(E, 1) + psi_share E (1 - E / E_lsoa)],
    K = kappa (1 + kappa_t x)(1 + kappa_y y)(N / 1500)^kappa_n (N: the LSOA's residents; None = 1500).

    psi_share is a composition term: people put in the wrong age or sex within the LSOA, which
    moves them between rows but not out of the LSOA's total (multinomial-like, 0 for the total);
    it needs `lsoa_total`, the LSOA's all-ages estimate (counts-only mode fits it; 0 elsewhere)."""
    est = np.maximum(np.asarray(estimate, float), 0.0)
    tau_ = np.maximum(np.asarray(tau, float), 0.0)
    p = params
    comp = 0.0
    if p.get("psi_share", 0.0) and lsoa_total is not None:
        total = np.maximum(np.asarray(lsoa_total, float), 1e-9)
        comp = p["psi_share"] * est * np.clip(1.0 - est / total, 0.0, 1.0)
    return scale_of(p, turbulence, years, residents) ** 2 * (
        est ** 2 * relative_variance(p, years, tau_, turbulence, base_variance)
        + (p["g"] ** 2 + p["h"] * tau_) * np.asarray(cell_square_sum, float)
        + p["psi"] * np.maximum(est, 1.0) + comp)


REFERENCE_RESIDENTS = 1500.0


def scale_of(params: dict, turbulence, years, residents=None) -> np.ndarray:
    """K = kappa (1 + kappa_t x)(1 + kappa_y y)(N / 1500)^kappa_n, the final scale of the standard error."""
    p = params
    size = 1.0 if residents is None else np.maximum(np.asarray(residents, float), 50.0) / REFERENCE_RESIDENTS
    return (p["kappa"] * (1.0 + p.get("kappa_t", 0.0) * np.maximum(np.asarray(turbulence, float), 0.0) / 1000.0)
            * (1.0 + p.get("kappa_y", 0.0) * np.maximum(np.asarray(years, float), 0.0))
            * size ** p.get("kappa_n", 0.0))


def la_wide_sd(params: dict, gap) -> np.ndarray:
    """The relative SD of the error common to an LA at the base, from its list-to-base gap.

    gap = log(LA's GP list / LA's published base) at the first extract: a user's own data. Read
    the gap as G = i - e, i = log(list / residents) the LA's list inflation, e = log(base /
    residents) the published base's LA-wide error, independent, with means and SDs
    (mu_i, sigma_i), (mu_e, sigma_e). Then (normal theory, best linear predictor)

        E[e | G]   = mu_e - k (G - (mu_i - mu_e)),   k = sigma_e^2 / (sigma_e^2 + sigma_i^2)
        Var[e | G] = sigma_e^2 sigma_i^2 / (sigma_e^2 + sigma_i^2)

    and the interval, centred on an estimate that carries the base's error, needs the mean
    square E[e^2 | G] = Var[e | G] + E[e | G]^2: an LA whose list sits far below its base (a base
    too high, the list cannot explain it) gets a wider LA-wide term, one at England's usual gap a
    narrower one than sigma_e alone. mu_e = gap_base_mean, sigma_e = gap_base_sd (England's LA
    errors of mid-2020 estimates against Census 2021: +2.3%, SD 4.2%), mu_i = log(gap_list_ratio)
    (England's registrations 7.2% above the census), sigma_i = gap_list_sd (the spread of LAs' list
    inflation; 0 = the term is off and l0 is returned). Where the gap is unknown (NaN) l0 is returned.
    """
    p = params
    g = np.asarray(gap, float)
    s_i = float(p.get("gap_list_sd", 0.0))
    if s_i <= 0:
        return np.full(g.shape, float(p["l0"]))
    k = p["gap_base_sd"] ** 2 / (p["gap_base_sd"] ** 2 + s_i ** 2)
    sd = np.sqrt(k * s_i ** 2 + expected_la_base_error(p, g) ** 2)
    return np.where(np.isfinite(g), sd, float(p["l0"]))


def expected_la_base_error(params: dict, gap) -> np.ndarray:
    """E[e | G] = mu_e - k (G - (mu_i - mu_e)), k = sigma_e^2 / (sigma_e^2 + sigma_i^2): the published
    base's expected LA-wide log error given the LA's list-to-base gap (see la_wide_sd). Used by the
    margins only: on real LAs moving the point estimate by it made LA totals worse
    (benchmarks/diagnose_la_anchor.py)."""
    p = params
    s_i, s_e, mu_e = float(p.get("gap_list_sd", 0.0)), float(p["gap_base_sd"]), float(p["gap_base_mean"])
    k = s_e ** 2 / (s_e ** 2 + s_i ** 2)
    return mu_e - k * (np.asarray(gap, float) - (np.log(p["gap_list_ratio"]) - mu_e))


def list_base_gaps(rows, lsoa_la):
    """Each LA's list-to-base gap, log(sum of the GP list / sum of the published base) over its
    LSOAs at the first reference date (all-ages rows of est_lsoa_rows: gp_list, published_base);
    `lsoa_la` maps lsoa_code -> la_code (a frame with those columns). NaN where either is 0."""
    import pandas as pd

    tot = rows[(rows["sex"] == "All") & (rows["age_band"] == "All")]  # text or categorical codes
    first = tot[tot["reference_date"] == tot["reference_date"].min()]
    geo = lsoa_la[["lsoa_code", "la_code"]].drop_duplicates("lsoa_code")
    m = pd.DataFrame({"lsoa_code": first["lsoa_code"].astype(str).to_numpy(),
                      "gp_list": first["gp_list"].to_numpy(float),
                      "published_base": first["published_base"].to_numpy(float)}).merge(geo, on="lsoa_code")
    g = m.groupby("la_code")[["gp_list", "published_base"]].sum()
    ok = (g["gp_list"] > 0) & (g["published_base"] > 0)
    gap = np.log(g["gp_list"].where(ok) / g["published_base"].where(ok))
    return gap.rename("gap")


def lsoa_la_wide_sd(params: dict, rows, lsoa_la) -> np.ndarray:
    """la_wide_sd of every est_lsoa_rows row: its LSOA's LA's (l0 where the LA's gap is unknown)."""
    import pandas as pd

    gaps = list_base_gaps(rows, lsoa_la)
    sd = pd.Series(la_wide_sd(params, gaps.to_numpy()), index=gaps.index)
    geo = lsoa_la[["lsoa_code", "la_code"]].drop_duplicates("lsoa_code").set_index("lsoa_code")["la_code"]
    codes, uniques = pd.factorize(rows["lsoa_code"])  # each LSOA looked up once, not once per row (millions)
    l0 = float(params["l0"])
    per_lsoa = pd.Series(np.asarray(uniques, dtype=object)).astype(str).map(geo).map(sd).fillna(l0).to_numpy(float)
    return np.append(per_lsoa, l0)[codes]  # code -1 (no LSOA): l0


def combine_variances(variances, weights, rho: float) -> float:
    """(1 - rho) sum w^2 v + rho (sum w sqrt v)^2: the variance of a weighted sum of LSOA estimates."""
    v = np.asarray(variances, float)
    w = np.asarray(weights, float)
    return float((1 - rho) * np.sum(w ** 2 * v) + rho * np.sum(w * np.sqrt(v)) ** 2)


def z_value(level: float) -> float:
    return float(stats.norm.ppf(0.5 + level / 2))


def interval_bounds(estimate, variance, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """E -/+ z sqrt(var), the lower limit floored at 0."""
    z = z_value(level)
    est = np.asarray(estimate, float)
    sd = np.sqrt(np.maximum(np.asarray(variance, float), 0.0))
    return np.maximum(est - z * sd, 0.0), est + z * sd


# ---------------------------------------------------------------- calibration (back-test only)

# variance components, in the order of variance_design's columns, and how each maps to a parameter
COMPONENTS = ("a2", "f", "q2", "j", "c", "b", "e2", "d2", "g2", "h", "psi")
N_SHARED = 8
FITTED = ("a2", "f", "j", "c", "b", "g2", "h", "psi")  # q2, e2, d2 stay at 0 (see the module docstring)


def variance_design(estimate, years, tau, cell_square_sum, turbulence, base_variance=0.0) -> np.ndarray:
    """Columns whose combination with the variance components gives var(E) / kappa^2."""
    est = np.maximum(np.asarray(estimate, float), 0.0)
    y = np.maximum(np.asarray(years, float), 0.0)
    tau_ = np.maximum(np.asarray(tau, float), 0.0)
    x = np.maximum(np.asarray(turbulence, float), 0.0) / 1000.0
    css = np.asarray(cell_square_sum, float)
    vb = np.broadcast_to(np.maximum(np.asarray(base_variance, float), 0.0), est.shape)
    e2 = est ** 2
    return np.column_stack([e2, e2 * x, e2 * x * x, e2 * vb, e2 * y, e2 * tau_, e2 * tau_ ** 2, e2 * y * y,
                            css, css * tau_, np.maximum(est, 1.0)])


def components_of(params: dict) -> np.ndarray:
    p = params
    return np.array([p["a"] ** 2, p["f"], p["q"] ** 2, p["j"], p["c"], p["b"], p["e"] ** 2, p["d"] ** 2,
                     p["g"] ** 2, p["h"], p["psi"]])


def params_of(components) -> dict[str, float]:
    a2, f, q2, j, c, b, e2, d2, g2, h, psi = (float(v) for v in components)
    return {"a": np.sqrt(a2), "f": f, "q": np.sqrt(q2), "j": j, "c": c, "b": b, "e": np.sqrt(e2), "d": np.sqrt(d2),
            "g": np.sqrt(g2), "h": h, "psi": psi}


def fit_variance_components(errors, design, start, free, df: float | None = None) -> np.ndarray:
    """Maximum likelihood for non-negative variance components (normal errors, or Student t
    with `df` degrees of freedom, which lets a few wild errors count for less).

    var = design @ theta; `free` marks the components to fit, the others stay at `start`.
    L-BFGS-B with the analytic gradient, each component scaled so that its column alone would
    explain the typical squared error (a well-conditioned problem), from several starts.
    """
    err2 = np.asarray(errors, float) ** 2
    X = np.asarray(design, float)
    theta0 = np.asarray(start, float).copy()
    free = np.asarray(free, bool)
    typical = np.median(err2) + 1e-9
    col = np.array([np.median(X[:, k][X[:, k] > 0]) if np.any(X[:, k] > 0) else 1.0 for k in range(X.shape[1])])
    scales = typical / np.maximum(col, 1e-300)

    def full(phi):
        theta = theta0.copy()
        theta[free] = phi * scales[free]
        return theta

    def nll(phi):
        v = np.maximum(X @ full(phi), 1e-9)
        if df is None:
            f = 0.5 * np.sum(np.log(v) + err2 / v)
            grad_v = 0.5 * (1.0 / v - err2 / v ** 2)
        else:
            u = err2 / (df * v)
            f = np.sum(0.5 * np.log(v) + 0.5 * (df + 1) * np.log1p(u))
            grad_v = 0.5 / v - 0.5 * (df + 1) * u / (v * (1 + u))
        g = (X[:, free] * grad_v[:, None]).sum(axis=0) * scales[free]
        return f, g

    n_free = int(free.sum())
    starts = [np.maximum(theta0[free] / scales[free], 1e-3), np.full(n_free, 1.0 / n_free), np.full(n_free, 0.05)]
    best = None
    for phi0 in starts:
        res = optimize.minimize(nll, phi0, jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * n_free,
                                options={"maxiter": 10000})
        if best is None or res.fun < best.fun:
            best = res
    return full(best.x)


def calibrate_margins(totals: dict, cells: dict, level: float = 0.95, start: dict | None = None,
                      common_in_scale: bool = True) -> dict[str, float]:
    """Fit the LSOA-specific margin parameters on back-test rows.

    `totals` and `cells` hold arrays (estimate, truth, years, tau, cell_square_sum, turbulence,
    base_variance, and optionally common_error - the district's relative error common to all its
    LSOAs at that date - and common_variance - its modelled relative variance, l0^2 + (l1 y)^2)
    for LSOA all-ages totals and for LSOA sex x age cells. The specific part is fitted to the
    errors less the common one: (1) the shared components on totals, (2) g, h, psi on cells,
    (3) the shared components again; (4) K = kappa (1 + kappa_t x)(1 + kappa_y y)(N/1500)^kappa_n
    so that, with the common variance added, the thirds of the totals by turbulence, by time since
    the base and by LSOA size (`residents`, optional) are covered alike and `level` of all of them; (5) the cell parts again beside the scaled
    shared part, and K again.

    With common_in_scale False, K is set on the specific errors alone (each error less its district's
    common error, no common variance): the specific part then covers `level` of the deviations from
    the district's own common error, whatever size that common error had in the calibration
    districts, and the LA-wide terms are added on top at the size they are given (the real
    back-test's, for instance) - for calibrating on simulated districts whose LA-wide error is not
    the real one. That covers `level` of the specific errors before the LA-wide term is added, so
    the sum covers more than `level` wherever the LA-wide error is smaller than its term (issue 9:
    steady districts 98%). With common_in_scale "expected" the shape (kappa_t, kappa_y, kappa_n)
    is set as with False and kappa so that the specific errors plus an LA-wide error drawn from
    N(0, common_variance) - the distribution the term stands for, not the calibration districts'
    own draws - are covered `level` of the time (expected_coverage_scale): no wider than needed
    (benchmarks/calibrate_margins.py).
    """
    p = dict(DEFAULT_PARAMETERS)
    p.update(start or {})
    fitted = np.array([c in FITTED for c in COMPONENTS])
    p.update({k: 0.0 for k, c in (("q", "q2"), ("e", "e2"), ("d", "d2")) if c not in FITTED})
    theta = components_of(p)
    shared = (np.arange(len(COMPONENTS)) < N_SHARED) & fitted
    cell_part = (np.arange(len(COMPONENTS)) >= N_SHARED) & fitted

    def design(d):
        return variance_design(d["estimate"], d["years"], d["tau"], d["cell_square_sum"], d["turbulence"],
                               d.get("base_variance", 0.0))

    def parts(d):
        est = np.asarray(d["estimate"], float)
        err = np.asarray(d["truth"], float) - est
        common = np.asarray(d.get("common_error", np.zeros_like(est)), float) * est
        common_var = np.asarray(d.get("common_variance", np.zeros_like(est)), float) * est ** 2
        return err, err - common, common_var

    Xt, Xc = design(totals), design(cells)
    et, et_spec, vt_common = parts(totals)
    ec, ec_spec, vc_common = parts(cells)
    theta = fit_variance_components(et_spec, Xt, theta, shared)
    theta = fit_variance_components(ec_spec, Xc, theta, cell_part)
    theta = fit_variance_components(et_spec, Xt, theta, shared)
    x = np.maximum(np.asarray(totals["turbulence"], float), 0.0) / 1000.0
    y = np.asarray(totals["years"], float)
    n = _size(totals)
    e_scale, c_scale = (et, vt_common) if common_in_scale is True else (et_spec, np.zeros_like(vt_common))
    kt, ky, kn, kappa = even_coverage(e_scale, Xt @ theta, c_scale, x, y, n, level)
    yc = np.asarray(cells["years"], float)
    xc = np.maximum(np.asarray(cells["turbulence"], float), 0.0) / 1000.0
    Kc2 = (kappa * (1 + kt * xc) * (1 + ky * yc) * _size(cells) ** kn) ** 2
    theta = fit_variance_components(ec_spec, Xc * Kc2[:, None], theta, cell_part)
    kt, ky, kn, kappa = even_coverage(e_scale, Xt @ theta, c_scale, x, y, n, level)
    if common_in_scale == "expected":
        shape2 = ((1 + kt * x) * (1 + ky * y) * n ** kn) ** 2
        kappa = expected_coverage_scale(et_spec, shape2 * (Xt @ theta), vt_common, level)
    out = params_of(theta)
    out.update({"kappa": kappa, "kappa_t": kt, "kappa_y": ky, "kappa_n": kn})
    return {k: float(out[k]) for k in MARGIN_KEYS}


def _size(d: dict) -> np.ndarray:
    est = np.asarray(d["estimate"], float)
    n = d.get("residents")
    return np.ones_like(est) if n is None else np.maximum(np.asarray(n, float), 50.0) / REFERENCE_RESIDENTS


def even_coverage(errors, specific, common, x, years, size=None, level: float = 0.95,
                  groups: int = 3) -> tuple[float, float, float, float]:
    """kappa_t, kappa_y, kappa_n, kappa for K = kappa (1 + kappa_t x)(1 + kappa_y y) size^kappa_n,
    so that |error| <= z sqrt(K^2 specific + common) for `level` of the rows overall and as nearly
    as possible alike in each third of x, of y and of size (coordinate search over grids; kappa
    as the `level` quantile of the scale each row needs)."""
    z = z_value(level)
    a = np.abs(np.asarray(errors, float)) / z
    S = np.maximum(np.asarray(specific, float), 1e-12)
    C = np.maximum(np.asarray(common, float), 0.0)
    x = np.asarray(x, float)
    y = np.asarray(years, float)
    n = np.ones_like(x) if size is None else np.asarray(size, float)

    def thirds(v):
        edges = np.unique(np.quantile(v, np.linspace(0, 1, groups + 1))[1:-1])
        return np.digitize(v, edges)

    groupings = [thirds(x), thirds(y)] + ([thirds(n)] if size is not None and np.ptp(n) > 0 else [])
    # the kappa at which each row is just covered: a^2 = kappa^2 shape^2 S + C
    need = np.sqrt(np.maximum(a ** 2 - C, 0.0) / S)
    log_n = np.log(n)

    def evaluate(kt, ky, kn):
        k_row = need / ((1.0 + kt * x) * (1.0 + ky * y) * np.exp(kn * log_n))
        k = float(np.quantile(k_row, level))
        covered = k_row <= k
        return sum((covered[b == g].mean() - level) ** 2 for b in groupings for g in np.unique(b)), k

    grids = {"kt": np.arange(0.0, 20.01, 0.1), "ky": np.arange(-0.4, 1.001, 0.025),
             "kn": np.arange(-1.0, 1.001, 0.025) if len(groupings) == 3 else np.array([0.0])}
    cur = {"kt": 0.0, "ky": 0.0, "kn": 0.0}
    best = evaluate(**cur)
    for _ in range(6):
        changed = False
        for name, grid in grids.items():
            for v in grid:
                trial = dict(cur, **{name: float(v)})
                res = evaluate(**trial)
                if res[0] < best[0] - 1e-12:
                    best, cur, changed = res, trial, True
        if not changed:
            break
    return cur["kt"], cur["ky"], cur["kn"], best[1]


def expected_coverage(errors, specific, common, scale: float, level: float = 0.95) -> float:
    """The expected share of rows covered by E -/+ z sqrt(scale^2 specific + common) when each row's
    error is its specific error (`errors`, observed) plus an LA-wide error drawn from N(0, common):

        mean_i [ Phi((z T_i - s_i) / sqrt(C_i)) - Phi((-z T_i - s_i) / sqrt(C_i)) ],
        T_i = sqrt(scale^2 S_i + C_i)

    (rows with C_i = 0: the indicator |s_i| <= z T_i). The LA-wide error is integrated over the
    distribution the common term stands for (England's, l0) instead of being read from the few
    simulated districts' own draws."""
    z = z_value(level)
    s = np.asarray(errors, float)
    S = np.maximum(np.asarray(specific, float), 0.0)
    C = np.maximum(np.asarray(common, float), 0.0)
    T = np.sqrt(scale ** 2 * S + C)
    sd = np.sqrt(C)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = stats.norm.cdf((z * T - s) / sd) - stats.norm.cdf((-z * T - s) / sd)
    p = np.where(C > 0, p, (np.abs(s) <= z * T).astype(float))
    return float(np.mean(p))


def expected_coverage_scale(errors, specific, common, level: float = 0.95) -> float:
    """The scale K (on the specific standard error) at which expected_coverage(...) = `level`: the
    specific part is only as wide as the errors need once the LA-wide term is beside it (bisection
    on log K for the smallest K that reaches `level`: with few errors coverage is a step function of K,
    flat at `level` over a range, where scipy's brentq would return any point of the range; 0 if the
    common term alone already covers `level`)."""
    def gap(k):
        return expected_coverage(errors, specific, common, k, level) - level

    if gap(0.0) >= -1e-12:
        return 0.0
    lo, hi = 1e-6, 1.0
    while gap(hi) < 0:
        hi *= 2.0
        if hi > 1e6:
            raise ValueError("no scale covers the errors: check the specific variances (all zero?)")
    for _ in range(100):
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if gap(mid) < 0 else (lo, mid)
        if hi / lo < 1 + 1e-10:
            break
    return float(hi)


def coverage_scale(errors, variances, level: float = 0.95) -> float:
    """kappa such that |error| <= z kappa sd for a share `level` of the rows."""
    z = z_value(level)
    ratio = np.abs(np.asarray(errors, float)) / np.sqrt(np.maximum(np.asarray(variances, float), 1e-12))
    return float(np.quantile(ratio, level) / z)


def calibrate_correlation(errors, independent_sum, correlated_sum, extra=0.0) -> float:
    """ML estimate of rho from area totals: errors with variance
    (1 - rho) x independent_sum + rho x correlated_sum, where independent_sum = sum w^2 v and
    correlated_sum = (sum w sqrt v)^2 over each area's LSOAs."""
    err = np.asarray(errors, float)
    ind = np.asarray(independent_sum, float)
    cor = np.asarray(correlated_sum, float)
    extra = np.asarray(extra, float)

    def nll(rho):
        v = np.maximum((1 - rho) * ind + rho * cor + extra, 1e-9)
        return 0.5 * np.sum(np.log(v) + err ** 2 / v)

    res = optimize.minimize_scalar(nll, bounds=(0.0, 1.0), method="bounded")
    return float(res.x)


def calibrate_split(errors, variance, split_sum) -> float:
    """ML estimate of omega for wards: errors with variance `variance` + omega^2 x split_sum,
    where split_sum = sum w (1 - w) E^2 over the ward's LSOAs."""
    err = np.asarray(errors, float)
    v0 = np.asarray(variance, float)
    sp = np.asarray(split_sum, float)

    def nll(log_omega2):
        v = np.maximum(v0 + np.exp(log_omega2) * sp, 1e-9)
        return 0.5 * np.sum(np.log(v) + err ** 2 / v)

    res = optimize.minimize_scalar(nll, bounds=(np.log(1e-8), np.log(1.0)), method="bounded")
    omega = float(np.sqrt(np.exp(res.x)))
    return 0.0 if omega < 1e-3 else omega


def calibrate_common(errors, years) -> tuple[float, float]:
    """ML estimates of l0, l1 from districts' common relative errors (all-LSOA totals against the
    truth, one per district and date): variance l0^2 + (l1 y)^2."""
    err = np.asarray(errors, float)
    y2 = np.asarray(years, float) ** 2

    def nll(theta):
        l0sq, l1sq = np.exp(theta)
        v = np.maximum(l0sq + l1sq * y2, 1e-12)
        return 0.5 * np.sum(np.log(v) + err ** 2 / v)

    res = optimize.minimize(nll, np.log([1e-5, 1e-5]), method="Nelder-Mead",
                            options={"xatol": 1e-6, "fatol": 1e-8, "maxiter": 2000})
    l0, l1 = np.sqrt(np.exp(res.x))
    return float(l0 if l0 > 1e-4 else 0.0), float(l1 if l1 > 1e-4 else 0.0)


def calibrate_composition(errors, sampling_variance, share) -> float:
    """ML estimate of eta from area shares: share errors with variance
    sampling_variance + eta^2 p (1 - p)."""
    err = np.asarray(errors, float)
    v0 = np.asarray(sampling_variance, float)
    p = np.asarray(share, float)
    pq = p * (1 - p)

    def nll(log_eta2):
        v = np.maximum(v0 + np.exp(log_eta2) * pq, 1e-12)
        return 0.5 * np.sum(np.log(v) + err ** 2 / v)

    res = optimize.minimize_scalar(nll, bounds=(np.log(1e-8), np.log(1.0)), method="bounded")
    return float(np.sqrt(np.exp(res.x)))


def calibrate_age_common(errors, years, known_variance=0.0) -> tuple[float, float]:
    """ML estimates of m0, m1 for one age group from LA cells' relative errors (estimate's error
    over the estimate): variance m0^2 + (m1 y)^2 + known_variance, where known_variance is what
    the rest of the model already gives those cells (LSOA-specific parts summed up, the LA-wide
    all-ages term), relative to the estimate squared."""
    err = np.asarray(errors, float)
    y2 = np.asarray(years, float) ** 2
    known = np.broadcast_to(np.maximum(np.asarray(known_variance, float), 0.0), err.shape)

    def nll(theta):
        m0sq, m1sq = np.exp(theta)
        v = np.maximum(m0sq + m1sq * y2 + known, 1e-12)
        return 0.5 * np.sum(np.log(v) + err ** 2 / v)

    best = None
    for start in (np.log([1e-4, 1e-4]), np.log([1e-2, 1e-6]), np.log([1e-6, 1e-2])):
        res = optimize.minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-7, "fatol": 1e-9, "maxiter": 4000})
        if best is None or res.fun < best.fun:
            best = res
    m0, m1 = np.sqrt(np.exp(best.x))
    return float(m0 if m0 > 1e-4 else 0.0), float(m1 if m1 > 1e-4 else 0.0)
