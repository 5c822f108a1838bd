"""Population turbulence: how fast people are moving through an LSOA.

The COHDMAP guide sets margins of error "by the extent of population turbulence, reflected in the
changing school population and recent housing allocations to asylum seekers". The score pools
three sources, each counted over every period from the first extract up to the date estimated
(never a later extract: an estimate at t is not revised when later extracts arrive; at the first
extract nothing is known of moves and T = 0), so that a date is judged on all the moves seen
so far rather than one quarter's (each period's own score is kept in the est_turbulence table):

    GP moves      registrations + deregistrations + from-abroad registrations, over
                  resident-years (base residents x years). Registrations exclude births;
                  deregistrations exclude deaths and list cleaning; from-abroad (Flag 4)
                  registrations count a second time, as the most turbulent arrivals (they are
                  also registrations). From gp_movements, or from consecutive register
                  snapshots by patient_id when there are no movement records.
    pupil moves   pupils joining or leaving a school outside the normal points of entry, over
                  pupil-years on roll (see sql/prepare/09_est_school_moves.sql).
    asylum        asylum seekers newly housed, over resident-years.

    T = 1000 x (GP moves + w_school x pupil moves) / (resident-years + w_school x pupil-years)
        + w_asylum x 1000 x asylum allocations / resident-years

i.e. GP and school churn are pooled into one rate of moves per 1,000 person-years, each source
weighing by its exposure (w_school = 1): the school census sees only families with children, a
few dozen pupils per LSOA, so its rate is the noisier one and an equal-weight average would blur
the score (in the demo back-tests the pooled score separates settled from churning areas better
than an equal-weight one). Asylum allocations are added on top (w_asylum = 1): a flow that lists
register late. The weights live in margin_model.json. T is "moves per 1,000 residents per year";
the margin model also uses tau = T x years / 1000, the expected number of moves per resident
since the base.
"""

from __future__ import annotations

import numpy as np


def score_turbulence(gp_events, resident_years, pupil_moves, pupil_years, asylum_allocated,
                     w_school: float = 1.0, w_asylum: float = 1.0) -> np.ndarray:
    """Annualised moves per 1,000 (see the module docstring); 0 where there is no exposure."""
    gp_events = np.asarray(gp_events, float)
    resident_years = np.asarray(resident_years, float)
    pupil_moves = np.asarray(pupil_moves, float)
    pupil_years = np.asarray(pupil_years, float)
    asylum = np.asarray(asylum_allocated, float)
    exposure = resident_years + w_school * pupil_years
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = np.where(exposure > 0, 1000.0 * (gp_events + w_school * pupil_moves) / np.where(exposure > 0, exposure, 1.0), 0.0)
        asy = np.where(resident_years > 0, 1000.0 * asylum / np.where(resident_years > 0, resident_years, 1.0), 0.0)
    return pooled + w_asylum * asy


def score_turbulence_to_date(frame, w_school: float = 1.0, w_asylum: float = 1.0) -> np.ndarray:
    """T at each extract from the periods up to that extract only (0 at the first).

    `frame`: one row per LSOA x extract (columns lsoa_code, k, gp_events, resident_years,
    pupil_moves, pupil_years, asylum_allocated; the row at k holds the period ending at extract k,
    zeros at k = 0). Returns the score of the sums over periods 1..k, in the frame's row order:
    no later extract enters the score at k (no revision from the future).
    """
    cols = ["gp_events", "resident_years", "pupil_moves", "pupil_years", "asylum_allocated"]
    missing = [c for c in ("lsoa_code", "k", *cols) if c not in frame.columns]
    if missing:
        raise ValueError(f"score_turbulence_to_date: the frame lacks column(s) {missing}")
    ordered = frame.sort_values(["lsoa_code", "k"], kind="stable")
    body = ordered[cols].astype(float)
    body.loc[ordered["k"].to_numpy() <= 0, :] = 0.0
    cum = body.groupby(ordered["lsoa_code"]).cumsum()
    score = score_turbulence(cum["gp_events"], cum["resident_years"], cum["pupil_moves"], cum["pupil_years"],
                             cum["asylum_allocated"], w_school=w_school, w_asylum=w_asylum)
    out = np.empty(len(frame))
    out[frame.index.get_indexer(ordered.index)] = score
    return out
