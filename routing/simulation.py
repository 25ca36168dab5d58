"""The pilot: replay historical judgments through the live escalation policy and score it on gold.

Pure (no ORM): CSV files in, plain data out. The replay calls `routing.engine.policy.evaluate` with the
same `ItemInput`, `PolicyConfig` and `AnnotatorReliability` types live routing builds, so what the pilot
measures is what routing would do. Design and file formats: docs/pilot.md.

Gold never reaches the replay except for the gold-check items: `simulate` splits the gold labels into
checks (handed to `replay`) and scored items (handed only to the scorer, after the replay has finished),
so flipping a scored item's gold cannot change any routing decision.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

from routing.engine.aggregation import (
    DEFAULT_REFIT_POOLED_STRENGTH,
    DEFAULT_REFIT_PRIOR_STRENGTH,
    RefitReliability,
    dawid_skene,
    majority_posteriors,
)
from routing.engine.policy import evaluate
from routing.engine.temperature import temperature_changed
from routing.engine.types import (
    AnnotationInput,
    AnnotatorReliability,
    Decision,
    ItemInput,
    Outcome,
    PolicyConfig,
    PredictionInput,
)

CROWD = "crowd"
EXPERT = "expert"
ROLES = (CROWD, EXPERT)
# The model version named in the PredictionInput the replay builds from --predictions.
PILOT_MODEL_VERSION = "pilot"

CsvSource = str | os.PathLike | TextIO


class PilotDataError(ValueError):
    """A pilot input file is malformed; the message names the file, row and field."""


@dataclass(frozen=True)
class Worker:
    role: str = CROWD
    cost: float | None = None  # None: 1 for crowd, the policy's expert_cost for experts


@dataclass(frozen=True)
class History:
    """Everything the replay may look at. Gold labels are deliberately not part of it.

    `judgments[n]` are the (worker, label) pairs of `items[n]`, in the order they are revealed.
    """

    classes: tuple[str, ...]
    items: tuple[str, ...]
    judgments: tuple[tuple[tuple[str, str], ...], ...]
    workers: Mapping[str, Worker] = field(default_factory=dict)
    predictions: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    def role(self, worker: str) -> str:
        known = self.workers.get(worker)
        return known.role if known else CROWD

    def shuffled(self, rng: np.random.Generator) -> History:
        """The same history with each item's judgments in a random order (items keep their order)."""
        judgments = tuple(tuple(js[i] for i in rng.permutation(len(js))) for js in self.judgments)
        return dataclasses.replace(self, judgments=judgments)

    @property
    def n_judgments(self) -> int:
        return sum(len(js) for js in self.judgments)


@dataclass(frozen=True)
class PilotData:
    history: History
    gold: Mapping[str, str]


# ---------------------------------------------------------------------------------------------------------
# Reading the files


def _open(source: CsvSource) -> tuple[TextIO, str, bool]:
    if isinstance(source, (str, os.PathLike)):
        return open(source, newline="", encoding="utf-8-sig"), os.fspath(source), True
    return source, getattr(source, "name", "<stream>"), False


def _rows(source: CsvSource, required: Sequence[str]) -> Iterable[tuple[int, dict[str, str], list[str]]]:
    """(row number as a spreadsheet shows it, row, header) for every data row; checks the header."""
    handle, name, close = _open(source)
    try:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in required if c not in header]
        if missing:
            raise PilotDataError(
                f"{name}: missing column(s) {', '.join(missing)} (header: {', '.join(header) or 'empty'})"
            )
        reader.fieldnames = header
        for number, row in enumerate(reader, start=2):
            if None in row:
                raise PilotDataError(f"{name} row {number}: more fields than the header has")
            yield number, {k: (v or "").strip() for k, v in row.items()}, header
    except UnicodeDecodeError as error:
        raise PilotDataError(f"{name}: not UTF-8 text ({error})") from error
    finally:
        if close:
            handle.close()


def _value(name: str, number: int, row: Mapping[str, str], column: str) -> str:
    value = row[column]
    if not value:
        raise PilotDataError(f"{name} row {number}: {column} is empty")
    return value


def _source_name(source: CsvSource) -> str:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else getattr(source, "name", "<stream>")


def read_judgments(source: CsvSource) -> list[tuple[str, str, str]]:
    """(item, worker, label) rows of an `item,worker,label` CSV, in file order."""
    name = _source_name(source)
    out = []
    for number, row, _ in _rows(source, ("item", "worker", "label")):
        out.append(tuple(_value(name, number, row, c) for c in ("item", "worker", "label")))
    if not out:
        raise PilotDataError(f"{name}: no judgments")
    return out


def read_gold(source: CsvSource) -> dict[str, str]:
    """item -> label from an `item,label` CSV; an item listed twice is an error."""
    name = _source_name(source)
    gold: dict[str, str] = {}
    for number, row, _ in _rows(source, ("item", "label")):
        item, label = _value(name, number, row, "item"), _value(name, number, row, "label")
        if item in gold:
            raise PilotDataError(f"{name} row {number}: item {item!r} is listed twice")
        gold[item] = label
    return gold


def read_workers(source: CsvSource) -> dict[str, Worker]:
    """worker -> Worker from a `worker,role[,cost]` CSV; role is crowd or expert, cost a positive number."""
    name = _source_name(source)
    workers: dict[str, Worker] = {}
    for number, row, header in _rows(source, ("worker", "role")):
        worker, role = _value(name, number, row, "worker"), _value(name, number, row, "role").lower()
        if role not in ROLES:
            raise PilotDataError(f"{name} row {number}: role {row['role']!r} must be crowd or expert")
        if worker in workers:
            raise PilotDataError(f"{name} row {number}: worker {worker!r} is listed twice")
        cost = None
        if "cost" in header and row["cost"]:
            cost = _number(name, number, "cost", row["cost"])
            if cost <= 0:
                raise PilotDataError(f"{name} row {number}: cost must be positive, got {row['cost']!r}")
        workers[worker] = Worker(role=role, cost=cost)
    return workers


def read_predictions(source: CsvSource, classes: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """item -> probabilities in `classes` order from an `item,<class>,<class>...` CSV.

    Columns named by a class are read (every class needs one); other columns are ignored.
    Probabilities must be finite and ≥ 0 with a positive sum; they are renormalised to sum 1.
    """
    name = _source_name(source)
    predictions: dict[str, tuple[float, ...]] = {}
    for number, row, header in _rows(source, ("item",)):
        if number == 2:
            missing = [c for c in classes if c not in header]
            if missing:
                raise PilotDataError(f"{name}: no column for class(es) {', '.join(missing)}")
        item = _value(name, number, row, "item")
        if item in predictions:
            raise PilotDataError(f"{name} row {number}: item {item!r} is listed twice")
        values = []
        for c in classes:
            p = _number(name, number, c, row[c])
            if p < 0:
                raise PilotDataError(f"{name} row {number}: {c} is negative ({row[c]})")
            values.append(p)
        total = math.fsum(values)
        if total <= 0:
            raise PilotDataError(f"{name} row {number}: probabilities sum to 0")
        predictions[item] = tuple(v / total for v in values)
    return predictions


def _number(name: str, number: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise PilotDataError(f"{name} row {number}: {column} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise PilotDataError(f"{name} row {number}: {column} {text!r} is not a finite number")
    return value


def class_order(labels: Iterable[str]) -> tuple[str, ...]:
    """Classes sorted numerically when every label is an integer ("2" before "10"), else as text."""
    unique = set(labels)
    if all(re.fullmatch(r"-?\d+", label) for label in unique):
        return tuple(sorted(unique, key=int))
    return tuple(sorted(unique))


def load_pilot_data(
    *,
    judgments: CsvSource,
    gold: CsvSource,
    predictions: CsvSource | None = None,
    workers: CsvSource | None = None,
) -> PilotData:
    """Read the pilot's CSV files (docs/pilot.md). Classes are every label in judgments and gold.

    Items are those with judgments (first-seen order) then those with only a prediction. A gold label
    for an item with neither is ignored: there is nothing to route.
    """
    rows = read_judgments(judgments)
    gold_labels = read_gold(gold)
    classes = class_order([label for _, _, label in rows] + list(gold_labels.values()))
    if len(classes) < 2:
        raise PilotDataError(f"{_source_name(judgments)}: judgments and gold use only one class ({classes[0]!r})")
    by_item: dict[str, list[tuple[str, str]]] = {}
    for item, worker, label in rows:
        by_item.setdefault(item, []).append((worker, label))
    probabilities = read_predictions(predictions, classes) if predictions is not None else {}
    for item in probabilities:
        by_item.setdefault(item, [])
    roster = read_workers(workers) if workers is not None else {}
    history = History(
        classes=classes,
        items=tuple(by_item),
        judgments=tuple(tuple(js) for js in by_item.values()),
        workers=roster,
        predictions=probabilities,
    )
    return PilotData(history=history, gold={i: g for i, g in gold_labels.items() if i in by_item})


# ---------------------------------------------------------------------------------------------------------
# The replay


@dataclass(frozen=True)
class LearnerOptions:
    """How the replay learns annotator reliability from what it has revealed (see docs/pilot.md)."""

    # Dirichlet pseudo-labels per confusion row towards the policy's prior accuracy for the role, and
    # towards the average confusion of the role's annotators (see RefitReliability).
    prior_strength: float = DEFAULT_REFIT_PRIOR_STRENGTH
    pooled_strength: float = DEFAULT_REFIT_POOLED_STRENGTH
    # Refit at the start of every round and whenever the revealed labels have grown by this share.
    refit_growth: float = 0.2
    refit_min_labels: int = 50
    # EM per refit, from majority vote each time.
    iterations: int = 30
    tol: float = 1e-3


DEFAULT_LEARNER = LearnerOptions()


def reliability_learner(k: int, policy: PolicyConfig, learner: LearnerOptions = DEFAULT_LEARNER) -> RefitReliability:
    """The reliability learner for `k` classes under `policy`: the replay and the live refresh
    (routing.services.project_reliabilities_estimate) both build it here, so they estimate alike."""
    return RefitReliability(
        k,
        crowd_accuracy=policy.crowd_prior_accuracy,
        expert_accuracy=policy.expert_prior_accuracy,
        prior_strength=learner.prior_strength,
        pooled_strength=learner.pooled_strength,
        model_weight=policy.model_prior_weight,
        iterations=learner.iterations,
        tol=learner.tol,
        learn_temperature=policy.learn_model_temperature,
    )


@dataclass(frozen=True)
class Step:
    """One evaluation during the replay: exactly what was passed to `evaluate` and what it returned."""

    round: int
    item: str
    item_input: ItemInput
    reliabilities: Mapping[int, AnnotatorReliability]
    decision: Decision


@dataclass(frozen=True)
class ItemOutcome:
    item: str
    label: str  # "" when nothing could be decided (no judgment, no prediction)
    source: str  # "model" | "consensus" | "expert" | "" (undecided)
    exhausted: bool  # the policy wanted a label the history did not have, so it decided with what it had
    crowd_labels: int
    expert_labels: int
    cost: float
    escalated: bool  # the policy asked for an expert at least once
    evaluations: int


@dataclass(frozen=True)
class ReplayResult:
    outcomes: Mapping[str, ItemOutcome]
    rounds: int
    gold_check_labels: int
    steps: tuple[Step, ...] = ()


class _Encoded:
    """The history as integer indices, built once per replay."""

    def __init__(self, history: History, checks: Mapping[str, str]):
        self.classes = history.classes
        self.class_index = {c: i for i, c in enumerate(history.classes)}
        self.items = history.items
        workers = list(dict.fromkeys(w for js in history.judgments for w, _ in js))
        self.workers = workers
        self.worker_index = {w: i for i, w in enumerate(workers)}
        self.roles = [history.role(w) for w in workers]
        self.costs = [history.workers[w].cost if w in history.workers else None for w in workers]
        self.queues: list[dict[str, list[tuple[int, int]]]] = []
        for item, js in zip(history.items, history.judgments):
            queue: dict[str, list[tuple[int, int]]] = {CROWD: [], EXPERT: []}
            for worker, label in js:
                if label not in self.class_index:
                    raise PilotDataError(f"item {item!r}: label {label!r} is not a class")
                w = self.worker_index[worker]
                queue[self.roles[w]].append((w, self.class_index[label]))
            self.queues.append(queue)
        self.probs = [history.predictions.get(item) for item in history.items]
        self.checks = {}
        item_index = {item: n for n, item in enumerate(history.items)}
        for item, label in checks.items():
            if item in item_index:
                if label not in self.class_index:
                    raise PilotDataError(f"gold check for item {item!r}: label {label!r} is not a class")
                self.checks[item_index[item]] = self.class_index[label]


def replay(
    history: History,
    policy: PolicyConfig,
    *,
    seed: int | np.random.SeedSequence,
    checks: Mapping[str, str] | None = None,
    learner: LearnerOptions = DEFAULT_LEARNER,
    record_steps: bool = False,
) -> ReplayResult:
    """Route every item of `history` (except the gold checks) with `policy`, revealing judgments on demand.

    Rounds: each round visits the open items in one seeded order and evaluates each; CROWD reveals the
    next `labels_requested` crowd judgments of the item, EXPERT the next expert judgment, ACCEPT closes
    it. When the history has none of the kind asked for, the item is closed with the posterior's top
    label (source "consensus"), or the model's top label when there is no annotation.
    `checks` (item -> true label) are gold checks: all their judgments are shown to the reliability
    learner before the first round and they are not routed.
    """
    data = _Encoded(history, checks or {})
    classes = data.classes
    k = len(classes)
    n_items = len(data.items)
    rng = np.random.default_rng(seed)
    order = [int(i) for i in rng.permutation(n_items) if int(i) not in data.checks]
    learn = reliability_learner(k, policy, learner)
    for n, probs in enumerate(data.probs):
        if probs is not None:
            learn.set_model_prior(n, probs)
    gold_check_labels = 0
    for item, truth in data.checks.items():
        learn.set_truth(item, truth)
        for role in ROLES:
            for w, c in data.queues[item][role]:
                learn.add_label(item, w + 1, c, role=role)
                gold_check_labels += 1
    reliabilities = learn.refit()

    predictions = [
        (PredictionInput(id=n + 1, model_version=PILOT_MODEL_VERSION, probabilities=dict(zip(classes, p))),)
        if p is not None
        else ()
        for n, p in enumerate(data.probs)
    ]
    states = [_ItemState() for _ in range(n_items)]
    outcomes: dict[str, ItemOutcome] = {}
    steps: list[Step] = []
    next_annotation_id = 1
    revealed_at_refit = learn.n_labels
    # As live routing reads them: the class prior stored by the last refresh, when the policy weighs it.
    class_prior = learn.class_prior() if policy.class_prior_weight > 0 else ()
    model_temperature = learn.model_temperature()
    # Items accepted by consensus (by the model), in acceptance order: what a recheck routes again.
    by_consensus: dict[int, None] = {}
    by_model: dict[int, None] = {}
    open_items = order
    rounds = 0
    # The budget's count as live routing reads it: crowd labels per item routed so far.
    budget = {"items": 0, "crowd": 0}

    def route(n: int) -> Decision:
        state = states[n]
        if state.evaluations == 0:
            budget["items"] += 1
        spent = round(budget["crowd"] / budget["items"], 4) if policy.target_labels_per_item > 0 else None
        item_input = ItemInput(
            item_id=n + 1,
            classes=classes,
            predictions=predictions[n],
            annotations=state.annotations,
            class_prior=class_prior,
            project_labels_per_item=spent,
            model_temperature=model_temperature,
        )
        # What live routing passes too: the reliabilities of the item's annotators that have one.
        relevant = {
            a.annotator_id: reliabilities[a.annotator_id] for a in state.annotations if a.annotator_id in reliabilities
        }
        decision = evaluate(item_input, policy, relevant)
        state.evaluations += 1
        if record_steps:
            steps.append(Step(rounds, data.items[n], item_input, relevant, decision))
        if decision.outcome == Outcome.ACCEPT:
            outcomes[data.items[n]] = state.outcome(
                data.items[n], decision.final_label, decision.final_source, exhausted=False
            )
            if decision.final_source == "consensus":
                by_consensus[n] = None
            elif decision.final_source == "model":
                by_model[n] = None
        return decision

    def refit() -> list[int]:
        """Re-estimate, then (consensus_recheck) route the consensus items again as the live refresh job
        does; returns those that reopened."""
        nonlocal reliabilities, revealed_at_refit, class_prior, model_temperature
        reliabilities = learn.refit()
        revealed_at_refit = learn.n_labels
        if policy.class_prior_weight > 0:
            class_prior = learn.class_prior()
        again = list(by_consensus) if policy.consensus_recheck else []
        if policy.learn_model_temperature:
            before, model_temperature = model_temperature, learn.model_temperature()
            if temperature_changed(before, model_temperature):
                again += list(by_model)
                by_model.clear()
        reopened = []
        for n in again:
            by_consensus.pop(n, None)
            if route(n).outcome != Outcome.ACCEPT:
                del outcomes[data.items[n]]
                reopened.append(n)
        return reopened

    while open_items:
        rounds += 1
        if learn.n_labels > revealed_at_refit:
            open_items = open_items + refit()
        still_open = []
        for n in open_items:
            state = states[n]
            decision = route(n)
            if decision.outcome == Outcome.ACCEPT:
                continue
            role = CROWD if decision.outcome == Outcome.CROWD else EXPERT
            state.escalated = state.escalated or role == EXPERT
            start = state.taken[role]
            revealed = data.queues[n][role][start : start + max(1, decision.labels_requested)]
            if not revealed:
                label, source = _fallback(classes, decision, predictions[n])
                outcomes[data.items[n]] = state.outcome(data.items[n], label, source, exhausted=True)
                continue
            state.taken[role] = start + len(revealed)
            if role == CROWD:
                budget["crowd"] += len(revealed)
            added = []
            for w, c in revealed:
                added.append(AnnotationInput(id=next_annotation_id, annotator_id=w + 1, label=classes[c], role=role))
                next_annotation_id += 1
                state.cost += _label_cost(data.costs[w], role, policy)
                learn.add_label(n, w + 1, c, role=role)
            state.annotations += tuple(added)
            still_open.append(n)
            if learn.n_labels - revealed_at_refit >= max(
                learner.refit_min_labels, learner.refit_growth * learn.n_labels
            ):
                still_open += refit()
        open_items = still_open
    return ReplayResult(outcomes=outcomes, rounds=rounds, gold_check_labels=gold_check_labels, steps=tuple(steps))


@dataclass
class _ItemState:
    annotations: tuple[AnnotationInput, ...] = ()
    taken: dict[str, int] = field(default_factory=lambda: {CROWD: 0, EXPERT: 0})
    cost: float = 0.0
    evaluations: int = 0
    escalated: bool = False

    def outcome(self, item: str, label: str, source: str, *, exhausted: bool) -> ItemOutcome:
        return ItemOutcome(
            item=item,
            label=label,
            source=source,
            exhausted=exhausted,
            crowd_labels=self.taken[CROWD],
            expert_labels=self.taken[EXPERT],
            cost=self.cost,
            escalated=self.escalated,
            evaluations=self.evaluations,
        )


def _label_cost(worker_cost: float | None, role: str, policy: PolicyConfig) -> float:
    if worker_cost is not None:
        return worker_cost
    return 1.0 if role == CROWD else policy.expert_cost


def _fallback(classes: Sequence[str], decision: Decision, predictions: Sequence[PredictionInput]) -> tuple[str, str]:
    """What the policy decides when nobody is left to ask: the posterior's top label (ties: first class)."""
    signals = decision.signals
    if signals.get("annotation_count"):
        label = max(classes, key=lambda c: (decision.posterior[c], -classes.index(c)))
        return label, "consensus"
    if predictions:
        probs = predictions[-1].probabilities
        return max(classes, key=lambda c: (probs[c], -classes.index(c))), "model"
    return "", ""


# ---------------------------------------------------------------------------------------------------------
# Scoring and baselines: the only place scored gold is read


def expected_accuracy(posteriors: np.ndarray, truth: np.ndarray) -> float:
    """Mean chance of naming the true class when taking the top class, ties broken by a fair coin."""
    if len(truth) == 0:
        return float("nan")
    top = posteriors.max(axis=1, keepdims=True)
    tied = np.isclose(posteriors, top, rtol=0.0, atol=1e-12)
    return float(np.mean(tied[np.arange(len(truth)), truth] / tied.sum(axis=1)))


def label_accuracy(labels: Sequence[str], truth: Sequence[str], k: int) -> float:
    """Share of labels equal to the truth; an undecided item ("") counts as a fair guess (1/k)."""
    if not truth:
        return float("nan")
    return math.fsum(1.0 / k if not label else float(label == true) for label, true in zip(labels, truth)) / len(truth)


@dataclass(frozen=True)
class _Encoding:
    """Judgments of a history as (item, worker, class) index rows, in reveal order within each item."""

    rows: np.ndarray  # (n, 3)
    position: np.ndarray  # (n,) index of the judgment within its item
    n_items: int
    n_workers: int

    @classmethod
    def of(cls, history: History) -> _Encoding:
        class_index = {c: i for i, c in enumerate(history.classes)}
        workers: dict[str, int] = {}
        rows, position = [], []
        for n, js in enumerate(history.judgments):
            for p, (worker, label) in enumerate(js):
                rows.append((n, workers.setdefault(worker, len(workers)), class_index[label]))
                position.append(p)
        return cls(
            np.array(rows, dtype=np.int64).reshape(-1, 3),
            np.array(position, dtype=np.int64),
            len(history.items),
            len(workers),
        )

    def first(self, k: int) -> np.ndarray:
        return self.rows[self.position < k]


@dataclass(frozen=True)
class _GoldScoring:
    """A history encoded for scoring against gold: class and item indices, the judgments, each item's
    number of judgments, and the scored items with their true classes."""

    k: int
    class_index: Mapping[str, int]
    item_index: Mapping[str, int]
    enc: _Encoding
    counts: np.ndarray  # (n_items,) judgments per item
    scored: np.ndarray  # item indices of the gold items scored
    truth: np.ndarray  # their true class indices

    @classmethod
    def of(cls, history: History, scored_gold: Mapping[str, str]) -> _GoldScoring:
        class_index = {c: i for i, c in enumerate(history.classes)}
        item_index = {item: n for n, item in enumerate(history.items)}
        enc = _Encoding.of(history)
        return cls(
            k=len(history.classes),
            class_index=class_index,
            item_index=item_index,
            enc=enc,
            counts=np.bincount(enc.rows[:, 0], minlength=enc.n_items),
            scored=np.array([item_index[i] for i in scored_gold], dtype=np.int64),
            truth=np.array([class_index[label] for label in scored_gold.values()], dtype=np.int64),
        )


def baselines(
    history: History,
    checks: Mapping[str, str],
    scored_gold: Mapping[str, str],
    *,
    matched_labels: float | None = None,
) -> dict[str, dict[str, float]]:
    """Majority vote and Dawid-Skene over all judgments, the model alone, and majority vote on the first k.

    Scored on the items of `scored_gold`. Dawid-Skene also clamps the gold checks (as the replay knows
    them). `matched_labels` (the adaptive run's labels per item) sets k = round(matched_labels) for
    "majority_vote_matched".
    """
    gs = _GoldScoring.of(history, scored_gold)
    k, class_index, item_index, enc, counts, scored, truth = (
        gs.k, gs.class_index, gs.item_index, gs.enc, gs.counts, gs.scored, gs.truth
    )
    available = float(counts[scored].mean()) if len(scored) else 0.0

    def mv(rows: np.ndarray) -> float:
        return expected_accuracy(majority_posteriors(rows[:, 0], rows[:, 2], enc.n_items, k)[scored], truth)

    gold = {item_index[i]: class_index[label] for i, label in checks.items() if i in item_index}
    ds_post, _ = dawid_skene(k, enc.rows, enc.n_items, enc.n_workers, gold=gold)
    out: dict[str, dict[str, float]] = {
        "majority_vote_all": {"accuracy": mv(enc.rows), "labels_per_item": available},
        "dawid_skene_all": {"accuracy": expected_accuracy(ds_post[scored], truth), "labels_per_item": available},
    }
    if history.predictions:
        model = np.full((enc.n_items, k), 1.0 / k)
        for item, probs in history.predictions.items():
            model[item_index[item]] = probs
        out["model_only"] = {"accuracy": expected_accuracy(model[scored], truth), "labels_per_item": 0.0}
    if matched_labels is not None:
        first = max(1, round(matched_labels))
        out["majority_vote_matched"] = {
            "accuracy": mv(enc.first(first)),
            "labels_per_item": float(np.minimum(counts[scored], first).mean()) if len(scored) else 0.0,
            "k": first,
        }
    return out


def majority_vote_curve(
    history: History, scored_gold: Mapping[str, str], *, dawid_skene_too: bool = False
) -> list[dict[str, float]]:
    """Majority vote on each item's first k judgments, for k = 1 .. the most any item has; with
    `dawid_skene_too`, also batch Dawid-Skene on the same judgments ("dawid_skene_accuracy"). With the
    judgments shuffled, each item's first k are a random subset of its judgments."""
    gs = _GoldScoring.of(history, scored_gold)
    k, enc, counts, scored, truth = gs.k, gs.enc, gs.counts, gs.scored, gs.truth
    rows = []
    for first in range(1, int(counts.max(initial=0)) + 1):
        sub = enc.first(first)
        post = majority_posteriors(sub[:, 0], sub[:, 2], enc.n_items, k)
        row = {
            "k": first,
            "accuracy": expected_accuracy(post[scored], truth),
            "labels_per_item": float(np.minimum(counts[scored], first).mean()),
        }
        if dawid_skene_too:
            ds_post, _ = dawid_skene(k, sub, enc.n_items, enc.n_workers)
            row["dawid_skene_accuracy"] = expected_accuracy(ds_post[scored], truth)
        rows.append(row)
    return rows


def adaptive_metrics(result: ReplayResult, scored_gold: Mapping[str, str], k: int) -> dict[str, float]:
    outcomes = [result.outcomes[item] for item in scored_gold]
    n = len(outcomes) or 1

    def mean(values: Iterable[float]) -> float:
        return math.fsum(values) / n

    return {
        "accuracy": label_accuracy([o.label for o in outcomes], list(scored_gold.values()), k),
        "labels_per_item": mean(o.crowd_labels + o.expert_labels for o in outcomes),
        "crowd_labels_per_item": mean(o.crowd_labels for o in outcomes),
        "expert_labels_per_item": mean(o.expert_labels for o in outcomes),
        "auto_accept_rate": mean(o.source == "model" and not o.exhausted for o in outcomes),
        "escalation_rate": mean(o.escalated for o in outcomes),
        "exhausted_rate": mean(o.exhausted for o in outcomes),
        "undecided_rate": mean(not o.label for o in outcomes),
        "cost_per_item": mean(o.cost for o in outcomes),
    }


# ---------------------------------------------------------------------------------------------------------
# The pilot: split, replay, score


@dataclass(frozen=True)
class PilotSetup:
    """The seeded preparation every run with the same seed shares: gold split, judgment order, item order."""

    history: History
    checks: Mapping[str, str]
    scored_gold: Mapping[str, str]
    order_seed: np.random.SeedSequence
    shuffle_judgments: bool
    gold_checks: float
    seed: int


def split_gold(
    gold: Mapping[str, str], fraction: float, rng: np.random.Generator
) -> tuple[dict[str, str], dict[str, str]]:
    """(checks, scored): a seeded `fraction` of the gold items become known checks, the rest are scored."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"gold-checks fraction must be in [0, 1), got {fraction}")
    items = list(gold)
    n_checks = round(fraction * len(items))
    chosen = set(rng.permutation(len(items))[:n_checks].tolist())
    checks = {item: gold[item] for n, item in enumerate(items) if n in chosen}
    scored = {item: gold[item] for n, item in enumerate(items) if n not in chosen}
    return checks, scored


def prepare(data: PilotData, *, seed: int, gold_checks: float = 0.0, shuffle_judgments: bool = False) -> PilotSetup:
    split_seed, shuffle_seed, order_seed = np.random.SeedSequence(seed).spawn(3)
    checks, scored = split_gold(data.gold, gold_checks, np.random.default_rng(split_seed))
    history = data.history.shuffled(np.random.default_rng(shuffle_seed)) if shuffle_judgments else data.history
    return PilotSetup(history, checks, scored, order_seed, shuffle_judgments, gold_checks, seed)


@dataclass(frozen=True)
class PilotReport:
    setup: PilotSetup
    policy: PolicyConfig
    result: ReplayResult
    adaptive: Mapping[str, float]
    baselines: Mapping[str, Mapping[str, float]]

    def to_dict(self) -> dict[str, Any]:
        setup = self.setup
        return {
            "items": len(setup.history.items),
            "gold_items_scored": len(setup.scored_gold),
            "gold_check_items": len(setup.checks),
            "gold_check_labels": self.result.gold_check_labels,
            "judgments": setup.history.n_judgments,
            "classes": list(setup.history.classes),
            "seed": setup.seed,
            "shuffle_judgments": setup.shuffle_judgments,
            "rounds": self.result.rounds,
            "policy": self.policy.to_dict(),
            "adaptive": dict(self.adaptive),
            "baselines": {name: dict(values) for name, values in self.baselines.items()},
        }


def run_pilot(
    setup: PilotSetup,
    policy: PolicyConfig,
    *,
    learner: LearnerOptions = DEFAULT_LEARNER,
    record_steps: bool = False,
    with_baselines: bool = True,
) -> PilotReport:
    result = replay(
        setup.history, policy, seed=setup.order_seed, checks=setup.checks, learner=learner, record_steps=record_steps
    )
    # Scored gold is read only from here on, after every routing decision has been made.
    adaptive = adaptive_metrics(result, setup.scored_gold, len(setup.history.classes))
    found = (
        baselines(setup.history, setup.checks, setup.scored_gold, matched_labels=adaptive["labels_per_item"])
        if with_baselines
        else {}
    )
    return PilotReport(setup=setup, policy=policy, result=result, adaptive=adaptive, baselines=found)


def simulate(
    data: PilotData,
    policy: PolicyConfig,
    *,
    seed: int,
    gold_checks: float = 0.0,
    shuffle_judgments: bool = False,
    learner: LearnerOptions = DEFAULT_LEARNER,
    record_steps: bool = False,
) -> PilotReport:
    """Replay `data` under `policy` and score it and the baselines on the gold items not used as checks."""
    setup = prepare(data, seed=seed, gold_checks=gold_checks, shuffle_judgments=shuffle_judgments)
    return run_pilot(setup, policy, learner=learner, record_steps=record_steps)


# ---------------------------------------------------------------------------------------------------------
# Threshold sweep

# consensus_min_posterior values swept by `curve`; auto-accept top probabilities when there are predictions.
CURVE_POSTERIORS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.875, 0.9, 0.925, 0.95, 0.97, 0.98, 0.99, 0.995)
CURVE_TOP_PROBABILITIES = (0.7, 0.8, 0.9, 0.95, 0.99)


def curve_policies(base: PolicyConfig, *, with_predictions: bool) -> list[PolicyConfig]:
    """The policies `curve` replays: the base with its main thresholds varied (docs/pilot.md)."""
    posteriors = [dataclasses.replace(base, consensus_min_posterior=p) for p in CURVE_POSTERIORS]
    if not with_predictions:
        return posteriors
    return [
        dataclasses.replace(policy, auto_accept_min_top_probability=top)
        for top in CURVE_TOP_PROBABILITIES
        for policy in posteriors
    ]


def curve(
    setup: PilotSetup,
    base: PolicyConfig,
    *,
    learner: LearnerOptions = DEFAULT_LEARNER,
    policies: Sequence[PolicyConfig] | None = None,
) -> list[dict[str, float]]:
    """Accuracy against labels per item for each policy of `curve_policies` (same split, same order)."""
    chosen = (
        policies if policies is not None else curve_policies(base, with_predictions=bool(setup.history.predictions))
    )
    rows = []
    for policy in chosen:
        report = run_pilot(setup, policy, learner=learner, with_baselines=False)
        rows.append(
            {
                "consensus_min_posterior": policy.consensus_min_posterior,
                "auto_accept_min_top_probability": policy.auto_accept_min_top_probability,
                **{
                    key: report.adaptive[key]
                    for key in (
                        "accuracy",
                        "labels_per_item",
                        "expert_labels_per_item",
                        "auto_accept_rate",
                        "cost_per_item",
                    )
                },
            }
        )
    return rows


def pareto(rows: Sequence[Mapping[str, float]]) -> list[Mapping[str, float]]:
    """Rows no other row beats on both accuracy (higher) and labels per item (lower), cheapest first."""
    ordered = sorted(rows, key=lambda r: (r["labels_per_item"], -r["accuracy"]))
    front, best = [], -math.inf
    for row in ordered:
        if row["accuracy"] > best:
            front.append(row)
            best = row["accuracy"]
    return front


def curve_table(
    rows: Sequence[Mapping[str, float]], mv_rows: Sequence[Mapping[str, float]], with_predictions: bool
) -> str:
    """The sweep as a fixed-width text table, then majority vote on the first k judgments."""
    front = {id(r) for r in pareto(rows)}
    head = (
        ["posterior"]
        + (["top_prob"] if with_predictions else [])
        + ["accuracy", "labels/item", "expert/item", "cost/item", ""]
    )
    lines = ["  ".join(f"{h:>11}" for h in head)]
    for row in rows:
        cells = [f"{row['consensus_min_posterior']:>11.3f}"]
        if with_predictions:
            cells.append(f"{row['auto_accept_min_top_probability']:>11.3f}")
        cells += [
            f"{row['accuracy']:>11.4f}",
            f"{row['labels_per_item']:>11.2f}",
            f"{row['expert_labels_per_item']:>11.2f}",
            f"{row['cost_per_item']:>11.2f}",
            f"{'pareto' if id(row) in front else '':>11}",
        ]
        lines.append("  ".join(cells))
    lines.append("")
    lines.append("majority vote on the first k judgments")
    lines.append("  ".join(f"{h:>11}" for h in ("k", "accuracy", "labels/item")))
    for row in mv_rows:
        lines.append(f"{row['k']:>11d}  {row['accuracy']:>11.4f}  {row['labels_per_item']:>11.2f}")
    return "\n".join(lines)


BASELINE_NAMES = {
    "dawid_skene_all": "Dawid-Skene, all judgments",
    "majority_vote_all": "majority vote, all judgments",
    "model_only": "model alone",
}


def curve_html(
    rows: Sequence[Mapping[str, float]],
    mv_rows: Sequence[Mapping[str, float]],
    report: PilotReport,
    *,
    title: str = "Pilot",
) -> str:
    """A self-contained HTML chart of the sweep: plotly.js is inlined, so it opens offline (no CDN)."""
    # Imported here: routing.services imports this module, and no web worker should load plotly for it.
    import plotly.graph_objects as go

    front = pareto(rows)
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=[r["labels_per_item"] for r in rows],
            y=[r["accuracy"] for r in rows],
            mode="markers",
            name="adaptive policy (sweep)",
            text=[
                f"posterior ≥ {r['consensus_min_posterior']}, top probability ≥ {r['auto_accept_min_top_probability']}"
                for r in rows
            ],
        )
    )
    figure.add_trace(
        go.Scatter(
            x=[r["labels_per_item"] for r in front],
            y=[r["accuracy"] for r in front],
            mode="lines",
            name="adaptive policy (best trade-offs)",
        )
    )
    figure.add_trace(
        go.Scatter(
            x=[r["labels_per_item"] for r in mv_rows],
            y=[r["accuracy"] for r in mv_rows],
            mode="lines+markers",
            name="majority vote, first k judgments",
            text=[f"k = {r['k']}" for r in mv_rows],
        )
    )
    adaptive = report.adaptive
    figure.add_trace(
        go.Scatter(
            x=[adaptive["labels_per_item"]],
            y=[adaptive["accuracy"]],
            mode="markers",
            marker={"size": 14, "symbol": "star"},
            name="adaptive policy (as given)",
        )
    )
    for name, values in report.baselines.items():
        if name in BASELINE_NAMES:
            figure.add_trace(
                go.Scatter(
                    x=[values["labels_per_item"]],
                    y=[values["accuracy"]],
                    mode="markers",
                    marker={"size": 12, "symbol": "diamond"},
                    name=BASELINE_NAMES[name],
                )
            )
    figure.update_layout(
        title=title,
        xaxis_title="labels per item (crowd + expert)",
        yaxis_title="accuracy on scored gold items",
        template="plotly_white",
    )
    return figure.to_html(include_plotlyjs=True, full_html=True)


# ---------------------------------------------------------------------------------------------------------
# Synthetic data with known annotator accuracies (tests, bench, demos)


def synthetic_data(
    *,
    n_items: int,
    judgments_per_item: int,
    accuracies: Sequence[float],
    seed: int,
    classes: Sequence[str] = ("neg", "pos"),
    expert_accuracies: Sequence[float] = (),
    expert_judgments_per_item: int = 0,
    model_accuracy: float | None = None,
) -> PilotData:
    """Items with a uniformly drawn true class, each labelled by `judgments_per_item` distinct crowd
    workers drawn at random (worker w is right with probability `accuracies[w]`, otherwise names a
    uniformly drawn wrong class), then by `expert_judgments_per_item` experts alike.

    With `model_accuracy`, a prediction whose top class is right with that probability and whose top
    probability is drawn from [0.5, 1) higher when right (so it carries some signal).
    """
    rng = np.random.default_rng(seed)
    classes = tuple(classes)
    k = len(classes)
    if judgments_per_item > len(accuracies) or expert_judgments_per_item > len(expert_accuracies):
        raise ValueError("more judgments per item than workers")
    truth = rng.integers(k, size=n_items)
    crowd = [f"c{w}" for w in range(len(accuracies))]
    experts = [f"e{w}" for w in range(len(expert_accuracies))]

    def labels(true: np.ndarray, acc: np.ndarray) -> np.ndarray:
        right = rng.random(true.shape) < acc
        wrong = (true + rng.integers(1, k, size=true.shape)) % k
        return np.where(right, true, wrong)

    items = tuple(f"i{n}" for n in range(n_items))
    chosen = np.argsort(rng.random((n_items, len(accuracies))), axis=1)[:, :judgments_per_item]
    given = labels(np.repeat(truth[:, None], judgments_per_item, axis=1), np.asarray(accuracies)[chosen])
    judgments = [[(crowd[w], classes[g]) for w, g in zip(ws, gs)] for ws, gs in zip(chosen, given)]
    if expert_judgments_per_item:
        chosen_e = np.argsort(rng.random((n_items, len(expert_accuracies))), axis=1)[:, :expert_judgments_per_item]
        given_e = labels(
            np.repeat(truth[:, None], expert_judgments_per_item, axis=1), np.asarray(expert_accuracies)[chosen_e]
        )
        for js, ws, gs in zip(judgments, chosen_e, given_e):
            js.extend((experts[w], classes[g]) for w, g in zip(ws, gs))
    predictions: dict[str, tuple[float, ...]] = {}
    if model_accuracy is not None:
        right = rng.random(n_items) < model_accuracy
        top_class = np.where(right, truth, (truth + rng.integers(1, k, size=n_items)) % k)
        top_p = np.where(right, 0.75 + 0.25 * rng.random(n_items), 0.5 + 0.3 * rng.random(n_items))
        for n in range(n_items):
            probs = np.full(k, (1.0 - top_p[n]) / (k - 1))
            probs[top_class[n]] = top_p[n]
            predictions[items[n]] = tuple(float(p) for p in probs)
    workers = {w: Worker(role=CROWD) for w in crowd} | {w: Worker(role=EXPERT) for w in experts}
    history = History(
        classes=classes,
        items=items,
        judgments=tuple(tuple(js) for js in judgments),
        workers=workers,
        predictions=predictions,
    )
    return PilotData(history=history, gold={items[n]: classes[truth[n]] for n in range(n_items)})
