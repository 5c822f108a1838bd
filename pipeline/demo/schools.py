"""Schools and the termly school census.

Invented primary, secondary and special schools (6-digit URNs starting with 1) sit at
postcodes of the district. Children choose a school by distance and by a per-school
"affinity" for each ethnic group (catchment plus some choice), which clusters groups
between schools. Places are taken up lazily at each census: a child whose school is
missing or of the wrong phase gets one, with entry at the normal point (Reception or
Year 7 in September) or, for a child who arrived or moved mid-way, a few weeks after
the move (a mobile pupil). A child who moves within the district changes school now
and then; one who leaves the district leaves the roll.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from pipeline.demo.frame import Frame
from pipeline.demo.population import ASYLUM, RESIDENT, People, draw_categorical
from pipeline.demo.rates import TRAFFORD_POPULATION, DemoRates
from pipeline.demo.timeline import age_on, as_day, days_to_offset

PHASES = ("primary", "secondary", "special")
PRIMARY, SECONDARY, SPECIAL = range(3)
NAME_STEMS = (
    "Oakfield", "Moorside", "Brookway", "Willow Bank", "Ashbourne", "Elmridge", "Fernlea", "Hollins",
    "Kingsway", "Larchwood", "Meadowbank", "Norbury", "Parkfield", "Riverside", "Seymour Park",
    "Templeton", "Victoria Park", "Westbrook", "Beechwood", "Cedar Mount", "Delph Lane", "Eastfield",
    "Firswood", "Greenbank", "Hawthorn", "Highfield", "Lime Grove", "Marlborough", "Newlands",
    "Orchard", "Poplars", "Queensway", "Rosedale", "Springfield", "Thornhill", "Woodlands",
    "Alder Road", "Birchfields", "Cross Lane", "Derwent", "Egerton", "Fairway", "Glebelands",
    "Heyes Lane", "Irwell", "Junction", "Kenmore", "Linden", "Mersey Vale", "Nursery Lane",
    "Old Hall", "Pinewood", "Redbrook", "Sandy Lane", "Tatton", "Usher Park", "Vale", "Whitecroft",
    "Yew Tree", "Acre Hall", "Bollin", "Carrington", "Dunham", "Flixton Road", "Gaskell", "Holly Bank",
)
SAINTS = ("Mary", "Anne", "Hugh", "Joseph", "Margaret", "Matthew", "Michael", "Peter", "Paul",
          "Vincent", "Alphonsus", "Hilda", "John", "Luke", "Monica", "Teresa")


@dataclass
class Schools:
    urn: np.ndarray
    name: np.ndarray
    phase: np.ndarray          # index into PHASES
    xy: np.ndarray             # km, as frame.pc_xy
    affinity: np.ndarray       # (school, ethnic group) attraction


def make_schools(frame: Frame, n_residents: int, rates: DemoRates, rng) -> Schools:
    """Invent schools in proportion to the district's population."""
    share = n_residents / TRAFFORD_POPULATION
    counts = (max(2, round(rates.primaries_at_scale_1 * share)), max(1, round(rates.secondaries_at_scale_1 * share)),
              max(1, round(rates.specials_at_scale_1 * share)))
    phase = np.repeat(np.arange(3), counts)
    n = len(phase)
    weights = frame.pc_weight[:frame.n_in_area]
    postcode = rng.choice(frame.n_in_area, n, p=weights / weights.sum())
    affinity = np.exp(rng.normal(0, rates.school_affinity_sd, (n, 5)))
    affinity[:, 0] = 1.0                           # relative to White
    urn = 100000 + rng.choice(99999, n, replace=False)
    return Schools(urn=urn, name=np.array(name_schools(phase, rng)), phase=phase,
                   xy=frame.pc_xy[postcode], affinity=affinity)


def name_schools(phase: np.ndarray, rng) -> list[str]:
    """Invented, unique, plausible names ("Oakfield Primary School", "St Anne's RC Primary
    School", "Moorside High School")."""
    stems = [list(rng.permutation(NAME_STEMS)) for _ in PHASES]     # a shuffled list per phase
    used = [0] * len(PHASES)
    names, saints_used = [], 0
    for p in phase:
        k = used[p]
        used[p] += 1
        stem = stems[p][k % len(NAME_STEMS)] + (f" {k // len(NAME_STEMS) + 1}" if k >= len(NAME_STEMS) else "")
        if p == PRIMARY and saints_used < len(SAINTS) and rng.random() < 0.25:
            names.append(f"St {SAINTS[saints_used]}'s {rng.choice(['RC', 'CofE'])} Primary School")
            saints_used += 1
        elif p == PRIMARY:
            names.append(f"{stem} {rng.choice(['Primary', 'Community Primary'], p=[0.7, 0.3])} School")
        elif p == SECONDARY:
            names.append(f"{stem} {rng.choice(['High School', 'Academy', 'Grammar School'], p=[0.6, 0.3, 0.1])}")
        else:
            names.append(f"{stem} School")
    return names


def react_to_moves(people: People, moved: np.ndarray, rates: DemoRates, rng) -> None:
    """Some children who move within the district change school."""
    pupils = moved[people.school[moved] >= 0]
    change = pupils[rng.random(len(pupils)) < rates.change_school_on_move]
    people.school[change] = -1
    people.school_move_date[change] = people.address_since[change]


def take_school_census(people: People, schools: Schools, frame: Frame, rates: DemoRates, rng,
                       census_date: dt.date) -> dict[str, np.ndarray]:
    """Pupils on roll on the census date (state schools in the district)."""
    c = as_day(census_date)
    year = census_date.year if census_date.month >= 9 else census_date.year - 1
    residents = np.flatnonzero(people.status == RESIDENT)
    nc = age_on(people.dob[residents], dt.date(year, 8, 31)) - 4
    children = residents[(nc >= 0) & (nc <= 11)]
    nc = nc[(nc >= 0) & (nc <= 11)]
    meet_new_children(people, children, frame, rates, rng)
    state = ~people.independent[children]
    children, nc = children[state], nc[state]

    needed = np.where(people.special[children], SPECIAL, np.where(nc <= 6, PRIMARY, SECONDARY))
    current = people.school[children]
    needs_place = (current < 0) | (schools.phase[np.maximum(current, 0)] != needed)
    entry_year = np.where(needed == SECONDARY, year - (nc - 7), year - nc)
    normal_entry = september_start(entry_year)
    entry = np.maximum(normal_entry, people.school_move_date[children] + days_to_offset(rng.uniform(5, 30, len(children))))
    ready = needs_place & (entry <= c)
    newcomers = children[ready]
    people.school[newcomers] = choose_schools(people, newcomers, needed[ready], schools, frame, rates, rng)
    people.school_entry[newcomers] = entry[ready]

    on_roll = people.school[children] >= 0
    pupils = children[on_roll]
    nc = nc[on_roll]
    school = people.school[pupils]
    return {"person": pupils, "school": school, "nc_year": nc, "census_date": c}


def september_start(years: np.ndarray) -> np.ndarray:
    """The first day of the school year (5 September) of each year."""
    first_of_year = (np.asarray(years) - 1970).astype("M8[Y]")
    return (first_of_year.astype("M8[M]") + 8).astype("M8[D]") + 4


def meet_new_children(people: People, children: np.ndarray, frame: Frame, rates: DemoRates, rng) -> None:
    """The first time a child is of school age here: independent school? special? FSM?"""
    new = children[people.fsm[children] < 0]
    dep = frame.lsoa_dep[frame.pc_lsoa[people.postcode[new]]]
    lo, hi = rates.independent_share
    asylum = people.origin[new] == ASYLUM
    people.independent[new] = (rng.random(len(new)) < lo + (hi - lo) * (1 - dep)) & ~asylum
    people.special[new] = rng.random(len(new)) < rates.special_school_share
    people.fsm[new] = rng.random(len(new)) < np.clip(0.04 + 0.40 * dep + 0.4 * asylum, 0, 0.95)


def choose_schools(people: People, idx: np.ndarray, phase: np.ndarray, schools: Schools, frame: Frame,
                   rates: DemoRates, rng, block: int = 20_000) -> np.ndarray:
    """A school of the right phase, by distance decay and ethnic-group affinity (in blocks
    of children, so the child x school matrix stays small at any scale)."""
    chosen = np.empty(len(idx), dtype=np.int16)
    primary_km, secondary_km = rates.school_distance_km
    for start in range(0, len(idx), block):
        part = slice(start, start + block)
        home = frame.pc_xy[people.postcode[idx[part]]]
        dist = np.linalg.norm(home[:, None, :] - schools.xy[None, :, :], axis=2)
        decay = np.where(phase[part] == PRIMARY, primary_km, secondary_km)[:, None]
        weight = np.exp(-dist / decay) * schools.affinity[:, people.ethnic_group[idx[part]]].T + 1e-9
        weight *= schools.phase[None, :] == phase[part][:, None]
        chosen[part] = draw_categorical(weight, rng)
    return chosen


NC_YEAR_LABELS = np.array(["R"] + [str(k) for k in range(1, 12)], dtype=object)
