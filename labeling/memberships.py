"""Project membership: who is on which project (writes, audited), and the request's principal for
core.access (its role and the projects it is a member of)."""
from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from rest_framework.authtoken.models import Token

from core.access import ANONYMOUS, STAKEHOLDER_GROUP, Principal, Role
from core.audit import audit_record
from experts.models import Expert
from labeling.models import Project, ProjectMembership


def principal_for(*, user: Any, auth: Any = None) -> Principal:
    """Who `user` is to core.access: staff; else their roster role (active or not: someone off duty is
    still an annotator); else a stakeholder (the group); else a pipeline when the request came with an
    API token (`auth`); else nobody in particular. Three small queries at most, once per request."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return ANONYMOUS
    roster = Expert.objects.filter(user_id=user.pk).values_list("role", "active").first()
    labels = roster is not None and roster[1]
    if user.is_staff or user.is_superuser:
        return Principal(role=Role.STAFF, user_id=user.pk, labels=labels)
    projects = frozenset(ProjectMembership.objects.filter(user_id=user.pk).values_list("project_id", flat=True))
    if roster is not None:
        role = Role(roster[0])
    elif user.groups.filter(name=STAKEHOLDER_GROUP).exists():
        role = Role.STAKEHOLDER
    elif isinstance(auth, Token):
        role = Role.PIPELINE
    else:
        role = Role.NONE
    return Principal(role=role, user_id=user.pk, projects=projects, labels=labels)


def project_members(*, project: Project) -> QuerySet[ProjectMembership]:
    return ProjectMembership.objects.filter(project=project).select_related("user").order_by("user__username")


def projects_of(*, user_id: int) -> QuerySet[Project]:
    return Project.objects.filter(memberships__user_id=user_id).order_by("name", "id")


def membership_add(*, project: Project, user: Any, actor: Any = None) -> tuple[ProjectMembership, bool]:
    """Put `user` on `project` (nothing changes when they are already on it): (membership, created)."""
    with transaction.atomic():
        membership, created = ProjectMembership.objects.get_or_create(project=project, user=user)
        if created:
            audit_record(
                actor=actor, action="project.member_add", obj_type="project", obj_id=project.pk,
                data={"user": user.get_username(), "user_id": user.pk},
            )
    return membership, created


def membership_remove(*, project: Project, user: Any, actor: Any = None) -> bool:
    """Take `user` off `project`; False when they were not on it. Work they hold stays theirs until it is
    completed, declined or its lease runs out; they claim nothing new there."""
    with transaction.atomic():
        deleted, _ = ProjectMembership.objects.filter(project=project, user=user).delete()
        if deleted:
            audit_record(
                actor=actor, action="project.member_remove", obj_type="project", obj_id=project.pk,
                data={"user": user.get_username(), "user_id": user.pk},
            )
    return bool(deleted)


def memberships_ensure(*, projects: list[Project], users: list[Any], actor: Any = None) -> int:
    """Every user in `users` on every project in `projects` (the demo's people): how many were added."""
    return sum(membership_add(project=p, user=u, actor=actor)[1] for p in projects for u in users)
