"""Learning annotator reliability from labels: per-label updates (`OnlineReliability`), batch Dawid-Skene
(`dawid_skene`), and the MAP re-fit over the labels seen so far (`RefitReliability`) that the pilot's
replay and the scheduled reliability refresh both build with `reliability_learner`, so live routing reads
reliabilities estimated exactly as the replay that calibrated its thresholds estimated them.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import temperature
from .aggregation import (
    CLASS_PRIOR_DIGITS,
    CONFUSION_FLOOR,
    DEFAULT_CROWD_ACCURACY,
    DEFAULT_EXPERT_ACCURACY,
    DEFAULT_PRIOR_STRENGTH,
    DEFAULT_REFIT_POOLED_STRENGTH,
    DEFAULT_REFIT_PRIOR_STRENGTH,
    EXPERT_ROLES,
    MODEL_PROBABILITY_FLOOR,
    default_confusion,
    k_of,
    labels_log_likelihood,
    log_prior_list,
    normalise_log,
    prior_accuracy,
)
from .types import AnnotatorReliability, PolicyConfig


@dataclass
class _Annotator:
    role: str
    # total[t][g] = prior pseudo-counts + observed soft counts; row_sum[t] = Σ_g total[t][g].
    # Plain lists: k is small, and per-call numpy overhead would dominate a replay of 100,000 labels.
    total: list[list[float]]
    row_sum: list[float]
    n_observations: float = 0.0

    def add(self, given: int, column: Sequence[float], sign: float) -> None:
        # Only column `given` and the row sums change: O(k) per label.
        total, row_sum = self.total, self.row_sum
        for t, value in enumerate(column):
            delta = sign * value
            total[t][given] += delta
            row_sum[t] += delta
        self.n_observations += sign * sum(column)

    def log_column(self, given: int) -> list[float]:
        """log C[t, given] for every true class t (entries stay ≥ the prior's pseudo-counts, so > 0)."""
        log = math.log
        return [log(row[given] / s) for row, s in zip(self.total, self.row_sum)]

    def matrix(self) -> np.ndarray:
        confusion: np.ndarray = np.array(self.total) / np.array(self.row_sum)[:, None]
        return confusion


@dataclass
class OnlineReliability:
    """Per-annotator confusion counts, learned label by label (no re-fit).

    Counts are soft: a gold check adds 1 to `counts[truth, given]`; an item without gold adds the
    leave-one-out posterior target t (weighted by `soft_target_weight(t)`) to column `given`. Each item's
    contribution is remembered and replaced when the item is observed again, so an item whose posterior
    sharpens as labels arrive teaches what it knows now, not the sum of everything it once believed.
    Cost of `observe_item` with m votes: O(m k) (plus O(k^2) to read a matrix out).
    """

    classes: int | Sequence[str]
    crowd_accuracy: float = DEFAULT_CROWD_ACCURACY
    expert_accuracy: float = DEFAULT_EXPERT_ACCURACY
    prior_strength: float = DEFAULT_PRIOR_STRENGTH
    _annotators: dict[int, _Annotator] = field(default_factory=dict, init=False, repr=False)
    # item key -> [(annotator_id, given, column)] last added for that item
    _contributions: dict[Any, list[tuple[int, int, list[float]]]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("crowd_accuracy", "expert_accuracy"):
            if self.k > 1 and not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be strictly between 0 and 1")
        if self.prior_strength <= 0:
            raise ValueError("prior_strength must be positive (it keeps confusion entries away from 0)")

    @property
    def k(self) -> int:
        return k_of(self.classes)

    def _prior_accuracy(self, role: str | None) -> float:
        return prior_accuracy(role or "crowd", crowd_accuracy=self.crowd_accuracy, expert_accuracy=self.expert_accuracy)

    def _annotator(self, annotator_id: int, role: str | None) -> _Annotator:
        state = self._annotators.get(annotator_id)
        if state is None:
            prior = default_confusion(self.k, self._prior_accuracy(role)) * self.prior_strength
            state = _Annotator(role or "crowd", prior.tolist(), prior.sum(axis=1).tolist())
            self._annotators[annotator_id] = state
        return state

    def observe_gold(self, annotator_id: int, true_index: int, given_index: int, *, role: str | None = None) -> None:
        """A label checked against known truth, outside any item's replaceable contribution."""
        column = [0.0] * self.k
        column[true_index] = 1.0
        self._annotator(annotator_id, role).add(given_index, column, 1.0)

    def observe_item(
        self,
        item_key: Any,
        votes: Sequence[tuple[int, str, int]],
        *,
        model_probs: Sequence[float] | np.ndarray | None = None,
        model_weight: float = 1.0,
        truth: int | None = None,
    ) -> None:
        """(Re)learn from every vote on one item: `votes` are (annotator_id, role, given_index), all so far.

        With `truth` (a gold item) each vote counts as a gold check; otherwise each annotator's target
        is the posterior from the model prior and the *other* votes. Replaces what this item taught before.
        """
        k = self.k
        for annotator_id, given, column in self._contributions.pop(item_key, ()):
            self._annotators[annotator_id].add(given, column, -1.0)
        if not votes:
            return
        states = [self._annotator(annotator_id, role) for annotator_id, role, _ in votes]
        added = []
        if truth is not None:
            column = [0.0] * k
            column[truth] = 1.0
            for state, (annotator_id, _, given) in zip(states, votes):
                state.add(given, column, 1.0)
                added.append((annotator_id, given, column))
        else:
            logs = [state.log_column(given) for state, (_, _, given) in zip(states, votes)]
            total = log_prior_list(model_probs, model_weight, k)
            for log_column in logs:
                for t in range(k):
                    total[t] += log_column[t]
            floor, spread = 1.0 / k, 1.0 - 1.0 / k
            for state, (annotator_id, _, given), log_column in zip(states, votes, logs):
                leave_one_out = [x - y for x, y in zip(total, log_column)]
                top = max(leave_one_out)
                weights = [math.exp(x - top) for x in leave_one_out]
                norm = sum(weights)
                # soft_target_weight, inlined: this loop runs for every vote after every label.
                strength = (1.0 / norm - floor) / spread if k > 1 else 0.0
                if strength > 0.0:
                    scale = strength / norm
                    column = [w * scale for w in weights]
                    state.add(given, column, 1.0)
                    added.append((annotator_id, given, column))
        self._contributions[item_key] = added

    def confusion(self, annotator_id: int, *, role: str | None = None) -> np.ndarray:
        """Current smoothed matrix; for an annotator never seen, the role's prior."""
        state = self._annotators.get(annotator_id)
        if state is None:
            return default_confusion(self.k, self._prior_accuracy(role))
        return state.matrix()

    def reliability(self, annotator_id: int, *, role: str | None = None) -> AnnotatorReliability:
        state = self._annotators.get(annotator_id)
        return as_reliability(
            annotator_id, self.confusion(annotator_id, role=role), state.n_observations if state else 0.0
        )

    def reliabilities(self, annotator_ids: Iterable[int] | None = None) -> dict[int, AnnotatorReliability]:
        """Reliabilities ready for policy.evaluate: of the given annotators seen so far, or of all of them.

        Pass an item's annotators when calling after every label: building all of them is O(n k^2).
        """
        ids = self._annotators.keys() if annotator_ids is None else [a for a in annotator_ids if a in self._annotators]
        return {a: self.reliability(a) for a in ids}


class RefitReliability:
    """Per-annotator confusions re-estimated from every label seen so far by MAP Dawid-Skene.

    Where `OnlineReliability` updates counts label by label, this re-fits everything at once when asked
    (`refit`), each time from majority vote rather than from the previous fit (a warm start can carry a
    mirrored solution forward: with a few adversaries among weak annotators it settled on every class
    swapped), so early estimates are revised as evidence accumulates
    (two spammers who agreed on the first items stop looking reliable once others disagree with them).
    Each annotator's rows get `prior_strength` pseudo-labels towards the role's prior accuracy and
    `pooled_strength` towards the average confusion of the annotators of its role (a hierarchical prior:
    an annotator seen on few items reads like a typical colleague, not like the fixed prior; see
    `dawid_skene`). Both strengths are per two classes: a row of k classes gets k/2 times as many
    pseudo-labels, since it has k - 1 entries to estimate (binary rows as given; a 10-class row read
    off a few labels otherwise explains every disagreement by the model's favourite mistake).
    Gold checks (`set_truth`) pin their items' truth. A refit over n labels costs O(n k) per EM iteration.
    """

    def __init__(
        self,
        classes: int | Sequence[str],
        *,
        crowd_accuracy: float = DEFAULT_CROWD_ACCURACY,
        expert_accuracy: float = DEFAULT_EXPERT_ACCURACY,
        prior_strength: float = DEFAULT_REFIT_PRIOR_STRENGTH,
        pooled_strength: float = DEFAULT_REFIT_POOLED_STRENGTH,
        model_weight: float = 1.0,
        iterations: int = 50,
        tol: float = 1e-4,
        learn_temperature: bool = False,
    ) -> None:
        self.k = k_of(classes)
        if prior_strength <= 0:
            raise ValueError("prior_strength must be positive (it keeps confusion entries away from 0)")
        if pooled_strength < 0:
            raise ValueError("pooled_strength must be zero or positive")
        per_row = self.k / 2
        self._role_prior = {
            role: default_confusion(
                self.k, prior_accuracy(role, crowd_accuracy=crowd_accuracy, expert_accuracy=expert_accuracy)
            )
            * prior_strength
            * per_row
            for role in ("crowd", "expert")
        }
        self.pooled_strength = pooled_strength * per_row
        self.model_weight = model_weight
        self.iterations = iterations
        self.tol = tol
        self._items: dict[Any, int] = {}
        self._annotators: dict[int, int] = {}
        self._roles: list[str] = []
        # Flat (item, annotator, class) triples; array.append is cheap enough to call for every label.
        self._rows = array("q")
        self._truth: dict[int, int] = {}
        self._model: dict[int, np.ndarray] = {}
        self._post: np.ndarray | None = None
        self._labeled = np.zeros(0, dtype=bool)
        # The model's temperature fitted at the last refit (learn_temperature); the next refit's priors use it.
        self.learn_temperature = learn_temperature
        self._temperature: float | None = None

    @property
    def n_labels(self) -> int:
        return len(self._rows) // 3

    def _item(self, item_key: Any) -> int:
        return self._items.setdefault(item_key, len(self._items))

    def add_label(self, item_key: Any, annotator_id: int, given_index: int, *, role: str = "crowd") -> None:
        if not 0 <= given_index < self.k:
            raise ValueError(f"class index {given_index} is outside 0..{self.k - 1}")
        annotator = self._annotators.get(annotator_id)
        if annotator is None:
            annotator = self._annotators[annotator_id] = len(self._roles)
            self._roles.append("expert" if role in EXPERT_ROLES else "crowd")
        self._rows.extend((self._item(item_key), annotator, given_index))

    def set_truth(self, item_key: Any, true_index: int) -> None:
        """The item is a gold check: every label on it is judged against `true_index`."""
        if not 0 <= true_index < self.k:
            raise ValueError(f"class index {true_index} is outside 0..{self.k - 1}")
        self._truth[self._item(item_key)] = true_index

    def set_model_prior(self, item_key: Any, probabilities: Sequence[float]) -> None:
        """The model's prediction for the item, used as its prior (to the power `model_weight`)."""
        self._model[self._item(item_key)] = np.asarray(probabilities, dtype=float)

    def refit(self) -> dict[int, AnnotatorReliability]:
        """Re-estimate every annotator's confusion; returns those of annotators with at least one label."""
        n_items, k = len(self._items), self.k
        if not self._rows:
            return {}
        rows = np.frombuffer(self._rows, dtype=np.int64).reshape(-1, 3).copy()
        initial = majority_posteriors(rows[:, 0], rows[:, 2], n_items, k)
        item_priors = None
        if self._model and self.model_weight != 0:
            item_priors = np.full((n_items, k), 1.0 / k)
            exponent = self.model_weight / (self._temperature or 1.0)
            for index, probs in self._model.items():
                item_priors[index] = np.maximum(probs, MODEL_PROBABILITY_FLOOR) ** exponent
        self._post, confusions = dawid_skene(
            k,
            rows,
            n_items,
            len(self._roles),
            gold=self._truth,
            iterations=self.iterations,
            tol=self.tol,
            prior_counts=np.array([self._role_prior[role] for role in self._roles]),
            item_priors=item_priors,
            pooled_strength=self.pooled_strength,
            groups=[role == "expert" for role in self._roles],
            initial=initial,
        )
        self._labeled = np.bincount(rows[:, 0], minlength=n_items) > 0
        if self.learn_temperature and self._model:
            evidence = temperature.label_evidence(rows, confusions, n_items, self._truth, CONFUSION_FLOOR)
            known = [i for i in sorted(self._model) if self._labeled[i] or i in self._truth]
            fitted = temperature.fit_temperature(
                np.array([self._model[i] for i in known]).reshape(len(known), k), evidence[known]
            )
            self._temperature = fitted if fitted is not None else self._temperature
        observed = np.bincount(rows[:, 1], minlength=len(self._roles))
        return {
            annotator_id: as_reliability(annotator_id, confusions[index], float(observed[index]))
            for annotator_id, index in self._annotators.items()
        }

    def start_temperature(self, temperature: float | None) -> None:
        """Read the model's priors through this temperature until a refit fits its own (a learner built
        afresh for each refresh starts where the last one ended)."""
        self._temperature = temperature

    def model_temperature(self) -> float | None:
        """The model's temperature as the last refit fitted it (learn_temperature), None before one could."""
        return self._temperature

    def class_prior(self) -> tuple[float, ...]:
        """The classes' prevalence among the labeled items at the last refit (each item's posterior
        counted, one pseudo-item per class), rounded to CLASS_PRIOR_DIGITS; empty before any refit."""
        if self._post is None:
            return ()
        counts = self._post[self._labeled].sum(axis=0) + 1.0
        return tuple(round(float(p), CLASS_PRIOR_DIGITS) for p in counts / counts.sum())



def as_reliability(annotator_id: int, confusion: np.ndarray, n_observations: float = 0.0) -> AnnotatorReliability:
    """Engine-ready, JSON-friendly reliability from a numpy confusion matrix."""
    return AnnotatorReliability(
        annotator_id=annotator_id,
        confusion=tuple(tuple(float(x) for x in row) for row in np.asarray(confusion)),
        n_observations=float(n_observations),
    )


def majority_posteriors(item_idx: np.ndarray, class_idx: np.ndarray, n_items: int, k: int) -> np.ndarray:
    """Share of each item's labels per class (uniform for an item without labels)."""
    counts = np.zeros((n_items, k))
    np.add.at(counts, (item_idx, class_idx), 1.0)
    totals = counts.sum(axis=1, keepdims=True)
    return np.where(totals > 0, counts / np.where(totals > 0, totals, 1.0), 1.0 / k)


def dawid_skene(
    classes: int | Sequence[str],
    labels: Sequence[tuple[int, int, int]] | np.ndarray,
    n_items: int,
    n_annotators: int,
    gold: Mapping[int, int] | None = None,
    iterations: int = 100,
    tol: float = 1e-6,
    *,
    prior_counts: np.ndarray | None = None,
    item_priors: np.ndarray | None = None,
    pooled_strength: float = 0.0,
    groups: Sequence[int] | np.ndarray | None = None,
    initial: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Dawid-Skene EM. Returns (posteriors n_items x k, confusions n_annotators x k x k).

    labels: (item_idx, annotator_idx, class_idx) rows. gold: item_idx -> true class_idx; those items'
    posteriors are clamped to the truth, which pins the annotators who labelled them.
    prior_counts: Dirichlet pseudo-counts added to every annotator's counts in the M-step, shape (k, k)
    or (n_annotators, k, k); default 0.01 everywhere, only to keep the logs finite.
    item_priors: per-item prior over classes (e.g. model probabilities ** weight), replacing the
    learned class prevalence.
    pooled_strength: a hierarchical prior: that many more pseudo-labels per row, spread like the average
    (over annotators, not labels, so a prolific spammer does not set it) confusion of the annotator's
    group (`groups[a]`, e.g. crowd vs expert; default one group). An annotator seen on few items is
    then read like a typical one of its group rather than like the fixed prior.
    initial: posteriors to start from (a warm start after a few labels more); default majority vote.
    Stops when no posterior moves more than `tol`.
    """
    k = k_of(classes)
    rows = np.asarray(labels, dtype=np.int64).reshape(-1, 3)
    item_idx, ann_idx, cls_idx = rows[:, 0], rows[:, 1], rows[:, 2]
    if rows.size:
        _check_range("item", item_idx, n_items)
        _check_range("annotator", ann_idx, n_annotators)
        _check_range("class", cls_idx, k)
    pseudo = np.full((k, k), 0.01) if prior_counts is None else np.asarray(prior_counts, dtype=float)
    gold_items = np.fromiter(gold.keys(), dtype=np.int64, count=len(gold)) if gold else np.zeros(0, dtype=np.int64)
    gold_classes = np.fromiter(gold.values(), dtype=np.int64, count=len(gold)) if gold else np.zeros(0, dtype=np.int64)
    if gold_items.size:
        _check_range("gold item", gold_items, n_items)
        _check_range("gold class", gold_classes, k)
    log_item_priors = None
    if item_priors is not None:
        priors = np.maximum(np.asarray(item_priors, dtype=float), MODEL_PROBABILITY_FLOOR)
        log_item_priors = np.log(priors / priors.sum(axis=1, keepdims=True))
    group_of = np.zeros(n_annotators, dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    n_groups = int(group_of.max(initial=0)) + 1
    group_size = np.bincount(group_of, minlength=n_groups).astype(float)

    def clamp(post: np.ndarray) -> np.ndarray:
        if gold_items.size:
            post[gold_items] = 0.0
            post[gold_items, gold_classes] = 1.0
        return post

    if initial is not None:
        post = clamp(np.array(initial, dtype=float).reshape(n_items, k))
    else:
        post = clamp(majority_posteriors(item_idx, cls_idx, n_items, k))
    flat_given = ann_idx * k + cls_idx
    confusions = np.empty((n_annotators, k, k))
    for _ in range(iterations):
        # M-step: counts[a, t, g] = Σ over a's labels g of post[item, t].
        counts = np.empty((n_annotators, k, k))
        for t in range(k):
            counts[:, t, :] = np.bincount(flat_given, weights=post[item_idx, t], minlength=n_annotators * k).reshape(
                n_annotators, k
            )
        counts += pseudo
        if pooled_strength > 0 and n_annotators:
            own = counts / counts.sum(axis=2, keepdims=True)
            typical = np.zeros((n_groups, k, k))
            np.add.at(typical, group_of, own)
            typical /= np.maximum(group_size, 1.0)[:, None, None]
            counts += pooled_strength * typical[group_of]
        confusions = counts / counts.sum(axis=2, keepdims=True)
        log_confusions = np.log(np.maximum(confusions, CONFUSION_FLOOR))
        if log_item_priors is None:
            prevalence = post.sum(axis=0) + 1.0
            log_prior = np.broadcast_to(np.log(prevalence / prevalence.sum()), (n_items, k))
        else:
            log_prior = log_item_priors
        # E-step: log post[i, t] = log prior + Σ over i's labels (a, g) of log C_a[t, g].
        log_post = np.array(log_prior, dtype=float) + labels_log_likelihood(rows, log_confusions, n_items)
        new_post = clamp(normalise_log(log_post))
        change = float(np.max(np.abs(new_post - post))) if n_items else 0.0
        post = new_post
        if change < tol:
            break
    return post, confusions


def _check_range(name: str, values: np.ndarray, size: int) -> None:
    bad = np.flatnonzero((values < 0) | (values >= size))
    if bad.size:
        raise ValueError(f"{name} index {int(values[bad[0]])} at row {int(bad[0])} is outside 0..{size - 1}")


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
    (routing.reliabilities.project_reliabilities_estimate) both build it here, so they estimate alike."""
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
