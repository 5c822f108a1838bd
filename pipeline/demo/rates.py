"""Every number the demo district is built from, in one place.

Rates are annual per person unless the name says otherwise. Tuples indexed by churn level
hold the values for (low, medium, high) churn LSOAs. Changing a value here changes the
district; nothing else in `pipeline/demo` hides a rate.
"""

from __future__ import annotations

from dataclasses import dataclass

# Codes shared by the demo modules -------------------------------------------------------

CHURN_LEVELS = ("low", "medium", "high")
ETHNIC_GROUPS = ("White", "Mixed", "Asian", "Black", "Other")

# NHS ethnic category (2001 census based) and the DfE school-census code it maps to.
NHS_ETHNIC_CODES = ("A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L", "M", "N", "P", "R", "S")
NHS_TO_DFE = (
    "WBRI", "WIRI", "WOTH", "MWBC", "MWBA", "MWAS", "MOTH",
    "AIND", "APKN", "ABAN", "AOTH", "BCRB", "BAFR", "BOTH", "CHNE", "OOTH",
)

# First languages, DfE codes. The last few are rarer codes the pipeline may not know yet.
LANGUAGES = ("ENG", "ENB", "OTH", "OTB", "POL", "RUM", "URD", "PNJ", "BNG", "GUJ", "SOM",
             "ARA", "CHI", "TAM", "KUR", "TIG", "PAS", "ALB", "REFU", "NOBT")

ONS_AGE_BANDS = tuple(f"{a}-{a + 4}" for a in range(0, 85, 5)) + ("85+",)
SURVEY_AGE_BANDS = ("16-24", "25-34", "35-44", "45-54", "55-64", "65-74", "75+")
SURVEY_BAND_EDGES = (16, 25, 35, 45, 55, 65, 75)

# Wards where Trafford's diverse, high-churn neighbourhoods are (weight 1), and their
# neighbours (weight 0.5).
DIVERSE_WARDS = {"Old Trafford": 1.0, "Gorse Hill & Cornbrook": 1.0,
                 "Stretford & Humphrey Park": 0.6, "Longford": 0.6, "Lostock & Barton": 0.3}

# Outward codes just outside Trafford: people who live there but are registered with a
# Trafford practice carry postcodes the directory does not hold.
OUTSIDE_OUTWARD_CODES = ("M14", "M20", "M22", "M30", "M44", "M5", "WA13", "WA16", "SK8", "M27")

TRAFFORD_POPULATION = 236_301  # ONS mid-2022, the population at scale 1.0


@dataclass(frozen=True)
class DemoRates:
    """Parameters of the microsimulation (see the `pipeline.demo` docstring for the model)."""

    # --- churn levels: shares of LSOAs (low, medium, high) per settings.churn_mix --------
    churn_shares_trafford: tuple = (0.50, 0.30, 0.20)
    churn_shares_settled: tuple = (0.85, 0.12, 0.03)
    churn_shares_turbulent: tuple = (0.25, 0.35, 0.40)

    # --- published base population error (multiplicative, log-normal sd) ----------------
    base_error_sd: tuple = (0.02, 0.04, 0.06)          # whole LSOA
    base_young_adult_error_sd: tuple = (0.03, 0.05, 0.08)  # extra, ages 18-39 by sex
    base_cell_error_sd: float = 0.03                   # single-year cells
    base_la_error_sd: float = 0.004                    # LA total after constraining

    # --- migration (annual, by churn level) ---------------------------------------------
    internal_move: tuple = (0.016, 0.034, 0.060)       # to another address in the district
    out_uk: tuple = (0.012, 0.030, 0.072)              # to the rest of the UK
    emigration: tuple = (0.002, 0.007, 0.021)          # abroad
    in_uk: tuple = (0.013, 0.032, 0.072)               # arrivals from the rest of the UK
    in_abroad: tuple = (0.002, 0.007, 0.026)           # arrivals from abroad
    same_msoa_move_share: float = 0.55                 # internal moves that stay in the MSOA
    recent_arrival_mobility: float = 1.8               # hazard multiplier, arrivals from abroad
    asylum_mobility: float = 4.0                       # hazard multiplier, asylum seekers
    years_at_address_mean: tuple = (13.0, 7.0, 3.5)    # residents at the base date

    # --- asylum dispersal -----------------------------------------------------------------
    asylum_per_lsoa_quarter: float = 6.0               # new placements per dispersal LSOA, scale 1
    dispersal_share_of_high: float = 0.15              # share of high-churn LSOAs used
    asylum_step_up_per_quarter: float = 15.0           # a new dispersal property, late on

    # --- fertility and mortality ----------------------------------------------------------
    asfr: tuple = (0.012, 0.056, 0.100, 0.125, 0.075, 0.016, 0.001)  # women 15-19 ... 45-49
    male_birth_share: float = 0.512
    infant_mortality: float = 0.0035
    gompertz_a: float = 1.4e-5                         # annual death probability a*exp(b*age)
    gompertz_b: float = 0.10
    male_mortality_ratio: float = 1.25
    deprivation_mortality_gradient: float = 0.3        # most deprived = 1.3 x least

    # --- ethnicity --------------------------------------------------------------------------
    nonwhite_base: float = 0.07                        # share not White: base + terms
    nonwhite_deprivation: float = 0.10                 # x deprivation (0..1)
    nonwhite_north: float = 0.06                       # north of the borough
    nonwhite_core: float = 0.45                        # x core-ward weight (DIVERSE_WARDS)
    stated_ethnicity_z: float = 0.08                   # register records "Z" (not stated)
    stated_ethnicity_blank: float = 0.05               # register field blank

    # --- GP register ------------------------------------------------------------------------
    base_inflation: tuple = ((0.02, 0.05), (0.07, 0.12), (0.15, 0.30))  # ghosts / residents
    ghost_age_weights: tuple = (0.6, 3.0, 1.0, 0.4)    # ages 0-19, 20-39, 40-59, 60+
    # Patients who live just outside the area (postcodes not in the directory). Real, but the
    # pipeline quarantines such rows and the demo is meant to load with an empty quarantine,
    # so both are off by default; set them above 0 to exercise postcode matching.
    outside_patient_share: float = 0.0                 # e.g. 0.008: registered, living outside
    birth_reg_lag_days: tuple = (7, 18)                # minimum, mean extra (exponential)
    late_birth_registration: float = 0.02              # babies registered months late
    death_dereg_lag_days: tuple = (3, 14)
    p_unregistered_base_young_adults: tuple = (0.02, 0.04, 0.08)  # base date, men 18-34
    p_unregistered_base_other: float = 0.005                   # (women 18-34: half the men's)
    p_never_register_uk: tuple = (0.10, 0.03)          # arrivals: (young men, everyone else)
    p_never_register_abroad: tuple = (0.20, 0.08)
    p_never_register_asylum: tuple = (0.03, 0.03)
    p_never_register_children: float = 0.02
    arrival_reg_lag_days: tuple = (7, 45)              # UK arrivals
    abroad_reg_lag_days: tuple = (14, 75)
    asylum_reg_lag_days: tuple = (7, 30)
    young_men_lag_factor: float = 2.0
    address_update: tuple = (0.25, 0.60, 0.15)         # prompt, late, never
    address_update_lag_days: tuple = ((7, 20), (30, 180))
    transfer_out: tuple = (0.35, 0.35, 0.30)           # prompt, late, never (ages 18-34 worse)
    transfer_out_young: tuple = (0.25, 0.35, 0.40)
    transfer_lag_days: tuple = ((14, 30), (90, 300))
    emigration_dereg: float = 0.12                     # emigrants who tell the practice
    keep_practice_on_leaving: float = 0.0              # e.g. 0.04: out-movers who stay registered
    ghost_transfer_rate: float = 0.12                  # ghosts found when they re-register
    ghost_other_removal_rate: float = 0.06
    cleaning_practice_share: float = 0.2               # practices swept once in the period
    cleaning_ghost_removal: tuple = (0.55, 0.85)       # share of a practice's ghosts removed
    cleaning_resident_removal: float = 0.01            # residents wrongly removed
    cleaning_reregister: float = 0.7

    # --- schools ----------------------------------------------------------------------------
    primaries_at_scale_1: int = 60
    secondaries_at_scale_1: int = 18
    specials_at_scale_1: int = 4
    special_school_share: float = 0.012
    independent_share: tuple = (0.03, 0.12)            # most / least deprived areas
    school_distance_km: tuple = (0.9, 2.5)             # primary, secondary distance decay
    school_affinity_sd: float = 1.3                    # between-school ethnic clustering
    change_school_on_move: float = 0.3
    base_pupils_joined_mid_way: float = 0.4           # base children whose move changed school

    # --- survey -----------------------------------------------------------------------------
    response_by_band: tuple = (0.18, 0.22, 0.30, 0.36, 0.42, 0.50, 0.42)
    response_sex_factor: tuple = (0.80, 1.15)          # M, F
    response_high_churn_factor: float = 0.85
    interview_window_days: int = 45
    item_missing: float = 0.012
    item_out_of_range: float = 0.003

    # --- incidents --------------------------------------------------------------------------
    incidents_per_1000_quarter: tuple = (("hate_crime_race", 0.45), ("hate_crime_religion", 0.08),
                                         ("community_tension", 0.05))
    incident_spike_factor: float = 4.0


RATES = DemoRates()
