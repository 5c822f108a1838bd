"""PSA 21: definitions and exclusions, Place Survey matching, survey-band margins, and the stage on the demo."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest

from pipeline.indicators.psa21.definitions import load_definitions, score_respondents
from pipeline.indicators.psa21.margins import (build_survey_band_population, interpolation_dates, list_ages_to_split,
                                              to_survey_band)
from pipeline.indicators.psa21.place_survey import baseline_for, load_place_survey, normalise_name

DEFS = {d.id: d for d in load_definitions("config/surveys.toml").indicator}


def test_get_on_counts_agreement_among_those_expressing_an_opinion():
    # codes: 1 definitely agree, 2 tend to agree, 3 tend to disagree, 4 definitely disagree, 5 don't know,
    # 6 too few people in local area, 7 all same background (NI 1: only 1-4 are in the base), 9 out of range
    answers = pd.DataFrame({"q_get_on": [1, 2, 3, 4, 5, 6, 7, None, 9]})
    scored = score_respondents(answers, DEFS["psa21_get_on"])
    assert scored["in_base"].tolist() == [True] * 4 + [False] * 5
    assert scored["counted"].tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0]


def test_belong_and_influence_leave_dont_know_out_of_the_base():
    answers = pd.DataFrame({"q_belong": [1, 2, 3, 4, 5], "q_influence": [2, 3, 5, 1, 4]})
    belong = score_respondents(answers, DEFS["psa21_belong"])
    influence = score_respondents(answers, DEFS["psa21_influence"])
    assert belong["in_base"].tolist() == [True, True, True, True, False]
    assert belong["counted"].sum() == 2
    assert influence["in_base"].tolist() == [True, True, False, True, True]
    assert influence["counted"].tolist() == [1, 0, 0, 1, 0]


def test_meaningful_interaction_is_monthly_mixing_in_any_official_setting_not_at_home():
    settings = ["work", "school", "pub", "group", "worship", "shops"]
    rows = [
        dict(home=1, **dict.fromkeys(settings, 5)),                      # mixes daily at home only: not counted
        dict(home=5, **{**dict.fromkeys(settings, 6), "shops": 3}),      # monthly at the shops: counted
        dict(home=5, **dict.fromkeys(settings, 4)),                      # less often everywhere: base, not counted
        dict(home=5, **{**dict.fromkeys(settings, 6), "work": None}),    # one setting unanswered: out of the base
    ]
    answers = pd.DataFrame([{f"q_mix_{k}": v for k, v in r.items()} for r in rows])
    scored = score_respondents(answers, DEFS["psa21_meaningful_interaction"])
    assert scored["in_base"].tolist() == [True, True, True, False]
    assert scored["counted"].tolist() == [0, 1, 0, 0]


def test_a_definition_with_inconsistent_codes_is_refused(tmp_path):
    path = tmp_path / "surveys.toml"
    path.write_text('[[indicator]]\nid = "x"\nname = "x"\ndomain = "PSA 21"\nquestions = ["q"]\n'
                    'counted = [1, 8]\nvalid = [1, 2]\n')
    with pytest.raises(ValueError, match=r"codes \[8\] are counted or excluded but not in valid"):
        load_definitions(path)


def test_every_place_survey_authority_matches_a_gss_code():
    matched, unmatched = load_place_survey()
    assert len(matched) == 352 and unmatched.empty  # the published table's 352 authorities
    assert matched["gss_code"].is_unique
    codes = dict(zip(matched["authority"], matched["gss_code"]))
    # spot checks against the mySociety register / ONS codes
    assert codes["Trafford MD"] == "E08000009"
    assert codes["Westminster City of LB"] == "E09000033"  # odd form
    assert codes["Medway Towns UA"] == "E06000035"  # alias, with its reason in reference/place_survey_aliases.csv
    assert codes["Bournemouth UA"] == "E06000028"  # the 2008 council, not BCP (E06000058, 2019)
    assert codes["Dorset CC"] == "E10000009"  # the county council, not the 2019 unitary
    assert codes["County Durham UA"] == "E06000047"
    abolished = matched.set_index("authority").loc["Allerdale DC"]
    assert abolished["gss_code"] == "E07000026" and abolished["successor_code"] == "E06000063"  # Cumberland, 2023


def test_trafford_baseline_is_its_published_2008_values():
    matched, _ = load_place_survey()
    row, how = baseline_for(matched, "E08000009")
    # Place Survey 2008, Trafford MD: NI 4 25.6, NI 1 83.5, NI 2 60.4 (place_survey_2008_UKContentment.csv)
    assert how == "own code"
    assert (row["Influence_Decisions"], row["Get_On_Well"], row["Belong"]) == (25.6, 83.5, 60.4)
    row, how = baseline_for(matched, "E06000063")  # Cumberland succeeded three 2008 districts
    assert row is None and "no single 2008 value" in how


def test_names_normalise_across_suffixes_and_spellings():
    assert normalise_name("St. Helens Metropolitan Borough Council") == normalise_name("St Helens")
    assert normalise_name("Brighton & Hove") == "brighton and hove"


def test_a_survey_band_that_cuts_a_5_year_band_is_split_by_single_year_counts():
    # ward W, men 15-19 = 100 estimated; register: 30 aged 15, 10 each aged 16-19 (ward = LA here)
    ward_bands = pd.DataFrame({"ward_code": ["W"] * 3, "sex": ["M"] * 3, "age_band": ["10-14", "15-19", "20-24"],
                               "population": [90.0, 100.0, 80.0]})
    single = pd.DataFrame({"ward_code": "W", "sex": "M", "age": [15, 16, 17, 18, 19], "patients": [30, 10, 10, 10, 10]})
    out, how = build_survey_band_population(ward_bands, single, ["16-24", "25-34", "35-44", "45-54", "55-64", "65-74",
                                                                 "75+"], shrinkage=0)
    assert how == "gp_register single years"
    # 16-24 = 100 x 40/70 of 15-19 + all of 20-24; 10-14 and age 15 are not surveyed
    assert out.loc[out["age_band"] == "16-24", "population"].item() == pytest.approx(100 * 40 / 70 + 80)
    even, how = build_survey_band_population(ward_bands, single.iloc[0:0], ["16-24", "25+"])
    assert how == "even" and even["population"].sum() == pytest.approx(80 + 80)


def test_a_cut_band_is_split_by_the_ward_register_shrunk_towards_the_la_profile():
    # two wards, women 15-19 cut by the survey band 16-24; k = 10. By hand:
    # LA (A + B) by age 15..19 = 20, 10, 10, 10, 0 (sum 50), so prior = 0.4, 0.2, 0.2, 0.2, 0.
    # ward A: 10, 5, 5, 5, 0 (sum 25): share of 16-19 = (15 + 10 x 0.6) / (25 + 10) = 21/35 = 0.6 -> 200 x 0.6 = 120
    # ward B: 10, 5, 5, 5, 0 (sum 25) as well but 50 people -> 30; ward C has no register rows: share = prior 0.6
    ward_bands = pd.DataFrame({"ward_code": ["A", "B", "C", "A"], "sex": ["F", "F", "F", "F"],
                               "age_band": ["15-19", "15-19", "15-19", "25-29"], "population": [200.0, 50.0, 10.0, 7.0]})
    single = pd.DataFrame({"ward_code": ["A"] * 4 + ["B"] * 4, "sex": "F", "age": [15, 16, 17, 18] * 2,
                           "patients": [10, 5, 5, 5] * 2})
    out, _ = build_survey_band_population(ward_bands, single, ["16-24", "25+"], shrinkage=10)
    got = out.set_index(["ward_code", "age_band"])["population"]
    assert got[("A", "16-24")] == pytest.approx(120)
    assert got[("B", "16-24")] == pytest.approx(30)
    assert got[("C", "16-24")] == pytest.approx(6)
    assert got[("A", "25+")] == pytest.approx(7)  # a band wholly inside one survey band goes whole
    assert len(out) == 4


def test_only_the_years_of_cut_bands_are_read_from_the_register_and_the_margins_are_the_same():
    # survey bands from 16: 15-19 is cut (16-24 starts inside it) and 0-14 lies below the survey, so their
    # single years (0-19) are all the split needs; 20-24 and 25-29 go whole into 16-24 and 25-34
    bands = ["0-4", "5-9", "10-14", "15-19", "20-24", "25-29"]
    survey = ["16-24", "25-34", "35-44", "45-54", "55-64", "65-74", "75+"]
    assert list_ages_to_split(bands, survey) == list(range(0, 20))
    ward_bands = pd.DataFrame({"ward_code": ["W"] * 6, "sex": ["F"] * 6, "age_band": bands,
                               "population": [50.0, 60.0, 70.0, 100.0, 80.0, 90.0]})
    single = pd.DataFrame({"ward_code": "W", "sex": "F", "age": [14, 15, 16, 17, 18, 19, 20, 27],
                           "patients": [9, 30, 10, 10, 10, 10, 12, 14]})
    full, how = build_survey_band_population(ward_bands, single, survey, shrinkage=5)
    wanted = single[single["age"].isin(list_ages_to_split(bands, survey))]
    lean, lean_how = build_survey_band_population(ward_bands, wanted, survey, shrinkage=5)
    pd.testing.assert_frame_equal(full, lean)
    assert how == lean_how == "gp_register single years"
    # a register with single years, none of them in a cut band: still split by counts (the LA's none -> even)
    none, none_how = build_survey_band_population(ward_bands, single.iloc[0:0], survey, shrinkage=5,
                                                  register_has_single_years=True)
    assert none_how == "gp_register single years"
    assert none.loc[none["age_band"] == "16-24", "population"].item() == pytest.approx(100 * 4 / 5 + 80)


def test_estimates_are_interpolated_between_the_extracts_either_side():
    dates = [dt.date(2024, 1, 1), dt.date(2024, 4, 1), dt.date(2024, 7, 1)]
    d0, d1, frac, how = interpolation_dates(dates, dt.date(2024, 5, 1))
    assert (d0, d1, how) == (dt.date(2024, 4, 1), dt.date(2024, 7, 1), "interpolated")
    assert frac == pytest.approx(30 / 91)
    assert "nearest used" in interpolation_dates(dates, dt.date(2025, 1, 1))[3]


def test_respondent_bands_map_to_survey_bands():
    bands = ["16-24", "25-34", "35-44", "45-54", "55-64", "65-74", "75+"]
    out = to_survey_band(pd.Series(["16-24", "15-19", "30-34", "85+", "30-39", None]), bands)
    assert out.tolist()[:4] == ["16-24", "16-24", "25-34", "75+"]
    assert out.isna().tolist()[4:] == [True, True]  # 30-39 cuts two survey bands: not guessed


@pytest.mark.slow
def test_the_stage_writes_the_four_indicators_for_the_la_and_every_ward(demo_run):
    settings, summary = demo_run
    report = summary.report["psa21"]
    assert report["weighting"]["method"] == "estimates" and report["weighting"]["converged"]
    assert report["weighting"]["design_effect"] > 1 and report["place_survey_2008"]["matched"] == 352
    con = duckdb.connect(str(settings.processed_dir / "cohesion.duckdb"), read_only=True)
    rows = con.execute("SELECT * FROM psa21_indicators").df()
    wards = {r[0] for r in con.execute("SELECT DISTINCT ward_code FROM survey_responses WHERE ward_code IS NOT NULL").fetchall()}
    con.close()
    ids = ["psa21_get_on", "psa21_belong", "psa21_meaningful_interaction", "psa21_influence"]
    for indicator in ids:
        mine = rows[rows["indicator_id"] == indicator]
        la = mine[(mine["area_type"] == "la") & (mine["breakdown"] == "All")].iloc[0]
        assert la["lower_95"] <= la["value"] <= la["upper_95"] and la["respondents"] >= 50
        assert set(mine.loc[(mine["area_type"] == "ward") & (mine["breakdown"] == "All"), "area_code"]) == wards
        assert {"Sex: F", "Sex: M", "Age: 75+"} <= set(mine.loc[mine["area_type"] == "la", "breakdown"])
        assert mine["breakdown"].str.startswith("Disability: ").any() and mine["breakdown"].str.startswith("Religion: ").any()
    direct = rows[~rows["indicator_id"].str.endswith("_modelled")]
    assert (direct["respondents"].dropna() >= 50).all()  # every published direct value has 50 or more respondents
    small = direct[direct["note"].fillna("").str.startswith("suppressed")]
    assert len(small) and small[["value", "lower_95", "numerator", "unweighted_value", "respondents"]].isna().all().all()
    # Trafford's own 2008 values are the LA comparators of NI 1, 2 and 4
    la_all = rows[(rows["area_type"] == "la") & (rows["breakdown"] == "All")].set_index("indicator_id")
    assert la_all.loc["psa21_get_on", "comparator_value"] == 83.5
    assert la_all.loc["psa21_influence", "comparator"] == "Place Survey 2008: Trafford MD"
    assert la_all.loc["psa21_meaningful_interaction", "comparator_value"] == 80.0
    modelled = rows[rows["indicator_id"].str.endswith("_modelled")]
    if len(modelled):  # fitted when the district has enough wards; otherwise the report says why not
        assert (modelled["estimate_type"].str.startswith("model-based")).all()
    else:
        assert not report["models"]["psa21_get_on"]["fitted"]


@pytest.mark.slow
def test_weighting_to_an_analysts_table_and_a_further_perception_question(demo_run, tmp_path):
    """weight_to = "table" rakes to the analyst's margins; an extra survey column defined in surveys.toml is scored."""
    import shutil

    from pipeline.indicators.psa21.compute import compute_psa21_indicators
    from pipeline.indicators.psa21.settings import Psa21Settings

    settings, _ = demo_run
    db = tmp_path / "copy.duckdb"
    shutil.copy(settings.processed_dir / "cohesion.duckdb", db)
    con = duckdb.connect(str(db))
    margins = con.execute("""SELECT 'ward_code' AS margin, ward_code AS level, sum(population) AS population
        FROM ind_psa21_population GROUP BY ward_code UNION ALL
        SELECT 'sex', sex, sum(population) FROM ind_psa21_population GROUP BY sex""").df()
    table = tmp_path / "margins.csv"
    margins.to_csv(table, index=False)
    # a further question as the extract would carry it (text): 1 very safe ... 4 very unsafe, 5 don't know
    con.execute("ALTER TABLE survey_responses ADD COLUMN q_safe_dark VARCHAR")
    con.execute("UPDATE survey_responses SET q_safe_dark = CAST(1 + source_line % 5 AS VARCHAR)")
    report = compute_psa21_indicators(con, Psa21Settings(weight_to="table", margins_table=str(table)))
    assert report["weighting"]["method"] == "table" and report["weighting"]["converged"]
    weights = con.execute("""SELECT w.ward_code, w.weight, r.q_safe_dark, r.la_code FROM ind_psa21_weights w
        JOIN survey_responses r USING (respondent_id)""").df()
    by_ward = weights.groupby("ward_code")["weight"].sum()
    target = margins[margins["margin"] == "ward_code"].set_index("level")["population"]
    np.testing.assert_allclose(by_ward.sort_index(), target.loc[by_ward.sort_index().index], rtol=1e-4)
    # the LA share computed by hand from the weights: 1-2 counted, 3-4 in the base, 5 out of it
    answer = weights["q_safe_dark"].astype(int)
    base = weights[answer <= 4]
    expected = 100 * base.loc[base["q_safe_dark"].astype(int) <= 2, "weight"].sum() / base["weight"].sum()
    row = con.execute("""SELECT value, lower_95, upper_95, domain FROM psa21_indicators
        WHERE indicator_id = 'perception_safe_after_dark' AND area_type = 'la' AND breakdown = 'All'""").fetchall()[0]
    con.close()
    assert row[0] == pytest.approx(expected) and row[1] < row[0] < row[2] and row[3] == "Perception"
    assert "perception_satisfied_with_area" in report["indicators_skipped_no_questions"]


def test_without_a_survey_the_stage_publishes_an_empty_table():
    from pipeline.indicators.psa21.compute import OUTPUT_COLUMNS, compute_psa21_indicators
    from pipeline.indicators.psa21.settings import Psa21Settings

    con = duckdb.connect()
    con.execute("CREATE TABLE survey_responses (survey_id VARCHAR, respondent_id VARCHAR, interview_date DATE)")
    report = compute_psa21_indicators(con, Psa21Settings())
    assert report["survey"] is None and report["rows"] == 0
    columns = [r[0] for r in con.execute("DESCRIBE psa21_indicators").fetchall()]
    assert columns == list(OUTPUT_COLUMNS) and con.execute("SELECT count(*) FROM psa21_indicators").fetchall()[0][0] == 0
