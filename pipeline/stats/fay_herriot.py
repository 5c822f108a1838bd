"""Area-level small-area estimates: the Fay-Herriot (1979) EBLUP, for proportions on the logit scale.

    estimate_fay_herriot(direct, variance, covariates, confidence=0.95)
    estimate_fay_herriot_proportions(value, effective_n, covariates, confidence=0.95)

Model (Rao & Molina, Small Area Estimation, 2nd ed. 2015, chapter 6): for area i with a direct
estimate y_i of known sampling variance D_i,

    y_i = x_i'β + u_i + e_i,   u_i ~ N(0, σ²_u),   e_i ~ N(0, D_i)

σ²_u by REML (Fisher scoring, truncated at 0), β by GLS, the EBLUP
θ_i = γ_i y_i + (1 − γ_i) x_i'β with γ_i = σ²_u/(σ²_u + D_i), and its MSE by Prasad & Rao
(1990) as Datta & Lahiri (2000) give it for REML: g1 + g2 + 2·g3. Areas without a direct
estimate (y missing) get the synthetic x_i'β with MSE σ²_u + x_i'(X'V⁻¹X)⁻¹x_i.

For proportions (`estimate_fay_herriot_proportions`) y = logit(p) and D = 1/(n_eff p (1−p))
(delta method; p is moved ½ respondent in from 0 and 1). The interval is built on the logit
scale and transformed back, so it stays in (0, 1) and is asymmetric, like Wilson's.

Written here rather than taken from a library: the maintained Python implementation (svy-sae)
brings JAX, far heavier than these forty lines of linear algebra, which the tests check
against a worked example computed by hand (and against the limits: γ → 1 as D → 0).
Returns ``NaN`` rows and ``fitted = False`` when the model cannot be fitted (too few areas for
the covariates, singular X); callers fall back (fewer covariates, then no model).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from pipeline.stats.checks import check_confidence, confidence_suffix


def estimate_fay_herriot(direct, variance, covariates, confidence: float = 0.95, max_iter: int = 100,
                         tolerance: float = 1e-8) -> tuple[pd.DataFrame, dict]:
    """EBLUP per area with MSE and limits; and the fit (sigma2_u, beta, areas used, fitted)."""
    check_confidence(confidence)
    y = np.asarray(direct, dtype=float)
    d = np.asarray(variance, dtype=float)
    x = np.asarray(covariates, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if not (len(y) == len(d) == len(x)):
        raise ValueError("direct, variance and covariates need one row per area (same length)")
    if np.isnan(x).any():
        raise ValueError("covariates have missing values: fill them (e.g. with the LA value) or drop the covariate")
    has = ~np.isnan(y)
    if (d[has] <= 0).any() or np.isnan(d[has]).any():
        raise ValueError("each direct estimate needs a positive sampling variance")
    suffix = confidence_suffix(confidence)
    z = norm.ppf(0.5 + confidence / 2)
    p = x.shape[1]
    empty = pd.DataFrame({"estimate": np.nan, "mse": np.nan, "gamma": np.nan, f"lower_{suffix}": np.nan,
                          f"upper_{suffix}": np.nan, "synthetic": ~has}, index=range(len(y)))
    m = int(has.sum())
    if m < p + 2 or np.linalg.matrix_rank(x[has]) < p:
        return empty, {"fitted": False, "reason": f"{m} areas with direct estimates for {p} coefficients",
                       "sigma2_u": np.nan, "beta": None, "areas": m}
    ys, ds, xs = y[has], d[has], x[has]
    sigma2 = max(float(np.var(ys) - ds.mean()), 0.0)
    for _ in range(max_iter):
        # REML Fisher scoring with P = W - W X (X'WX)^-1 X'W, W = diag(1 / (sigma2 + d)); the traces and
        # P y are computed from p x p matrices, never the m x m P (thousands of wards at national scale:
        # the dense P took gigabytes and O(m^3) time per iteration)
        w = 1.0 / (sigma2 + ds)
        xw = xs * w[:, None]
        xtvx = xs.T @ xw
        c = np.linalg.solve(xtvx, xw.T @ xw)  # (X'WX)^-1 X'W^2 X
        e = np.linalg.solve(xtvx, xw.T @ (xw * w[:, None]))  # (X'WX)^-1 X'W^3 X
        py = w * ys - xw @ np.linalg.solve(xtvx, xw.T @ ys)
        score = -0.5 * (w.sum() - np.trace(c)) + 0.5 * py @ py
        info = 0.5 * ((w**2).sum() - 2 * np.trace(e) + np.trace(c @ c))
        step = score / info
        new = max(sigma2 + step, 0.0)
        if abs(new - sigma2) < tolerance:
            sigma2 = new
            break
        sigma2 = new
    v_inv = 1.0 / (sigma2 + ds)
    xtvx = xs.T @ (xs * v_inv[:, None])
    xtvx_inv = np.linalg.inv(xtvx)
    beta = xtvx_inv @ (xs.T @ (v_inv * ys))
    var_sigma2 = 2.0 / np.sum(v_inv**2)  # asymptotic variance of the REML sigma2_u
    synth = x @ beta
    est = synth.copy()
    mse = sigma2 + np.einsum("ij,jk,ik->i", x, xtvx_inv, x)  # synthetic areas
    gamma = np.full(len(y), 0.0)
    dd = d[has]
    g = sigma2 / (sigma2 + dd)
    gamma[has] = g
    est[has] = g * y[has] + (1 - g) * synth[has]
    g1 = g * dd
    g2 = (1 - g) ** 2 * np.einsum("ij,jk,ik->i", x[has], xtvx_inv, x[has])
    g3 = dd**2 / (sigma2 + dd) ** 3 * var_sigma2
    mse[has] = g1 + g2 + 2 * g3
    out = pd.DataFrame({"estimate": est, "mse": mse, "gamma": gamma,
                        f"lower_{suffix}": est - z * np.sqrt(mse), f"upper_{suffix}": est + z * np.sqrt(mse),
                        "synthetic": ~has})
    return out, {"fitted": True, "reason": "", "sigma2_u": sigma2, "beta": beta.tolist(), "areas": m}


def estimate_fay_herriot_proportions(value, effective_n, covariates, confidence: float = 0.95) -> tuple[pd.DataFrame, dict]:
    """Fay-Herriot on logit(p): `value` are direct shares in [0, 1] (NaN where an area has none),
    `effective_n` their effective sample sizes. Estimates and limits come back as shares."""
    p = np.asarray(value, dtype=float)
    n = np.asarray(effective_n, dtype=float)
    if ((p < 0) | (p > 1)).any():
        raise ValueError("value must be a share between 0 and 1 (divide percentages by 100)")
    has = ~np.isnan(p) & (n > 0)
    p_adj = np.where(has, (p * n + 0.5) / (n + 1.0), np.nan)
    y = np.where(has, np.log(p_adj / (1 - p_adj)), np.nan)
    d = np.where(has, 1.0 / (np.where(has, n, 1.0) * p_adj * (1 - p_adj)), np.nan)
    fit, info = estimate_fay_herriot(y, d, covariates, confidence)
    suffix = confidence_suffix(confidence)
    out = fit.copy()
    for col in ("estimate", f"lower_{suffix}", f"upper_{suffix}"):
        out[col] = 1.0 / (1.0 + np.exp(-fit[col]))
    out = out.rename(columns={"mse": "mse_logit"})
    return out, info
