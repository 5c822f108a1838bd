"""The real frame under the demo district: postcodes, LSOAs, wards, practices, ONS counts.

Everything here is read from `pipeline/demo/frame/` (real, published data) and arranged as
numpy arrays indexed by postcode, LSOA, ward and practice, so the simulation can look up a
person's areas with one fancy-index. Synthetic additions made here: the churn level and
ethnic mix of each LSOA, postcode "household" weights, and a few postcodes just outside
the area (for patients who live outside but are registered with a local practice; off by
default, see `DemoRates.outside_patient_share`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.demo.rates import DIVERSE_WARDS, OUTSIDE_OUTWARD_CODES, DemoRates

FRAME_DIR = Path(__file__).resolve().parent / "frame"
AGE_COLUMNS = [str(a) for a in range(90)] + ["90+"]


@dataclass
class Frame:
    """Geography and base counts of the kept LSOAs, as arrays."""

    postcode_rows: pd.DataFrame      # the kept rows of trafford_postcodes.csv, as text
    mye_rows: pd.DataFrame           # the kept rows of the ONS MYE file (wide), as read
    pc_code: np.ndarray              # postcode strings; in-area first, then outside ones
    pc_lsoa: np.ndarray              # LSOA index, -1 outside the area
    pc_msoa: np.ndarray
    pc_ward: np.ndarray
    pc_weight: np.ndarray            # relative number of households at the postcode
    pc_xy: np.ndarray                # km east/north of the area's centre
    n_in_area: int
    lsoa_code: np.ndarray
    lsoa_name: np.ndarray
    lsoa_msoa: np.ndarray
    lsoa_dep: np.ndarray             # 0 least ... 1 most deprived (from IMD decile)
    lsoa_imd_decile: np.ndarray
    lsoa_churn: np.ndarray           # 0 low, 1 medium, 2 high
    lsoa_nonwhite: np.ndarray        # share of residents not White, before age effects
    lsoa_black_tilt: np.ndarray      # 0..1, more Black Caribbean/African in the core wards
    lsoa_dispersal: np.ndarray       # bool: asylum dispersal housing here
    msoa_code: np.ndarray
    ward_code: np.ndarray
    ward_name: np.ndarray
    practice_code: np.ndarray
    practice_name: np.ndarray
    ward_practice_p: np.ndarray      # (ward, practice) choice probabilities
    mye: np.ndarray                  # (lsoa, sex [M, F], age 0..90) ONS counts, unscaled
    la_code: str
    la_name: str

    @property
    def n_lsoas(self) -> int:
        return len(self.lsoa_code)

    @property
    def n_wards(self) -> int:
        return len(self.ward_code)


def load_frame(n_lsoas: int, churn_mix: str, rates: DemoRates, rng: np.random.Generator) -> Frame:
    """Read the frame files, keep the first `n_lsoas` LSOAs (0 = all) and derive the areas."""
    all_postcodes = pd.read_csv(FRAME_DIR / "trafford_postcodes.csv", dtype=str, keep_default_na=False)
    mye_all = pd.read_csv(FRAME_DIR / "trafford_mye2022_lsoa_sya.csv", dtype={"area_code": str})
    imd = pd.read_csv(FRAME_DIR / "imd2019_trafford_lsoa.csv")
    practices = pd.read_csv(FRAME_DIR / "trafford_gp_patient_registrations.csv", dtype=str)

    lsoa_codes = np.array(sorted(all_postcodes["lsoa_code"].unique()))
    if n_lsoas:
        lsoa_codes = lsoa_codes[:n_lsoas]
    postcodes = all_postcodes[all_postcodes["lsoa_code"].isin(lsoa_codes)].reset_index(drop=True)
    mye_rows = (mye_all[mye_all["area_code"].isin(lsoa_codes)]
                .sort_values(["area_code", "sex"]).reset_index(drop=True))

    lsoa_index = {code: i for i, code in enumerate(lsoa_codes)}
    msoa_codes = np.array(sorted(postcodes["msoa_code"].unique()))
    ward_codes = np.array(sorted(postcodes["ward_code"].unique()))
    pc_lsoa = postcodes["lsoa_code"].map(lsoa_index).to_numpy()
    pc_msoa = np.searchsorted(msoa_codes, postcodes["msoa_code"].to_numpy())
    pc_ward = np.searchsorted(ward_codes, postcodes["ward_code"].to_numpy())

    lonlat = all_postcodes[["lon", "lat"]].astype(float).to_numpy()
    centre = lonlat.mean(axis=0)
    pc_xy = to_km(postcodes[["lon", "lat"]].astype(float).to_numpy(), centre)

    lsoa_msoa = _first_by_group(pc_lsoa, pc_msoa, len(lsoa_codes))
    lsoa_ward = _dominant_by_group(pc_lsoa, pc_ward, len(lsoa_codes), len(ward_codes))
    ward_names = postcodes.drop_duplicates("ward_code").set_index("ward_code").loc[ward_codes, "ward_name"].to_numpy()
    lsoa_names = postcodes.drop_duplicates("lsoa_code").set_index("lsoa_code").loc[lsoa_codes, "lsoa_name"].to_numpy()
    north = _dominant_by_group(pc_lsoa, (postcodes["locality"] == "North").to_numpy().astype(int), len(lsoa_codes), 2)

    decile = impute_imd_deciles(lsoa_codes, lsoa_msoa, imd)
    dep = (10 - decile) / 9.0
    core = np.array([DIVERSE_WARDS.get(ward_names[w], 0.0) for w in lsoa_ward])
    churn = assign_churn_levels(dep, north, core, churn_mix, rates, rng)
    nonwhite, black_tilt = score_ethnic_mix(dep, north, core, rates)
    dispersal = choose_dispersal_lsoas(churn, dep + core, rates)

    outside = make_outside_postcodes(set(all_postcodes["postcode"]), rng)
    n_in = len(postcodes)
    n_out = len(outside)
    ward_xy = np.array([pc_xy[pc_ward == w].mean(axis=0) for w in range(len(ward_codes))])
    practice_xy = locate_practices(practices, all_postcodes, lonlat, centre)
    ward_practice_p = practice_choice_probabilities(ward_xy, practice_xy,
                                                    practices["registered_patients"].astype(float).to_numpy())

    mye = np.zeros((len(lsoa_codes), 2, 91))
    for sex_index, sex_name in enumerate(("Males", "Females")):
        rows = mye_rows[mye_rows["sex"] == sex_name].set_index("area_code").loc[lsoa_codes, AGE_COLUMNS]
        mye[:, sex_index, :] = rows.to_numpy(dtype=float)

    return Frame(
        postcode_rows=postcodes,
        mye_rows=mye_rows,
        pc_code=np.concatenate([postcodes["postcode"].to_numpy(dtype=object), np.array(outside, dtype=object)]),
        pc_lsoa=np.concatenate([pc_lsoa, np.full(n_out, -1)]).astype(np.int32),
        pc_msoa=np.concatenate([pc_msoa, np.full(n_out, -1)]).astype(np.int32),
        pc_ward=np.concatenate([pc_ward, np.full(n_out, -1)]).astype(np.int32),
        pc_weight=np.concatenate([rng.gamma(1.5, 1.0, n_in), np.ones(n_out)]),
        pc_xy=np.concatenate([pc_xy, np.full((n_out, 2), np.nan)]),
        n_in_area=n_in,
        lsoa_code=lsoa_codes,
        lsoa_name=lsoa_names,
        lsoa_msoa=lsoa_msoa,
        lsoa_dep=dep,
        lsoa_imd_decile=decile,
        lsoa_churn=churn,
        lsoa_nonwhite=nonwhite,
        lsoa_black_tilt=black_tilt,
        lsoa_dispersal=dispersal,
        msoa_code=msoa_codes,
        ward_code=ward_codes,
        ward_name=ward_names,
        practice_code=practices["practice_code"].to_numpy(dtype=object),
        practice_name=practices["practice_name"].to_numpy(dtype=object),
        ward_practice_p=ward_practice_p,
        mye=mye,
        la_code=postcodes["la_code"].iloc[0],
        la_name=postcodes["la_name"].iloc[0],
    )


def to_km(lonlat: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Longitude/latitude to kilometres east/north of `centre` (flat earth is fine here)."""
    scale = np.array([111.32 * np.cos(np.radians(centre[1])), 110.57])
    return (lonlat - centre) * scale


def impute_imd_deciles(lsoa_codes: np.ndarray, lsoa_msoa: np.ndarray, imd: pd.DataFrame) -> np.ndarray:
    """IMD 2019 decile per LSOA; 2021 LSOAs missing from IMD 2019 take their MSOA's mean."""
    known = imd.set_index("lsoa_code")["IMD_decile"]
    decile = pd.Series(lsoa_codes).map(known).to_numpy(dtype=float).copy()
    for i in np.flatnonzero(np.isnan(decile)):
        same_msoa = (lsoa_msoa == lsoa_msoa[i]) & ~np.isnan(decile)
        decile[i] = np.round(decile[same_msoa].mean()) if same_msoa.any() else np.round(np.nanmedian(decile))
    if np.isnan(decile).any():  # a subset with no IMD at all
        decile[np.isnan(decile)] = 5
    return decile.astype(int)


def assign_churn_levels(dep, north, core, churn_mix: str, rates: DemoRates, rng) -> np.ndarray:
    """Rank LSOAs by a churn score (deprivation, the north, the core wards) and cut by shares.

    The ranking is within the kept LSOAs, so a small test district still has every level.
    """
    shares = {"trafford": rates.churn_shares_trafford, "settled": rates.churn_shares_settled,
              "turbulent": rates.churn_shares_turbulent}[churn_mix]
    score = dep + 0.35 * north + 0.6 * core + rng.normal(0, 0.15, len(dep))
    order = np.argsort(-score, kind="stable")
    n = len(dep)
    n_high = int(round(shares[2] * n))
    n_medium = int(round(shares[1] * n))
    churn = np.zeros(n, dtype=np.int8)
    churn[order[:n_high]] = 2
    churn[order[n_high:n_high + n_medium]] = 1
    return churn


def score_ethnic_mix(dep, north, core, rates: DemoRates):
    """Share of residents not White by LSOA (about 19% over all of Trafford, ~60% at the core)."""
    nonwhite = rates.nonwhite_base + rates.nonwhite_deprivation * dep + rates.nonwhite_north * north \
        + rates.nonwhite_core * core
    return np.clip(nonwhite, 0.02, 0.85), np.clip(core, 0, 1)


def choose_dispersal_lsoas(churn: np.ndarray, score: np.ndarray, rates: DemoRates) -> np.ndarray:
    """Asylum dispersal housing sits in the most deprived few high-churn LSOAs (in a district
    with no high-churn LSOA, in its single most deprived one)."""
    high = np.flatnonzero(churn == 2)
    if len(high) == 0:
        high = np.flatnonzero(churn == churn.max())
    n = max(1, int(round(rates.dispersal_share_of_high * len(high))))
    chosen = high[np.argsort(-score[high], kind="stable")[:n]]
    flag = np.zeros(len(churn), dtype=bool)
    flag[chosen] = True
    return flag


def make_outside_postcodes(existing: set, rng: np.random.Generator, n: int = 400) -> list[str]:
    """Plausible postcodes in neighbouring districts (not in the directory)."""
    letters = np.array(list("ABDEFGHJLNPQRSTUWXYZ"))
    outward = rng.choice(OUTSIDE_OUTWARD_CODES, n)
    digits = rng.integers(0, 10, n)
    pairs = rng.choice(letters, (n, 2))
    codes = [f"{o} {d}{a}{b}" for o, d, (a, b) in zip(outward, digits, pairs)]
    return list(dict.fromkeys(c for c in codes if c not in existing))


def locate_practices(practices: pd.DataFrame, all_postcodes: pd.DataFrame, lonlat, centre) -> np.ndarray:
    """Practice coordinates from its postcode, else the centre of its ward."""
    by_postcode = pd.DataFrame(lonlat, columns=["lon", "lat"], index=all_postcodes["postcode"])
    by_postcode = by_postcode[~by_postcode.index.duplicated()]
    by_ward = pd.DataFrame(lonlat, columns=["lon", "lat"]).groupby(all_postcodes["ward_code"].to_numpy()).mean()
    coords = []
    for postcode, ward in zip(practices["practice_postcode"], practices["ward_code"]):
        row = by_postcode.loc[postcode] if postcode in by_postcode.index else by_ward.loc[ward]
        coords.append(row.to_numpy(dtype=float))
    return to_km(np.array(coords), centre)


def practice_choice_probabilities(ward_xy, practice_xy, list_sizes, decay_km: float = 1.2) -> np.ndarray:
    """P(practice | ward): bigger and nearer practices attract more; tiny shares dropped."""
    dist = np.linalg.norm(ward_xy[:, None, :] - practice_xy[None, :, :], axis=2)
    weight = np.sqrt(list_sizes)[None, :] * np.exp(-dist / decay_km)
    p = weight / weight.sum(axis=1, keepdims=True)
    p[p < 0.02] = 0.0
    return p / p.sum(axis=1, keepdims=True)


def _first_by_group(group: np.ndarray, value: np.ndarray, n_groups: int) -> np.ndarray:
    out = np.full(n_groups, -1)
    out[group[::-1]] = value[::-1]
    return out


def _dominant_by_group(group: np.ndarray, value: np.ndarray, n_groups: int, n_values: int) -> np.ndarray:
    counts = np.zeros((n_groups, n_values))
    np.add.at(counts, (group, value), 1)
    return counts.argmax(axis=1)
