"""The labeling pages: the queue, and the labeling and review panels.

Views stay thin: they parse the form, call one service, and render what the page selectors return.
Submitting an item answers an htmx request with the next item's panel (and pushes its URL), a plain
form post with a redirect to it, so the queue also works without JavaScript.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import push_url

from core import access
from labeling.models import Project
from routing.models import Assignment, AssignmentStatus
from work import claims, submissions
from work import page_selectors as work_page_selectors
from work import selectors as work_selectors
from work.exceptions import AssignmentConflict, AssignmentInvalid, AssignmentNotFound

# Named when these pages were routing's; kept, so pages open at the move still submit.
STARTED_SALT = "routing.work.started"


# A panel left open longer than this has its start forgotten: the time spent is then not recorded.
STARTED_MAX_AGE = dt.timedelta(hours=12)


NOT_FOUND = "No such item in your queue."


def _scope_project(request: HttpRequest, slug: str) -> Project | None:
    """The project a queue page is scoped to (None: all of the person's), when they label in it."""
    if not slug:
        access.require(request, access.LABEL)
        return None
    project = get_object_or_404(Project, slug=slug)
    access.require(request, access.LABEL, project_id=project.pk)
    return project


def _work_url(assignment: Assignment, scope: str) -> str:
    url = reverse("work:work", args=[assignment.pk])
    return f"{url}?{urlencode({'scope': scope})}" if scope else url


def _queue_url(scope: str) -> str:
    return reverse("work:project_queue", args=[scope]) if scope else reverse("work:queue")


def _started_token(assignment: Assignment, now: dt.datetime) -> str:
    # Signed, so the start the server rendered cannot be moved back to claim more time spent.
    return signing.dumps({"a": assignment.pk, "t": now.timestamp()}, salt=STARTED_SALT)


def _started_at(token: str, assignment_id: int) -> dt.datetime | None:
    try:
        value = signing.loads(token, salt=STARTED_SALT, max_age=STARTED_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(value, dict) or value.get("a") != assignment_id:
        return None
    return dt.datetime.fromtimestamp(float(value["t"]), tz=dt.UTC)


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _assignment_or_404(request: HttpRequest, assignment_id: int) -> Assignment:
    """The person's own assignment; 404 for anyone else's (as for one that does not exist), 403 for
    someone who does not label at all."""
    try:
        return work_selectors.assignment_for_user(assignment_id=assignment_id, user=request.user)
    except AssignmentNotFound as exc:
        access.require(request, access.LABEL)
        raise Http404(NOT_FOUND) from exc


def _panel_context(request: HttpRequest, assignment: Assignment | None, *, scope: str, now: dt.datetime,
                   started: str = "", **extra: Any) -> dict[str, Any]:
    """`started`: the start token the panel was sent with, kept when it is this assignment's (a panel shown
    again with errors), so the time spent counts from when the item first appeared."""
    context: dict[str, Any] = {"scope": scope, "queue_url": _queue_url(scope), "nav": "queue", **extra}
    if assignment is not None:
        context["panel"] = work_page_selectors.work_panel(assignment=assignment, user=request.user)
        kept = started and _started_at(started, assignment.pk) is not None
        context["started"] = started if kept else _started_token(assignment, now)
    return context


def _panel_response(request: HttpRequest, assignment: Assignment | None, *, scope: str, status: int = 200,
                    **extra: Any) -> HttpResponse:
    """The panel of `assignment` (None: the "queue done" panel), whole page or htmx partial."""
    now = timezone.now()
    context = _panel_context(request, assignment, scope=scope, now=now, **extra)
    partial = request.htmx and not request.htmx.history_restore_request
    template = "work/_work_panel.html" if partial else "work/work.html"
    return render(request, template, {**context, "partial": partial}, status=status)


def _next_assignment(request: HttpRequest, scope: str) -> Assignment | None:
    """The item to open next: one the person already holds, else a newly claimed one."""
    project = _scope_project(request, scope)
    held = work_page_selectors.held_assignment(user=request.user, project=project, now=timezone.now())
    return held or claims.assignment_claim_next(user=request.user, project=project)


def _next_response(request: HttpRequest, *, scope: str, status_message: str) -> HttpResponse:
    """After a submit, decline or review: the next item in the same scope, or the queue if none is left."""
    following = _next_assignment(request, scope)
    if not request.htmx:
        messages.success(request, status_message)
        return redirect(_work_url(following, scope) if following else _queue_url(scope))
    response = _panel_response(request, following, scope=scope, status_message=status_message)
    return push_url(response, _work_url(following, scope) if following else _queue_url(scope))


def _error_response(request: HttpRequest, assignment: Assignment, *, scope: str, status: int,
                    posted: dict[str, Any], errors: dict[str, list[str]] | None = None,
                    conflict: str = "") -> HttpResponse:
    """The same panel again, with what the person entered and what was wrong with it."""
    return _panel_response(
        request, assignment, scope=scope, status=status, errors=errors or {}, conflict=conflict, posted=posted,
        started=request.POST.get("started", ""),
    )


# Fields the panel shows errors beside; errors on any other field are listed at the top of the form.
SHOWN_ERROR_FIELDS = frozenset({"label", "rationale", "factors", "confidence", "verdict", "reason"})


def _errors_by_field(exc: AssignmentInvalid) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for name, messages_ in exc.errors.items():
        if name in SHOWN_ERROR_FIELDS:
            errors[name] = list(messages_)
        else:
            errors.setdefault("form", []).extend(f"{name}: {m}" for m in messages_)
    return errors


def _failed(request: HttpRequest, assignment: Assignment,
            exc: AssignmentNotFound | AssignmentConflict | AssignmentInvalid, *, scope: str,
            posted: dict[str, Any], renamed: Mapping[str, str] | None = None) -> HttpResponse:
    """The answer to a failed action on an assignment: 404 when it is gone (or someone else's), else the
    same panel again with what was posted: 409 when no longer open, 400 with errors by field (`renamed`
    names a form's fields apart from the service's)."""
    if isinstance(exc, AssignmentNotFound):
        raise Http404(NOT_FOUND) from exc
    if isinstance(exc, AssignmentConflict):
        return _error_response(request, assignment, scope=scope, status=409, posted=posted, conflict=str(exc))
    errors = {(renamed or {}).get(k, k): v for k, v in _errors_by_field(exc).items()}
    return _error_response(request, assignment, scope=scope, status=400, posted=posted, errors=errors)


def _time_spent_ms(reported: str | None, started_at: dt.datetime | None, now: dt.datetime) -> int | None:
    """The browser's timer, never more than the server's own clock measured since it rendered the panel
    (the service bounds it again by the claim). Without a timer (no JavaScript) the server's measure."""
    value = _int_or_none(reported)
    if started_at is None:
        return value
    server_ms = max(0, int((now - started_at) / dt.timedelta(milliseconds=1)))
    return server_ms if value is None else max(0, min(value, server_ms))


@login_required
@require_GET
def queue(request: HttpRequest, slug: str = "") -> HttpResponse:
    """The person's work: counts per project (assigned, due soon, overdue) and their open assignments."""
    project = _scope_project(request, slug)
    now = timezone.now()
    projects = [project] if project is not None else work_page_selectors.queue_projects(user=request.user)
    rows = [
        {"project": p, "summary": work_selectors.queue_summary(user=request.user, project=p, now=now)}
        for p in projects
    ]
    total = work_selectors.queue_summary(user=request.user, project=project, now=now)
    return render(request, "work/queue.html", {
        "project": project,
        "rows": rows,
        "total": total,
        "open_assignments": work_page_selectors.open_assignments(user=request.user, project=project, now=now),
        "scope": slug,
        "nav": "queue",
    })


@login_required
@require_POST
def queue_start(request: HttpRequest) -> HttpResponse:
    """"Start labeling": open the next item of the person's queue (claiming it)."""
    scope = request.POST.get("scope", "")
    assignment = _next_assignment(request, scope)
    if assignment is None:
        messages.info(request, "Nothing is waiting for you right now.")
        return redirect(_queue_url(scope))
    return redirect(_work_url(assignment, scope))


@login_required
@vary_on_headers("HX-Request")
@require_GET
def work(request: HttpRequest, assignment_id: int) -> HttpResponse:
    """The labeling (or review) page of one of the person's assignments; anyone else's answers 404."""
    assignment = _assignment_or_404(request, assignment_id)
    scope = request.GET.get("scope", "")
    if assignment.status not in (AssignmentStatus.ACTIVE, AssignmentStatus.OFFERED):
        messages.info(request, "That item is no longer open for you.")
        return redirect(_queue_url(scope))
    return _panel_response(request, assignment, scope=scope)


@login_required
@require_POST
def submit(request: HttpRequest, assignment_id: int) -> HttpResponse:
    assignment = _assignment_or_404(request, assignment_id)
    scope = request.POST.get("scope", "")
    post = request.POST
    posted = {
        "label": post.get("label", ""),
        "rationale": post.get("rationale", ""),
        "factors": post.getlist("factors"),
        "confidence": post.get("confidence", ""),
        "unsure": post.get("unsure") == "on",
    }
    now = timezone.now()
    started_at = _started_at(post.get("started", ""), assignment.pk)
    try:
        annotation = submissions.assignment_submit(
            assignment_id=assignment.pk,
            user=request.user,
            label=posted["label"],
            rationale=posted["rationale"],
            factors=tuple(posted["factors"]),
            confidence=_int_or_none(posted["confidence"]),
            time_spent_ms=_time_spent_ms(post.get("time_spent_ms"), started_at, now),
            unsure=posted["unsure"],
            started_at=started_at,
            now=now,
        )
    except (AssignmentNotFound, AssignmentConflict, AssignmentInvalid) as exc:
        return _failed(request, assignment, exc, scope=scope, posted=posted)
    return _next_response(
        request, scope=scope, status_message=f"Saved “{annotation.label}” for {assignment.item.external_id}."
    )


@login_required
@require_POST
def decline(request: HttpRequest, assignment_id: int) -> HttpResponse:
    assignment = _assignment_or_404(request, assignment_id)
    scope = request.POST.get("scope", "")
    reason = request.POST.get("reason", "")
    posted = {"reason_decline": reason}
    try:
        submissions.assignment_decline(assignment_id=assignment.pk, user=request.user, reason=reason)
    except (AssignmentNotFound, AssignmentConflict, AssignmentInvalid) as exc:
        # The decline form's reason box is not the review form's: name its errors apart.
        return _failed(request, assignment, exc, scope=scope, posted=posted, renamed={"reason": "reason_decline"})
    return _next_response(request, scope=scope, status_message=f"Declined {assignment.item.external_id}.")


@login_required
@require_POST
def review(request: HttpRequest, assignment_id: int) -> HttpResponse:
    assignment = _assignment_or_404(request, assignment_id)
    scope = request.POST.get("scope", "")
    verdict = request.POST.get("verdict", "")
    posted = {k: request.POST.get(k, "") for k in ("verdict", "label", "reason")}
    try:
        result = submissions.review_submit(
            assignment_id=assignment.pk,
            user=request.user,
            verdict=verdict,
            label=posted["label"] if verdict == "override" else "",
            reason=posted["reason"],
        )
    except (AssignmentNotFound, AssignmentConflict, AssignmentInvalid) as exc:
        return _failed(request, assignment, exc, scope=scope, posted=posted)
    said = "Agreed with" if result.verdict == "agree" else "Overrode with"
    return _next_response(
        request, scope=scope, status_message=f"{said} “{result.label}” on {assignment.item.external_id}."
    )
