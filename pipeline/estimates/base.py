"""A list-informed base: blending the published base population with what the list implies.

The published base (an ONS mid-year estimate or census) has its own LSOA-level error, and it is
largest where people move most (ONS: least accurate for areas of high in-migration). The GP list
on the base date is a second, independent measurement of the same residents once its inflation
is allowed for, and inflation is predictable from turbulence (lists are most inflated where churn
is high). For each LSOA i, with the corrected list L*_i and base P_i at t0 and turbulence T_i
(annualised over the whole span of extracts, the steadiest measure of the LSOA's churn):

    r_i          = log(L*_i / P_i)                         observed log inflation
    r_i          = m(T_i) + u_i - e_i                       u: the LSOA's own inflation,
                                                            e: the base's log error
    m(T) is a local-linear (Gaussian kernel, bandwidth 0.5 x the SD of log T) regression of r on
    log T over the LA's LSOAs, weighted by P_i: inflation rises with churn but not in a straight
    line (a straight line overstates it in settled areas when most of the LA churns, and vice
    versa), and churn varies by multiples, hence log T. The squared residuals, smoothed the same
    way, give the total residual variance v_R(T).
    var(e)       = s_B^2(T) = base_a^2 + base_f T/1000      the published base's error
                                                            (margin_model.json, back-tested)
    var(u)       = s_U^2(T) = max(v_R(T) - s_B^2(T), min_inflation_sd^2) + v_R(T) / n(T)
                   (n(T): the effective number of LSOAs behind m(T), so an LSOA whose turbulence
                   few others share - a lone churning area in a settled district - is moved less)
    w_i          = s_B^2 / (s_B^2 + s_U^2)                  precision weight on the list
    log F_i      = w_i (r_i - m(T_i)), capped at -/+ 2 s_B
    P'_i         = F_i P_i, rescaled so the LA total is the published one

i.e. each LSOA's base moves towards the list-implied population L*_i / I(T_i) in proportion to
how much less certain the base is than the inflation model. What remains uncertain about the
blended base, V_i = w_i s_U^2 (s_B^2 where nothing moved), feeds the margin of error (the j
term in margins.py). The LA total is untouched (it is far
better known than any LSOA), every cell of the LSOA moves by the same factor (the age-sex
structure stays the published one), and with fewer than MIN_LSOAS LSOAs nothing moves.
Turn it off with settings.estimates.blend_base = false.
"""

from __future__ import annotations

import numpy as np

MIN_LSOAS = 12
MIN_INFLATION_SD = 0.01
BANDWIDTH = 0.5  # x the standard deviation of T
BLOCK_CELLS = 1 << 14  # kernel weights held at once by smooth_local_linear (128 KiB: blocks that stay in cache are fastest)


def smooth_local_linear(x, y, w, bandwidth: float, return_support: bool = False):
    """Local-linear regression of y on x (Gaussian kernel), evaluated at every x; weights w.

    With return_support, also the effective number of observations behind each fitted value,
    (sum k)^2 / sum k^2 with k the kernel x weight, so that the caller can allow for the
    uncertainty of the fit where few LSOAs lie near x (the ends of the range).
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    w = np.asarray(w, float)
    w = w / w.mean()
    if bandwidth <= 0 or not np.isfinite(bandwidth):
        fit = np.full(len(x), np.average(y, weights=w))
        support = np.full(len(x), w.sum() ** 2 / np.sum(w * w))
        return (fit, support) if return_support else fit
    fit = np.empty(len(x))
    support = np.empty(len(x))
    rows = max(1, BLOCK_CELLS // max(len(x), 1))
    for start in range(0, len(x), rows):  # a block of fitted points at a time: one row of kernel weights each
        x0 = x[start:start + rows, None]
        d = x[None, :] - x0
        k = w * np.exp(-0.5 * (d / bandwidth) ** 2)
        s0, s1, s2 = k.sum(axis=1), (k * d).sum(axis=1), (k * d * d).sum(axis=1)
        t0, t1 = (k * y).sum(axis=1), (k * d * y).sum(axis=1)
        det = s0 * s2 - s1 * s1
        solved = det > 1e-12 * np.maximum(s0 * s2, 1e-300)
        with np.errstate(divide="ignore", invalid="ignore"):
            fit[start:start + rows] = np.where(solved, (s2 * t0 - s1 * t1) / np.where(solved, det, 1.0), t0 / s0)
        support[start:start + rows] = s0 ** 2 / np.sum(k * k, axis=1)
    return (fit, support) if return_support else fit


def blend_base(base, listed, turbulence, base_a: float, base_f: float, groups=None,
               min_inflation_sd: float = MIN_INFLATION_SD) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Factors F_i, weights w_i and the remaining variance of each LSOA's (log) base.

    F_i moves the base towards the list-implied population; the variance left is
    w_i s_U^2 = s_B^2 s_U^2 / (s_B^2 + s_U^2) where blended, s_B^2 where not.

    `base`, `listed`: LSOA totals at t0 (published base, corrected list); `turbulence`: T per
    1,000 a year; `groups`: the LA of each LSOA (the fit and the rescaling are per LA).
    """
    base = np.asarray(base, float)
    listed = np.asarray(listed, float)
    rate = np.maximum(np.asarray(turbulence, float), 0.0) / 1000.0
    groups = np.zeros(len(base), dtype=int) if groups is None else np.asarray(groups)
    factor = np.ones(len(base))
    weight = np.zeros(len(base))
    variance = base_a ** 2 + base_f * rate
    for g in np.unique(groups):
        m = (groups == g) & (base > 0) & (listed > 0)
        if m.sum() < MIN_LSOAS:
            continue
        r = np.log(listed[m] / base[m])
        x = rate[m]
        z = np.log(np.maximum(x * 1000.0, 1.0))  # the curve is fitted on log T: churn levels are multiples
        bw = BANDWIDTH * np.std(z)
        fit, support = smooth_local_linear(z, r, base[m], bw, return_support=True)
        resid = r - fit
        v_r = np.maximum(smooth_local_linear(z, resid ** 2, base[m], bw), 0.0)
        s_b2 = base_a ** 2 + base_f * x
        # the LSOA's own inflation, plus the uncertainty of the fitted curve where few LSOAs support it
        s_u2 = np.maximum(v_r - s_b2, min_inflation_sd ** 2) + v_r / np.maximum(support, 1.0)
        w = s_b2 / (s_b2 + s_u2)
        shift = np.clip(w * resid, -2 * np.sqrt(s_b2), 2 * np.sqrt(s_b2))
        f = np.exp(shift)
        in_group = groups == g
        total = base[in_group].sum()
        f_all = np.ones(in_group.sum())
        f_all[m[in_group]] = f
        f_all *= total / np.sum(base[in_group] * f_all)
        factor[in_group] = f_all
        weight[m] = w
        variance[m] = w * s_u2
    return factor, weight, variance
