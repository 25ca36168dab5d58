"""The pilot: replay historical judgments through the live escalation policy and score it on gold.

Pure (no ORM): CSV files in, plain data out. The replay calls `routing.engine.policy.evaluate` with the
same `ItemInput`, `PolicyConfig` and `AnnotatorReliability` types live routing builds, so what the pilot
measures is what routing would do. Design and file formats: docs/pilot.md.

Gold never reaches the replay except for the gold-check items: `simulate` splits the gold labels into
checks (handed to `replay`) and scored items (handed only to the scorer, after the replay has finished),
so flipping a scored item's gold cannot change any routing decision.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pilot.readers import (
    CROWD,
    EXPERT,
    PILOT_MODEL_VERSION,
    ROLES,
    History,
    PilotData,
    PilotDataError,
)
from routing.engine.policy import evaluate
from routing.engine.reliability import (
    DEFAULT_LEARNER,
    LearnerOptions,
    dawid_skene,
    majority_posteriors,
    reliability_learner,
)
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

# ---------------------------------------------------------------------------------------------------------
# The replay


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
