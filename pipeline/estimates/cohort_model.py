"""The cohort chassis: one roll-forward by single-year birth cohort, fed by either data mode.

Both data modes end in the same arrays: the published base by LSOA x sex x single year of age
on the base date b, and the GP list by LSOA x sex x single year at every extract t (t0 the first).
Counts-only mode estimates the list by age (IPF of practice profiles, counts.py); register mode
reads it off the register exactly (sql/prepare/12_est_list_sya.sql). From there one function,
roll_cohorts, makes the estimates:

1. **Sex of a persons-only base**: P_i(s, a) = P_i(a) x (L_i(s, band, t0) + k r_s(band)) /
   (L_i(band, t0) + k), the LSOA's list sex share in the band shrunk (k = 20 people) towards
   the district's share r_s (the caller's, by single year).
2. **The base aged to t0** (cohorts.age_counts), the gap between the base date and the first
   extract included; people born between b and t0 come from the list at t0 (L / I).
3. **A list-informed base** (base.py): each LSOA's base total moves towards its list-implied
   size by a precision weight, with a curve of log inflation over the LA's LSOAs (blend_covariate:
   "auto" = by the list's share aged 18-34 where the register gives the list's ages, the LA's
   mean in counts-only mode, where those ages are modelled: choose_blend_covariate) and the published
   base's LSOA error s_B = ``counts_base_sd`` (England: mid-2020 LSOA estimates against Census
   2021, margin_model.json). The list's own scatter about the curve is measured on the
   district's LSOAs, so the weight falls where the list says little. It uses the first extract
   only (no turbulence), so nothing is revised when later extracts arrive.
4. **Inflation** I by LSOA x sex x band at t0, shrunk towards the ward's and LA's (inflation.py),
   and its change since t0, g_i(t), measured where there is a school census as the change in the
   LA's list-to-census ratio of children of years R-11 (school_signal.py; `school_signal = "la"`;
   g = 1 without a census or with "off").
5. **Roll forward by cohort**:

       est_i(s, a, t) = max(0, B~_i(s, a, t) + (L*_i(s, a, t) / g_i(t) - L~*_i(s, a, t0 -> t)) / I~)

   ~ = aged by cohort from t0 to t (I aged with the list it applies to); ages born after t0 have
   no base or t0 list and take the youngest band's inflation. L* = L + `births_unregistered` at
   age 0 (what the caller knows the list lacks: register mode's births not yet registered). Deaths are in the
   list change once; where the caller passes the vital events' deaths (register modes), those between
   the base date and t0 come off the aged base (remove_deaths) and those since t0 count one resident
   each rather than 1 / I~ (roll_list_change), and in register modes babies born since t0 count one for
   one (issue 9, LA sex x age cells: benchmarks/results/regimes_la_cells.md). List cleaning is not added back: a cleaning
   burst removes ghosts whose departure never lowered the list, so the fall in the list is the
   first time they are counted leaving (adding it back would count ghosts who were never taken
   off). No flow uplifts: what a registration or deregistration "stands for" is not something a
   district can estimate from its own data. Bands are only for publishing (fold_to_bands).

Where it stands against ratio change (issue 9; benchmarks/results/regimes_backtest_fresh.md, 15
fresh districts of the independent regimes simulator, three seeds per regime): the error at two
years is mostly the published base's (its LA-wide error alone is 5-11% in some districts and no
method here can see it); the list change adds 1.5-3.5 points. The change is where the cohort
roll-forward and ratio change differ (bias of the change since t0 at two years, as a share of the
truth): ageing by cohort gets 16-24 year-olds' change where ratio change's band ratio misses it
(-0.6 to -2.6% against -5.9 to -7.5% in the four regimes without students), but it keeps student
cohorts' ghosts (students who left without deregistering stay on the cohort's list until a sweep:
16-24 at +9.6 to +11% in the students regime against ratio change's +4.2 to +4.4%), understates
25-44 growth more (-2.0 to -2.8% against -1.1 to +0.9%: arrivals who register late or never,
divided by the cohort's inflation), and where inflation grows (regime growing) both methods
drift up by about 3 points in two years. The
list-informed base wins at the first extract (steady: 8.7% against 9.6%), but with the LA-mean
curve it moves high-inflation LSOAs up, the same LSOAs whose lists then inflate further; the
young-share curve explains much of that inflation and is what closes the gap in register modes.

The comparators beside it (population_estimates_methods) are computed from the raw list: carry-
forward is the published base as published (same ages, not aged); ratio change is
P(g) L(g, t) / L(g, t0) by LSOA x sex x band g, in counts-only mode constrained to the LSOA's own
total ratio change P_i L_i(t) / L_i(t0) (the form real counts support), in register mode by cell
as before.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .base import blend_base
from .cohorts import BAND_LABELS, age_counts, band_of_age, born_after, fold_to_bands
from .geography import assign_la
from .inflation import estimate_inflation
from .school_signal import choose_school_signal, count_list_children, measure_inflation_change, pair_censuses

log = logging.getLogger(__name__)

AGES = 91  # 0 ... 89, 90+
SEXES = ("M", "F")
SEX_SHARE_STRENGTH = 20.0  # people: pulls an LSOA's list sex share in a band towards the district's
YOUNG = slice(18, 35)  # ages 18-34: where list inflation concentrates (students, young renters, recent migrants)


def years_between(a, b) -> float:
    return (pd.Timestamp(b) - pd.Timestamp(a)).days / 365.25


def split_persons_base(persons: np.ndarray, list_t0: np.ndarray, district_share: np.ndarray) -> np.ndarray:
    """P[i, s, a] from a persons-only base P[i, a] with the list's sex share by band (step 1)."""
    band = band_of_age(AGES - 1)
    nb = band.max() + 1
    n = persons.shape[0]
    l0_band = np.zeros((n, 2, nb))
    r_band = np.zeros((2, nb))
    for bi in range(nb):
        l0_band[:, :, bi] = list_t0[:, :, band == bi].sum(axis=-1)
        r_band[:, bi] = district_share[:, band == bi].mean(axis=-1)
    k = SEX_SHARE_STRENGTH
    share_band = (l0_band + k * r_band[None]) / (l0_band.sum(axis=1, keepdims=True) + k)
    return persons[:, None, :] * share_band[:, :, band]


def roll_cohorts(pub: np.ndarray, L: np.ndarray, extracts: pd.DataFrame, lsoas: list[str], geo: pd.DataFrame,
                 settings, model: dict, base_date, *, births_unregistered: np.ndarray | None = None,
                 constrain_ratio_change: bool = True,
                 list_ages_observed: bool = False,
                 school_pupils: tuple | None = None,
                 deaths: np.ndarray | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Cells (LSOA x extract x sex x band: the columns build_lsoa_rows reads), single years, notes.

    `pub`: the published base by sex, [n, 2, AGES] (split a persons-only base first:
    split_persons_base). `L`: the list, [K, n, 2, AGES], one slice per row of `extracts`
    (extract_date, k, years_since_base; k = 0 first). `births_unregistered`: babies not yet on
    the list, added at age 0 for estimating only, [K, n, 2], or None. `geo`: est_lsoa_geo.
    `list_ages_observed`: the list's ages are read off a register (True) rather than modelled
    from practice profiles (counts-only mode); it decides blend_covariate = "auto".
    `school_pupils`: (census dates, pupils of years R-11 [C, n]) from the school census, or None;
    with settings.school_signal = "la" the list's change is divided by the LA's measured change in
    inflation g(t) (school_signal.py). `deaths`: the deaths registered since the base date by
    extract x LSOA x sex x band, cumulative, [K, n, 2, bands] (vital events), or None: those
    before t0 come off the aged base (remove_deaths), those since t0 are counted one for one
    (roll_list_change).
    """
    ex = extracts.sort_values("k").reset_index(drop=True)
    ex["extract_date"] = pd.to_datetime(ex["extract_date"])
    n = len(lsoas)
    if pub.shape != (n, 2, AGES) or L.shape != (len(ex), n, 2, AGES):
        raise ValueError(f"roll_cohorts: base {pub.shape} and list {L.shape} must be [n, 2, {AGES}] and "
                         f"[extracts, n, 2, {AGES}] for {n} LSOAs and {len(ex)} extracts")
    Ls = L
    if births_unregistered is not None:  # one more array, not two: the additions are at age 0 only
        Ls = L.copy()
        Ls[..., 0] += births_unregistered
    band = band_of_age(AGES - 1)
    nb = band.max() + 1
    t0 = ex["extract_date"].iloc[0]
    L0 = Ls[0]

    # 2. the base aged to t0 (births between the base date and t0 come from the list below)
    gap0 = max(years_between(base_date, t0), 0.0)
    B0 = age_counts(pub, gap0)
    if deaths is not None:  # the deaths between the base date and t0 (ageing alone keeps everyone)
        B0 = remove_deaths(B0, deaths[0], band)
    new0 = born_after(AGES - 1, gap0)  # share of each age at t0 born after the base date

    # 3. list-informed base (LSOA totals; every cell of an LSOA moves by the same factor), first extract only
    la = assign_la(geo, "lsoa_code").set_index("lsoa_code")["la_code"].reindex(lsoas).fillna("?").to_numpy()
    s_b = float(model["counts_base_sd"])
    listed = L0 * (1 - new0)[None, None, :]
    if settings.blend_base:
        covariate = np.zeros(n)
        if choose_blend_covariate(getattr(settings, "blend_covariate", "none"), list_ages_observed) == "young_share":
            covariate = young_share(listed)
        factor, weight, variance = blend_base(B0.sum(axis=(1, 2)), listed.sum(axis=(1, 2)), covariate, s_b, 0.0,
                                              groups=la)
    else:
        factor, weight, variance = np.ones(n), np.zeros(n), np.full(n, s_b ** 2)
    notes = {"base_moved_mean_pct": round(100 * float(np.mean(np.abs(factor - 1))), 2) if n else 0.0}
    Bb = B0 * factor[:, None, None]

    # 4. inflation by LSOA x sex x band at t0 (shrunk towards the ward and LA)
    inf_cells = pd.DataFrame({
        "lsoa_code": np.repeat(lsoas, 2 * nb),
        "sex": np.tile(np.repeat(SEXES, nb), n),
        "age_band": np.tile(BAND_LABELS, 2 * n),
        "registered": fold_to_bands(L0 * (1 - new0)[None, None, :]).reshape(-1),
        "resident": fold_to_bands(Bb).reshape(-1)})
    strength = choose_inflation_strength(settings.cell_inflation, settings.shrinkage_strength,
                                         list_ages_observed)
    infl = estimate_inflation(inf_cells, geo, strength)
    I_age = infl["inflation"].to_numpy().reshape(n, 2, nb)[:, :, band]  # [n, 2, AGES] at t0
    Bb = Bb + new0[None, None, :] * L0 / I_age  # people born between the base date and t0

    # 4b. the change in inflation since t0, measured against the school census (1 = none measured)
    g = np.ones((len(ex), n))
    if choose_school_signal(getattr(settings, "school_signal", "off"), school_pupils) == "la":
        census_dates, pupils = school_pupils
        pairing = pair_censuses(ex["extract_date"], census_dates)
        g = measure_inflation_change(count_list_children(L, ex["extract_date"]), pupils, pairing, la)
        notes["school_inflation_change_pct"] = [round(100 * (float(np.mean(g[k])) - 1), 2) for k in range(len(ex))]

    # 5. roll forward by cohort
    parts, single = [], []
    raw0 = L[0]
    for pos_k, row in enumerate(ex.itertuples(index=False)):
        d = max(years_between(t0, row.extract_date), 0.0)
        Lt = Ls[row.k]
        L0a = age_counts(L0, d)
        IL = age_counts(I_age * L0, d)
        # the inflation each cohort carries from t0; those born since t0 take the youngest band's
        own = np.where(np.arange(AGES)[None, None, :] < np.ceil(d), I_age[:, :, :1], I_age)
        Ia = np.where(L0a > 1e-9, IL / np.maximum(L0a, 1e-9), own)
        base_aged = age_counts(Bb, d)
        died = None
        if deaths is not None:  # since t0, spread over the band's single years as the aged base
            died = spread_over_band(np.maximum(deaths[pos_k] - deaths[0], 0.0), base_aged, band)
        # babies counted one for one only where the register gives the list's single years (in
        # counts-only mode an LSOA's babies are its practices' age profiles spread over it)
        est = floor_by_band(base_aged + roll_list_change(Lt, L0a, Ia, g[pos_k], d, died, list_ages_observed), band)
        raw = L[row.k]
        rc = _ratio_change(pub, raw, raw0, band, constrain_ratio_change)  # by single year
        parts.append({
            "estimate": fold_to_bands(est), "list_count": fold_to_bands(raw), "list_t0": fold_to_bands(raw0),
            "list_star": fold_to_bands(Lt), "list_star_t0": fold_to_bands(L0),
            "list_aged_t0": fold_to_bands(L0a), "base_population": fold_to_bands(base_aged),
            "published_base": fold_to_bands(pub), "est_ratio_change": fold_to_bands(rc),
        })
        single.append({"estimate": est, "list_count": raw, "list_aged_t0": L0a, "base_aged": base_aged,
                       "published_base": pub, "est_ratio_change": rc})
    cells = band_cells(parts, ex, lsoas, nb)
    # per LSOA and per LSOA x sex x band at t0, in the cells' order within each extract (estimate_inflation
    # keeps its input's rows in order: inf_cells is LSOA x sex x band, as each extract's cells)
    per_lsoa = {"base_factor": factor, "base_variance": variance, "base_weight": weight}
    for col, values in per_lsoa.items():
        cells[col] = np.tile(np.repeat(values, 2 * nb), len(ex))
    for col in ("inflation_raw", "inflation_prior", "inflation"):
        cells[col] = np.tile(infl[col].to_numpy(float), len(ex))
    cells["est_raw_list"] = cells["list_count"]
    cells["est_base_carried_forward"] = cells["published_base"]
    return cells, single_year_cells(single, ex, lsoas), notes


def band_cells(parts: list[dict], ex: pd.DataFrame, lsoas: list[str], nb: int) -> pd.DataFrame:
    """One frame of LSOA x sex x band cells for every extract (rows of `ex` in order), from each
    extract's arrays [n, 2, bands] (`parts`). Codes are categoricals whose categories sort as text
    (LSOA, sex, band: no string per row), the arrays are concatenated once, not frame by frame."""
    n, K = len(lsoas), len(parts)
    per_extract = 2 * nb * n
    # copy=False: the frame keeps the new arrays as its columns (no second copy stacking them into one block)
    frame = pd.DataFrame({key: np.concatenate([p[key].reshape(-1) for p in parts]) for key in parts[0]}, copy=False)
    frame["lsoa_code"] = pd.Categorical.from_codes(np.tile(np.repeat(np.arange(n), 2 * nb), K),
                                                   categories=pd.Index(lsoas, dtype=object))
    frame["sex"] = pd.Categorical.from_codes(np.tile(np.repeat(np.array([1, 0]), nb), n * K), categories=["F", "M"])
    text_order = np.argsort(np.array(BAND_LABELS, dtype=object))  # the bands' categories in text order
    rank = np.empty(nb, dtype=np.int64)
    rank[text_order] = np.arange(nb)
    frame["age_band"] = pd.Categorical.from_codes(np.tile(rank, 2 * n * K),
                                                  categories=np.array(BAND_LABELS, dtype=object)[text_order])
    frame["band_order"] = np.tile(np.arange(nb), 2 * n * K)
    frame["extract_date"] = np.repeat(ex["extract_date"].to_numpy(), per_extract)
    frame["k"] = np.repeat(ex["k"].to_numpy(np.int64), per_extract)
    frame["years_since_base"] = np.repeat(ex["years_since_base"].to_numpy(float), per_extract)
    return frame


def single_year_cells(parts: list[dict], ex: pd.DataFrame, lsoas: list[str]) -> pd.DataFrame:
    """One frame of LSOA x sex x single year cells for every extract (rows of `ex` in order), from each
    extract's arrays [n, 2, AGES] (`parts`), concatenated once. Codes as categoricals: no string per
    single year (12M rows nationally)."""
    n, K = len(lsoas), len(parts)
    per_extract = 2 * AGES * n
    return pd.DataFrame({
        "lsoa_code": pd.Categorical.from_codes(np.tile(np.repeat(np.arange(n), 2 * AGES), K),
                                               categories=pd.Index(lsoas, dtype=object)),
        "extract_date": np.repeat(ex["extract_date"].to_numpy(), per_extract),
        "sex": pd.Categorical.from_codes(np.tile(np.repeat(np.arange(2), AGES), n * K), categories=list(SEXES)),
        "age": np.tile(np.arange(AGES), 2 * n * K),
        **{key: np.concatenate([p[key].reshape(-1) for p in parts]) for key in parts[0]}},
        copy=False)  # the new arrays are the columns: not copied again into one block of floats


def roll_list_change(Lt: np.ndarray, L0a: np.ndarray, Ia: np.ndarray, g: np.ndarray, years: float,
                     died: np.ndarray | None = None, newborns_at_par: bool = True) -> np.ndarray:
    """The residents the list's change since t0 stands for, [n, 2, AGES] (step 5).

    With `newborns_at_par`, the part of each single year born since t0 (share s =
    born_after(years): cohorts.py) is counted one for one: a baby's registration is one resident,
    the list has had no time to gather ghosts of it, and the change in inflation measured on older
    children (g) is not its own (without it, s = 0: every list change as below). The rest is the cohort's list change net of the change in inflation, over the
    inflation the cohort carried at t0: ((1 - s) L(t) / g - L~(t0 -> t)) / I~. Deaths D since
    t0 (`died`, vital events) are one resident each and one patient each: the list change holds
    them once, divided by I~, so (1 - s) D (1 - 1 / I~) more residents are taken off.
    `Lt`, `L0a`, `Ia`, `died`: [n, 2, AGES]; `g`: [n]."""
    s_new = born_after(Lt.shape[-1] - 1, years)[None, None, :] if newborns_at_par else np.zeros((1, 1, Lt.shape[-1]))
    out = ((1.0 - s_new) * Lt / np.asarray(g, float)[:, None, None] - L0a) / Ia + s_new * Lt
    if died is not None:
        out -= (1.0 - s_new) * died * (1.0 - 1.0 / Ia)
    return out


def spread_over_band(by_band: np.ndarray, like: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Counts by band [..., bands] shared among each band's single years in proportion to `like`
    [..., AGES] (evenly where `like` is empty in the band)."""
    like = np.maximum(np.asarray(like, float), 0.0)
    sums = np.zeros((*like.shape[:-1], int(band.max()) + 1))
    for b in range(sums.shape[-1]):
        sums[..., b] = like[..., band == b].sum(axis=-1)
    total = sums[..., band]
    width = np.bincount(band)[band].astype(float)
    share = np.where(total > 0, like / np.where(total > 0, total, 1.0), 1.0 / width)
    return np.asarray(by_band, float)[..., band] * share


def remove_deaths(aged: np.ndarray, died_by_band: np.ndarray, band: np.ndarray) -> np.ndarray:
    """The aged base [n, 2, AGES] less the deaths [n, 2, bands] since the base date, spread over
    each band's single years as the aged base, never below 0."""
    return np.maximum(aged - spread_over_band(died_by_band, aged, band), 0.0)


def choose_blend_covariate(setting: str, list_ages_observed: bool) -> str:
    """The list-informed base's inflation curve: "young_share" or "none". `setting` "auto" takes
    young_share where the list's single years are read off a register (register modes) and none
    where they are modelled (counts-only mode, where an LSOA's young share is largely its practices'
    age profiles spread over it, not the LSOA's own). Issue 9: chosen on 15 fresh regimes districts
    and the real back-test (benchmarks/results/regimes_backtest_fresh.md)."""
    if setting == "auto":
        return "young_share" if list_ages_observed else "none"
    if setting not in ("none", "young_share"):
        raise ValueError(f"blend_covariate must be auto, none or young_share (got {setting!r}): see config.toml [estimates]")
    return setting


def choose_inflation_strength(setting: str, strength: float, list_ages_observed: bool) -> float:
    """The pseudo-count k that pulls each cell's inflation at t0 towards its ward's and LA's (inflation.py).

    "own" (k = 0): each cell's own list / base, so that within a cell the roll-forward is the cell's
    base moved by its own list change, B (1 + (L(t) - L(t0)) / L(t0)), as ratio change moves it; no
    other cell's inflation enters the cell's change. "shrunk": k = `strength` (settings.shrinkage_strength).
    "auto": own where the register gives each cell's list exactly (register modes), shrunk where the
    cell's list is modelled from practice profiles (counts-only mode, whose cells are IPF fits).
    Why (issue 9, benchmarks/results/regimes_rc9_reading.md): with k = 50 a student area's 18-24 band
    (list / base near 0.9 before freshers register) is divided by its ward's inflation (near 1.2) and
    its change drifts; a k estimated from the district's own cells (Poisson scatter, by moments) kept
    the drift (k larger still), and k = 0 removed most of it in every regime."""
    if setting == "auto":
        return 0.0 if list_ages_observed else float(strength)
    if setting == "own":
        return 0.0
    if setting == "shrunk":
        return float(strength)
    raise ValueError(f"cell_inflation must be auto, own or shrunk (got {setting!r}): see config.toml [estimates]")


def young_share(listed: np.ndarray) -> np.ndarray:
    """Per LSOA, 1,000 x the share of its list [n, 2, AGES] aged 18-34 (the list-informed base's
    covariate with blend_covariate = "young_share"; base.py fits its curve on the log)."""
    total = listed.sum(axis=(1, 2))
    young = listed[:, :, YOUNG].sum(axis=(1, 2))
    return 1000.0 * np.where(total > 0, young / np.maximum(total, 1e-9), 0.0)


def floor_by_band(est: np.ndarray, band: np.ndarray) -> np.ndarray:
    """No negative estimate, floored where it is published: each band's sum at max(0, sum), its
    single years sharing it in proportion to their positive parts. (Flooring every single year
    at 0 would bias small areas upwards: a register's single years often differ from the base's
    smooth ones, so one year's list change can exceed its aged base while the next year's falls
    short by as much.)"""
    positive = np.maximum(est, 0.0)
    raw_band = fold_to_bands(est)
    pos_band = fold_to_bands(positive)
    scale = np.where(pos_band > 0, np.maximum(raw_band, 0.0) / np.where(pos_band > 0, pos_band, 1.0), 0.0)
    return positive * scale[..., band]


def _ratio_change(pub, Lt, L0, band, constrained: bool) -> np.ndarray:
    """Ratio change by LSOA x sex x single year: each band's ratio P(g) L(g, t) / L(g, t0) applied
    to its single years (the base carried forward where L(g, t0) = 0); `constrained`: scaled to the
    LSOA's total ratio change P L(t) / L(t0)."""
    lb_t, lb_0 = fold_to_bands(Lt), fold_to_bands(L0)
    if not constrained:
        return pub * np.where(lb_0 > 0, lb_t / np.where(lb_0 > 0, lb_0, 1.0), 1.0)[:, :, band]
    tot_t = Lt.sum(axis=(1, 2))
    tot_0 = L0.sum(axis=(1, 2))
    ratio = np.where(tot_0 > 0, tot_t / np.where(tot_0 > 0, tot_0, 1.0), 1.0)
    band_ratio = np.where(lb_0 > 0, lb_t / np.where(lb_0 > 0, lb_0, 1.0), ratio[:, None, None])
    rc = pub * band_ratio[:, :, band]
    rc_tot = rc.sum(axis=(1, 2))
    rc *= np.where(rc_tot > 0, pub.sum(axis=(1, 2)) * ratio / np.where(rc_tot > 0, rc_tot, 1.0), 0.0)[:, None, None]
    return rc
