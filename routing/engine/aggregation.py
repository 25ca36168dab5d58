"""Label aggregation: the posterior over classes from the model prior and annotators' confusion matrices.

A confusion matrix `C` for an annotator has `C[t, g]` = P(annotator gives g | true class t); rows sum to 1.
For one item with model probabilities `p` and labels g_1..g_n from annotators a_1..a_n:

    posterior(t) ∝ p(t) ** model_weight * Π_j C_{a_j}[t, g_j]

(`model_weight` 0, or no prediction, means a uniform prior). Three ways to estimate the matrices:

* `default_confusion`: the symmetric prior for an annotator we know nothing about;
and, in `routing.engine.reliability`:
* `OnlineReliability`: Dirichlet-smoothed counts updated after every revealed label, O(k^2) per label,
  from gold (the truth is known) or from the leave-one-out posterior of the item (the annotator's own
  vote excluded, so it cannot learn to trust itself);
* `dawid_skene`: batch EM over all judgments, for the "dawid_skene_all" baseline;
* `RefitReliability`: MAP Dawid-Skene re-fitted over the labels seen so far (the pilot's learner, and the
  scheduled reliability refresh, so live routing reads what the replay learned the same way).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .types import AnnotationInput, AnnotatorReliability, ItemInput, PolicyConfig

# Model probabilities are floored before taking logs, so a model that said 0.0 can still be outvoted.
MODEL_PROBABILITY_FLOOR = 1e-6
# Confusion entries are floored the same way: no single label may make a class impossible.
CONFUSION_FLOOR = 1e-9
DEFAULT_CROWD_ACCURACY = 0.7
DEFAULT_EXPERT_ACCURACY = 0.9
# Pseudo-observations per row of the Dirichlet prior: after n labels of true class t, row t is
# (n * observed + strength * prior) / (n + strength).
DEFAULT_PRIOR_STRENGTH = 2.0
# RefitReliability's defaults, chosen on the pilot's shuffled replays of snow-rte and barzan-mozafari
# (docs/pilot.md): one pseudo-label per row towards the role's prior accuracy, four towards the average
# confusion of the annotators of the same role.
DEFAULT_REFIT_PRIOR_STRENGTH = 1.0
DEFAULT_REFIT_POOLED_STRENGTH = 4.0
EXPERT_ROLES = frozenset({"expert", "reviewer"})
# A learned class prior is stored with every decision that used it: six decimals say all it knows.
CLASS_PRIOR_DIGITS = 6


def k_of(classes: int | Sequence[str]) -> int:
    return classes if isinstance(classes, int) else len(classes)


def default_confusion(k: int, accuracy: float) -> np.ndarray:
    """Symmetric k x k confusion: `accuracy` on the diagonal, the rest spread evenly over wrong labels."""
    if k < 1:
        raise ValueError("a confusion matrix needs at least one class")
    if k == 1:
        return np.ones((1, 1))
    if not 0.0 < accuracy < 1.0:
        raise ValueError(f"prior accuracy must be strictly between 0 and 1, got {accuracy}")
    matrix = np.full((k, k), (1.0 - accuracy) / (k - 1))
    np.fill_diagonal(matrix, accuracy)
    return matrix


def prior_accuracy(role: str, *, crowd_accuracy: float, expert_accuracy: float) -> float:
    """Experts and reviewers start from the expert prior, everyone else from the crowd prior."""
    return expert_accuracy if role in EXPERT_ROLES else crowd_accuracy


def posterior(
    model_probs: Sequence[float] | np.ndarray | None,
    given: Sequence[int],
    confusions: Sequence[np.ndarray | Sequence[Sequence[float]]] | np.ndarray,
    *,
    model_weight: float = 1.0,
    k: int | None = None,
) -> np.ndarray:
    """P(true class | model prediction, labels): see the module docstring.

    `given[j]` is the class index annotator j gave and `confusions[j]` that annotator's k x k matrix.
    `k` is needed only when there is neither a prediction nor a label.
    """
    k = k if k is not None else _infer_k(model_probs, confusions)
    columns = [[float(row[label]) for row in confusion] for label, confusion in zip(given, confusions, strict=True)]
    return np.array(_posterior_from_columns(model_probs, model_weight, k, columns))


def _posterior_from_columns(
    model_probs: Any, model_weight: float, k: int, columns: Iterable[Sequence[float]]
) -> list[float]:
    # Plain floats: routing evaluates one small item at a time, where numpy's per-call cost dominates.
    log_post = log_prior_list(model_probs, model_weight, k)
    log, floor = math.log, CONFUSION_FLOOR
    for column in columns:
        for t in range(k):
            log_post[t] += log(max(column[t], floor))
    top = max(log_post)
    weights = [math.exp(x - top) for x in log_post]
    norm = math.fsum(weights)
    return [w / norm for w in weights]


def _infer_k(model_probs: Any, confusions: Sequence[Any] | np.ndarray) -> int:
    if model_probs is not None:
        return len(model_probs)
    if len(confusions):
        return len(confusions[0])
    raise ValueError("posterior needs k when there is neither a model prediction nor a label")


def log_prior_list(model_probs: Any, model_weight: float, k: int) -> list[float]:
    """`_log_prior` in plain floats, for the per-label hot path."""
    if model_probs is None or model_weight == 0:
        return [0.0] * k
    probs = [max(float(p), MODEL_PROBABILITY_FLOOR) for p in model_probs]
    log_norm = math.log(sum(probs))
    return [model_weight * (math.log(p) - log_norm) for p in probs]


def normalise_log(log_post: np.ndarray) -> np.ndarray:
    shifted = np.exp(log_post - log_post.max(axis=-1, keepdims=True))
    normalised: np.ndarray = shifted / shifted.sum(axis=-1, keepdims=True)
    return normalised


def reliability_column(
    annotation: AnnotationInput,
    given: int,
    k: int,
    reliabilities: Mapping[int, AnnotatorReliability],
    *,
    crowd_accuracy: float,
    expert_accuracy: float,
) -> list[float]:
    """Column `given` of the annotator's stored confusion, or of the role's prior when the annotator is new."""
    known = reliabilities.get(annotation.annotator_id)
    if known is None:
        if k == 1:
            return [1.0]
        accuracy = prior_accuracy(annotation.role, crowd_accuracy=crowd_accuracy, expert_accuracy=expert_accuracy)
        off = (1.0 - accuracy) / (k - 1)
        return [accuracy if t == given else off for t in range(k)]
    matrix = known.confusion
    # set(map(...)) rather than a generator: this runs for every annotation of every evaluated item.
    if len(matrix) != k or set(map(len, matrix)) != {k}:
        raise ValueError(
            f"annotator {annotation.annotator_id}: confusion matrix is not {k}x{k} like the item's {k} classes"
        )
    return [float(row[given]) for row in matrix]


def item_posterior(
    item: ItemInput,
    model_probs: Sequence[float] | None,
    annotations: Iterable[AnnotationInput],
    policy: PolicyConfig,
    reliabilities: Mapping[int, AnnotatorReliability],
) -> tuple[float, ...]:
    """Posterior over `item.classes` from a prediction vector (class order) and annotations, under `policy`."""
    k = len(item.classes)
    index = {name: i for i, name in enumerate(item.classes)}
    prior, weight = item_prior(item, model_probs, policy)
    columns = [
        reliability_column(
            a,
            index[a.label],
            k,
            reliabilities,
            crowd_accuracy=policy.crowd_prior_accuracy,
            expert_accuracy=policy.expert_prior_accuracy,
        )
        for a in annotations
    ]
    return tuple(_posterior_from_columns(prior, weight, k, columns))


def labels_log_likelihood(rows: np.ndarray, log_confusions: np.ndarray, n_items: int) -> np.ndarray:
    """(n_items, k): for every true class t, the sum over each item's labels (a, g) of log C_a[t, g].
    rows: (item, annotator, class) index triples; log_confusions: (annotators, k, k)."""
    k = log_confusions.shape[-1]
    contributions = log_confusions[rows[:, 1], :, rows[:, 2]]  # (n_labels, k)
    total = np.zeros((n_items, k))
    for t in range(k):
        total[:, t] = np.bincount(rows[:, 0], weights=contributions[:, t], minlength=n_items)
    return total


def item_prior(
    item: ItemInput, model_probs: Sequence[float] | None, policy: PolicyConfig
) -> tuple[Sequence[float] | None, float]:
    """(probabilities, weight) an item's posterior starts from: the model's prediction, else the project's
    learned class prevalence when the policy weighs it, else nothing (uniform)."""
    if model_probs is not None:
        return model_probs, policy.model_prior_weight
    if item.class_prior and policy.class_prior_weight > 0:
        return item.class_prior, policy.class_prior_weight
    return None, 0.0


def target_weight(target: Sequence[float]) -> float:
    k = len(target)
    return 0.0 if k < 2 else max(0.0, (max(target) - 1.0 / k) / (1.0 - 1.0 / k))


def soft_target_weight(target: Sequence[float] | np.ndarray) -> float:
    """How much a soft target teaches: 0 for a uniform target, 1 for a certain one, linear in its max.

    A leave-one-out target for an item nobody else has labelled is the (often flat) model prior; adding
    it at full weight would drag every annotator's accuracy towards 1/k.
    """
    return target_weight([float(x) for x in target])
