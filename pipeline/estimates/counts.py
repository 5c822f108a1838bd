"""Counts-only mode: estimates from published counts, without a patient-level register.

What an analyst holding only NHS Digital's published files has: practice x LSOA patient counts at
each extract (``gp_counts``; persons or by sex), the same publication's practice x sex x single
year of age counts (``gp_practice_age``; all of a practice's patients, wherever they live; not
necessarily at every extract), and a published base by LSOA x single year (persons only or by
sex). For LSOA i, sex s, single year of age a and extract t (t0 the first, b the base date):

1. **The list by LSOA x sex x age** (not published) by iterative proportional fitting, practice by
   practice: the seed x[i, (s, a)] = n[p, i](t) x pi_i(s, a), where pi_i is LSOA i's base age
   structure aged by cohort to t (with the district's sex ratio by age from the practice files),
   is raked (cohorts.fit_ipf) to both published margins: the practice's patients in each LSOA,
   n[p, i](t), and its age-sex profile A_p(s, a) scaled to its patients in these LSOAs. Summed
   over practices this is L_i(s, a, t): the LSOA's own age structure where the practices say
   nothing, the practices' published profiles where they do. A practice with no profile keeps
   the seed (its patients spread like the LSOA's base). At an extract without a practice x age
   file the practice's latest earlier profile is aged by cohort to t (its youngest cohort
   standing in for the births since). Where the counts are published by sex, or in the
   age-banded variant, the LSOA's fitted list is then scaled to them, sex by sex (and band by
   band), the single years keeping their fitted shares (rake_to_detail). With a base by sex the
   seed is the base's own sex x age structure.
2. - 5. **The cohort chassis** (cohort_model.py, shared with register mode): the sex of a
   persons-only base from the list's sex shares by band shrunk (k = 20 people) towards the
   district's r_s from the practice profiles; the base aged by cohort to t0 (people born between
   the base date and t0 taken from the list: L/I); the list-informed base (base.py, with the LA's
   mean log inflation as the curve and s_B = ``counts_base_sd``, first extract only); inflation I
   by LSOA x sex x band at t0 (inflation.py); and the roll forward by cohort,

       est_i(s, a, t) = B~_i(s, a, t) + (L_i(s, a, t) - L~_i(s, a, t0 -> t)) / I~   (>= 0 by band)

   Deaths are in the list change once and there is no list-cleaning add-back.
6. **Turbulence** from what the counts show: the gross change of each practice's patients in the
   LSOA between consecutive extracts, sum_p |n[p, i](t) - n[p, i](t-1)|, per 1,000 list-years
   (a move between two of the area's practices counts twice, like a deregistration plus a
   registration; a move that keeps the practice is invisible), pooled with pupil moves from the
   school census and asylum allocations where present, as in register mode
   (score_count_turbulence). This is a different quantity from
   register-mode turbulence (moves per 1,000 residents a year), on its own scale: counts-mode
   margins are calibrated on it (margin_model.json, mode counts_only). The score at extract t
   pools the periods up to t only (0 at the first extract), and the list-informed base uses the
   first extract only, so no estimate is revised when later extracts arrive.

The comparators kept beside it (population_estimates_methods): carry-forward is the published
base as published (same ages, not aged); ratio change is ONS's simplest form, P(g) L(g, t) / L(g, t0)
by LSOA x sex x band g, constrained to the LSOA's own total ratio change P_i L_i(t) / L_i(t0).
"""

from __future__ import annotations

import datetime as dt
import logging

import duckdb
import numpy as np
import pandas as pd

from pipeline.sql import run_steps

from .cohort_model import AGES, SEXES, roll_cohorts, split_persons_base
from .cohort_model import years_between as _years
from .cohorts import BAND_LABELS, age_counts, band_of_age, born_after, fit_ipf
from .school_signal import read_school_pupils

log = logging.getLogger(__name__)

SEED_FLOOR = 0.05  # share of the district age structure mixed into each LSOA's seed (no empty ages)


def prepare_counts(con: duckdb.DuckDBPyConnection, folder, base_date: dt.date, base_source: str) -> None:
    run_steps(con, folder, {"base_date": base_date, "base_source": base_source})


def _profiles(con) -> dict[str, list[tuple[pd.Timestamp, np.ndarray]]]:
    """practice -> [(profile date, array [2, AGES])] sorted by date."""
    df = con.execute("SELECT * FROM est_practice_ages").df()
    out: dict[str, list] = {}
    if df.empty:
        return out
    df["profile_date"] = pd.to_datetime(df["profile_date"])
    df["s"] = df["sex"].map({"M": 0, "F": 1})
    for (p, d), g in df.groupby(["practice_code", "profile_date"], sort=True):
        arr = np.zeros((2, AGES))
        np.add.at(arr, (g["s"].to_numpy(), g["age"].to_numpy().astype(int)), g["patients"].to_numpy())
        out.setdefault(p, []).append((d, arr))
    return out


def profile_at(history: list[tuple[pd.Timestamp, np.ndarray]], date: pd.Timestamp) -> np.ndarray:
    """A practice's age-sex profile at `date`: its latest profile on or before, aged by cohort to
    `date` (the youngest cohort standing in for births since); the earliest when all are later."""
    before = [(d, a) for d, a in history if d <= date]
    d, arr = before[-1] if before else history[0]
    y = _years(d, date)
    if y <= 0:
        return arr
    return age_counts(arr, y) + born_after(AGES - 1, y)[None, :] * arr[:, :1]


def district_sex_share(profiles: dict) -> np.ndarray:
    """Share male / female by single year of age over all practice profiles ([2, AGES]); 0.5 without any."""
    total = np.zeros((2, AGES))
    for history in profiles.values():
        total += history[0][1]
    s = total.sum(axis=0)
    return np.where(s > 0, total / np.where(s > 0, s, 1.0), 0.5)


def list_by_age(lists_t: pd.DataFrame, lsoa_index: dict, seed_struct: np.ndarray, profiles: dict,
                date: pd.Timestamp) -> tuple[np.ndarray, dict]:
    """L[i, s, a] at one extract by IPF practice by practice (module docstring, step 1)."""
    n_lsoa = seed_struct.shape[0]
    flat = seed_struct.reshape(n_lsoa, -1)
    share = flat / np.maximum(flat.sum(axis=1, keepdims=True), 1e-12)
    district = flat.sum(axis=0) / max(flat.sum(), 1e-12)
    share = (1 - SEED_FLOOR) * share + SEED_FLOOR * district[None, :]
    out = np.zeros_like(flat)
    fitted = unprofiled = 0.0
    for practice, g in lists_t.groupby("practice_code", sort=False):
        idx = g["lsoa_code"].map(lsoa_index).to_numpy()
        rows = g["patients"].to_numpy(float)
        seed = rows[:, None] * share[idx]
        if practice in profiles:
            cols = profile_at(profiles[practice], date).reshape(-1)
            x = fit_ipf(seed, rows, cols)
            fitted += rows.sum()
        else:
            x = seed
            unprofiled += rows.sum()
        np.add.at(out, idx, x)
    return out.reshape(seed_struct.shape), {"patients_with_profile": fitted, "patients_without_profile": unprofiled}


def rake_to_detail(list_age: np.ndarray, detail: pd.DataFrame, index: dict) -> np.ndarray:
    """Scale L[i, s, a] to what the published counts say by sex (and, from the age-banded variant,
    by sex x band) for each LSOA: within a published cell the ages keep their fitted shares (spread
    evenly where the fit has none)."""
    if detail.empty:
        return list_age
    out = list_age.copy()
    band = band_of_age(AGES - 1)
    labels = {label: i for i, label in enumerate(BAND_LABELS)}
    detail = detail[detail["lsoa_code"].isin(index.keys())]
    banded = detail[detail["age_band"].notna()]
    covered = set(zip(banded["lsoa_code"], banded["sex"]))
    for code, sex in covered:  # the banded form lists every cell of an LSOA and sex: one it omits has none
        out[index[code], 0 if sex == "M" else 1] = 0.0
    by_sex = detail[detail["age_band"].isna()]
    by_sex = by_sex[[(c, x) not in covered for c, x in zip(by_sex["lsoa_code"], by_sex["sex"])]]
    for r in pd.concat([banded, by_sex]).itertuples(index=False):
        i, s = index[r.lsoa_code], 0 if r.sex == "M" else 1
        ages = (band == labels[r.age_band]) if isinstance(r.age_band, str) else np.ones(AGES, bool)
        fitted = list_age[i, s, ages]
        total = fitted.sum()
        out[i, s, ages] = fitted * (r.patients / total) if total > 0 else r.patients / ages.sum()
    return out


def score_count_turbulence(f: pd.DataFrame, model: dict) -> np.ndarray:
    """Counts-mode turbulence, pooled like register mode's (turbulence.py):

        T = 1000 (gross change + w_school pupil moves) / (list-years + w_school pupil-years)
            + w_asylum 1000 asylum allocations / resident-years
    """
    ws, wa = float(model["w_school"]), float(model["w_asylum"])
    exposure = f["list_years"].to_numpy(float) + ws * f["pupil_years"].to_numpy(float)
    moves = f["gross_change"].to_numpy(float) + ws * f["pupil_moves"].to_numpy(float)
    ry = f["resident_years"].to_numpy(float)
    pooled = np.where(exposure > 0, 1000.0 * moves / np.where(exposure > 0, exposure, 1.0), 0.0)
    asylum = np.where(ry > 0, 1000.0 * f["asylum_allocated"].to_numpy(float) / np.where(ry > 0, ry, 1.0), 0.0)
    return pooled + wa * asylum


def count_turbulence(lists: pd.DataFrame, extracts: pd.DataFrame, lsoas: list[str]) -> pd.DataFrame:
    """Per LSOA and period: gross practice x LSOA change and the list it is measured on (step 6)."""
    w = lists.pivot_table(index=["lsoa_code", "practice_code"], columns="extract_date", values="patients",
                          aggfunc="sum", fill_value=0.0)
    dates = list(extracts.sort_values("k")["extract_date"])
    rows = []
    for k in range(1, len(dates)):
        a, b = dates[k - 1], dates[k]
        prev = w[a] if a in w.columns else 0.0
        cur = w[b] if b in w.columns else 0.0
        gross = (cur - prev).abs().groupby(level=0).sum()
        size = (prev if isinstance(prev, pd.Series) else cur * 0).groupby(level=0).sum()
        rows.append(pd.DataFrame({"lsoa_code": gross.index, "extract_date": b, "gross_change": gross.to_numpy(),
                                  "list_prev": size.reindex(gross.index).to_numpy()}))
    frame = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["lsoa_code", "extract_date", "gross_change", "list_prev"])
    return frame[frame["lsoa_code"].isin(lsoas)]


def estimate_from_counts(con: duckdb.DuckDBPyConnection, settings, model: dict, base_date: dt.date,
                         geo: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Cells (LSOA x extract x sex x band, the columns build_lsoa_rows reads), turbulence and notes."""
    ex = con.execute("SELECT extract_date, k, years_since_base, coalesce(period_years, 0) AS period_years "
                     "FROM est_extracts ORDER BY k").df()
    ex["extract_date"] = pd.to_datetime(ex["extract_date"])
    base = con.execute("SELECT * FROM est_base_sya").df()
    lists = con.execute("SELECT * FROM est_count_lists").df()
    lists["extract_date"] = pd.to_datetime(lists["extract_date"])
    profiles = _profiles(con)
    lsoas = sorted(base["lsoa_code"].unique())
    index = {c: i for i, c in enumerate(lsoas)}
    n = len(lsoas)
    notes: dict = {"lsoas": n, "extracts": len(ex), "practices_with_age_profile": len(profiles)}
    base_ts = pd.Timestamp(base_date)

    # the published base by sex x single year (P: persons, split below)
    by_sex = base[base["sex"].isin(SEXES)]
    persons_only = by_sex.empty
    if persons_only:
        pp = np.zeros((n, AGES))
        b = base[base["sex"] == "P"]
        np.add.at(pp, (b["lsoa_code"].map(index).to_numpy(), b["age"].to_numpy().astype(int)), b["population"].to_numpy())
    else:
        pub = np.zeros((n, 2, AGES))
        np.add.at(pub, (by_sex["lsoa_code"].map(index).to_numpy(), by_sex["sex"].map({"M": 0, "F": 1}).to_numpy(),
                        by_sex["age"].to_numpy().astype(int)), by_sex["population"].to_numpy())
        pp = pub.sum(axis=1)
    rho = district_sex_share(profiles)  # [2, AGES]
    notes["sex_split"] = ("persons-only base split by sex from the GP list (IPF of practice profiles), "
                          "shrunk to the district's sex ratio by age" if persons_only else "base by sex as published")

    # 1. the list by LSOA x sex x age at each extract
    L = np.zeros((len(ex), n, 2, AGES))
    ipf_notes = []
    detail = con.execute("SELECT * FROM est_count_detail").df()
    detail["extract_date"] = pd.to_datetime(detail["extract_date"])
    for row in ex.itertuples(index=False):
        gap = max(_years(base_ts, row.extract_date), 0.0)
        new = born_after(AGES - 1, gap)
        if persons_only:
            struct = age_counts(pp, gap) + new[None, :] * pp[:, :1]
            seed = struct[:, None, :] * rho[None, :, :]
        else:
            seed = age_counts(pub, gap) + new[None, None, :] * pub[:, :, :1]
        lt = lists[lists["extract_date"] == row.extract_date]
        L[row.k], note = list_by_age(lt, index, seed, profiles, row.extract_date)
        L[row.k] = rake_to_detail(L[row.k], detail[detail["extract_date"] == row.extract_date], index)
        ipf_notes.append(note)
    with_profile = sum(x["patients_with_profile"] for x in ipf_notes)
    total_listed = with_profile + sum(x["patients_without_profile"] for x in ipf_notes)
    notes["list_share_with_practice_profile"] = round(with_profile / total_listed, 4) if total_listed else 0.0
    if not profiles:
        log.warning("counts-only mode without the practice x age file (gp_practice_age): the list's age and sex "
                    "structure is the base's own, so age and sex rows follow the base")

    # 2-5. sex of a persons-only base, the base aged to t0, the list-informed base, inflation and the
    # roll-forward by cohort: the chassis register mode shares (cohort_model.py)
    if persons_only:
        pub = split_persons_base(pp, L[0], rho)
    cells, single, chassis_notes = roll_cohorts(pub, L, ex, lsoas, geo, settings, model, base_date,
                                                constrain_ratio_change=True,
                                                school_pupils=read_school_pupils(con, lsoas))
    notes.update(chassis_notes)
    for col in ("births_lag", "deaths_lag", "registrations", "from_abroad", "deregistrations", "cleaning",
                "cum_cleaning", "cum_registrations", "cum_deregistrations"):
        cells[col] = 0.0

    # turbulence (step 6): gross change of each practice's patients in the LSOA between extracts
    turb_raw = count_turbulence(lists, ex, lsoas).merge(ex[["extract_date", "k", "period_years"]],
                                                        on="extract_date", how="left")
    turb_raw["list_years"] = turb_raw["list_prev"] * turb_raw["period_years"]

    # turbulence per LSOA x extract from the periods up to that extract only (0 at the first), in the
    # form build_lsoa_rows reads: gross change per 1,000 list-years
    frame = pd.DataFrame({"lsoa_code": np.repeat(lsoas, len(ex)), "extract_date": np.tile(ex["extract_date"], n)})
    frame = frame.merge(turb_raw[["lsoa_code", "extract_date", "gross_change", "list_prev", "list_years"]],
                        on=["lsoa_code", "extract_date"], how="left").fillna(
        {"gross_change": 0.0, "list_prev": 0.0, "list_years": 0.0})
    for name, cols in (("est_school_moves", ["pupil_moves", "pupil_years"]), ("est_asylum", ["asylum_allocated"])):
        extra = con.execute(f"SELECT lsoa_code, extract_date, {', '.join(cols)} FROM {name}").df()
        extra["extract_date"] = pd.to_datetime(extra["extract_date"])
        frame = frame.merge(extra, on=["lsoa_code", "extract_date"], how="left")
    frame = frame.merge(ex[["extract_date", "k", "years_since_base", "period_years"]], on="extract_date", how="left")
    frame = frame.merge(pd.DataFrame({"lsoa_code": lsoas, "residents": pub.sum(axis=(1, 2))}), on="lsoa_code")
    frame[["pupil_moves", "pupil_years", "asylum_allocated"]] = frame[
        ["pupil_moves", "pupil_years", "asylum_allocated"]].fillna(0.0).astype(float)
    frame.loc[frame["k"] == 0, ["pupil_moves", "pupil_years", "asylum_allocated"]] = 0.0
    frame["resident_years"] = frame["residents"] * frame["period_years"].fillna(0.0)
    frame = frame.sort_values(["lsoa_code", "extract_date"]).reset_index(drop=True)
    parts = ["gross_change", "list_years", "pupil_moves", "pupil_years", "asylum_allocated", "resident_years"]
    cum = frame.groupby("lsoa_code")[parts].cumsum()
    frame["turbulence"] = score_count_turbulence(cum, model)
    frame["period_score"] = np.where(frame["k"] > 0, score_count_turbulence(frame, model), np.nan)
    frame["tau"] = frame["turbulence"] * np.maximum(frame["years_since_base"], 0.0) / 1000.0
    audit, turb = frame, frame
    return cells, turb[["lsoa_code", "extract_date", "turbulence", "tau", "residents"]], {
        **notes, "audit": audit, "single_years": single}
