"""Who may see the dashboards: stakeholders (the "stakeholders" group), staff and superusers. Only staff
see people's names next to their figures; everyone else sees "Annotator N"."""
from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission

STAKEHOLDER_GROUP = "stakeholders"


def can_view_dashboards(user: Any) -> bool:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return user.is_staff or user.is_superuser or user.groups.filter(name=STAKEHOLDER_GROUP).exists()


def sees_names(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False) and (user.is_staff or user.is_superuser))


class CanViewDashboards(BasePermission):
    message = f'Dashboards are for staff and members of the "{STAKEHOLDER_GROUP}" group.'

    def has_permission(self, request, view) -> bool:
        return can_view_dashboards(request.user)
