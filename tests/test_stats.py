"""Statistics over seeds against direct formulas and textbook values (no statistics library)."""

from __future__ import annotations

import math

import pytest

from charlab.experiments import stats

# Student t, 97.5 % quantile (the two-sided 95 % interval), from the standard tables.
T_975 = {1: 12.7062047, 2: 4.30265273, 3: 3.18244631, 4: 2.77644511, 5: 2.57058184, 10: 2.22813885,
         30: 2.04227246, 100: 1.98397152}
NORMAL_975 = 1.95996398  # the limit as the degrees of freedom grow
TABLE_DIGITS = 1e-7  # the tables' values are given to 8-9 significant digits


@pytest.mark.parametrize("df,expected", sorted(T_975.items()))
def test_t_quantile_matches_the_tables(df, expected):
    assert stats.t_quantile(0.975, df) == pytest.approx(expected, abs=TABLE_DIGITS)
    assert stats.t_quantile(0.025, df) == pytest.approx(-expected, abs=TABLE_DIGITS)


@pytest.mark.parametrize("p", [0.6, 0.9, 0.975, 0.995, 0.9995])
def test_t_quantile_closed_forms_for_one_and_two_degrees_of_freedom(p):
    assert stats.t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-10)  # Cauchy
    assert stats.t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-10)


def test_t_quantile_tends_to_the_normal_and_is_odd():
    assert stats.t_quantile(0.975, 5000) == pytest.approx(NORMAL_975, abs=1e-3)
    assert stats.t_quantile(0.5, 7) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        stats.t_quantile(1.0, 3)


def test_t_two_sided_is_a_distribution():
    for df in (1, 2, 3, 8, 9):
        values = [stats.t_two_sided(t, df) for t in (0, 0.5, 1, 2, 10, 1e6)]
        assert values[0] == 0 and all(b > a for a, b in zip(values, values[1:])) and values[-1] == pytest.approx(1)


def test_mean_std_and_interval_by_hand():
    values = [2.0, 4.0, 6.0]
    assert stats.mean(values) == 4.0
    assert stats.sample_std(values) == pytest.approx(2.0)  # sqrt((4 + 0 + 4) / (3 - 1))
    half = T_975[2] * 2.0 / math.sqrt(3)
    low, high = stats.confidence_interval(values)
    assert (low, high) == (pytest.approx(4 - half, abs=1e-7), pytest.approx(4 + half, abs=1e-7))
    s = stats.summarize(values)
    assert (s.mean, s.std, s.n) == (4.0, pytest.approx(2.0), 3) and s.ci_low == pytest.approx(low)


def test_summaries_of_one_and_no_value():
    assert stats.summarize([2.5]) == stats.Summary(2.5, None, None, None, 1)
    assert stats.summarize([]) == stats.Summary(None, None, None, None, 0)


def test_paired_differences_drop_a_seed_missing_on_either_side():
    assert stats.paired_differences([1.0, None, 3.0, math.nan], [1.5, 2.0, 2.0, 1.0]) == [0.5, -1.0]


def test_verdicts_never_call_an_interval_around_zero_a_difference():
    noisy = stats.summarize([0.004, -0.002, 0.010])
    assert noisy.ci_low < 0 < noisy.ci_high and stats.verdict(noisy) == stats.WITHIN_NOISE
    lower = stats.summarize([-0.030, -0.032, -0.031])
    assert stats.verdict(lower) == stats.BETTER
    assert stats.verdict(lower, lower_is_better=False) == stats.WORSE
    assert stats.verdict(stats.summarize([0.02, 0.021, 0.019])) == stats.WORSE
    assert stats.verdict(stats.summarize([-0.5])) == stats.NO_INTERVAL
