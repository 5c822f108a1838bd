"""Ground truth: what the district really is, for tests and benchmarks only."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.demo.aggregates import SEXES, ons_band
from pipeline.demo.frame import Frame
from pipeline.demo.population import EventLog, People
from pipeline.demo.rates import CHURN_LEVELS, ETHNIC_GROUPS, ONS_AGE_BANDS
from pipeline.demo.register import register_by_lsoa
from pipeline.demo.timeline import age_on

N_BANDS = len(ONS_AGE_BANDS)


@dataclass
class TruthRecorder:
    """Collects the true counts at each extract date."""

    dates: list = field(default_factory=list)
    lsoa: list = field(default_factory=list)        # (lsoa, sex, band) per date
    ward: list = field(default_factory=list)        # (ward, sex, band)
    ethnicity: list = field(default_factory=list)   # (ward, group)
    register: list = field(default_factory=list)    # dict of per-LSOA arrays

    def snapshot(self, people: People, frame: Frame, on) -> None:
        res = people.residents()
        pc = people.postcode[res]
        sex = people.sex[res]
        band = ons_band(age_on(people.dob[res], on))
        self.dates.append(np.datetime64(on, "D"))
        self.lsoa.append(_count3(frame.pc_lsoa[pc], sex, band, frame.n_lsoas))
        self.ward.append(_count3(frame.pc_ward[pc], sex, band, frame.n_wards))
        eth = np.zeros((frame.n_wards, len(ETHNIC_GROUPS)), dtype=int)
        np.add.at(eth, (frame.pc_ward[pc], people.ethnic_group[res]), 1)
        self.ethnicity.append(eth)
        self.register.append(register_by_lsoa(people, frame))

    def population_rows(self, level: str, frame: Frame) -> dict[str, np.ndarray]:
        counts = np.stack(self.lsoa if level == "lsoa" else self.ward)      # (date, area, sex, band)
        codes = frame.lsoa_code if level == "lsoa" else frame.ward_code
        d, a, s, b = np.indices(counts.shape).reshape(4, -1)
        return {"reference_date": np.array(self.dates)[d], f"{level}_code": codes[a], "sex": SEXES[s],
                "age_band": np.asarray(ONS_AGE_BANDS, dtype=object)[b], "population": counts.ravel()}

    def ethnicity_rows(self, frame: Frame) -> dict[str, np.ndarray]:
        counts = np.stack(self.ethnicity)
        d, w, g = np.indices(counts.shape).reshape(3, -1)
        return {"reference_date": np.array(self.dates)[d], "ward_code": frame.ward_code[w],
                "ethnic_group": np.asarray(ETHNIC_GROUPS, dtype=object)[g], "population": counts.ravel()}

    def register_rows(self, frame: Frame) -> dict[str, np.ndarray]:
        n_l = frame.n_lsoas
        d = np.repeat(np.arange(len(self.dates)), n_l)
        return {"reference_date": np.array(self.dates)[d], "lsoa_code": np.tile(frame.lsoa_code, len(self.dates)),
                **{k: np.concatenate([r[k] for r in self.register]) for k in ("registered", "resident", "ghosts")}}

    def ward_population(self) -> np.ndarray:
        """(date, ward) total residents."""
        return np.stack(self.ward).sum(axis=(2, 3))

    def inflation_by_churn(self, frame: Frame, date_index: int = 0) -> dict[str, float]:
        """(registered - resident) / resident summed over the LSOAs of each churn level."""
        reg = self.register[date_index]
        out = {}
        for level, name in enumerate(CHURN_LEVELS):
            mask = frame.lsoa_churn == level
            if mask.any():
                out[name] = round(float(reg["registered"][mask].sum() / reg["resident"][mask].sum() - 1), 4)
        return out


def _count3(area, sex, band, n_areas) -> np.ndarray:
    shape = (n_areas, 2, N_BANDS)
    return np.bincount(np.ravel_multi_index((area, sex, band), shape), minlength=int(np.prod(shape))).reshape(shape)


def annual_turnover(log: dict, frame: Frame, mean_population: np.ndarray, years: float) -> np.ndarray:
    """(moves in + moves out) / mean population / years, per LSOA (births, deaths excluded)."""
    ins = np.isin(log["kind"], [EventLog.KINDS.index(k) for k in ("move_in", "in_uk", "in_abroad", "asylum")])
    outs = np.isin(log["kind"], [EventLog.KINDS.index(k) for k in ("move_out", "out_uk", "emigration")])
    moves = np.bincount(log["lsoa"][ins | outs], minlength=frame.n_lsoas)
    return moves / np.maximum(mean_population, 1) / years
