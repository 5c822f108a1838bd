"""Disclosure control: nothing a partner receives may identify a person.

One function, `protect_frame`, is what every writer (CSV, Excel, chart, report) takes its frame
from; writers refuse a frame that did not pass through it (`require_protected`). The rules come
from ``[outputs]`` in config.toml (`pipeline.config.OutputSettings`):

- **primary suppression**: counts of people (GP list sizes, numerators and denominators of count
  indicators) from 1 to ``min_cell_count - 1`` (1-7 by default) are blanked, with the reason in
  ``note``. Zero is published (a known empty cell identifies nobody).
- **survey bases**: survey values (indicators whose domain is in ``survey_domains``) resting on
  fewer than ``min_survey_base`` respondents (unweighted; the ``unweighted_base`` column when the
  table has one - ``respondents`` as the PSA 21 stage names it - else the denominator) are blanked;
  model-based estimates (``estimate_type`` naming a model) are not direct survey values and are
  exempt. Every figure of a suppressed row is blanked except the comparators' own values.
- **secondary suppression**: a table's cells are tied by additive relations - the ``All`` row of a
  dimension is the sum of its groups (sex, age band, a breakdown such as ``Sex: F``), an MSOA and
  the LA are sums of their LSOAs, the LA is the sum of its wards, and a ward is the share-weighted
  sum of the LSOAs it overlaps (``lsoa_lookup.ward_share``). A suppressed cell that is the only
  unknown in a relation can be recovered by subtraction, so another cell of that relation (the
  smallest) is suppressed too, until every relation has none or at least two unknowns. Because
  unknowns can still be pinned by combining relations (LSOA against ward against LA), the result
  is then audited as a linear system (`find_recoverable_cells`: a suppressed cell is recoverable
  when its unit vector lies in the row space of the relations restricted to the unknowns) and more
  cells are suppressed until nothing is recoverable.
- **rounding of modelled figures**: estimates, their limits and base populations are rounded to
  ``round_modelled_to`` (5 by default), so they claim no false precision and cannot be differenced
  against the published list counts.

The relations are structural (which cells add up to which), so the audit needs no values and the
tests run it on the files as partners receive them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components

SUPPRESSED_COUNT = "{column} suppressed: fewer than {n} people"
SUPPRESSED_SECONDARY = "{column} suppressed: would reveal a suppressed figure by differencing"
SUPPRESSED_SURVEY = "suppressed: fewer than {n} respondents"
PROTECTED = "disclosure_controlled"

POPULATION_COUNTS = ("gp_list",)
POPULATION_MODELLED = ("estimate", "lower_95", "upper_95", "base_population", "published_base")
INDICATOR_SUPPRESS = ("numerator", "denominator", "value", "lower_95", "upper_95", "lower_99_8", "upper_99_8")
BASE_COLUMNS = ("unweighted_base", "respondents", "sample_size")
KEEP_ON_SUPPRESSED_ROWS = ("comparator_value", "benchmark_value")


class DisclosureError(Exception):
    """A frame reached a writer without disclosure control, or control could not make it safe."""


@dataclass
class Geography:
    """How LSOAs build up to MSOAs, wards and the LA (from ``lsoa_lookup``)."""

    lsoa_msoa: dict[str, str] = field(default_factory=dict)
    lsoa_la: dict[str, str] = field(default_factory=dict)
    ward_members: dict[str, dict[str, float]] = field(default_factory=dict)  # ward -> {lsoa: share}

    @classmethod
    def from_lookup(cls, lookup: pd.DataFrame | None) -> "Geography":
        geo = cls()
        if lookup is None or lookup.empty:
            return geo
        for row in lookup.itertuples(index=False):
            if isinstance(row.msoa_code, str):
                geo.lsoa_msoa[row.lsoa_code] = row.msoa_code
            if isinstance(row.la_code, str):
                geo.lsoa_la[row.lsoa_code] = row.la_code
            if isinstance(row.ward_code, str):
                members = geo.ward_members.setdefault(row.ward_code, {})
                members[row.lsoa_code] = members.get(row.lsoa_code, 0.0) + float(row.ward_share or 0.0)
        return geo


@dataclass
class Relations:
    """Additive relations among a frame's rows: each is ``total = sum(coef * part)``.

    Stored as a sparse matrix (relations x rows) whose row i has -1 at the total and the parts'
    coefficients elsewhere.
    """

    n_rows: int
    rows: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (positions, coefficients)

    def add(self, total: int, parts, coefs=None) -> None:
        parts = np.asarray(list(parts), dtype=int)
        if len(parts) == 0:
            return
        coefs = np.ones(len(parts)) if coefs is None else np.asarray(list(coefs), dtype=float)
        keep = coefs != 0
        self.rows.append((np.concatenate([[total], parts[keep]]), np.concatenate([[-1.0], coefs[keep]])))

    def matrix(self) -> sparse.csr_matrix:
        if not self.rows:
            return sparse.csr_matrix((0, self.n_rows))
        indptr = np.cumsum([0] + [len(p) for p, _ in self.rows])
        return sparse.csr_matrix((np.concatenate([c for _, c in self.rows]), np.concatenate([p for p, _ in self.rows]),
                                  indptr), shape=(len(self.rows), self.n_rows))


# ---------------------------------------------------------------------------------------------
# relations of the partner tables


def _positions(frame: pd.DataFrame, keys: list[str]) -> dict[tuple, int]:
    return {k: i for i, k in enumerate(frame[keys].astype(str).itertuples(index=False, name=None))}


def relate_population_estimates(frame: pd.DataFrame, geography: Geography, wards: bool = True) -> Relations:
    """Sex (All = F + M), age (All = bands) and geography (MSOA and LA from LSOAs; LA from MSOAs;
    with `wards`, each ward as the share-weighted sum of its LSOAs and the LA as the sum of its wards)."""
    rel = Relations(len(frame))
    f = frame.reset_index(drop=True)
    for keys, dim in ((["area_code", "reference_date", "age_band"], "sex"),
                      (["area_code", "reference_date", "sex"], "age_band")):
        is_all = (f[dim] == "All").to_numpy()
        for _, idx in f.groupby(keys, sort=False).indices.items():
            totals = idx[is_all[idx]]
            if len(totals) == 1:
                rel.add(totals[0], idx[~is_all[idx]])
    _relate_geography(f, rel, geography, ["reference_date", "sex", "age_band"], "weighted" if wards else "none")
    return rel


def relate_indicators(frame: pd.DataFrame, geography: Geography) -> Relations:
    """Breakdowns (All = the groups of one dimension) and geography, per indicator and period.

    Indicator counts come from records placed by postcode, so a ward is the sum of its LSOAs only
    when it is made of whole LSOAs; the LA is the sum of its wards, LSOAs and MSOAs.
    """
    rel = Relations(len(frame))
    f = frame.reset_index(drop=True)
    breakdown = f["breakdown"].fillna("All").astype(str)
    dimension = breakdown.str.split(":", n=1).str[0].where(breakdown != "All", "All")
    f = f.assign(_dim=dimension)
    for _, idx in f.groupby(["indicator_id", "area_code", "period_start", "period_end"], sort=False,
                            dropna=False).indices.items():
        dims = f["_dim"].to_numpy()[idx]
        totals = idx[dims == "All"]
        if len(totals) != 1:
            continue
        for dim in set(dims) - {"All"}:
            rel.add(totals[0], idx[dims == dim])
    _relate_geography(f, rel, geography, ["indicator_id", "period_start", "period_end", "breakdown"], "whole")
    return rel


def _relate_geography(f: pd.DataFrame, rel: Relations, geo: Geography, slice_keys: list[str], wards: str) -> None:
    """wards: "weighted" (ward = sum share x LSOA), "whole" (only wards of whole LSOAs), "none"."""
    area_type = f["area_type"].to_numpy()
    codes = f["area_code"].to_numpy()
    ward_to_la = {}
    for ward, members in geo.ward_members.items():
        las = {geo.lsoa_la.get(lsoa) for lsoa in members}
        if len(las) == 1:
            ward_to_la[ward] = las.pop()
    msoa_to_la = {geo.lsoa_msoa[l]: geo.lsoa_la.get(l) for l in geo.lsoa_msoa}
    split = {l for members in geo.ward_members.values() for l, w in members.items() if 0 < w < 1 - 1e-9}
    for _, idx in f.groupby(slice_keys, sort=False, dropna=False).indices.items():
        where = {(area_type[i], codes[i]): i for i in idx}
        lsoas = {c: i for (t, c), i in where.items() if t == "lsoa"}
        las = {c: i for (t, c), i in where.items() if t == "la"}
        for (t, code), i in where.items():
            if t == "msoa":
                rel.add(i, [j for l, j in lsoas.items() if geo.lsoa_msoa.get(l) == code])
            elif t == "ward" and wards != "none":
                members = geo.ward_members.get(code, {})
                if wards == "whole" and any(l in split for l in members):
                    continue
                parts = [(lsoas[l], w) for l, w in members.items() if l in lsoas and w > 0]
                if parts:
                    rel.add(i, [p for p, _ in parts], [w for _, w in parts])
        for la, i in las.items():
            in_la = [j for l, j in lsoas.items() if geo.lsoa_la.get(l, la) == la]
            rel.add(i, in_la)
            for kind, parent in (("ward", ward_to_la), ("msoa", msoa_to_la)):
                if kind == "ward" and wards == "none":
                    continue
                parts = [j for (t, c), j in where.items() if t == kind and parent.get(c) == la]
                if parts and len(parts) == len([c for c, p in parent.items() if p == la]):
                    rel.add(i, parts)  # only when every ward (MSOA) of the LA is in the table


# ---------------------------------------------------------------------------------------------
# suppression and its audit


def suppress_secondary(values: np.ndarray, suppressed: np.ndarray, relations: Relations,
                       max_rounds: int = 200) -> np.ndarray:
    """Add cells (the smallest first) until no suppressed cell in `suppressed` can be recovered.

    First every relation whose only unknown is a suppressed cell gets a second unknown; then the
    linear audit (`find_recoverable_cells`) finds cells still pinned by combinations of relations,
    and each gets another unknown in the relation that pins it with the fewest unknowns.
    """
    mask = suppressed.copy()
    matrix = relations.matrix()
    if matrix.shape[0] == 0 or not mask.any():
        return mask
    order_value = np.where(np.isnan(values), np.inf, values)
    _close_single_unknowns(matrix, mask, order_value, suppressed)
    column_view = matrix.tocsc()
    for _ in range(max_rounds):
        exposed = find_recoverable_cells(mask, relations, matrix, of=suppressed)
        if not len(exposed):
            return mask
        for cell in exposed:
            best = None
            for r in column_view.indices[column_view.indptr[cell]:column_view.indptr[cell + 1]]:
                members = matrix.indices[matrix.indptr[r]:matrix.indptr[r + 1]]
                free = members[~mask[members]]
                if len(free) and (best is None or mask[members].sum() < best[0]):
                    best = (mask[members].sum(), free)
            if best is not None:
                mask[_smallest(best[1], order_value)] = True
        _close_single_unknowns(matrix, mask, order_value, suppressed)
    raise DisclosureError("suppressed cells stay recoverable by differencing after "
                          f"{max_rounds} rounds; check the table's relations (pipeline/outputs/disclosure.py)")


def _close_single_unknowns(matrix: sparse.csr_matrix, mask: np.ndarray, order_value: np.ndarray,
                           sensitive: np.ndarray) -> None:
    """Give every relation with exactly one unknown a second one (a lone unknown is a difference away)."""
    while True:
        unknowns = np.asarray(abs(matrix) @ mask.astype(float)).ravel()
        step = False
        for r in np.flatnonzero(np.isclose(unknowns, 1.0)):
            members = matrix.indices[matrix.indptr[r]:matrix.indptr[r + 1]]
            hidden = members[mask[members]]
            if len(hidden) != 1:
                continue
            free = members[~mask[members]]
            if len(free):
                mask[_smallest(free, order_value)] = True
                step = True
        if not step:
            return


def _smallest(candidates: np.ndarray, order_value: np.ndarray) -> int:
    """The smallest non-zero figure (a zero hides nothing), else the smallest."""
    vals = order_value[candidates]
    positive = candidates[vals > 0]
    pool = positive if len(positive) else candidates
    return int(pool[np.argmin(order_value[pool])])


def find_recoverable_cells(suppressed: np.ndarray, relations: Relations,
                           matrix: sparse.csr_matrix | None = None, of: np.ndarray | None = None) -> np.ndarray:
    """Suppressed cells (those also in `of`, default all) whose value follows exactly from the published ones.

    The unknowns x_U satisfy A_U x_U = b (A_U: the relations' columns of the suppressed cells). x_i
    is determined exactly when every solution agrees on it, i.e. when the null space of A_U is zero
    in coordinate i. Solved per connected group of unknowns (null space from the Gram matrix), so it
    stays small.
    """
    matrix = relations.matrix() if matrix is None else matrix
    unknown = np.flatnonzero(suppressed)
    if matrix.shape[0] == 0 or not len(unknown):
        return np.array([], dtype=int)
    a = matrix[:, unknown].tocsr()
    a = a[np.flatnonzero(a.getnnz(axis=1))]
    if a.shape[0] == 0:
        return np.array([], dtype=int)
    gram = (a.T @ a).tocsr()
    n_groups, labels = connected_components(abs(gram), directed=False)
    wanted = np.ones(len(unknown), bool) if of is None else of[unknown]
    found = []
    for g in range(n_groups):
        cols = np.flatnonzero(labels == g)
        if not wanted[cols].any():
            continue
        g_sub = gram[cols][:, cols].toarray()
        eigenvalues, vectors = np.linalg.eigh(g_sub)
        scale = max(1.0, float(np.abs(eigenvalues).max()))
        basis = vectors[:, eigenvalues < 1e-10 * scale]
        norms = np.linalg.norm(basis, axis=1) if basis.size else np.zeros(len(cols))
        pinned = cols[(norms < 1e-6) & wanted[cols]]
        found += list(unknown[pinned])
    return np.array(sorted(found), dtype=int)


# ---------------------------------------------------------------------------------------------
# the one gateway


def _append_note(notes: pd.Series, where: np.ndarray, message: str) -> pd.Series:
    notes = notes.copy()
    w = pd.Series(where, index=notes.index)
    notes[w] = notes[w].where(notes[w] == "", notes[w] + "; ") + message
    return notes


def round_to(values: pd.Series, base: int) -> pd.Series:
    """Round to the nearest multiple of `base` (halves away from zero, as ONS rounds)."""
    v = pd.to_numeric(values, errors="coerce").astype("Float64")
    return (np.sign(v) * np.floor(np.abs(v) / base + 0.5) * base).astype("Float64")


def protect_frame(frame: pd.DataFrame, table: str, rules, geography: Geography | None = None,
                  indicators: pd.DataFrame | None = None) -> pd.DataFrame:
    """Apply the disclosure rules for `table` and mark the frame as controlled.

    `table` is the partner table's name: ``population_estimates``, ``indicators`` (any stacked
    ``*_indicators``), ``alerts`` or a table with no person counts (``dictionary``, ``metadata``).
    `rules` is `pipeline.config.OutputSettings`; `geography` ties LSOAs to wards, MSOAs and the LA;
    alerts need the already protected `indicators` (an alert must not reveal a suppressed value).
    """
    geography = geography or Geography()
    out = frame.reset_index(drop=True).copy()
    if "note" not in out.columns:
        out["note"] = ""
    out["note"] = out["note"].fillna("").astype(str)
    if table == "population_estimates":
        out = _protect_population(out, rules, geography)
    elif table == "indicators":
        out = _protect_indicators(out, rules, geography)
    elif table == "alerts":
        out = protect_alerts(out.drop(columns="note"), indicators if indicators is not None else pd.DataFrame())
    out.attrs[PROTECTED] = {"table": table, "min_cell_count": rules.min_cell_count,
                            "round_modelled_to": rules.round_modelled_to}
    return out


def require_protected(frame: pd.DataFrame, writer: str) -> None:
    """Writers call this first: a frame that skipped `protect_frame` never leaves processed/."""
    if PROTECTED not in frame.attrs:
        raise DisclosureError(f"{writer} was given a frame that did not pass disclosure control; "
                              "pass it through pipeline.outputs.disclosure.protect_frame first")


def _protect_population(out: pd.DataFrame, rules, geography: Geography) -> pd.DataFrame:
    """GP list sizes: LSOA, MSOA and LA cells are counts, protected by primary and secondary
    suppression; a ward's figure is the share-weighted sum of its LSOAs' (an LSOA can straddle
    wards), so it adds nothing to what the LSOAs show and is published exactly when every LSOA it
    draws on is published in that cell (and otherwise suppressed, since it would reveal them)."""
    for column in POPULATION_COUNTS:
        if column not in out:
            continue
        values = pd.to_numeric(out[column], errors="coerce").to_numpy(dtype=float)
        is_ward = (out["area_type"] == "ward").to_numpy()
        primary = (values > 0) & (values < rules.min_cell_count) & ~is_ward
        mask = primary
        if rules.secondary_suppression and primary.any():
            mask = suppress_secondary(values, primary, relate_population_estimates(out, geography, wards=False))
        ward_mask = _wards_revealing(out, mask, geography) if rules.secondary_suppression else np.zeros(len(out), bool)
        mask = mask | ward_mask
        out[column] = out[column].astype("Float64").mask(mask)
        out["note"] = _append_note(out["note"], primary, SUPPRESSED_COUNT.format(column=column, n=rules.min_cell_count))
        out["note"] = _append_note(out["note"], mask & ~primary, SUPPRESSED_SECONDARY.format(column=column))
    for column in POPULATION_MODELLED:
        if column in out:
            out[column] = round_to(out[column], rules.round_modelled_to)
    if "turbulence" in out:
        out["turbulence"] = pd.to_numeric(out["turbulence"], errors="coerce").round(1)
    return out


def _wards_revealing(out: pd.DataFrame, mask: np.ndarray, geography: Geography) -> np.ndarray:
    """Ward cells that draw on a suppressed LSOA cell of the same date, sex and age band."""
    keys = ["reference_date", "sex", "age_band"]
    text = out[["area_code", *keys]].astype(str).to_numpy()
    lsoa = out["area_type"].to_numpy() == "lsoa"
    hidden = set(map(tuple, text[lsoa & mask]))
    result = np.zeros(len(out), bool)
    if not hidden:
        return result
    for i in np.flatnonzero(out["area_type"].to_numpy() == "ward"):
        members = geography.ward_members.get(text[i, 0], {})
        result[i] = any(w > 0 and (l, *text[i, 1:]) in hidden for l, w in members.items())
    return result


def _protect_indicators(out: pd.DataFrame, rules, geography: Geography) -> pd.DataFrame:
    if out.empty:
        return out
    survey = out["domain"].isin(rules.survey_domains).to_numpy() if "domain" in out else np.zeros(len(out), bool)
    numerator = pd.to_numeric(out.get("numerator"), errors="coerce").to_numpy(dtype=float)
    denominator = pd.to_numeric(out.get("denominator"), errors="coerce").to_numpy(dtype=float)
    base_column = next((c for c in BASE_COLUMNS if c in out), None)
    base = pd.to_numeric(out[base_column], errors="coerce").to_numpy(dtype=float) if base_column else denominator
    small_count = ((numerator > 0) & (numerator < rules.min_cell_count)) | (
        (denominator > 0) & (denominator < rules.min_cell_count))
    modelled = out["estimate_type"].fillna("").astype(str).str.contains("model", case=False).to_numpy() \
        if "estimate_type" in out else np.zeros(len(out), bool)
    # a model-based small-area estimate is not a direct survey value: the base rule is for direct ones
    small_base = survey & ~modelled & ~np.isnan(base) & (base < rules.min_survey_base)
    # rows an indicator stage already suppressed (value empty, note says so) are protected like ours
    upstream = (pd.to_numeric(out["value"], errors="coerce").isna()
                & out["note"].str.contains("suppress", case=False)).to_numpy() if "value" in out else np.zeros(len(out), bool)
    primary = np.where(survey, small_base, small_count & ~np.isnan(numerator)) | upstream
    mask = primary
    if rules.secondary_suppression and primary.any():
        relations = relate_indicators(out, geography)
        order = np.where(np.isnan(numerator), denominator, numerator)
        mask = suppress_secondary(order, primary, relations)
    # every figure of a suppressed row goes (unweighted shares, effective sizes and funnel limits would
    # let the counts be worked back), except the comparators' own values
    numeric = [c for c in out.columns if c not in KEEP_ON_SUPPRESSED_ROWS
               and (c in INDICATOR_SUPPRESS or pd.api.types.is_numeric_dtype(out[c]) and not pd.api.types.is_bool_dtype(out[c]))]
    for column in numeric:
        out[column] = pd.to_numeric(out[column], errors="coerce").astype("Float64").mask(mask)
    if "significance" in out:
        out.loc[mask, "significance"] = "not compared"
    notes = out["note"]
    notes = _append_note(notes, primary & ~survey & ~upstream, SUPPRESSED_COUNT.format(column="count", n=rules.min_cell_count))
    notes = _append_note(notes, primary & survey & ~upstream, SUPPRESSED_SURVEY.format(n=rules.min_survey_base))
    notes = _append_note(notes, mask & ~primary, SUPPRESSED_SECONDARY.format(column="value"))
    out["note"] = notes
    return out


def protect_alerts(alerts: pd.DataFrame, indicators: pd.DataFrame) -> pd.DataFrame:
    """Blank an alert's figures when the indicator it is about was suppressed (it would reveal it)."""
    if alerts.empty or indicators.empty:
        return alerts
    out = alerts.copy()
    all_rows = indicators[indicators["breakdown"].fillna("All") == "All"]
    hidden = all_rows[all_rows["value"].isna()]
    keys = set(zip(hidden.indicator_id, hidden.area_code, hidden.period_end.astype(str)))
    hit = np.array([(a, b, str(c)) in keys for a, b, c in zip(out.indicator_id, out.area_code, out.period_end)],
                   dtype=bool)
    for column in ("value", "expected", "lower_limit", "upper_limit"):
        out[column] = pd.to_numeric(out[column], errors="coerce").astype("Float64").mask(hit)
    out.loc[hit, "message"] = out.loc[hit, "message"].astype(str) + " (figures suppressed: small numbers)"
    return out
