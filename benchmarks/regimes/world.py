"""The simulated district: people, where they live, and the GP register's records of them.

Written from the published facts in facts.py, independently of pipeline/demo. The rules:

* the true population starts as ONS's real mid-2022 single-year estimates for the chosen
  LSOAs (Trafford, pipeline/demo/frame/ read as plain CSV), people placed at real postcodes;
* every area's list starts at a ratio to its residents drawn from the published England
  distribution of list / census (facts.LIST_RATIO_QUANTILES), only partly tied to churn;
  the excess is ghost records, a shortfall is unregistered residents;
* the list stays at that level (steady state) because each area's leavers become ghosts with
  the probability that balances the removals (a monthly hazard plus yearly practice sweeps);
  in the "growing" regime the sweeps stop and inflation grows;
* the population moves month by month (deaths, births, moves out, emigration, moves within,
  arrivals from the UK and abroad), each person's registration following with lags;
* regimes add registrants living outside the district, students with term-time turnover
  and late deregistration, and a published base whose LA-wide error comes from the top of
  the published distribution.

Truth = residents by LSOA x sex x single year of age (and by ward, from their postcode) at the
base date and at every extract date.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import facts as F
from .streams import Streams

FRAME = Path(__file__).resolve().parents[2] / "pipeline" / "demo" / "frame"
EPOCH = np.datetime64("1970-01-01", "D")
NEVER = np.iinfo(np.int32).max
RESIDENT, GONE_UK, GONE_ABROAD, DEAD, OUTSIDE_LIVING = 0, 1, 2, 3, 4
REG_REASONS = ("birth", "from_abroad", "transfer_in", "other")
DEREG_REASONS = ("death", "emigration", "transfer", "list_cleaning", "other")
REGIMES = ("steady", "growing", "outside", "students", "base_tail")
NHS_ETHNIC = np.array(list("ABCDEFGHJKLMNPRSZ"))
NHS_ETHNIC_P = np.array([.72, .01, .05, .01, .01, .01, .01, .03, .04, .01, .02, .01, .02, .01, .01, .01, .02])


@dataclass(frozen=True)
class RegimeSettings:
    regime: str = "steady"
    seed: int = 1
    n_lsoas: int = 40              # whole MSOAs are taken until at least this many LSOAs
    locality: str = "North"        # the Trafford locality the district starts from
    scale: float = 1.0             # share of the real residents simulated
    base_date: str = "2022-06-30"
    first_extract: str = "2022-10-01"
    quarters: int = 8              # extracts after the first (8 = two years)
    overrides: dict = field(default_factory=dict)  # seed of single random components

    def __post_init__(self):
        if self.regime not in REGIMES:
            raise ValueError(f"unknown regime {self.regime!r}; choose one of {', '.join(REGIMES)}")


def to_day(date: str | dt.date) -> int:
    return int((np.datetime64(str(date), "D") - EPOCH).astype(int))


def add_months(day: int, months: int) -> int:
    d = (EPOCH + np.timedelta64(day, "D")).astype(object)
    y, m = divmod(d.month - 1 + months, 12)
    return to_day(dt.date(d.year + y, m + 1, 1))


# ------------------------------------------------------------------------------ geography

@dataclass
class Geography:
    postcodes: pd.DataFrame        # every Trafford postcode: postcode, lsoa, msoa, ward, la, lat, lon, in_district
    lsoas: pd.DataFrame            # district LSOAs: lsoa_code, msoa_code, ward_code (best fit), idx
    practices: pd.DataFrame        # practice_code, ward_code, locality
    district_pc: np.ndarray        # postcode indices in the district
    outside_pc: np.ndarray         # postcode indices elsewhere in the borough
    pc_lsoa: np.ndarray            # postcode -> district LSOA index (-1 outside)
    lsoa_pcs: list                 # district LSOA index -> its postcode indices


def load_geography(n_lsoas: int, locality: str) -> Geography:
    pcs = pd.read_csv(FRAME / "trafford_postcodes.csv")
    order = ["North", "West", "Central", "South"]
    if locality not in order:
        raise ValueError(f"locality must be one of {order}")
    order = order[order.index(locality):] + order[:order.index(locality)]
    msoa_loc = pcs.groupby("msoa_code")["locality"].agg(lambda s: s.mode().iloc[0])
    msoa_n = pcs.groupby("msoa_code")["lsoa_code"].nunique()
    chosen, total = [], 0
    for loc in order:
        for msoa in sorted(msoa_loc[msoa_loc == loc].index):
            if total >= n_lsoas:
                break
            chosen.append(msoa)
            total += int(msoa_n[msoa])
    pcs = pcs.reset_index(drop=True)
    pcs["in_district"] = pcs["msoa_code"].isin(chosen)
    best = (pcs[pcs["in_district"]].groupby(["lsoa_code", "ward_code"]).size().rename("n").reset_index()
            .sort_values(["lsoa_code", "n", "ward_code"], ascending=[True, False, True])
            .drop_duplicates("lsoa_code"))
    lsoas = (pcs[pcs["in_district"]][["lsoa_code", "msoa_code"]].drop_duplicates().sort_values("lsoa_code")
             .merge(best[["lsoa_code", "ward_code"]], on="lsoa_code").reset_index(drop=True))
    lsoas["idx"] = np.arange(len(lsoas))
    lsoa_index = dict(zip(lsoas["lsoa_code"], lsoas["idx"]))
    pc_lsoa = pcs["lsoa_code"].map(lsoa_index).where(pcs["in_district"]).fillna(-1).astype(int).to_numpy()
    lsoa_pcs = [np.flatnonzero(pc_lsoa == i) for i in range(len(lsoas))]
    practices = pd.read_csv(FRAME / "trafford_gp_patient_registrations.csv")[["practice_code", "ward_code", "locality"]]
    return Geography(pcs, lsoas, practices, np.flatnonzero(pcs["in_district"]), np.flatnonzero(~pcs["in_district"]),
                     pc_lsoa, lsoa_pcs)


def random_postcodes(geo: Geography, rng: np.random.Generator, lsoa: np.ndarray) -> np.ndarray:
    """A uniformly chosen postcode of each given district LSOA (vectorised)."""
    if not hasattr(geo, "_flat"):
        geo._flat = np.concatenate(geo.lsoa_pcs)
        geo._size = np.array([len(x) for x in geo.lsoa_pcs])
        geo._start = np.concatenate([[0], np.cumsum(geo._size)[:-1]])
    lsoa = np.asarray(lsoa, dtype=int)
    pick = geo._start[lsoa] + (rng.random(len(lsoa)) * geo._size[lsoa]).astype(int)
    return geo._flat[pick].astype(np.int32)


def practice_weights(geo: Geography) -> np.ndarray:
    """LSOA x practice choice weights: practices in the LSOA's ward, then its locality, then any."""
    pcs = geo.postcodes
    lsoa_loc = pcs[pcs["in_district"]].groupby("lsoa_code")["locality"].agg(lambda s: s.mode().iloc[0])
    w = np.full((len(geo.lsoas), len(geo.practices)), 0.05)
    for i, row in geo.lsoas.iterrows():
        w[i, geo.practices["locality"].to_numpy() == lsoa_loc[row["lsoa_code"]]] = 1.0
        w[i, geo.practices["ward_code"].to_numpy() == row["ward_code"]] = 4.0
    return w / w.sum(axis=1, keepdims=True)


def choose_rows(rng: np.random.Generator, weights: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One column per row of a row-stochastic matrix, vectorised (inverse CDF)."""
    cdf = np.cumsum(weights[rows], axis=1)
    u = rng.random(len(rows))[:, None]
    return np.minimum((u > cdf).sum(axis=1), weights.shape[1] - 1)


# --------------------------------------------------------------------------------- people

class People:
    """Column arrays of everyone who ever lived in the district or was on one of its lists."""

    COLS = {"sex": np.int8, "dob": np.int32, "eth": np.int8, "home": np.int32, "status": np.int8,
            "on_list": bool, "practice": np.int16, "reg_pc": np.int32, "reg_date": np.int32, "flag4": bool,
            "reg_due": np.int32, "reg_reason": np.int8, "reg_practice": np.int16,
            "dereg_due": np.int32, "dereg_reason": np.int8, "addr_due": np.int32, "addr_pc": np.int32,
            "ghost": np.int8, "student": np.int8, "never_register": bool, "left": np.int32}
    DEFAULTS = {"home": -1, "reg_pc": -1, "reg_date": NEVER, "reg_due": NEVER, "dereg_due": NEVER,
                "addr_due": NEVER, "addr_pc": -1, "practice": -1, "reg_practice": -1, "left": NEVER}

    def __init__(self, capacity: int):
        self.n = 0
        self.a = {k: np.full(capacity, self.DEFAULTS.get(k, 0), dtype=t) for k, t in self.COLS.items()}

    def __getattr__(self, name):
        a = self.__dict__.get("a")
        if a is not None and name in a:
            return a[name][: self.n]
        raise AttributeError(name)

    def add(self, n: int, **values) -> np.ndarray:
        if self.n + n > len(self.a["sex"]):
            grow = max(n, len(self.a["sex"]) // 2)
            for k, t in self.COLS.items():
                self.a[k] = np.concatenate([self.a[k], np.full(grow, self.DEFAULTS.get(k, 0), dtype=t)])
        idx = np.arange(self.n, self.n + n)
        self.n += n
        for k, v in values.items():
            self.a[k][idx] = v
        return idx


@dataclass
class World:
    settings: RegimeSettings
    geo: Geography
    people: People
    streams: Streams
    base_day: int
    extract_days: list
    truth_lsoa: pd.DataFrame = None       # reference_date, lsoa_code, sex, age (0..90 = 90+), population
    truth_ward: pd.DataFrame = None
    snapshots: dict = field(default_factory=dict)   # extract day -> DataFrame of list records
    movements: list = field(default_factory=list)
    births: list = field(default_factory=list)      # (day, lsoa idx, sex)
    deaths: list = field(default_factory=list)      # (day, lsoa idx, sex, age)
    published_base: pd.DataFrame = None             # lsoa_code, sex, age, population
    lsoa_facts: pd.DataFrame = None
    school_rolls: object = None                     # schools.SchoolRolls: schools and each census's pupils


def ages_on(dob: np.ndarray, day: int) -> np.ndarray:
    return np.floor((day - dob) / 365.25).astype(int)


def lags(rng, n: int, spec) -> np.ndarray:
    minimum, mean_extra = spec[0], spec[1]
    return (minimum + rng.exponential(mean_extra, n)).astype(np.int32)


# ------------------------------------------------------------------------------ simulate

def simulate(settings: RegimeSettings) -> World:
    s = settings
    st = Streams(s.seed, s.overrides)
    geo = load_geography(s.n_lsoas, s.locality)
    base_day = to_day(s.base_date)
    first = to_day(s.first_extract)
    extract_days = [add_months(first, 3 * k) for k in range(s.quarters + 1)]
    people = People(capacity=int(200_000 * s.scale) + 10_000)
    world = World(s, geo, people, st, base_day, extract_days)
    pw = practice_weights(geo)
    n_l = len(geo.lsoas)

    # --- the true population at the base: real ONS mid-2022 single years, placed at postcodes
    mye = pd.read_csv(FRAME / "trafford_mye2022_lsoa_sya.csv")
    mye = mye[mye["sex"].isin(["Males", "Females"]) & mye["area_code"].isin(geo.lsoas["lsoa_code"])]
    age_cols = [str(a) for a in range(90)] + ["90+"]
    rng = st["population"]
    lsoa_idx = geo.lsoas.set_index("lsoa_code")["idx"]
    li, sx, ag = [], [], []
    for _, row in mye.iterrows():
        counts = row[age_cols].to_numpy(dtype=float) * s.scale
        counts = np.floor(counts + rng.random(len(counts))).astype(int)
        li.append(np.repeat(lsoa_idx[row["area_code"]], counts.sum()))
        sx.append(np.full(counts.sum(), 0 if row["sex"] == "Males" else 1))
        ag.append(np.repeat(np.arange(91), counts))
    li, sx, ag = np.concatenate(li), np.concatenate(sx), np.concatenate(ag)
    ag = np.where(ag == 90, 90 + np.minimum(rng.geometric(0.25, len(ag)) - 1, 14), ag)
    dob = base_day - (ag * 365.25 + rng.random(len(ag)) * 365.25).astype(np.int32)
    home = random_postcodes(geo, rng, li)
    eth = rng.choice(len(NHS_ETHNIC), len(li), p=NHS_ETHNIC_P / NHS_ETHNIC_P.sum())
    res = people.add(len(li), sex=sx, dob=dob, eth=eth, home=home, status=RESIDENT)

    # --- churn: young-adult share relative to the district's (real age structure)
    young = (ag >= 20) & (ag <= 34)
    share = np.bincount(li, weights=young, minlength=n_l) / np.maximum(np.bincount(li, minlength=n_l), 1)
    churn = np.clip((share / young.mean()) ** F.CHURN_POWER, *F.CHURN_CLIP)
    n_res = np.bincount(li, minlength=n_l)

    # --- list ratio per LSOA: published quantiles, Gaussian copula with churn
    from scipy.stats import norm, rankdata
    z_churn = norm.ppf((rankdata(churn) - 0.5) / n_l)
    rho = F.INFLATION_CHURN_RHO
    z = rho * z_churn + np.sqrt(1 - rho ** 2) * st["inflation"].standard_normal(n_l)
    ratio = F.quantile_interp(F.LIST_RATIO_QUANTILES, norm.cdf(z))

    # --- unregistered residents
    rng = st["unregistered"]
    u_person = np.where((ag >= 18) & (ag <= 34), np.where(sx == 0, F.UNREGISTERED["M_18_34"], F.UNREGISTERED["F_18_34"]),
                        F.UNREGISTERED["other"])
    u0 = np.bincount(li, weights=u_person, minlength=n_l) / np.maximum(n_res, 1)
    u_target = np.maximum(u0, 1 - ratio)
    u_person = np.clip(u_person * (u_target / np.maximum(u0, 1e-9))[li], 0, 0.9)
    unreg = rng.random(len(li)) < u_person
    ghost_share = np.maximum(ratio - 1 + u_target, 0)

    # --- residents on the list at the base
    rng = st["practice"]
    prac = choose_rows(rng, pw, li).astype(np.int16)
    on = ~unreg
    r = st["registration"]
    since = np.minimum(base_day - dob, r.exponential(8 * 365.25, len(li))).astype(np.int32)
    people.a["on_list"][res] = on
    people.a["practice"][res] = np.where(on, prac, -1)
    people.a["reg_practice"][res] = prac
    people.a["reg_pc"][res] = np.where(on, home, -1)
    people.a["reg_date"][res] = np.where(on, base_day - since, NEVER)
    people.a["flag4"][res] = on & (r.random(len(li)) < 0.03)
    people.a["never_register"][res] = unreg

    # --- monthly leaving rates and the steady-state ghost probability per LSOA
    out_uk = F.rate_by_age(F.OUT_UK_BY_AGE, ag) * churn[li]
    emig = F.rate_by_age(F.EMIGRATION_BY_AGE, ag) * churn[li]
    leavers_m = np.bincount(li, weights=(out_uk + emig) * on, minlength=n_l) / 12
    r_eff = F.GHOST_HAZARD_MONTHLY + F.SWEEP_SHARE / F.SWEEP_EVERY_MONTHS
    p_ghost = np.clip(ghost_share * n_res * r_eff / np.maximum(leavers_m, 1e-9), 0, 1)
    # where leavers are too few to keep the ghosts at their level, duplicate records make up the rest
    duplicates_m = np.maximum(ghost_share * n_res * r_eff - leavers_m * p_ghost, 0)
    arrivals_uk = np.bincount(li, weights=out_uk, minlength=n_l) / 12 * F.IN_UK_FACTOR
    arrivals_abroad = np.bincount(li, weights=emig, minlength=n_l) / 12 * F.IN_ABROAD_FACTOR
    mover_ages = np.bincount(ag, weights=out_uk, minlength=100)[:100]
    mover_ages = mover_ages / mover_ages.sum()

    # --- ghosts present at the base
    rng = st["ghosts"]
    g_n = np.floor(ghost_share * n_res + rng.random(n_l)).astype(int)
    gl = np.repeat(np.arange(n_l), g_n)
    gage = rng.choice(100, len(gl), p=mover_ages)
    gpc = random_postcodes(geo, rng, gl)
    gprac = choose_rows(st["practice"], pw, gl).astype(np.int16) if len(gl) else np.empty(0, np.int16)
    people.add(len(gl), sex=(rng.random(len(gl)) > 0.55).astype(np.int8),
               dob=base_day - (gage * 365.25 + rng.random(len(gl)) * 365.25).astype(np.int32),
               eth=rng.choice(len(NHS_ETHNIC), len(gl), p=NHS_ETHNIC_P / NHS_ETHNIC_P.sum()),
               status=np.where(rng.random(len(gl)) < 0.8, GONE_UK, GONE_ABROAD), on_list=True, practice=gprac,
               reg_practice=gprac, reg_pc=gpc, reg_date=base_day - (365 + rng.random(len(gl)) * 3000).astype(np.int32),
               ghost=1, left=base_day - 1)

    # --- registrants living elsewhere in the borough
    rng = st["outside"]
    n_out = int(round(F.OUTSIDE_PATIENTS * on.sum()))
    oage = rng.choice(ag, n_out) if n_out else np.empty(0, int)
    oprac = rng.choice(prac[on], n_out) if n_out else np.empty(0, np.int16)
    people.add(n_out, sex=rng.integers(0, 2, n_out), dob=base_day - (oage * 365.25 + rng.random(n_out) * 365).astype(np.int32),
               eth=rng.choice(len(NHS_ETHNIC), n_out, p=NHS_ETHNIC_P / NHS_ETHNIC_P.sum()),
               home=rng.choice(geo.outside_pc, n_out), status=OUTSIDE_LIVING, on_list=True, practice=oprac,
               reg_practice=oprac, reg_date=base_day - (rng.random(n_out) * 4000).astype(np.int32))
    out_idx = np.flatnonzero(people.status == OUTSIDE_LIVING)
    people.a["reg_pc"][out_idx] = people.home[out_idx]

    # --- students
    student_lsoas = np.zeros(n_l, bool)
    student_practice = -1
    intake = np.zeros(n_l, int)
    if s.regime == "students":
        young_s = np.bincount(li, weights=(ag >= 18) & (ag <= 21), minlength=n_l) / np.maximum(n_res, 1)
        k = max(2, int(round(F.STUDENT_AREA_SHARE * n_l)))
        student_lsoas[np.argsort(-young_s, kind="stable")[:k]] = True
        cur = (people.status == RESIDENT) & (people.home >= 0)
        cur_l = geo.pc_lsoa[np.maximum(people.home, 0)]
        cur_age = ages_on(people.dob, base_day)
        st_idx = np.flatnonzero(cur & student_lsoas[cur_l] & (cur_age >= 18) & (cur_age <= 21))
        people.a["student"][st_idx] = np.clip(cur_age[st_idx] - 17, 1, 3)
        intake = np.where(student_lsoas, np.round(F.STUDENT_INTAKE * n_res), 0).astype(int)
        student_practice = int(np.bincount(people.practice[st_idx][people.practice[st_idx] >= 0],
                                           minlength=len(geo.practices)).argmax())
        # the two cohorts already there (years 2 and 3) and this year's finalists: residents at the base
        srng = st["students"]
        for year in (1, 2, 3):
            sl = np.repeat(np.arange(n_l), intake)
            ns = len(sl)
            listed = srng.random(ns) < F.STUDENT_REGISTER[0]
            people.add(ns, sex=srng.integers(0, 2, ns).astype(np.int8),
                       dob=base_day - ((17 + year) * 365.25 + srng.random(ns) * 365.25).astype(np.int32),
                       eth=srng.choice(len(NHS_ETHNIC), ns, p=NHS_ETHNIC_P / NHS_ETHNIC_P.sum()),
                       home=(hp := random_postcodes(geo, srng, sl)), status=RESIDENT, student=year,
                       on_list=listed, practice=np.where(listed, student_practice, -1), reg_practice=student_practice,
                       reg_pc=np.where(listed, hp, -1),
                       reg_date=np.where(listed, base_day - 280 - 365 * (year - 1), NEVER),
                       flag4=listed & (srng.random(ns) < F.STUDENT_ABROAD), never_register=~listed)

    # --- sweeps: each practice once a year at its own month (regime "growing": none)
    sweep_month = st["cleaning"].integers(0, 12, len(geo.practices))
    sweeps_on = s.regime != "growing"

    # --- month by month
    months = []
    d = to_day(str((EPOCH + np.timedelta64(base_day + 1, "D"))))   # 1 July after a 30 June base
    while d < extract_days[-1]:
        nxt = add_months(d, 1)
        months.append((d, nxt))
        d = nxt
    truth_days = [base_day] + extract_days
    truth_l, truth_w = [record_truth(world, base_day)], []
    truth_w.append(record_truth_ward(world, base_day))
    # school censuses in the run (after the base, up to the last extract's month boundary): each
    # counted at the month boundary nearest its day; drawn from the "schools" stream only
    from .schools import SchoolRolls, census_days
    bounds = np.array([d1 for _, d1 in months])
    first_date = (EPOCH + np.timedelta64(base_day + 1, "D")).astype(object)
    last_date = (EPOCH + np.timedelta64(int(bounds[-1]) + 15, "D")).astype(object)
    census_at: dict[int, list] = {}
    for c in census_days(first_date, last_date):
        near = int(bounds[np.argmin(np.abs(bounds - to_day(c)))])
        census_at.setdefault(near, []).append(c)
    world.school_rolls = SchoolRolls(world)
    for m, (d0, d1) in enumerate(months):
        month_of_year = (EPOCH + np.timedelta64(d0, "D")).astype(object).month
        step_month(world, d0, d1, m, month_of_year, dict(
            churn=churn, pw=pw, p_ghost=p_ghost, arrivals_uk=arrivals_uk, arrivals_abroad=arrivals_abroad,
            mover_ages=mover_ages, duplicates=duplicates_m, sweep_month=sweep_month, sweeps_on=sweeps_on, student_lsoas=student_lsoas,
            student_practice=student_practice, intake=intake))
        if d1 in extract_days:
            truth_l.append(record_truth(world, d1))
            truth_w.append(record_truth_ward(world, d1))
            world.snapshots[d1] = snapshot(world)
        for c in census_at.get(d1, []):
            world.school_rolls.record(c, d1)
    world.truth_lsoa = pd.concat(truth_l, ignore_index=True)
    world.truth_ward = pd.concat(truth_w, ignore_index=True)
    world.published_base, errors = publish_base(world)
    world.lsoa_facts = geo.lsoas[["lsoa_code", "msoa_code", "ward_code"]].assign(
        residents_base=n_res, churn=churn, list_ratio_drawn=ratio, ghost_share=ghost_share,
        unregistered_share=u_target, p_ghost=p_ghost, student_area=student_lsoas).merge(errors, on="lsoa_code")
    assert truth_days[0] == base_day
    return world


def schedule_leaving(world: World, idx: np.ndarray, day: np.ndarray, status: int, ctx: dict, near: np.ndarray | None = None):
    """People who leave the district: their list records go promptly, stay as ghosts, or stay active."""
    p = world.people
    r, g = world.streams["registration"], world.streams["ghost_fate"]
    origin = world.geo.pc_lsoa[np.maximum(p.home[idx], 0)]
    p.a["status"][idx] = status
    p.a["left"][idx] = day
    p.a["home"][idx] = -1
    p.a["reg_due"][idx] = NEVER                        # a pending registration lapses
    p.a["addr_due"][idx] = NEVER
    listed = p.on_list[idx]
    u = g.random(len(idx))
    if status == DEAD:
        due = day + lags(r, len(idx), F.DEATH_LAG)
        p.a["dereg_due"][idx[listed]] = due[listed]
        p.a["dereg_reason"][idx[listed]] = DEREG_REASONS.index("death")
        return
    pg = world_p_ghost(ctx, origin)
    if status == GONE_ABROAD:
        pg = np.maximum(pg, 0.85)
    ghost = listed & (u < pg)
    keep = np.zeros(len(idx), bool)
    if world.settings.regime == "outside" and near is not None:
        keep = listed & near & (g.random(len(idx)) < F.KEEP_PRACTICE)
        ghost &= ~keep
    prompt = listed & ~ghost & ~keep
    due = day + lags(r, len(idx), F.PROMPT_DEREGISTRATION_LAG if status == GONE_UK else (7, 30))
    p.a["dereg_due"][idx[prompt]] = due[prompt]
    p.a["dereg_reason"][idx[prompt]] = DEREG_REASONS.index("transfer" if status == GONE_UK else "emigration")
    p.a["ghost"][idx[ghost]] = 1
    p.a["ghost"][idx[keep]] = 2
    upd = keep & (r.random(len(idx)) < F.KEEPERS_UPDATE[0])
    if upd.any():
        p.a["addr_due"][idx[upd]] = day[upd] + lags(r, int(upd.sum()), F.KEEPERS_UPDATE[1:])
        p.a["addr_pc"][idx[upd]] = world.streams["outside"].choice(world.geo.outside_pc, int(upd.sum()))


def world_p_ghost(ctx: dict, origin: np.ndarray) -> np.ndarray:
    return ctx["p_ghost"][origin]


def schedule_registration(world: World, idx: np.ndarray, day: np.ndarray, spec, reason: str, never: np.ndarray,
                          practice: np.ndarray):
    p = world.people
    r = world.streams["registration"]
    due = day + lags(r, len(idx), spec)
    ok = ~never
    p.a["reg_due"][idx[ok]] = due[ok]
    p.a["reg_reason"][idx[ok]] = REG_REASONS.index(reason)
    p.a["reg_practice"][idx] = practice
    p.a["never_register"][idx[~ok]] = True


def random_days(rng, d0: int, d1: int, n: int) -> np.ndarray:
    return (d0 + rng.random(n) * (d1 - d0)).astype(np.int32)


def step_month(world: World, d0: int, d1: int, m: int, month_of_year: int, ctx: dict) -> None:
    p, geo, st = world.people, world.geo, world.streams
    n_l = len(geo.lsoas)
    res = np.flatnonzero(p.status == RESIDENT)
    age = ages_on(p.dob[res], d0)
    sex = p.sex[res]
    lsoa = geo.pc_lsoa[p.home[res]]
    mult = ctx["churn"][lsoa]

    # deaths
    q = np.exp(F.GOMPERTZ[0] + F.GOMPERTZ[1] * age) * np.where(sex == 1, F.FEMALE_MORTALITY, 1.0)
    q = np.where(age == 0, F.INFANT_Q, np.minimum(q, 0.6))
    die = st["mortality"].random(len(res)) < q / 12
    # moves (one uniform per resident, competing)
    mig = st["migration"]
    p_out = F.rate_by_age(F.OUT_UK_BY_AGE, age) * mult / 12
    p_emi = F.rate_by_age(F.EMIGRATION_BY_AGE, age) * mult / 12
    p_int = F.rate_by_age(F.INTERNAL_BY_AGE, age) * mult / 12
    u = mig.random(len(res))
    out = ~die & (u < p_out)
    emi = ~die & ~out & (u < p_out + p_emi)
    mov = ~die & ~out & ~emi & (u < p_out + p_emi + p_int)
    near = mig.random(len(res)) < F.NEAR_SHARE

    day = random_days(mig, d0, d1, len(res))
    for mask, status in ((die, DEAD), (out, GONE_UK), (emi, GONE_ABROAD)):
        idx = res[mask]
        if status == DEAD:
            world.deaths.append(pd.DataFrame({"day": day[mask], "lsoa": lsoa[mask], "sex": sex[mask], "age": age[mask]}))
        schedule_leaving(world, idx, day[mask], status, ctx, near=near[mask] if status == GONE_UK else None)

    # moves within the district: new postcode, the list learns late or never
    idx = res[mov]
    if len(idx):
        same_msoa = mig.random(len(idx)) < 0.5
        msoa_of = geo.lsoas["msoa_code"].to_numpy()
        dest = mig.integers(0, n_l, len(idx))
        msoa_id = np.unique(msoa_of, return_inverse=True)[1]
        order = np.argsort(msoa_id, kind="stable")
        counts = np.bincount(msoa_id)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        own = msoa_id[lsoa[mov]]
        within = order[starts[own] + (mig.random(len(idx)) * counts[own]).astype(int)]
        dest = np.where(same_msoa, within, dest)
        new_pc = random_postcodes(geo, mig, dest)
        p.a["home"][idx] = new_pc
        r = st["registration"]
        tell = p.on_list[idx] & (r.random(len(idx)) < F.ADDRESS_UPDATE[0])
        p.a["addr_due"][idx[tell]] = day[mov][tell] + lags(r, int(tell.sum()), F.ADDRESS_UPDATE[1:])
        p.a["addr_pc"][idx[tell]] = new_pc[tell]

    # births
    fert = st["fertility"]
    women = (sex == 1) & (age >= 15) & (age <= 44) & ~die & ~out & ~emi
    asfr = np.array(F.ASFR)[np.clip((age - 15) // 5, 0, 5)]
    mothers = res[women & (fert.random(len(res)) < asfr / 12)]
    if len(mothers):
        nb = len(mothers)
        bday = random_days(fert, d0, d1, nb)
        bsex = (fert.random(nb) > F.MALE_BIRTH_SHARE).astype(np.int8)
        babies = p.add(nb, sex=bsex, dob=bday, eth=p.eth[mothers], home=p.home[mothers], status=RESIDENT)
        prac = np.where(p.practice[mothers] >= 0, p.practice[mothers],
                        choose_rows(st["practice"], ctx["pw"], geo.pc_lsoa[p.home[mothers]]))
        schedule_registration(world, babies, bday, F.BIRTH_LAG, "birth", np.zeros(nb, bool), prac)
        world.births.append(pd.DataFrame({"day": bday, "lsoa": geo.pc_lsoa[p.home[mothers]], "sex": bsex}))

    # arrivals from the rest of the UK and from abroad
    for kind in ("uk", "abroad"):
        lam = ctx["arrivals_uk"] if kind == "uk" else ctx["arrivals_abroad"]
        n_a = mig.poisson(lam)
        al = np.repeat(np.arange(n_l), n_a)
        if not len(al):
            continue
        na = len(al)
        aage = mig.choice(100, na, p=ctx["mover_ages"])
        aday = random_days(mig, d0, d1, na)
        asex = mig.integers(0, 2, na).astype(np.int8)
        apc = random_postcodes(geo, mig, al)
        idx = p.add(na, sex=asex, dob=aday - (aage * 365.25 + mig.random(na) * 365.25).astype(np.int32),
                    eth=st["population"].choice(len(NHS_ETHNIC), na, p=NHS_ETHNIC_P / NHS_ETHNIC_P.sum()),
                    home=apc, status=RESIDENT)
        never_p = (F.UK_NEVER if kind == "uk" else F.ABROAD_NEVER) * np.where((asex == 0) & (aage >= 18) & (aage <= 34), 1.8, 1.0)
        never = st["registration"].random(na) < never_p
        prac = choose_rows(st["practice"], ctx["pw"], al)
        schedule_registration(world, idx, aday, F.UK_ARRIVAL_LAG if kind == "uk" else F.ABROAD_ARRIVAL_LAG,
                              "transfer_in" if kind == "uk" else "from_abroad", never, prac)

    # students: finalists leave in June, freshers arrive in September, the student practice sweeps in November
    if world.settings.regime == "students":
        srng = st["students"]
        if month_of_year == 6:
            fin = np.flatnonzero((p.student == 3) & (p.status == RESIDENT))
            abroad = srng.random(len(fin)) < 0.2
            fday = random_days(srng, d0 + 14, d1, len(fin))
            for mask, status in ((~abroad, GONE_UK), (abroad, GONE_ABROAD)):
                idx = fin[mask]
                prompt = srng.random(len(idx)) < F.STUDENT_PROMPT_DEREG
                ctx_s = dict(ctx, p_ghost=np.ones(n_l))
                schedule_leaving(world, idx[~prompt], fday[mask][~prompt], status, ctx_s)
                schedule_leaving(world, idx[prompt], fday[mask][prompt], status, dict(ctx, p_ghost=np.zeros(n_l)))
                p.a["student"][idx] = -1           # a graduate (ghost if still listed)
        if month_of_year == 9:
            cur = np.flatnonzero(p.student > 0)
            p.a["student"][cur] = np.minimum(p.student[cur] + 1, 3)
            sl = np.repeat(np.arange(n_l), ctx["intake"])
            if len(sl):
                ns = len(sl)
                sday = random_days(srng, d0 + 10, d0 + 28, ns)
                spc = random_postcodes(geo, srng, sl)
                idx = p.add(ns, sex=srng.integers(0, 2, ns).astype(np.int8),
                            dob=sday - (18 * 365.25 + srng.random(ns) * 365.25).astype(np.int32),
                            eth=srng.choice(len(NHS_ETHNIC), ns, p=NHS_ETHNIC_P / NHS_ETHNIC_P.sum()),
                            home=spc, status=RESIDENT, student=1)
                never = srng.random(ns) > F.STUDENT_REGISTER[0]
                abroad = srng.random(ns) < F.STUDENT_ABROAD
                prac = np.full(ns, ctx["student_practice"])
                for mask, reason in ((abroad, "from_abroad"), (~abroad, "transfer_in")):
                    schedule_registration(world, idx[mask], sday[mask], F.STUDENT_REGISTER[1:], reason, never[mask], prac[mask])
        if month_of_year == 11:
            gone = np.flatnonzero((p.student == -1) & p.on_list & (p.practice == ctx["student_practice"])
                                  & (p.dereg_due == NEVER))
            hit = gone[srng.random(len(gone)) < F.STUDENT_SWEEP_SHARE]
            p.a["dereg_due"][hit] = d0 + 14
            p.a["dereg_reason"][hit] = DEREG_REASONS.index("list_cleaning")

    # duplicate records (a second registration of someone already listed): ghosts from the start
    drng = st["ghost_fate"]
    n_d = drng.poisson(ctx["duplicates"])
    if n_d.sum():
        listed = np.flatnonzero((p.status == RESIDENT) & p.on_list & (p.reg_pc >= 0))
        listed_l = geo.pc_lsoa[p.reg_pc[listed]]
        order = np.argsort(listed_l, kind="stable")
        counts = np.bincount(listed_l, minlength=n_l)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        dl = np.repeat(np.arange(n_l), n_d)
        dl = dl[counts[dl] > 0]
        src = listed[order[starts[dl] + (drng.random(len(dl)) * counts[dl]).astype(int)]]
        dday = random_days(drng, d0, d1, len(src))
        idx = p.add(len(src), sex=p.sex[src], dob=p.dob[src], eth=p.eth[src], status=GONE_UK, left=dday, ghost=1,
                    reg_due=dday, reg_reason=REG_REASONS.index("other"), reg_practice=p.practice[src])
        p.a["home"][idx] = p.reg_pc[src]         # the listed address, taken as reg_pc when it is applied

    # registrants living elsewhere in the borough: turnover
    orng = st["outside"]
    outl = np.flatnonzero((p.status == OUTSIDE_LIVING) & p.on_list & (p.dereg_due == NEVER))
    leave = outl[orng.random(len(outl)) < F.OUTSIDE_TURNOVER / 12]
    p.a["dereg_due"][leave] = random_days(orng, d0, d1, len(leave))
    p.a["dereg_reason"][leave] = DEREG_REASONS.index("transfer")
    p.a["status"][leave] = GONE_UK
    nn = len(leave)
    if nn:
        nday = random_days(orng, d0, d1, nn)
        nprac = orng.choice(p.practice[outl], nn)
        idx = p.add(nn, sex=orng.integers(0, 2, nn), dob=nday - (orng.choice(100, nn, p=ctx["mover_ages"]) * 365.25).astype(np.int32),
                    eth=orng.choice(len(NHS_ETHNIC), nn, p=NHS_ETHNIC_P / NHS_ETHNIC_P.sum()),
                    home=orng.choice(geo.outside_pc, nn), status=OUTSIDE_LIVING)
        schedule_registration(world, idx, nday, (1, 20), "transfer_in", np.zeros(nn, bool), nprac)

    # ghosts: steady monthly hazard, and each practice's yearly sweep
    crng = st["cleaning"]
    ghosts = np.flatnonzero((p.ghost == 1) & p.on_list & (p.dereg_due == NEVER))
    hz = F.GROWING_HAZARD_MONTHLY if world.settings.regime == "growing" else F.GHOST_HAZARD_MONTHLY
    gone = ghosts[crng.random(len(ghosts)) < hz]
    p.a["dereg_due"][gone] = random_days(crng, d0, d1, len(gone))
    p.a["dereg_reason"][gone] = np.where(p.status[gone] == GONE_UK, DEREG_REASONS.index("transfer"), DEREG_REASONS.index("other"))
    if ctx["sweeps_on"]:
        sweeping = np.flatnonzero(ctx["sweep_month"] == (m % F.SWEEP_EVERY_MONTHS))
        if len(sweeping):
            sweep_day = d0 + 14
            g2 = np.flatnonzero((p.ghost == 1) & p.on_list & (p.dereg_due == NEVER) & np.isin(p.practice, sweeping))
            hit = g2[crng.random(len(g2)) < F.SWEEP_SHARE]
            p.a["dereg_due"][hit] = sweep_day
            p.a["dereg_reason"][hit] = DEREG_REASONS.index("list_cleaning")
            live = np.flatnonzero((p.status == RESIDENT) & p.on_list & (p.dereg_due == NEVER) & np.isin(p.practice, sweeping))
            wrong = live[crng.random(len(live)) < F.SWEEP_WRONG_SHARE]
            p.a["dereg_due"][wrong] = sweep_day
            p.a["dereg_reason"][wrong] = DEREG_REASONS.index("list_cleaning")
            p.a["reg_due"][wrong] = sweep_day + lags(crng, len(wrong), (30, 90))
            p.a["reg_reason"][wrong] = REG_REASONS.index("other")
            p.a["reg_practice"][wrong] = p.practice[wrong]

    apply_due(world, d1)


def apply_due(world: World, d1: int) -> None:
    """Apply every registration, deregistration and address update due before d1, in date order
    per person (a wrongly cleaned resident is removed, then registered again)."""
    p = world.people
    dereg = np.flatnonzero(p.on_list & (p.dereg_due < d1))
    dd = p.dereg_due[dereg]
    first_dereg = dereg[(dd <= p.reg_due[dereg])]
    _deregister(world, first_dereg)
    reg = np.flatnonzero(~p.on_list & (p.reg_due < d1))
    if len(reg):
        p.a["on_list"][reg] = True
        p.a["practice"][reg] = p.reg_practice[reg]
        home = p.home[reg]
        p.a["reg_pc"][reg] = home
        p.a["reg_date"][reg] = p.reg_due[reg]
        p.a["flag4"][reg] = p.reg_reason[reg] == REG_REASONS.index("from_abroad")
        world.movements.append(_events(p, reg, p.reg_due[reg], 0, p.reg_reason[reg]))
        p.a["reg_due"][reg] = NEVER
    rest = np.flatnonzero(p.on_list & (p.dereg_due < d1))
    _deregister(world, rest)
    upd = np.flatnonzero(p.on_list & (p.addr_due < d1))
    p.a["reg_pc"][upd] = p.addr_pc[upd]
    p.a["addr_due"][upd] = NEVER


def _deregister(world: World, idx: np.ndarray) -> None:
    p = world.people
    if not len(idx):
        return
    world.movements.append(_events(p, idx, p.dereg_due[idx], 1, p.dereg_reason[idx]))
    p.a["on_list"][idx] = False
    p.a["dereg_due"][idx] = NEVER
    p.a["ghost"][idx] = 0


def _events(p: People, idx, day, event: int, reason) -> pd.DataFrame:
    return pd.DataFrame({"person": idx, "practice": p.practice[idx], "postcode": p.reg_pc[idx], "day": day,
                         "event": event, "reason": reason})


def record_truth(world: World, day: int) -> pd.DataFrame:
    p, geo = world.people, world.geo
    res = np.flatnonzero(p.status == RESIDENT)
    lsoa = geo.pc_lsoa[p.home[res]]
    age = np.minimum(ages_on(p.dob[res], day), 90)
    key = (lsoa * 2 + p.sex[res]) * 91 + age
    counts = np.bincount(key, minlength=len(geo.lsoas) * 2 * 91).reshape(len(geo.lsoas), 2, 91)
    li, si, ai = np.meshgrid(np.arange(len(geo.lsoas)), np.arange(2), np.arange(91), indexing="ij")
    return pd.DataFrame({"reference_date": str(EPOCH + np.timedelta64(day, "D")),
                         "lsoa_code": geo.lsoas["lsoa_code"].to_numpy()[li.ravel()], "sex": np.array(["M", "F"])[si.ravel()],
                         "age": ai.ravel(), "population": counts.ravel()})


def record_truth_ward(world: World, day: int) -> pd.DataFrame:
    p, geo = world.people, world.geo
    res = np.flatnonzero(p.status == RESIDENT)
    age = np.minimum(ages_on(p.dob[res], day), 90)
    df = pd.DataFrame({"ward_code": geo.postcodes["ward_code"].to_numpy()[p.home[res]],
                       "sex": np.array(["M", "F"])[p.sex[res]], "age": age})
    out = df.groupby(["ward_code", "sex", "age"], as_index=False).size().rename(columns={"size": "population"})
    out.insert(0, "reference_date", str(EPOCH + np.timedelta64(day, "D")))
    return out


def snapshot(world: World) -> pd.DataFrame:
    p = world.people
    idx = np.flatnonzero(p.on_list)
    return pd.DataFrame({"person": idx, "practice": p.practice[idx], "postcode": p.reg_pc[idx], "sex": p.sex[idx],
                         "dob": p.dob[idx], "reg_date": p.reg_date[idx], "flag4": p.flag4[idx], "eth": p.eth[idx]})


def la_error_draw(rng: np.random.Generator, regime: str) -> float:
    """The published base's LA-wide error (estimate / truth - 1) from the England distribution."""
    from scipy.stats import norm
    c, mu, s = (F.LA_ERROR_SHIFTED_LOGNORMAL[k] for k in ("c", "mu", "s"))
    if regime == "base_tail":
        z = norm.ppf(rng.uniform(*F.TAIL_QUANTILES))
    else:
        z = rng.standard_normal()
    return (c + np.exp(mu + s * z)) / 100.0


def publish_base(world: World) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The published base: truth at the base date x exp(LA + LA-by-band + MSOA + LSOA + cell noise)."""
    rng = world.streams["base_error"]
    geo = world.geo
    t = world.truth_lsoa[world.truth_lsoa["reference_date"] == str(EPOCH + np.timedelta64(world.base_day, "D"))].copy()
    la = np.log1p(la_error_draw(rng, world.settings.regime))
    band = np.minimum(t["age"].to_numpy() // 5, 17)
    sd_band = np.where((np.arange(18) >= 3) & (np.arange(18) <= 6) | (np.arange(18) == 17), F.LA_AGE_SD_YOUNG_OLD, F.LA_AGE_SD)
    la_band = rng.standard_normal(18) * sd_band
    le = F.LOCAL_ERROR
    msoas = geo.lsoas["msoa_code"].unique()
    e_msoa = dict(zip(msoas, le["scale"] * np.sqrt(le["msoa_share"]) * rng.standard_t(le["df"], len(msoas))))
    e_lsoa = le["scale"] * np.sqrt(1 - le["msoa_share"]) * rng.standard_t(le["df"], len(geo.lsoas))
    local = np.clip(geo.lsoas["msoa_code"].map(e_msoa).to_numpy() + e_lsoa, -le["clip"], le["clip"])
    local_of = dict(zip(geo.lsoas["lsoa_code"], local))
    noise = rng.standard_normal(len(t)) * F.CELL_NOISE_SD
    mult = np.exp(la + la_band[band] + t["lsoa_code"].map(local_of).to_numpy() + noise)
    pub = np.floor(t["population"].to_numpy() * mult + rng.random(len(t))).astype(int)
    out = t[["lsoa_code", "sex", "age"]].assign(population=pub)
    errors = pd.DataFrame({"lsoa_code": geo.lsoas["lsoa_code"], "base_error_la": la, "base_error_local": local})
    return out, errors
