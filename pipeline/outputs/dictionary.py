"""The data dictionary and README of the partner pack: every column and every indicator explained.

Partners receive the pack without the repository's specs, so the definitions live here and are
written into ``data_dictionary.csv``, the Excel workbook and ``README.md``.
"""

from __future__ import annotations

import pandas as pd

# (file, column) -> definition
COLUMNS: dict[str, dict[str, str]] = {
    "population_estimates.csv": {
        "area_code": "GSS code of the area (LSOA 2021, MSOA 2021, electoral ward or local authority).",
        "area_name": "Name of the area.",
        "area_type": "lsoa, msoa, ward or la.",
        "reference_date": "The date the estimate is for: the date of a GP register extract (YYYY-MM-DD).",
        "sex": "M, F or All.",
        "age_band": "ONS 5-year age band (0-4 ... 85+) or All.",
        "estimate": "Estimated resident population (COHDMAP: the base population rolled forward with GP register "
                    "flows, corrected for list inflation). Rounded to the nearest {round}.",
        "lower_95": "Lower limit of the 95% interval of the estimate (its margin of error). Rounded to the nearest {round}.",
        "upper_95": "Upper limit of the 95% interval of the estimate. Rounded to the nearest {round}.",
        "gp_list": "Patients registered with a GP whose postcode is in the area on the reference date. Counts of 1 to "
                   "{small} are suppressed, and so are cells that would reveal them by differencing. A ward's figure "
                   "shares out LSOAs that straddle ward boundaries by their share of postcodes, so it need not be whole.",
        "base_population": "The base population the estimate builds on (ONS mid-year estimate, moved towards what the "
                           "GP list implies). Rounded to the nearest {round}.",
        "turbulence": "Population turbulence score: registrations, deregistrations, pupil moves and asylum allocations "
                      "per 1,000 residents a year. Higher turbulence widens the margin of error.",
        "method": "Short tag of the estimation method (cohdmap).",
        "base_date": "Date of the base population.",
        "published_base": "The base population as published (ONS), before adjustment. Rounded to the nearest {round}.",
        "years_since_base": "Years between the base date and the reference date.",
        "constrained": "True when the LA total is constrained to a supplied figure.",
        "note": "Why a value is empty (suppressed, and by which rule), and whether the data are synthetic.",
    },
    "indicators.csv": {
        "indicator_id": "Stable id of the indicator (see the indicator list below).",
        "indicator_name": "Plain-English name.",
        "domain": "Theme: PSA 21, Residential segregation, Migration and churn, Crime and disorder, Perception, "
                  "Participation, Service pressure, ...",
        "area_code": "GSS code of the area (or a school's URN where area_type is school).",
        "area_name": "Name of the area.",
        "area_type": "lsoa, msoa, ward, la or school.",
        "period_start": "First day of the period the value describes.",
        "period_end": "Last day of the period the value describes.",
        "breakdown": "All, or <dimension>: <group>, e.g. 'Age: 16-24', 'Sex: F', 'Ethnic group: Asian'.",
        "numerator": "What the value was computed from (weighted for survey indicators); empty for an index. Counts of "
                     "1 to {small} are suppressed, with their rates.",
        "denominator": "The base of the value (respondents, residents, pupils); weighted for survey indicators.",
        "value": "The indicator value, in `unit`.",
        "unit": "%, per 1,000, index 0-1 or count.",
        "lower_95": "Lower 95% confidence limit (Wilson score for proportions, Byar for rates).",
        "upper_95": "Upper 95% confidence limit.",
        "lower_99_8": "Lower 99.8% confidence limit (where defined).",
        "upper_99_8": "Upper 99.8% confidence limit (where defined).",
        "comparator": "What the value was compared with (the local authority, a baseline period, a benchmark).",
        "comparator_value": "The comparator's own value, in the same unit.",
        "significance": "higher, lower or similar than the comparator (the comparator outside or inside the interval), "
                        "or not compared.",
        "polarity": "higher is better, lower is better, or no judgement: how to read higher and lower.",
        "note": "Suppression reasons (fewer than {small} people; fewer than {survey} respondents; would reveal a "
                "suppressed figure by differencing), small-sample warnings, synthetic data.",
    },
    "alerts.csv": {
        "indicator_id": "The indicator that moved.",
        "area_code": "GSS code of the area.",
        "area_name": "Name of the area.",
        "area_type": "ward, la, ...",
        "period_end": "End of the period in which it moved.",
        "value": "The value in that period.",
        "expected": "What the area's own history made expected.",
        "lower_limit": "Lower limit of the plausible range.",
        "upper_limit": "Upper limit of the plausible range.",
        "direction": "rise or fall.",
        "message": "One plain sentence a partner can act on.",
    },
}

# indicator id -> (definition, source, method, polarity, caveats)
INDICATORS: dict[str, tuple[str, str, str, str, str]] = {
    "psa21_get_on": (
        "NI 1: % who believe people from different backgrounds get on well together in their local area.",
        "Local resident survey.", "Agreement among those expressing an opinion ('don't know', 'too few people' and "
        "'all same background' are out of the base); weighted to the population estimates; Wilson interval on the "
        "effective sample size.", "higher is better",
        "Small local samples: values on fewer than {survey} respondents are suppressed; ward figures are noisy."),
    "psa21_belong": (
        "NI 2: % who feel they belong to their neighbourhood.", "Local resident survey.",
        "Agreement among those expressing an opinion, weighted.", "higher is better",
        "Small local samples: values on fewer than {survey} respondents are suppressed."),
    "psa21_meaningful_interaction": (
        "% who have meaningful interaction with people from different backgrounds (mixing socially at least once a "
        "month in at least one setting).", "Local resident survey.", "Share of respondents, weighted.",
        "higher is better", "The settings counted follow the Citizenship Survey measure; see the methods notes."),
    "psa21_influence": (
        "NI 4: % who feel they can influence decisions in their locality.", "Local resident survey.",
        "Agreement among those expressing an opinion, weighted.", "higher is better",
        "Small local samples: values on fewer than {survey} respondents are suppressed."),
    "school_dissimilarity": (
        "Index of dissimilarity of pupils across the LA's schools (the group in `breakdown` against the rest): the "
        "share of either group that would have to change school for every school to have the same mix.",
        "School census.", "Duncan's index over schools; compare with its value under random allocation, since small "
        "schools show some dissimilarity by chance.", "lower is better",
        "An index (0-1), not a count; it describes schools, not where pupils live."),
    "new_migrant_registrations": (
        "GP registrations of people arriving from abroad (flag 4) per 1,000 estimated population.",
        "GP register / movements.", "Registrations with the from-abroad flag in the period / estimated population.",
        "no judgement",
        "The from-abroad flag marks a first registration in England after living abroad; returning UK residents are "
        "included and people who do not register (many young men) are missed. Lists are inflated by people who have "
        "left but not deregistered."),
    "population_churn": (
        "GP registrations plus deregistrations per 1,000 estimated population.", "GP register / movements.",
        "(registrations + deregistrations) in the period / estimated population x 1,000.", "no judgement",
        "List cleaning exercises produce bursts of deregistrations that are not moves."),
    "pupil_mobility": (
        "Pupils joining or leaving schools outside the normal points per 1,000 pupils.", "School census.",
        "Moves between censuses outside the normal entry and exit years / pupils x 1,000.", "lower is better",
        "Counted where pupils live; a move within the area counts once."),
    "asylum_allocations": (
        "Asylum seekers newly housed per 1,000 estimated population.", "Home Office allocations.",
        "Persons allocated in the period / estimated population x 1,000.", "no judgement",
        "Counts by area of accommodation; small counts are suppressed."),
}

GENERAL_CAVEATS = [
    "Population estimates are modelled from GP registers and carry a margin of error (the 95% interval); list "
    "inflation (people who have left but stay registered) is corrected for, but not perfectly.",
    "Figures are rounded and small counts suppressed so that no person can be identified: modelled figures are "
    "rounded to the nearest {round}; counts of people from 1 to {small} are left empty, and so are other cells that "
    "would let them be worked out by subtraction (from a total, the other sex or a neighbouring area).",
    "Significance compares the comparator with the area's 95% interval (Fingertips method); with many areas and "
    "indicators some differences appear by chance.",
]


def fill(text: str, rules) -> str:
    return text.format(round=rules.round_modelled_to, small=max(rules.min_cell_count - 1, 0),
                       survey=rules.min_survey_base)


def build_data_dictionary(rules, files: dict[str, list[str]], indicators: pd.DataFrame) -> pd.DataFrame:
    """One row per column of each file written, then one per indicator present (or known)."""
    rows = []
    for file, columns in files.items():
        known = COLUMNS.get(file, {})
        for column in columns:
            rows.append({"item": "column", "file": file, "name": column,
                         "definition": fill(known.get(column, "Further column of the table (see the methods notes)."), rules),
                         "source": "", "method": "", "polarity": "", "caveats": ""})
    present = {}
    if not indicators.empty:
        for row in indicators.drop_duplicates("indicator_id").itertuples(index=False):
            present[row.indicator_id] = row
    for indicator_id in sorted(set(present) | set(INDICATORS)):
        known = INDICATORS.get(indicator_id)
        row = present.get(indicator_id)
        definition, source, method, polarity, caveats = known if known else (
            getattr(row, "indicator_name", indicator_id), getattr(row, "domain", ""), "See the methods notes.",
            getattr(row, "polarity", ""), "")
        rows.append({"item": "indicator", "file": "indicators.csv", "name": indicator_id,
                     "definition": fill(definition, rules), "source": source, "method": fill(method, rules),
                     "polarity": getattr(row, "polarity", polarity) if row is not None else polarity,
                     "caveats": fill(caveats, rules) + ("" if row is not None else " (not in this run)")})
    return pd.DataFrame(rows, columns=["item", "file", "name", "definition", "source", "method", "polarity", "caveats"])


def render_readme(rules, dictionary: pd.DataFrame, metadata: dict, synthetic: bool, files: list[str]) -> str:
    """README.md of the pack: what each file is and what every column means."""
    lines = []
    if synthetic:
        lines += ["# SYNTHETIC DEMO DATA: no real person", "",
                  "These outputs were made from the bundled demo district: synthetic people laid over Trafford's "
                  "real geography. Nothing here describes real residents.", ""]
    lines += ["# Community cohesion indicators: partner pack", "",
              f"Run `{metadata['run_id']}`, code version `{metadata['code_version']}`, finished "
              f"{metadata.get('finished') or metadata.get('started')}.", "",
              "Open `report.html` in any browser (it works offline). The CSV files are UTF-8, comma separated, one "
              "header row, in tidy long format (one row per area x period x breakdown x measure). Empty cells are "
              "missing or suppressed: `note` says why. `cohesion_tables.xlsx` holds the same tables for Excel.", "",
              "## Files", ""]
    descriptions = {
        "population_estimates.csv": "small-area population estimates with their 95% margins",
        "indicators.csv": "every indicator by area, period and breakdown, with intervals and comparisons",
        "alerts.csv": "early warnings of sudden change (header only when nothing moved)",
        "data_dictionary.csv": "every column and indicator: definition, source, method, polarity, caveats",
        "cohesion_tables.xlsx": "the same tables as an accessible Excel workbook",
        "metadata.json": "run id, input file hashes, configuration and code version",
        "report.html": "the partner report: charts, key findings per ward, tables, alerts, methods",
        "charts/": "the report's charts as PNG files, each with its alt text in charts/index.csv",
    }
    for name in files:
        lines.append(f"- `{name}`: {descriptions.get(name, '')}")
    lines += ["", "## Protecting individuals", ""] + [f"- {fill(c, rules)}" for c in GENERAL_CAVEATS]
    for file, group in dictionary[dictionary["item"] == "column"].groupby("file", sort=False):
        lines += ["", f"## Columns of `{file}`", "", "| column | meaning |", "|---|---|"]
        lines += [f"| {r.name} | {r.definition} |" for r in group.itertuples(index=False)]
    ind = dictionary[dictionary["item"] == "indicator"]
    if len(ind):
        lines += ["", "## Indicators", "", "| id | definition | source | polarity | caveats |", "|---|---|---|---|---|"]
        lines += [f"| {r.name} | {r.definition} | {r.source} | {r.polarity} | {r.caveats} |" for r in ind.itertuples(index=False)]
    return "\n".join(lines) + "\n"
