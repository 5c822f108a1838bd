"""The local basket: every built-in indicator on the demo district, the definition file, roll-up,
and a planted surge flagged in alerts with few other alerts."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipeline.config import load_settings
from pipeline.indicators.basket import build_basket
from pipeline.indicators.basket.compute import roll_up
from pipeline.indicators.basket.definition import BasketError, load_basket
from schemas.published import ALERT_COLUMNS, INDICATOR_COLUMNS
from surge import plant_migrant_surge


def _db(settings):
    return duckdb.connect(str(settings.processed_dir / "cohesion.duckdb"), read_only=True)


def test_every_built_in_indicator_appears_for_the_demo_district(demo_run):
    settings, summary = demo_run
    con = _db(settings)
    table = con.execute("SELECT * FROM basket_indicators").df()
    alerts = con.execute("SELECT * FROM alerts").df()
    con.close()
    assert list(table.columns[: len(INDICATOR_COLUMNS)]) == list(INDICATOR_COLUMNS)
    assert list(alerts.columns[: len(ALERT_COLUMNS)]) == list(ALERT_COLUMNS)
    ids = set(table["indicator_id"])
    for definition in load_basket():
        found = {i for i in ids if i == definition.id or i.startswith(definition.id + "_")}
        assert found, f"{definition.id} has no rows on the demo district"
        rows = table[table["indicator_id"].isin(found)]
        assert set(rows["area_type"]) == set(definition.levels), definition.id
        assert (rows["unit"] == definition.unit).all() and (rows["domain"] == definition.domain).all()
    # incidents: one indicator per category in the extract
    assert {"incidents_hate_crime_race", "incidents_hate_crime_religion", "incidents_community_tension"} <= ids
    # segregation by group and by phase, each beside its value under random allocation
    school = table[table["indicator_id"] == "school_dissimilarity"]
    assert {"Ethnic group: Asian", "Free school meals: eligible", "First language: other than English",
            "Ethnic group: White; Phase: primary"} <= set(school["breakdown"])
    assert (school["comparator"] == "random allocation (expected value)").all()
    assert school["comparator_value"].between(0, 1).all()
    assert summary.report["basket"]["alerts"] == len(alerts)


def test_rates_are_the_sum_of_their_parts_and_compared_with_the_la(demo_run):
    settings, _ = demo_run
    con = _db(settings)
    rows = con.execute("SELECT * FROM basket_indicators WHERE indicator_id = 'new_migrant_registrations'").df()
    con.close()
    for period, part in rows.groupby("period_end"):
        la = part[part["area_type"] == "la"].iloc[0]
        for level in ("lsoa", "ward"):
            sub = part[part["area_type"] == level]
            assert sub["numerator"].sum() == pytest.approx(la["numerator"], rel=1e-9)
            assert sub["denominator"].sum() == pytest.approx(la["denominator"], rel=1e-6)
        assert la["value"] == pytest.approx(la["numerator"] / la["denominator"] * 1000)
        wards = part[part["area_type"] == "ward"]
        assert list(wards["comparator_value"]) == pytest.approx([la["value"]] * len(wards))
        expected = ["similar" if lo <= la["value"] <= hi else "higher" if lo > la["value"] else "lower"
                    for lo, hi in zip(wards["lower_95"], wards["upper_95"])]
        assert list(wards["significance"]) == expected
    first = rows["period_end"].min()
    la_rows = rows[rows["area_type"] == "la"].sort_values("period_end")
    assert la_rows.iloc[0]["significance"] == "not compared"  # the baseline itself
    assert (la_rows["baseline_period_end"] == first).all()
    assert la_rows.iloc[-1]["change_from_baseline"] == pytest.approx(la_rows.iloc[-1]["value"] - la_rows.iloc[0]["value"])


def test_roll_up_splits_an_lsoa_across_wards_by_its_share():
    # hand: LSOA A is 60% in ward W1 and 40% in W2; B is all in W2. A: 10 events / 1000, B: 5 / 500
    lookup = pd.DataFrame({"lsoa_code": ["A", "A", "B"], "ward_code": ["W1", "W2", "W2"], "la_code": ["L"] * 3,
                           "ward_share": [0.6, 0.4, 1.0]})
    rows = pd.DataFrame({"indicator_id": "x", "indicator_name": "x", "breakdown": "All", "period_start": 1,
                         "period_end": 2, "area_code": ["A", "B"], "area_type": "lsoa", "numerator": [10.0, 5.0],
                         "denominator": [1000.0, 500.0]})
    out = roll_up(rows, lookup, ("lsoa", "ward", "la")).set_index("area_code")
    assert out.loc["W1", "numerator"] == pytest.approx(6) and out.loc["W1", "denominator"] == pytest.approx(600)
    assert out.loc["W2", "numerator"] == pytest.approx(9) and out.loc["W2", "denominator"] == pytest.approx(900)
    assert out.loc["L", "numerator"] == pytest.approx(15) and out.loc["L", "denominator"] == pytest.approx(1500)


def test_a_mistake_in_the_basket_file_names_the_indicator_and_key(tmp_path):
    path = tmp_path / "basket.toml"
    path.write_text('[[indicator]]\nid = "my_rate"\nname = "x"\ndomain = "Service pressure"\n'
                    'sql = "new_migrant_registrations.sql"\nstatistic = "rate"\nunit = "per 1,000"\n'
                    'polarity = "up is good"\n')
    with pytest.raises(BasketError, match="indicator my_rate: polarity: .*higher is better"):
        load_basket(path)
    path.write_text(path.read_text().replace("up is good", "no judgement").replace("new_migrant_registrations.sql", "nope.sql"))
    with pytest.raises(BasketError, match="indicator my_rate: .*nope.sql does not exist"):
        load_basket(path)
    path.write_text(path.read_text().replace("nope.sql", "new_migrant_registrations.sql") + 'interval = "wilson"\n')
    with pytest.raises(BasketError, match="interval for a rate is 'byars'"):
        load_basket(path)


def test_an_analyst_adds_an_indicator_with_a_toml_entry_and_a_sql_file(demo_run, tmp_path):
    """No Python: a copy of basket.toml with one more [[indicator]] and its SQL file beside it."""
    settings, _ = demo_run
    db = tmp_path / "cohesion.duckdb"
    shutil.copy(settings.processed_dir / "cohesion.duckdb", db)
    (tmp_path / "deaths.sql").write_text(
        "SELECT v.area_code, 'lsoa' AS area_type, v.period_start, v.period_end, 'All' AS breakdown,\n"
        "       sum(v.deaths) AS numerator, max(p.population) AS denominator\n"
        "FROM vital_events v JOIN ind_basket_population p ON p.area_code = v.area_code\n"
        " AND p.reference_date = v.period_end\nWHERE v.area_type = 'lsoa'\n"
        "GROUP BY v.area_code, v.period_start, v.period_end\n")
    basket = tmp_path / "basket.toml"
    basket.write_text('[[indicator]]\nid = "deaths"\nname = "Deaths per 1,000 estimated population"\n'
                      'domain = "Service pressure"\nsql = "deaths.sql"\nstatistic = "rate"\nmultiplier = 1000\n'
                      'unit = "per 1,000"\npolarity = "lower is better"\nlevels = ["ward", "la"]\nalert = true\n'
                      '\n[[indicator]]\nid = "asylum_allocations"\nname = "Asylum"\ndomain = "Migration and churn"\n'
                      'sql = "asylum_allocations.sql"\nstatistic = "rate"\nmultiplier = 1000\nunit = "per 1,000"\n')
    custom = load_settings(data_dir=settings.data_dir, basket={"definition_path": str(basket)})
    con = duckdb.connect(str(db))
    build_basket(con, custom)
    table = con.execute("SELECT indicator_id, area_type, count(*) FROM basket_indicators GROUP BY ALL").fetchall()
    con.close()
    assert {(i, t) for i, t, _ in table} == {("deaths", "ward"), ("deaths", "la"), ("asylum_allocations", "ward"),
                                             ("asylum_allocations", "la")}


@pytest.mark.slow
def test_a_planted_surge_of_young_migrant_workers_is_flagged_with_few_other_alerts(tmp_path):
    """A 6-quarter small district with the generator's own late changes switched off, and a block of
    20 young workers registering from abroad in one ward in each of the last two quarters."""
    from pipeline.demo import RATES, generate_district
    from pipeline.run import run_pipeline

    data = tmp_path / "data"
    settings = load_settings(data_dir=data, demo={"n_lsoas": 12, "scale": 0.3, "quarters": 6, "survey_size": 0},
                             basket={"segregation_iterations": 20})
    generate_district(settings.demo, data, dataclasses.replace(RATES, incident_spike_factor=1.0,
                                                               asylum_step_up_per_quarter=0.0))
    planted = plant_migrant_surge(data / "raw", per_quarter=20, quarters=2)
    run_pipeline(settings, "indicators")
    con = _db(settings)
    alerts = con.execute("SELECT * FROM alerts").df()
    con.close()
    alerts["period_end"] = alerts["period_end"].astype(str)
    surge = alerts[(alerts["indicator_id"] == "new_migrant_registrations") & (alerts["area_code"] == planted["ward_code"])]
    assert sorted(surge["period_end"]) == planted["period_ends"]
    assert (surge["direction"] == "rise").all()
    assert surge["message"].str.contains("registrations from abroad").all()
    # anything else: the same surge seen at LA level or in churn (registrations are churn), plus at most 2
    related = (alerts["area_code"] == planted["ward_code"]) | (alerts["area_type"] == "la")
    assert (~related).sum() <= 2, alerts[~related][["indicator_id", "area_code", "period_end"]]


FIXTURES = Path(__file__).parent / "fixtures"


def test_deprivation_quintiles_and_sii_when_an_imd_file_is_supplied(demo_run, tmp_path):
    """IMD 2019 (2011 LSOAs; Trafford's rows of shared/data/real/imd2019_england_lsoa.csv) carried to
    2021 LSOAs by the ONS lookup (Trafford's rows of ons_lsoa11_lsoa21_lad22_lookup.csv)."""
    settings, _ = demo_run
    db = tmp_path / "cohesion.duckdb"
    shutil.copy(settings.processed_dir / "cohesion.duckdb", db)
    custom = load_settings(data_dir=settings.data_dir, basket={
        "segregation_iterations": 0, "imd_path": str(FIXTURES / "imd2019_trafford_lsoa.csv"),
        "imd_lookup_path": str(FIXTURES / "ons_lsoa11_lsoa21_trafford.csv")})
    con = duckdb.connect(str(db))
    summary = build_basket(con, custom)
    imd = con.execute("SELECT * FROM ind_basket_imd").df()
    rows = con.execute("SELECT * FROM basket_indicators WHERE indicator_id = 'births_per_1000_women' "
                       "AND area_type = 'la'").df()
    con.close()
    # the quintile from the rank agrees with MHCLG's published decile for every unchanged LSOA
    published = pd.read_csv(FIXTURES / "imd2019_trafford_lsoa.csv").set_index("lsoa_code")["IMD_decile"]
    unchanged = imd[imd["change_code"] == "U"].set_index("lsoa_code")
    assert len(unchanged) > 100
    assert (unchanged["imd_quintile"] == ((published.reindex(unchanged.index) + 1) // 2)).all()
    # a split 2011 LSOA's 2021 children share its rank
    lookup = pd.read_csv(FIXTURES / "ons_lsoa11_lsoa21_trafford.csv")
    split = lookup[lookup["change_code"] == "S"]
    assert len(split) > 0
    ranks = pd.read_csv(FIXTURES / "imd2019_trafford_lsoa.csv").set_index("lsoa_code")["IMD_rank"]
    parent = split.iloc[0]["lsoa11_code"]
    children = split[split["lsoa11_code"] == parent]["lsoa21_code"]
    assert len(children) >= 2
    assert (imd.set_index("lsoa_code").loc[children, "imd_rank"] == ranks[parent]).all()
    assert summary["basket"]["imd_lsoas_matched"].startswith("12 of")
    for period, part in rows.groupby("period_end"):
        quint = part[part["breakdown"].str.startswith("Deprivation quintile")]
        total = part[part["breakdown"] == "All"].iloc[0]
        assert quint["numerator"].sum() == pytest.approx(total["numerator"])
        assert (quint["comparator_value"] == total["value"]).all()
        sii = part[part["breakdown"].str.startswith("Deprivation: slope index")]
        assert len(sii) == 1 and sii.iloc[0]["lower_95"] <= sii.iloc[0]["value"] <= sii.iloc[0]["upper_95"]


def test_segregation_comparator_does_not_depend_on_the_order_of_the_units():
    # the SQL engine returns units in no fixed order (a parallel hash aggregate): the random-allocation
    # comparator, dealt unit by unit, must be the same for any order of the same counts
    from pipeline.indicators.basket.compute import compute_segregation_rows

    definition = next(d for d in load_basket() if d.id == "school_dissimilarity")
    units = pd.DataFrame({"area_code": "L", "area_type": "la", "period_start": pd.Timestamp("2022-05-19").date(),
                          "period_end": pd.Timestamp("2022-05-19").date(), "breakdown": "Ethnic group: Asian",
                          "unit_code": [101, 102, 103, 104, 105], "group_count": [3, 40, 0, 12, 7],
                          "unit_total": [60, 80, 45, 90, 30]})
    first = compute_segregation_rows(units, definition, iterations=50, seed=1)
    shuffled = compute_segregation_rows(units.iloc[[3, 0, 4, 2, 1]], definition, iterations=50, seed=1)
    assert first["comparator_value"].iloc[0] == shuffled["comparator_value"].iloc[0]
    assert first["note"].iloc[0] == shuffled["note"].iloc[0] and first["value"].iloc[0] == pytest.approx(
        shuffled["value"].iloc[0], abs=1e-15)


def test_diversity_of_every_area_at_once_equals_the_statistic_per_area():
    # ward A: 50/30/20 -> -(.5 ln .5 + .3 ln .3 + .2 ln .2) / ln 3 = 0.9372305632; ward B: all in one group of
    # three (a zero counts in K) -> 0; LA L: 10/10 -> 1; ward C: one group only and ward D: no people -> no row
    from math import log

    from pipeline.indicators.basket.compute import compute_diversity_rows
    from pipeline.stats.segregation import calculate_diversity

    definition = next(d for d in load_basket() if d.id == "ethnic_diversity")
    day = pd.Timestamp("2022-06-30").date()
    areas = ["A"] * 3 + ["B"] * 3 + ["L"] * 2 + ["C"] + ["D"] * 2
    groups = pd.DataFrame({"area_code": areas, "area_type": ["ward"] * 6 + ["la"] * 2 + ["ward"] * 3,
                           "period_start": day, "period_end": day, "breakdown": "All",
                           "group_name": ["W", "A", "B", "W", "A", "B", "W", "A", "W", "W", "A"],
                           "group_count": [50, 30, 20, 40, 0, -1, 10, 10, 7, 0, 0]})
    out = compute_diversity_rows(groups, definition).set_index("area_code")["value"]
    assert sorted(out.index) == ["A", "B", "L"]
    hand = -(0.5 * log(0.5) + 0.3 * log(0.3) + 0.2 * log(0.2)) / log(3)
    assert out["A"] == pytest.approx(hand, abs=1e-12) == calculate_diversity([50, 30, 20])
    assert out["B"] == pytest.approx(0.0, abs=1e-15) and out["L"] == pytest.approx(1.0, abs=1e-15)
