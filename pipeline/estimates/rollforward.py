"""Rolling the base population forward with the change in the GP list.

For LSOA i, age-sex group g and extract date t (t0 = first extract):

1. Correct the list for what it cannot yet show (the "small corrections"):

       L*(t) = L(t) + B(t) - D(t)

   B(t): births in the `birth_registration_lag_days` before t (babies resident but not yet on
   a list; band 0-4), D(t): deaths in the `death_removal_lag_days` before t (still on the list).
   The same correction applies at t0, so it enters both the inflation and the change.

2. Add back list cleaning. A burst of deregistrations with reason list_cleaning (or a practice's
   sudden excess of leavers when there are no movement records) removes "ghosts" who left
   earlier; it is not population loss. With C(t) the cleaning removals between t0 and t,

       dL(t) = L*(t) - L*(t0) + theta * C(t)

   theta = cleaning_addback (1 = cleaning carries no information about residents; fitted by the
   back-test). Optionally a ghost-drift allowance takes back a share delta = ghost_drift of the
   registrations R(t) since t0 (people who will leave without deregistering): dL -= delta * R(t).

3. Scale the change by the cell's (shrunk) inflation I (see inflation.py) and add it to the base:

       est(t) = max(0, P(b) + dL(t) / I)

   Without shrinkage, theta or delta this is exactly ONS ratio change, P(b) x L(t) / L(t0)
   (since I = L(t0)/P(b)); shrinkage steadies small cells and the cleaning add-back stops a list
   clean-up being read as an exodus, which is where ratio change goes most wrong.
"""

from __future__ import annotations

import numpy as np


def correct_list(list_count, births_lag, deaths_lag) -> np.ndarray:
    """L* = L + births not yet registered - deaths not yet removed, floored at 0."""
    return np.maximum(np.asarray(list_count, float) + np.asarray(births_lag, float) - np.asarray(deaths_lag, float), 0.0)


def roll_forward(base, list_t, list_t0, inflation, cleaned=0.0, registrations=0.0,
                 cleaning_addback: float = 1.0, ghost_drift: float = 0.0) -> np.ndarray:
    """est(t) = max(0, base + (L*(t) - L*(t0) + theta C(t) - delta R(t)) / I)."""
    change = (np.asarray(list_t, float) - np.asarray(list_t0, float)
              + cleaning_addback * np.asarray(cleaned, float)
              - ghost_drift * np.asarray(registrations, float))
    return np.maximum(np.asarray(base, float) + change / np.asarray(inflation, float), 0.0)


def ratio_change(base, list_t, list_t0) -> np.ndarray:
    """ONS-style ratio change P(b) x L(t) / L(t0); the base is carried forward where L(t0) = 0."""
    base = np.asarray(base, float)
    list_t = np.asarray(list_t, float)
    list_t0 = np.asarray(list_t0, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(list_t0 > 0, base * list_t / np.where(list_t0 > 0, list_t0, 1.0), base)
