"""Who may see and do what: the one place that answers it, by role and project membership.

A request's `principal` (its role, the projects it is a member of) is read once per request by
workbench.middleware.AccessMiddleware (labeling.memberships.principal_for); everything here is pure and
decides from it. Views and the API call `require` (or use `Allows` as a DRF permission), templates read
the `access` context variable (`context`), and URL_RULES names the rule behind every URL, which
tests/test_access_matrix.py checks against the running views for every role.

Roles, highest first (a person has one):
  staff        is_staff or superuser: everything, every project, the fields projects hide, the admin.
  crowd / expert / reviewer
               on the labeling roster (experts.Expert.role): claim and label in their projects; never
               routing evidence (trails, decisions, next-to-label), which would bias their own labels.
  stakeholder  in the "stakeholders" group: dashboards, trails and decisions of their projects.
  pipeline     signed in with an API token, neither staff nor on the roster nor a stakeholder: reads
               decisions and next-to-label of its projects (a training pipeline).
  none         signed in without any of these: the home page, which says so.
  anonymous    not signed in (or inactive): the login page.
Item fields follow the project's field_visibility: a field listed there is shown, on one's own labeling
work, only to the roles it names (crowd, expert, reviewer), and in reads outside that work (trails,
decisions, next-to-label) to staff only; a field not listed is shown to everyone who sees the item.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from rest_framework.permissions import BasePermission

STAKEHOLDER_GROUP = "stakeholders"


class Role(StrEnum):
    STAFF = "staff"
    STAKEHOLDER = "stakeholder"
    REVIEWER = "reviewer"
    EXPERT = "expert"
    CROWD = "crowd"
    PIPELINE = "pipeline"
    NONE = "none"
    ANONYMOUS = "anonymous"


ROSTER_ROLES = frozenset({Role.CROWD, Role.EXPERT, Role.REVIEWER})


@dataclass(frozen=True)
class Principal:
    """Who is asking. `projects`: ids of the projects they are a member of (ignored for staff);
    `labels`: on the roster and active (staff may be on the roster too, and then label)."""

    role: Role
    user_id: int | None = None
    projects: frozenset[int] = frozenset()
    labels: bool = False

    def member_of(self, project_id: int) -> bool:
        return self.role == Role.STAFF or project_id in self.projects


ANONYMOUS = Principal(role=Role.ANONYMOUS)


@dataclass(frozen=True)
class Rule:
    """Who may reach something: `roles`, plus (`labelers`) anyone who labels; with `members_only`, and a
    project in question, only its members (staff are members of every project)."""

    name: str
    roles: frozenset[Role]
    message: str
    members_only: bool = False
    labelers: bool = False

    def allows(self, principal: Principal, project_id: int | None = None) -> bool:
        if not (principal.role in self.roles or (self.labelers and principal.labels)):
            return False
        if project_id is None or not self.members_only:
            return True
        return principal.member_of(project_id)


_SIGNED_IN = frozenset(Role) - {Role.ANONYMOUS}

PUBLIC = Rule("public", frozenset(Role), "")
SIGNED_IN = Rule("signed in", _SIGNED_IN, "Sign in first.")
PROJECT_READ = Rule(
    "project reader", _SIGNED_IN, "Projects are shown to their members and staff.", members_only=True
)
ADMINISTER = Rule("staff", frozenset({Role.STAFF}), "Only staff may do this.")
LABEL = Rule(
    "labeler",
    frozenset(),
    "Only active roster members (crowd, expert, reviewer) label, in projects they are members of.",
    members_only=True,
    labelers=True,
)
DASHBOARDS = Rule(
    "dashboards", frozenset({Role.STAFF, Role.STAKEHOLDER}),
    f'Dashboards are for staff and members of the "{STAKEHOLDER_GROUP}" group, for the projects they are members of.',
    members_only=True,
)
EVIDENCE = Rule(
    "routing evidence", frozenset({Role.STAFF, Role.STAKEHOLDER, Role.PIPELINE}),
    "Trails and decisions are for staff, stakeholders and API token clients (pipelines) of the project; "
    "annotators do not see routing evidence.",
    members_only=True,
)


# Who an item field can be shown to on labeling work (Project.field_visibility names some of them).
FIELD_AUDIENCES: tuple[Role, ...] = (Role.CROWD, Role.EXPERT, Role.REVIEWER)
# The role whose view a kind of work presents ("review" work is the reviewer's).
_WORK_AUDIENCE = {"crowd": Role.CROWD, "expert": Role.EXPERT, "review": Role.REVIEWER}


def fields_hidden_from_work(field_visibility: Mapping[str, Iterable[str]], *, work_kind: str) -> list[str]:
    """The item fields the panel (and the API payload) of one's own `work_kind` work ("crowd", "expert",
    "review") leaves out: those whose audience does not name the work's role. Decided by the work as
    presented, not by the person's roster role, so a gold check (presented as crowd work) shows exactly
    what crowd work shows; any other kind of work is shown no restricted field."""
    audience = _WORK_AUDIENCE.get(work_kind)
    return [path for path, roles in field_visibility.items() if audience is None or audience not in set(roles)]


def fields_hidden_from_reader(principal: Principal, field_visibility: Mapping[str, Iterable[str]]) -> list[str]:
    """The item fields left out of reads outside one's own labeling work (trails, decisions,
    next-to-label): none for staff; for everyone else every field not shown to all of FIELD_AUDIENCES."""
    if principal.role == Role.STAFF:
        return []
    return [path for path, roles in field_visibility.items() if not set(FIELD_AUDIENCES) <= set(roles)]


def sees_names(principal: Principal) -> bool:
    """Staff see annotators' names beside their figures; everyone else sees "Annotator N"."""
    return principal.role == Role.STAFF


def dashboard_project_ids(principal: Principal) -> frozenset[int] | None:
    """The projects the dashboards cover for this person: None (every project) for staff."""
    return None if principal.role == Role.STAFF else principal.projects


# The rule behind every URL, by URL name ("namespace:" covers a whole namespace). A URL missing here fails
# tests/test_access_matrix.py, so a new page cannot go out without a decision about who reaches it.
URL_RULES: Mapping[str, Rule] = {
    "home": SIGNED_IN,
    "login": PUBLIC,
    "logout": PUBLIC,
    "admin:": ADMINISTER,
    "former_admin:": ADMINISTER,  # the audit log's admin pages at their address before they moved
    "schema": PUBLIC,
    "api-docs": PUBLIC,
    # labeling
    "labeling:import": ADMINISTER,
    "labeling:project_import": ADMINISTER,
    "labeling:import_job": ADMINISTER,
    "labeling:import_job_progress": ADMINISTER,
    "api-project-list": SIGNED_IN,  # members see their projects; creating one is ADMINISTER
    "api-project-detail": PROJECT_READ,
    "api-project-members": ADMINISTER,
    "api-project-member": ADMINISTER,
    "api-item-list": ADMINISTER,
    "api-item-detail": ADMINISTER,
    "api-export": ADMINISTER,
    # routing
    "routing:trail": EVIDENCE,
    "routing:item_trail": EVIDENCE,
    "item-decisions": EVIDENCE,
    "next-to-label": EVIDENCE,
    "audit-export": ADMINISTER,
    # work: someone else's assignment answers 404, as one that does not exist
    "work:queue": LABEL,
    "work:queue_start": LABEL,
    "work:project_queue": LABEL,
    "work:work": LABEL,
    "work:submit": LABEL,
    "work:decline": LABEL,
    "work:review": LABEL,
    "assignment-next": LABEL,
    "assignment-submit": LABEL,
    "assignment-decline": LABEL,
    "assignment-review": LABEL,
    # dashboards
    "dashboards:index": DASHBOARDS,
    "dashboards:project": DASHBOARDS,
    "items:search": DASHBOARDS,
    "dashboard-metric": DASHBOARDS,
}


def url_rule(url_name: str) -> Rule | None:
    """The rule of a URL name, or of its namespace; None when there is none (a gap the tests catch)."""
    if url_name in URL_RULES:
        return URL_RULES[url_name]
    namespace, sep, _ = url_name.partition(":")
    return URL_RULES.get(namespace + sep) if sep else None


def principal_of(request: Any) -> Principal:
    """The request's principal, set by workbench.middleware.AccessMiddleware."""
    try:
        return request.principal
    except AttributeError:
        raise ImproperlyConfigured("workbench.middleware.AccessMiddleware must be in MIDDLEWARE.") from None


def require(request: Any, rule: Rule, *, project_id: int | None = None) -> Principal:
    """The request's principal when `rule` allows it (for `project_id` when given); else PermissionDenied
    with the rule's message (a 403 page, or the API's JSON 403)."""
    principal = principal_of(request)
    if not rule.allows(principal, project_id):
        raise PermissionDenied(_denial(rule, principal, project_id))
    return principal


def _denial(rule: Rule, principal: Principal, project_id: int | None) -> str:
    if project_id is not None and rule.allows(principal):
        return "You are not a member of this project; ask an administrator to add you."
    return rule.message


def Allows(rule: Rule) -> type[BasePermission]:  # noqa: N802 (used like a class in permission_classes)
    """A DRF permission class for `rule`, checked for the role only (the view checks membership once it
    has the project, with `require`)."""

    class _Allows(BasePermission):
        message = rule.message

        def has_permission(self, request: Any, view: Any) -> bool:
            return rule.allows(principal_of(request))

    _Allows.__name__ = f"Allows[{rule.name}]"
    return _Allows


@dataclass(frozen=True)
class TemplateAccess:
    """What the page templates may show this person (the `access` context variable)."""

    principal: Principal

    @property
    def role(self) -> str:
        return self.principal.role.value

    @property
    def administers(self) -> bool:
        return ADMINISTER.allows(self.principal)

    @property
    def labels(self) -> bool:
        return LABEL.allows(self.principal)

    @property
    def dashboards(self) -> bool:
        return DASHBOARDS.allows(self.principal)

    @property
    def evidence(self) -> bool:
        return EVIDENCE.allows(self.principal)


def context(request: Any) -> dict[str, Any]:
    """Template context processor: `access` (TemplateAccess) for every page."""
    principal = getattr(request, "principal", None)
    return {"access": TemplateAccess(principal if principal is not None else ANONYMOUS)}
