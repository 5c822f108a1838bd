"""The partner pack: disclosure control (hand-made tables), the pack on the demo run, indicator charts
on hand-made indicator tables, and the audit that fails on any disclosive cell."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from pipeline.config import PROJECT_ROOT, load_settings
from pipeline.outputs import publish_frame, publish_outputs, stack_indicators
from pipeline.outputs.disclosure import (
    DisclosureError, Geography, find_recoverable_cells, protect_frame, relate_indicators, relate_population_estimates,
    round_to)
from pipeline.stats.compare import compare_to_comparator
from pipeline.stats.proportion import calculate_proportion
from schemas.published import ALERT_COLUMNS, INDICATOR_COLUMNS

RULES = load_settings().outputs  # the shipped rules: counts 1-7 suppressed, survey base 50, rounding to 5

# --- a hand-made district: LA = wards W1 (LSOAs A, B) + W2 (LSOA C), one date, two age bands -------------
LOOKUP = pd.DataFrame({"lsoa_code": ["A", "B", "C"], "msoa_code": ["M1", "M1", "M2"], "ward_code": ["W1", "W1", "W2"],
                       "la_code": ["L"] * 3, "ward_share": [1.0, 1.0, 1.0]})
GEO = Geography.from_lookup(LOOKUP)


def hand_population(counts: dict[tuple[str, str, str], float]) -> pd.DataFrame:
    """counts[(lsoa, sex, band)] -> list size; builds every area x sex x band row with All rows as sums."""
    rows = []
    members = {"A": ["A"], "B": ["B"], "C": ["C"], "M1": ["A", "B"], "M2": ["C"], "W1": ["A", "B"], "W2": ["C"],
               "L": ["A", "B", "C"]}
    types = {"A": "lsoa", "B": "lsoa", "C": "lsoa", "M1": "msoa", "M2": "msoa", "W1": "ward", "W2": "ward", "L": "la"}
    for area, lsoas in members.items():
        for sex in ("F", "M", "All"):
            for band in ("0-4", "85+", "All"):
                sexes = ["F", "M"] if sex == "All" else [sex]
                bands = ["0-4", "85+"] if band == "All" else [band]
                n = sum(counts[(l, s, b)] for l in lsoas for s in sexes for b in bands)
                rows.append({"area_code": area, "area_name": area, "area_type": types[area],
                             "reference_date": pd.Timestamp("2024-01-01"), "sex": sex, "age_band": band,
                             "estimate": n * 1.013, "lower_95": n * 0.9, "upper_95": n * 1.1, "gp_list": float(n),
                             "base_population": n * 1.02, "turbulence": 101.234, "method": "cohdmap"})
    return pd.DataFrame(rows)


def big_counts(**small) -> dict:
    counts = {(l, s, b): 40.0 for l in "ABC" for s in "FM" for b in ("0-4", "85+")}
    for key, value in small.items():
        lsoa, sex, band = key.split("_")
        counts[(lsoa, sex, band.replace("p", "+").replace("to", "-"))] = value
    return counts


def test_a_small_list_count_is_suppressed_with_enough_others_that_differencing_cannot_recover_it():
    frame = hand_population(big_counts(A_M_85p=3))
    out = protect_frame(frame, "population_estimates", RULES, GEO)
    cell = (out.area_code == "A") & (out.sex == "M") & (out.age_band == "85+")
    assert out.loc[cell, "gp_list"].isna().all()
    assert "fewer than 8 people" in out.loc[cell, "note"].iloc[0]
    # without the secondary cells, A_M_85+ = (A All 85+) - (A F 85+): the audit must find that
    only_primary = cell.to_numpy()
    relations = relate_population_estimates(frame, GEO)
    assert list(find_recoverable_cells(only_primary, relations)) == [int(np.flatnonzero(only_primary)[0])]
    # with them, the small count cannot be worked out, by sex, age, LSOA vs ward vs MSOA vs LA
    assert len(find_recoverable_cells(out.gp_list.isna().to_numpy(), relations, of=only_primary)) == 0
    assert out.loc[out.note.str.contains("differencing"), "gp_list"].isna().all()
    assert out.gp_list.isna().sum() >= 4  # a rectangle at least: A/B x M/F or equivalent
    # zero is published: an empty cell identifies nobody
    zero = protect_frame(hand_population(big_counts(A_M_85p=0)), "population_estimates", RULES, GEO)
    assert zero.gp_list.notna().all()


def test_a_ward_of_split_lsoas_is_suppressed_where_it_would_reveal_a_suppressed_lsoa():
    lookup = pd.DataFrame({"lsoa_code": ["A", "B", "B", "C"], "msoa_code": ["M1", "M1", "M1", "M2"],
                           "ward_code": ["W1", "W1", "W2", "W2"], "la_code": ["L"] * 4,
                           "ward_share": [1.0, 0.5, 0.5, 1.0]})
    geo = Geography.from_lookup(lookup)
    frame = hand_population(big_counts(A_F_0to4=2))
    # ward figures as the estimates stage builds them: share-weighted sums of LSOAs
    lsoa = frame[frame.area_type == "lsoa"].set_index(["area_code", "sex", "age_band"]).gp_list
    for ward, parts in {"W1": {"A": 1.0, "B": 0.5}, "W2": {"B": 0.5, "C": 1.0}}.items():
        for i in frame.index[frame.area_code == ward]:
            key = (frame.at[i, "sex"], frame.at[i, "age_band"])
            frame.at[i, "gp_list"] = sum(w * lsoa[(l, *key)] for l, w in parts.items())
    out = protect_frame(frame, "population_estimates", RULES, geo)
    mask = out.gp_list.isna().to_numpy()
    primary = out.note.str.contains("fewer than").to_numpy()
    assert primary.sum() == 1
    assert len(find_recoverable_cells(mask, relate_population_estimates(out, geo), of=primary)) == 0


def test_modelled_figures_are_rounded_to_the_configured_base():
    assert list(round_to(pd.Series([0.0, 2.4, 2.5, 7.49, 1233.0, 1237.5]), 5)) == [0, 0, 5, 5, 1235, 1240]
    out = protect_frame(hand_population(big_counts()), "population_estimates", RULES, GEO)
    for column in ("estimate", "lower_95", "upper_95", "base_population"):
        assert (out[column] % 5 == 0).all(), column
    assert out.turbulence.iloc[0] == 101.2


def indicator_row(indicator_id, area, area_type, breakdown, num, den, domain="Migration and churn", unit="per 1,000",
                  period=("2024-01-01", "2024-03-31"), **extra):
    return {"indicator_id": indicator_id, "indicator_name": indicator_id.replace("_", " "), "domain": domain,
            "area_code": area, "area_name": area, "area_type": area_type, "period_start": pd.Timestamp(period[0]),
            "period_end": pd.Timestamp(period[1]), "breakdown": breakdown, "numerator": num, "denominator": den,
            "value": num / den * (100 if unit == "%" else 1000), "unit": unit, "lower_95": None, "upper_95": None,
            "comparator": "L", "comparator_value": None, "significance": "not compared",
            "polarity": "no judgement", "note": "", **extra}


def test_indicator_counts_and_survey_bases_are_suppressed_with_their_complements():
    rows = [indicator_row("new_migrant_registrations", a, t, "All", n, 1000.0)
            for a, t, n in (("L", "la", 45.0), ("W1", "ward", 5.0), ("W2", "ward", 40.0))]
    rows += [indicator_row("psa21_get_on", "L", "la", b, n, d, domain="PSA 21", unit="%", respondents=d,
                           unweighted_value=n / d * 100, estimate_type="direct")
             for b, n, d in (("All", 300.0, 400.0), ("Sex: F", 180.0, 230.0), ("Sex: M", 100.0, 140.0),
                             ("Sex: X", 20.0, 30.0))]
    rows += [indicator_row("psa21_get_on_modelled", "W1", "ward", "All", 20.0, 30.0, domain="PSA 21", unit="%",
                           respondents=30.0, estimate_type="model-based (Fay-Herriot, logit scale)")]
    out = protect_frame(pd.DataFrame(rows), "indicators", RULES, GEO)
    mig = out[out.indicator_id == "new_migrant_registrations"].set_index("area_code")
    assert pd.isna(mig.loc["W1", "value"]) and pd.isna(mig.loc["W1", "numerator"])
    assert pd.isna(mig.loc["W2", "value"]) or pd.isna(mig.loc["L", "value"])  # else W1 = L - W2
    assert mig.loc["W1", "significance"] == "not compared"
    psa = out[out.indicator_id == "psa21_get_on"].set_index("breakdown")
    assert pd.isna(psa.loc["Sex: X", "value"]) and "fewer than 50 respondents" in psa.loc["Sex: X", "note"]
    assert pd.isna(psa.loc["Sex: X", "unweighted_value"]) and pd.isna(psa.loc["Sex: X", "respondents"])
    assert pd.notna(out.loc[out.indicator_id == "psa21_get_on_modelled", "value"]).all()  # modelled: not a direct value
    # a row the indicator stage suppressed itself gets its complements suppressed here
    upstream = pd.DataFrame(rows[3:7]).assign(respondents=[400.0, 230.0, 140.0, 60.0], note="")
    upstream.loc[3, ["value", "numerator", "denominator", "respondents"]] = None
    upstream.loc[3, "note"] = "suppressed: fewer than 50 respondents in the base"
    safe = protect_frame(upstream, "indicators", RULES, GEO)
    assert safe.value.isna().sum() >= 2
    assert psa[["value"]].isna().sum().iloc[0] >= 2  # a second group hides it from All minus the others
    assert pd.notna(psa.loc["All", "value"])
    relations = relate_indicators(out, GEO)
    assert len(find_recoverable_cells(out.value.isna().to_numpy(), relations)) == 0


def test_writers_refuse_a_frame_that_skipped_disclosure_control(tmp_path):
    frame = hand_population(big_counts(A_M_85p=3))
    with pytest.raises(DisclosureError, match="disclosure control"):
        publish_frame(frame, tmp_path / "x.csv", synthetic=False)
    from pipeline.outputs.excel import write_workbook
    from pipeline.outputs.report import write_report

    with pytest.raises(DisclosureError):
        write_workbook(tmp_path / "x.xlsx", type("T", (), {"population": frame, "indicators": frame,
                                                          "alerts": frame, "synthetic": False})(), frame, {})
    with pytest.raises(DisclosureError):
        write_report(tmp_path / "x.html", type("T", (), {"population": frame, "indicators": frame,
                                                        "alerts": frame})(), [], frame, {})


def test_indicator_tables_stack_in_contract_order_with_998_limits_next():
    a = pd.DataFrame([indicator_row("population_churn", "L", "la", "All", 50.0, 1000.0)]).assign(
        lower_99_8=1.0, upper_99_8=2.0, method="byar")
    b = pd.DataFrame([indicator_row("psa21_belong", "L", "la", "All", 60.0, 100.0, domain="PSA 21", unit="%")])
    stacked = stack_indicators([a, b])
    cols = list(stacked.columns)
    assert cols[: len(INDICATOR_COLUMNS)] == list(INDICATOR_COLUMNS)
    assert cols[len(INDICATOR_COLUMNS): len(INDICATOR_COLUMNS) + 2] == ["lower_99_8", "upper_99_8"]
    assert cols[-1] == "method" and len(stacked) == 2
    assert list(stack_indicators([]).columns) == list(INDICATOR_COLUMNS)


# --- the pack on the demo run -----------------------------------------------------------------------------

def audit_pack(folder: Path, con: duckdb.DuckDBPyConnection, rules) -> list[str]:
    """Every disclosive cell in the pack's CSVs, read as a partner reads them: published small
    counts, and suppressed small counts recoverable by differencing (sex, age, breakdown, LSOA vs
    MSOA vs ward vs LA, wards as the share-weighted sums of the LSOAs they overlap)."""
    geo = Geography.from_lookup(con.execute("SELECT * FROM lsoa_lookup").df())
    problems = []
    pop = pd.read_csv(folder / "population_estimates.csv", dtype={"note": str}, keep_default_na=False,
                      na_values=[""])
    pop["note"] = pop["note"].fillna("")
    split_wards = {w for w, m in geo.ward_members.items() if any(0 < s < 1 - 1e-9 for s in m.values())}
    count_cells = (pop.area_type != "ward") | ~pop.area_code.isin(split_wards)
    small = count_cells & (pop.gp_list > 0) & (pop.gp_list < rules.min_cell_count)
    problems += [f"published small gp_list: {r.area_code} {r.reference_date} {r.sex} {r.age_band} = {r.gp_list}"
                 for r in pop[small].itertuples()]
    for column in ("estimate", "lower_95", "upper_95", "base_population"):
        if (pop[column].dropna() % rules.round_modelled_to != 0).any():
            problems.append(f"{column} not rounded to {rules.round_modelled_to}")
    primary = pop.note.str.contains("fewer than").to_numpy()
    exposed = find_recoverable_cells(pop.gp_list.isna().to_numpy(), relate_population_estimates(pop, geo), of=primary)
    problems += [f"recoverable gp_list: {pop.iloc[i][['area_code', 'reference_date', 'sex', 'age_band']].tolist()}"
                 for i in exposed]
    ind = pd.read_csv(folder / "indicators.csv", keep_default_na=False, na_values=[""])
    if len(ind):
        ind["note"] = ind["note"].fillna("")
        survey = ind.domain.isin(rules.survey_domains)
        small = ~survey & (((ind.numerator > 0) & (ind.numerator < rules.min_cell_count))
                           | ((ind.denominator > 0) & (ind.denominator < rules.min_cell_count)))
        problems += [f"published small count: {r.indicator_id} {r.area_code} {r.breakdown}" for r in ind[small].itertuples()]
        base = ind["unweighted_base"] if "unweighted_base" in ind else ind.denominator
        thin = survey & ind.value.notna() & (base < rules.min_survey_base)
        problems += [f"survey value on a small base: {r.indicator_id} {r.area_code} {r.breakdown}" for r in ind[thin].itertuples()]
        primary = ind.note.str.contains("fewer than").to_numpy()
        exposed = find_recoverable_cells(ind.value.isna().to_numpy(), relate_indicators(ind, geo), of=primary)
        problems += [f"recoverable indicator: {ind.iloc[i][['indicator_id', 'area_code', 'breakdown']].tolist()}"
                     for i in exposed]
    return problems


def test_the_demo_pack_is_complete_and_nothing_in_it_is_disclosive(demo_run):
    settings, summary = demo_run
    folder = summary.processed_dir / "outputs"
    for name in ("population_estimates.csv", "indicators.csv", "alerts.csv", "data_dictionary.csv",
                 "cohesion_tables.xlsx", "metadata.json", "README.md", "report.html", "charts/index.csv"):
        assert (folder / name).exists(), name
    assert list(pd.read_csv(folder / "alerts.csv").columns)[: len(ALERT_COLUMNS)] == list(ALERT_COLUMNS)
    assert list(pd.read_csv(folder / "indicators.csv").columns)[: len(INDICATOR_COLUMNS)] == list(INDICATOR_COLUMNS)
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["synthetic"] is True and metadata["inputs"] and all(f["sha256"] for f in metadata["inputs"])
    assert metadata["configuration"]["outputs"]["min_cell_count"] == settings.outputs.min_cell_count
    readme = (folder / "README.md").read_text()
    assert readme.startswith("# SYNTHETIC") and "| gp_list |" in readme
    pop = pd.read_csv(folder / "population_estimates.csv", dtype={"note": str})
    assert pop.note.str.contains("SYNTHETIC").all()
    assert pop.gp_list.isna().any(), "the small demo district has small cells: some must be suppressed"
    with duckdb.connect(str(summary.processed_dir / "cohesion.duckdb"), read_only=True) as con:
        assert audit_pack(folder, con, settings.outputs) == []
    charts = pd.read_csv(folder / "charts" / "index.csv")
    assert {"population_by_ward", "population_trend", "turbulence", "map_ward_margin", "map_lsoa_margin"} <= {
        Path(f).stem for f in charts.file}
    assert charts.file.str.contains("pyramid_ward_").sum() == pop[pop.area_type == "ward"].area_code.nunique()
    assert charts.alt.str.startswith("Synthetic demo data.").all()
    html = (folder / "report.html").read_text()
    assert "SYNTHETIC DEMO DATA" in html and "http://" not in html and "https://" not in html


def hand_made_indicators(pop: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """psa21 / basket tables and alerts in the contract's columns, on the demo's wards (values invented)."""
    areas = pop[(pop.sex == "All") & (pop.age_band == "All") & pop.area_type.isin(["la", "ward"])]
    areas = areas.drop_duplicates("area_code")[["area_code", "area_name", "area_type"]]
    rng = np.random.default_rng(7)
    psa, basket = [], []
    periods = [("2022-07-01", "2022-12-31"), ("2023-01-01", "2023-06-30")]
    for k, (start, end) in enumerate(periods):
        for indicator_id in ("psa21_get_on", "psa21_belong"):
            n = {a: int(rng.integers(60, 160)) for a in areas.area_code}
            if k == 0:  # one ward's base too small to publish, in the first period
                n[areas.area_code[areas.area_type == "ward"].iloc[0]] = 30
            n[areas.area_code[areas.area_type == "la"].iloc[0]] = sum(v for a, v in n.items())
            for area in areas.itertuples():
                den = float(n[area.area_code])
                num = float(np.round(den * rng.uniform(0.55, 0.85)))
                psa.append(indicator_row(indicator_id, area.area_code, area.area_type, "All", num, den, domain="PSA 21",
                                         unit="%", period=(start, end), area_name=area.area_name,
                                         polarity="higher is better", unweighted_base=den))
        for area in areas.itertuples():
            den = 1000.0 * rng.uniform(1, 3)
            num = float(rng.integers(10, 60)) if k or area.area_type == "la" else float(rng.integers(2, 12))
            basket.append(indicator_row("new_migrant_registrations", area.area_code, area.area_type, "All", num, den,
                                        period=(start, end), area_name=area.area_name))
    for group, value, random in (("Ethnic group: Asian", 0.42, 0.12), ("Ethnic group: Black", 0.35, 0.2)):
        row = indicator_row("school_dissimilarity", areas.area_code.iloc[0], "la", group, 1.0, 1.0,
                            domain="Residential segregation", unit="index 0-1", period=periods[-1],
                            area_name=areas.area_name.iloc[0], polarity="lower is better")
        row.update(numerator=None, denominator=None, value=value, expected_random=random)
        basket.append(row)
    frames = []
    for rows in (psa, basket):
        f = pd.DataFrame(rows)
        rate = f.unit == "%"
        ci = calculate_proportion(f.loc[rate, "numerator"], f.loc[rate, "denominator"], 0.95, multiplier=100)
        f.loc[rate, ["lower_95", "upper_95"]] = ci[["lower_95", "upper_95"]].to_numpy()
        la = f[f.area_type == "la"].set_index(["indicator_id", "period_end", "breakdown"]).value
        f["comparator_value"] = [la.get((i, p, b)) for i, p, b in zip(f.indicator_id, f.period_end, f.breakdown)]
        f["significance"] = compare_to_comparator(f.lower_95, f.upper_95, f.comparator_value).to_numpy()
        frames.append(f)
    ward = areas[areas.area_type == "ward"].iloc[0]
    alerts = pd.DataFrame([{"indicator_id": "new_migrant_registrations", "area_code": ward.area_code,
                            "area_name": ward.area_name, "area_type": "ward", "period_end": pd.Timestamp(periods[-1][1]),
                            "value": 25.0, "expected": 8.0, "lower_limit": 2.0, "upper_limit": 14.0, "direction": "rise",
                            "message": f"Registrations from abroad in {ward.area_name} rose well above their usual range."}])
    return frames[0], frames[1], alerts


@pytest.fixture(scope="module")
def pack_with_indicators(demo_run, tmp_path_factory):
    """The demo run's database with hand-made indicator tables and alerts, published into a new pack."""
    settings, summary = demo_run
    folder = tmp_path_factory.mktemp("pack") / "data" / "processed"  # laid out as a data folder (notebooks)
    folder.mkdir(parents=True)
    db = folder / "cohesion.duckdb"
    shutil.copy(summary.processed_dir / "cohesion.duckdb", db)
    shutil.copy(summary.processed_dir / "run_report.json", folder / "run_report.json")
    report = json.loads((summary.processed_dir / "run_report.json").read_text())
    from pipeline.outputs import indicator_table_names

    with duckdb.connect(str(db)) as con:
        for table in [*indicator_table_names(con), "alerts"]:  # the run's own, replaced by known hand-made ones
            con.execute(f'DROP TABLE IF EXISTS "{table}"')
        psa, basket, alerts = hand_made_indicators(con.execute("SELECT * FROM population_estimates").df())
        for name, frame in (("psa21_indicators", psa), ("basket_indicators", basket), ("alerts", alerts)):
            con.register("frame", frame)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
            con.unregister("frame")
        written = publish_outputs(con, settings, folder / "outputs", report)
    return settings, folder / "outputs", db, written


def test_indicator_charts_render_when_indicator_rows_exist_and_the_pack_stays_safe(pack_with_indicators):
    settings, folder, db, written = pack_with_indicators
    ind = pd.read_csv(folder / "indicators.csv")
    assert set(ind.indicator_id) == {"psa21_get_on", "psa21_belong", "new_migrant_registrations", "school_dissimilarity"}
    assert "expected_random" in ind.columns and "unweighted_base" in ind.columns
    stems = {Path(f).stem for f in pd.read_csv(folder / "charts" / "index.csv").file}
    wards = ind.loc[ind.area_type == "ward", "area_code"].str.lower().unique()
    expected = {"indicator_psa21_get_on_by_ward", "indicator_psa21_belong_by_ward", "trend_psa21_get_on",
                "funnel_psa21_get_on", "funnel_new_migrant_registrations", "segregation", "map_ward_psa21_get_on"}
    expected |= {f"spine_{w}" for w in wards}
    assert expected <= stems, expected - stems
    first = ind[(ind.indicator_id == "psa21_get_on") & (ind.period_end == ind.period_end.min())]
    assert first.note.str.contains("fewer than 50 respondents").sum() == 1
    assert first.value.isna().sum() >= 2  # and another, so LA minus the other wards cannot recover it
    alerts = pd.read_csv(folder / "alerts.csv")
    assert len(alerts) == 1 and alerts.message.str.contains("SYNTHETIC").all()
    with duckdb.connect(str(db), read_only=True) as con:
        assert audit_pack(folder, con, settings.outputs) == []
    dictionary = pd.read_csv(folder / "data_dictionary.csv")
    assert {"psa21_get_on", "new_migrant_registrations"} <= set(dictionary.name)
    cols = dictionary[(dictionary["item"] == "column") & (dictionary.file == "indicators.csv")].name
    assert set(ind.columns) <= set(cols)
    import openpyxl

    book = openpyxl.load_workbook(folder / "cohesion_tables.xlsx", read_only=True)
    assert {"Cover", "Contents", "Population", "Indicators", "Alerts", "Dictionary"} <= set(book.sheetnames)


def test_no_maps_and_no_error_without_coordinates(pack_with_indicators, tmp_path):
    settings, _, db, _ = pack_with_indicators
    copy = tmp_path / "nocoords.duckdb"
    shutil.copy(db, copy)
    from pipeline.outputs import read_partner_tables
    from pipeline.outputs.charts import draw_charts
    from pipeline.outputs.report import write_report

    with duckdb.connect(str(copy)) as con:
        con.execute("UPDATE postcode_directory SET lat = NULL, lon = NULL")
        tables = read_partner_tables(con, settings, {"run_id": "t", "synthetic": None})
    assert tables.postcodes.empty
    # keep the drawing small: the LA, one ward and one indicator are enough to show what is (not) drawn
    ward = tables.indicators.loc[tables.indicators.area_type == "ward", "area_code"].iloc[0]
    for name in ("population", "indicators"):
        frame = getattr(tables, name)
        keep = frame[(frame.area_type == "la") | (frame.area_code == ward)].reset_index(drop=True)
        if name == "indicators":
            keep = keep[keep.indicator_id == "psa21_get_on"].reset_index(drop=True)
        keep.attrs = dict(frame.attrs)
        setattr(tables, name, keep)
    charts = draw_charts(tables, tmp_path / "charts")
    stems = {Path(c.file).stem for c in charts}
    assert {"indicator_psa21_get_on_by_ward", "pyramid_ward_" + ward.lower(), "population_by_ward"} <= stems
    assert not any(s.startswith("map_") for s in stems)
    assert not any(c.alt.startswith("Synthetic") for c in charts)  # real runs are not marked
    dictionary = tables.population.head(0).assign(item=[])
    dictionary.attrs = dict(tables.population.attrs)
    write_report(tmp_path / "report.html", tables, charts, dictionary,
                 {"run_id": "t", "code_version": "x", "disclosure_control": settings.outputs.model_dump()})
    assert "SYNTHETIC" not in (tmp_path / "report.html").read_text()


def test_notebook_settings_resolve_the_data_folder_from_the_project_root(monkeypatch, tmp_path):
    from pipeline.outputs.analyst import analyst_settings

    monkeypatch.delenv("COHESION_DATA_DIR", raising=False)
    monkeypatch.chdir(PROJECT_ROOT / "notebooks")
    if (PROJECT_ROOT / "data" / "processed" / "run_report.json").exists():  # a developer's own run
        assert analyst_settings().data_dir == PROJECT_ROOT / "data"
        return
    with pytest.raises(FileNotFoundError) as error:
        analyst_settings()
    assert str(PROJECT_ROOT / "data" / "processed") in str(error.value)
    assert "notebooks/data" not in str(error.value)


def test_the_indicators_notebook_runs_on_a_pack_with_indicators(pack_with_indicators):
    import os
    import subprocess
    import sys

    _, folder, _, _ = pack_with_indicators
    env = dict(os.environ, COHESION_DATA_DIR=str(folder.parent.parent))
    result = subprocess.run([sys.executable, "-m", "pytest", "--nbmake", "-q", "-p", "no:xdist",
                             "notebooks/03_indicators_and_alerts.ipynb"], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]


def test_only_published_indicator_tables_are_stacked_never_working_tables():
    from pipeline.outputs import indicator_table_names

    with duckdb.connect() as con:
        for table in ("psa21_indicators", "ind_school_indicators", "basket_indicators", "alerts", "est_cells"):
            con.execute(f"CREATE TABLE {table} (a INTEGER)")
        assert indicator_table_names(con) == ["basket_indicators", "psa21_indicators"]
