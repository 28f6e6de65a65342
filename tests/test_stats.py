"""Statistics on hand-made numbers with known answers."""

import math

import pytest

from maitsearch.stats import (kendall_tau, mean_std, paired_differences, paired_noise, pooled_std,
                              resolvable_gap, separation)


def test_mean_std_by_hand():
    assert mean_std([2.0, 4.0, 6.0]) == (4.0, 2.0)  # deviations -2, 0, 2: sqrt(8 / 2)
    assert mean_std([5.0]) == (5.0, 0.0)


def test_pooled_std_weights_by_degrees_of_freedom():
    # group a: std 2 with 3 values (2 dof); group b: std 1 with 2 values (1 dof)
    # pooled = sqrt((2 * 4 + 1 * 1) / 3) = sqrt(3)
    groups = {"a": [2.0, 4.0, 6.0], "b": [1.0, 1.0 + math.sqrt(2)]}
    assert pooled_std(groups) == pytest.approx(math.sqrt(3))
    assert math.isnan(pooled_std({"a": [1.0], "b": [2.0]}))


def test_separation_is_largest_gap_over_noise():
    groups = {"none": [0.70, 0.72, 0.74], "sch1": [0.71, 0.73, 0.75], "all": [0.78, 0.80, 0.82]}
    # every group has std 0.02; means 0.72, 0.73, 0.80: gap 0.08 -> 4 pooled stds
    assert separation(groups) == pytest.approx(4.0)


def test_resolvable_gap():
    # noise 0.01 over 2 seeds: 2 * 0.01 * sqrt(2 / 2) = 0.02
    assert resolvable_gap(0.01, 2) == pytest.approx(0.02)
    assert resolvable_gap(0.01, 8) == pytest.approx(0.01)
    assert resolvable_gap(0.01, 4, paired=True) == pytest.approx(0.01)  # 2 * 0.01 / sqrt(4)


def test_kendall_tau_known_values():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    # one discordant pair of six: (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # tau-b with a tie in b: pairs (1,2) tied in b; C = 5, D = 0, ties_b = 1 -> 5 / sqrt(6 * 5)
    assert kendall_tau([1, 2, 3, 4], [1, 1, 3, 4]) == pytest.approx(5 / math.sqrt(30))
    with pytest.raises(ValueError):
        kendall_tau([1], [1])


def test_paired_noise_cancels_shared_seed_luck():
    # seed 1 is unlucky for every placement; the differences from none barely vary
    values = {"none": [0.90, 0.80, 0.85], "all": [0.92, 0.82, 0.88], "sch1": [0.91, 0.80, 0.86]}
    diffs = paired_differences(values, "none")
    assert diffs["all"] == pytest.approx([0.02, 0.02, 0.03]) and diffs["sch1"] == pytest.approx([0.01, 0.0, 0.01])
    # each difference list has std 1/sqrt(3) hundredths... pooled over both: sqrt((2*a + 2*b) / 4)
    expected = math.sqrt((mean_std(diffs["all"])[1] ** 2 + mean_std(diffs["sch1"])[1] ** 2) / 2)
    assert paired_noise(values, "none") == pytest.approx(expected)
    assert paired_noise(values, "none") < pooled_std(values) / 5
