"""`manage.py seed_demo` writes the demo through the services: users, roles, roster, projects, gold."""
import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db.models import Count
from django.http import HttpRequest
from rest_framework.authtoken.models import Token

from core.models import AuditEvent
from demo import datasets as demo
from experts.models import Domain, Expert, Role
from labeling.memberships import principal_for
from labeling.models import Annotation, GoldLabel, Item, Prediction, Project, Review
from routing import selectors
from routing.models import Assignment, AssignmentKind, AssignmentStatus, RoutingDecision

ITEMS = 60

pytestmark = pytest.mark.django_db


def seed(*args: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", "--items", str(ITEMS), *args, stdout=out)
    return out.getvalue()


def counts() -> dict[str, int]:
    User = get_user_model()
    return {
        "users": User.objects.count(),
        "experts": Expert.objects.count(),
        "projects": Project.objects.count(),
        "items": Item.objects.count(),
        "predictions": Prediction.objects.count(),
        "gold": GoldLabel.objects.count(),
        "domains": Domain.objects.count(),
        "tokens": Token.objects.count(),
        "annotations": Annotation.objects.count(),
        "assignments": Assignment.objects.count(),
        "decisions": RoutingDecision.objects.count(),
    }


def test_builds_users_with_documented_logins_and_roles(client):
    seed()
    User = get_user_model()
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    for person in demo.DEMO_PEOPLE:
        user = User.objects.get(username=person.username)
        assert user.check_password(person.password), person.username
        if person.role != "admin":
            assert not user.is_staff and not user.is_superuser, person.username
    # django-axes checks every login against its lockouts, so authenticate() needs the request.
    assert client.login(request=HttpRequest(), username="dr.ada", password="expert")

    stakeholder = User.objects.get(username="stakeholder")
    assert stakeholder.groups.filter(name="stakeholders").exists()
    assert not stakeholder.has_perm("labeling.change_item")
    assert not Expert.objects.filter(user=stakeholder).exists()
    # Everyone but the admin is on every demo project, in the role core.access gives them.
    projects = set(Project.objects.filter(slug__in=demo.DEMO_PROJECT_SLUGS).values_list("pk", flat=True))
    for person in demo.DEMO_PEOPLE:
        principal = principal_for(user=User.objects.get(username=person.username))
        expected = "staff" if person.role == "admin" else person.role
        assert principal.role == expected, person.username
        assert person.role == "admin" or principal.projects == projects, person.username

    roles = dict(Expert.objects.values_list("user__username", "role"))
    assert {u for u, r in roles.items() if r == Role.EXPERT} == {"dr.ada", "dr.grace", "dr.alan", "dr.maria"}
    assert {u for u, r in roles.items() if r == Role.CROWD} == {"crowd1", "crowd2", "crowd3", "crowd4"}
    assert roles["reviewer"] == Role.REVIEWER
    ada = Expert.objects.get(user__username="dr.ada")
    assert ada.time_zone == "Europe/Berlin"
    assert ada.shifts.count() == 5
    assert ada.expertise.filter(domain__path="medical/oncology", proficiency=5).exists()


def test_builds_projects_with_valid_spread_predictions_and_a_gold_sample():
    output = seed()
    digits = Project.objects.get(slug=demo.DIGITS_SLUG)
    biopsy = Project.objects.get(slug=demo.BIOPSY_SLUG)
    assert digits.data_type == "image" and biopsy.data_type == "record"
    assert {c["name"]: c["hotkey"] for c in digits.classes}["0"] == "0"
    assert "smudge" in digits.decision_factors and "conflicting features" in biopsy.decision_factors
    assert Domain.objects.get(path="finance/cheques/amounts").parent.path == "finance/cheques"
    # The scanner's OCR guess would anchor the crowd: only experts and reviewers see it.
    assert digits.field_visibility == {"metadata.scanner_tag": ["expert", "reviewer"]}

    tops = []
    for project in (digits, biopsy):
        items = Item.objects.filter(project=project)
        assert items.count() == ITEMS
        assert items.filter(domain__isnull=True).count() == 0
        gold = GoldLabel.objects.filter(item__project=project)
        assert 0 < gold.count() < ITEMS / 2
        for prediction in Prediction.objects.filter(item__project=project):
            assert set(prediction.probabilities) == set(project.class_names)
            assert abs(sum(prediction.probabilities.values()) - 1.0) <= 1e-6
            tops.append(max(prediction.probabilities.values()))
    assert any(t > 0.95 for t in tops) and any(t < 0.7 for t in tops)
    # Two model versions on every digit: the disagreement signal has something to compare.
    assert Prediction.objects.filter(item__project=digits).values("model_version").distinct().count() == 2

    token = Token.objects.get(user__username="admin")
    assert token.key in output
    assert "dr.ada" in output and "stakeholder" in output


def test_running_again_adds_nothing():
    seed()
    before = counts()
    seed()
    assert counts() == before


def test_reset_rebuilds_the_demo_projects_only():
    seed()
    before = counts()
    old_ids = set(Project.objects.values_list("id", flat=True))
    output = seed("--reset")
    assert counts() == before
    assert not old_ids & set(Project.objects.values_list("id", flat=True))
    assert "deleted 2 demo project" in output


def test_a_larger_cap_later_adds_the_missing_items():
    seed()
    out = io.StringIO()
    call_command("seed_demo", "--items", str(ITEMS + 10), stdout=out)
    assert Item.objects.filter(project__slug=demo.DIGITS_SLUG).count() == ITEMS + 10


def test_cap_below_one_is_refused():
    with pytest.raises(CommandError, match="--items"):
        call_command("seed_demo", "--items", "0", stdout=io.StringIO())
    assert Project.objects.count() == 0


def test_demo_policy_splits_items_three_ways_with_readable_reasons():
    output = seed()
    for slug in demo.DEMO_PROJECT_SLUGS:
        project = Project.objects.get(slug=slug)
        live = project.escalation_policy.live_version
        assert live.config == demo.DEMO_POLICIES[slug].to_dict()
        first = RoutingDecision.objects.filter(item__project=project, stage="ingest")
        assert {d.policy_version_id for d in first} == {live.pk}, "items arrived before the demo policy"
        assert set(first.values_list("outcome", flat=True)) == {"accept", "crowd", "expert"}, slug
        assert "routed on arrival: accept" in output
    digits = RoutingDecision.objects.filter(item__project__slug=demo.DIGITS_SLUG, outcome="expert", stage="ingest")
    codes = {r["code"] for d in digits for r in d.reasons}
    assert codes & {"high_entropy", "metadata_conflict"}
    conflict = next(r for d in digits for r in d.reasons if r["code"] == "metadata_conflict")
    assert "scanner_tag" in conflict["evidence"] and "contradicts predicted" in conflict["evidence"]


def test_history_leaves_labels_reviews_gold_checks_and_open_work_behind():
    seed()
    by_kind = dict(
        Assignment.objects.filter(status=AssignmentStatus.COMPLETED).values_list("kind").annotate(n=Count("id"))
    )
    assert by_kind.get(AssignmentKind.CROWD, 0) > 0 and by_kind.get(AssignmentKind.EXPERT, 0) > 0
    assert by_kind.get(AssignmentKind.REVIEW, 0) > 0
    crowd = Annotation.objects.filter(role="crowd", annotator__username__startswith="crowd")
    expert = Annotation.objects.filter(role="expert")
    assert crowd.exists() and expert.exists()
    assert all(a.rationale for a in expert)
    assert Review.objects.exists()
    assert AuditEvent.objects.filter(action="assignment.decline").exists()
    # Experts' offers carry the ranking and its explanation.
    ranked = RoutingDecision.objects.exclude(expert_ranking={})
    assert ranked.exists() and all(d.expert_ranking["explanation"] for d in ranked)
    # Work is still waiting for the people who log in to the demo.
    assert Assignment.objects.filter(status=AssignmentStatus.OFFERED).exists()
    # The simulated history went through routing like real work: every decision replays.
    assert selectors.decisions_verify().mismatches == ()


def test_no_history_flag_only_ingests():
    seed("--no-history")
    assert not Annotation.objects.exists()
    assert Assignment.objects.exists()
