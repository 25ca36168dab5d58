"""The snapshot helpers added to dashboards.metrics: additive agreement sums and duration histograms.

No database. References: the matrix-based coefficients of the same module (themselves checked against
statsmodels and the krippendorff package in test_metrics.py), the krippendorff package directly, and
numpy's quantiles on the raw durations.
"""
from __future__ import annotations

import krippendorff
import numpy as np
import pytest

from dashboards import metrics as m

CLASSES = ["a", "b", "c", "d"]


def _random_counts(seed: int, n_items: int = 60, k: int = 4, max_labels: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_items):
        truth = rng.integers(k)
        n = rng.integers(0, max_labels + 1)
        labels = np.where(rng.random(n) < 0.3, rng.integers(k, size=n), truth)
        rows.append(np.bincount(labels, minlength=k))
    return np.array(rows)


@pytest.mark.parametrize("seed", range(6))
def test_stats_give_the_matrix_coefficients(seed):
    counts = _random_counts(seed)
    stats = m.agreement_stats(counts, CLASSES)
    assert m.percent_agreement_from_stats(stats) == pytest.approx(m.percent_agreement_pairwise(counts))
    assert m.fleiss_kappa_from_stats(stats) == pytest.approx(m.fleiss_kappa(counts))
    pairable = counts[counts.sum(axis=1) >= 2]
    reference = krippendorff.alpha(value_counts=pairable, level_of_measurement="nominal")
    assert m.krippendorff_alpha_from_stats(stats) == pytest.approx(reference)


@pytest.mark.parametrize("seed", range(4))
def test_stats_of_parts_add_up_to_the_stats_of_the_whole(seed):
    counts = _random_counts(seed, n_items=90)
    parts = np.array_split(counts, [17, 50])
    total = m.AgreementStats()
    for part in parts:
        total = total + m.agreement_stats(part, CLASSES)
    whole = m.agreement_stats(counts, CLASSES)
    assert (total.items, total.labels, total.pairs, total.agreeing) == (whole.items, whole.labels, whole.pairs,
        whole.agreeing)
    assert total.item_agreement_sum == pytest.approx(whole.item_agreement_sum)
    assert total.disagreement_sum == pytest.approx(whole.disagreement_sum)
    assert total.class_totals == whole.class_totals
    assert m.fleiss_kappa_from_stats(total) == pytest.approx(m.fleiss_kappa(counts))


def test_worked_example():
    # Item 1: two "a" labels; item 2: "a", "a", "b"; item 3: one label (no pairs, left out).
    # pairs 2 + 6 = 8, agreeing 2 + 2 = 4; P_i = 1 and 1/3, P_bar = 2/3; p = (4/5, 1/5), P_e = 17/25;
    # kappa = (2/3 - 17/25) / (8/25) = -1/24; alpha = 1 - 4 * (0 + (9 - 5) / 2) / (25 - 17) = 0.
    stats = m.agreement_stats([[2, 0, 0, 0], [2, 1, 0, 0], [0, 0, 1, 0]], CLASSES)
    assert (stats.items, stats.labels, stats.pairs, stats.agreeing) == (2, 5, 8, 4)
    assert stats.class_totals == {"a": 4, "b": 1}
    assert m.percent_agreement_from_stats(stats) == 0.5
    assert m.fleiss_kappa_from_stats(stats) == pytest.approx(-1 / 24)
    assert m.krippendorff_alpha_from_stats(stats) == pytest.approx(0.0)


@pytest.mark.parametrize(
    "counts",
    [
        [],  # no items
        [[1, 0, 0, 0], [0, 1, 0, 0]],  # nobody labelled an item twice
    ],
)
def test_no_pairable_item_leaves_every_coefficient_undefined(counts):
    stats = m.agreement_stats(counts, CLASSES)
    assert stats == m.AgreementStats()
    assert m.percent_agreement_from_stats(stats) is None
    assert m.fleiss_kappa_from_stats(stats) is None
    assert m.krippendorff_alpha_from_stats(stats) is None


def test_one_class_throughout_has_agreement_but_no_chance_corrected_coefficient():
    stats = m.agreement_stats([[3, 0, 0, 0], [2, 0, 0, 0]], CLASSES)
    assert m.percent_agreement_from_stats(stats) == 1.0
    assert m.fleiss_kappa_from_stats(stats) is None
    assert m.krippendorff_alpha_from_stats(stats) is None


def test_agreement_stats_name_bad_input():
    with pytest.raises(ValueError, match=r"classes: 3 names for 4 count columns"):
        m.agreement_stats([[1, 1, 0, 0]], ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"counts\[0, 1\]"):
        m.agreement_stats([[1, -1, 0, 0]], CLASSES)


# --- duration histograms ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0.0, 0), (0.999, 0), (1.0, 1), (10.0, 25), (3600.0, 86), (1e12, m.DURATION_BINS - 1)],
)
def test_duration_bins(seconds, expected):
    b = int(m.duration_bins([seconds])[0])
    assert b == expected
    if b < m.DURATION_BINS - 1:
        assert m.DURATION_BIN_EDGES[b] <= seconds < m.DURATION_BIN_EDGES[b + 1]


def test_duration_bins_reject_negative_and_nan():
    with pytest.raises(ValueError, match=r"seconds\[1\]"):
        m.duration_bins([1.0, -2.0])
    with pytest.raises(ValueError, match=r"seconds\[0\]"):
        m.duration_bins([float("nan")])


@pytest.mark.parametrize("seed", range(5))
def test_histogram_quantiles_stay_within_a_bin_of_numpys(seed):
    rng = np.random.default_rng(seed)
    seconds = rng.lognormal(mean=rng.uniform(2, 10), sigma=rng.uniform(0.3, 2.0), size=int(rng.integers(5, 3000)))
    dense = np.bincount(m.duration_bins(seconds), minlength=m.DURATION_BINS)
    approx = m.histogram_quantiles(dense, (0.1, 0.5, 0.9))
    exact = np.quantile(seconds, [0.1, 0.5, 0.9])
    bin_ratio = 10 ** (1 / m.DURATION_BINS_PER_DECADE)
    for q, value in zip((0.1, 0.5, 0.9), exact):
        assert value / bin_ratio <= approx[q] <= value * bin_ratio


def test_histogram_quantiles_accept_sparse_counts_with_string_keys():
    seconds = [5.0, 60.0, 61.0, 3600.0]
    dense = np.bincount(m.duration_bins(seconds), minlength=m.DURATION_BINS)
    sparse = {str(b): int(n) for b, n in enumerate(dense) if n}
    assert m.histogram_quantiles(sparse) == m.histogram_quantiles(dense)


def test_histogram_quantiles_of_two_values_interpolate_between_them():
    # 2 h and 3 h: the median is half-way, as numpy's would be (2.5 h), up to the bins' width.
    dense = np.bincount(m.duration_bins([7200.0, 10800.0]), minlength=m.DURATION_BINS)
    assert m.histogram_quantiles(dense, (0.5,))[0.5] == pytest.approx(9000, rel=0.1)


def test_histogram_quantiles_empty_and_bad_input():
    assert m.histogram_quantiles({}) is None
    with pytest.raises(ValueError, match=r"counts\['999'\]"):
        m.histogram_quantiles({"999": 1})
    with pytest.raises(ValueError, match=f"expected {m.DURATION_BINS} bins"):
        m.histogram_quantiles([1, 2, 3])
    with pytest.raises(ValueError, match="qs"):
        m.histogram_quantiles({"3": 1}, (1.5,))
