"""Segregation of one group across units (schools, LSOAs), each beside its value under random allocation.

    calculate_segregation(group, total, iterations=200, seed=1)
    summarise_segregation(group, total, iterations=200, seed=1)   (the same figures as a dict, no frame)

returns a frame with one row per index (``dissimilarity``, ``isolation``, ``exposure``,
``entropy``): ``value``, ``expected`` (the mean under random allocation), ``null_lower_95`` and
``null_upper_95`` (the middle 95% of the values random allocation gives) and ``significance``
(``higher``/``lower`` when the observed value lies outside that range, else ``similar``).

With group counts xᵢ and totals tᵢ per unit, X = Σx, T = Σt, P = X/T (shared/spec/methods.md):
- dissimilarity D = ½ Σ |xᵢ/X − (tᵢ − xᵢ)/(T − X)|
- isolation = Σ (xᵢ/X)(xᵢ/tᵢ); exposure (interaction) = Σ (xᵢ/X)((tᵢ − xᵢ)/tᵢ)
- entropy (Theil's H) = Σ tᵢ(E − Eᵢ)/(E·T), E = P ln(1/P) + (1−P) ln(1/(1−P))

These equal PySAL `segregation`'s Dissim, Isolation, Interaction and Entropy on the same counts
(tests pin them to values that package computed). Random allocation is PySAL's "person
permutation" null: every unit keeps its size and the group its total, and the group's members
are dealt to places at random — one multivariate hypergeometric draw per iteration, so it is
vectorised here rather than calling the package, whose permutation expands every person into a
row of a data frame (and which pulls geopandas and numba into the pipeline). Small units
inflate D even under random allocation: read D against ``expected``, not against 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.stats.checks import as_array

INDICES = ("dissimilarity", "isolation", "exposure", "entropy")


def calculate_segregation(group, total, iterations: int = 200, seed: int = 1) -> pd.DataFrame:
    """Each index, its expected value under random allocation and whether it exceeds it."""
    summary = summarise_segregation(group, total, iterations=iterations, seed=seed)
    return pd.DataFrame([{"index": name, **summary[name]} for name in INDICES])


def summarise_segregation(group, total, iterations: int = 200, seed: int = 1) -> dict[str, dict]:
    """`calculate_segregation`'s figures as ``{index: {value, expected, null_lower_95, null_upper_95,
    significance}}``: the same numbers without a frame, for callers that summarise thousands of groups
    (the basket: every LA x census x pupil group nationally)."""
    x = as_array(group, "group")
    t = as_array(total, "total")
    if x.shape != t.shape:
        raise ValueError("group and total must have the same length (one value per unit)")
    if (x < 0).any() or (x > t).any():
        raise ValueError("each unit's group count must lie between 0 and its total")
    keep = t > 0
    x, t = x[keep], t[keep]
    if len(t) < 2:
        raise ValueError("segregation needs at least two units with pupils or residents")
    if x.sum() == 0 or x.sum() == t.sum():
        raise ValueError("the group is absent or is everyone: segregation is not defined")
    observed = compute_segregation_indices(x[None, :], t)
    rng = np.random.default_rng(seed)
    if iterations > 0:
        draws = rng.multivariate_hypergeometric(np.rint(t).astype(np.int64), int(round(x.sum())), size=iterations)
        null = compute_segregation_indices(draws.astype(float), t)
    out = {}
    for name in INDICES:
        value = float(observed[name][0])
        if iterations > 0:
            sims = null[name]
            lo, hi = np.percentile(sims, [2.5, 97.5])
            sig = "higher" if value > hi else "lower" if value < lo else "similar"
            out[name] = {"value": value, "expected": float(sims.mean()), "null_lower_95": float(lo),
                         "null_upper_95": float(hi), "significance": sig}
        else:
            out[name] = {"value": value, "expected": np.nan, "null_lower_95": np.nan, "null_upper_95": np.nan,
                         "significance": "not compared"}
    return out


def compute_segregation_indices(x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
    """The four indices for each row of `x` (rows = allocations, columns = units of size `t`)."""
    X = x.sum(axis=1, keepdims=True)
    T = t.sum()
    share = x / t
    D = 0.5 * np.abs(x / X - (t - x) / (T - X)).sum(axis=1)
    isolation = ((x / X) * share).sum(axis=1)
    exposure = ((x / X) * (1 - share)).sum(axis=1)
    P = X[:, 0] / T
    E = _binary_entropy(P)
    Ei = _binary_entropy(share)
    H = (t * (E[:, None] - Ei)).sum(axis=1) / (E * T)
    return {"dissimilarity": D, "isolation": isolation, "exposure": exposure, "entropy": H}


def calculate_diversity(counts) -> float:
    """Diversity of one area's composition: Shannon entropy −Σ pₖ ln pₖ over its groups, divided by
    ln K (K = number of groups) so that 0 = everyone in one group and 1 = every group equally large."""
    c = as_array(counts, "counts")
    if (c < 0).any() or c.sum() <= 0 or len(c) < 2:
        raise ValueError("diversity needs two or more group counts, not negative, with a positive total")
    p = c / c.sum()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / np.log(len(c)))


def _binary_entropy(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(p > 0, p * np.log(1 / np.where(p > 0, p, 1)), 0.0)
        b = np.where(p < 1, (1 - p) * np.log(1 / np.where(p < 1, 1 - p, 1)), 0.0)
    return a + b
