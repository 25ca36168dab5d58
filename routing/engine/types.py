"""Plain, frozen data the engine works on. Everything here is JSON-serialisable via `to_dict`.

These types are the contract between the engine, live routing, the simulator and the admin:
change a field and you change what stored decisions mean (see docs/routing.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    ACCEPT = "accept"  # final label set (source says by whom)
    CROWD = "crowd"  # ask for more crowd labels
    EXPERT = "expert"  # escalate to an expert


class Stage(StrEnum):
    INGEST = "ingest"
    ANNOTATION = "annotation"
    REROUTE = "reroute"
    # The crowd left the item's slots unclaimed past their SLA deadline (work.jobs.crowd_breaches_escalate).
    CROWD_OVERDUE = "crowd_overdue"
    # A reliability refresh changed what the item's consensus rests on (PolicyConfig.consensus_recheck).
    RECHECK = "recheck"


class Comparison(StrEnum):
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    EQ = "=="
    NE = "!="


@dataclass(frozen=True)
class Trigger:
    """Escalate to an expert when `signal <comparison> threshold`; `reason_code` names it in decisions."""

    signal: str
    comparison: Comparison
    threshold: float
    reason_code: str


@dataclass(frozen=True)
class FeatureRule:
    """An admin-defined rule on a payload/metadata field, evaluated by engine.rules (never eval).

    field: dotted path such as "data.text" or "metadata.source"; operator: one of engine.rules.OPERATORS
    (e.g. "len_gt", "not_in", "present"); value: the operand; action: "expert" or "crowd".
    """

    field: str
    operator: str
    value: Any
    reason_code: str
    action: str = "expert"


@dataclass(frozen=True)
class PolicyConfig:
    """One escalation policy version's fields (the admin edits these; a version stores them as JSON)."""

    # Auto-accept the model's top label when all three hold and nothing else fires.
    auto_accept_min_top_probability: float = 0.90
    auto_accept_min_margin: float = 0.50
    auto_accept_max_entropy: float = 0.50
    # Crowd: how many crowd labels to ask for first, and the most before escalating.
    crowd_overlap: int = 2
    max_crowd_labels: int = 5
    # Consensus needed to accept the crowd's label.
    consensus_min_agreement: float = 0.66
    consensus_min_posterior: float = 0.90
    # Escalation triggers on signal values, and feature rules on fields.
    triggers: tuple[Trigger, ...] = ()
    feature_rules: tuple[FeatureRule, ...] = ()
    # Metadata field whose value, when it is a class name other than the predicted label, is a conflict.
    metadata_conflict_field: str = ""
    # Weight of the model prediction as a prior in aggregation (0 ignores the model).
    model_prior_weight: float = 1.0
    # Share of crowd/expert work that is a hidden gold check.
    gold_check_rate: float = 0.05
    sla_hours: float = 24.0
    # Cost of one expert label relative to one crowd label (crowd label = 1).
    expert_cost: float = 10.0
    # A second expert looks when an expert contradicts a crowd consensus at least this confident.
    second_expert_on_conflict: bool = True
    second_expert_min_consensus: float = 0.90
    # Accuracy assumed for an annotator with no history (their confusion matrix's diagonal), by role;
    # reviewers start from the expert prior.
    crowd_prior_accuracy: float = 0.70
    expert_prior_accuracy: float = 0.90
    # Fields added after versions were first stored. Their defaults here are the behaviour before they
    # existed, and `to_dict` leaves a field out while it holds that value, so a stored version (and the
    # digest of every decision it made) reads and replays exactly as before. DEFAULT_POLICY sets them.
    # Weight of the project's learned class prevalence (ItemInput.class_prior) as the prior of an item
    # the model did not predict (0: a uniform prior).
    class_prior_weight: float = 0.0
    # Accept a crowd consensus only when the posterior's label is also the crowd's most given label. Off,
    # the learned reliabilities decide alone (a known contrarian's label counts for its opposite).
    consensus_requires_majority: bool = True
    # After every reliability refresh, route consensus-labeled items again: an item accepted on estimates
    # that have since changed asks for more labels (or changes its label) instead of keeping a stale answer.
    consensus_recheck: bool = False
    # Budget: the project's target mean of crowd labels per routed item (0: none). Once the project has
    # spent that many on average (ItemInput.project_labels_per_item), an item that has had its first
    # crowd_overlap labels gets no more: its posterior's label is accepted (reason budget_spent) rather
    # than asking again; max_crowd_labels still bounds every single item.
    target_labels_per_item: float = 0.0
    # Learn the model's temperature (routing.engine.temperature) at every reliability refresh and read
    # predictions through it; items the model's label was accepted for are checked again when it changes.
    learn_model_temperature: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = json_ready(dataclasses.asdict(self))
        for name, legacy in LATER_FIELDS.items():
            if data[name] == legacy:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyConfig:
        """Build from stored JSON; unknown keys are an error so a typo never silently changes routing."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown policy fields: {', '.join(sorted(unknown))}")
        values = dict(data)
        values["triggers"] = tuple(
            Trigger(
                signal=t["signal"],
                comparison=Comparison(t["comparison"]),
                threshold=float(t["threshold"]),
                reason_code=t["reason_code"],
            )
            for t in values.get("triggers", ())
        )
        values["feature_rules"] = tuple(FeatureRule(**r) for r in values.get("feature_rules", ()))
        return cls(**values)


# PolicyConfig fields added later -> the value that means "as before the field existed" (see to_dict).
LATER_FIELDS: Mapping[str, Any] = {
    "class_prior_weight": 0.0,
    "consensus_requires_majority": True,
    "consensus_recheck": False,
    "target_labels_per_item": 0.0,
    "learn_model_temperature": False,
}


@dataclass(frozen=True)
class PredictionInput:
    id: int
    model_version: str
    probabilities: Mapping[str, float]


@dataclass(frozen=True)
class AnnotationInput:
    id: int
    annotator_id: int
    label: str
    role: str  # "crowd" | "expert" | "reviewer"


@dataclass(frozen=True)
class ItemInput:
    """Everything about one item that routing may look at."""

    item_id: int
    classes: tuple[str, ...]
    predictions: tuple[PredictionInput, ...] = ()
    annotations: tuple[AnnotationInput, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    language: str = ""
    domain: str = ""
    # The crowd let the item's SLA deadline pass with slots nobody claimed: crowd work becomes an expert's.
    crowd_overdue: bool = False
    # The project's class prevalence (in `classes` order) as the last reliability refresh learned it; the
    # prior of an item without a prediction when the policy's class_prior_weight is above 0. Empty: none.
    class_prior: tuple[float, ...] = ()
    # Crowd labels the project has spent per routed item so far, when the policy sets a budget
    # (target_labels_per_item); None: no budget in play.
    project_labels_per_item: float | None = None
    # The model's temperature the last reliability refresh learned (policy learn_model_temperature): every
    # prediction is read as p^(1/T), renormalised. None: as the model gave it.
    model_temperature: float | None = None

    def to_dict(self) -> dict[str, Any]:
        # Written out rather than dataclasses.asdict: this runs once per routed item.
        # Inputs added later only when set, so the inputs (and digests) of every decision made without them
        # stay as they were.
        optional: dict[str, Any] = {}
        if self.crowd_overdue:
            optional["crowd_overdue"] = True
        if self.class_prior:
            optional["class_prior"] = list(self.class_prior)
        if self.project_labels_per_item is not None:
            optional["project_labels_per_item"] = self.project_labels_per_item
        if self.model_temperature is not None:
            optional["model_temperature"] = self.model_temperature
        return {
            "item_id": self.item_id,
            "classes": list(self.classes),
            "predictions": [
                {"id": p.id, "model_version": p.model_version, "probabilities": dict(p.probabilities)}
                for p in self.predictions
            ],
            "annotations": [
                {"id": a.id, "annotator_id": a.annotator_id, "label": a.label, "role": a.role}
                for a in self.annotations
            ],
            "data": json_ready(self.data),
            "metadata": json_ready(self.metadata),
            "language": self.language,
            "domain": self.domain,
            **optional,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ItemInput:
        """Inverse of `to_dict`, for re-evaluating a stored decision's inputs."""
        return cls(
            item_id=data["item_id"],
            classes=tuple(data["classes"]),
            predictions=tuple(
                PredictionInput(id=p["id"], model_version=p["model_version"], probabilities=dict(p["probabilities"]))
                for p in data.get("predictions", ())
            ),
            annotations=tuple(AnnotationInput(**a) for a in data.get("annotations", ())),
            data=dict(data.get("data", {})),
            metadata=dict(data.get("metadata", {})),
            language=data.get("language", ""),
            domain=data.get("domain", ""),
            crowd_overdue=data.get("crowd_overdue", False) is True,
            class_prior=tuple(float(p) for p in data.get("class_prior", ())),
            project_labels_per_item=data.get("project_labels_per_item"),
            model_temperature=data.get("model_temperature"),
        )


@dataclass(frozen=True)
class AnnotatorReliability:
    """Per-annotator confusion estimate: confusion[true][given] rows sum to 1, in `classes` order."""

    annotator_id: int
    confusion: tuple[tuple[float, ...], ...]
    n_observations: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "annotator_id": self.annotator_id,
            "confusion": [list(row) for row in self.confusion],
            "n_observations": self.n_observations,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnnotatorReliability:
        return cls(
            annotator_id=data["annotator_id"],
            confusion=tuple(tuple(float(x) for x in row) for row in data["confusion"]),
            n_observations=float(data.get("n_observations", 0.0)),
        )


@dataclass(frozen=True)
class Reason:
    code: str
    evidence: str  # in words, e.g. "top probability 0.41 < 0.70"


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    final_label: str = ""
    final_source: str = ""  # "model" | "consensus" | "expert" when outcome is ACCEPT
    confidence: float | None = None
    posterior: Mapping[str, float] = field(default_factory=dict)
    signals: Mapping[str, float | None] = field(default_factory=dict)
    reasons: tuple[Reason, ...] = ()
    labels_requested: int = 0  # crowd or expert labels still wanted

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "final_label": self.final_label,
            "final_source": self.final_source,
            "confidence": self.confidence,
            "posterior": dict(self.posterior),
            "signals": dict(self.signals),
            "reasons": [{"code": r.code, "evidence": r.evidence} for r in self.reasons],
            "labels_requested": self.labels_requested,
        }


def json_ready(value: Any) -> Any:
    """Tuples to lists, enums to their values, recursively, so stored JSON is canonical."""
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value
