"""The GP patient register and how it drifts from the true population.

Each person carries a registration (practice, the postcode the practice holds, date,
Flag 4) and up to three pending actions with due dates: a registration, a deregistration
and an address update. Life events schedule actions with realistic lags; the register
applies whatever has fallen due at each checkpoint, so a snapshot lags the truth:

* newborns appear weeks after birth; arrivals register late or never (young men least);
* deaths leave within weeks; a few emigrants tell the practice, most do not;
* people leaving for the rest of the UK leave the list when they re-register elsewhere
  (a transfer): some promptly, some a year later, some never -> "ghost" patients;
* movers within the district give the practice their new address late or never;
* ghosts drift off slowly (found on re-registering elsewhere, returned post) and in bursts
  when a practice sweeps its list (which also wrongly removes a few residents).

Ghosts are also seeded before the base date, so the first extract is already inflated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.demo.frame import Frame
from pipeline.demo.population import (ABROAD_ARRIVAL, DEAD, EMIGRATED, GHOST, LEFT_UK, OUTSIDE,
                                      OUTSIDE_PATIENT, RESIDENT, UK_ARRIVAL, People, PeriodEvents,
                                      describe_people, draw_categorical, draw_dob, draw_postcodes)
from pipeline.demo.rates import DemoRates
from pipeline.demo.timeline import DAY, NEVER, age_on, as_day, days_to_offset, random_days_between

REASONS = ("birth", "from_abroad", "transfer_in", "other", "death", "emigration", "transfer", "list_cleaning")
R = {name: i for i, name in enumerate(REASONS)}
REGISTRATION, DEREGISTRATION = 0, 1
GONE = (DEAD, EMIGRATED, LEFT_UK)   # statuses whose registrations are ghosts


@dataclass
class MovementLog:
    """Register events (not true moves), written to gp_movements.csv."""

    parts: list = field(default_factory=list)

    def record(self, people: People, idx: np.ndarray, event: int, reasons, dates) -> None:
        if len(idx) == 0:
            return
        self.parts.append({
            "person": idx.astype(np.int64),
            "practice": people.reg_practice[idx].astype(np.int16),
            "postcode": people.reg_postcode[idx].astype(np.int32),
            "date": np.broadcast_to(np.asarray(dates, dtype="M8[D]"), idx.shape).copy(),
            "event": np.full(len(idx), event, dtype=np.int8),
            "reason": np.broadcast_to(np.asarray(reasons, dtype=np.int8), idx.shape).copy(),
        })

    def arrays(self) -> dict[str, np.ndarray]:
        keys = ("person", "practice", "postcode", "date", "event", "reason")
        if not self.parts:
            return {k: np.empty(0) for k in keys}
        out = {k: np.concatenate([p[k] for p in self.parts]) for k in keys}
        order = np.lexsort((out["event"], out["person"], out["date"]))
        return {k: v[order] for k, v in out.items()}


@dataclass
class CleaningSweep:
    practice: int
    date: np.datetime64
    ghost_share: float
    removed: int = 0


def lag_days(rng, n: int, minimum: float, mean_extra: float) -> np.ndarray:
    return days_to_offset(minimum + rng.exponential(mean_extra, n))


def choose_practices(frame: Frame, postcode: np.ndarray, rng) -> np.ndarray:
    """A practice near the person's ward (anyone outside the area picks a ward at random)."""
    ward = frame.pc_ward[postcode]
    outside = ward < 0
    ward = ward.copy()
    ward[outside] = rng.integers(0, frame.n_wards, outside.sum())
    return draw_categorical(frame.ward_practice_p[ward], rng).astype(np.int16)


def register_people(people: People, idx, dates, reasons, frame: Frame, rng, log: MovementLog | None) -> None:
    """Add people to practice lists at their current address."""
    people.reg_practice[idx] = choose_practices(frame, people.postcode[idx], rng)
    people.reg_postcode[idx] = people.postcode[idx]
    people.reg_date[idx] = dates
    people.reg_from_abroad[idx] = np.asarray(reasons) == R["from_abroad"]
    people.reg_due[idx] = NEVER
    if log is not None:
        log.record(people, idx, REGISTRATION, reasons, dates)


def deregister_people(people: People, idx, dates, reasons, log: MovementLog | None) -> None:
    if log is not None:
        log.record(people, idx, DEREGISTRATION, reasons, dates)
    people.reg_practice[idx] = -1
    people.dereg_due[idx] = NEVER
    people.addr_due[idx] = NEVER


def is_young_man(people: People, idx, on) -> np.ndarray:
    age = age_on(people.dob[idx], on)
    return (people.sex[idx] == 0) & (age >= 18) & (age < 35)


# --- the register at the base date ---------------------------------------------------------

def seed_register_at_base(people: People, frame: Frame, rates: DemoRates, rng, start) -> None:
    """Register the base residents as the list stood on the base date (lags included)."""
    start = as_day(start)
    idx = people.residents()
    n = len(idx)
    age = age_on(people.dob[idx], start)
    churn = frame.lsoa_churn[frame.pc_lsoa[people.postcode[idx]]]

    young_adult = (age >= 18) & (age < 35)
    p_never = np.asarray(rates.p_unregistered_base_young_adults)[churn] * np.where(people.sex[idx] == 0, 1.0, 0.5)
    p_never = np.where(young_adult, p_never, rates.p_unregistered_base_other)
    unregistered = rng.random(n) < p_never
    pending = unregistered & (rng.random(n) < 0.4)
    people.reg_due[idx[pending]] = start + lag_days(rng, pending.sum(), 14, 90)
    people.reg_reason[idx[pending]] = np.where(people.born_abroad[idx[pending]], R["from_abroad"], R["transfer_in"])

    birth_due = people.dob[idx] + lag_days(rng, n, *rates.birth_reg_lag_days)
    baby_pending = ~unregistered & (birth_due > start)
    people.reg_due[idx[baby_pending]] = birth_due[baby_pending]
    people.reg_reason[idx[baby_pending]] = R["birth"]

    now = idx[~unregistered & ~baby_pending]
    since = people.address_since[now] + lag_days(rng, len(now), 0, 40)
    reg_date = np.minimum(np.maximum(since, birth_due[~unregistered & ~baby_pending]), start)
    reasons = np.where(people.born_abroad[now] & (rng.random(len(now)) < 0.5), R["from_abroad"], R["other"])
    register_people(people, now, reg_date, reasons, frame, rng, log=None)
    seed_late_address_updates(people, now, frame, rates, rng, start)


def seed_late_address_updates(people: People, registered, frame, rates, rng, start) -> None:
    """Half of those who moved in the last year moved within the district; of them, those
    whose practice has not caught up still show their previous address."""
    recent = registered[(people.address_since[registered] > start - 365 * DAY) & (rng.random(len(registered)) < 0.5)]
    due = people.address_since[recent] + address_update_lags(rng, len(recent), rates)
    late = recent[due > start]
    old = people.postcode[late]
    previous = draw_postcodes(frame, frame.pc_msoa[old], frame.pc_msoa[:frame.n_in_area], rng)
    people.reg_postcode[late] = previous
    people.addr_due[late] = due[due > start]
    people.reg_practice[late] = choose_practices(frame, previous, rng)


def address_update_lags(rng, n: int, rates: DemoRates) -> np.ndarray:
    kind = rng.choice(3, n, p=rates.address_update)
    (p_min, p_mean), (l_min, l_mean) = rates.address_update_lag_days
    days = np.where(kind == 0, p_min + rng.exponential(p_mean, n), l_min + rng.exponential(l_mean, n))
    days = np.where(kind == 2, 1e6, days)      # never (until they next need the practice)
    return days_to_offset(np.minimum(days, 1e6))


def seed_ghost_patients(people: People, frame: Frame, rates: DemoRates, rng, start) -> np.ndarray:
    """People who left before the base date but are still on a list, so that the base-date
    list of each LSOA exceeds its residents by the target inflation of its churn level
    (ages 20-39 over-represented, as address checks find)."""
    start = as_day(start)
    residents = np.bincount(frame.pc_lsoa[people.postcode[people.residents()]], minlength=frame.n_lsoas)
    on_list = people.reg_practice >= 0
    registered = np.bincount(frame.pc_lsoa[people.reg_postcode[on_list]], minlength=frame.n_lsoas)
    low_high = np.asarray(rates.base_inflation)[frame.lsoa_churn]
    target = rng.uniform(low_high[:, 0], low_high[:, 1])
    n_ghosts = np.maximum(0, np.round(target * residents - (registered - residents))).astype(int)

    lsoa = np.repeat(np.arange(frame.n_lsoas), n_ghosts)
    n = len(lsoa)
    age_weight = np.repeat(rates.ghost_age_weights, (20, 20, 20, 31))
    age = draw_categorical(frame.mye[lsoa].sum(axis=1) * age_weight[None, :] + 0.01, rng)
    sex = (rng.random(n) < 0.45).astype(np.int8)
    emigrated = rng.random(n) < 0.3
    dob = draw_dob(age, start, rng)
    left = np.maximum(start - lag_days(rng, n, 1, 600), np.minimum(dob + 30 * DAY, start))
    reg_date = np.minimum(np.maximum(left - lag_days(rng, n, 30, 3 * 365), dob + 14 * DAY), left)
    traits = describe_people(lsoa, age, np.where(emigrated, ABROAD_ARRIVAL, UK_ARRIVAL), frame, rates, rng)
    postcode = draw_postcodes(frame, lsoa, frame.pc_lsoa[:frame.n_in_area], rng)
    idx = people.add(n, sex=sex, dob=dob, origin=GHOST, postcode=postcode,
                     status=np.where(emigrated, EMIGRATED, LEFT_UK), status_date=left, address_since=reg_date,
                     **traits)
    reasons = np.where(people.born_abroad[idx] & (rng.random(n) < 0.6), R["from_abroad"], R["other"])
    register_people(people, idx, reg_date, reasons, frame, rng, log=None)
    return idx


def seed_outside_patients(people: People, frame: Frame, rates: DemoRates, rng, start) -> np.ndarray:
    """People living just outside the area who are registered with its practices."""
    n = int(round(rates.outside_patient_share * (people.reg_practice >= 0).sum()))
    ages = frame.mye.sum(axis=(0, 1))
    age = rng.choice(91, n, p=ages / ages.sum())
    postcode = rng.integers(frame.n_in_area, len(frame.pc_code), n).astype(np.int32)
    lsoa = rng.integers(0, frame.n_lsoas, n)
    dob = draw_dob(age, start, rng)
    reg_date = np.minimum(np.maximum(as_day(start) - lag_days(rng, n, 30, 6 * 365), dob + 14 * DAY), as_day(start))
    traits = describe_people(lsoa, age, np.full(n, UK_ARRIVAL), frame, rates, rng)
    idx = people.add(n, sex=rng.integers(0, 2, n).astype(np.int8), dob=dob, origin=OUTSIDE_PATIENT,
                     postcode=postcode, status=OUTSIDE, address_since=reg_date, **traits)
    register_people(people, idx, reg_date, np.full(n, R["other"]), frame, rng, log=None)
    return idx


# --- scheduling register actions after life events ----------------------------------------

def schedule_register_actions(people: People, ev: PeriodEvents, rates: DemoRates, rng, t1) -> None:
    """Turn one step's life events into due dates for the register."""
    for idx in (ev.died, ev.emigrated, ev.left_uk):
        people.reg_due[idx] = NEVER          # nobody registers here after leaving
        people.addr_due[idx] = NEVER
    on_list = lambda idx: idx[people.reg_practice[idx] >= 0]  # noqa: E731

    dead = on_list(ev.died)
    people.dereg_due[dead] = people.status_date[dead] + lag_days(rng, len(dead), *rates.death_dereg_lag_days)
    people.dereg_reason[dead] = R["death"]

    emigrants = on_list(ev.emigrated)
    tell = emigrants[rng.random(len(emigrants)) < rates.emigration_dereg]
    people.dereg_due[tell] = people.status_date[tell] + lag_days(rng, len(tell), 0, 20)
    people.dereg_reason[tell] = R["emigration"]

    schedule_transfers_out(people, on_list(ev.left_uk[people.status[ev.left_uk] == LEFT_UK]), rates, rng, t1)
    keepers = on_list(ev.left_uk[people.status[ev.left_uk] == OUTSIDE])
    people.addr_due[keepers] = people.status_date[keepers] + lag_days(rng, len(keepers), 7, 30)

    movers = on_list(ev.moved)
    people.addr_due[movers] = people.address_since[movers] + address_update_lags(rng, len(movers), rates)

    babies = ev.born
    lag = lag_days(rng, len(babies), *rates.birth_reg_lag_days)
    late = rng.random(len(babies)) < rates.late_birth_registration
    lag[late] += lag_days(rng, late.sum(), 30, 150)
    people.reg_due[babies] = people.dob[babies] + lag
    people.reg_reason[babies] = R["birth"]

    schedule_arrival_registrations(people, ev.arrived, rates, rng, t1)


def schedule_transfers_out(people: People, idx, rates: DemoRates, rng, t1) -> None:
    """People who left for the rest of the UK leave this list when they re-register elsewhere."""
    age = age_on(people.dob[idx], t1)
    young = (age >= 18) & (age < 35)
    u = rng.random(len(idx))
    prompt = np.where(young, u < rates.transfer_out_young[0], u < rates.transfer_out[0])
    late_cut = np.where(young, sum(rates.transfer_out_young[:2]), sum(rates.transfer_out[:2]))
    late = ~prompt & (u < late_cut)
    (p_min, p_mean), (l_min, l_mean) = rates.transfer_lag_days
    for mask, (lo, mean) in ((prompt, (p_min, p_mean)), (late, (l_min, l_mean))):
        chosen = idx[mask]
        people.dereg_due[chosen] = people.status_date[chosen] + lag_days(rng, len(chosen), lo, mean)
        people.dereg_reason[chosen] = R["transfer"]


def schedule_arrival_registrations(people: People, idx, rates: DemoRates, rng, t1) -> None:
    """Arrivals register after a lag, some never; young men register least and latest."""
    origin = people.origin[idx]
    young_men = is_young_man(people, idx, t1)
    children = age_on(people.dob[idx], t1) < 16
    kind = np.select([origin == UK_ARRIVAL, origin == ABROAD_ARRIVAL], [0, 1], 2)
    p_never = np.array([rates.p_never_register_uk, rates.p_never_register_abroad,
                        rates.p_never_register_asylum])[kind, np.where(young_men, 0, 1)]
    p_never = np.where(children, np.minimum(p_never, rates.p_never_register_children), p_never)
    registers = rng.random(len(idx)) >= p_never
    lags = np.array([rates.arrival_reg_lag_days, rates.abroad_reg_lag_days, rates.asylum_reg_lag_days])
    lag_min, lag_mean = lags[kind, 0], lags[kind, 1]
    lag_mean = lag_mean * np.where(young_men, rates.young_men_lag_factor, 1.0)
    lag = days_to_offset(lag_min + rng.exponential(1.0, len(idx)) * lag_mean)
    chosen = idx[registers]
    people.reg_due[chosen] = people.address_since[chosen] + lag[registers]
    people.reg_reason[chosen] = np.where(origin[registers] == UK_ARRIVAL, R["transfer_in"], R["from_abroad"])


# --- applying what has fallen due -------------------------------------------------------------

def apply_due_register_actions(people: People, frame: Frame, rng, t, log: MovementLog) -> None:
    """Deregistrations, address updates and registrations due on or before t."""
    t = as_day(t)
    on_list = people.reg_practice >= 0
    leaving = np.flatnonzero(on_list & (people.dereg_due <= t))
    deregister_people(people, leaving, people.dereg_due[leaving], people.dereg_reason[leaving], log)

    updating = np.flatnonzero((people.reg_practice >= 0) & (people.addr_due <= t))
    people.reg_postcode[updating] = people.postcode[updating]
    people.addr_due[updating] = NEVER

    joining = np.flatnonzero((people.reg_practice < 0) & (people.reg_due <= t))
    register_people(people, joining, people.reg_due[joining], people.reg_reason[joining], frame, rng, log)


def ghost_mask(people: People) -> np.ndarray:
    return (people.reg_practice >= 0) & np.isin(people.status, GONE)


def remove_ghosts_gradually(people: People, rates: DemoRates, rng, t0, t1, log: MovementLog) -> None:
    """Ghosts found out between sweeps: they re-register elsewhere, or post comes back."""
    idx = np.flatnonzero(ghost_mask(people) & (people.dereg_due == NEVER))
    years = float((as_day(t1) - as_day(t0)) / DAY) / 365.25
    u = rng.random(len(idx))
    p_transfer = -np.expm1(-rates.ghost_transfer_rate * years)
    p_other = -np.expm1(-rates.ghost_other_removal_rate * years)
    for mask, reason in ((u < p_transfer, "transfer"), ((u >= p_transfer) & (u < p_transfer + p_other), "other")):
        chosen = idx[mask]
        deregister_people(people, chosen, random_days_between(rng, t0, t1, len(chosen)), R[reason], log)


def plan_list_cleaning(people: People, frame: Frame, rates: DemoRates, rng, extract_dates) -> list[CleaningSweep]:
    """A few practices (at least one) sweep their lists once, each in a random quarter."""
    sizes = np.bincount(people.reg_practice[people.reg_practice >= 0], minlength=len(frame.practice_code))
    eligible = np.flatnonzero(sizes >= 0.01 * sizes.sum())
    n = max(1, int(round(rates.cleaning_practice_share * len(eligible))))
    chosen = np.sort(rng.choice(eligible, n, replace=False))
    sweeps = []
    for practice in chosen:
        q = int(rng.integers(1, len(extract_dates)))
        date = random_days_between(rng, extract_dates[q - 1], extract_dates[q], 1)[0]
        sweeps.append(CleaningSweep(int(practice), date, float(rng.uniform(*rates.cleaning_ghost_removal))))
    return sweeps


def sweep_practice_list(people: People, sweep: CleaningSweep, rates: DemoRates, rng, log: MovementLog) -> None:
    """A list-cleaning exercise: most ghosts go, and a few residents who did not reply."""
    at_practice = people.reg_practice == sweep.practice
    ghosts = np.flatnonzero(at_practice & np.isin(people.status, GONE))
    ghosts = ghosts[rng.random(len(ghosts)) < sweep.ghost_share]
    residents = np.flatnonzero(at_practice & (people.status == RESIDENT))
    wrongly = residents[rng.random(len(residents)) < rates.cleaning_resident_removal]
    removed = np.sort(np.concatenate([ghosts, wrongly]))
    deregister_people(people, removed, sweep.date, R["list_cleaning"], log)
    sweep.removed = len(removed)
    back = wrongly[rng.random(len(wrongly)) < rates.cleaning_reregister]
    people.reg_due[back] = sweep.date + lag_days(rng, len(back), 30, 90)
    people.reg_reason[back] = R["other"]


def update_register(people: People, frame: Frame, rates: DemoRates, rng, t0, t1,
                    sweeps: list[CleaningSweep], log: MovementLog) -> None:
    """Everything the register does between two checkpoints, in date order of kind."""
    remove_ghosts_gradually(people, rates, rng, t0, t1, log)
    for sweep in sweeps:
        if as_day(t0) < sweep.date <= as_day(t1):
            apply_due_register_actions(people, frame, rng, sweep.date, log)
            sweep_practice_list(people, sweep, rates, rng, log)
    apply_due_register_actions(people, frame, rng, t1, log)


def register_by_lsoa(people: People, frame: Frame) -> dict[str, np.ndarray]:
    """Registered (by the postcode the practice holds), residents and ghosts per LSOA."""
    on_list = np.flatnonzero(people.reg_practice >= 0)
    reg_lsoa = frame.pc_lsoa[people.reg_postcode[on_list]]
    inside = reg_lsoa >= 0
    ghosts = np.isin(people.status[on_list], GONE) & inside
    res = people.residents()
    return {
        "registered": np.bincount(reg_lsoa[inside], minlength=frame.n_lsoas),
        "resident": np.bincount(frame.pc_lsoa[people.postcode[res]], minlength=frame.n_lsoas),
        "ghosts": np.bincount(reg_lsoa[ghosts], minlength=frame.n_lsoas),
    }
