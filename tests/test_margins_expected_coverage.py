"""expected_coverage / expected_coverage_scale (margins.py): the scale of the LSOA-specific
standard error set so that the specific errors plus an LA-wide error drawn from N(0, common)
are covered at the level asked for. Expected values computed by hand from the normal
distribution's table (Phi(3.92) = 0.999956, Phi(1.96) = 0.975, z(0.75) = 1.150349)."""

import numpy as np
import pytest

from pipeline.estimates.margins import expected_coverage, expected_coverage_scale


def test_expected_coverage_integrates_the_common_error():
    # one row: no specific error, S = 1, C = 1, K = sqrt(3): T = sqrt(3 + 1) = 2; the LA-wide error
    # c ~ N(0, 1) is covered when |c| <= 1.96 x 2 = 3.92: 2 Phi(3.92) - 1 = 0.999911
    assert expected_coverage([0.0], [1.0], [1.0], np.sqrt(3.0), 0.95) == pytest.approx(0.999911, abs=2e-6)
    # K = 0: T = 1, |c| <= 1.96 -> 2 x 0.975 - 1 = 0.95
    assert expected_coverage([0.0], [1.0], [1.0], 0.0, 0.95) == pytest.approx(0.95, abs=1e-4)


def test_expected_coverage_without_common_term_counts_rows():
    # C = 0: the indicator |s| <= 1.96 K sqrt(S); errors 1, 2, 3, 4 with S = 1, K = 1: only 1 is covered
    assert expected_coverage([1.0, -2.0, 3.0, 4.0], [1, 1, 1, 1], [0, 0, 0, 0], 1.0, 0.95) == pytest.approx(0.25)


def test_expected_coverage_scale_without_common_term_is_the_quantile():
    # level 0.75, |errors| 1, 2, 3, 4, S = 1: three of four covered needs z(0.75) K >= 3,
    # K = 3 / 1.150349 = 2.607905
    k = expected_coverage_scale([1.0, -2.0, 3.0, -4.0], [1, 1, 1, 1], [0, 0, 0, 0], 0.75)
    assert k == pytest.approx(2.607905, rel=1e-6)


def test_expected_coverage_scale_is_zero_when_the_common_term_covers_alone():
    # no specific error and C = 1: the LA-wide term alone covers 95% (2 Phi(1.96) - 1); nothing to add
    assert expected_coverage_scale([0.0, 0.0], [1.0, 1.0], [1.0, 1.0], 0.95) == 0.0


def test_expected_coverage_scale_with_a_common_error_beside_a_fixed_specific_one():
    # every row's specific error is 1.96 (S = 1), the LA-wide error c ~ N(0, 1): covered when
    # -z T <= 1.96 + c <= z T (z = z(0.95) = 1.959964), i.e. Phi(z T - 1.96) - Phi(-z T - 1.96) = 0.95;
    # the second term is ~1e-8, so z T - 1.96 = z(0.90) = 1.644854, T = 3.604854 / 1.959964 = 1.839245,
    # K = sqrt(T^2 - 1) = sqrt(2.382822) = 1.543639: wider than alone - a random LA-wide error beside
    # a fixed specific one pushes some rows out
    k = expected_coverage_scale(np.full(5, 1.96), np.ones(5), np.ones(5), 0.95)
    assert k == pytest.approx(1.543639, rel=2e-6)
    # on its own (no LA-wide error) the same errors need z K >= 1.96: K = 1.96 / 1.959964 = 1.000018
    assert expected_coverage_scale(np.full(5, 1.96), np.ones(5), np.zeros(5), 0.95) == pytest.approx(1.000018, rel=1e-6)
