"""Survey statistics pinned to independently computed values: R's survey package, Kish, PHE's Wilson."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.stats.design_effect import calculate_design_effect
from pipeline.stats.fay_herriot import estimate_fay_herriot, estimate_fay_herriot_proportions
from pipeline.stats.raking import pool_margin, pool_thin_levels, rake_weights
from pipeline.stats.weighted_proportion import calculate_weighted_proportion

REFERENCE = Path(__file__).parent / "reference" / "raking"


def _worked_example():
    respondents = pd.read_csv(REFERENCE / "worked_example.csv")
    margins = pd.read_csv(REFERENCE / "margins.csv")
    return respondents, {m: dict(zip(g.level, g.population)) for m, g in margins.groupby("margin")}


def test_raked_weights_match_r_survey_rake():
    # expected_weights.csv: R survey 4.1.1, rake(design, list(~ward, ~age_sex), ...), epsilon 1e-10
    # (tests/reference/raking/raking_example.R recomputes it)
    respondents, margins = _worked_example()
    expected = pd.read_csv(REFERENCE / "expected_weights.csv")
    result = rake_weights(respondents, margins, respondents["design_weight"], tolerance=1e-10, max_iter=1000)
    assert result.converged and result.messages == []
    np.testing.assert_allclose(result.weights, expected["weight"], rtol=1e-7)


def test_weighted_share_and_kish_design_effect_match_r():
    respondents, margins = _worked_example()
    expected = pd.read_csv(REFERENCE / "expected_estimates.csv").set_index("statistic")["value"]
    weights = pd.read_csv(REFERENCE / "expected_weights.csv")["weight"]
    share = calculate_weighted_proportion(respondents["agree"], weights, multiplier=1).iloc[0]
    assert share["value"] == pytest.approx(float(expected["weighted_share"]), abs=1e-9)  # svymean(~agree, raked)
    assert share["design_effect"] == pytest.approx(float(expected["kish_design_effect"]), abs=1e-9)
    assert share["effective_n"] == pytest.approx(float(expected["effective_n"]), abs=1e-8)


def test_kish_design_effect_by_hand():
    # weights 1, 1, 2, 4: n sum(w^2) / (sum w)^2 = 4 x 22 / 64 = 1.375; n_eff = 64 / 22
    out = calculate_design_effect([1, 1, 2, 4])
    assert out["design_effect"] == pytest.approx(1.375)
    assert out["effective_n"] == pytest.approx(64 / 22)


def test_equal_weights_give_phe_wilson_limits_exactly():
    # PHEindicatormethods reference (methods.md): 65/100 at 95% -> 0.5525444329688797 to 0.7363575175690247
    counted = np.r_[np.ones(65), np.zeros(35)]
    out = calculate_weighted_proportion(counted, np.full(100, 3.7)).iloc[0]
    assert out["lower_95"] == pytest.approx(55.25444329688797, abs=1e-7)
    assert out["upper_95"] == pytest.approx(73.63575175690247, abs=1e-7)
    assert out["effective_n"] == pytest.approx(100)


def test_unequal_weights_widen_the_interval_by_the_design_effect():
    counted = np.r_[np.ones(65), np.zeros(35)]
    weights = np.r_[np.tile([1.0, 3.0], 50)]
    out = calculate_weighted_proportion(counted, weights).iloc[0]
    n_eff = 100 / 1.25  # deff = 100 x 500 / 200^2 = 1.25
    assert out["effective_n"] == pytest.approx(n_eff)
    plain = calculate_weighted_proportion(counted, np.ones(100)).iloc[0]
    assert out["upper_95"] - out["lower_95"] > plain["upper_95"] - plain["lower_95"]


def test_weighted_share_refuses_respondents_outside_the_base():
    with pytest.raises(ValueError, match="must be dropped before calling"):
        calculate_weighted_proportion([1, 0, 5], [1, 1, 1])


def test_raking_refuses_margins_that_disagree_and_levels_without_respondents():
    respondents, margins = _worked_example()
    bad = {**margins, "ward": {**margins["ward"], "W1": 1300}}
    with pytest.raises(ValueError, match="margins disagree on the population"):
        rake_weights(respondents, bad)
    extra = {"ward": {**margins["ward"], "W4": 100}, "age_sex": {**margins["age_sex"], "65+ F": 270}}
    with pytest.raises(ValueError, match="no respondents there"):
        rake_weights(respondents, extra)


def test_trimming_caps_weights_and_reports_what_the_margins_need():
    respondents, margins = _worked_example()
    loose = rake_weights(respondents, margins, trim_ratio=3.0, tolerance=1e-8)
    assert loose.weights.max() <= 3.0 * np.median(loose.weights) * 1.001
    tight = rake_weights(respondents, margins, trim_ratio=1.3, tolerance=1e-8)
    assert tight.converged  # margins still met ...
    assert tight.above_cap > 0 and "remain above" in tight.messages[0]  # ... and the report says the cap gave way


def test_raking_that_cannot_converge_says_so():
    respondents, margins = _worked_example()
    result = rake_weights(respondents, margins, tolerance=1e-12, max_iter=1)
    assert not result.converged
    assert "did not converge" in result.messages[0]


def test_thin_levels_are_pooled_with_a_neighbour():
    values = pd.Series(["a"] * 20 + ["b"] * 3 + ["c"] * 15)
    pooled = pool_thin_levels(values, ["a", "b", "c"], min_respondents=10)
    assert set(pooled) == {"a", "b | c"}
    assert pool_margin({"a": 100, "b": 10, "c": 50}, pooled, values) == {"a": 100.0, "b | c": 60.0}
    # age x sex cells pool only within a sex: the oldest women join the next-oldest women, not the youngest men
    cells = pd.Series(["F 65-74"] * 12 + ["F 75+"] * 2 + ["M 16-24"] * 12)
    pooled = pool_thin_levels(cells, ["F 65-74", "F 75+", "M 16-24"], 10, within=lambda level: level.split(" ")[0])
    assert set(pooled) == {"F 65-74 | F 75+", "M 16-24"}


def test_fay_herriot_matches_a_hand_computed_example():
    # Intercept-only FH with equal variances D: REML sigma2_u = max(0, s^2 - D) with s^2 the sample variance
    # (divisor m - 1); the EBLUP shrinks each y towards the mean by D / (sigma2_u + D).
    y = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    d = np.full(5, 0.5)  # s^2 = 2.5, so sigma2_u = 2.0 and gamma = 0.8
    fit, info = estimate_fay_herriot(y, d, np.ones((5, 1)))
    assert info["fitted"] and info["sigma2_u"] == pytest.approx(2.0, abs=1e-6)
    np.testing.assert_allclose(fit["estimate"], 2.0 + 0.8 * (y - 2.0), atol=1e-6)
    np.testing.assert_allclose(fit["gamma"], 0.8, atol=1e-6)
    # MSE = g1 + g2 + 2 g3: g1 = gamma D = 0.4; g2 = (1-gamma)^2 (sigma2+D)/m = 0.02; var(sigma2) = 2(sigma2+D)^2/m = 2.5,
    # g3 = D^2/(sigma2+D)^3 x 2.5 = 0.04
    np.testing.assert_allclose(fit["mse"], 0.4 + 0.02 + 2 * 0.04, atol=1e-6)


def test_fay_herriot_falls_back_when_it_cannot_fit_and_gives_synthetic_estimates_for_empty_areas():
    _, info = estimate_fay_herriot([0.1, 0.2], [0.1, 0.1], np.column_stack([np.ones(2), [1.0, 2.0]]))
    assert not info["fitted"] and "2 areas" in info["reason"]
    p = np.array([0.6, 0.7, np.nan, 0.65, 0.8, 0.55])
    fit, info = estimate_fay_herriot_proportions(p, np.array([100, 120, 0, 90, 80, 150.0]), np.ones((6, 1)))
    assert info["fitted"] and fit.loc[2, "synthetic"]
    assert (fit["lower_95"] < fit["estimate"]).all() and (fit["estimate"] < fit["upper_95"]).all()
    assert ((fit["estimate"] > 0) & (fit["estimate"] < 1)).all()
