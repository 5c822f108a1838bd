"""Ethnic composition: broad-group shares from recorded ethnicity, applied to the estimates.

For each LSOA x sex x band cell c at date t, with x_cg patients/pupils recorded in broad group g
(White, Mixed, Asian, Black, Other) and n_c = sum_g x_cg recorded in any group:

    p0_g       = the LSOA's all-ages share of group g at t (itself shrunk towards the LA's share)
    p_cg       = (x_cg + alpha p0_g) / (n_c + alpha)              alpha = ethnicity_shrinkage
    E_g        = sum_c E_c p_cg                                   group estimate for the LSOA

Not stated (NHS Z or blank; DfE unclassified) is apportioned pro rata: it is left out of n_c, i.e.
treated as missing at random within the cell. The uncertainty has three parts:

    v_share(g) = sum_c E_c^2 [ p(1-p) / (n_c + alpha + 1) + (lambda q_c)^2 p(1-p) ]
    v_pop(g)   = (E_g / E)^2 var(E)                                the population margin
    var(E_g)   = v_pop(g) + v_share(g)

where q_c is the cell's not-stated share and lambda = 0.5 an allowance for the not-stated
differing from the stated (an SD of half the not-stated share, scaled by sqrt(p(1-p))).
Up the geography v_pop combines with the correlation rho like the population margins, v_share
independently, and each area adds a composition term eta^2 p (1 - p) on the share scale: the
registered mix is not quite the residents' (ghosts and people who never register differ from
the rest), an error that does not average away over an area; eta is calibrated on the demo's
ward truth. A group's share of an area's population is p = E_g / sum_g E_g with SD
sqrt(v_share / E^2 + eta^2 p (1 - p)) (the population error is common to all groups and cancels
in the share).

Broad groups follow the NHS 2001-census categories as the project specifies: R (Chinese) and
S (any other) are "Other", and so is the school census's Chinese (CHNE); the 2011 census and
later put Chinese under Asian, so compare with such sources with care.
"""

from __future__ import annotations

import numpy as np

from schemas.vocabulary import ETHNIC_GROUPS

GROUPS = ETHNIC_GROUPS
NOT_STATED_ALLOWANCE = 0.5


def shrink_shares(counts, prior_shares, strength: float) -> np.ndarray:
    """(x_g + alpha p0_g) / (n + alpha) row by row; the prior where there is nothing at all."""
    x = np.asarray(counts, float)
    p0 = np.asarray(prior_shares, float)
    n = x.sum(axis=1, keepdims=True)
    denom = n + strength
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(denom > 0, (x + strength * p0) / np.where(denom > 0, denom, 1.0), p0)
    total = out.sum(axis=1, keepdims=True)
    return np.where(total > 0, out / np.where(total > 0, total, 1.0), 1.0 / x.shape[1])


def share_variance(shares, n_stated, not_stated_share, strength: float,
                   allowance: float = NOT_STATED_ALLOWANCE) -> np.ndarray:
    """Per cell and group: p(1-p)/(n + alpha + 1) + (lambda q)^2 p(1-p)."""
    p = np.asarray(shares, float)
    n = np.asarray(n_stated, float).reshape(-1, 1)
    q = np.asarray(not_stated_share, float).reshape(-1, 1)
    pq = p * (1 - p)
    return pq / (n + strength + 1.0) + (allowance * q) ** 2 * pq
