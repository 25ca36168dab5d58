"""Reference tests for dashboards.metrics: no database.

Reference values come from scikit-learn, statsmodels and the krippendorff package computed here on
raw (per-rating) data, or from small cases worked by hand in the comments.
"""
from __future__ import annotations

import itertools
import math
import statistics

import krippendorff
import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import cohen_kappa_score, confusion_matrix, precision_recall_fscore_support
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa
from statsmodels.stats.proportion import proportion_confint

from dashboards import metrics as m

SEEDS = [0, 1, 2, 3, 4]


def _random_ratings(rng: np.random.Generator, n_items: int, k: int, max_raters: int) -> list[list[int]]:
    """Per item, the raw labels given to it: items share a latent class so agreement is above chance."""
    items = []
    shares = rng.dirichlet(np.ones(k))
    for _ in range(n_items):
        truth = rng.choice(k, p=shares)
        n = int(rng.integers(0, max_raters + 1))
        noise = rng.random(n) < 0.35
        items.append([int(rng.integers(k)) if flip else int(truth) for flip in noise])
    return items


def _counts(ratings: list[list[int]], k: int) -> np.ndarray:
    return np.array([np.bincount(r, minlength=k) if r else np.zeros(k, dtype=int) for r in ratings])


# --- shaping SQL rows -------------------------------------------------------------------------------------


def test_label_count_matrix_sums_rows_per_item_in_first_seen_order():
    rows = [(7, "cat", 2), (3, "dog", 1), (7, "dog", 1), (7, "cat", 1)]
    assert m.label_count_matrix(rows, ["cat", "dog"]).tolist() == [[3, 1], [0, 1]]


def test_label_count_matrix_names_the_bad_row():
    with pytest.raises(ValueError, match=r"rows\[1\].*'bird'"):
        m.label_count_matrix([(1, "cat", 1), (1, "bird", 1)], ["cat", "dog"])
    with pytest.raises(ValueError, match=r"rows\[0\].*non-negative integer"):
        m.label_count_matrix([(1, "cat", -1)], ["cat", "dog"])


def test_contingency_table_orients_rows_and_columns():
    table = m.contingency_table([("a", "b", 4), ("b", "a", 1), ("a", "a", 2)], ["a", "b"])
    assert table.tolist() == [[2, 4], [1, 0]]


def test_class_counts_fills_missing_classes_with_zero():
    assert m.class_counts({"c": 5, "a": 2}, ["a", "b", "c"]).tolist() == [2, 0, 5]
    with pytest.raises(ValueError, match="'z'"):
        m.class_counts({"z": 1}, ["a", "b"])


@pytest.mark.parametrize(
    "bad, match",
    [
        ([[1, -1]], r"counts\[0, 1\]"),
        ([[1, 0.5]], r"counts\[0, 1\]"),
        ([[np.nan, 1]], r"counts\[0, 0\]"),
        ([1, 2], "2-D"),
    ],
)
def test_count_matrix_validation_names_the_cell(bad, match):
    with pytest.raises(ValueError, match=match):
        m.percent_agreement_pairwise(bad)


# --- percent agreement ------------------------------------------------------------------------------------


def test_percent_agreement_by_hand():
    # Item 1: labels a,a,b -> 3 pairs, 1 agreeing. Item 2: a,a -> 1 pair, 1 agreeing. Item 3: one label,
    # no pairs. Pooled: (1 + 1) / (3 + 1) = 0.5 (an unweighted mean of items would give 2/3).
    assert m.percent_agreement_pairwise([[2, 1], [2, 0], [0, 1]]) == pytest.approx(0.5)


@pytest.mark.parametrize("seed", SEEDS)
def test_percent_agreement_matches_enumerating_pairs(seed):
    rng = np.random.default_rng(seed)
    ratings = _random_ratings(rng, n_items=60, k=4, max_raters=6)
    agree = total = 0
    for labels in ratings:
        for x, y in itertools.combinations(labels, 2):
            total += 1
            agree += x == y
    assert m.percent_agreement_pairwise(_counts(ratings, 4)) == pytest.approx(agree / total)


@pytest.mark.parametrize("counts", [[], [[0, 0]], [[1, 0], [0, 1]]])
def test_percent_agreement_without_pairs_is_none(counts):
    assert m.percent_agreement_pairwise(counts) is None


# --- Cohen's kappa ----------------------------------------------------------------------------------------


def test_cohen_kappa_two_by_two_by_hand():
    # A\B    yes  no
    # yes     20   5    A: 25 yes, 25 no
    # no      10  15    B: 30 yes, 20 no        N = 50
    # p_o = (20 + 15) / 50 = 0.7; p_e = (25*30 + 25*20) / 50^2 = 0.5; kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4
    assert m.cohen_kappa([[20, 5], [10, 15]]) == pytest.approx(0.4)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [2, 3, 5])
def test_cohen_kappa_matches_sklearn(seed, k):
    rng = np.random.default_rng(seed)
    n = 200
    a = rng.choice(k, size=n, p=rng.dirichlet(np.ones(k)))
    b = np.where(rng.random(n) < 0.6, a, rng.integers(k, size=n))
    table = confusion_matrix(a, b, labels=list(range(k)))
    assert m.cohen_kappa(table) == pytest.approx(cohen_kappa_score(a, b))


def test_cohen_kappa_perfect_agreement_is_one_and_independent_raters_near_zero():
    assert m.cohen_kappa([[30, 0, 0], [0, 12, 0], [0, 0, 8]]) == pytest.approx(1.0)
    # Rows proportional to the column margins: observed agreement equals chance, so kappa is exactly 0.
    assert m.cohen_kappa([[12, 8], [18, 12]]) == pytest.approx(0.0)


def test_cohen_kappa_single_class_is_undefined():
    # Both annotators said "a" for every item: p_o = p_e = 1, kappa is 0/0 (sklearn gives NaN).
    assert m.cohen_kappa([[40, 0], [0, 0]]) is None


def test_cohen_kappa_needs_min_items():
    table = [[3, 1], [1, 3]]
    assert m.cohen_kappa(table) is None  # 8 < default 10
    assert m.cohen_kappa(table, min_items=8) == pytest.approx(0.5)
    assert m.cohen_kappa([], min_items=1) is None


def test_cohen_kappa_rejects_non_square_table():
    with pytest.raises(ValueError, match="square"):
        m.cohen_kappa([[1, 2, 3], [4, 5, 6]])


# --- Fleiss' kappa ----------------------------------------------------------------------------------------


def test_fleiss_kappa_by_hand():
    # Three raters, two classes. P_i = 1, 1/3, 1 -> P_bar = 7/9. p = (5/9, 4/9) -> P_e = 41/81.
    # kappa = (63/81 - 41/81) / (40/81) = 22/40 = 0.55
    assert m.fleiss_kappa([[3, 0], [2, 1], [0, 3]]) == pytest.approx(0.55)


def test_fleiss_kappa_varying_raters_by_hand():
    # n_i = 2, 3, 4 (the single-rating item is dropped). P_i = 2/2, 2/6, 12/12 -> P_bar = 7/9.
    # 9 ratings: 3 class a, 6 class b -> P_e = 1/9 + 4/9 = 5/9. kappa = (7/9 - 5/9) / (4/9) = 0.5
    assert m.fleiss_kappa([[2, 0], [1, 2], [0, 4], [1, 0]]) == pytest.approx(0.5)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("raters", [2, 3, 5])
def test_fleiss_kappa_matches_statsmodels_on_constant_raters(seed, raters):
    rng = np.random.default_rng(seed)
    k = 4
    truth = rng.choice(k, size=80, p=rng.dirichlet(np.ones(k)))
    raw = np.where(rng.random((80, raters)) < 0.6, truth[:, None], rng.integers(k, size=(80, raters)))
    table, _ = aggregate_raters(raw, n_cat=k)
    expected = sm_fleiss_kappa(table, method="fleiss")
    assert m.fleiss_kappa(table) == pytest.approx(expected)
    # Items with a single rating are dropped, so they cannot change the result.
    with_singletons = np.vstack([table, np.eye(k, dtype=int)])
    assert m.fleiss_kappa(with_singletons) == pytest.approx(expected)


def test_fleiss_kappa_edge_cases():
    assert m.fleiss_kappa([[3, 0], [0, 3]]) == pytest.approx(1.0)
    assert m.fleiss_kappa([[4, 0], [3, 0]]) is None  # one class throughout: P_e = 1
    assert m.fleiss_kappa([]) is None
    assert m.fleiss_kappa([[1, 0], [0, 1]]) is None  # no item has two ratings


# --- Krippendorff's alpha ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_krippendorff_alpha_matches_package_on_raw_reliability_data(seed):
    rng = np.random.default_rng(seed)
    k, n_items, n_raters = 4, 70, 5
    truth = rng.choice(k, size=n_items)
    raw = np.where(rng.random((n_raters, n_items)) < 0.65, truth, rng.integers(k, size=(n_raters, n_items)))
    reliability = raw.astype(float)
    reliability[rng.random((n_raters, n_items)) < 0.4] = np.nan  # raters skip items
    expected = krippendorff.alpha(reliability_data=reliability, level_of_measurement="nominal")

    counts = np.zeros((n_items, k), dtype=int)
    for rater, item in zip(*np.nonzero(~np.isnan(reliability)), strict=True):
        counts[item, int(reliability[rater, item])] += 1
    alpha = m.krippendorff_alpha_from_stats(m.agreement_stats(counts, [str(c) for c in range(k)]))
    assert alpha == pytest.approx(expected)


@pytest.mark.parametrize(
    "counts, expected",
    [
        ([[2, 0], [0, 3]], 1.0),
        ([[2, 0], [3, 0]], None),  # one class: D_e = 0
        ([[1, 0], [0, 1]], None),  # nothing pairable
        ([], None),
    ],
)
def test_krippendorff_alpha_edge_cases(counts, expected):
    alpha = m.krippendorff_alpha_from_stats(m.agreement_stats(counts, ["a", "b"]))
    assert alpha == (None if expected is None else pytest.approx(expected))


def test_krippendorff_alpha_of_a_single_class_column_is_undefined():
    assert m.krippendorff_alpha_from_stats(m.agreement_stats([[3], [2]], ["a"])) is None


# --- Wilson interval and gold accuracy --------------------------------------------------------------------


@pytest.mark.parametrize("successes, n", [(0, 1), (0, 10), (10, 10), (7, 10), (1, 3), (412, 443), (50, 1000)])
@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.01])
def test_wilson_interval_matches_statsmodels(successes, n, alpha):
    low, high = m.wilson_interval(successes, n, z=norm.ppf(1 - alpha / 2))
    ref_low, ref_high = proportion_confint(successes, n, alpha=alpha, method="wilson")
    assert (low, high) == pytest.approx((ref_low, ref_high), abs=1e-12)


def test_wilson_default_is_95_percent():
    low, high = m.wilson_interval(30, 40)
    ref = proportion_confint(30, 40, alpha=0.05, method="wilson")
    assert (low, high) == pytest.approx(ref, abs=1e-4)  # 1.96 vs 1.959964


def test_wilson_interval_stays_in_unit_range_and_contains_p():
    for successes, n in [(0, 5), (5, 5), (2, 5)]:
        low, high = m.wilson_interval(successes, n)
        assert 0.0 <= low <= successes / n <= high <= 1.0
    low, high = m.wilson_interval(0, 5)
    assert low == 0.0 and high > 0.3  # no collapse to a point at p = 0


def test_accuracy_with_interval():
    result = m.accuracy_with_interval(45, 50)
    assert (result.accuracy, result.n, result.correct) == (0.9, 50, 45)
    assert (result.low, result.high) == pytest.approx(m.wilson_interval(45, 50))
    assert m.accuracy_with_interval(0, 0) is None
    with pytest.raises(ValueError, match="correct"):
        m.accuracy_with_interval(6, 5)
    with pytest.raises(ValueError, match="n"):
        m.accuracy_with_interval(1, -2)


# --- time to label ----------------------------------------------------------------------------------------


def test_quantiles_by_hand():
    # Linear interpolation: the 0.9 quantile of 1,2,3,4 sits at position 0.9 * 3 = 2.7 -> 3 + 0.7 = 3.7.
    assert m.quantiles([4, 1, 3, 2]) == pytest.approx({0.5: 2.5, 0.9: 3.7})


@pytest.mark.parametrize("seed", SEEDS)
def test_quantiles_match_statistics_inclusive_method(seed):
    values = np.random.default_rng(seed).lognormal(3, 1, size=57).tolist()
    deciles = statistics.quantiles(values, n=10, method="inclusive")
    result = m.quantiles(values, qs=(0.1, 0.5, 0.9))
    assert result == pytest.approx({0.1: deciles[0], 0.5: statistics.median(values), 0.9: deciles[8]})


def test_quantiles_empty_and_bad_input():
    assert m.quantiles([]) is None
    with pytest.raises(ValueError, match=r"values_seconds\[1\]"):
        m.quantiles([1.0, -2.0])
    with pytest.raises(ValueError, match="qs"):
        m.quantiles([1.0], qs=(50,))


def test_sla_compliance_counts_the_boundary_as_met():
    result = m.sla_compliance([1.0, 24.0, 24.5, 3.0], sla_hours=24)
    assert (result.n, result.within_sla, result.share) == (4, 3, 0.75)
    assert m.sla_compliance([], sla_hours=24) is None
    with pytest.raises(ValueError, match="sla_hours"):
        m.sla_compliance([1.0], sla_hours=0)


# --- model quality ----------------------------------------------------------------------------------------


def test_per_class_prf_by_hand():
    # true\pred  a  b  c
    # a          8  2  0     a: P = 8/9,  R = 8/10
    # b          1  3  0     b: P = 3/6,  R = 3/4
    # c          0  1  0     c: never predicted, P = 0 (zero division), R = 0/1
    report = m.per_class_prf([[8, 2, 0], [1, 3, 0], [0, 1, 0]], classes=["a", "b", "c"])
    a, b, c = report.per_class
    assert (a.label, a.precision, a.recall, a.support, a.predicted) == ("a", pytest.approx(8 / 9), 0.8, 10, 9)
    assert a.f1 == pytest.approx(2 * (8 / 9) * 0.8 / (8 / 9 + 0.8))
    assert (b.precision, b.recall) == pytest.approx((0.5, 0.75))
    assert (c.precision, c.recall, c.f1, c.support) == (0.0, 0.0, 0.0, 1)
    assert report.macro_recall == pytest.approx((0.8 + 0.75 + 0) / 3)
    assert report.accuracy == pytest.approx(11 / 15)


@pytest.mark.parametrize("seed", SEEDS)
def test_per_class_prf_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    k = 5
    # Class 4 never occurs and class 3 is only ever predicted, to exercise zero division.
    y_true = rng.choice(3, size=300, p=[0.6, 0.3, 0.1])
    y_pred = np.where(rng.random(300) < 0.7, y_true, rng.choice(4, size=300))
    table = confusion_matrix(y_true, y_pred, labels=list(range(k)))
    report = m.per_class_prf(table)

    labels = list(range(k))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None, zero_division=0)
    got = np.array([[c.precision, c.recall, c.f1, c.support] for c in report.per_class])
    np.testing.assert_allclose(got, np.column_stack([p, r, f, s]))

    macro = precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)[:3]
    assert (report.macro_precision, report.macro_recall, report.macro_f1) == pytest.approx(macro)


def test_per_class_prf_edge_cases():
    assert m.per_class_prf(np.zeros((3, 3), dtype=int)) is None
    perfect = m.per_class_prf([[5, 0], [0, 2]])
    assert perfect.macro_f1 == pytest.approx(1.0) and perfect.accuracy == 1.0
    with pytest.raises(ValueError, match="classes"):
        m.per_class_prf([[1, 0], [0, 1]], classes=["a"])


# --- value of escalation ----------------------------------------------------------------------------------


def test_escalation_value_by_hand():
    pre = ["a", "a", "b", None, "c", "a"]
    expert = ["a", "b", "b", "a", "a", "c"]
    gold = ["a", "b", "a", "a", None, "a"]
    # With a pre label: items 0,1,2,4,5 -> agree on 0 and 2 (2 of 5).
    # With pre label and gold: items 0,1,2,5. Pre correct: 0, 5 (2). Expert correct: 0, 1 (2).
    # Fixed (pre wrong, expert right): 1. Broken (pre right, expert wrong): 5.
    v = m.escalation_value(pre, expert, gold)
    assert (v.escalated, v.compared, v.agreed, v.agreement) == (6, 5, 2, 0.4)
    assert (v.with_gold, v.pre_correct, v.expert_correct, v.fixed, v.broken) == (4, 2, 2, 1, 1)
    assert v.pre_accuracy.accuracy == 0.5 and v.expert_accuracy.n == 4


def test_escalation_value_without_gold_and_empty():
    v = m.escalation_value(["a", "b"], ["a", "a"])
    assert v.agreement == 0.5 and v.with_gold == 0 and v.pre_accuracy is None and v.expert_accuracy is None
    empty = m.escalation_value([], [])
    assert empty.escalated == 0 and empty.agreement is None


def test_escalation_value_rejects_misaligned_input():
    with pytest.raises(ValueError, match="pre_labels"):
        m.escalation_value(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="gold_labels"):
        m.escalation_value(["a"], ["a"], [])
    with pytest.raises(ValueError, match=r"expert_labels\[1\]"):
        m.escalation_value(["a", "b"], ["a", None])


def test_cost_per_correct():
    assert m.cost_per_correct(120.0, 40) == pytest.approx(3.0)
    assert m.cost_per_correct(120.0, 0) is None
    with pytest.raises(ValueError, match="cost_total"):
        m.cost_per_correct(-1.0, 3)


# --- drift ------------------------------------------------------------------------------------------------


def test_confidence_histogram_bins_exact_decimals_like_sql():
    # Bin b is [b/10, (b+1)/10): 0.3 and 0.7 open their bins, 1.0 joins the last.
    values = [0.0, 0.05, 0.1, 0.3, 0.3, 0.7, 0.95, 1.0]
    assert m.confidence_histogram(values).tolist() == [2, 1, 0, 2, 0, 0, 0, 1, 0, 2]
    assert m.confidence_histogram([]).tolist() == [0] * 10
    assert m.confidence_histogram([0.2, 0.6], bins=2).tolist() == [1, 1]
    with pytest.raises(ValueError, match=r"values\[1\]"):
        m.confidence_histogram([0.5, 1.2])


def test_psi_by_hand():
    # Shares e = (0.5, 0.5), a = (0.8, 0.2): PSI = 0.3 ln(1.6) + (-0.3) ln(0.4).
    expected = 0.3 * math.log(1.6) - 0.3 * math.log(0.4)
    assert m.population_stability_index([50, 50], [80, 20]) == pytest.approx(expected)
    assert m.population_stability_index([50, 50], [80, 20]) == pytest.approx(
        m.population_stability_index([80, 20], [50, 50])
    )


def test_psi_of_identical_distributions_is_zero():
    hist = [5, 10, 0, 30, 55]
    assert m.population_stability_index(hist, hist) == 0.0
    assert m.population_stability_index(hist, [2 * h for h in hist]) == pytest.approx(0.0)


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_psi_grows_with_shift(seed):
    rng = np.random.default_rng(seed)
    reference = m.confidence_histogram(rng.beta(8, 2, size=5000))
    psis = [
        m.population_stability_index(reference, m.confidence_histogram(rng.beta(8 - shift, 2 + shift, size=5000)))
        for shift in (0, 1, 2, 3, 4)
    ]
    assert psis[0] < 0.02
    assert all(later > earlier for earlier, later in itertools.pairwise(psis))
    assert m.psi_level(psis[0]) == "stable" and m.psi_level(psis[-1]) == "significant"


def test_psi_handles_empty_bins_and_input():
    psi = m.population_stability_index([10, 0], [5, 5])
    assert math.isfinite(psi) and psi > 1
    assert m.population_stability_index([0, 0], [1, 2]) is None
    assert m.population_stability_index([], []) is None
    with pytest.raises(ValueError, match="bins"):
        m.population_stability_index([1, 2, 3], [1, 2])


@pytest.mark.parametrize(
    "psi, level",
    [
        (0.0, "stable"),
        (0.0999, "stable"),
        (0.1, "moderate"),
        (0.2499, "moderate"),
        (0.25, "significant"),
        (3, "significant"),
    ],
)
def test_psi_level(psi, level):
    assert m.psi_level(psi) == level


def test_psi_level_rejects_nan():
    with pytest.raises(ValueError, match="psi"):
        m.psi_level(float("nan"))


# --- effort -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n_items, n_escalated, n_disagreement, expected",
    [
        (0, 0, 0, 0.0),
        (10, 0, 0, 10.0),
        (10, 2, 0, 14.0),  # each escalated item counts 3
        (10, 0, 3, 13.0),  # each disagreement item counts 2
        (10, 2, 3, 17.0),
    ],
)
def test_work_units_default_weights(n_items, n_escalated, n_disagreement, expected):
    assert m.work_units(n_items, n_escalated, n_disagreement) == expected


def test_work_units_custom_weights_and_validation():
    weights = m.WorkUnitWeights(per_item=0.5, extra_per_escalated=4.0, extra_per_disagreement=0.0)
    assert m.work_units(4, 1, 2, weights) == pytest.approx(6.0)
    with pytest.raises(ValueError, match="n_escalated"):
        m.work_units(1, 2, 0)
    with pytest.raises(ValueError, match="weights.per_item"):
        m.work_units(1, 0, 0, m.WorkUnitWeights(per_item=-1.0))
