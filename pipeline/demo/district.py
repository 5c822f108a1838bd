"""Run the whole demo district: draw the base, step through time, write every file."""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import numpy as np

from pipeline.config import DemoSettings
from pipeline.demo import aggregates, writers
from pipeline.demo.frame import Frame, load_frame
from pipeline.demo.population import EventLog, draw_initial_population, perturb_published_base, simulate_period
from pipeline.demo.rates import CHURN_LEVELS, DemoRates
from pipeline.demo.register import (MovementLog, plan_list_cleaning, schedule_register_actions,
                                    seed_ghost_patients, seed_outside_patients, seed_register_at_base,
                                    update_register)
from pipeline.demo.schools import make_schools, react_to_moves, take_school_census
from pipeline.demo.survey import draw_survey, expected_indicators
from pipeline.demo.timeline import as_day, census_dates, quarter_ends, years_between
from pipeline.demo.truth import TruthRecorder, annual_turnover


def random_stream(seed: int, name: str) -> np.random.Generator:
    """An independent generator per component, so e.g. the survey size leaves people alone."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def plan_asylum(frame: Frame, settings: DemoSettings, rates: DemoRates, extract_dates, rng):
    """Expected placements per quarter by LSOA, and a step up in one dispersal LSOA (a new
    property) from a quarter in the second half of the period."""
    base = np.where(frame.lsoa_dispersal, rates.asylum_per_lsoa_quarter * settings.scale, 0.0)
    lsoa = int(rng.choice(np.flatnonzero(frame.lsoa_dispersal)))
    quarter = int(rng.integers(max(1, len(extract_dates) // 2), len(extract_dates)))
    step_from = as_day(extract_dates[quarter - 1])

    def expected_from(t0) -> np.ndarray:
        out = base.copy()
        if as_day(t0) >= step_from:
            out[lsoa] += rates.asylum_step_up_per_quarter * settings.scale
        return out

    return expected_from, {"lsoa_code": str(frame.lsoa_code[lsoa]), "from": str(step_from),
                           "extra_per_quarter": rates.asylum_step_up_per_quarter * settings.scale}


def build_district(settings: DemoSettings, rates: DemoRates, out: Path) -> dict:
    """Simulate and write raw/ and truth/ under `out`. Returns the summary."""
    started = time.perf_counter()
    seed = settings.seed
    raw, truth_dir = out / "raw", out / "truth"
    frame = load_frame(settings.n_lsoas, settings.churn_mix, rates, random_stream(seed, "frame"))
    rng = random_stream(seed, "simulation")
    fmt = random_stream(seed, "formatting")

    extract_dates = quarter_ends(settings.start_date, settings.quarters)
    extract_days = np.array(extract_dates, dtype="M8[D]")
    censuses = census_dates(settings.start_date, extract_dates[-1])
    survey_date = extract_dates[settings.quarters // 2]
    checkpoints = sorted(set(extract_dates[1:]) | set(censuses))

    people, true_base = draw_initial_population(frame, settings.scale, settings.start_date, rates, rng)
    published = perturb_published_base(true_base, frame, rates, random_stream(seed, "published base"))
    seed_register_at_base(people, frame, rates, rng, settings.start_date)
    seed_ghost_patients(people, frame, rates, rng, settings.start_date)
    seed_outside_patients(people, frame, rates, rng, settings.start_date)
    sweeps = plan_list_cleaning(people, frame, rates, rng, extract_days)
    schools = make_schools(frame, len(people.residents()), rates, random_stream(seed, "schools"))
    asylum_expected, asylum_step = plan_asylum(frame, settings, rates, extract_dates, rng)
    blank_flag_practices = fmt.random(len(frame.practice_code)) < 0.15

    files: dict[str, int] = {}

    def put(relative: str, rows: int) -> None:
        files[relative] = rows

    def write_extract(on) -> None:
        name = f"gp_register/gp_register_{on.isoformat()}.csv"
        put(name, writers.write_register_extract(raw / name, people, frame, on, seed, blank_flag_practices, fmt))

    truth = TruthRecorder()
    write_extract(settings.start_date)
    truth.snapshot(people, frame, settings.start_date)
    log, moves = EventLog(), MovementLog()
    survey_columns, expected = None, None
    previous = settings.start_date
    for t in checkpoints:
        events = simulate_period(people, frame, rates, rng, previous, t, log, asylum_expected(previous))
        schedule_register_actions(people, events, rates, rng, t)
        react_to_moves(people, events.moved, rates, rng)
        update_register(people, frame, rates, rng, previous, t, sweeps, moves)
        if t in censuses:
            census = take_school_census(people, schools, frame, rates, rng, t)
            name = f"school_census/school_census_{t.isoformat()}.csv"
            put(name, writers.write_school_census(raw / name, census, people, schools, frame, seed))
        if t in extract_dates:
            write_extract(t)
            truth.snapshot(people, frame, t)
        if t == survey_date and settings.survey_size > 0:
            survey_rng = random_stream(seed, "survey")
            survey_columns = draw_survey(people, frame, rates, survey_rng, t, settings.survey_size)
            expected = expected_indicators(people, frame, t)
        previous = t

    events_log = log.arrays()
    put("gp_movements/gp_movements.csv", writers.write_movements(raw / "gp_movements/gp_movements.csv",
                                                                  moves.arrays(), frame, seed, fmt))
    if survey_columns is not None:
        put("survey/residents_survey.csv",
            writers.write_survey(raw / "survey/residents_survey.csv", survey_columns, people, frame))
    put("vital_events/vital_events.csv", writers.write_csv(raw / "vital_events/vital_events.csv",
                                                           aggregates.vital_event_rows(events_log, frame, extract_days)))
    put("asylum/asylum_allocations.csv", writers.write_csv(raw / "asylum/asylum_allocations.csv",
                                                           aggregates.asylum_rows(events_log, frame, extract_days)))
    ward_pop = truth.ward_population()
    ward_mix = np.bincount(frame.pc_ward[:frame.n_in_area], frame.lsoa_nonwhite[frame.pc_lsoa[:frame.n_in_area]],
                           frame.n_wards) / np.maximum(np.bincount(frame.pc_ward[:frame.n_in_area], minlength=frame.n_wards), 1)
    incident_columns, spike = aggregates.incident_rows(ward_pop[:-1], ward_mix, frame, rates,
                                                       random_stream(seed, "incidents"), extract_days)
    put("incidents/incidents.csv", writers.write_csv(raw / "incidents/incidents.csv", incident_columns))
    base_name = f"base_population/ons_mye_{settings.start_date.year}_lsoa_sya.csv"
    put(base_name, writers.write_base_population(raw / base_name, published, frame, settings.start_date))
    put("geography/postcode_directory.csv", writers.write_geography(raw / "geography/postcode_directory.csv", frame))
    writers.write_text(raw / "README.md", writers.RAW_README)

    years = years_between(settings.start_date, extract_dates[-1])
    turnover = annual_turnover(events_log, frame, np.stack(truth.lsoa).sum(axis=(2, 3)).mean(axis=0), years)
    truth_files = {
        "population_lsoa.csv": truth.population_rows("lsoa", frame),
        "population_ward.csv": truth.population_rows("ward", frame),
        "ethnicity_ward.csv": truth.ethnicity_rows(frame),
        "lsoa_churn.csv": {"lsoa_code": frame.lsoa_code,
                           "churn_level": np.asarray(CHURN_LEVELS, dtype=object)[frame.lsoa_churn],
                           "annual_turnover": np.round(turnover, 4)},
        "register_truth.csv": truth.register_rows(frame),
    }
    if expected is not None:
        truth_files["survey_expected.csv"] = {k: np.array([r[k] for r in expected], dtype=object if k != "expected_value" else float)
                                              for k in ("indicator_id", "area_code", "area_type", "expected_value")}
    truth_rows = {name: writers.write_csv(truth_dir / name, cols) for name, cols in truth_files.items()}
    writers.write_text(truth_dir / "README.md", writers.TRUTH_README)

    summary = {
        "skipped": False,
        "note": writers.SYNTHETIC_NOTE,
        "seed": seed,
        "settings": settings.model_dump(mode="json"),
        "lsoas": frame.n_lsoas,
        "wards": frame.n_wards,
        "extract_dates": [d.isoformat() for d in extract_dates],
        "census_dates": [d.isoformat() for d in censuses],
        "survey_date": survey_date.isoformat() if survey_columns is not None else None,
        "people_simulated": len(people),
        "residents_at_base": int(true_base.sum()),
        "residents_at_end": int(np.stack(truth.lsoa[-1]).sum()),
        "churn_levels": {name: int((frame.lsoa_churn == k).sum()) for k, name in enumerate(CHURN_LEVELS)},
        "list_inflation_at_base": truth.inflation_by_churn(frame, 0),
        "list_inflation_at_end": truth.inflation_by_churn(frame, -1),
        "mean_turnover_by_churn": {name: round(float(np.average(turnover[frame.lsoa_churn == k],
                                                                weights=truth.register[0]["resident"][frame.lsoa_churn == k]
                                                                + 1e-9)), 4)
                                   for k, name in enumerate(CHURN_LEVELS) if (frame.lsoa_churn == k).any()},
        "dispersal_lsoas": [str(c) for c in frame.lsoa_code[frame.lsoa_dispersal]],
        "asylum_step_up": asylum_step,
        "list_cleaning": [{"practice_code": str(frame.practice_code[s.practice]), "date": str(s.date),
                           "ghost_share": round(s.ghost_share, 3), "removed": s.removed} for s in sweeps],
        "incident_spike": spike,
        "schools": {"primary": int((schools.phase == 0).sum()), "secondary": int((schools.phase == 1).sum()),
                    "special": int((schools.phase == 2).sum())},
        "raw_files": files,
        "truth_files": truth_rows,
        "rates": _rates_as_dict(rates),
    }
    summary["seconds"] = round(time.perf_counter() - started, 2)
    manifest = {k: v for k, v in summary.items() if k != "seconds"}
    writers.write_json(truth_dir / "manifest.json", manifest)
    return summary


def _rates_as_dict(rates: DemoRates) -> dict:
    from dataclasses import asdict
    return asdict(rates)
