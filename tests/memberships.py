"""Project membership as an upgraded database has it (labeling migration 0004): everyone on the roster,
every stakeholder and every non-staff API token holder on every project. Builders call it after adding
people or projects, so tests about something else are not about membership; tests about membership
build their own."""

from django.contrib.auth import get_user_model
from django.db.models import Q

from core.access import STAKEHOLDER_GROUP
from labeling.memberships import memberships_ensure
from labeling.models import Project


def members_everywhere() -> int:
    users = get_user_model().objects.filter(
        Q(expert__isnull=False) | Q(groups__name=STAKEHOLDER_GROUP) | Q(auth_token__isnull=False, is_staff=False)
    ).distinct()
    return memberships_ensure(projects=list(Project.objects.all()), users=list(users))
