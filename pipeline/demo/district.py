"""Run the whole demo district: draw the base, step through time, write every file.

    build_district(settings, rates, out)   ->  out/raw/<source>/..., out/truth/..., summary

Steps: `start_district` (frame, base population, register at the base date, plans for
list cleaning, asylum and schools), `step_through_time` (life events, register, schools,
extracts, survey at each checkpoint), `write_aggregate_sources`, `write_truth`.
"""

from __future__ import annotations

import datetime as dt
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pipeline.config import DemoSettings
from pipeline.demo import aggregates, writers
from pipeline.demo.frame import Frame, load_frame
from pipeline.demo.population import (EventLog, People, draw_initial_population, perturb_published_base,
                                      simulate_period)
from pipeline.demo.rates import CHURN_LEVELS, DemoRates
from pipeline.demo.register import (CleaningSweep, MovementLog, plan_list_cleaning, schedule_register_actions,
                                    seed_ghost_patients, seed_outside_patients, seed_register_at_base,
                                    update_register)
from pipeline.demo.schools import Schools, make_schools, react_to_moves, take_school_census
from pipeline.demo.survey import draw_survey, expected_indicators
from pipeline.demo.timeline import as_day, census_dates, quarter_ends, years_between
from pipeline.demo.truth import TruthRecorder, annual_turnover


def random_stream(seed: int, name: str) -> np.random.Generator:
    """An independent generator per component, so e.g. the survey size leaves people alone."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


@dataclass
class District:
    """Everything one run holds while it simulates and writes."""

    settings: DemoSettings
    rates: DemoRates
    out: Path
    frame: Frame
    people: People
    true_base: np.ndarray
    published_base: np.ndarray
    schools: Schools
    sweeps: list[CleaningSweep]
    extract_dates: list[dt.date]
    census_dates: list[dt.date]
    survey_date: dt.date
    asylum_plan: dict
    blank_flag_practices: np.ndarray
    rng: np.random.Generator                 # the simulation
    fmt: np.random.Generator                 # untidy formatting of extracts
    truth: TruthRecorder = field(default_factory=TruthRecorder)
    log: EventLog = field(default_factory=EventLog)
    moves: MovementLog = field(default_factory=MovementLog)
    files: dict = field(default_factory=dict)
    survey: dict | None = None
    expected: list | None = None
    incident_spike: dict | None = None

    @property
    def raw(self) -> Path:
        return self.out / "raw"

    @property
    def extract_days(self) -> np.ndarray:
        return np.array(self.extract_dates, dtype="M8[D]")

    def write(self, relative: str, writer, *args) -> None:
        """Call `writer(path, *args)` for raw/<relative> and note its row count."""
        self.files[relative] = writer(self.raw / relative, *args)


def build_district(settings: DemoSettings, rates: DemoRates, out: Path) -> dict:
    """Simulate and write raw/ and truth/ under `out`. Returns the summary."""
    started = time.perf_counter()
    district = start_district(settings, rates, out)
    step_through_time(district)
    write_aggregate_sources(district)
    truth_rows = write_truth(district)
    summary = summarise(district, truth_rows)
    writers.write_json(out / "truth" / "manifest.json", summary)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return summary


def start_district(settings: DemoSettings, rates: DemoRates, out: Path) -> District:
    """The frame, the base population and its register, and the plans for the period."""
    seed = settings.seed
    frame = load_frame(settings.n_lsoas, settings.churn_mix, rates, random_stream(seed, "frame"))
    rng = random_stream(seed, "simulation")
    extract_dates = quarter_ends(settings.start_date, settings.quarters)

    people, true_base = draw_initial_population(frame, settings.scale, settings.start_date, rates, rng)
    published = perturb_published_base(true_base, frame, rates, random_stream(seed, "published base"))
    seed_register_at_base(people, frame, rates, rng, settings.start_date)
    seed_ghost_patients(people, frame, rates, rng, settings.start_date)
    seed_outside_patients(people, frame, rates, rng, settings.start_date)
    fmt = random_stream(seed, "formatting")
    return District(
        settings=settings, rates=rates, out=out, frame=frame, people=people, true_base=true_base,
        published_base=published,
        schools=make_schools(frame, len(people.residents()), rates, random_stream(seed, "schools")),
        sweeps=plan_list_cleaning(people, frame, rates, rng, np.array(extract_dates, dtype="M8[D]")),
        extract_dates=extract_dates,
        census_dates=census_dates(settings.start_date, extract_dates[-1]),
        survey_date=extract_dates[settings.quarters // 2],
        asylum_plan=plan_asylum(frame, settings, rates, extract_dates, rng),
        blank_flag_practices=fmt.random(len(frame.practice_code)) < 0.15,
        rng=rng, fmt=fmt,
    )


def plan_asylum(frame: Frame, settings: DemoSettings, rates: DemoRates, extract_dates, rng) -> dict:
    """Expected placements per quarter by LSOA, and a step up in one dispersal LSOA (a new
    property) from a quarter in the second half of the period."""
    lsoa = int(rng.choice(np.flatnonzero(frame.lsoa_dispersal)))
    quarter = int(rng.integers(max(1, len(extract_dates) // 2), len(extract_dates)))
    return {"base": np.where(frame.lsoa_dispersal, rates.asylum_per_lsoa_quarter * settings.scale, 0.0),
            "lsoa": lsoa, "from": as_day(extract_dates[quarter - 1]),
            "extra": rates.asylum_step_up_per_quarter * settings.scale}


def expected_asylum(plan: dict, t0) -> np.ndarray:
    expected = plan["base"].copy()
    if as_day(t0) >= plan["from"]:
        expected[plan["lsoa"]] += plan["extra"]
    return expected


def step_through_time(d: District) -> None:
    """From the base date to the last extract, checkpoint by checkpoint (quarter ends and
    school census days): life events, the register's response, censuses, extracts, survey."""
    write_register_extract(d, d.settings.start_date)
    previous = d.settings.start_date
    for t in sorted(set(d.extract_dates[1:]) | set(d.census_dates)):
        events = simulate_period(d.people, d.frame, d.rates, d.rng, previous, t, d.log, expected_asylum(d.asylum_plan, previous))
        schedule_register_actions(d.people, events, d.rates, d.rng, t)
        react_to_moves(d.people, events.moved, d.rates, d.rng)
        update_register(d.people, d.frame, d.rates, d.rng, previous, t, d.sweeps, d.moves)
        if t in d.census_dates:
            census = take_school_census(d.people, d.schools, d.frame, d.rates, d.rng, t)
            d.write(f"school_census/school_census_{t.isoformat()}.csv", writers.write_school_census,
                    census, d.people, d.schools, d.frame, d.settings.seed)
        if t in d.extract_dates:
            write_register_extract(d, t)
        if t == d.survey_date and d.settings.survey_size > 0:
            d.survey = draw_survey(d.people, d.frame, d.rates, random_stream(d.settings.seed, "survey"), t,
                                   d.settings.survey_size)
            d.expected = expected_indicators(d.people, d.frame, t)
        previous = t


def write_register_extract(d: District, on: dt.date) -> None:
    d.write(f"gp_register/gp_register_{on.isoformat()}.csv", writers.write_register_extract,
            d.people, d.frame, on, d.settings.seed, d.blank_flag_practices, d.fmt)
    d.truth.snapshot(d.people, d.frame, on)


def write_aggregate_sources(d: District) -> None:
    """Movements, survey, vital events, asylum, incidents, base population, geography."""
    events = d.log.arrays()
    d.write("gp_movements/gp_movements.csv", writers.write_movements, d.moves.arrays(), d.frame, d.settings.seed, d.fmt)
    if d.survey is not None:
        d.write("survey/residents_survey.csv", writers.write_survey, d.survey, d.frame)
    d.write("vital_events/vital_events.csv", writers.write_csv, aggregates.vital_event_rows(events, d.frame, d.extract_days))
    d.write("asylum/asylum_allocations.csv", writers.write_csv, aggregates.asylum_rows(events, d.frame, d.extract_days))
    incidents, d.incident_spike = aggregates.incident_rows(
        d.truth.ward_population()[:-1], ward_mix(d.frame), d.frame, d.rates,
        random_stream(d.settings.seed, "incidents"), d.extract_days)
    d.write("incidents/incidents.csv", writers.write_csv, incidents)
    d.write(f"base_population/ons_mye_{d.settings.start_date.year}_lsoa_sya.csv", writers.write_base_population,
            d.published_base, d.frame, d.settings.start_date)
    d.write("geography/postcode_directory.csv", writers.write_geography, d.frame)
    writers.write_text(d.raw / "README.md", writers.RAW_README)


def ward_mix(frame: Frame) -> np.ndarray:
    """Mean share not White of each ward's postcodes' LSOAs."""
    ward = frame.pc_ward[:frame.n_in_area]
    share = frame.lsoa_nonwhite[frame.pc_lsoa[:frame.n_in_area]]
    return np.bincount(ward, share, frame.n_wards) / np.maximum(np.bincount(ward, minlength=frame.n_wards), 1)


def lsoa_turnover(d: District) -> np.ndarray:
    mean_population = np.stack(d.truth.lsoa).sum(axis=(2, 3)).mean(axis=0)
    return annual_turnover(d.log.arrays(), d.frame, mean_population,
                           years_between(d.settings.start_date, d.extract_dates[-1]))


def write_truth(d: District) -> dict[str, int]:
    frame, truth = d.frame, d.truth
    tables = {
        "population_lsoa.csv": truth.population_rows("lsoa", frame),
        "population_ward.csv": truth.population_rows("ward", frame),
        "ethnicity_ward.csv": truth.ethnicity_rows(frame),
        "lsoa_churn.csv": {"lsoa_code": frame.lsoa_code,
                           "churn_level": np.asarray(CHURN_LEVELS, dtype=object)[frame.lsoa_churn],
                           "annual_turnover": np.round(lsoa_turnover(d), 4)},
        "register_truth.csv": truth.register_rows(frame),
    }
    if d.expected is not None:
        tables["survey_expected.csv"] = {key: np.array([row[key] for row in d.expected])
                                         for key in ("indicator_id", "area_code", "area_type", "expected_value")}
    rows = {name: writers.write_csv(d.out / "truth" / name, columns) for name, columns in tables.items()}
    writers.write_text(d.out / "truth" / "README.md", writers.TRUTH_README)
    return rows


def summarise(d: District, truth_rows: dict[str, int]) -> dict:
    """The manifest: settings, counts and the events planted for the pipeline to find."""
    frame, truth = d.frame, d.truth
    turnover = lsoa_turnover(d)
    base_residents = truth.register[0]["resident"]
    levels = [(k, name) for k, name in enumerate(CHURN_LEVELS) if (frame.lsoa_churn == k).any()]
    plan = d.asylum_plan
    return {
        "skipped": False,
        "note": writers.SYNTHETIC_NOTE,
        "seed": d.settings.seed,
        "settings": d.settings.model_dump(mode="json"),
        "lsoas": frame.n_lsoas,
        "wards": frame.n_wards,
        "extract_dates": [x.isoformat() for x in d.extract_dates],
        "census_dates": [x.isoformat() for x in d.census_dates],
        "survey_date": d.survey_date.isoformat() if d.survey is not None else None,
        "people_simulated": len(d.people),
        "residents_at_base": int(d.true_base.sum()),
        "residents_at_end": int(truth.lsoa[-1].sum()),
        "churn_levels": {name: int((frame.lsoa_churn == k).sum()) for k, name in enumerate(CHURN_LEVELS)},
        "list_inflation_at_base": truth.inflation_by_churn(frame, 0),
        "list_inflation_at_end": truth.inflation_by_churn(frame, -1),
        "mean_turnover_by_churn": {name: round(float(np.average(turnover[frame.lsoa_churn == k],
                                                                weights=base_residents[frame.lsoa_churn == k] + 1e-9)), 4)
                                   for k, name in levels},
        "dispersal_lsoas": [str(c) for c in frame.lsoa_code[frame.lsoa_dispersal]],
        "asylum_step_up": {"lsoa_code": str(frame.lsoa_code[plan["lsoa"]]), "from": str(plan["from"]),
                           "extra_per_quarter": plan["extra"]},
        "list_cleaning": [{"practice_code": str(frame.practice_code[s.practice]), "date": str(s.date),
                           "ghost_share": round(s.ghost_share, 3), "removed": s.removed} for s in d.sweeps],
        "incident_spike": d.incident_spike,
        "schools": {phase: int((d.schools.phase == k).sum()) for k, phase in enumerate(("primary", "secondary", "special"))},
        "raw_files": dict(d.files),
        "truth_files": truth_rows,
        "rates": asdict(d.rates),
    }
