"""Re-measuring people: gold and agreement counts per roster member (ranking reads them), each project's
annotator confusion matrices and class prior by the engine's learner (routing reads them), and the
consensus recheck after every refit. Run by the hourly accuracy_refresh job."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from experts.models import Domain, Expert, Role
from experts.services import expert_accuracy_record
from labeling.models import (
    Annotation,
    FinalSource,
    GoldLabel,
    Item,
    ItemStatus,
    Prediction,
    Project,
)
from routing import inputs
from routing.engine import aggregation
from routing.engine.policy import evaluate
from routing.engine.reliability import reliability_learner
from routing.engine.temperature import temperature_changed
from routing.engine.types import AnnotatorReliability, Outcome, Stage

# The assignment errors are part of this module's interface: callers catch services.AssignmentNotFound etc.
from routing.models import AnnotatorReliability as AnnotatorReliabilityRow
from routing.policies import live_config, policy_for_project
from routing.services import items_route


def annotator_reliabilities_save(
    *, project: Project, reliabilities: Iterable[AnnotatorReliability]
) -> list[AnnotatorReliabilityRow]:
    """Store the project's current reliability estimates (one row per annotator, replaced in place)."""
    rows = [
        AnnotatorReliabilityRow(
            project=project,
            annotator_id=r.annotator_id,
            classes=list(project.class_names),
            confusion=[list(row) for row in r.confusion],
            n_observations=r.n_observations,
            updated_at=timezone.now(),
        )
        for r in reliabilities
    ]
    n = len(project.class_names)
    for row in rows:
        if len(row.confusion) != n or any(len(r) != n for r in row.confusion):
            raise ValidationError(
                f"annotator {row.annotator_id}: confusion must be {n}x{n} for {project.slug}'s classes"
            )
    with transaction.atomic():
        return AnnotatorReliabilityRow.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["project", "annotator"],
            update_fields=["classes", "confusion", "n_observations", "updated_at"],
        )


@dataclass(frozen=True)
class AccuracyRefreshResult:
    accuracy_rows: int
    reliabilities: Mapping[str, int]  # project slug -> annotators estimated
    rechecked: Mapping[str, int] = dataclasses.field(default_factory=dict)  # project slug -> items routed again


def _accuracy_counts(*, now: dt.datetime) -> dict[tuple[int, int | None], dict[str, int]]:
    """(user id, domain id or None for overall) -> gold and agreement counts over annotations submitted up
    to `now`, by SQL aggregation.

    gold: annotations on items with a gold label, correct when the label equals it.
    agreement: annotations on items with a final label and no gold label, correct when equal to the final
    label, leaving out expert and reviewer annotations on items whose final label came from an expert: there
    the annotation usually *is* the final label, and agreeing with oneself measures nothing.
    """
    counts: dict[tuple[int, int | None], dict[str, int]] = defaultdict(
        lambda: {"gold_correct": 0, "gold_total": 0, "agreement_correct": 0, "agreement_total": 0}
    )
    on_roster = Annotation.objects.filter(annotator__expert__isnull=False, submitted_at__lte=now)
    gold = (
        on_roster.filter(item__gold__isnull=False)
        .values("annotator_id", "item__domain_id")
        .annotate(total=Count("id"), correct=Count("id", filter=Q(label=F("item__gold__label"))))
        .order_by()
    )
    agreement = (
        on_roster.filter(item__gold__isnull=True)
        .exclude(item__final_label="")
        .exclude(role__in=[Role.EXPERT, Role.REVIEWER], item__final_source=FinalSource.EXPERT)
        .values("annotator_id", "item__domain_id")
        .annotate(total=Count("id"), correct=Count("id", filter=Q(label=F("item__final_label"))))
        .order_by()
    )
    for kind, rows in (("gold", gold), ("agreement", agreement)):
        for row in rows:
            user_id, domain_id = row["annotator_id"], row["item__domain_id"]
            # Every annotation counts overall; those on items with a domain also count in that domain.
            for key in [(user_id, None)] + ([(user_id, domain_id)] if domain_id is not None else []):
                counts[key][f"{kind}_total"] += row["total"]
                counts[key][f"{kind}_correct"] += row["correct"]
    return counts


@dataclass(frozen=True)
class ProjectEstimate:
    reliabilities: list[AnnotatorReliability]  # by annotator id
    class_prior: tuple[float, ...]  # the classes' prevalence among labeled items; () without labels
    model_temperature: float | None = None  # fitted when the live policy learns it and there is evidence


def project_reliabilities_estimate(*, project: Project, now: dt.datetime) -> ProjectEstimate:
    """The annotators' confusion matrices from the project's annotations submitted up to `now`, by the
    pilot's learner (simulation.reliability_learner, the same settings the replay uses):
    MAP Dawid-Skene with the gold labels pinned, each item's latest prediction as its prior (to the live
    policy's model_prior_weight), and each annotator's rows drawn towards the live policy's prior accuracy
    for their role and towards the average of their role's annotators. So live routing reads reliabilities
    estimated exactly as the replay that calibrated its thresholds estimated them."""
    classes = project.class_names
    k = len(classes)
    if k < 2:
        return ProjectEstimate([], ())
    class_index = {name: i for i, name in enumerate(classes)}
    config = live_config(project)
    learn = reliability_learner(k, config)
    item_ids: set[int] = set()
    expert_tier: set[int] = set()
    rows = []
    for item_id, annotator_id, label, role in (
        Annotation.objects.filter(item__project=project, submitted_at__lte=now)
        .order_by()
        .values_list("item_id", "annotator_id", "label", "role")
        .iterator(chunk_size=10_000)
    ):
        if label in class_index:
            rows.append((item_id, annotator_id, class_index[label]))
            item_ids.add(item_id)
            # An annotator who ever labeled as an expert or reviewer is judged against the expert prior.
            if role in aggregation.EXPERT_ROLES:
                expert_tier.add(annotator_id)
    if not rows:
        return ProjectEstimate([], ())
    if config.learn_model_temperature:
        # The next fit starts from what routing reads now, as the replay's learner keeps its last fit.
        policy = getattr(project, "escalation_policy", None)
        learn.start_temperature(policy.model_temperature if policy is not None else None)
    for item_id, annotator_id, given in rows:
        learn.add_label(item_id, annotator_id, given, role="expert" if annotator_id in expert_tier else "crowd")
    if config.learn_model_temperature:
        # Gold items nobody labeled still show what the model's probabilities are worth.
        item_ids.update(GoldLabel.objects.filter(item__project=project).values_list("item_id", flat=True))
    ids = sorted(item_ids)
    for chunk in inputs.chunked(ids):
        for item_id, label in GoldLabel.objects.filter(item_id__in=chunk).values_list("item_id", "label"):
            if label in class_index:
                learn.set_truth(item_id, class_index[label])
        if config.model_prior_weight or config.learn_model_temperature:
            latest: dict[int, Mapping[str, float]] = {}
            # Oldest first, so the last one kept per item is its latest prediction.
            for item_id, probabilities in (
                Prediction.objects.filter(item_id__in=chunk)
                .order_by("item_id", "created_at", "id")
                .values_list("item_id", "probabilities")
            ):
                latest[item_id] = probabilities
            for item_id, probabilities in latest.items():
                vector = [max(float(probabilities.get(c, 0.0)), 0.0) for c in classes]
                if sum(vector) > 0:
                    learn.set_model_prior(item_id, vector)
    reliabilities = sorted(learn.refit().values(), key=lambda r: r.annotator_id)
    return ProjectEstimate(reliabilities, learn.class_prior(), learn.model_temperature())


def class_prior_save(*, project: Project, class_prior: Sequence[float]) -> None:
    """Store the project's learned class prior with the classes it is for (routing reads it)."""
    policy = policy_for_project(project)
    policy.class_prior = {"classes": list(project.class_names), "prior": list(class_prior)}
    policy.save(update_fields=["class_prior"])


def model_temperature_save(*, project: Project, temperature: float | None) -> bool:
    """Store the model's newly fitted temperature (routing reads it); True when it moved enough that the
    labels accepted from the model deserve another look (temperature.temperature_changed)."""
    policy = policy_for_project(project)
    before = policy.model_temperature
    if temperature is None or temperature == before:
        return False
    policy.model_temperature = temperature
    policy.save(update_fields=["model_temperature"])
    return temperature_changed(before, temperature)


def consensus_recheck(*, project: Project, now: dt.datetime, model_labels: bool = False) -> int:
    """When the live policy asks for it (consensus_recheck), route again the project's items labeled by
    consensus whose decision the current estimates change: a label accepted on reliabilities that have
    since been revised asks for more labels or changes, as the pilot's replay does after every refit.
    `model_labels` (the model's temperature moved, and the policy learns it): the items labeled by the
    model too. Returns how many items were routed again (stage "recheck")."""
    config = live_config(project)
    sources = [FinalSource.CONSENSUS] if config.consensus_recheck else []
    if model_labels and config.learn_model_temperature:
        sources.append(FinalSource.MODEL)
    if not sources:
        return 0
    ids = list(
        Item.objects.filter(project=project, status=ItemStatus.LABELED, final_source__in=sources)
        .order_by("id")
        .values_list("id", flat=True)
    )
    changed = []
    for chunk in inputs.chunked(ids):
        for loaded in inputs.route_inputs(item_ids=chunk):
            decision = evaluate(loaded.item_input, config, loaded.reliabilities)
            if decision.outcome != Outcome.ACCEPT or decision.final_label != loaded.item.final_label:
                changed.append(loaded.item.id)
    if changed:
        items_route(item_ids=changed, stage=Stage.RECHECK, now=now)
    return len(changed)


def accuracy_refresh(*, now: dt.datetime | None = None) -> AccuracyRefreshResult:
    """Re-measure people: per roster member and domain (and overall) gold and agreement counts stored with
    experts.services.expert_accuracy_record (ranking reads them), and per project the annotators' confusion
    matrices by Dawid-Skene saved with annotator_reliabilities_save (routing reads them). Only annotations
    submitted up to `now` count."""
    now = now or timezone.now()
    counts = _accuracy_counts(now=now)
    experts = dict(Expert.objects.filter(user_id__in={u for u, _ in counts}).values_list("user_id", "id"))
    expert_rows = {e.pk: e for e in Expert.objects.filter(id__in=experts.values())}
    domains = {d.pk: d for d in Domain.objects.filter(id__in={d for _, d in counts if d is not None})}
    written = 0
    for (user_id, domain_id), figures in sorted(counts.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        expert_accuracy_record(
            expert=expert_rows[experts[user_id]],
            domain=domains[domain_id] if domain_id is not None else None,
            **figures,
        )
        written += 1
    estimated: dict[str, int] = {}
    rechecked: dict[str, int] = {}
    for project in Project.objects.filter(items__annotations__isnull=False).distinct().order_by("id"):
        estimate = project_reliabilities_estimate(project=project, now=now)
        if estimate.reliabilities:
            annotator_reliabilities_save(project=project, reliabilities=estimate.reliabilities)
            class_prior_save(project=project, class_prior=estimate.class_prior)
            moved = model_temperature_save(project=project, temperature=estimate.model_temperature)
            rechecked[project.slug] = consensus_recheck(project=project, now=now, model_labels=moved)
        estimated[project.slug] = len(estimate.reliabilities)
    return AccuracyRefreshResult(accuracy_rows=written, reliabilities=estimated, rechecked=rechecked)
