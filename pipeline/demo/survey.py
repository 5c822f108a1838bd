"""The resident survey and the PSA 21 values it estimates.

Every adult (16+) has answer probabilities for each question, set by their area (churn,
deprivation, how mixed it is) and themselves (age, ethnic group, years at the address).
The survey samples adults at random, loses many to non-response (young men respond least,
older women most) and draws each respondent's answers from their probabilities. The
truth is the same probabilities summed over the WHOLE adult population: for each
indicator, 100 x sum P(agree) / sum P(expressing an opinion), by ward and for the LA.
"""

from __future__ import annotations

import numpy as np

from pipeline.demo.frame import Frame
from pipeline.demo.population import WHITE, People, draw_categorical
from pipeline.demo.rates import ETHNIC_GROUPS, SURVEY_AGE_BANDS, SURVEY_BAND_EDGES, DemoRates
from pipeline.demo.timeline import DAY, DAYS_PER_YEAR, age_on, as_day

MIX_SETTINGS = ("home", "work", "school", "pub", "group", "worship", "shops")
# per setting: P(does not apply) by age (16-24, 25-49, 50-66, 67+), and the logit of mixing
# at least monthly where it applies
MIX_NOT_APPLICABLE = {
    "home": (0.10, 0.10, 0.10, 0.10), "work": (0.45, 0.15, 0.25, 0.85), "school": (0.40, 0.60, 0.85, 0.95),
    "pub": (0.15, 0.15, 0.20, 0.35), "group": (0.45, 0.45, 0.40, 0.40), "worship": (0.60, 0.55, 0.50, 0.45),
    "shops": (0.03, 0.03, 0.03, 0.05),
}
MIX_LOGIT = {"home": -1.0, "work": 0.6, "school": 0.5, "pub": -0.6, "group": -0.9, "worship": -1.2, "shops": 0.2}
RELIGIONS = ("Christian", "Muslim", "Hindu", "Sikh", "Jewish", "Buddhist", "Other", "No religion", "Prefer not to say")
RELIGION_BY_GROUP = np.array([
    [0.50, 0.005, 0.002, 0.002, 0.012, 0.004, 0.005, 0.42, 0.05],    # White
    [0.40, 0.07, 0.01, 0.01, 0.005, 0.01, 0.015, 0.43, 0.05],        # Mixed
    [0.05, 0.55, 0.17, 0.10, 0.0, 0.02, 0.02, 0.06, 0.03],           # Asian
    [0.66, 0.20, 0.0, 0.0, 0.0, 0.0, 0.02, 0.09, 0.03],              # Black
    [0.20, 0.45, 0.01, 0.01, 0.01, 0.02, 0.10, 0.16, 0.04],          # Other
])
INDICATORS = ("psa21_get_on", "psa21_belong", "psa21_meaningful_interaction", "psa21_influence")


def logistic(x):
    return 1.0 / (1.0 + np.exp(-x))


def person_context(people: People, idx: np.ndarray, frame: Frame, on) -> dict[str, np.ndarray]:
    lsoa = frame.pc_lsoa[people.postcode[idx]]
    return {
        "age": age_on(people.dob[idx], on),
        "minority": (people.ethnic_group[idx] != WHITE).astype(float),
        "churn": frame.lsoa_churn[lsoa].astype(float),
        "dep": frame.lsoa_dep[lsoa],
        "mixed_area": frame.lsoa_nonwhite[lsoa],
        "years_here": ((as_day(on) - people.address_since[idx]) / DAY) / DAYS_PER_YEAR,
    }


def answer_probabilities(ctx: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """P(each answer code) per person; columns are codes 1, 2, ... of each question."""
    age, minority, churn, dep = ctx["age"], ctx["minority"], ctx["churn"], ctx["dep"]
    n = len(age)

    too_few = np.full(n, 0.015)
    all_same = 0.005 + 0.08 * np.clip(1 - ctx["mixed_area"] / 0.25, 0, 1)
    dont_know = np.full(n, 0.05)
    agree = logistic(2.35 - 0.45 * churn - 1.0 * dep + 0.15 * minority + 0.008 * (age - 45))
    get_on = _agree_scale(agree, 1 - too_few - all_same - dont_know, (0.35, 0.65, 0.65, 0.35))
    get_on = np.column_stack([get_on, dont_know, too_few, all_same])

    strong = logistic(0.1 + 0.025 * (age - 45) + 0.3 * np.log1p(ctx["years_here"]) - 0.35 * churn - 0.3 * dep)
    belong = np.column_stack([_agree_scale(strong, np.full(n, 0.98), (0.35, 0.65, 0.65, 0.35)), np.full(n, 0.02)])

    can = logistic(-0.95 - 0.006 * (age - 45) + 0.3 * minority - 0.3 * dep)
    influence = np.column_stack([_agree_scale(can, np.full(n, 0.92), (0.2, 0.8, 0.55, 0.45)), np.full(n, 0.08)])

    probs = {"q_get_on": get_on, "q_belong": belong, "q_influence": influence}
    band = np.select([age < 25, age < 50, age < 67], [0, 1, 2], 3)
    for setting in MIX_SETTINGS:
        not_applicable = np.asarray(MIX_NOT_APPLICABLE[setting])[band]
        monthly = logistic(MIX_LOGIT[setting] + 4.0 * (ctx["mixed_area"] - 0.2) + 1.0 * minority - 0.02 * (age - 45))
        applies = 1 - not_applicable
        probs[f"q_mix_{setting}"] = np.column_stack([
            applies * monthly * 0.30, applies * monthly * 0.45, applies * monthly * 0.25,
            applies * (1 - monthly) * 0.55, applies * (1 - monthly) * 0.45, not_applicable])
    return probs


def _agree_scale(p_agree, p_opinion, split) -> np.ndarray:
    """Codes 1-4 (strongly/tend to agree, tend to/strongly disagree) of a 4-point scale."""
    a1, a2, d1, d2 = split
    return np.column_stack([p_opinion * p_agree * a1, p_opinion * p_agree * a2,
                            p_opinion * (1 - p_agree) * d1, p_opinion * (1 - p_agree) * d2])


def indicator_parts(probs: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per person: (P counted as yes, P counted at all) for each PSA 21 indicator."""
    monthly_outside_home = [probs[f"q_mix_{s}"][:, :3].sum(axis=1) for s in MIX_SETTINGS if s != "home"]
    any_mixing = 1 - np.prod([1 - p for p in monthly_outside_home], axis=0)
    return {
        "psa21_get_on": (probs["q_get_on"][:, :2].sum(axis=1), probs["q_get_on"][:, :4].sum(axis=1)),
        "psa21_belong": (probs["q_belong"][:, :2].sum(axis=1), probs["q_belong"][:, :4].sum(axis=1)),
        "psa21_meaningful_interaction": (any_mixing, np.ones_like(any_mixing)),
        "psa21_influence": (probs["q_influence"][:, :2].sum(axis=1), probs["q_influence"][:, :4].sum(axis=1)),
    }


def expected_indicators(people: People, frame: Frame, on) -> list[dict]:
    """The population value of each indicator by ward and for the LA (the survey's truth)."""
    adults = people.residents()
    adults = adults[age_on(people.dob[adults], on) >= 16]
    parts = indicator_parts(answer_probabilities(person_context(people, adults, frame, on)))
    ward = frame.pc_ward[people.postcode[adults]]
    rows = []
    for indicator in INDICATORS:
        yes, base = parts[indicator]
        yes_w = np.bincount(ward, yes, frame.n_wards)
        base_w = np.bincount(ward, base, frame.n_wards)
        for w in np.flatnonzero(base_w > 0):
            rows.append({"indicator_id": indicator, "area_code": frame.ward_code[w], "area_type": "ward",
                         "expected_value": round(100 * yes_w[w] / base_w[w], 3)})
        rows.append({"indicator_id": indicator, "area_code": frame.la_code, "area_type": "la",
                     "expected_value": round(100 * yes.sum() / base.sum(), 3)})
    return rows


def survey_band(age: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.asarray(SURVEY_BAND_EDGES), age, side="right") - 1


def response_probability(people: People, idx, age, frame: Frame, rates: DemoRates) -> np.ndarray:
    p = np.asarray(rates.response_by_band)[survey_band(age)]
    p = p * np.asarray(rates.response_sex_factor)[people.sex[idx]]
    high = frame.lsoa_churn[frame.pc_lsoa[people.postcode[idx]]] == 2
    return np.clip(p * np.where(high, rates.response_high_churn_factor, 1.0), 0, 1)


def draw_survey(people: People, frame: Frame, rates: DemoRates, rng, on, size: int) -> dict:
    """Sample adults, keep those who respond, draw their answers. Returns column arrays."""
    adults = people.residents()
    adults = adults[age_on(people.dob[adults], on) >= 16]
    p_respond = response_probability(people, adults, age_on(people.dob[adults], on), frame, rates)
    n_issued = min(len(adults), int(round(size / max(p_respond.mean(), 1e-9))))
    issued = np.sort(rng.choice(len(adults), n_issued, replace=False))
    responded = issued[rng.random(n_issued) < p_respond[issued]]
    idx = rng.permutation(adults[responded])
    n = len(idx)

    interview = as_day(on) + rng.integers(-rates.interview_window_days, rates.interview_window_days + 1, n) * DAY
    age = age_on(people.dob[idx], interview)
    group = people.ethnic_group[idx]
    answers = {}
    for question, p in answer_probabilities(person_context(people, idx, frame, on)).items():
        code = draw_categorical(p, rng) + 1
        u = rng.random(n)
        code = np.where(u < rates.item_out_of_range, 9, code)
        answers[question] = np.ma.masked_array(code, mask=(u >= rates.item_out_of_range)
                                               & (u < rates.item_out_of_range + rates.item_missing))
    return {
        "survey_id": f"residents-{as_day(on).astype(object).year}",
        "person": idx,
        "postcode": people.postcode[idx].copy(),         # where they live when interviewed
        "interview_date": interview,
        "sex": people.sex[idx],
        "age_band": np.asarray(SURVEY_AGE_BANDS, dtype=object)[survey_band(age)],
        "ethnic_group": np.asarray(ETHNIC_GROUPS, dtype=object)[group],
        "religion": np.asarray(RELIGIONS, dtype=object)[draw_categorical(RELIGION_BY_GROUP[group], rng)],
        "disability": np.where(rng.random(n) < 0.08 + 0.004 * np.maximum(age - 30, 0), "Y", "N").astype(object),
        "answers": answers,
    }
