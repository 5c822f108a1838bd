"""Wilson score limits and comparisons, pinned to published reference values."""

import pandas as pd
import pytest

from pipeline.stats.compare import compare_to_comparator, judge_significance
from pipeline.stats.proportion import calculate_proportion


def test_wilson_limits_match_the_phe_reference_values():
    # Reference values from PHEindicatormethods' documentation and tests, quoted in shared/spec/methods.md:
    # 65/100 at 95% -> 0.5525444329688797 to 0.7363575175690247; 1045/5000 at 99.8% -> 0.191793817990152 to 0.227315629025258
    out = calculate_proportion([65, 1045], [100, 5000], confidence=(0.95, 0.998))
    assert out.loc[0, "lower_95"] == pytest.approx(0.5525444329688797, abs=1e-9)
    assert out.loc[0, "upper_95"] == pytest.approx(0.7363575175690247, abs=1e-9)
    assert out.loc[1, "lower_99_8"] == pytest.approx(0.191793817990152, abs=1e-9)
    assert out.loc[1, "upper_99_8"] == pytest.approx(0.227315629025258, abs=1e-9)


def test_percentages_scale_value_and_limits():
    out = calculate_proportion([65], [100], multiplier=100)
    assert out.loc[0, "value"] == 65
    assert out.loc[0, "lower_95"] == pytest.approx(55.25444329688797, abs=1e-7)


def test_bad_inputs_say_how_to_fix_them():
    with pytest.raises(ValueError, match="denominator must be greater than 0"):
        calculate_proportion([1], [0])
    with pytest.raises(ValueError, match="between 0 and the denominator"):
        calculate_proportion([5], [4])
    with pytest.raises(ValueError, match="missing or non-numeric"):
        calculate_proportion([None], [4])


def test_comparison_follows_fingertips_rules():
    sig = compare_to_comparator([50, 50, 50, None], [60, 60, 60, 60], [55, 45, 65, 55])
    assert list(sig) == ["similar", "higher", "lower", "not compared"]
    judged = judge_significance(pd.Series(["higher", "lower", "higher", "similar"]),
                                pd.Series(["higher is better", "higher is better", "lower is better", "no judgement"]))
    assert list(judged) == ["better", "worse", "worse", "similar"]
