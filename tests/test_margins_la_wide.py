"""la_wide_sd, list_base_gaps, lsoa_la_wide_sd (margins.py): the LA-wide error's SD from the LA's
list-to-base gap. Expected values worked by hand from the formula in la_wide_sd's docstring
(normal theory: E[e | G] = mu_e - k (G - (mu_i - mu_e)), Var[e | G] = k sigma_i^2,
k = sigma_e^2 / (sigma_e^2 + sigma_i^2))."""

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.estimates.margins import expected_la_base_error, la_wide_sd, list_base_gaps, load_margin_model, lsoa_la_wide_sd

P = {"l0": 0.0424, "gap_base_mean": 0.023, "gap_base_sd": 0.042, "gap_list_ratio": 1.072, "gap_list_sd": 0.042}


def test_la_wide_sd_at_englands_usual_gap():
    # sigma_i = sigma_e: k = 0.5, Var[e | G] = 0.5 x 0.042^2 = 0.000882; at G = log(1.072) - 0.023 the
    # expected base error is mu_e = 0.023: sqrt(0.000882 + 0.000529) = sqrt(0.001411) = 0.037563
    g = math.log(1.072) - 0.023
    assert la_wide_sd(P, [g])[0] == pytest.approx(0.037563, abs=1e-6)


def test_la_wide_sd_where_the_list_sits_far_below_the_base():
    # a gap 10 points below the usual: E[e | G] = 0.023 + 0.5 x 0.10 = 0.073,
    # sqrt(0.000882 + 0.073^2) = sqrt(0.006211) = 0.078810
    g = math.log(1.072) - 0.023 - 0.10
    assert la_wide_sd(P, [g])[0] == pytest.approx(0.078810, abs=1e-6)


def test_expected_la_base_error_moves_half_of_the_gaps_departure():
    # k = 0.5: at England's usual gap E[e | G] = mu_e = 0.023; a gap 10 points above it, 0.023 - 0.05 = -0.027
    usual = math.log(1.072) - 0.023
    assert expected_la_base_error(P, [usual, usual + 0.10]) == pytest.approx([0.023, -0.027], abs=1e-12)


def test_la_wide_sd_off_or_unknown_gap_gives_l0():
    assert la_wide_sd(dict(P, gap_list_sd=0.0), [0.3])[0] == pytest.approx(0.0424)
    assert la_wide_sd(P, [np.nan])[0] == pytest.approx(0.0424)


def test_defaults_leave_the_term_off():
    assert load_margin_model(path="/nonexistent.json")["gap_list_sd"] == 0.0


def _rows():
    # all-ages rows at two dates; the later date's numbers must not count
    d0, d1 = pd.Timestamp("2022-10-01"), pd.Timestamp("2023-10-01")
    rows = []
    for d, k in ((d0, 1.0), (d1, 3.0)):
        for lsoa, lst, base in (("a1", 110.0, 100.0), ("a2", 90.0, 100.0), ("b1", 105.0, 100.0)):
            rows.append(dict(lsoa_code=lsoa, reference_date=d, sex="All", age_band="All", gp_list=lst * k,
                             published_base=base))
        rows.append(dict(lsoa_code="a1", reference_date=d, sex="M", age_band="0-4", gp_list=999.0, published_base=1.0))
    return pd.DataFrame(rows), pd.DataFrame({"lsoa_code": ["a1", "a2", "b1"], "la_code": ["A", "A", "B"]})


def test_list_base_gaps_sums_lists_and_bases_at_the_first_date():
    rows, geo = _rows()
    gaps = list_base_gaps(rows, geo)
    assert gaps["A"] == pytest.approx(0.0)                      # log(200 / 200)
    assert gaps["B"] == pytest.approx(math.log(1.05))           # 0.048790


def test_lsoa_la_wide_sd_maps_each_row_to_its_las_term():
    rows, geo = _rows()
    sd = lsoa_la_wide_sd(P, rows, geo)
    # LA A, gap 0: E[e | G] = 0.023 - 0.5 (0 - (log 1.072 - 0.023)) = 0.023 + 0.5 x 0.046526 = 0.046263,
    # sqrt(0.000882 + 0.046263^2) = sqrt(0.0030223) = 0.054975
    a = sd[rows["lsoa_code"].eq("a2").to_numpy()]
    assert a == pytest.approx(np.full(len(a), 0.054975), abs=1e-6)
