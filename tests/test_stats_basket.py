"""Rates, funnel limits, segregation, trend tests and the early-warning rule, pinned to reference values."""

import numpy as np
import pytest
from PHStatsMethods.confidence_intervals import wilson_upper
from scipy import stats

from pipeline.stats.early_warning import estimate_dispersion, flag_unusual_counts
from pipeline.stats.funnel import calculate_funnel_limits, estimate_overdispersion
from pipeline.stats.rate import calculate_rate
from pipeline.stats.segregation import calculate_diversity, calculate_segregation
from pipeline.stats.trend import calculate_trend_in_proportions, calculate_trend_in_rates


def test_byars_limits_match_the_phe_reference_value():
    # shared/spec/methods.md (PHEindicatormethods): x = 65 at 95% -> 50.163187710459454 to 82.84913854593984 events
    out = calculate_rate([65], [1000], confidence=(0.95, 0.998), multiplier=1000)
    assert out.loc[0, "value"] == 65
    assert out.loc[0, "lower_95"] == pytest.approx(50.163187710459454, abs=1e-6)
    assert out.loc[0, "upper_95"] == pytest.approx(82.84913854593984, abs=1e-6)
    assert out.loc[0, "lower_99_8"] < out.loc[0, "lower_95"]


def test_small_counts_use_exact_poisson_limits():
    # exact Poisson 95% limits for 5 and 0 events, as tabulated (e.g. Garwood 1936; Armitage & Berry
    # table): 5 -> 1.6235 to 11.6683; 0 -> 0 to 3.6889
    out = calculate_rate([5, 0], [1, 1], multiplier=1)
    assert out.loc[0, "lower_95"] == pytest.approx(1.6235, abs=1e-4)
    assert out.loc[0, "upper_95"] == pytest.approx(11.6683, abs=1e-4)
    assert out.loc[1, "lower_95"] == 0 and out.loc[1, "upper_95"] == pytest.approx(3.6889, abs=1e-4)


def test_rate_inputs_are_checked_with_a_fix():
    with pytest.raises(ValueError, match="denominator must be greater than 0"):
        calculate_rate([1], [0])
    with pytest.raises(ValueError, match="must not be negative"):
        calculate_rate([-1], [10])


def test_poisson_funnel_limits_follow_spiegelhalters_interpolation():
    # target 10 per 1,000; an area of 1,000 expects 10 events. Spiegelhalter (2005) A.1.1:
    # y = the 0.975 quantile of Poisson(10) = 17; F(17) = 0.98572, F(16) = 0.97296 (Poisson tables);
    # alpha = (0.98572 - 0.975)/(0.98572 - 0.97296) = 0.8401; limit = (17 - 0.8401)/1000 = 16.16 per 1,000
    out = calculate_funnel_limits([10, 30], [1000, 3000], statistic="rate", multiplier=1000)
    assert out.loc[0, "target"] == pytest.approx(10)
    assert out.loc[0, "funnel_upper_95"] == pytest.approx(16.16, abs=0.01)
    assert out.loc[1, "funnel_upper_95"] < out.loc[0, "funnel_upper_95"]  # the funnel narrows


def test_proportion_funnel_limit_is_where_the_wilson_interval_reaches_the_target():
    out = calculate_funnel_limits([30, 60], [100, 200], statistic="proportion", multiplier=100)
    limit = out.loc[0, "funnel_lower_95"] / 100  # a share at this limit has the target on its Wilson upper limit
    assert wilson_upper(limit * 100, 100, 0.95) == pytest.approx(0.30, abs=1e-6)


def test_overdispersion_widens_the_funnel_as_spiegelhalter_describes():
    # hand computation (Spiegelhalter 2005, QSHC 14:347): rates 5, 15, 10, 20, 8, 12 per 100 of 100 each:
    # theta = 70/600; s2 = theta/100; z_i = (y_i - theta)/s ... winsorised at the 10th/90th percentiles;
    # phi = mean z^2 > (I-1)/I, so tau2 = (I*phi - (I-1)) / (sum w - sum w^2/sum w) with w = 1/s2 = 100/theta
    x = np.array([5, 15, 10, 20, 8, 12.0])
    n = np.full(6, 100.0)
    theta = x.sum() / n.sum()
    z = (x / n - theta) / np.sqrt(theta / n)
    z = np.clip(z, *np.percentile(z, [10, 90]))
    phi = (z ** 2).mean()
    w = n / theta
    tau2 = (6 * phi - 5) / (w.sum() - (w ** 2).sum() / w.sum())
    got_phi, got_tau2 = estimate_overdispersion(x / n, theta / n, theta)
    assert got_phi == pytest.approx(phi) and got_tau2 == pytest.approx(tau2)
    plain = calculate_funnel_limits(x, n, "rate", multiplier=100)
    wide = calculate_funnel_limits(x, n, "rate", multiplier=100, overdispersion=True)
    assert wide.loc[0, "funnel_upper_99_8"] == pytest.approx(100 * (theta + stats.norm.ppf(0.999) * np.sqrt(theta / 100 + tau2)))
    assert (wide["funnel_upper_99_8"] > plain["funnel_upper_99_8"]).all()


def test_segregation_indices_equal_pysal_on_the_same_counts():
    # values computed by PySAL segregation 2.5.4 (Dissim, Isolation, Interaction, Entropy):
    # benchmarks/reference_segregation.py
    out = calculate_segregation([10, 20, 5, 40], [100, 80, 60, 90], iterations=4000, seed=3).set_index("index")
    assert out.loc["dissimilarity", "value"] == pytest.approx(0.3686274509803921, abs=1e-12)
    assert out.loc["isolation", "value"] == pytest.approx(0.32259259259259254, abs=1e-12)
    assert out.loc["exposure", "value"] == pytest.approx(0.6774074074074075, abs=1e-12)
    assert out.loc["entropy", "value"] == pytest.approx(0.11497328983642756, abs=1e-12)
    # expected under random allocation: PySAL's person permutation, 1000 draws -> D 0.0899, isolation 0.2342
    assert out.loc["dissimilarity", "expected"] == pytest.approx(0.0899, abs=0.006)
    assert out.loc["isolation", "expected"] == pytest.approx(0.2342, abs=0.003)
    assert out.loc["dissimilarity", "significance"] == "higher"


def test_small_schools_read_as_segregated_only_against_zero():
    # six tiny schools with an even mix: D is far below what random allocation gives (PySAL: 0.0588
    # observed, 0.2502 expected under person permutation), so it must not be reported as segregation
    out = calculate_segregation([3, 2, 4, 3, 2, 3], [12, 10, 14, 11, 9, 12], iterations=4000, seed=3).set_index("index")
    assert out.loc["dissimilarity", "value"] == pytest.approx(0.05882352941176469, abs=1e-12)
    assert out.loc["entropy", "value"] == pytest.approx(0.003925681106684814, abs=1e-12)
    assert out.loc["dissimilarity", "expected"] == pytest.approx(0.2502, abs=0.01)
    assert out.loc["dissimilarity", "significance"] != "higher"


def test_diversity_is_normalised_shannon_entropy():
    assert calculate_diversity([50, 50]) == pytest.approx(1.0)
    assert calculate_diversity([100, 0, 0]) == pytest.approx(0.0)
    # hand: p = (0.5, 0.25, 0.25): -(0.5 ln 0.5 + 2 * 0.25 ln 0.25) / ln 3 = 1.0397208 / 1.0986123
    assert calculate_diversity([2, 1, 1]) == pytest.approx(1.0397208 / 1.0986123, abs=1e-6)


def test_trend_in_proportions_matches_r_prop_trend_test():
    # R documentation, example(prop.trend.test): smokers c(83, 90, 129, 70) of patients c(86, 93, 136, 82)
    # -> X-squared = 8.2249, df = 1, p-value = 0.004132
    out = calculate_trend_in_proportions([83, 90, 129, 70], [86, 93, 136, 82])
    assert out["statistic"] == pytest.approx(8.2249, abs=1e-4)
    assert out["p_value"] == pytest.approx(0.004132, abs=1e-6)
    assert out["direction"] == "falling"


def test_trend_in_rates_is_the_poisson_score_test():
    # hand: counts 10, 12, 15, 20 per 1,000 at scores 0..3: X = 57, N = 4000;
    # U = (12 + 30 + 60) - 1.5 * 57 = 16.5; V = 57/4000 * (14000 - 6000^2/4000) = 71.25; chi2 = 16.5^2/71.25
    out = calculate_trend_in_rates([10, 12, 15, 20], [1000] * 4)
    assert out["statistic"] == pytest.approx(16.5 ** 2 / 71.25)
    assert out["p_value"] == pytest.approx(stats.chi2.sf(16.5 ** 2 / 71.25, 1))
    assert calculate_trend_in_rates([10, 20, 40, 80], [1000] * 4)["direction"] == "rising"


def test_early_warning_thresholds_follow_farrington():
    # history 30 events in 3,000; this period 1,000 -> mu = 10; tau = 1/10 + 1/30;
    # upper = 10 * (1 + (2/3) * 3.090232 * sqrt(tau))^1.5 (Farrington et al. 1996, 2/3-power threshold)
    out = flag_unusual_counts([30, 12, 0], [1000] * 3, [30] * 3, [3000] * 3, phi=1.0, confidence=0.998)
    tau = 1 / 10 + 1 / 30
    upper = 10 * (1 + (2 / 3) * 3.090232 * np.sqrt(tau)) ** 1.5
    lower = 10 * (1 - (2 / 3) * 3.090232 * np.sqrt(tau)) ** 1.5
    assert out.loc[0, "upper_limit"] == pytest.approx(upper, rel=1e-6)
    assert out.loc[0, "lower_limit"] == pytest.approx(lower, rel=1e-6)
    assert list(out["direction"]) == ["rise", "", "fall"]


def test_a_rise_of_a_few_events_is_not_a_warning():
    out = flag_unusual_counts([4], [1000], [1], [3000], min_count=5)
    assert out.loc[0, "direction"] == ""


def test_dispersion_is_pearsons_and_never_below_one():
    # hand: counts 5, 15 around 10, 10 -> (25 + 25)/10 / (2 - 1) = 5
    assert estimate_dispersion([5, 15], [10, 10]) == pytest.approx(5.0)
    assert estimate_dispersion([10, 10, 9, 11], [10, 10, 10, 10], n_series=2) == 1.0


def test_sii_is_the_weighted_line_from_most_to_least_deprived():
    from pipeline.stats.sii import calculate_sii
    # hand: equal populations, ridits 0.1, 0.3, 0.5, 0.7, 0.9; values 50, 40, 30, 20, 10 fall by 50 per
    # unit ridit, so the most deprived end (0) is 50 above the least deprived end (1): SII = 50
    out = calculate_sii([50, 40, 30, 20, 10], [100] * 5, variance=[1] * 5)
    assert out["sii"] == pytest.approx(50)
    assert out["lower"] < 50 < out["upper"]
    # unequal populations: the line is weighted. hand: shares 0.5, 0.25, 0.25 -> ridits 0.25, 0.625, 0.875;
    # values 10, 20, 20: x mean 0.5, y mean 15; Sxy = 0.5*(-0.25)(-5) + 0.25*0.125*5 + 0.25*0.375*5 = 1.25;
    # Sxx = 0.5*0.0625 + 0.25*0.015625 + 0.25*0.140625 = 0.0703125; slope = 17.777...; SII = -17.777...
    assert calculate_sii([10, 20, 20], [200, 100, 100])["sii"] == pytest.approx(-1.25 / 0.0703125)


def test_trends_to_date_are_the_one_series_test_on_each_prefix():
    # two series of 4 periods; by hand for series A up to period 3 (scores 0, 1, 2; x = 10, 20, 30; n = 1000 each):
    # X/N = 60/3000, U = (0*10 + 1*20 + 2*30) - 0.02 * (0 + 1000 + 2000) = 80 - 60 = 20,
    # V = 0.02 * (1000*(0 + 1 + 4) - 3000**2 / 3000) = 0.02 * 2000 = 40, chi2 = 400 / 40 = 10 -> p = 0.00157: rising
    import pandas as pd

    from pipeline.stats.trend import calculate_trends_to_date

    x = pd.Series([10.0, 20, 30, 25, 0, 0, 0, 4])
    n = pd.Series([1000.0] * 8)
    got = calculate_trends_to_date(x, n, ["A"] * 4 + ["B"] * 4, "rate")
    assert list(got["direction"][:2]) == ["not tested"] * 2
    assert got["statistic"][2] == pytest.approx(10.0) and got["direction"][2] == "rising"
    assert got["p_value"][2] == pytest.approx(0.0015654, rel=1e-4)
    assert got["p_value"][3] == pytest.approx(calculate_trend_in_rates(x[:4], n[:4])["p_value"])
    assert list(got["direction"][4:7]) == ["not tested"] * 3  # no events yet: not tested
    assert got["p_value"][7] == pytest.approx(calculate_trend_in_rates(x[4:8], n[4:8])["p_value"])
