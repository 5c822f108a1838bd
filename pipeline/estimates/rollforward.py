"""Rolling the base population forward with the change in the GP list.

For LSOA i, age-sex group g and extract date t (t0 = first extract):

1. Correct the list for what it cannot yet show (the "small corrections"):

       L*(t) = L(t) + B(t) - D(t)

   B(t): births in the `birth_registration_lag_days` before t (babies resident but not yet on
   a list; band 0-4), D(t): deaths in the `death_removal_lag_days` before t (still on the list).
   The same correction applies at t0, so it enters both the inflation and the change.

2. Add back list cleaning, and weigh the flows. A burst of deregistrations with reason
   list_cleaning (or a practice's sudden excess of leavers when there are no movement records)
   removes "ghosts" who left earlier: it is not population loss. Ordinary flows understate the
   people behind them: some arrivals never register (young men most), and most people who leave
   never deregister (they become ghosts, removed later, if at all). With C(t), R(t) and D(t) the
   list-cleaning removals, registrations (other than births) and deregistrations (other than
   deaths and cleaning) between t0 and t,

       dL(t) = L*(t) - L*(t0) + theta C(t) + beta_R R(t) - beta_D D(t)

   theta = cleaning_addback (1 = cleaning carries no information about residents),
   beta_R = registration_uplift, beta_D = deregistration_uplift: each registration stands for
   1 + beta_R arrivals and each deregistration for 1 + beta_D departures (in list units). All
   three are fitted by the back-test (margin_model.json); 1, 0, 0 is the neutral choice.

3. Scale the change by the cell's (shrunk) inflation I (see inflation.py) and add it to the base:

       est(t) = max(0, P(b) + dL(t) / I)

   Without shrinkage, base blending or the flow terms this is exactly ONS ratio change,
   P(b) x L(t) / L(t0) (since I = L(t0)/P(b)); shrinkage steadies small cells and the cleaning
   add-back stops a list clean-up being read as an exodus, which is where ratio change goes
   most wrong.
"""

from __future__ import annotations

import numpy as np


def correct_list(list_count, births_lag, deaths_lag) -> np.ndarray:
    """L* = L + births not yet registered - deaths not yet removed, floored at 0."""
    return np.maximum(np.asarray(list_count, float) + np.asarray(births_lag, float) - np.asarray(deaths_lag, float), 0.0)


def roll_forward(base, list_t, list_t0, inflation, cleaned=0.0, registrations=0.0, deregistrations=0.0,
                 cleaning_addback: float = 1.0, registration_uplift: float = 0.0,
                 deregistration_uplift: float = 0.0) -> np.ndarray:
    """est(t) = max(0, base + (L*(t) - L*(t0) + theta C + beta_R R - beta_D D) / I)."""
    change = (np.asarray(list_t, float) - np.asarray(list_t0, float)
              + cleaning_addback * np.asarray(cleaned, float)
              + registration_uplift * np.asarray(registrations, float)
              - deregistration_uplift * np.asarray(deregistrations, float))
    return np.maximum(np.asarray(base, float) + change / np.asarray(inflation, float), 0.0)


def ratio_change(base, list_t, list_t0) -> np.ndarray:
    """ONS-style ratio change P(b) x L(t) / L(t0); the base is carried forward where L(t0) = 0."""
    base = np.asarray(base, float)
    list_t = np.asarray(list_t, float)
    list_t0 = np.asarray(list_t0, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(list_t0 > 0, base * list_t / np.where(list_t0 > 0, list_t0, 1.0), base)
