"""Every size the regimes simulator uses, each with where it comes from.

Published facts (measured, cited) are marked PUBLISHED; sizes that no published figure pins
down are marked ASSUMED and are scenario settings, not findings. Nothing here was read from
or fitted to the demo generator (pipeline/demo).
"""

from __future__ import annotations

import numpy as np

# --------------------------------------------------------------------------- list inflation
# PUBLISHED (shared/data/real/census2021_backtest/README.md, England, 32,744 units, 4 Jan 2021):
# per small area the ratio GP list / census has median 1.055, 90th percentile 1.18, 95th 1.25,
# 99th 1.44, and 5% of units have fewer registered patients than residents (ratio < 1).
# The draw is a monotone interpolation of these quantiles on the normal-score scale; the tails
# beyond the 0.5% / 99.9% points (no published figure) are ASSUMED (0.95 and 1.60).
LIST_RATIO_QUANTILES = ((0.001, 0.95), (0.05, 1.0), (0.5, 1.055), (0.9, 1.18), (0.95, 1.25),
                        (0.99, 1.44), (0.999, 1.60))

# ASSUMED: rank correlation (Gaussian copula) between an area's inflation and its churn. The
# published fact is only qualitative ("inflation is highest where churn is high", methods.md).
# Kept at 0.5 so churn does not determine inflation (the demo's list inflation is a function of churn).
INFLATION_CHURN_RHO = 0.5

# ASSUMED: residents not (yet) on any list, by age and sex (young men least registered:
# methods.md, Flag 4 limits). Mean about 2%; where an area's drawn ratio is below 1 - u the
# shortfall is put down to unregistered residents.
UNREGISTERED = {"M_18_34": 0.06, "F_18_34": 0.03, "other": 0.01}

# -------------------------------------------------------------------- list maintenance (steady)
# ASSUMED: a ghost record (person gone, record kept) is found and removed at a steady monthly
# hazard (re-registration elsewhere, returned post) and in practice-wide sweeps once a year
# that remove a share of the ghosts the practice holds (methods.md: "list-cleaning exercises
# remove ghosts in bursts"; Ashworth et al. 2005: address checks removed 7-76% of young men).
GHOST_HAZARD_MONTHLY = 0.01
SWEEP_SHARE = 0.25              # share of a practice's ghosts a sweep removes
SWEEP_EVERY_MONTHS = 12
SWEEP_WRONG_SHARE = 0.004       # residents wrongly removed by a sweep (re-register later)
# growing inflation: sweeps stop (as list maintenance did in 2020) and the hazard stays; with
# the steady-state inflow this raises inflation by about half over two years. ASSUMED.
GROWING_HAZARD_MONTHLY = 0.01

# ----------------------------------------------------------------- registration lags (days)
# PUBLISHED (methods.md): newborns appear after weeks to months; deaths removed within weeks.
BIRTH_LAG = (14, 45)            # minimum, mean extra (exponential)
DEATH_LAG = (5, 14)
# ASSUMED: arrivals register late or never, migrants from abroad later and less often.
UK_ARRIVAL_LAG = (7, 75)
ABROAD_ARRIVAL_LAG = (14, 120)
UK_NEVER = 0.02                 # never register within the window (x1.8 for men 18-34)
ABROAD_NEVER = 0.05
PROMPT_DEREGISTRATION_LAG = (14, 60)  # leavers who re-register elsewhere soon (transfer out)
ADDRESS_UPDATE = (0.7, 30, 90)  # within-district movers: share who tell the practice, lag min, mean extra

# ------------------------------------------------------------------------- demography
# ASSUMED sizes of the order of ONS national figures (not fitted to any district):
# mortality Gompertz q(x) = exp(a + b x) for men (women x0.65), infant q0 0.004
# (England & Wales national life tables 2018-20 give q40 ~ 0.0015, q80 ~ 0.05 for men).
GOMPERTZ = (-10.0, 0.0877)
FEMALE_MORTALITY = 0.65
INFANT_Q = 0.004
# age-specific fertility rates per woman per year by 5-year band 15-19 ... 40-44 (ONS Births
# in England and Wales 2021, rounded).
ASFR = (0.010, 0.045, 0.083, 0.102, 0.060, 0.014)
MALE_BIRTH_SHARE = 0.512

# ASSUMED annual migration rates by age before the area's churn multiplier (gross moves out of
# the district to the rest of the UK, emigration, moves within the district).
OUT_UK_BY_AGE = ((0, 0.05), (16, 0.04), (18, 0.15), (20, 0.14), (25, 0.12), (30, 0.08), (35, 0.05),
                 (45, 0.03), (65, 0.02))
EMIGRATION_BY_AGE = ((0, 0.003), (20, 0.012), (35, 0.005), (65, 0.002))
INTERNAL_BY_AGE = ((0, 0.06), (18, 0.12), (35, 0.06), (65, 0.03))
IN_UK_FACTOR = 1.0              # UK arrivals as a share of UK leavers (flows balance)
IN_ABROAD_FACTOR = 1.4          # arrivals from abroad as a share of emigrants (net immigration)
# the churn multiplier of an area: its share of residents aged 20-34 over the district's, to
# this power, clipped (from the real ONS mid-2022 age structure of the area: young adults move).
CHURN_POWER = 1.5
CHURN_CLIP = (0.4, 3.0)

# --------------------------------------------------------------- registrants outside
# ASSUMED: patients of the district's practices who live elsewhere in the borough (outside the
# district's LSOAs): a share of every list, turning over at 8% a year.
OUTSIDE_PATIENTS = 0.04
OUTSIDE_TURNOVER = 0.08
# regime "outside": of leavers to the rest of the UK, half move nearby, and of those 40% keep
# their practice and their old registered address (attending patients: sweeps do not remove
# them); half of those give the practice their new (outside) address within months.
NEAR_SHARE = 0.5
KEEP_PRACTICE = 0.4
KEEPERS_UPDATE = (0.5, 30, 120)

# --------------------------------------------------------------------------- students
# ASSUMED: student areas are the 15% of LSOAs with the largest share aged 18-21 in the real
# mid-2022 estimates; they hold three-year cohorts of students each 8% of the area's residents
# (about a fifth of the area are students, as in a student quarter); every September a cohort arrives
# (25% from abroad) and registers within weeks at the area's student practice; every June the
# final-year students leave (80% to the rest of the UK). Only 20% deregister promptly; the rest
# stay on the list until the student practice's November sweep, which removes 70% of them.
STUDENT_AREA_SHARE = 0.15
STUDENT_INTAKE = 0.08
STUDENT_ABROAD = 0.25
STUDENT_REGISTER = (0.9, 3, 21)
STUDENT_PROMPT_DEREG = 0.2
STUDENT_SWEEP_SHARE = 0.7

# ------------------------------------------------------------------ published base errors
# PUBLISHED (issue 8, England): local-authority mid-2020 estimates differed from Census 2021
# by 2.3% on average, sd 4.2%, 1st-99th percentile -6.5% to +14.2%. Read as the signed error
# of the estimate (estimate / census - 1). A shifted lognormal c + exp(mu + s Z) (in %) matches
# the mean and both percentiles exactly (solved numerically; its sd is 4.4%).
LA_ERROR_SHIFTED_LOGNORMAL = {"c": -25.30254576071949, "mu": 3.3051786964707004, "s": 0.15955757397250667}
# ASSUMED size (ONS: least accurate for young adults, methods.md): an LA-wide error per 5-year
# band, normal, sd 2%, 4% for bands 15-34 and 85+.
LA_AGE_SD = 0.02
LA_AGE_SD_YOUNG_OLD = 0.04
# PUBLISHED (census2021_backtest README): ONS mid-2020 LSOA estimates differ from the census by
# 5.5% on average (median 3.7%) across England. Local error = MSOA part (40% of the variance,
# spatially shared) + LSOA part (60%), Student t with 2 degrees of freedom (heavy tails: a flat
# +-10% band covers only 83% of real units), scale 0.022, clipped at +-0.7 on the log scale.
# With the LA term this gives a mean absolute LSOA error of 5.4% (median 4.0%: the LA term
# taken as signed leaves less room for a smaller median).
LOCAL_ERROR = {"df": 2.0, "scale": 0.022, "msoa_share": 0.4, "clip": 0.7}
# ASSUMED: single-year cells of the published base carry extra multiplicative noise (sd 8%)
# beyond the area's error (the age detail of small-area estimates is noisier than the total).
CELL_NOISE_SD = 0.08
# regime "base_tail": the LA term drawn from the top decile of the published distribution.
TAIL_QUANTILES = (0.90, 0.99)


def quantile_interp(points, p: np.ndarray) -> np.ndarray:
    """Values at probabilities p by linear interpolation on the normal-score scale."""
    from scipy.stats import norm

    probs = np.array([q for q, _ in points])
    vals = np.array([v for _, v in points])
    zp = norm.ppf(np.clip(p, probs[0], probs[-1]))
    return np.interp(zp, norm.ppf(probs), vals)


def rate_by_age(table, ages: np.ndarray) -> np.ndarray:
    """Step function of age from ((from_age, rate), ...)."""
    starts = np.array([a for a, _ in table])
    rates = np.array([r for _, r in table])
    return rates[np.searchsorted(starts, ages, side="right") - 1]

# ------------------------------------------------------------------------------ school census
# Who of the district's resident children of years R-11 is on its LA's school census (the LA's
# state-funded schools). ASSUMED, of the order of DfE's "Schools, pupils and their
# characteristics" (about 6-7% of England's pupils are in independent schools; its cross-border
# tables show pupils living in one LA and enrolled in another) and DfE's elective home education
# collection (about 1% of children of compulsory school age): 6.5% independent, 1% home-educated,
# 5% at a school in another LA. A child is drawn once; the draw holds while the child lives here.
SCHOOL_CENSUS_COVERAGE = 1 - 0.065 - 0.01 - 0.05
# ASSUMED, of the order of DfE's SPC (state-funded special schools hold about 1.5-2% of pupils).
SPECIAL_SCHOOL_SHARE = 0.017
# PUBLISHED: Trafford's state-funded schools, mean share of pupils eligible for free school meals
# 2022/23 = 19.3% (92 schools, unweighted; shared/data/real/dfe_spc_2022_23_school_fsm.csv).
FSM_SHARE = 0.193
# ASSUMED: pupils of other than White British ethnicity whose first language is not English.
OTHER_FIRST_LANGUAGE = 0.45
# ASSUMED: of pupils who move house within the district, the share who change school at the next
# census (primary, secondary); the share of primary pupils at a school of their own ward; the
# chance the school holds a mover's new address by the next census.
SCHOOL_SWITCH_ON_MOVE = (0.4, 0.15)
LOCAL_PRIMARY_SHARE = 0.85
SCHOOL_ADDRESS_KNOWN = 0.9
