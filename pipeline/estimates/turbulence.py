"""Population turbulence: how fast people are moving through an LSOA.

The COHDMAP guide sets margins of error "by the extent of population turbulence, reflected in the
changing school population and recent housing allocations to asylum seekers". The score combines
three annualised rates, each per 1,000 per year over the whole span of extracts (all periods
between the first and the last extract, so that early dates are not judged on one quarter's
moves; each period's own score is kept in the est_turbulence table):

    gp      = 1000 x (registrations + deregistrations + from-abroad registrations)
                   / (base residents x years)
              registrations exclude births; deregistrations exclude deaths and list cleaning;
              from-abroad (Flag 4) registrations count a second time, as the most turbulent
              arrivals (they are also registrations). From gp_movements, or from consecutive
              register snapshots by patient_id when there are no movement records.
    school  = 1000 x pupils joining or leaving a school outside the normal points of entry
                   / pupil-years on roll  (needs >= MIN_PUPIL_YEARS of exposure, else missing)
    asylum  = 1000 x asylum seekers newly housed / (base residents x years)

    turbulence T = w_gp x gp + w_school x school + w_asylum x asylum

where, when the school rate is missing, its weight moves to gp (so T stays on the same scale:
"moves per 1,000 residents per year"). Default weights w_gp = w_school = 0.5 (the two measure
the same churn, one among all registered people and one among families with children) and
w_asylum = 1 (an extra flow the lists register late). The weights live in margin_model.json.
The margin model uses tau = T x years / 1000, the expected number of moves per resident since
the base.
"""

from __future__ import annotations

import numpy as np

MIN_PUPIL_YEARS = 5.0


def score_turbulence(gp_events, resident_years, pupil_moves, pupil_years, asylum_allocated,
                     w_gp: float = 0.5, w_school: float = 0.5, w_asylum: float = 1.0) -> np.ndarray:
    """Annualised moves per 1,000 residents (see the module docstring); 0 where there is no exposure."""
    gp_events = np.asarray(gp_events, float)
    resident_years = np.asarray(resident_years, float)
    pupil_moves = np.asarray(pupil_moves, float)
    pupil_years = np.asarray(pupil_years, float)
    asylum = np.asarray(asylum_allocated, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ry = np.where(resident_years > 0, resident_years, np.nan)
        gp = np.nan_to_num(1000.0 * gp_events / ry)
        asy = np.nan_to_num(1000.0 * asylum / ry)
        has_school = pupil_years >= MIN_PUPIL_YEARS
        school = np.where(has_school, 1000.0 * pupil_moves / np.where(has_school, pupil_years, 1.0), 0.0)
    mix = np.where(has_school, w_gp * gp + w_school * school, (w_gp + w_school) * gp)
    return mix + w_asylum * asy
