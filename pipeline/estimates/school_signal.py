"""An observed measure of how the GP list's inflation changes: the school census against the list
for the same children (COHDMAP points to the changing school population; issue 9).

Inflation (registered patients per resident) is measured once, at the first extract t0
(inflation.py), and the roll-forward assumes it stays there. Where practices stop sweeping ghosts
it grows, and every estimate drifts up with it. The LA's school census counts the same children
the list holds, from a source without ghosts: pupils are on a school's roll only while they
attend. For the LA's LSOAs together, at extract t,

    r(t) = Lc(t) / S(c(t))           g(t) = r(t) / r(t0)

Lc(t) = the list's children of national curriculum years R-11 at t (single years of age weighted
by the share of each age in those years on that date: weigh_school_ages), S(c) = the pupils of
years R-11 living in those LSOAs on census c, c(t) = the census nearest t within
CENSUS_WINDOW_DAYS (pair_censuses). The census's own coverage (independent schools, home
education, pupils schooled in another LA) cancels in the ratio as long as it holds still.
(t0: the first extract with a census within the window; before it g = 1.) g(t) - 1 is the
change in the inflation of the list's children; the estimates take it as the change for every age (cohort_model.roll_cohorts: est = B~ + (L(t) / g(t) - L~(t0 -> t)) / I~).

Why the LA and not each LSOA (benchmarks/results/regimes_school_signal_diagnostic.md, 15 districts
of the independent regimes simulator, seeds 13101-13503): the LA's g tracks the change in its
children's list inflation to 0.18 points at two years (against 1.40 for assuming no change) and of
all ages' to 0.63 (1.56); an LSOA's own g is too noisy and too particular to its children to
stand for all its ages (3.25 against 2.52), while the LA's g applied to each LSOA is better than no
change in every regime (2.20 against 2.52; growing inflation 3.21 against 4.09).

Nothing is fitted: the only constants are the census window (the January, May and October
censuses are at most about seven weeks from any quarterly extract) and which ages are compared.
Revision policy: the estimate at t uses the census nearest t, which may be up to
CENSUS_WINDOW_DAYS after t, so an estimate is revised once, when that census arrives.
"""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

AGES = 91
CENSUS_WINDOW_DAYS = 62  # a census further than this from an extract says nothing about its list


def weigh_school_ages(day) -> np.ndarray:
    """Weight of each single year of age (0..90) at `day` in national curriculum years R-11
    (age on the 31 August before the school year 4..15), births spread evenly over the year:
    age 4 x (1 - f), ages 5-15 x 1, age 16 x f, with f the share of the school year (from
    1 September) gone by `day`."""
    day = pd.Timestamp(day).date()
    start = dt.date(day.year if day.month >= 9 else day.year - 1, 9, 1)
    f = min(max((day - start).days / 365.25, 0.0), 1.0)
    w = np.zeros(AGES)
    w[5:16] = 1.0
    w[4] = 1.0 - f
    w[16] = f
    return w


def pair_censuses(extract_dates, census_dates, window_days: int = CENSUS_WINDOW_DAYS) -> np.ndarray:
    """For each extract, the position of the census nearest it (the earlier on a tie), or -1 when
    none is within `window_days`."""
    ex = pd.to_datetime(pd.Series(list(extract_dates))).to_numpy()
    cd = pd.to_datetime(pd.Series(list(census_dates))).to_numpy()
    out = np.full(len(ex), -1, dtype=int)
    if not len(cd):
        return out
    for i, t in enumerate(ex):
        gap = np.abs((cd - t) / np.timedelta64(1, "D"))
        j = int(np.argmin(gap))
        if gap[j] <= window_days:
            out[i] = j
    return out


def measure_inflation_change(list_children: np.ndarray, pupils: np.ndarray, pairing: np.ndarray,
                             groups: np.ndarray) -> np.ndarray:
    """g[k, i]: the change in the list-to-census ratio of the children of LSOA i's group (its LA),
    pooled over the group's LSOAs, since the first extract that has a census (the anchor; the
    first extract itself wherever a census is near it).

    `list_children`: [K, n] the list's children of years R-11 at each extract; `pupils`: [C, n] the
    pupils of years R-11 on each census; `pairing`: [K] the census paired with each extract (-1:
    none, pair_censuses); `groups`: [n] each LSOA's LA. Before the anchor, and for a group without
    pupils or listed children at the anchor, g = 1 (nothing measured: inflation as at t0). An
    extract without a census keeps the group's latest measured g.
    """
    list_children = np.asarray(list_children, dtype=float)
    pupils = np.asarray(pupils, dtype=float)
    K, n = list_children.shape
    g = np.ones((K, n))
    paired = np.flatnonzero(np.asarray(pairing) >= 0)
    if not len(paired) or pupils.size == 0:
        return g
    a = int(paired[0])
    codes, group = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    lc = np.zeros((K, len(codes)))
    np.add.at(lc, (slice(None), group), list_children)
    s = np.zeros((pupils.shape[0], len(codes)))
    np.add.at(s, (slice(None), group), pupils)
    s_a = s[pairing[a]]
    ok_a = (lc[a] > 0) & (s_a > 0)
    r_a = np.where(ok_a, lc[a] / np.where(s_a > 0, s_a, 1.0), 1.0)
    last = np.ones(len(codes))
    for k in range(a, K):
        if pairing[k] >= 0:
            sk = s[pairing[k]]
            ok = ok_a & (sk > 0) & (lc[k] > 0)
            last = np.where(ok, (lc[k] / np.where(sk > 0, sk, 1.0)) / r_a, last)
        g[k] = last[group]
    return g


def count_list_children(L: np.ndarray, extract_dates) -> np.ndarray:
    """[K, n]: the list [K, n, 2, AGES]'s children of years R-11 at each extract (weigh_school_ages)."""
    w = np.stack([weigh_school_ages(d) for d in extract_dates])  # [K, AGES]
    return np.einsum("knsa,ka->kn", np.asarray(L, dtype=float), w)


def read_school_pupils(con, lsoas: list[str]) -> tuple[list, np.ndarray] | None:
    """(census dates, pupils [C, n] in the order of `lsoas`) from est_school_pupils, or None when
    there is no school census."""
    df = con.execute("SELECT census_date, lsoa_code, pupils FROM est_school_pupils").df()
    if df.empty:
        return None
    dates = sorted(pd.to_datetime(df["census_date"]).unique())
    pos = {c: i for i, c in enumerate(lsoas)}
    arr = np.zeros((len(dates), len(lsoas)))
    di = pd.to_datetime(df["census_date"]).map({d: i for i, d in enumerate(dates)}).to_numpy()
    li = df["lsoa_code"].map(pos)
    keep = li.notna().to_numpy()
    np.add.at(arr, (di[keep].astype(int), li[keep].astype(int).to_numpy()), df["pupils"].to_numpy(float)[keep])
    return dates, arr


def choose_school_signal(setting: str, school: tuple | None) -> str:
    """"la" (use the LA's list-to-census change) or "off": off whatever the setting when there is
    no school census."""
    if setting not in ("off", "la"):
        raise ValueError(f"school_signal must be off or la (got {setting!r}): see config.toml [estimates]")
    return "off" if school is None else setting
