"""Metrics math for the stakeholder dashboard: pure functions on compact aggregates.

Inputs are the small tables SQL can produce with GROUP BY (an items x classes count matrix, a K x K
contingency table, per-bin histograms), never lists of ORM objects. Outputs are floats, numpy arrays or
frozen dataclasses. No Django import here, so the simulator and notebooks can call the same code.

Conventions used throughout:
- A statistic that is undefined for the data given (no items, chance agreement of 1, zero denominators
  that have no meaningful limit) is returned as ``None`` so the page can show "n/a" instead of a
  misleading 0 or NaN. Per-class precision/recall/F1 are the one exception (see ``per_class_prf``).
- Malformed input (wrong shape, negative or fractional counts, NaN) raises ``ValueError`` naming the
  argument and the first offending position.
- Class order is whatever the caller uses for the columns; ``label_count_matrix``, ``contingency_table``
  and ``class_counts`` turn SQL rows keyed by label into arrays with a fixed class order.

The math lives in one module per concern: ``shaping`` (rows to arrays), ``agreement``, ``accuracy``
(gold accuracy, model quality, value of escalation), ``durations``, ``drift`` and ``effort``; every public
name is importable from here.
"""
from __future__ import annotations

from dashboards.metrics.accuracy import (
    AccuracyInterval,
    ClassPRF,
    EscalationValue,
    PRFReport,
    accuracy_with_interval,
    cost_per_correct,
    escalation_value,
    per_class_prf,
    wilson_interval,
)
from dashboards.metrics.agreement import (
    AgreementStats,
    agreement_stats,
    cohen_kappa,
    fleiss_kappa,
    fleiss_kappa_from_stats,
    krippendorff_alpha_from_stats,
    percent_agreement_from_stats,
    percent_agreement_pairwise,
)
from dashboards.metrics.drift import (
    CONFIDENCE_BIN_EDGES,
    PSI_MODERATE,
    PSI_SIGNIFICANT,
    confidence_histogram,
    population_stability_index,
    psi_level,
)
from dashboards.metrics.durations import (
    DURATION_BIN_EDGES,
    DURATION_BINS,
    DURATION_BINS_PER_DECADE,
    DURATION_DECADES,
    SlaCompliance,
    duration_bins,
    histogram_quantiles,
    quantiles,
    sla_compliance,
)
from dashboards.metrics.effort import (
    DEFAULT_WORK_UNIT_WEIGHTS,
    WorkUnitWeights,
    work_units,
)
from dashboards.metrics.shaping import (
    class_counts,
    contingency_table,
    label_count_matrix,
)

__all__ = [
    "AccuracyInterval",
    "AgreementStats",
    "CONFIDENCE_BIN_EDGES",
    "ClassPRF",
    "DEFAULT_WORK_UNIT_WEIGHTS",
    "DURATION_BINS",
    "DURATION_BINS_PER_DECADE",
    "DURATION_BIN_EDGES",
    "DURATION_DECADES",
    "EscalationValue",
    "PRFReport",
    "PSI_MODERATE",
    "PSI_SIGNIFICANT",
    "SlaCompliance",
    "WorkUnitWeights",
    "accuracy_with_interval",
    "agreement_stats",
    "class_counts",
    "cohen_kappa",
    "confidence_histogram",
    "contingency_table",
    "cost_per_correct",
    "duration_bins",
    "escalation_value",
    "fleiss_kappa",
    "fleiss_kappa_from_stats",
    "histogram_quantiles",
    "krippendorff_alpha_from_stats",
    "label_count_matrix",
    "per_class_prf",
    "percent_agreement_from_stats",
    "percent_agreement_pairwise",
    "population_stability_index",
    "psi_level",
    "quantiles",
    "sla_compliance",
    "wilson_interval",
    "work_units",
]
