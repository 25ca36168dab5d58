"""The dashboard's metrics on the hand-worked scenario of builders.scenario() (see its table).

Every expected value below is worked out from that table by hand; the Wilson intervals are checked
against statsmodels' implementation.
"""
from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter, defaultdict

import pytest
from statsmodels.stats.proportion import proportion_confint

from core.audit import audit_record
from dashboards import reports, selectors
from dashboards.selectors import Scope
from dashboards.services import snapshots_refresh
from labeling.models import Annotation
from labeling.services import project_create
from routing.models import OPEN_ASSIGNMENT_STATUSES, Assignment, AssignmentKind
from tests.dashboards.builders import CONFIDENT, LATER, NOW, UNSURE, ingest_at, project, row


def build(s, name: str, **filters):
    (report,) = reports.build([name], Scope(projects=(s.project,), **filters), now=LATER)
    return report


def rows(report, table: str, key: str) -> dict:
    return {row[key]: row for row in report.table(table).rows}


def wilson(correct: int, n: int) -> tuple[float, float]:
    # statsmodels uses the exact normal quantile (1.95996...), the dashboard z = 1.96: equal to about 1e-5.
    return tuple(proportion_confint(correct, n, alpha=0.05, method="wilson"))


class TestAgreement:
    def test_overall_coefficients(self, s):
        # m1: cat, cat; m2: cat, dog, cat. pairs 2 + 6 = 8, agreeing 2 + 2 = 4 -> 0.5.
        # Fleiss: P = 1 and 1/3, P_bar = 2/3, p = (4/5, 1/5), P_e = 17/25 -> (2/3 - 17/25) / (8/25) = -1/24.
        # Krippendorff: 1 - (5 - 1) * (0 + (9 - 5) / 2) / (25 - 17) = 0.
        headline = {f.key: f.value for f in build(s, "agreement").headline}
        assert headline["items"] == 2
        assert headline["percent_agreement"] == 0.5
        assert headline["fleiss_kappa"] == pytest.approx(-1 / 24)
        assert headline["krippendorff_alpha"] == pytest.approx(0.0)

    def test_by_domain_route_and_week(self, s):
        report = build(s, "agreement")
        domains = rows(report, "agreement_by_domain", "domain")
        assert domains["pets/cats"]["percent_agreement"] == 1.0  # m1 only
        assert domains["pets/dogs"]["percent_agreement"] == pytest.approx(2 / 6)  # m2 only
        assert list(rows(report, "agreement_by_route", "route")) == ["crowd"]
        [week] = report.table("agreement_by_week").rows
        assert week["week"] == dt.date(2026, 3, 2) and week["items"] == 2
        assert week["items_filter"] == {"since": "2026-03-02", "until": "2026-03-08"}
        [day] = report.table("agreement_by_day").rows
        assert day["day"] == dt.date(2026, 3, 2) and day["items"] == 2

    def test_pairs_count_shared_items_and_their_agreement(self, s):
        c1, c2, c3 = (u.pk for u in s.crowd)
        pairs = {(r["annotator_a"], r["annotator_b"]): r for r in build(s, "agreement").table("agreement_pairs").rows}
        # c1 and c2 share m1 (cat/cat) and m2 (cat/dog); c1-c3 share m2 (cat/cat); c2-c3 m2 (dog/cat).
        assert {k: (v["shared_items"], v["percent_agreement"]) for k, v in pairs.items()} == {
            (c1, c2): (2, 0.5), (c1, c3): (1, 1.0), (c2, c3): (1, 0.0),
        }
        # Too few shared items for a kappa.
        assert {v["cohen_kappa"] for v in pairs.values()} == {None}


class TestTimeToLabel:
    def test_by_route(self, s):
        routes = rows(build(s, "time_to_label"), "time_by_route", "route")
        # auto: 0 s twice; crowd: 2 h and 3 h; expert: 5 h and 30 h (quantiles within one ~10% bin).
        assert routes["auto"]["n"] == 2 and routes["auto"]["median"] < 1
        assert routes["crowd"]["median"] == pytest.approx(2.5 * 3600, rel=0.1)
        assert routes["crowd"]["p90"] == pytest.approx(2.9 * 3600, rel=0.1)
        assert routes["expert"]["median"] == pytest.approx(17.5 * 3600, rel=0.1)
        assert routes["All"]["n"] == 6  # u3 has no label yet

    def test_annotation_time_per_item_by_role(self, s):
        roles = rows(build(s, "time_to_label"), "time_per_item_by_role", "role")
        # crowd: m1 10 + 20 = 30 s, m2 10 + 20 + 30 = 60 s; expert: 120 s and 240 s.
        assert roles["crowd"]["median"] == pytest.approx(45, rel=0.1)
        assert roles["expert"]["median"] == pytest.approx(180, rel=0.1)

    def test_sla_compliance(self, s):
        sla = rows(build(s, "time_to_label"), "sla_compliance", "domain")
        # u1 done at 5 h, u2 at 30 h, both due at 24 h.
        assert (sla["All"]["completed"], sla["All"]["within_sla"], sla["All"]["share"]) == (2, 1, 0.5)
        assert (sla["All"]["low"], sla["All"]["high"]) == pytest.approx(wilson(1, 2), rel=1e-4)
        assert sla["pets/cats"]["share"] == 1.0 and sla["pets/dogs"]["share"] == 0.0


class TestGoldAccuracy:
    def test_by_route_domain_and_class(self, s):
        report = build(s, "gold_accuracy")
        routes = rows(report, "gold_by_route", "route")
        assert {r: (v["correct"], v["n"]) for r, v in routes.items()} == {"auto": (1, 2), "crowd": (1, 2),
            "expert": (2, 2)}
        assert (routes["crowd"]["low"], routes["crowd"]["high"]) == pytest.approx(wilson(1, 2), rel=1e-4)
        domains = rows(report, "gold_by_domain", "domain")
        assert {d: (v["correct"], v["n"]) for d, v in domains.items()} == {"pets/cats": (3, 3), "pets/dogs": (1, 3)}
        classes = rows(report, "gold_by_class", "label")
        assert {c: (v["correct"], v["n"]) for c, v in classes.items()} == {"cat": (3, 3), "dog": (1, 3)}
        assert {f.key: f.value for f in report.headline}["accuracy"] == pytest.approx(4 / 6)

    def test_by_annotator(self, s):
        c1, c2, c3 = s.crowd
        people = rows(build(s, "gold_accuracy"), "gold_by_annotator", "annotator")
        # c1: m1 cat (gold cat), m2 cat (gold dog); c2: cat, dog both right; c3: m2 cat wrong; ada: both right.
        assert {k: (v["correct"], v["n"]) for k, v in people.items()} == {
            c1.pk: (1, 2), c2.pk: (2, 2), c3.pk: (0, 1), s.expert.pk: (2, 2),
        }
        assert (people[c3.pk]["low"], people[c3.pk]["high"]) == pytest.approx(wilson(0, 1), rel=1e-4)


class TestEscalationValue:
    def test_before_and_after_escalation(self, s):
        report = build(s, "escalation_value")
        accuracy = rows(report, "escalation_accuracy", "label")
        # Before escalation the posterior's top label was cat for u1 (gold dog) and u2 (gold cat).
        assert (accuracy["Before escalation (model or crowd)"]["correct"], accuracy["Expert"]["correct"]) == (1, 2)
        summary = {r["measure"]: r["value"] for r in report.table("escalation_summary").rows}
        assert summary["Escalated items"] == 3
        assert summary["Pre-escalation label equals the expert's"] == 1
        assert summary["Fixed by the expert (wrong before, right after)"] == 1
        assert summary["Broken by the expert (right before, wrong after)"] == 0

    def test_cost_per_correct_label_by_route(self, s):
        costs = rows(build(s, "escalation_value"), "cost_by_route", "route")
        # auto costs nothing; crowd: 5 labels for 1 correct gold item; expert: 2 labels x 10 for 2 correct.
        assert costs["auto"]["cost_per_correct"] == 0.0
        assert (costs["crowd"]["cost"], costs["crowd"]["cost_per_correct"], costs["crowd"]["cost_per_label"]) == (5, 5,
            2.5)
        assert (costs["expert"]["cost"], costs["expert"]["cost_per_correct"]) == (20, 10)


class TestFlow:
    def test_status_escalation_and_backlog(self, s):
        report = build(s, "flow")
        assert rows(report, "status_counts", "status") == {
            "labeled": {"status": "labeled", "items": 6, "items_filter": {"status": "labeled"}},
            "escalated": {"status": "escalated", "items": 1, "items_filter": {"status": "escalated"}},
        }
        [week] = report.table("escalation_by_week").rows
        assert (week["items"], week["escalated"]) == (7, 3)
        # One week of history: the series also goes by day, and each day links to its items.
        [day] = report.table("escalation_by_day").rows
        assert (day["day"], day["items"], day["escalated"]) == (NOW.date(), 7, 3)
        assert day["items_filter"] == {"since": "2026-03-02", "until": "2026-03-02"}
        backlog = {r["measure"]: r["value"] for r in report.table("backlog").rows}
        assert backlog["Open items (not yet labelled)"] == 1
        assert backlog["Open expert assignments"] == 1
        assert backlog["Overdue expert assignments"] == 1  # u3, due NOW+24h, looked at NOW+48h

    def test_utilisation_and_coverage(self, s):
        report = build(s, "flow")
        [ada] = report.table("expert_utilisation").rows
        assert (ada["annotator"], ada["open"], ada["capacity"]) == (s.expert.pk, 1, 50)
        gaps = rows(report, "coverage_gaps", "domain")
        assert {d: g["uncovered_hours"] for d, g in gaps.items()} == {"pets/cats": 0, "pets/dogs": 0}


class TestModelQuality:
    def test_precision_recall_f1_against_gold_and_experts(self, s):
        report = build(s, "model_quality")
        by_class = {(r["reference"], r["label"]): r for r in report.table("model_by_class").rows}
        # The model says cat for every item; gold: cat on a1, m1, u2 and dog on a2, m2, u1.
        cat = by_class[("gold", "cat")]
        assert (cat["precision"], cat["recall"], cat["f1"], cat["support"]) == (0.5, 1.0, pytest.approx(2 / 3), 3)
        assert by_class[("gold", "dog")]["recall"] == 0.0
        summary = {r["reference"]: r for r in report.table("model_summary").rows}
        assert summary["gold"]["macro_f1"] == pytest.approx(1 / 3) and summary["gold"]["accuracy"] == 0.5
        # Expert labels: u1 dog, u2 cat.
        assert summary["expert"]["n"] == 2 and summary["expert"]["accuracy"] == 0.5


class TestEffort:
    def test_work_units(self, s):
        c1, c2, c3 = s.crowd
        people = rows(build(s, "effort"), "effort", "annotator")
        # 1 unit per item, +2 per escalated item, +1 per item the crowd disagreed on (m2).
        assert {k: v["work_units"] for k, v in people.items()} == {c1.pk: 3, c2.pk: 3, c3.pk: 2, s.expert.pk: 6}
        assert people[s.expert.pk]["hours"] == pytest.approx(360 / 3600)
        assert people[c2.pk]["seconds_per_item"] == 20


class TestFilters:
    def test_domain_filter_covers_the_subtree(self, s):
        cats = rows(build(s, "gold_accuracy", domain="pets/cats"), "gold_by_route", "route")
        assert {r: (v["correct"], v["n"]) for r, v in cats.items()} == {"auto": (1, 1), "crowd": (1, 1),
            "expert": (1, 1)}
        everything = build(s, "gold_accuracy", domain="pets")
        assert {f.key: f.value for f in everything.headline}["n"] == 6

    def test_route_filter(self, s):
        report = build(s, "gold_accuracy", route="expert")
        assert list(rows(report, "gold_by_route", "route")) == ["expert"]
        # Per-annotator tables ignore the route: everyone's gold labels still count.
        assert len(report.table("gold_by_annotator").rows) == 4

    def test_route_filter_reaches_the_live_pair_query(self, s):
        # Crowd labels sit on crowd-route items only, so no pair shares an expert-route item.
        assert len(build(s, "agreement", route="crowd").table("agreement_pairs").rows) == 3
        assert build(s, "agreement", route="expert").table("agreement_pairs").rows == ()
        assert len(build(s, "agreement", domain="pets/cats").table("agreement_pairs").rows) == 1  # m1: c1, c2

    def test_date_range_outside_the_ingest_day_is_empty(self, s):
        before = build(s, "flow", until=dt.date(2026, 3, 1))
        assert before.table("status_counts").rows == ()
        assert build(s, "effort", since=dt.date(2026, 3, 3)).table("effort").rows == ()
        same_day = build(s, "flow", since=dt.date(2026, 3, 2), until=dt.date(2026, 3, 2))
        assert sum(r["items"] for r in same_day.table("status_counts").rows) == 7

    def test_week_rows_and_day_rows_agree(self, s):
        # Monday..Sunday reads the week row; Monday..Wednesday the day rows.
        week = build(s, "gold_accuracy", since=dt.date(2026, 3, 2), until=dt.date(2026, 3, 8))
        days = build(s, "gold_accuracy", since=dt.date(2026, 3, 2), until=dt.date(2026, 3, 4))
        assert week.table("gold_by_class").rows == days.table("gold_by_class").rows
        assert build(s, "effort", since=dt.date(2026, 3, 2), until=dt.date(2026, 3, 8)).table("effort").rows == (
            build(s, "effort", since=dt.date(2026, 3, 2), until=dt.date(2026, 3, 3)).table("effort").rows
        )


@pytest.mark.django_db
class TestDrift:
    def test_confidence_shift_between_windows_raises_an_alert(self, settings):
        proj = project("drifting")
        ingest_at(proj, [{"external_id": f"old-{i}", "data": {"t": i}, "predictions": [
            {"model_version": "clf-1", "probabilities": CONFIDENT}]} for i in range(3)],
                now=NOW - dt.timedelta(days=20))
        ingest_at(proj, [{"external_id": f"new-{i}", "data": {"t": i}, "predictions": [
            {"model_version": "clf-1", "probabilities": UNSURE}]} for i in range(2)], now=NOW - dt.timedelta(days=2))
        snapshots_refresh(now=NOW, full=True)
        scope = Scope(projects=(proj,), until=NOW.date())
        (report,) = reports.build(["drift"], scope, now=NOW)
        [row] = report.table("drift").rows
        # Reference: every top probability 0.97 (bin 9); recent: 0.40 (bin 4). With shares floored at 1e-4,
        # PSI = 2 * (1 - 1e-4) * ln(1 / 1e-4); the predicted class (cat) did not change.
        assert (row["reference_items"], row["recent_items"]) == (3, 2)
        assert row["psi_confidence"] == pytest.approx(2 * (1 - 1e-4) * 9.210340, rel=1e-5)
        assert row["psi_classes"] == pytest.approx(0.0)
        assert row["alert"] and len(report.alerts) == 1
        # The alert level is read on every call.
        settings.DRIFT_PSI_ALERT = 50
        (quiet,) = reports.build(["drift"], scope, now=NOW)
        assert not quiet.table("drift").rows[0]["alert"] and quiet.alerts == ()

    def test_no_reference_window_means_no_psi(self):
        proj = project("fresh")
        ingest_at(proj,
            [{"external_id": "x", "data": {}, "predictions": [{"model_version": "v", "probabilities": UNSURE}]}])
        snapshots_refresh(now=NOW, full=True)
        (report,) = reports.build(["drift"], Scope(projects=(proj,), until=NOW.date()), now=NOW)
        [row] = report.table("drift").rows
        assert row["psi_confidence"] is None and row["level"] == "not enough data" and report.alerts == ()


@pytest.mark.django_db
def test_calibration_flag_shows_the_latest_recommendation():
    proj = project("calibrated")
    audit_record(actor=None, action="calibration.recommendation", obj_type="project", obj_id=proj.pk,
                 data={"summary": "old", "recommended": {"auto_accept_min_top_probability": 0.8}})
    audit_record(actor=None, action="calibration.recommendation", obj_type="project", obj_id=proj.pk,
                 data={"summary": "Lower the auto-accept threshold to 0.85",
                     "recommended": {"auto_accept_min_top_probability": 0.85},
                       "live": {"auto_accept_min_top_probability": 0.9}})
    (report,) = reports.build(["calibration"], Scope(projects=(proj,)), now=NOW)
    [row] = report.table("calibration").rows
    assert row["summary"] == "Lower the auto-accept threshold to 0.85"
    assert row["recommended"] == "auto_accept_min_top_probability=0.85"
    assert row["live"] == "auto_accept_min_top_probability=0.9"
    assert report.alerts == ("Calibrated: Lower the auto-accept threshold to 0.85",)
    (other,) = reports.build(["calibration"], Scope(projects=(project("other"),)), now=NOW)
    assert other.table("calibration").rows == () and other.alerts == ()


@pytest.mark.django_db
def test_a_recommendation_that_matches_the_live_policy_is_shown_but_raises_no_alert():
    proj = project("steady")
    audit_record(actor=None, action="calibration.recommendation", obj_type="project", obj_id=proj.pk,
                 data={"summary": "Lower the threshold", "differs": True})
    audit_record(actor=None, action="calibration.recommendation", obj_type="project", obj_id=proj.pk,
                 data={"summary": "Live thresholds are still the best found", "differs": False})
    (report,) = reports.build(["calibration"], Scope(projects=(proj,)), now=NOW)
    [row] = report.table("calibration").rows
    assert row["summary"] == "Live thresholds are still the best found" and row["differs"] is False
    assert report.alerts == ()


@pytest.mark.django_db
class TestAcrossProjects:
    """A model version belongs to its project: the all-projects page never shows one project's model as the
    model, and a model is read against its own project's classes only."""

    @pytest.fixture
    def two(self):
        pets = project("zoo")
        fruit = project_create(name="Fruit", slug="orchard", classes=["apple", "pear"])
        # The pets model says cat where gold says dog; fruit's model, imported a day later on one gold item, is right.
        ingest_at(pets, [row(f"p{i}", CONFIDENT, gold="dog") for i in range(4)], now=NOW - dt.timedelta(days=3))
        ingest_at(fruit, [{"external_id": "f1", "data": {}, "gold": "apple", "predictions": [
            {"model_version": "clf-1", "probabilities": {"apple": 0.9, "pear": 0.1}}]}], now=NOW - dt.timedelta(days=1))
        ingest_at(fruit, [{"external_id": "f2", "data": {}, "gold": "apple", "predictions": [
            {"model_version": "imported-9", "probabilities": {"apple": 0.8, "pear": 0.2}}]}], now=NOW)
        snapshots_refresh(now=NOW, full=True)
        return pets, fruit

    def test_all_projects_show_each_projects_latest_model_and_no_single_headline_model(self, two):
        pets, fruit = two
        (report,) = reports.build(["model_quality"], Scope(projects=(fruit, pets)), now=NOW)
        headline = {f.key: f.value for f in report.headline}
        assert "macro_f1" not in headline and "accuracy" not in headline
        assert headline["projects_measured"] == 2
        by_project = {r["project"]: r for r in report.table("model_by_project").rows}
        assert (by_project["Zoo"]["model_version"], by_project["Zoo"]["accuracy"], by_project["Zoo"]["n"]) == (
            "clf-1", 0.0, 4)
        assert (by_project["Fruit"]["model_version"], by_project["Fruit"]["accuracy"]) == ("imported-9", 1.0)
        # The same version name in two projects is two models.
        versions = {(r["project"], r["model_version"]) for r in report.table("model_summary").rows}
        assert versions == {("Zoo", "clf-1"), ("Fruit", "clf-1"), ("Fruit", "imported-9")}

    def test_a_projects_page_headlines_its_own_latest_model(self, two):
        pets, _ = two
        (report,) = reports.build(["model_quality"], Scope(projects=(pets,)), now=NOW)
        headline = {f.key: f for f in report.headline}
        assert headline["macro_f1"].title == "Macro F1 on gold (clf-1)" and headline["accuracy"].value == 0.0

    def test_drift_reads_each_model_against_its_own_projects_classes(self, two):
        pets, fruit = two
        (report,) = reports.build(["drift"], Scope(projects=(fruit, pets)), now=NOW)
        labels: dict[tuple[str, str], list[str]] = {}
        for r in report.table("drift_classes").rows:
            labels.setdefault((r["project"], r["model_version"]), []).append(r["label"])
        assert labels == {("Fruit", "clf-1"): ["apple", "pear"], ("Fruit", "imported-9"): ["apple", "pear"],
                          ("Zoo", "clf-1"): ["cat", "dog", "bird"]}

    def test_projects_overview_has_one_row_of_headline_figures_per_project(self, two):
        pets, fruit = two
        (report,) = reports.build(["projects"], Scope(projects=(fruit, pets)), now=NOW)
        by_project = {r["project"]: r for r in report.table("projects").rows}
        assert (by_project["Zoo"]["items"], by_project["Zoo"]["gold_accuracy"], by_project["Zoo"]["model_version"]) == (
            4, 0.0, "clf-1")
        assert (by_project["Fruit"]["items"], by_project["Fruit"]["gold_accuracy"],
            by_project["Fruit"]["macro_f1"]) == (
            2, 1.0, 1.0)
        assert by_project["Fruit"]["items_filter"] == {"project": "orchard"}


class TestOpenExpertWork:
    """The backlog's open expert work is read by the slot's own project (no join to items) unless the scope
    filters on items: the figures must be those of the items' scope either way."""

    @pytest.mark.parametrize("filters", [{}, {"domain": "pets/dogs"}, {"domain": "pets/cats"}, {"route": "expert"},
                                         {"since": NOW.date(), "until": NOW.date()}])
    def test_counts_match_the_items_in_scope(self, s, filters):
        other = project("other")
        # Open expert work of another project is not counted.
        Assignment.objects.create(item=s.project.items.first(), project=other, kind=AssignmentKind.EXPERT,
                                  status="offered", due_at=NOW)
        scope = Scope(projects=(s.project,), **filters)
        work = selectors.open_expert_work(scope, now=LATER)
        reference = Assignment.objects.filter(selectors._items_q(scope, "item__"), kind=AssignmentKind.EXPERT,
                                              status__in=OPEN_ASSIGNMENT_STATUSES, project=s.project)
        overdue = reference.filter(due_at__lt=LATER)
        assert (work.open, work.overdue) == (reference.count(), overdue.count())
        assert work.oldest_overdue_at == min(overdue.values_list("due_at", flat=True), default=None)
        if not filters:
            assert work.open == 1


def live_crowd_pair_labels(scope, annotator_ids):
    """The contingency cells read straight from the annotations (what the snapshots must sum to)."""
    by_item = defaultdict(list)
    for item_id, annotator_id, label in Annotation.objects.filter(
        selectors._items_q(scope, "item__"), role="crowd", annotator_id__in=annotator_ids
    ).values_list("item_id", "annotator_id", "label"):
        by_item[item_id].append((annotator_id, label))
    cells = Counter()
    for labels in by_item.values():
        for (a, label_a), (b, label_b) in itertools.combinations(sorted(labels), 2):
            if a != b:
                cells[(a, b, label_a, label_b)] += 1
    return [(*key, n) for key, n in sorted(cells.items())]


@pytest.mark.parametrize("filters", [{}, {"domain": "pets/dogs"}, {"route": "crowd"}, {"route": "expert"},
                                     {"since": NOW.date(), "until": NOW.date()}, {"since": NOW.date()}])
def test_crowd_pair_labels_from_snapshots_match_the_annotations(s, filters):
    scope = Scope(projects=(s.project,), **filters)
    annotators = sorted(set(Annotation.objects.filter(role="crowd").values_list("annotator_id", flat=True)))
    expected = live_crowd_pair_labels(scope, annotators)
    assert selectors.crowd_pair_labels(scope, annotators) == expected
    if not filters:
        assert expected  # the scenario has items labelled by two crowd annotators
