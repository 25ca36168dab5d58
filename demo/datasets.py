"""The demo's content as plain data: two projects with real model predictions, and the demo people.

Pure and seeded (no ORM): `manage.py seed_demo` turns this into rows through the same services the API
uses. Both data sets ship inside scikit-learn, so nothing is downloaded. The models are trained on a
training split and predict the held-out items, so the confidences are genuinely spread: most items are
easy, and a real tail is uncertain or wrong (see docs/demo.md for the measured figures).

Every item row is in the ingest wire format (README, "Wire format"):
{"external_id", "data", "metadata", "domain", "language", "predictions": [...], "gold"?}.
"""
from __future__ import annotations

import base64
import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from routing.engine.types import Comparison, PolicyConfig, Trigger

DEFAULT_SEED = 7


GOLD_SHARE = 0.15


PROBABILITY_DECIMALS = 6


DIGITS_SLUG = "handwritten-digits"


BIOPSY_SLUG = "biopsy-records"


DEMO_PROJECT_SLUGS = (DIGITS_SLUG, BIOPSY_SLUG)


# Training sizes: the weak first model sees few examples, so its confidences are spread wide; the
# second sees three times as many, so the two versions also disagree on some items.
DIGITS_TRAIN_WEAK = 150


DIGITS_TRAIN = 450


BIOPSY_TRAIN = 170


@dataclass(frozen=True)
class DemoDomain:
    path: str
    name: str


@dataclass(frozen=True)
class DemoProject:
    slug: str
    name: str
    data_type: str  # labeling.models.DataType value
    instructions: str
    classes: tuple[dict[str, str], ...]  # [{"name", "hotkey"}] in display order
    decision_factors: tuple[str, ...]
    domains: tuple[DemoDomain, ...]  # parents before children
    rows: tuple[dict[str, Any], ...]  # wire-format item rows
    # external_id -> the true label of every row (gold or not): the simulated history labels from it.
    truth: Mapping[str, str] = field(default_factory=dict)
    # Project.field_visibility: who sees each restricted item field on their labeling work.
    field_visibility: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(c["name"] for c in self.classes)


@dataclass(frozen=True)
class DemoShift:
    """A weekly shift in the person's local time (weekday 0 = Monday); end <= start crosses midnight."""

    weekday: int
    start: str  # "HH:MM"
    end: str

    @property
    def times(self) -> tuple[int, dt.time, dt.time]:
        """(weekday, start, end) as the roster takes a shift (experts.services.expert_create, ShiftSpec)."""
        return self.weekday, dt.time.fromisoformat(self.start), dt.time.fromisoformat(self.end)


@dataclass(frozen=True)
class DemoPerson:
    username: str
    password: str
    role: str  # "admin" | "expert" | "crowd" | "reviewer" | "stakeholder"
    display_name: str
    time_zone: str = "UTC"
    languages: tuple[str, ...] = ()
    capacity: int = 0
    expertise: tuple[tuple[str, int], ...] = ()  # (domain path, proficiency 1-5)
    shifts: tuple[DemoShift, ...] = ()

    @property
    def on_roster(self) -> bool:
        """Experts, crowd annotators and reviewers get an Expert roster row; admin and stakeholder do not."""
        return self.role in {"expert", "crowd", "reviewer"}


WEEKDAYS = (0, 1, 2, 3, 4)


ALL_DAYS = (0, 1, 2, 3, 4, 5, 6)


def _weekly(days: Sequence[int], start: str, end: str) -> tuple[DemoShift, ...]:
    return tuple(DemoShift(weekday=d, start=start, end=end) for d in days)


# Shifts are local time. On weekdays the four experts cover every UTC hour between them:
# dr.alan (Kolkata 07-15 = 01:30-09:30 UTC), dr.ada (Berlin 08-17 = 06/07-15/16 UTC),
# dr.grace (New York 09-18 = 13/14-22/23 UTC), dr.maria (Sao Paulo 14-23 = 17-02 UTC); dr.maria's
# Sunday evening covers the first UTC hours of Monday.
DEMO_PEOPLE: tuple[DemoPerson, ...] = (
    DemoPerson(username="admin", password="admin", role="admin", display_name="Admin"),
    DemoPerson(
        username="dr.ada",
        password="expert",
        role="expert",
        display_name="Dr. Ada Brandt",
        time_zone="Europe/Berlin",
        languages=("de", "en"),
        capacity=8,
        expertise=(("medical/oncology", 5), ("medical", 4), ("medical/radiology", 3)),
        shifts=_weekly(WEEKDAYS, "08:00", "17:00"),
    ),
    DemoPerson(
        username="dr.grace",
        password="expert",
        role="expert",
        display_name="Dr. Grace Whitfield",
        time_zone="America/New_York",
        languages=("en", "fr"),
        capacity=6,
        expertise=(("finance/cheques", 5), ("finance/cheques/amounts", 5), ("postal/zip-codes", 3)),
        shifts=_weekly(WEEKDAYS, "09:00", "18:00") + _weekly((5,), "10:00", "14:00"),
    ),
    DemoPerson(
        username="dr.alan",
        password="expert",
        role="expert",
        display_name="Dr. Alan Iyer",
        time_zone="Asia/Kolkata",
        languages=("en",),
        capacity=6,
        expertise=(("postal/zip-codes", 5), ("finance/cheques/amounts", 4), ("medical/radiology", 4)),
        shifts=_weekly(WEEKDAYS, "07:00", "15:00") + _weekly((5,), "09:00", "13:00"),
    ),
    DemoPerson(
        username="dr.maria",
        password="expert",
        role="expert",
        display_name="Dr. Maria Oliveira",
        time_zone="America/Sao_Paulo",
        languages=("pt-BR", "en", "fr"),
        capacity=6,
        expertise=(("medical/oncology", 4), ("postal", 4), ("finance/cheques", 3)),
        shifts=_weekly(WEEKDAYS, "14:00", "23:00") + _weekly((6,), "17:00", "23:00"),
    ),
    DemoPerson(
        username="crowd1",
        password="crowd",
        role="crowd",
        display_name="Crowd annotator 1",
        time_zone="America/Sao_Paulo",
        languages=("pt-BR", "en"),
        capacity=20,
        expertise=(("postal", 2), ("finance", 2)),
        shifts=_weekly(ALL_DAYS, "08:00", "20:00"),
    ),
    DemoPerson(
        username="crowd2",
        password="crowd",
        role="crowd",
        display_name="Crowd annotator 2",
        time_zone="Asia/Kolkata",
        languages=("en",),
        capacity=20,
        expertise=(("postal", 2), ("medical", 1)),
        shifts=_weekly(ALL_DAYS, "08:00", "20:00"),
    ),
    DemoPerson(
        username="crowd3",
        password="crowd",
        role="crowd",
        display_name="Crowd annotator 3",
        time_zone="Europe/Berlin",
        languages=("de", "en", "fr"),
        capacity=20,
        expertise=(("finance", 2), ("medical", 2)),
        shifts=_weekly(ALL_DAYS, "07:00", "19:00"),
    ),
    DemoPerson(
        username="crowd4",
        password="crowd",
        role="crowd",
        display_name="Crowd annotator 4",
        time_zone="America/New_York",
        languages=("en", "fr"),
        capacity=20,
        expertise=(("postal", 2), ("finance", 1)),
        shifts=_weekly(ALL_DAYS, "16:00", "02:00"),
    ),
    DemoPerson(
        username="reviewer",
        password="reviewer",
        role="reviewer",
        display_name="Rita Reviewer",
        time_zone="Europe/Berlin",
        languages=("en", "de", "fr"),
        capacity=10,
        expertise=(("postal", 4), ("finance", 4), ("medical", 3)),
        shifts=_weekly(WEEKDAYS, "09:00", "18:00"),
    ),
    DemoPerson(username="stakeholder", password="stakeholder", role="stakeholder", display_name="Sam Stakeholder"),
)


def build_demo(*, seed: int = DEFAULT_SEED, max_items: int | None = None) -> tuple[DemoProject, ...]:
    """Both demo projects; `max_items` caps the rows per project (a prefix of the uncapped rows)."""
    return (
        digits_project(seed=seed, max_items=max_items),
        biopsy_project(seed=seed, max_items=max_items),
    )


def digits_project(*, seed: int = DEFAULT_SEED, max_items: int | None = None) -> DemoProject:
    """Handwritten digits (scikit-learn's bundled 8x8 scans), predicted by two logistic regressions."""
    digits = load_digits()
    images = digits.images  # (n, 8, 8), ink 0..16
    features = digits.data / 16.0
    target = digits.target
    held_out = _cap(_split(seed, len(target), DIGITS_TRAIN)[1], max_items)

    classes = tuple(str(d) for d in range(10))
    models = _digits_models(seed)
    probabilities = {
        version: _class_probabilities(model, features[held_out], classes)
        for version, model in models
    }

    # One generator per attribute, each from the seed, so adding an attribute never reshuffles another.
    domain_rng, language_rng, batch_rng, tag_rng, gold_rng = _streams(seed, 5)
    n = len(held_out)
    domains = domain_rng.choice(
        ["postal/zip-codes", "finance/cheques", "finance/cheques/amounts"], size=n, p=[0.55, 0.25, 0.20]
    )
    languages = language_rng.choice(["en", "de", "fr", "pt-BR"], size=n, p=[0.45, 0.25, 0.15, 0.15])
    batches = batch_rng.integers(1, 13, size=n)
    tag_draw = tag_rng.random(n)
    wrong_tags = tag_rng.integers(1, 10, size=n)
    gold = gold_rng.random(n) < GOLD_SHARE

    rows = []
    truth: dict[str, str] = {}
    for i, index in enumerate(held_out):
        label = int(target[index])
        domain = str(domains[i])
        metadata: dict[str, Any] = {
            "source": "postal-scan" if domain.startswith("postal") else "cheque-scan",
            "batch": f"b-{batches[i]:02d}",
        }
        # The scanner's own OCR tag: usually right, sometimes wrong (a metadata conflict), sometimes absent.
        if tag_draw[i] < 0.88:
            metadata["scanner_tag"] = str(label)
        elif tag_draw[i] < 0.96:
            metadata["scanner_tag"] = str((label + int(wrong_tags[i])) % 10)
        row: dict[str, Any] = {
            "external_id": f"digit-{index:04d}",
            "data": {
                "image": digit_svg_data_uri(images[index]),
                "caption": f"Scan {index:04d}, batch {metadata['batch']}",
            },
            "metadata": metadata,
            "domain": domain,
            "language": str(languages[i]),
            "predictions": [
                {
                    "model_name": "digits-classifier",
                    "model_version": version,
                    "probabilities": probabilities[version][i],
                }
                for version, _ in models
            ],
        }
        if gold[i]:
            row["gold"] = str(label)
        rows.append(row)
        truth[row["external_id"]] = str(label)

    return DemoProject(
        slug=DIGITS_SLUG,
        name="Handwritten digits",
        data_type="image",
        instructions=(
            "Which digit is written in the scan? Judge the ink, not the scanner tag. "
            "Hotkeys: 1-9 for digits 1-9, and 0 for digit 0. Tick 'smudge' or 'cropped' when the scan "
            "itself is damaged, 'ambiguous stroke' when the writing could honestly be two digits."
        ),
        classes=tuple({"name": c, "hotkey": c} for c in classes),
        decision_factors=("ambiguous stroke", "smudge", "cropped"),
        # The scanner's OCR guess would anchor the crowd's answer; experts and reviewers weigh it.
        field_visibility={"metadata.scanner_tag": ("expert", "reviewer")},
        domains=(
            DemoDomain("postal", "Postal"),
            DemoDomain("postal/zip-codes", "ZIP codes"),
            DemoDomain("finance", "Finance"),
            DemoDomain("finance/cheques", "Cheques"),
            DemoDomain("finance/cheques/amounts", "Cheque amounts"),
        ),
        rows=tuple(rows),
        truth=truth,
    )


BIOPSY_FEATURES = (
    # (column in load_breast_cancer, record key, decimals)
    ("mean radius", "mean_radius", 2),
    ("mean texture", "mean_texture", 2),
    ("mean perimeter", "mean_perimeter", 1),
    ("mean area", "mean_area", 0),
    ("mean smoothness", "mean_smoothness", 4),
    ("mean compactness", "mean_compactness", 4),
    ("mean concavity", "mean_concavity", 4),
    ("mean concave points", "mean_concave_points", 4),
)


def biopsy_project(*, seed: int = DEFAULT_SEED, max_items: int | None = None) -> DemoProject:
    """Breast-biopsy cell measurements (scikit-learn's bundled Wisconsin set), one logistic regression.

    The model sees only the eight measurements the record shows, rounded as shown, so an expert
    reviewing a record has exactly the model's evidence in front of them.
    """
    shown, target, class_of_target = _biopsy_dataset()
    held_out = _cap(_split(seed + 1, len(target), BIOPSY_TRAIN)[1], max_items)

    classes = ("malignant", "benign")
    model = _biopsy_model(seed)
    probabilities = _class_probabilities(model, shown[held_out], classes)

    domain_rng, language_rng, site_rng, referral_rng, gold_rng = _streams(seed + 1, 5)
    n = len(held_out)
    domains = domain_rng.choice(["medical/oncology", "medical/radiology"], size=n, p=[0.8, 0.2])
    languages = language_rng.choice(["en", "de"], size=n, p=[0.7, 0.3])
    sites = site_rng.choice(["north", "south", "east"], size=n)
    referral_draw = referral_rng.random(n)
    gold = gold_rng.random(n) < GOLD_SHARE

    rows = []
    truth: dict[str, str] = {}
    for i, index in enumerate(held_out):
        label = class_of_target[int(target[index])]
        record = {}
        for j, (_, key, places) in enumerate(BIOPSY_FEATURES):
            value = float(shown[index, j])
            record[key] = int(value) if places == 0 else value
        other = "benign" if label == "malignant" else "malignant"
        # The referring clinician's impression: a second, fallible opinion in the metadata.
        impression = label if referral_draw[i] < 0.8 else other
        row: dict[str, Any] = {
            "external_id": f"biopsy-{index:04d}",
            "data": record,
            "metadata": {"source": "fna-cytology", "site": str(sites[i]), "referral_impression": impression},
            "domain": str(domains[i]),
            "language": str(languages[i]),
            "predictions": [
                {"model_name": "biopsy-classifier", "model_version": "biopsy-lr-1", "probabilities": probabilities[i]}
            ],
        }
        if gold[i]:
            row["gold"] = label
        rows.append(row)
        truth[row["external_id"]] = label

    return DemoProject(
        slug=BIOPSY_SLUG,
        name="Biopsy records",
        data_type="record",
        instructions=(
            "Is the fine-needle aspirate malignant or benign, judging by the cell-nucleus measurements? "
            "Hotkeys: 1 malignant, 2 benign. Tick 'borderline measurement' when a value sits at the edge "
            "of its usual range, 'conflicting features' when measurements point different ways."
        ),
        classes=({"name": "malignant", "hotkey": "1"}, {"name": "benign", "hotkey": "2"}),
        decision_factors=("borderline measurement", "conflicting features"),
        domains=(
            DemoDomain("medical", "Medical"),
            DemoDomain("medical/oncology", "Oncology"),
            DemoDomain("medical/radiology", "Radiology"),
        ),
        rows=tuple(rows),
        truth=truth,
    )


# Each project's escalation policy, published before its items arrive so routing splits them three ways
# with reasons that read well: confident items are accepted, uncertain ones go to the crowd, and the
# ones a crowd cannot settle (or whose metadata contradicts the model) go straight to an expert.
DEMO_POLICIES: Mapping[str, PolicyConfig] = {
    DIGITS_SLUG: PolicyConfig(
        metadata_conflict_field="scanner_tag",
        triggers=(Trigger("entropy", Comparison.GT, 0.6, "high_entropy"),),
        crowd_overlap=2,
        max_crowd_labels=4,
        gold_check_rate=0.08,
        sla_hours=24.0,
    ),
    BIOPSY_SLUG: PolicyConfig(
        metadata_conflict_field="referral_impression",
        triggers=(Trigger("margin", Comparison.LT, 0.5, "narrow_margin"),),
        crowd_overlap=2,
        max_crowd_labels=5,
        gold_check_rate=0.08,
        sla_hours=24.0,
    ),
}


DEMO_POLICY_NOTES: Mapping[str, str] = {
    DIGITS_SLUG: "Demo policy: a scanner tag contradicting the model, or a prediction spread over many digits "
    "(normalised entropy > 0.6), goes straight to an expert.",
    BIOPSY_SLUG: "Demo policy: a record the model does not clearly separate (margin < 0.5), or whose referral "
    "impression contradicts the model, goes straight to an expert.",
}


# Share of labeled items a reviewer re-checks besides every expert label.
DEMO_REVIEW_SAMPLE_RATE: Mapping[str, float] = {DIGITS_SLUG: 0.0, BIOPSY_SLUG: 0.0}


def digit_svg_data_uri(image: np.ndarray) -> str:
    """An 8x8 ink grid (values 0..16) as an inline SVG data URI: dark squares on white, no PIL needed."""
    height, width = image.shape
    cells = []
    for y in range(height):
        for x in range(width):
            ink = float(image[y, x])
            if ink <= 0:
                continue
            grey = "0123456789abcdef"[15 - round(min(ink, 16.0) * 15 / 16)]
            cells.append(f'<rect x="{x}" y="{y}" width="1" height="1" fill="#{grey * 3}"/>')
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width * 16}" '
        f'height="{height * 16}" shape-rendering="crispEdges">'
        f'<rect width="{width}" height="{height}" fill="#fff"/>{"".join(cells)}</svg>'
    )
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("ascii")).decode("ascii")


def normalized_probabilities(values: Sequence[float], classes: Sequence[str]) -> dict[str, float]:
    """Class -> probability rounded to 6 decimals, renormalised so the rounded values sum to 1 within 1e-6.

    Rounding each value alone can leave the sum up to n/2 * 1e-6 off; the leftover goes to the largest
    value, which is the one it distorts least.
    """
    array = np.clip(np.asarray(values, dtype=float), 0.0, None)
    total = array.sum()
    if len(array) != len(classes) or total <= 0:
        raise ValueError(f"need one non-negative value per class ({len(classes)}), not all zero; got {list(values)}")
    rounded = np.round(array / total, PROBABILITY_DECIMALS)
    top = int(np.argmax(rounded))
    rounded[top] = round(rounded[top] + (1.0 - rounded.sum()), PROBABILITY_DECIMALS)
    return {str(c): float(p) for c, p in zip(classes, rounded)}


def top_probabilities(rows: Sequence[dict[str, Any]], model_version: str) -> np.ndarray:
    """The top-class probability of each row's prediction by `model_version` (rows without one skipped)."""
    tops = [
        max(p["probabilities"].values())
        for row in rows
        for p in row.get("predictions", ())
        if p["model_version"] == model_version
    ]
    return np.asarray(tops, dtype=float)


def confidence_summary(project: DemoProject) -> dict[str, dict[str, float]]:
    """Per model version: items, share with top probability > 0.95 and < 0.7, and accuracy on gold rows."""
    versions = sorted({p["model_version"] for row in project.rows for p in row["predictions"]})
    summary = {}
    for version in versions:
        tops = top_probabilities(project.rows, version)
        hits = [
            max(p["probabilities"], key=p["probabilities"].get) == row["gold"]
            for row in project.rows
            if "gold" in row
            for p in row["predictions"]
            if p["model_version"] == version
        ]
        summary[version] = {
            "items": float(len(tops)),
            "confident_share": float((tops > 0.95).mean()) if len(tops) else 0.0,
            "uncertain_share": float((tops < 0.7).mean()) if len(tops) else 0.0,
            "gold_accuracy": float(np.mean(hits)) if hits else float("nan"),
        }
    return summary


def _split(seed: int, size: int, train_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, held-out indices) of a seeded permutation."""
    order = np.random.default_rng(seed).permutation(size)
    return order[:train_size], order[train_size:]


# Training is the slow part and depends only on the seed, so fitted models are kept per process (they
# are only ever asked to predict, never refitted).
@functools.lru_cache(maxsize=4)
def _digits_models(seed: int) -> tuple[tuple[str, Any], ...]:
    digits = load_digits()
    features, target = digits.data / 16.0, digits.target
    train, _ = _split(seed, len(target), DIGITS_TRAIN)
    weak = train[:DIGITS_TRAIN_WEAK]
    return (
        ("digits-lr-1", _logistic(features[weak], target[weak])),
        ("digits-lr-2", _logistic(features[train], target[train])),
    )


def _biopsy_dataset() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(the eight shown measurements, rounded as shown; target; class name of each target value)."""
    cancer = load_breast_cancer()
    names = list(cancer.feature_names)
    columns = [names.index(column) for column, _, _ in BIOPSY_FEATURES]
    shown = np.column_stack(
        [np.round(cancer.data[:, c], places) for c, (_, _, places) in zip(columns, BIOPSY_FEATURES)]
    )
    # load_breast_cancer: target 0 = malignant, 1 = benign (cancer.target_names).
    return shown, cancer.target, [str(name) for name in cancer.target_names]


@functools.lru_cache(maxsize=4)
def _biopsy_model(seed: int) -> Any:
    shown, target, class_of_target = _biopsy_dataset()
    train, _ = _split(seed + 1, len(target), BIOPSY_TRAIN)
    return _logistic(shown[train], np.array([class_of_target[t] for t in target[train]]))


def _cap(indices: np.ndarray, max_items: int | None) -> np.ndarray:
    if max_items is None:
        return indices
    if max_items < 1:
        raise ValueError(f"max_items must be at least 1, got {max_items}")
    return indices[:max_items]


def _streams(seed: int, count: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(count)]


def _logistic(features: np.ndarray, labels: np.ndarray):
    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)).fit(features, labels)


def _class_probabilities(model, features: np.ndarray, classes: Sequence[str]) -> list[dict[str, float]]:
    """predict_proba re-ordered to `classes` (a class missing from training gets probability 0)."""
    raw = model.predict_proba(features)
    known = [str(c) for c in model.classes_]
    rows = []
    for values in raw:
        by_class = dict(zip(known, values))
        rows.append(normalized_probabilities([by_class.get(c, 0.0) for c in classes], classes))
    return rows
