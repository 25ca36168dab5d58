"""The escalation policy: from an item, a policy version and annotator reliabilities to a Decision.

Deterministic and pure: the same inputs give an equal Decision, and `inputs_digest` fingerprints exactly
those inputs so a stored decision can be re-verified. The semantics are specified in docs/routing.md.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from . import aggregation
from .rules import REASON_CODE, describe_rule, path_errors, validate_rule
from .signals import (
    SIGNAL_DIGITS,
    SIGNAL_NAMES,
    Analysis,
    analyse,
    annotations_by_role,
    metadata_field_value,
    metadata_path,
)
from .types import (
    AnnotatorReliability,
    Comparison,
    Decision,
    ItemInput,
    Outcome,
    PolicyConfig,
    Reason,
    Trigger,
    json_ready,
)

# New projects start from this. The threshold and the per-item maximum chosen by leave-one-data-set-out
# on the five shared crowd data sets (bench/pilot_curves.py --choose-defaults; docs/pilot.md).
# One crowd label first, then another while the posterior (learned reliabilities, the project's class
# prior) is below consensus_min_posterior, up to max_crowd_labels; consensus items are checked again after
# every reliability refresh.
DEFAULT_POLICY = PolicyConfig(
    crowd_overlap=1,
    max_crowd_labels=20,
    consensus_min_agreement=0.0,
    consensus_min_posterior=0.96,
    class_prior_weight=1.0,
    consensus_requires_majority=False,
    consensus_recheck=True,
    learn_model_temperature=True,
)

_COMPARE: dict[Comparison, Callable[[float, float], bool]] = {
    Comparison.LT: lambda a, b: a < b,
    Comparison.LE: lambda a, b: a <= b,
    Comparison.GT: lambda a, b: a > b,
    Comparison.GE: lambda a, b: a >= b,
    Comparison.EQ: lambda a, b: a == b,
    Comparison.NE: lambda a, b: a != b,
}


def fmt(value: float) -> str:
    """A number for evidence text: two decimals, more only when needed (0.1999 stays 0.1999)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    for digits in range(2, 7):
        if abs(value - round(value, digits)) < 1e-9:
            return f"{value:.{digits}f}"
    return f"{value:.6g}"


def _comparison_text(name: str, value: float, symbol: str, bound: float) -> str:
    """ "margin 0.12 < 0.20": the value shown with the fewest decimals (≥ 2) that keep it distinct
    from the bound, so 0.8944 against 0.90 reads 0.89, and 0.19996 against 0.20 reads 0.19996."""
    bound_text = fmt(bound)
    if (isinstance(value, int) and not isinstance(value, bool)) or value == bound:
        value_text = fmt(value)
    else:
        value_text = f"{value:.6g}"
        for digits in range(2, 7):
            if round(value, digits) != round(bound, digits):
                value_text = f"{value:.{digits}f}"
                break
    return f"{_words(name)} {value_text} {symbol} {bound_text}"


def _words(signal: str) -> str:
    """A signal's name as evidence text: "top_probability" reads "top probability"."""
    return "posterior" if signal == "posterior_confidence" else signal.replace("_", " ")


def trigger_fires(trigger: Trigger, value: float | None) -> bool:
    """`value <comparison> threshold`; a None (not computable) signal never fires."""
    if value is None:
        return False
    return _COMPARE[Comparison(trigger.comparison)](value, trigger.threshold)


def _known(signals: Mapping[str, float | None], name: str) -> float:
    # Signals the branch guarantees: the prediction's when there is one, the crowd's when a label exists.
    value = signals[name]
    assert value is not None, name
    return value


def _check(name: str, value: float, bound: float, *, at_least: bool) -> tuple[bool, str]:
    ok = value >= bound if at_least else value <= bound
    symbol = (">=" if ok else "<") if at_least else ("<=" if ok else ">")
    return ok, _comparison_text(name, value, symbol, bound)


def _posterior_dict(classes: Sequence[str], post: Sequence[float] | None) -> dict[str, float]:
    return {} if post is None else {name: round(p, SIGNAL_DIGITS) for name, p in zip(classes, post)}


def evaluate(item: ItemInput, policy: PolicyConfig, reliabilities: Mapping[int, AnnotatorReliability]) -> Decision:
    """Route one item: accept a label (model, consensus or expert), ask the crowd, or escalate."""
    analysis = analyse(item, policy, reliabilities)
    experts = annotations_by_role(item, experts=True)
    if experts:
        return _expert_decision(item, policy, reliabilities, analysis, experts)
    escalation = _escalation_reasons(item, policy, analysis)
    if escalation:
        return _decision(item, analysis, Outcome.EXPERT, reasons=escalation, labels_requested=1)
    if analysis.signals["crowd_count"] == 0:
        decision = _model_decision(item, policy, analysis)
    else:
        decision = _crowd_decision(item, policy, analysis)
    if item.crowd_overdue and decision.outcome == Outcome.CROWD:
        # More crowd work would wait as the unclaimed slots did: an expert labels the item instead.
        overdue = Reason("crowd_overdue", "crowd slots unclaimed past the SLA deadline")
        return replace(decision, outcome=Outcome.EXPERT, reasons=(overdue, *decision.reasons), labels_requested=1)
    return decision


def _decision(item: ItemInput, analysis: Analysis, outcome: Outcome, **fields: Any) -> Decision:
    return Decision(
        outcome=outcome,
        posterior=_posterior_dict(item.classes, analysis.posterior),
        signals=dict(analysis.signals),
        **fields,
    )


def _expert_decision(
    item: ItemInput,
    policy: PolicyConfig,
    reliabilities: Mapping[int, AnnotatorReliability],
    analysis: Analysis,
    experts: Sequence[Any],
) -> Decision:
    classes = item.classes
    post = analysis.posterior
    assert post is not None  # there is at least one annotation
    expert_labels = list(dict.fromkeys(a.label for a in experts))
    crowd = annotations_by_role(item, experts=False)
    if policy.second_expert_on_conflict and len(experts) == 1 and crowd:
        crowd_post = aggregation.item_posterior(item, analysis.probs, crowd, policy, reliabilities)
        best = max(range(len(classes)), key=lambda i: (crowd_post[i], -i))
        consensus, strength = classes[best], round(float(crowd_post[best]), SIGNAL_DIGITS)
        if consensus != expert_labels[0] and strength >= policy.second_expert_min_consensus:
            reason = Reason(
                "expert_contradicts_consensus",
                f"expert label {expert_labels[0]!r} contradicts crowd consensus {consensus!r} "
                f"(posterior {fmt(strength)} >= {fmt(policy.second_expert_min_consensus)})",
            )
            return _decision(item, analysis, Outcome.EXPERT, reasons=(reason,), labels_requested=1)
    index = {name: i for i, name in enumerate(classes)}
    if len(expert_labels) == 1:
        label = expert_labels[0]
        reason = Reason("expert_label", f"expert label {label!r} ({len(experts)} expert label(s))")
    else:
        # Experts disagree: the posterior over every label decides, but only among the experts' labels.
        label = max(expert_labels, key=lambda name: (post[index[name]], -index[name]))
        given = ", ".join(repr(name) for name in expert_labels)
        reason = Reason(
            "experts_disagree",
            f"experts gave {given}; posterior prefers {label!r} at {fmt(round(post[index[label]], 4))}",
        )
    return _decision(
        item,
        analysis,
        Outcome.ACCEPT,
        final_label=label,
        final_source="expert",
        confidence=round(post[index[label]], SIGNAL_DIGITS),
        reasons=(reason,),
    )


def _escalation_reasons(item: ItemInput, policy: PolicyConfig, analysis: Analysis) -> tuple[Reason, ...]:
    reasons = []
    for trigger in policy.triggers:
        value = analysis.signals.get(trigger.signal)
        if value is not None and trigger_fires(trigger, value):
            reasons.append(
                Reason(
                    trigger.reason_code,
                    _comparison_text(trigger.signal, value, Comparison(trigger.comparison).value, trigger.threshold),
                )
            )
    for rule in analysis.fired:
        if rule.action == "expert":
            reasons.append(Reason(rule.reason_code, describe_rule(rule, item)))
    if analysis.signals["metadata_conflict"] == 1.0:
        field = policy.metadata_conflict_field
        given = metadata_field_value(item.metadata, field)
        reasons.append(
            Reason(
                "metadata_conflict",
                f"{metadata_path(field)} {given!r} contradicts predicted {analysis.predicted!r}",
            )
        )
    return tuple(reasons)


def _model_decision(item: ItemInput, policy: PolicyConfig, analysis: Analysis) -> Decision:
    if analysis.probs is None:
        return _decision(
            item,
            analysis,
            Outcome.CROWD,
            reasons=(Reason("no_prediction", "no model prediction"),),
            labels_requested=policy.crowd_overlap,
        )
    s = analysis.signals
    checks = [
        (
            "top_probability",
            *_check("top_probability", _known(s, "top_probability"), policy.auto_accept_min_top_probability,
                at_least=True),
        ),
        ("margin", *_check("margin", _known(s, "margin"), policy.auto_accept_min_margin, at_least=True)),
        ("entropy", *_check("entropy", _known(s, "entropy"), policy.auto_accept_max_entropy, at_least=False)),
    ]
    failed_codes = {"top_probability": "low_top_probability", "margin": "low_margin", "entropy": "high_entropy"}
    failures = [Reason(failed_codes[name], evidence) for name, ok, evidence in checks if not ok]
    failures += [
        Reason(rule.reason_code, describe_rule(rule, item)) for rule in analysis.fired if rule.action == "crowd"
    ]
    if failures:
        return _decision(item, analysis, Outcome.CROWD, reasons=tuple(failures), labels_requested=policy.crowd_overlap)
    return _decision(
        item,
        analysis,
        Outcome.ACCEPT,
        final_label=analysis.predicted,
        final_source="model",
        confidence=s["top_probability"],
        reasons=tuple(Reason(f"{name}_ok", evidence) for name, _, evidence in checks),
    )


def _crowd_decision(item: ItemInput, policy: PolicyConfig, analysis: Analysis) -> Decision:
    s = analysis.signals
    post = analysis.posterior
    assert post is not None  # there is at least one annotation
    crowd_count = _known(s, "crowd_count")
    best = max(range(len(item.classes)), key=lambda i: (post[i], -i))
    label = item.classes[best]
    counts = analysis.label_counts
    modal = {name for name, n in counts if n == counts[0][1]}
    enough = crowd_count >= policy.crowd_overlap
    checks = [
        (
            "enough_crowd_labels",
            "need_crowd_labels",
            enough,
            f"crowd labels {crowd_count} {'>=' if enough else '<'} {policy.crowd_overlap}",
        ),
        (
            "agreement_ok",
            "low_agreement",
            *_check("agreement", _known(s, "agreement"), policy.consensus_min_agreement, at_least=True),
        ),
        (
            "posterior_ok",
            "low_posterior",
            *_check("posterior_confidence", _known(s, "posterior_confidence"), policy.consensus_min_posterior,
                at_least=True),
        ),
    ]
    # The posterior may favour a label most of the crowd did not give (a strong model prior, one very
    # reliable annotator); accepting that as the crowd's "consensus" would misname it.
    agrees = label in modal or not policy.consensus_requires_majority
    if not agrees:
        checks.append(
            (
                "",
                "posterior_not_majority",
                False,
                f"posterior prefers {label!r}, the crowd mostly gave {', '.join(sorted(map(repr, modal)))}",
            )
        )
    failed = [(code, evidence) for _, code, ok, evidence in checks if not ok]

    def accept(*reasons: Reason) -> Decision:
        return _decision(
            item,
            analysis,
            Outcome.ACCEPT,
            final_label=label,
            final_source="consensus",
            confidence=s["posterior_confidence"],
            reasons=reasons,
        )

    if not failed:
        return accept(*(Reason(code, evidence) for code, _, _, evidence in checks))
    if _budget_spent(item, policy) and crowd_count >= policy.crowd_overlap:
        spent = (
            f"the project has spent {item.project_labels_per_item:g} crowd labels per item, the target is "
            f"{policy.target_labels_per_item:g}"
        )
        return accept(Reason("budget_spent", spent), *(Reason(code, evidence) for code, evidence in failed))
    if crowd_count < policy.max_crowd_labels:
        wanted = min(max(1, policy.crowd_overlap - crowd_count), policy.max_crowd_labels - crowd_count)
        return _decision(
            item,
            analysis,
            Outcome.CROWD,
            reasons=tuple(Reason(code, evidence) for code, evidence in failed),
            labels_requested=wanted,
        )
    evidence = ", ".join(e for _, e in failed)
    return _decision(
        item,
        analysis,
        Outcome.EXPERT,
        reasons=(Reason("no_consensus", f"{evidence} after {crowd_count} crowd labels"),),
        labels_requested=1,
    )


def _budget_spent(item: ItemInput, policy: PolicyConfig) -> bool:
    spent = item.project_labels_per_item
    return policy.target_labels_per_item > 0 and spent is not None and spent >= policy.target_labels_per_item


def relevant_reliabilities(
    item: ItemInput, reliabilities: Mapping[int, AnnotatorReliability]
) -> dict[int, AnnotatorReliability]:
    """The reliabilities evaluate() can read for this item: those of its annotators."""
    ids = {a.annotator_id for a in item.annotations}
    return {i: reliabilities[i] for i in sorted(ids) if i in reliabilities}


def decision_inputs(
    item: ItemInput, policy: PolicyConfig, reliabilities: Mapping[int, AnnotatorReliability]
) -> dict[str, Any]:
    """Exactly what evaluate() depends on, as canonical JSON-ready data (store it to re-verify)."""
    return {
        "item": item.to_dict(),
        "policy": policy.to_dict(),
        "reliabilities": [r.to_dict() for r in relevant_reliabilities(item, reliabilities).values()],
    }


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, integral floats written as integers (50.0 and 50 mean the same to
    the engine, and a round trip through a JSON column may turn one into the other)."""
    return json.dumps(
        _integral_floats_as_ints(json_ready(value)),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def _integral_floats_as_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral_floats_as_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral_floats_as_ints(v) for v in value]
    return value


def inputs_digest(item: ItemInput, policy: PolicyConfig, reliabilities: Mapping[int, AnnotatorReliability]) -> str:
    """sha256 (hex) of the canonical JSON of `decision_inputs`: equal inputs, equal digest.

    The document is assembled from its three canonical parts (sorted keys: item, policy, reliabilities),
    which gives the same bytes as canonical_json(decision_inputs(...)) while serialising the policy once
    per policy object instead of once per item."""
    return stored_inputs_digest(
        {
            "item": item.to_dict(),
            "reliabilities": [r.to_dict() for r in relevant_reliabilities(item, reliabilities).values()],
        },
        policy,
    )


def stored_inputs_digest(stored: Mapping[str, Any], policy: PolicyConfig) -> str:
    """`inputs_digest` from the decision's stored inputs (routing.decision_inputs.inputs_to_dict: the item's
    and the relevant reliabilities' dicts, which is `decision_inputs` without the policy), so a caller that
    stores them does not build them twice."""
    document = (
        '{"item":' + canonical_json(stored["item"])
        + ',"policy":' + _policy_canonical_json(policy)
        + ',"reliabilities":' + canonical_json(stored["reliabilities"]) + "}"
    )
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


_POLICY_JSON_ATTR = "_canonical_json"


def _policy_canonical_json(policy: PolicyConfig) -> str:
    cached = policy.__dict__.get(_POLICY_JSON_ATTR)
    if cached is None:
        cached = canonical_json(policy.to_dict())
        # The policy is frozen; caching on the instance is safe because its fields never change.
        object.__setattr__(policy, _POLICY_JSON_ATTR, cached)
    return cached


def policy_errors(config: PolicyConfig) -> list[str]:
    """Everything wrong with a policy, in words for the admin; empty when it can be used."""
    errors: list[str] = []

    def number(name: str, low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> None:
        value = getattr(config, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            errors.append(f"{name} must be a number")
            return
        too_low = value <= low if low_open else value < low
        too_high = value >= high if high_open else value > high
        if too_low or too_high:
            left, right = "(" if low_open else "[", ")" if high_open else "]"
            span = f"{left}{fmt(low)}, {fmt(high) if math.isfinite(high) else '∞'}{right}"
            errors.append(f"{name} is {fmt(value)}; it must be in {span}")

    def whole(name: str, low: int) -> bool:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            errors.append(f"{name} must be a whole number of at least {low}")
            return False
        return True

    for name in (
        "auto_accept_min_top_probability",
        "auto_accept_min_margin",
        "auto_accept_max_entropy",
        "consensus_min_agreement",
        "consensus_min_posterior",
        "gold_check_rate",
        "second_expert_min_consensus",
    ):
        number(name, 0.0, 1.0)
    number("crowd_prior_accuracy", 0.0, 1.0, low_open=True, high_open=True)
    number("expert_prior_accuracy", 0.0, 1.0, low_open=True, high_open=True)
    number("model_prior_weight", 0.0, math.inf, high_open=True)
    number("class_prior_weight", 0.0, math.inf, high_open=True)
    number("target_labels_per_item", 0.0, math.inf, high_open=True)
    number("sla_hours", 0.0, math.inf, low_open=True, high_open=True)
    number("expert_cost", 0.0, math.inf, low_open=True, high_open=True)
    if whole("crowd_overlap", 1) and whole("max_crowd_labels", 1) and config.max_crowd_labels < config.crowd_overlap:
        errors.append(
            f"max_crowd_labels ({config.max_crowd_labels}) must be at least crowd_overlap ({config.crowd_overlap})"
        )
    for name in ("second_expert_on_conflict", "consensus_requires_majority", "consensus_recheck",
        "learn_model_temperature"):
        if not isinstance(getattr(config, name), bool):
            errors.append(f"{name} must be true or false")
    if not isinstance(config.metadata_conflict_field, str):
        errors.append("metadata_conflict_field must be text")
    elif config.metadata_conflict_field:
        errors.extend(path_errors(metadata_path(config.metadata_conflict_field), label="metadata_conflict_field"))
    for n, trigger in enumerate(config.triggers, start=1):
        where = f"trigger {n} ({trigger.reason_code or trigger.signal})"
        if trigger.signal not in SIGNAL_NAMES:
            errors.append(f"{where}: unknown signal '{trigger.signal}'; use one of: {', '.join(SIGNAL_NAMES)}")
        if trigger.comparison not in set(Comparison):
            errors.append(f"{where}: unknown comparison '{trigger.comparison}'")
        threshold = trigger.threshold
        if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not math.isfinite(threshold):
            errors.append(f"{where}: threshold must be a number")
        if not isinstance(trigger.reason_code, str) or not REASON_CODE.match(trigger.reason_code):
            errors.append(
                f"{where}: reason_code must be lower-case letters, digits and underscores, starting with a letter"
            )
    for n, rule in enumerate(config.feature_rules, start=1):
        errors.extend(f"feature rule {n} ({rule.field}): {e}" for e in validate_rule(rule))
    return errors
