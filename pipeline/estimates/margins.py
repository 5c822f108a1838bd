"""Margins of error: a variance model driven by turbulence and time since the base.

For an LSOA row (a cell, a sex or age margin, or the total) with estimate E, reference date
y years after the base and cumulative turbulence tau = T x y / 1000 (see turbulence.py):

    s^2(T, y, tau) = a^2 + f T/1000 + c y + b tau + (e tau)^2 + (d y)^2   shared relative variance
    var(E)      = kappa^2 [ E^2 s^2 + (g^2 + h tau) sum_cells E_c^2 + psi max(E, 1) ]

* a^2 + f T/1000: error of the base population itself, larger where people move more (official
  base estimates are least accurate in areas of high in-migration); c y and b tau: random-walk
  error that grows with
  time and with the number of people who have moved (variance linear in time); (d y)^2 and
  (e tau)^2: drift (ghost accumulation, late registration) that grows linearly, so its variance
  grows with the square.
* (g^2 + h tau) sum E_c^2: independent errors of the age-sex cells that make up the row (a cell
  is noisier than the LSOA total: its inflation is less certain and people age across bands).
* psi max(E, 1): a Poisson-like small-count term, so a cell estimated at 0-3 people still has
  a margin.
* kappa: a final scale so that, on the calibration runs, 95% intervals cover 95% of the truths.

The interval is E -/+ z sqrt(var), the lower limit floored at 0.

Up the geography (LSOA -> MSOA, ward, LA), with weights w_i (1, or ward_share for wards):

    E_A   = sum w_i E_i
    var_A = (1 - rho) sum w_i^2 var_i + rho (sum w_i sqrt(var_i))^2

i.e. LSOA errors are partially correlated with correlation rho. Independent errors (rho = 0)
would make the margin of a big area shrink like 1/sqrt(n) and give too-narrow intervals for
wards and the LA: much of the error (the drift in list inflation, a list-cleaning campaign) is
shared by neighbouring LSOAs. rho is calibrated on MSOA and LA totals after the LSOA parameters.
When the LA total is supplied (la_totals), estimates are scaled to it and the shared part of each
LSOA variance is removed (var_i x (1 - rho)); the LA all-ages total then has no margin.

All parameters are calibrated by back-testing on demo districts with known truth
(benchmarks/backtest_estimates.py) and stored in margin_model.json with the seeds and settings
they were calibrated on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import optimize, stats

MODEL_PATH = Path(__file__).with_name("margin_model.json")
MARGIN_KEYS = ("a", "f", "b", "c", "d", "e", "g", "h", "psi", "kappa")
DEFAULT_PARAMETERS = {
    "a": 0.02, "f": 0.0, "b": 0.0, "c": 0.0004, "d": 0.005, "e": 0.02, "g": 0.08, "h": 0.0, "psi": 1.0, "kappa": 1.0,
    "rho": 0.3,
    "cleaning_addback": 1.0, "ghost_drift": 0.0,
    "w_gp": 0.5, "w_school": 0.5, "w_asylum": 1.0,
}


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


def relative_variance(params: dict, years, tau, turbulence=0.0) -> np.ndarray:
    """s^2 = a^2 + f T/1000 + c y + b tau + (e tau)^2 + (d y)^2, the relative variance an LSOA shares."""
    y = np.maximum(np.asarray(years, float), 0.0)
    tau = np.maximum(np.asarray(tau, float), 0.0)
    rate = np.maximum(np.asarray(turbulence, float), 0.0) / 1000.0
    p = params
    return (p["a"] ** 2 + p["f"] * rate + p["c"] * y + p["b"] * tau
            + (p["e"] * tau) ** 2 + (p["d"] * y) ** 2)


def predict_variance(params: dict, estimate, years, tau, cell_square_sum, turbulence=0.0) -> np.ndarray:
    """var(E) = kappa^2 [E^2 s^2 + (g^2 + h tau) sum E_c^2 + psi max(E, 1)] for LSOA rows."""
    est = np.maximum(np.asarray(estimate, float), 0.0)
    tau_ = np.maximum(np.asarray(tau, float), 0.0)
    p = params
    var = (est ** 2 * relative_variance(p, years, tau_, turbulence)
           + (p["g"] ** 2 + p["h"] * tau_) * np.asarray(cell_square_sum, float)
           + p["psi"] * np.maximum(est, 1.0))
    return p["kappa"] ** 2 * var


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

def calibrate_margins(estimate, truth, years, tau, cell_square_sum, turbulence, level: float = 0.95,
                      start: dict | None = None) -> dict[str, float]:
    """Fit a..psi by maximum likelihood (normal errors), then kappa so that the share of truths
    inside the intervals equals `level` on the same data.

    Inputs are arrays over LSOA rows of back-test runs: the estimate, the true population, years
    since base, tau, and the row's sum of squared cell estimates. Returns the margin parameters.
    """
    est = np.asarray(estimate, float)
    err = np.asarray(truth, float) - est
    y = np.asarray(years, float)
    tau_ = np.asarray(tau, float)
    css = np.asarray(cell_square_sum, float)
    rate = np.asarray(turbulence, float)
    base = dict(DEFAULT_PARAMETERS)
    base.update(start or {})
    base["kappa"] = 1.0

    def unpack(theta):
        p = dict(base)
        # a, d, e, g enter squared (sign-free); b, c, h, psi must be >= 0: use exp
        p.update({"a": theta[0], "d": theta[3], "e": theta[4], "g": theta[5],
                  "b": np.exp(theta[1]), "c": np.exp(theta[2]), "h": np.exp(theta[6]), "psi": np.exp(theta[7]),
                  "f": np.exp(theta[8])})
        return p

    def nll(theta):
        v = predict_variance(unpack(theta), est, y, tau_, css, rate)
        v = np.maximum(v, 1e-9)
        return 0.5 * np.sum(np.log(v) + err ** 2 / v)

    theta0 = np.array([max(base["a"], 0.01), np.log(max(base["b"], 1e-4)), np.log(max(base["c"], 1e-5)),
                       max(base["d"], 0.001), max(base["e"], 0.001), max(base["g"], 0.01),
                       np.log(max(base["h"], 1e-4)), np.log(max(base["psi"], 0.1)),
                       np.log(max(base["f"], 1e-4))])
    res = optimize.minimize(nll, theta0, method="Nelder-Mead",
                            options={"maxiter": 20000, "maxfev": 20000, "xatol": 1e-6, "fatol": 1e-6})
    res = optimize.minimize(nll, res.x, method="Nelder-Mead",
                            options={"maxiter": 20000, "maxfev": 20000, "xatol": 1e-7, "fatol": 1e-7})
    p = unpack(res.x)
    for key in ("a", "d", "e", "g"):
        p[key] = abs(p[key])
    v = predict_variance(p, est, y, tau_, css, rate)
    p["kappa"] = coverage_scale(err, v, level)
    return {k: float(p[k]) for k in MARGIN_KEYS}


def coverage_scale(errors, variances, level: float = 0.95) -> float:
    """kappa such that |error| <= z kappa sd for a share `level` of the rows."""
    z = z_value(level)
    ratio = np.abs(np.asarray(errors, float)) / np.sqrt(np.maximum(np.asarray(variances, float), 1e-12))
    return float(np.quantile(ratio, level) / z)


def calibrate_correlation(errors, independent_sum, correlated_sum) -> float:
    """ML estimate of rho from area totals: errors with variance
    (1 - rho) x independent_sum + rho x correlated_sum, where independent_sum = sum w^2 v and
    correlated_sum = (sum w sqrt v)^2 over each area's LSOAs."""
    err = np.asarray(errors, float)
    ind = np.asarray(independent_sum, float)
    cor = np.asarray(correlated_sum, float)

    def nll(rho):
        v = np.maximum((1 - rho) * ind + rho * cor, 1e-9)
        return 0.5 * np.sum(np.log(v) + err ** 2 / v)

    res = optimize.minimize_scalar(nll, bounds=(0.0, 1.0), method="bounded")
    return float(res.x)
