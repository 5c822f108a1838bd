"""The true population: a table of people and the demographic events that change it.

`People` is a struct of numpy arrays, one row per person ever simulated (residents, people
who have left or died, ghost patients seeded on the register). Rows are never removed, so a
row index is a stable person id; `status` says whether the person lives in the district.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.demo.frame import Frame
from pipeline.demo.rates import LANGUAGES, NHS_ETHNIC_CODES, NHS_TO_DFE, DemoRates
from pipeline.demo.timeline import (DAY, DAYS_PER_YEAR, NEVER, age_on, as_day, days_to_offset,
                                    random_days_between, years_between)

# status
RESIDENT, DEAD, EMIGRATED, LEFT_UK, OUTSIDE = 0, 1, 2, 3, 4
# origin
BASE, BORN, UK_ARRIVAL, ABROAD_ARRIVAL, ASYLUM, GHOST, OUTSIDE_PATIENT = range(7)
# ethnic groups (index into ETHNIC_GROUPS)
WHITE, MIXED, ASIAN, BLACK, OTHER = range(5)

DFE_CODES = NHS_TO_DFE + ("WROM", "WIRT", "REFU", "NOBT")
RECORDED_Z, RECORDED_BLANK = len(NHS_ETHNIC_CODES), len(NHS_ETHNIC_CODES) + 1
LANG = {code: i for i, code in enumerate(LANGUAGES)}
NHS = {code: i for i, code in enumerate(NHS_ETHNIC_CODES)}

PERSON_COLUMNS: dict[str, tuple] = {
    # who they are
    "sex": (np.int8, 0),                    # 0 male, 1 female
    "dob": ("M8[D]", NEVER),
    "origin": (np.int8, BASE),
    "born_abroad": (np.bool_, False),
    "ethnic_group": (np.int8, WHITE),
    "nhs_ethnic": (np.int8, 0),
    "dfe_ethnic": (np.int8, 0),
    "language": (np.int8, 0),
    "mobility": (np.float32, 1.0),          # multiplier on moving hazards
    # where they live
    "postcode": (np.int32, -1),
    "status": (np.int8, RESIDENT),
    "status_date": ("M8[D]", NEVER),        # date of death / leaving
    "address_since": ("M8[D]", NEVER),
    # how the GP register sees them (pipeline.demo.register)
    "reg_practice": (np.int16, -1),
    "reg_postcode": (np.int32, -1),
    "reg_date": ("M8[D]", NEVER),
    "reg_from_abroad": (np.bool_, False),
    "reg_due": ("M8[D]", NEVER),
    "reg_reason": (np.int8, 0),
    "dereg_due": ("M8[D]", NEVER),
    "dereg_reason": (np.int8, 0),
    "addr_due": ("M8[D]", NEVER),
    "recorded_ethnic": (np.int8, 0),
    "dob_month_only": (np.bool_, False),
    "sex_numeric": (np.bool_, False),
    "sex_unknown": (np.bool_, False),
    # schools (pipeline.demo.schools)
    "school": (np.int16, -1),
    "school_entry": ("M8[D]", NEVER),
    "school_move_date": ("M8[D]", NEVER),
    "independent": (np.bool_, False),
    "special": (np.bool_, False),
    "fsm": (np.int8, -1),
}


class People:
    """Struct of arrays; `people.sex`, `people.dob`, ... are the columns."""

    def __init__(self) -> None:
        self.cols = {name: np.empty(0, dtype=dtype) for name, (dtype, _) in PERSON_COLUMNS.items()}

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.__dict__["cols"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __len__(self) -> int:
        return len(self.cols["sex"])

    def add(self, n: int, **values) -> np.ndarray:
        """Append n people; unspecified columns take their defaults. Returns their indices."""
        start = len(self)
        for name, (dtype, default) in PERSON_COLUMNS.items():
            new = np.empty(n, dtype=dtype)
            new[:] = values.pop(name, default)
            self.cols[name] = np.concatenate([self.cols[name], new])
        if values:
            raise KeyError(f"unknown person columns: {sorted(values)}")
        return np.arange(start, start + n)

    def residents(self) -> np.ndarray:
        return np.flatnonzero(self.cols["status"] == RESIDENT)


@dataclass
class EventLog:
    """True demographic events (not register events), for vital statistics and turnover."""

    kinds: list = field(default_factory=list)
    dates: list = field(default_factory=list)
    lsoas: list = field(default_factory=list)
    sexes: list = field(default_factory=list)
    ages: list = field(default_factory=list)

    KINDS = ("birth", "death", "emigration", "out_uk", "move_out", "move_in", "move_within",
             "in_uk", "in_abroad", "asylum")

    def record(self, kind: str, dates, lsoas, sexes, ages) -> None:
        n = len(dates)
        self.kinds.append(np.full(n, self.KINDS.index(kind), dtype=np.int8))
        self.dates.append(np.asarray(dates, dtype="M8[D]"))
        self.lsoas.append(np.asarray(lsoas, dtype=np.int32))
        self.sexes.append(np.asarray(sexes, dtype=np.int8))
        self.ages.append(np.asarray(ages, dtype=np.int16))

    def arrays(self) -> dict[str, np.ndarray]:
        cat = lambda parts, dtype: np.concatenate(parts) if parts else np.empty(0, dtype)  # noqa: E731
        return {"kind": cat(self.kinds, np.int8), "date": cat(self.dates, "M8[D]"),
                "lsoa": cat(self.lsoas, np.int32), "sex": cat(self.sexes, np.int8),
                "age": cat(self.ages, np.int16)}


@dataclass
class PeriodEvents:
    """Who did what in one simulation step (indices into People)."""

    died: np.ndarray
    emigrated: np.ndarray
    left_uk: np.ndarray          # includes those who keep their practice (status OUTSIDE)
    moved: np.ndarray            # to another address in the district
    born: np.ndarray
    arrived: np.ndarray          # from the UK, from abroad and asylum seekers


# --- small vectorised helpers ----------------------------------------------------------

def stochastic_round(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Round to an integer up or down at random so the expected value is x."""
    base = np.floor(x)
    return (base + (rng.random(x.shape) < (x - base))).astype(np.int64)


def draw_categorical(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row of a (n, k) probability matrix (rows need not be normalised)."""
    cum = np.cumsum(p, axis=1)
    u = rng.random(len(p)) * cum[:, -1]
    return np.minimum((cum < u[:, None]).sum(axis=1), p.shape[1] - 1)


def draw_postcodes(frame: Frame, group_of_person: np.ndarray, pc_group: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """For each person, a postcode of their group (LSOA, MSOA, ...) drawn by household weight.

    `pc_group` gives the group of each in-area postcode; one searchsorted does all draws.
    """
    n_in = frame.n_in_area
    order = np.argsort(pc_group, kind="stable")
    cum = np.cumsum(frame.pc_weight[:n_in][order])
    groups_sorted = pc_group[order]
    n_groups = int(pc_group.max()) + 1
    first = np.searchsorted(groups_sorted, np.arange(n_groups), side="left")
    last = np.searchsorted(groups_sorted, np.arange(n_groups), side="right")
    lo = np.where(first > 0, cum[np.maximum(first - 1, 0)], 0.0)
    hi = cum[np.maximum(last - 1, 0)]
    g = np.asarray(group_of_person)
    u = lo[g] + rng.random(len(g)) * (hi[g] - lo[g])
    pos = np.clip(np.searchsorted(cum, u, side="right"), first[g], last[g] - 1)
    return order[pos].astype(np.int32)


def draw_dob(age: np.ndarray, on, rng: np.random.Generator) -> np.ndarray:
    """A date of birth giving exactly `age` completed years on date(s) `on`."""
    on = np.asarray(on, dtype="M8[D]")
    days_into_year = rng.integers(0, 365, len(age))
    dob = on - days_to_offset(age * DAYS_PER_YEAR + days_into_year + 1)
    for _ in range(3):                   # leap-year rounding moves a few by a day or two
        off = age_on(dob, on) - age
        if not off.any():
            break
        dob = dob + off * DAY
    return dob


def mobility_by_age(frame: Frame) -> np.ndarray:
    """Age profile of moving (young adults most), averaging 1 over the base population."""
    profile = np.concatenate([np.full(16, 0.7), np.full(2, 0.6), np.full(12, 2.2), np.full(10, 1.2),
                              np.full(10, 0.7), np.full(15, 0.4), np.full(46, 0.25)])
    weights = frame.mye.sum(axis=(0, 1))
    mean = np.average(profile[:91], weights=weights)
    return profile / mean


# --- who people are ---------------------------------------------------------------------

def broad_group_probabilities(lsoa: np.ndarray, age: np.ndarray, origin: np.ndarray, frame: Frame) -> np.ndarray:
    """P(White, Mixed, Asian, Black, Other) per person from their LSOA, age and origin."""
    nonwhite = frame.lsoa_nonwhite[lsoa]
    tilt = frame.lsoa_black_tilt[lsoa]
    odds = nonwhite / (1 - nonwhite)
    odds = odds * np.select([age < 16, age < 40, age < 65], [1.4, 1.25, 0.8], 0.35)
    odds = odds * np.where(origin == ABROAD_ARRIVAL, 2.5, 1.0)
    p_nonwhite = odds / (1 + odds)
    mixed = (0.22 - 0.04 * tilt) * np.select([age < 16, age < 40], [2.0, 1.0], 0.4)
    mixed = mixed * np.where(origin == ABROAD_ARRIVAL, 0.3, 1.0)
    comp = np.stack([mixed, 0.50 - 0.10 * tilt, 0.17 + 0.16 * tilt, 0.11 - 0.02 * tilt], axis=1)
    comp = comp / comp.sum(axis=1, keepdims=True)
    p = np.column_stack([1 - p_nonwhite, p_nonwhite[:, None] * comp])
    asylum = origin == ASYLUM
    p[asylum] = (0.12, 0.0, 0.35, 0.30, 0.23)
    return p


# detailed NHS category within broad group: (codes, UK-born/settled probs, from-abroad probs)
DETAILED_WITHIN_GROUP = {
    WHITE: ("ABC", (0.92, 0.02, 0.06), (0.05, 0.08, 0.87)),
    MIXED: ("DEFG", (0.33, 0.12, 0.30, 0.25), (0.20, 0.20, 0.30, 0.30)),
    ASIAN: ("HJKLR", (0.33, 0.40, 0.06, 0.13, 0.08), (0.35, 0.20, 0.05, 0.20, 0.20)),
    BLACK: ("MNP", (0.30, 0.55, 0.15), (0.03, 0.85, 0.12)),
    OTHER: ("S", (1.0,), (1.0,)),
}
ASYLUM_DETAILED = {WHITE: ("C", (1.0,)), ASIAN: ("LJ", (0.9, 0.1)), BLACK: ("NP", (0.9, 0.1)), OTHER: ("S", (1.0,))}
BORN_ABROAD_ADULT = dict(zip("ABCDEFGHJKLMNPRS", (0.02, 0.5, 0.7, 0.05, 0.15, 0.1, 0.15, 0.45, 0.35, 0.45,
                                                  0.6, 0.3, 0.6, 0.4, 0.75, 0.6)))
# P(first language not English) for people born abroad; UK-born use 0.25 for the Asian,
# African and Other codes and 0 otherwise.
NON_ENGLISH_BORN_ABROAD = dict(zip("ABCDEFGHJKLMNPRS", (0.02, 0.02, 0.85, 0.2, 0.2, 0.2, 0.2, 0.6, 0.7, 0.8,
                                                        0.75, 0.05, 0.6, 0.5, 0.85, 0.85)))
NON_ENGLISH_UK_BORN = dict.fromkeys("HJKLNRS", 0.25)
SPECIFIC_LANGUAGES = {
    "C": (("POL", "RUM", "OTH"), (0.45, 0.30, 0.25)), "H": (("PNJ", "GUJ", "OTH"), (0.35, 0.35, 0.30)),
    "J": (("URD", "PNJ", "OTH"), (0.6, 0.3, 0.1)), "K": (("BNG", "OTH"), (0.9, 0.1)),
    "L": (("TAM", "PAS", "OTH"), (0.3, 0.2, 0.5)), "N": (("SOM", "ARA", "OTH"), (0.4, 0.15, 0.45)),
    "R": (("CHI", "OTH"), (0.9, 0.1)), "S": (("ARA", "KUR", "OTH"), (0.5, 0.2, 0.3)),
}
ASYLUM_LANGUAGES = {"C": (("ALB",), (1.0,)), "L": (("PAS", "OTH"), (0.7, 0.3)), "J": (("URD",), (1.0,)),
                    "N": (("TIG", "ARA", "SOM"), (0.5, 0.3, 0.2)), "P": (("OTH",), (1.0,)),
                    "S": (("ARA", "KUR"), (0.5, 0.5))}


def describe_people(lsoa: np.ndarray, age: np.ndarray, origin: np.ndarray, frame: Frame,
                    rates: DemoRates, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Ethnic group, NHS and DfE codes, birthplace, first language and register quirks."""
    n = len(lsoa)
    group = draw_categorical(broad_group_probabilities(lsoa, age, origin, frame), rng).astype(np.int8)
    abroad_origin = (origin == ABROAD_ARRIVAL) | (origin == ASYLUM)
    nhs = np.zeros(n, dtype=np.int8)
    for g, (codes, settled, arrived) in DETAILED_WITHIN_GROUP.items():
        for mask, probs in (((group == g) & ~abroad_origin, settled),
                            ((group == g) & (origin == ABROAD_ARRIVAL), arrived)):
            nhs[mask] = _draw_codes(codes, probs, mask.sum(), rng)
        if g in ASYLUM_DETAILED:
            mask = (group == g) & (origin == ASYLUM)
            codes, probs = ASYLUM_DETAILED[g]
            nhs[mask] = _draw_codes(codes, probs, mask.sum(), rng)
    born_abroad = draw_born_abroad(nhs, age, origin, rng)
    return {
        "ethnic_group": group,
        "nhs_ethnic": nhs,
        "dfe_ethnic": draw_dfe_codes(nhs, rng),
        "born_abroad": born_abroad,
        "language": draw_first_languages(nhs, born_abroad, origin, rng),
        "recorded_ethnic": draw_recorded_ethnicity(nhs, abroad_origin, rates, rng),
        "dob_month_only": rng.random(n) < 0.02,
        "sex_numeric": rng.random(n) < 0.02,
        "sex_unknown": rng.random(n) < 0.0005,
        "mobility": np.select([origin == ASYLUM, origin == ABROAD_ARRIVAL],
                              [rates.asylum_mobility, rates.recent_arrival_mobility], 1.0).astype(np.float32),
    }


def _draw_codes(codes: str, probs, n: int, rng) -> np.ndarray:
    picked = rng.choice(len(codes), size=n, p=np.asarray(probs) / np.sum(probs))
    return np.array([NHS[c] for c in codes], dtype=np.int8)[picked]


def draw_born_abroad(nhs: np.ndarray, age: np.ndarray, origin: np.ndarray, rng) -> np.ndarray:
    p = np.array([BORN_ABROAD_ADULT[c] for c in NHS_ETHNIC_CODES])[nhs] * np.where(age < 16, 0.25, 1.0)
    born = rng.random(len(nhs)) < p
    born[(origin == ABROAD_ARRIVAL) | (origin == ASYLUM)] = True
    born[origin == BORN] = False
    return born


def draw_dfe_codes(nhs: np.ndarray, rng) -> np.ndarray:
    """DfE ethnicity consistent with the NHS category (Other White splits into Roma and
    Traveller codes now and then; a few pupils' ethnicity is refused or not obtained)."""
    dfe = nhs.astype(np.int8).copy()
    other_white = nhs == NHS["C"]
    u = rng.random(len(nhs))
    dfe[other_white & (u < 0.08)] = DFE_CODES.index("WROM")
    dfe[other_white & (u >= 0.08) & (u < 0.10)] = DFE_CODES.index("WIRT")
    v = rng.random(len(nhs))
    dfe[v < 0.008] = DFE_CODES.index("REFU")
    dfe[(v >= 0.008) & (v < 0.015)] = DFE_CODES.index("NOBT")
    return dfe


def draw_first_languages(nhs: np.ndarray, born_abroad: np.ndarray, origin: np.ndarray, rng) -> np.ndarray:
    n = len(nhs)
    codes = np.array(NHS_ETHNIC_CODES)[nhs]
    p_abroad = np.array([NON_ENGLISH_BORN_ABROAD[c] for c in NHS_ETHNIC_CODES])
    p_uk = np.array([NON_ENGLISH_UK_BORN.get(c, 0.0) for c in NHS_ETHNIC_CODES])
    p_other = np.where(born_abroad, p_abroad[nhs], p_uk[nhs])
    non_english = rng.random(n) < p_other
    lang = np.full(n, LANG["ENG"], dtype=np.int8)
    lang[non_english] = LANG["OTH"]
    for code in NHS_ETHNIC_CODES:
        for table, mask in ((SPECIFIC_LANGUAGES, non_english & (codes == code) & (origin != ASYLUM)),
                            (ASYLUM_LANGUAGES, (codes == code) & (origin == ASYLUM))):
            if code in table and mask.any():
                names, probs = table[code]
                lang[mask] = np.array([LANG[x] for x in names], dtype=np.int8)[
                    rng.choice(len(names), mask.sum(), p=probs)]
    u = rng.random(n)
    lang[(lang == LANG["ENG"]) & (u < 0.03)] = LANG["ENB"]
    lang[(lang == LANG["OTH"]) & (u < 0.05)] = LANG["OTB"]
    lang[u > 0.994] = LANG["NOBT"]
    lang[(u > 0.990) & (u <= 0.994)] = LANG["REFU"]
    return lang


def draw_recorded_ethnicity(nhs: np.ndarray, recent_arrival: np.ndarray, rates: DemoRates, rng) -> np.ndarray:
    """What the GP record holds: the true code, 'Z' (not stated) or nothing."""
    factor = np.where(recent_arrival, 1.6, 1.0)
    u = rng.random(len(nhs))
    recorded = nhs.astype(np.int8).copy()
    recorded[u < rates.stated_ethnicity_z * factor] = RECORDED_Z
    blank = (u >= rates.stated_ethnicity_z * factor) & (u < (rates.stated_ethnicity_z + rates.stated_ethnicity_blank) * factor)
    recorded[blank] = RECORDED_BLANK
    return recorded


# --- the base population ----------------------------------------------------------------

def draw_initial_population(frame: Frame, scale: float, start, rates: DemoRates,
                            rng: np.random.Generator) -> tuple[People, np.ndarray]:
    """Residents on the base date: ONS MYE counts x scale, integerised at random.

    Returns the people and the true (lsoa, sex, age 0..90+) counts they were drawn from.
    """
    counts = stochastic_round(frame.mye * scale, rng)
    cell = np.repeat(np.arange(counts.size), counts.ravel())
    lsoa, sex, age = np.unravel_index(cell, counts.shape)
    top = age == 90
    age = age.copy()
    age[top] = 90 + np.minimum(rng.geometric(0.25, top.sum()) - 1, 15)   # 90+ spread to ~105
    people = People()
    idx = people.add(len(cell), sex=sex, dob=draw_dob(age, start, rng), origin=BASE,
                     postcode=draw_postcodes(frame, lsoa, frame.pc_lsoa[:frame.n_in_area], rng))
    for name, values in describe_people(lsoa, age, np.full(len(cell), BASE), frame, rates, rng).items():
        people.cols[name][idx] = values
    people.address_since[idx] = draw_address_since(frame.lsoa_churn[lsoa], age, people.dob[idx], start, rates, rng)
    changed_school = rng.random(len(idx)) < rates.base_pupils_joined_mid_way
    people.school_move_date[idx] = np.where(changed_school, people.address_since[idx], people.dob[idx])
    return people, counts


def draw_address_since(churn, age, dob, start, rates: DemoRates, rng) -> np.ndarray:
    """Date residents moved to their current address (young adults more recently)."""
    mean_years = np.asarray(rates.years_at_address_mean)[churn] * np.select([age < 18, age < 35], [1.0, 0.35], 1.3)
    years = rng.exponential(mean_years)
    since = as_day(start) - days_to_offset(years * DAYS_PER_YEAR)
    return np.maximum(since, dob)


def perturb_published_base(truth: np.ndarray, frame: Frame, rates: DemoRates, rng) -> np.ndarray:
    """The published base estimate: the truth with the errors ONS small-area estimates have.

    An LSOA-wide factor (larger where churn is high), an extra factor for young adults of
    each sex, cell-level noise, then a constraint to (almost) the true LA total.
    """
    churn = frame.lsoa_churn
    n_lsoa = len(churn)
    factor = np.exp(rng.normal(0, np.asarray(rates.base_error_sd)[churn]))[:, None, None] * np.ones((1, 2, 91))
    young = np.zeros(91, dtype=bool)
    young[18:40] = True
    young_factor = np.exp(rng.normal(0, np.asarray(rates.base_young_adult_error_sd)[churn][:, None], (n_lsoa, 2)))
    factor[:, :, young] *= young_factor[:, :, None]
    factor *= np.exp(rng.normal(0, rates.base_cell_error_sd, factor.shape))
    published = truth * factor
    published *= truth.sum() * np.exp(rng.normal(0, rates.base_la_error_sd)) / max(published.sum(), 1)
    return stochastic_round(published, rng)


# --- one simulation step -----------------------------------------------------------------

def simulate_period(people: People, frame: Frame, rates: DemoRates, rng: np.random.Generator,
                    t0, t1, log: EventLog, asylum_per_quarter: np.ndarray) -> PeriodEvents:
    """Deaths, moves, births and arrivals between t0 (exclusive) and t1 (inclusive).

    `asylum_per_quarter` holds the expected new placements per quarter for each LSOA.
    """
    dt_years = years_between(t0, t1)
    residents = people.residents()
    age = age_on(people.dob[residents], t0)
    lsoa = frame.pc_lsoa[people.postcode[residents]]
    died, emigrated, left_uk, moved = draw_exits_and_moves(people, residents, age, lsoa, frame, rates, rng, dt_years)

    record_exits(people, frame, rates, rng, t0, t1, log, died, emigrated, left_uk)
    move_within_district(people, frame, rates, rng, t0, t1, log, moved)
    born = give_births(people, residents, age, np.concatenate([died, emigrated, left_uk]), frame, rates, rng, t0, t1, log)
    pop_by_lsoa = np.bincount(lsoa, minlength=frame.n_lsoas)
    arrived = np.concatenate([
        add_arrivals(people, pop_by_lsoa, UK_ARRIVAL, frame, rates, rng, t0, t1, log),
        add_arrivals(people, pop_by_lsoa, ABROAD_ARRIVAL, frame, rates, rng, t0, t1, log),
        place_asylum_seekers(people, asylum_per_quarter * dt_years * 4, frame, rates, rng, t0, t1, log),
    ])
    return PeriodEvents(died=died, emigrated=emigrated, left_uk=left_uk, moved=moved, born=born, arrived=arrived)


def annual_death_probability(age: np.ndarray, sex: np.ndarray, dep: np.ndarray, rates: DemoRates) -> np.ndarray:
    q = np.maximum(rates.gompertz_a * np.exp(rates.gompertz_b * age), 0.0002)
    q = np.where(age == 0, rates.infant_mortality, q)
    q = q * np.where(sex == 0, rates.male_mortality_ratio, 1 / rates.male_mortality_ratio ** 0.5)
    q = q * (1 + rates.deprivation_mortality_gradient * dep)
    return np.minimum(q, 0.6)


def draw_exits_and_moves(people, residents, age, lsoa, frame, rates, rng, dt_years):
    """Competing risks for each resident: death, emigration, leaving for the UK, moving."""
    churn = frame.lsoa_churn[lsoa]
    mobility = mobility_by_age(frame)[np.minimum(age, 100)] * people.mobility[residents]
    hazards = np.column_stack([
        -np.log1p(-annual_death_probability(age, people.sex[residents], frame.lsoa_dep[lsoa], rates)),
        np.asarray(rates.emigration)[churn] * mobility,
        np.asarray(rates.out_uk)[churn] * mobility,
        np.asarray(rates.internal_move)[churn] * mobility,
    ])
    total = hazards.sum(axis=1)
    happens = rng.random(len(residents)) < -np.expm1(-total * dt_years)
    which = draw_categorical(hazards[happens], rng)
    chosen = residents[happens]
    return tuple(chosen[which == k] for k in range(4))


def record_exits(people, frame, rates, rng, t0, t1, log, died, emigrated, left_uk) -> None:
    for kind, idx, status in (("death", died, DEAD), ("emigration", emigrated, EMIGRATED), ("out_uk", left_uk, LEFT_UK)):
        dates = random_days_between(rng, t0, t1, len(idx))
        log.record(kind, dates, frame.pc_lsoa[people.postcode[idx]], people.sex[idx], age_on(people.dob[idx], t1))
        people.status[idx] = status
        people.status_date[idx] = dates
    # A few who move just outside stay with their practice and give it their new address.
    keep = left_uk[rng.random(len(left_uk)) < rates.keep_practice_on_leaving]
    people.status[keep] = OUTSIDE
    people.postcode[keep] = rng.integers(frame.n_in_area, len(frame.pc_code), len(keep))


def move_within_district(people, frame, rates, rng, t0, t1, log, moved) -> None:
    """New address: mostly in the same MSOA, otherwise anywhere by household weight."""
    old = people.postcode[moved]
    local = rng.random(len(moved)) < rates.same_msoa_move_share
    new = np.empty(len(moved), dtype=np.int32)
    new[local] = draw_postcodes(frame, frame.pc_msoa[old[local]], frame.pc_msoa[:frame.n_in_area], rng)
    new[~local] = draw_postcodes(frame, np.zeros((~local).sum(), dtype=int), np.zeros(frame.n_in_area, dtype=int), rng)
    dates = random_days_between(rng, t0, t1, len(moved))
    people.postcode[moved] = new
    people.address_since[moved] = dates
    old_lsoa, new_lsoa = frame.pc_lsoa[old], frame.pc_lsoa[new]
    crossed = old_lsoa != new_lsoa
    sex, age = people.sex[moved], age_on(people.dob[moved], t1)
    log.record("move_out", dates[crossed], old_lsoa[crossed], sex[crossed], age[crossed])
    log.record("move_in", dates[crossed], new_lsoa[crossed], sex[crossed], age[crossed])
    log.record("move_within", dates[~crossed], new_lsoa[~crossed], sex[~crossed], age[~crossed])


def give_births(people, residents, age, exited, frame, rates, rng, t0, t1, log) -> np.ndarray:
    """Births to resident women by age-specific fertility; babies take their mother's address."""
    women = (people.sex[residents] == 1) & (age >= 15) & (age < 50) & ~np.isin(residents, exited)
    mothers = residents[women]
    asfr = np.asarray(rates.asfr)[(age[women] - 15) // 5]
    mothers = mothers[rng.random(len(mothers)) < -np.expm1(-asfr * years_between(t0, t1))]
    n = len(mothers)
    dob = random_days_between(rng, t0, t1, n)
    sex = (rng.random(n) >= rates.male_birth_share).astype(np.int8)
    lsoa = frame.pc_lsoa[people.postcode[mothers]]
    traits = describe_people(lsoa, np.zeros(n, dtype=int), np.full(n, BORN), frame, rates, rng)
    # Babies take their mother's ethnicity, apart from some of mixed parentage.
    group, nhs = people.ethnic_group[mothers].copy(), people.nhs_ethnic[mothers].copy()
    mixed = rng.random(n) < np.where(group == WHITE, 0.06, 0.12)
    group[mixed] = MIXED
    nhs[mixed] = _draw_codes("DEFG", (0.33, 0.12, 0.30, 0.25), mixed.sum(), rng)
    keep_language = (people.language[mothers] != LANG["ENG"]) & (rng.random(n) < 0.7)
    language = np.where(keep_language, people.language[mothers], traits["language"])
    traits.update(ethnic_group=group, nhs_ethnic=nhs, dfe_ethnic=draw_dfe_codes(nhs, rng), language=language,
                  recorded_ethnic=draw_recorded_ethnicity(nhs, np.zeros(n, dtype=bool), rates, rng))
    babies = people.add(n, sex=sex, dob=dob, origin=BORN, postcode=people.postcode[mothers],
                        address_since=dob, school_move_date=dob, **traits)
    log.record("birth", dob, lsoa, sex, np.zeros(n))
    return babies


ARRIVAL_AGE_PROFILES = {
    # weights per single year of age 0..79 for arrivals
    UK_ARRIVAL: np.concatenate([np.full(16, 0.7), np.full(2, 0.5), np.full(4, 2.5), np.full(8, 3.0),
                                np.full(10, 1.8), np.full(10, 0.8), np.full(15, 0.4), np.full(15, 0.2)]),
    ABROAD_ARRIVAL: np.concatenate([np.full(16, 0.5), np.full(2, 0.5), np.full(7, 3.0), np.full(10, 3.5),
                                    np.full(10, 1.2), np.full(20, 0.3), np.full(15, 0.05)]),
}


def add_arrivals(people, pop_by_lsoa, origin, frame, rates, rng, t0, t1, log) -> np.ndarray:
    """Newcomers from the rest of the UK or from abroad, in proportion to LSOA size and churn."""
    rate = np.asarray(rates.in_uk if origin == UK_ARRIVAL else rates.in_abroad)[frame.lsoa_churn]
    counts = rng.poisson(pop_by_lsoa * rate * years_between(t0, t1))
    lsoa = np.repeat(np.arange(frame.n_lsoas), counts)
    n = len(lsoa)
    profile = ARRIVAL_AGE_PROFILES[origin]
    age = rng.choice(len(profile), n, p=profile / profile.sum())
    male_share = 0.5 if origin == UK_ARRIVAL else 0.55
    sex = (rng.random(n) >= male_share).astype(np.int8)
    return _add_newcomers(people, lsoa, age, sex, origin, draw_postcodes(frame, lsoa, frame.pc_lsoa[:frame.n_in_area], rng),
                          frame, rates, rng, t0, t1, log, "in_uk" if origin == UK_ARRIVAL else "in_abroad")


def place_asylum_seekers(people, expected, frame, rates, rng, t0, t1, log) -> np.ndarray:
    """Asylum seekers placed in dispersal housing: a handful of postcodes per dispersal LSOA."""
    counts = rng.poisson(expected)
    lsoa = np.repeat(np.arange(frame.n_lsoas), counts)
    n = len(lsoa)
    kind = rng.choice(3, n, p=(0.60, 0.15, 0.25))           # single men, women, children
    age = np.select([kind == 2], [rng.integers(0, 16, n)], rng.integers(18, 41, n))
    sex = np.select([kind == 0, kind == 1], [0, 1], rng.integers(0, 2, n)).astype(np.int8)
    postcode = dispersal_postcodes(frame)[lsoa, rng.integers(0, 3, n)]
    return _add_newcomers(people, lsoa, age, sex, ASYLUM, postcode, frame, rates, rng, t0, t1, log, "asylum")


def dispersal_postcodes(frame: Frame) -> np.ndarray:
    """Three fixed postcodes per LSOA (the LSOA's heaviest): where dispersal housing is."""
    table = np.zeros((frame.n_lsoas, 3), dtype=np.int32)
    pc_lsoa = frame.pc_lsoa[:frame.n_in_area]
    order = np.lexsort((-frame.pc_weight[:frame.n_in_area], pc_lsoa))
    starts = np.searchsorted(pc_lsoa[order], np.arange(frame.n_lsoas))
    ends = np.searchsorted(pc_lsoa[order], np.arange(frame.n_lsoas), side="right")
    for k in range(3):
        table[:, k] = order[np.minimum(starts + k, ends - 1)]
    return table


def _add_newcomers(people, lsoa, age, sex, origin, postcode, frame, rates, rng, t0, t1, log, kind) -> np.ndarray:
    n = len(lsoa)
    dates = random_days_between(rng, t0, t1, n)
    dob = draw_dob(age, dates, rng) if n else np.empty(0, "M8[D]")
    traits = describe_people(lsoa, age, np.full(n, origin), frame, rates, rng)
    idx = people.add(n, sex=sex, dob=dob, origin=origin, postcode=postcode, address_since=dates,
                     school_move_date=dates, **traits)
    log.record(kind, dates, lsoa, sex, age)
    return idx
