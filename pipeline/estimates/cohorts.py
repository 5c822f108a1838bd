"""Single-year birth cohorts: ageing counts from one date to another, and folding them into bands.

Estimates are made by single year of age and aged by birth cohort from the base date; the ONS
5-year bands are only for publishing. A count vector x[0 .. A-1] by single year of age at date d
(the last age open-ended: 90+ for ONS, 95+ for NHS Digital) is aged by y years (y >= 0) as
follows, with birthdays spread evenly over the year:

    n = floor(y), f = y - n
    whole years:   x'[a + n] = x[a]          (ages past the top stay in the open group)
    the fraction:  x''[a]   = (1 - f) x'[a] + f x'[a - 1]   (a share f of each cohort has had
                                                            its next birthday; the top keeps its own)

Ages below y belong to people born after d: they are not in x (the aged vector holds 0 there, or
only the part (1 - f) of the youngest cohort), so the caller fills them from what it knows about
births (here: the list, see counts.py). Ageing preserves the total (nobody dies in ageing; deaths
and moves are the list change's business).

    fold_to_bands(x)  sums single years into ONS 5-year bands 0-4 … 80-84, 85+.
"""

from __future__ import annotations

import numpy as np

from schemas.vocabulary import AGE_BANDS

BAND_LABELS = AGE_BANDS  # the shared vocabulary's ONS 5-year bands, 0-4 … 80-84, 85+


def age_counts(counts, years: float) -> np.ndarray:
    """Age counts by single year (last axis; last age open) forward by `years` (>= 0)."""
    x = np.asarray(counts, float)
    if years < 0:
        raise ValueError(f"cohorts can only be aged forward (got {years} years): order the dates")
    top = x.shape[-1] - 1
    n = int(np.floor(years + 1e-9))
    f = max(years - n, 0.0)
    shifted = np.zeros_like(x)
    if n >= top:
        shifted[..., top] = x.sum(axis=-1)
    else:
        shifted[..., n:top] = x[..., : top - n]
        shifted[..., top] = x[..., top - n:].sum(axis=-1)
    if f <= 0:
        return shifted
    out = (1.0 - f) * shifted
    out[..., 1:] += f * shifted[..., :-1]
    out[..., top] += f * shifted[..., top]  # the open group keeps everyone who reached it
    return out


def born_after(top: int, years: float) -> np.ndarray:
    """Share of each single-year age group at the later date that was born after the earlier one."""
    ages = np.arange(top + 1, dtype=float)
    # a uniform cohort of age a at the later date was a - years at the earlier one; the part below 0 is new
    share = np.clip(years - ages, 0.0, 1.0)
    share[top] = 0.0 if years < top else share[top]
    return share


def fold_to_bands(counts, top_band_start: int = 85) -> np.ndarray:
    """Sum single years (last axis) into ONS 5-year bands 0-4 … 80-84 and an open top band."""
    x = np.asarray(counts, float)
    out = np.zeros((*x.shape[:-1], top_band_start // 5 + 1))
    starts = np.arange(0, top_band_start + 1, 5)
    starts = starts[starts < x.shape[-1]]  # each band's first single year: the bands are runs of ages
    if len(starts):
        out[..., :len(starts)] = np.add.reduceat(x, starts, axis=-1)
    return out


def band_of_age(top: int, top_band_start: int = 85) -> np.ndarray:
    """Band index of each single year 0 .. top."""
    return np.minimum(np.arange(top + 1) // 5, top_band_start // 5)


def fit_ipf(seed, row_totals, col_totals=None, max_iter: int = 100, tol: float = 1e-8) -> np.ndarray:
    """Iterative proportional fitting of a 2-D table to its row (and, when given, column) totals.

    Rows and columns are scaled in turn until both margins hold (Deming & Stephan 1940; the same
    raking as survey weighting). Column totals are rescaled to the row totals' sum first (the
    two sources count the same people at slightly different scope). Rows whose seed is all zero
    cannot be fitted and stay zero; without column totals (or with all-zero ones) this is a plain
    row scaling; the last step is always a row scaling, so the row totals hold.
    """
    x = np.array(seed, float)
    rows = np.asarray(row_totals, float)
    if x.ndim != 2 or rows.shape != (x.shape[0],):
        raise ValueError(f"fit_ipf: the seed must be a 2-D table with one row total per row "
                         f"(seed {x.shape}, {rows.shape[0] if rows.ndim else 0} row totals)")
    if (x < 0).any() or (rows < 0).any() or (col_totals is not None and (np.asarray(col_totals) < 0).any()):
        raise ValueError("fit_ipf: seed and totals must be counts, 0 or more (found a negative value)")
    if col_totals is not None and np.shape(col_totals) != (x.shape[1],):
        raise ValueError(f"fit_ipf: one column total per seed column ({x.shape[1]}), got {np.shape(col_totals)}")
    if col_totals is None:
        s = x.sum(axis=1)
        return x * np.where(s > 0, rows / np.where(s > 0, s, 1.0), 0.0)[:, None]
    cols = np.asarray(col_totals, float)
    if cols.sum() <= 0:  # an empty profile says nothing: fit the rows alone
        return fit_ipf(x, rows)
    cols = cols * rows.sum() / cols.sum()
    for _ in range(max_iter):
        s = x.sum(axis=1)
        x *= np.where(s > 0, rows / np.where(s > 0, s, 1.0), 0.0)[:, None]
        c = x.sum(axis=0)
        x *= np.where(c > 0, cols / np.where(c > 0, c, 1.0), 0.0)[None, :]
        s = x.sum(axis=1)
        if np.max(np.abs(s - rows)) <= tol * max(rows.max(initial=0.0), 1.0):
            break
    # end on the rows: where the two margins cannot both hold (a profile empty at every age a row's
    # seed allows), the published row totals win and the columns stay as near as IPF got them
    s = x.sum(axis=1)
    lost = (s <= 0) & (rows > 0)  # rows the columns emptied take their seed's pattern
    x[lost] = np.asarray(seed, float)[lost]
    s = x.sum(axis=1)
    return x * np.where(s > 0, rows / np.where(s > 0, s, 1.0), 0.0)[:, None]
