"""Write a simulated district as the canonical raw extracts (shared/spec/inputs.md) and its truth.

Data modes (what an analyst holds):
* `movements`: geography, base, vital events, register snapshots and the movements file;
* `snapshots`: the same without gp_movements/;
* `counts`: no record-level register: NHS Digital's practice x LSOA counts by sex (gp_counts/)
  and practice x sex x single-year-of-age counts (gp_practice_age/), as published (section 3).

truth/ holds what only a back-test may read: residents by LSOA x sex x single year of age
(`population_lsoa.csv`, age 90 = 90+) and by ward (`population_ward.csv`) at the base date and
every extract date, the areas' drawn facts (`lsoa_facts.csv`) and `manifest.json`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .world import DEREG_REASONS, EPOCH, NHS_ETHNIC, REG_REASONS, World

MODES = ("movements", "snapshots", "counts")


def iso(day) -> np.ndarray:
    return np.datetime_as_string(EPOCH + np.asarray(day, dtype="timedelta64[D]"), unit="D")


def nhs_date(day: int) -> str:
    d = (EPOCH + np.timedelta64(int(day), "D")).astype(object)
    return d.strftime("%d%b%Y").upper()


def patient_ids(world: World, person: np.ndarray) -> np.ndarray:
    """Pseudonyms: an affine bijection of the person number modulo 2^40 with a per-seed key."""
    if getattr(world, "_id_key", None) is None:
        world._id_key = int(world.streams["ids"].integers(1, 1 << 40))
    key = world._id_key
    mult = 0x9E3779B97F | 1
    num = (person.astype(np.uint64) * np.uint64(mult) + np.uint64(key)) % np.uint64(1 << 40)
    digits = (num[:, None] >> (np.uint64(4) * np.arange(9, -1, -1, dtype=np.uint64))) & np.uint64(15)
    chars = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)[digits.astype(np.int64)]
    return np.char.add("RG", chars.copy().view("S10").ravel().astype(str))


def write_raw(world: World, data_dir: Path, mode: str = "movements", school_census: bool = True) -> dict:
    """Write raw/ (for `mode`) and truth/ under data_dir; returns rows written per file.
    `school_census`: also write raw/school_census/ (every mode: an analyst holding only published
    GP counts may hold the LA's school census too)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    raw = Path(data_dir) / "raw"
    written = {}
    written.update(write_geography(world, raw / "geography"))
    written.update(write_base(world, raw / "base_population"))
    written.update(write_vital_events(world, raw / "vital_events"))
    if mode == "counts":
        written.update(write_counts(world, raw))
    else:
        written.update(write_snapshots(world, raw / "gp_register"))
        if mode == "movements":
            written.update(write_movements(world, raw / "gp_movements"))
    if school_census and world.school_rolls is not None and world.school_rolls.records:
        written.update(write_school_census(world, raw / "school_census"))
    write_truth(world, Path(data_dir) / "truth", mode)
    return written


def _csv(df: pd.DataFrame, path: Path) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return {str(path): len(df)}


def write_geography(world: World, folder: Path) -> dict:
    pcs = world.geo.postcodes
    directory = pd.DataFrame({"pcds": pcs["postcode"], "lsoa21cd": pcs["lsoa_code"], "msoa21cd": pcs["msoa_code"],
                              "wd23cd": pcs["ward_code"], "lad23cd": pcs["la_code"], "lat": pcs["lat"], "long": pcs["lon"]})
    names = pd.concat([
        pcs[["lsoa_code", "lsoa_name"]].drop_duplicates().set_axis(["area_code", "area_name"], axis=1).assign(area_type="lsoa"),
        pcs[["msoa_code", "msoa_hcl_name"]].drop_duplicates("msoa_code").set_axis(["area_code", "area_name"], axis=1).assign(area_type="msoa"),
        pcs[["ward_code", "ward_name"]].drop_duplicates("ward_code").set_axis(["area_code", "area_name"], axis=1).assign(area_type="ward"),
        pcs[["la_code", "la_name"]].drop_duplicates("la_code").set_axis(["area_code", "area_name"], axis=1).assign(area_type="la"),
    ], ignore_index=True)
    return {**_csv(directory, folder / "postcode_directory.csv"), **_csv(names, folder / "area_names.csv")}


def write_base(world: World, folder: Path) -> dict:
    b = world.published_base
    out = pd.DataFrame({"reference_date": iso(world.base_day).item(), "area_code": b["lsoa_code"], "sex": b["sex"],
                        "age_band": np.where(b["age"] >= 90, "90+", b["age"].astype(str)),
                        "population": b["population"], "source": "ons-mye-2022"})
    return _csv(out, folder / "base_population.csv")


def write_vital_events(world: World, folder: Path) -> dict:
    """Births by LSOA x sex and deaths by LSOA x sex x 5-year band, per quarter from the base."""
    lsoas = world.geo.lsoas["lsoa_code"].to_numpy()
    starts = [world.base_day + 1] + list(world.extract_days[:-1])
    ends = list(world.extract_days)
    bounds = np.array(starts)

    def period(day):
        return np.searchsorted(bounds, day, side="right") - 1

    parts = []
    births = pd.concat(world.births, ignore_index=True) if world.births else pd.DataFrame(columns=["day", "lsoa", "sex"])
    births = births[births["day"] < ends[-1]]
    if len(births):
        b = births.assign(k=period(births["day"].to_numpy())).groupby(["k", "lsoa", "sex"], as_index=False).size()
        parts.append(pd.DataFrame({"k": b["k"], "area_code": lsoas[b["lsoa"]], "sex": np.array(["M", "F"])[b["sex"]],
                                   "age_band": "", "births": b["size"], "deaths": ""}))
    deaths = pd.concat(world.deaths, ignore_index=True) if world.deaths else pd.DataFrame(columns=["day", "lsoa", "sex", "age"])
    deaths = deaths[deaths["day"] < ends[-1]]
    if len(deaths):
        band = np.minimum(deaths["age"].to_numpy() // 5, 17)
        labels = np.array([f"{5 * i}-{5 * i + 4}" for i in range(17)] + ["85+"])
        d = deaths.assign(k=period(deaths["day"].to_numpy()), band=labels[band]).groupby(
            ["k", "lsoa", "sex", "band"], as_index=False).size()
        parts.append(pd.DataFrame({"k": d["k"], "area_code": lsoas[d["lsoa"]], "sex": np.array(["M", "F"])[d["sex"]],
                                   "age_band": d["band"], "births": "", "deaths": d["size"]}))
    out = pd.concat(parts, ignore_index=True)
    out.insert(0, "period_end", iso(np.array(ends)[out["k"].to_numpy()] - 1))
    out.insert(0, "period_start", iso(np.array(starts)[out["k"].to_numpy()]))
    return _csv(out.drop(columns="k"), folder / "vital_events.csv")


def _untidy_postcodes(pc: np.ndarray, rng) -> np.ndarray:
    u = rng.random(len(pc))
    out = pc.astype(object)
    low = u < 0.05
    nospace = (u >= 0.05) & (u < 0.10)
    out[low] = np.char.lower(pc[low].astype(str))
    out[nospace] = np.char.replace(pc[nospace].astype(str), " ", "")
    return out


def write_snapshots(world: World, folder: Path) -> dict:
    rng = world.streams["untidy"]
    pcs = world.geo.postcodes["postcode"].to_numpy()
    codes = world.geo.practices["practice_code"].to_numpy()
    written = {}
    for day, snap in sorted(world.snapshots.items()):
        n = len(snap)
        sex = np.array(["M", "F"])[snap["sex"].to_numpy()].astype(object)
        numeric = rng.random(n) < 0.05
        sex[numeric] = np.where(snap["sex"].to_numpy()[numeric] == 0, "1", "2")
        dob = iso(snap["dob"].to_numpy()).astype(object)
        month_only = rng.random(n) < 0.03
        dob[month_only] = [d[:7] for d in dob[month_only]]
        eth = NHS_ETHNIC[snap["eth"].to_numpy()].astype(object)
        eth[rng.random(n) < 0.05] = ""
        out = pd.DataFrame({
            "extract_date": iso(day).item(), "patient_id": patient_ids(world, snap["person"].to_numpy()),
            "practice_code": codes[snap["practice"].to_numpy()],
            "postcode": _untidy_postcodes(pcs[snap["postcode"].to_numpy()], rng), "sex": sex,
            "date_of_birth": dob, "registration_date": iso(np.clip(snap["reg_date"].to_numpy(), snap["dob"].to_numpy(), day)),
            "from_abroad": np.where(snap["flag4"].to_numpy(), "Y", "N"), "ethnic_category": eth})
        written.update(_csv(out, folder / f"gp_register_{iso(day).item()}.csv"))
    return written


def movements_frame(world: World) -> pd.DataFrame:
    mv = pd.concat(world.movements, ignore_index=True)
    return mv[(mv["day"] > world.base_day) & (mv["day"] < world.extract_days[-1])].sort_values(
        ["day", "person", "event"], kind="stable").reset_index(drop=True)


def write_movements(world: World, folder: Path) -> dict:
    mv = movements_frame(world)
    pcs = world.geo.postcodes["postcode"].to_numpy()
    codes = world.geo.practices["practice_code"].to_numpy()
    reason = np.where(mv["event"].to_numpy() == 0, np.array(REG_REASONS)[mv["reason"].clip(0, 3).to_numpy()],
                      np.array(DEREG_REASONS)[mv["reason"].clip(0, 4).to_numpy()])
    out = pd.DataFrame({"patient_id": patient_ids(world, mv["person"].to_numpy()),
                        "practice_code": codes[mv["practice"].to_numpy()], "postcode": pcs[mv["postcode"].to_numpy()],
                        "event_date": iso(mv["day"].to_numpy()),
                        "event": np.where(mv["event"].to_numpy() == 0, "registration", "deregistration"),
                        "reason": reason})
    return _csv(out, folder / "gp_movements.csv")


def write_counts(world: World, raw: Path) -> dict:
    """NHS Digital's published forms: practice x LSOA x sex, and practice x sex x single year of age."""
    lsoa_of_pc = world.geo.postcodes["lsoa_code"].to_numpy()
    codes = world.geo.practices["practice_code"].to_numpy()
    written = {}
    for day, snap in sorted(world.snapshots.items()):
        pub = f"Patients Registered at a GP Practice {nhs_date(day)[2:5].title()} {nhs_date(day)[5:]}"
        sex = np.array(["MALE", "FEMALE"])[snap["sex"].to_numpy()]
        df = pd.DataFrame({"PRACTICE_CODE": codes[snap["practice"].to_numpy()],
                           "LSOA_CODE": lsoa_of_pc[snap["postcode"].to_numpy()], "SEX": sex})
        c = df.groupby(["PRACTICE_CODE", "LSOA_CODE", "SEX"], as_index=False).size()
        out = pd.DataFrame({"PUBLICATION": pub, "EXTRACT_DATE": nhs_date(day), "PRACTICE_CODE": c["PRACTICE_CODE"],
                            "PRACTICE_NAME": c["PRACTICE_CODE"] + " SURGERY", "LSOA_CODE": c["LSOA_CODE"],
                            "SEX": c["SEX"], "NUMBER_OF_PATIENTS": c["size"]})
        written.update(_csv(out, raw / "gp_counts" / f"gp-reg-pat-prac-lsoa-{iso(day).item()}.csv"))
        age = np.floor((day - snap["dob"].to_numpy()) / 365.25).astype(int)
        age_label = np.where(age >= 95, "95+", np.maximum(age, 0).astype(str))
        a = pd.DataFrame({"ORG_CODE": df["PRACTICE_CODE"], "SEX": sex, "AGE": age_label}).groupby(
            ["ORG_CODE", "SEX", "AGE"], as_index=False).size()
        out = pd.DataFrame({"PUBLICATION": pub, "EXTRACT_DATE": nhs_date(day), "ORG_CODE": a["ORG_CODE"],
                            "SEX": a["SEX"], "AGE": a["AGE"], "NUMBER_OF_PATIENTS": a["size"]})
        written.update(_csv(out, raw / "gp_practice_age" / f"gp-reg-pat-prac-sing-age-{iso(day).item()}.csv"))
    return written


def write_school_census(world: World, folder: Path) -> dict:
    """One file per census in the canonical pupil-level form (shared/spec/inputs.md section 4)."""
    from .schools import OTHER_LANGUAGES, ETHNIC_NHS_TO_DFE, pupil_ids

    rolls = world.school_rolls
    pcs = world.geo.postcodes["postcode"].to_numpy()
    sch = rolls.schools
    dfe = np.array([ETHNIC_NHS_TO_DFE[c] for c in NHS_ETHNIC])
    lang = np.array(["ENG", *OTHER_LANGUAGES])
    written = {}
    for rec in rolls.records:
        day = int(rec["census_day"].iloc[0]) if len(rec) else None
        if day is None:
            continue
        school = rec["school"].to_numpy()
        ncy = rec["nc_year"].to_numpy()
        out = pd.DataFrame({
            "census_date": iso(day).item(), "pupil_id": pupil_ids(rolls.key, rec["person"].to_numpy()),
            "urn": sch["urn"].to_numpy()[school], "school_name": sch["school_name"].to_numpy()[school],
            "phase": sch["phase"].to_numpy()[school], "nc_year": np.where(ncy == 0, "R", ncy.astype(str)),
            "sex": np.array(["M", "F"])[rec["sex"].to_numpy()], "ethnicity": dfe[rec["eth"].to_numpy()],
            "first_language": lang[rec["lang"].to_numpy()], "fsm_eligible": np.where(rec["fsm"].to_numpy(), "Y", "N"),
            "entry_date": iso(rec["entry"].to_numpy()), "home_postcode": pcs[rec["postcode"].to_numpy()]})
        written.update(_csv(out, folder / f"school_census_{iso(day).item()}.csv"))
    return written


def write_truth(world: World, folder: Path, mode: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    world.truth_lsoa.to_csv(folder / "population_lsoa.csv", index=False)
    world.truth_ward.to_csv(folder / "population_ward.csv", index=False)
    world.lsoa_facts.to_csv(folder / "lsoa_facts.csv", index=False)
    s = world.settings
    manifest = {"generator": "benchmarks/regimes", "synthetic": True, "regime": s.regime, "seed": s.seed,
                "n_lsoas": int(len(world.geo.lsoas)), "locality": s.locality, "scale": s.scale, "mode": mode,
                "base_date": s.base_date, "extract_dates": [iso(d).item() for d in world.extract_days],
                "component_seeds": {k: str(v) for k, v in world.streams.seeds.items()}}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
