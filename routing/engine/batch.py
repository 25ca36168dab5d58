"""The batch path: many fresh items of one project decided over arrays, exactly as `policy.evaluate` decides
each of them, and their stored inputs and digests written without building an `ItemInput` per item.

A fresh item has no annotations, no work and at most one prediction: what ingest routes, the common case.
`evaluate` stays the reference (live routing of everything else and the simulator call it); this module is
its twin for that case, for speed only, and tests/routing/test_batch.py compares the two field by field on
random batches and random policies. What the batch path does not cover (`batch_covers`: feature rules, a
metadata conflict field; `FreshItems.build`: annotations, several predictions, a prediction the engine would
refuse) is routed item by item, so nothing decides differently.

Exactness. Decisions compare thresholds with signals rounded to 12 places and store those numbers, so the
batch must reproduce every bit: numpy does the elementwise + - * / (IEEE, the same as Python's), while
logs and exponentials go through `math` (numpy's SIMD log/exp may differ from libm in the last place), sums
that the reference takes with `math.fsum` or left to right are taken the same way, and rounding is Python's
`round` (np.round scales and can round differently). See docs/routing.md, "The batch path".
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .aggregation import MODEL_PROBABILITY_FLOOR
from .policy import _COMPARE, _comparison_text, _policy_canonical_json, canonical_json, fmt
from .signals import SIGNAL_DIGITS
from .temperature import PROBABILITY_FLOOR
from .types import Comparison, Decision, Outcome, PolicyConfig, Reason, json_ready

# policy._COMPARE over arrays: the same IEEE comparisons, one per item.
_ARRAY_COMPARE: dict[Comparison, Any] = {
    Comparison.LT: np.less,
    Comparison.LE: np.less_equal,
    Comparison.GT: np.greater,
    Comparison.GE: np.greater_equal,
    Comparison.EQ: np.equal,
    Comparison.NE: np.not_equal,
}
_NO_MODEL_REASON = Reason("no_prediction", "no model prediction")
_CHECK_CODES = (
    ("top_probability", "low_top_probability"),
    ("margin", "low_margin"),
    ("entropy", "high_entropy"),
)


def batch_covers(policy: PolicyConfig) -> bool:
    """Whether the batch path decides fresh items under `policy` (feature rules and the metadata conflict
    read each item's payload: those policies route item by item)."""
    return not policy.feature_rules and not policy.metadata_conflict_field


def prediction_usable(probabilities: Mapping[str, Any], classes: Sequence[str]) -> bool:
    """Whether `evaluate` would accept this prediction (check_item): known classes, finite numbers >= 0 that
    are not booleans, a positive sum. Anything else goes item by item, where it raises as it always did."""
    known = set(classes)
    values: list[float] = []
    for name, value in probabilities.items():
        if name not in known or type(value) not in (int, float) or not math.isfinite(value) or value < 0:
            return False
        values.append(value)
    return sum(values) > 0


def project_usable(classes: Sequence[str], class_prior: Sequence[float], model_temperature: float | None) -> bool:
    """Whether check_item would accept the project's part of every item: classes, class prior, temperature."""
    if not classes or len(set(classes)) != len(classes):
        return False
    if model_temperature is not None and not (
        type(model_temperature) in (int, float) and 0 < model_temperature < math.inf
    ):
        return False
    if class_prior:
        if len(class_prior) != len(classes) or sum(class_prior) <= 0:
            return False
        if any(type(p) not in (int, float) or not math.isfinite(p) or p < 0 for p in class_prior):
            return False
    return True


@dataclass(frozen=True)
class FreshItems:
    """Fresh items of one project: ids, and the latest (only) prediction of each as an (n, k) array in class
    order, missing classes 0; a row of zeros where `has_prediction` is False."""

    classes: tuple[str, ...]
    item_ids: tuple[int, ...]
    raw: np.ndarray
    has_prediction: np.ndarray
    model_temperature: float | None = None

    @classmethod
    def build(
        cls,
        classes: Sequence[str],
        item_ids: Sequence[int],
        predictions: Sequence[Mapping[str, Any] | None],
        model_temperature: float | None = None,
    ) -> FreshItems:
        """From each item's prediction probabilities (None: no prediction); every one must be usable, and so
        must the project's classes and temperature (`project_usable`)."""
        if not project_usable(classes, (), model_temperature):
            raise ValueError("classes or model temperature the batch path does not take")
        k = len(classes)
        raw = np.zeros((len(item_ids), k))
        has = np.zeros(len(item_ids), dtype=bool)
        for row, probabilities in enumerate(predictions):
            if probabilities is None:
                continue
            if not prediction_usable(probabilities, classes):
                raise ValueError(f"item {item_ids[row]}: a prediction the batch path does not take")
            has[row] = True
            raw[row] = [float(probabilities.get(name, 0.0)) for name in classes]
        return cls(tuple(classes), tuple(item_ids), raw, has, model_temperature)


def _row_fsum(matrix: np.ndarray) -> np.ndarray:
    return np.fromiter(map(math.fsum, matrix.tolist()), dtype=float, count=len(matrix))


def _math_map(function: Any, matrix: np.ndarray) -> np.ndarray:
    flat = list(map(function, matrix.ravel().tolist()))
    return np.array(flat, dtype=float).reshape(matrix.shape)


def _sequential_sum(matrix: np.ndarray) -> np.ndarray:
    """Row sums added left to right, as Python's sum() over a list of floats (3.11) adds them."""
    total = matrix[:, 0].copy()
    for column in range(1, matrix.shape[1]):
        total = total + matrix[:, column]
    return total


def _normalise_exp(logs: np.ndarray) -> np.ndarray:
    """exp(v - max) per row, divided by the row's fsum: tempered's and _posterior_from_columns' last step."""
    top = logs.max(axis=1, keepdims=True)
    weights = _math_map(math.exp, logs - top)
    result: np.ndarray = weights / _row_fsum(weights)[:, None]
    return result


def fresh_probabilities(items: FreshItems) -> np.ndarray:
    """signals.probability_vector, then temperature.tempered, for every row with a prediction."""
    probs: np.ndarray = items.raw[items.has_prediction]
    if not len(probs):
        return probs
    probs = probs / _row_fsum(probs)[:, None]
    temperature = items.model_temperature
    if temperature is not None and temperature != 1.0:
        logs = _math_map(math.log, np.maximum(probs, PROBABILITY_FLOOR)) / temperature
        probs = _normalise_exp(logs)
    return probs


def _entropy(probs: np.ndarray) -> list[float]:
    k = probs.shape[1]
    if k < 2:
        return [0.0] * len(probs)
    log_k = math.log(k)
    log = math.log
    rows = probs.tolist()
    return [max(0.0, -math.fsum([p * log(p) for p in row if p > 0]) / log_k) for row in rows]


def _prior_posterior(probs: np.ndarray, weight: float) -> np.ndarray:
    """aggregation._posterior_from_columns with the model prior and no labels."""
    n, k = probs.shape
    if weight == 0:
        return np.full((n, k), 1.0 / math.fsum([1.0] * k)) if n else np.zeros((0, k))
    floored = np.maximum(probs, MODEL_PROBABILITY_FLOOR)
    log_norm = np.fromiter(map(math.log, _sequential_sum(floored).tolist()), dtype=float, count=n)
    logs = weight * (_math_map(math.log, floored) - log_norm[:, None])
    return _normalise_exp(logs)


_SCALE = 10.0**SIGNAL_DIGITS


def rounded(values: np.ndarray) -> np.ndarray:
    """round(v, SIGNAL_DIGITS) of every value, bit for bit, at array speed (Python's round costs about a
    microsecond a value, the largest cost of a batch).

    Python rounds the exact binary value to 12 decimals (m / 10^12) and returns the double nearest to that;
    rint(v * 10^12) / 10^12 divides two exact doubles, so it returns the same double whenever rint finds the
    same m. It can only miss when v * 10^12 lies near a half (the product is rounded once, by at most half an
    ulp: under 2^-11 for |v| <= 4); those values, and larger ones, are rounded by Python."""
    values = np.asarray(values, dtype=float)
    with np.errstate(invalid="ignore", over="ignore"):  # infinities and huge values go to Python below
        scaled = values * _SCALE
        result = np.rint(scaled) / _SCALE
        unsafe = ~(np.abs(values) <= 4.0) | (np.abs(scaled - np.floor(scaled) - 0.5) < 0.01)
    if unsafe.any():
        flat, raw = result.reshape(-1), values.reshape(-1)
        for i in np.flatnonzero(unsafe.reshape(-1)).tolist():
            flat[i] = round(float(raw[i]), SIGNAL_DIGITS)
    return result


def _rounded(values: np.ndarray) -> list[float]:
    return rounded(values).tolist()  # type: ignore[no-any-return]


def _texts(name: str, values: Sequence[float], bound: float, ok: Sequence[bool], symbols: tuple[str, str]) -> list[str]:
    """policy._comparison_text for many values against one bound (the symbol by `ok`: (passed, failed))."""
    bound_text = fmt(bound)
    words = "posterior" if name == "posterior_confidence" else name.replace("_", " ")
    rounded_bound = [round(bound, digits) for digits in range(2, 7)]
    texts = []
    for value, passed in zip(values, ok):
        symbol = symbols[0] if passed else symbols[1]
        if value == bound:
            value_text = fmt(value)
        else:
            value_text = f"{value:.6g}"
            for digits, b in zip(range(2, 7), rounded_bound):
                if round(value, digits) != b:
                    value_text = f"{value:.{digits}f}"
                    break
        texts.append(f"{words} {value_text} {symbol} {bound_text}")
    return texts


def evaluate_fresh(items: FreshItems, policy: PolicyConfig) -> list[Decision]:
    """`policy.evaluate` for every item of the batch (all fresh, `batch_covers(policy)`), in item order."""
    if not batch_covers(policy):
        raise ValueError("the batch path does not cover feature rules or a metadata conflict field")
    n, classes = len(items.item_ids), items.classes
    probs = fresh_probabilities(items)
    m = len(probs)
    top_index = probs.argmax(axis=1) if m else np.zeros(0, dtype=int)
    top = _rounded(probs.max(axis=1)) if m else []
    if m and probs.shape[1] > 1:
        ordered = np.sort(probs, axis=1)
        margins = _rounded(ordered[:, -1] - ordered[:, -2])
    else:
        margins = _rounded(probs[:, 0] - 0.0) if m else []
    entropies = _rounded(np.array(_entropy(probs), dtype=float))
    posterior = _prior_posterior(probs, policy.model_prior_weight)
    # Rounding is monotonic: the largest rounded value is the rounded largest value.
    posterior_rounded = rounded(posterior)
    posterior_lists = posterior_rounded.tolist()
    confidence = posterior_rounded.max(axis=1).tolist() if m else []

    # Signals per predicted row; the others have only the counts.
    predicted_signals: list[dict[str, float | None]] = [
        _signals(top[j], margins[j], entropies[j], confidence[j]) for j in range(m)
    ]
    checks = _auto_accept_checks(policy, top, margins, entropies)
    fired = _triggers_fired(policy, predicted_signals, n_without=n - m)

    decisions: list[Decision] = []
    j = 0
    for row in range(n):
        if items.has_prediction[row]:
            signals, posterior_row = predicted_signals[j], posterior_lists[j]
            posterior_dict = dict(zip(classes, posterior_row))
            escalation = fired[0][j]
            if escalation:
                decisions.append(Decision(Outcome.EXPERT, posterior=posterior_dict, signals=signals,
                    reasons=escalation, labels_requested=1))
            elif checks[j][0]:
                decisions.append(Decision(Outcome.CROWD, posterior=posterior_dict, signals=signals,
                    reasons=checks[j][0], labels_requested=policy.crowd_overlap))
            else:
                decisions.append(Decision(Outcome.ACCEPT, final_label=classes[int(top_index[j])],
                    final_source="model", confidence=signals["top_probability"], posterior=posterior_dict,
                    signals=signals, reasons=checks[j][1]))
            j += 1
        else:
            signals = _signals(None, None, None, None)
            escalation = fired[1]
            if escalation:
                decisions.append(Decision(Outcome.EXPERT, signals=signals, reasons=escalation, labels_requested=1))
            else:
                decisions.append(Decision(Outcome.CROWD, signals=signals, reasons=(_NO_MODEL_REASON,),
                    labels_requested=policy.crowd_overlap))
    return decisions


def _signals(top: float | None, margin: float | None, entropy: float | None,
    confidence: float | None) -> dict[str, float | None]:
    # In SIGNAL_NAMES order, as signals.analyse builds them for an item without annotations.
    return {
        "top_probability": top,
        "margin": margin,
        "entropy": entropy,
        "model_disagreement": None,
        "model_tv_distance": None,
        "annotation_count": 0,
        "crowd_count": 0,
        "expert_count": 0,
        "agreement": None,
        "distinct_labels": 0,
        "consensus_gap": None,
        "posterior_confidence": confidence,
        "metadata_conflict": 0.0,
        "feature_rules_fired": 0,
    }


def _auto_accept_checks(
    policy: PolicyConfig, top: list[float], margins: list[float], entropies: list[float]
) -> list[tuple[tuple[Reason, ...], tuple[Reason, ...]]]:
    """Per predicted row: (failed checks as reasons, passed checks as reasons), as policy._model_decision."""
    columns = (
        ("top_probability", np.array(top), policy.auto_accept_min_top_probability, True, top),
        ("margin", np.array(margins), policy.auto_accept_min_margin, True, margins),
        ("entropy", np.array(entropies), policy.auto_accept_max_entropy, False, entropies),
    )
    texts, oks = [], []
    for name, values, bound, at_least, plain in columns:
        ok = (values >= bound) if at_least else (values <= bound)
        oks.append(ok.tolist())
        texts.append(_texts(name, plain, bound, oks[-1], (">=", "<") if at_least else ("<=", ">")))
    result = []
    for j in range(len(top)):
        failed = tuple(Reason(code, texts[c][j]) for c, (_, code) in enumerate(_CHECK_CODES) if not oks[c][j])
        passed = () if failed else tuple(Reason(f"{name}_ok", texts[c][j]) for c, (name, _) in enumerate(_CHECK_CODES))
        result.append((failed, passed))
    return result


def _triggers_fired(
    policy: PolicyConfig, predicted: list[dict[str, float | None]], *, n_without: int
) -> tuple[list[tuple[Reason, ...]], tuple[Reason, ...]]:
    """Trigger reasons per predicted row, and the one tuple every item without a prediction shares (its
    signals are all the same), as policy._escalation_reasons gives them."""
    fired: list[list[Reason]] = [[] for _ in predicted]
    without: list[Reason] = []
    empty = _signals(None, None, None, None)
    for trigger in policy.triggers:
        comparison = Comparison(trigger.comparison)
        compare = _COMPARE[comparison]
        values = [s.get(trigger.signal) for s in predicted]
        present = [v for v in values if v is not None]
        if present:
            mask = iter(np.asarray(_ARRAY_COMPARE[comparison](np.array(present, dtype=float), trigger.threshold),
                dtype=bool).tolist())
            for j, value in enumerate(values):
                if value is not None and next(mask):
                    fired[j].append(Reason(trigger.reason_code,
                        _comparison_text(trigger.signal, value, comparison.value, trigger.threshold)))
        value = empty.get(trigger.signal)
        if n_without and value is not None and compare(value, trigger.threshold):
            without.append(Reason(trigger.reason_code,
                _comparison_text(trigger.signal, value, comparison.value, trigger.threshold)))
    return [tuple(r) for r in fired], tuple(without)


class FreshInputs:
    """The stored inputs and the digest of fresh items of one project under one policy, written from their
    parts: `documents` gives, per item, the JSON `routing.decision_inputs.inputs_to_dict` would store (the
    same values and types; keys sorted) and `policy.inputs_digest`'s hex digest, without an ItemInput.

    The project's constants (classes, class prior, budget spent, temperature) are encoded once."""

    def __init__(
        self,
        policy: PolicyConfig,
        classes: Sequence[str],
        *,
        class_prior: Sequence[float] = (),
        project_labels_per_item: float | None = None,
        model_temperature: float | None = None,
    ) -> None:
        self._policy_json = _policy_canonical_json(policy)
        self._classes = [(name, _dumps(name)) for name in sorted(classes)]
        constants: dict[str, Any] = {"annotations": [], "classes": list(classes)}
        # ItemInput.to_dict writes these only when set.
        if class_prior:
            constants["class_prior"] = list(class_prior)
        if project_labels_per_item is not None:
            constants["project_labels_per_item"] = project_labels_per_item
        if model_temperature is not None:
            constants["model_temperature"] = model_temperature
        # One template per form with the constants in place and a slot per item field, keys in sorted order.
        variable = ("data", "domain", "item_id", "language", "metadata", "predictions")
        self._order = [key for key in sorted([*constants, *variable]) if key in variable]
        self._canonical = self._template({k: canonical_json(v) for k, v in constants.items()}, variable)
        self._stored = self._template({k: _stored_json(v) for k, v in constants.items()}, variable)
        self._strings: dict[str, str] = {}

    @staticmethod
    def _template(constants: Mapping[str, str], variable: Sequence[str]) -> str:
        parts = {**{k: v.replace("%", "%%") for k, v in constants.items()}, **{k: "%s" for k in variable}}
        return '{"item":{' + ",".join(f'"{key}":{parts[key]}' for key in sorted(parts)) + "}"

    def _string(self, value: str) -> str:
        # Languages, domains and model versions repeat: each is encoded once.
        encoded = self._strings.get(value)
        if encoded is None:
            encoded = self._strings[value] = json.dumps(value, ensure_ascii=False)
        return encoded

    def documents(
        self,
        item_id: int,
        prediction: tuple[int, str, Mapping[str, Any]] | None,
        data: Any,
        metadata: Any,
        language: str,
        domain: str,
    ) -> tuple[str, str]:
        """(stored inputs JSON, inputs digest) of one fresh item; prediction: (id, model_version, probabilities)."""
        data_canonical, data_stored = _both(data)
        metadata_canonical, metadata_stored = _both(metadata)
        if prediction is None:
            predictions_canonical = predictions_stored = "[]"
        else:
            prediction_id, model_version, probabilities = prediction
            head = f'[{{"id":{prediction_id},"model_version":{self._string(model_version)},"probabilities":{{'
            values = []
            integral = False
            for name, encoded in self._classes:
                value = probabilities.get(name, _ABSENT)
                if value is _ABSENT:
                    continue
                if type(value) is float:
                    if value.is_integer():
                        integral = True
                    values.append(encoded + ":" + float.__repr__(value))
                else:
                    values.append(encoded + ":" + str(value))
            predictions_stored = head + ",".join(values) + "}}]"
            predictions_canonical = predictions_stored
            if integral:  # canonical JSON writes 1.0 as 1; the stored inputs keep what was given
                predictions_canonical = head + ",".join(
                    encoded + ":" + _number(probabilities[name])
                    for name, encoded in self._classes if name in probabilities
                ) + "}}]"
        fields = {
            "data": (data_canonical, data_stored),
            "domain": (self._string(domain),) * 2,
            "item_id": (str(item_id),) * 2,
            "language": (self._string(language),) * 2,
            "metadata": (metadata_canonical, metadata_stored),
            "predictions": (predictions_canonical, predictions_stored),
        }
        canonical = self._canonical % tuple(fields[key][0] for key in self._order)
        stored = self._stored % tuple(fields[key][1] for key in self._order)
        document = canonical + ',"policy":' + self._policy_json + ',"reliabilities":[]}'
        return stored + ',"reliabilities":[]}', hashlib.sha256(document.encode("utf-8")).hexdigest()


_ABSENT = object()


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _number(value: float) -> str:
    """A probability as canonical JSON writes it: an integral float as an integer."""
    if type(value) is float and value.is_integer():
        return str(int(value))
    return json.dumps(value)


_PLAIN = (str, int, bool, type(None))


def _both(value: Any) -> tuple[str, str]:
    """(canonical JSON, stored JSON) of a payload: the same text unless it holds floats or containers."""
    if type(value) is dict and all(type(k) is str and type(v) in _PLAIN for k, v in value.items()):
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text, text
    return canonical_json(value), _stored_json(value)


def _stored_json(value: Any) -> str:
    """What a JSON column keeps of `value` as ItemInput.to_dict gives it (json_ready), keys sorted."""
    return json.dumps(json_ready(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
