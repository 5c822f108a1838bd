"""The school census of the simulated district: the LA's state-funded schools' pupils of
compulsory school age (national curriculum years R-11) who live in the district, at each
January, May and October census within the run, drawn from the TRUE residents (never from the
GP list), so that list / census measures how the list's inflation of children changes.

Census days (DfE's census dates): the first Thursday of October (autumn), the third Thursday of
January (spring) and the third Thursday of May (summer). The simulator's state is kept month by
month, so each census counts the residents at the month boundary nearest its day (at most 17
days away); its rows carry the real census day.

Who is on the roll (facts.py, each size with its source): every resident child of years R-11 is
on the census unless drawn, once, as attending an independent school, home-educated or attending
a school in another LA (then never on this LA's census while they live here). Pupils who leave
the district leave the roll; pupils who move within it keep their school or (ASSUMED shares)
change it, and the school learns the new address by the next census with a set probability.

Randomness: only the "schools" stream (streams.py), drawn in the month loop after everything
else, so the registers, the base and the truth are the same with or without it.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from . import facts as F

ETHNIC_NHS_TO_DFE = {  # NHS ethnic category -> the DfE code of the same group
    "A": "WBRI", "B": "WIRI", "C": "WOTH", "D": "MWBC", "E": "MWBA", "F": "MWAS", "G": "MOTH",
    "H": "AIND", "J": "APKN", "K": "ABAN", "L": "AOTH", "M": "BCRB", "N": "BAFR", "P": "BOTH",
    "R": "CHNE", "S": "OOTH", "Z": "NOBT"}
OTHER_LANGUAGES = ("POL", "URD", "PNJ", "ARA", "BNG", "SOM", "OTH")
FIRST_YEAR = {"primary": 0, "secondary": 7}


def census_days(first: dt.date, last: dt.date) -> list[dt.date]:
    """DfE census days in [first, last]: third Thursday of January and May, first Thursday of October."""
    out = []
    for year in range(first.year, last.year + 1):
        for month, nth in ((1, 3), (5, 3), (10, 1)):
            d = dt.date(year, month, 1)
            d += dt.timedelta(days=(3 - d.weekday()) % 7 + 7 * (nth - 1))  # weekday 3 = Thursday
            if first <= d <= last:
                out.append(d)
    return out


def school_start_year(dob_day: np.ndarray, epoch) -> np.ndarray:
    """The calendar year a child starts Reception: born 1 September Y-5 .. 31 August Y-4 -> Y."""
    d = (epoch + np.asarray(dob_day, dtype="timedelta64[D]")).astype("datetime64[D]")
    year = d.astype("datetime64[Y]").astype(int) + 1970
    month = (d.astype("datetime64[M]").astype(int) % 12) + 1
    return year + (month >= 9) + 4


def academic_year_of(day: dt.date) -> int:
    """The calendar year in which the academic year containing `day` began (1 September)."""
    return day.year if day.month >= 9 else day.year - 1


def make_schools(lsoas: pd.DataFrame) -> pd.DataFrame:
    """Synthetic schools (URNs 900001+, outside the real range): primaries by ward, secondaries
    and one special school for the district. ASSUMED sizes: one primary per 2.5 LSOAs of a ward
    (at least one), one secondary per 8 LSOAs (at least two)."""
    rows = []
    for ward, n in lsoas.groupby("ward_code").size().sort_index().items():
        for j in range(max(1, int(round(n / 2.5)))):
            rows.append(("primary", ward))
    for j in range(max(2, int(round(len(lsoas) / 8)))):
        rows.append(("secondary", ""))
    rows.append(("special", ""))
    out = pd.DataFrame(rows, columns=["phase", "ward_code"])
    out["urn"] = [f"{900001 + i}" for i in range(len(out))]
    count = out.groupby("phase").cumcount() + 1
    out["school_name"] = [f"Regimes {p.title()} School {c}" for p, c in zip(out["phase"], count)]
    return out


class SchoolRolls:
    """Each child's school record, kept between censuses (arrays by person number)."""

    def __init__(self, world):
        self.world = world
        self.rng = world.streams["schools"]
        self.schools = make_schools(world.geo.lsoas)
        self.key = int(self.rng.integers(1, 1 << 40))  # pseudonymous UPNs
        self.n = 0
        self.cols = {"seen": bool, "covered": bool, "special": bool, "fsm": bool, "lang": np.int8,
                     "school": np.int32, "entry": np.int32, "address": np.int32}
        self.a = {k: np.zeros(0, dtype=t) for k, t in self.cols.items()}
        self.prev_state = world.base_day
        self.records: list[pd.DataFrame] = []

    def _grow(self, n: int) -> None:
        if n > self.n:
            for k, t in self.cols.items():
                self.a[k] = np.concatenate([self.a[k], np.full(n - self.n, -1 if t in (np.int32,) else 0, dtype=t)])
            self.n = n

    def record(self, census_day: dt.date, state_day: int) -> None:
        """The census of `census_day`, from the residents as they are at `state_day`."""
        from .world import EPOCH, NHS_ETHNIC, RESIDENT, to_day

        w, p, geo, rng, a = self.world, self.world.people, self.world.geo, self.rng, self.a
        self._grow(p.n)
        cday = to_day(census_day)
        res = np.flatnonzero(p.status == RESIDENT)
        ncy = academic_year_of(census_day) - school_start_year(p.dob[res], EPOCH)
        kids = res[(ncy >= 0) & (ncy <= 11)]
        ncy = ncy[(ncy >= 0) & (ncy <= 11)]
        new = kids[~a["seen"][kids]]
        if len(new):  # drawn once per child: on this LA's census or not, special school, FSM, language
            a["seen"][new] = True
            a["covered"][new] = rng.random(len(new)) < F.SCHOOL_CENSUS_COVERAGE
            a["special"][new] = rng.random(len(new)) < F.SPECIAL_SCHOOL_SHARE
            a["fsm"][new] = rng.random(len(new)) < F.FSM_SHARE
            british = NHS_ETHNIC[p.eth[new]] == "A"
            other = ~british & (rng.random(len(new)) < F.OTHER_FIRST_LANGUAGE)
            a["lang"][new] = np.where(other, 1 + rng.integers(0, len(OTHER_LANGUAGES), len(new)), 0)
            a["address"][new] = p.home[new]
        on = a["covered"][kids]
        kids, ncy = kids[on], ncy[on]
        lsoa = geo.pc_lsoa[p.home[kids]]
        ward = geo.lsoas["ward_code"].to_numpy()[lsoa]
        sch = self.schools
        phase_now = np.where(a["special"][kids], "special", np.where(ncy >= 7, "secondary", "primary"))
        cur = a["school"][kids]
        cur_phase = np.where(cur >= 0, sch["phase"].to_numpy()[np.maximum(cur, 0)], "")
        moved = (a["address"][kids] != p.home[kids])
        switch_p = np.where(phase_now == "primary", F.SCHOOL_SWITCH_ON_MOVE[0], F.SCHOOL_SWITCH_ON_MOVE[1])
        switch = moved & (phase_now != "special") & (rng.random(len(kids)) < switch_p)
        need = (cur < 0) | (cur_phase != phase_now) | switch
        if need.any():
            idx = np.flatnonzero(need)
            phases = sch["phase"].to_numpy()
            pools = {ph: np.flatnonzero(phases == ph) for ph in ("primary", "secondary", "special")}
            local = {wd: np.flatnonzero((phases == "primary") & (sch["ward_code"].to_numpy() == wd))
                     for wd in np.unique(ward[idx])}
            u, v = rng.random(len(idx)), rng.random(len(idx))
            chosen = np.empty(len(idx), dtype=np.int32)
            for j, i in enumerate(idx):
                pool = pools[phase_now[i]]
                if phase_now[i] == "primary" and len(local[ward[i]]) and u[j] < F.LOCAL_PRIMARY_SHARE:
                    pool = local[ward[i]]
                chosen[j] = pool[int(v[j] * len(pool))]
            people = kids[idx]
            first_time = cur[idx] < 0
            # entry: the September the child began this phase if first seen at the first census or
            # starting the phase's first year; otherwise (arrivals, movers) a day since the last census
            sept = np.array([to_day(dt.date(academic_year_of(census_day) - (ncy[i] - FIRST_YEAR.get(phase_now[i], 0))
                                            if phase_now[i] != "special" else academic_year_of(census_day), 9, 1))
                             for i in idx], dtype=np.int64)
            since = self.prev_state + (rng.random(len(idx)) * max(state_day - self.prev_state, 1)).astype(np.int64)
            phase_start = np.array([ncy[i] == FIRST_YEAR.get(phase_now[i], -1) for i in idx])
            use_sept = (first_time & (len(self.records) == 0)) | phase_start
            a["entry"][people] = np.minimum(np.where(use_sept, sept, since), cday)
            a["school"][people] = chosen
        # the school learns a new address by this census with probability ADDRESS_KNOWN
        learn = moved & (rng.random(len(kids)) < F.SCHOOL_ADDRESS_KNOWN)
        a["address"][kids[learn]] = p.home[kids[learn]]
        self.records.append(pd.DataFrame({
            "census_day": cday, "person": kids, "school": a["school"][kids], "nc_year": ncy,
            "sex": p.sex[kids], "eth": p.eth[kids], "lang": a["lang"][kids], "fsm": a["fsm"][kids],
            "entry": a["entry"][kids], "postcode": a["address"][kids]}))
        self.prev_state = state_day


def pupil_ids(key: int, person: np.ndarray) -> np.ndarray:
    """Pseudonymised UPNs: an affine bijection of the person number modulo 2^40 with the census's key."""
    num = (person.astype(np.uint64) * np.uint64(0xC2B2AE3D27 | 1) + np.uint64(key)) % np.uint64(1 << 40)
    return np.array([f"UPN{int(v):010X}" for v in num])
