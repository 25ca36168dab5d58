"""Workbench state for page and browser tests, built through the real services (no fixtures files).

A "Support tickets" project whose policy sends items flagged `metadata.escalate` to an expert and
everything else unsure to the crowd; a roster with an expert, two crowd annotators and a reviewer; an
admin and a stakeholder (view permissions, like seed_demo's stakeholders group).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from experts.models import Role
from experts.services import expert_create
from labeling.models import Project
from labeling.services import items_ingest, project_create
from routing import services
from routing.engine.types import FeatureRule, PolicyConfig

PASSWORD = "pw-for-tests"
CLASSES = ("billing", "bug", "feature")
FACTORS = ("sarcasm", "jargon", "missing context")
UNSURE = {"billing": 0.45, "bug": 0.35, "feature": 0.20}
ESCALATION_REASON = "flagged_for_expert"


@dataclass
class Workbench:
    project: Project
    users: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, username: str) -> Any:
        return self.users[username]


def make_user(username: str, **extra: Any) -> Any:
    return get_user_model().objects.create_user(username=username, password=PASSWORD, **extra)


def ticket_row(external_id: str, text: str, *, escalate: bool, **metadata: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"channel": "email", "customer_email": f"{external_id}@customer.example", **metadata}
    if escalate:
        meta["escalate"] = "yes"
    return {
        "external_id": external_id,
        "data": {"text": text},
        "metadata": meta,
        "language": "en",
        "predictions": [{"model_name": "ticket-clf", "model_version": "v3", "probabilities": UNSURE}],
    }


def build_workbench(
    *,
    expert_texts: tuple[str, ...] = (),
    crowd_texts: tuple[str, ...] = (),
    gold_check_rate: float = 0.0,
    review_sample_rate: float = 0.0,
) -> Workbench:
    admin = make_user("admin", is_staff=True, is_superuser=True)
    project = project_create(
        name="Support tickets",
        slug="tickets",
        classes=list(CLASSES),
        instructions="Which team should answer the ticket?",
        decision_factors=list(FACTORS),
        hidden_fields=["metadata.customer_email"],
        review_sample_rate=review_sample_rate,
        actor=admin,
    )
    policy = services.policy_for_project(project)
    config = dataclasses.replace(
        PolicyConfig(),
        feature_rules=(FeatureRule("metadata.escalate", "present", None, ESCALATION_REASON, "expert"),),
        gold_check_rate=gold_check_rate,
    )
    services.policy_version_publish(policy=policy, config=config, author=admin, change_note="page tests")
    users = {"admin": admin}
    for username, role in (("expert", Role.EXPERT), ("crowd1", Role.CROWD), ("crowd2", Role.CROWD),
                           ("reviewer", Role.REVIEWER)):
        users[username] = make_user(username, first_name=username.title())
        expert_create(user=users[username], display_name=username.title(), role=role, capacity=20, languages=["en"])
    users["stakeholder"] = make_user("stakeholder")
    users["stakeholder"].user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    rows = [ticket_row(f"exp-{i}", text, escalate=True) for i, text in enumerate(expert_texts)]
    rows += [ticket_row(f"crowd-{i}", text, escalate=False) for i, text in enumerate(crowd_texts)]
    if rows:
        items_ingest(project=project, rows=rows, actor=admin)
    return Workbench(project=project, users=users)
