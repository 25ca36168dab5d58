"""How the demo's people behave in the simulated history: their accuracy, how much they label, the
rationales and decline reasons they write."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from demo.datasets import BIOPSY_SLUG, DIGITS_SLUG


@dataclass(frozen=True)
class DemoWorker:
    """How a demo person behaves in the simulated history: how often they give the true label."""

    username: str
    accuracy: float


# Crowd annotators of mixed quality (crowd4 is noisy, which reliability estimation should find out), experts
# who are right nearly always, and a careful reviewer.
HISTORY_CROWD = (
    DemoWorker("crowd1", 0.93),
    DemoWorker("crowd2", 0.88),
    DemoWorker("crowd3", 0.82),
    DemoWorker("crowd4", 0.62),
)


HISTORY_EXPERTS = (
    DemoWorker("dr.ada", 0.97),
    DemoWorker("dr.grace", 0.96),
    DemoWorker("dr.alan", 0.95),
    DemoWorker("dr.maria", 0.94),
)


HISTORY_REVIEWER = DemoWorker("reviewer", 0.97)


# How much work each round of a past week does (demo.history): crowd labels as a share of the open crowd
# slots, reviews as a share of the open review slots; expert labels as a share of the escalated items, drawn
# per week from HISTORY_EXPERT_PACE in the first rounds (slow weeks miss more SLA deadlines) and
# HISTORY_EXPERT_SHARE in the week's last round. Some of every week stays open, and today's batch gets
# TODAY_CROWD_SHARE of its crowd slots done and no expert work, so every queue has work waiting when the demo
# starts.
HISTORY_CROWD_SHARE = 0.7


HISTORY_EXPERT_PACE = (0.3, 0.8)


HISTORY_EXPERT_SHARE = 0.9


HISTORY_REVIEW_SHARE = 0.7


TODAY_CROWD_SHARE = 0.5


RATIONALES: Mapping[str, tuple[str, ...]] = {
    DIGITS_SLUG: (
        "The loop closes at the top; the stroke below it is the tail of a {label}.",
        "Stroke count and the open bottom fit a {label}, not the model's guess.",
        "Ignoring the smudge, the ink outline is a {label}.",
        "The scanner tag disagrees, but the shape is clearly a {label}.",
    ),
    BIOPSY_SLUG: (
        "Concave points and concavity are both high for this radius: {label}.",
        "Smooth, compact nuclei of ordinary area read {label}.",
        "Perimeter and area are borderline, but texture settles it: {label}.",
        "Measurements are consistent with the referral impression: {label}.",
    ),
}


DECLINE_REASONS = ("Outside my sub-speciality; someone closer to it should take this.", "Conflict of interest.")


def simulated_label(*, truth: str, classes: Sequence[str], accuracy: float, rng: np.random.Generator) -> str:
    """The label a worker of this accuracy gives: the truth, or else a uniformly drawn wrong class."""
    if rng.random() < accuracy:
        return truth
    wrong = [c for c in classes if c != truth]
    return str(wrong[int(rng.integers(len(wrong)))]) if wrong else truth


def rationale(slug: str, label: str, rng: np.random.Generator) -> str:
    templates = RATIONALES[slug]
    return templates[int(rng.integers(len(templates)))].format(label=label)
