"""`manage.py seed_demo`: the demo project, people and roster (see docs/demo.md). Idempotent.

The content comes from the pure `demo.datasets`; this command only writes it through the services the API
uses, so ingested items are routed by exactly the path real items take: each project's demo policy is
published before its items arrive, and a short history of work (demo.history) follows.
"""
from __future__ import annotations

import functools

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from rest_framework.authtoken.models import Token

from core.access import STAKEHOLDER_GROUP
from demo import datasets as demo
from demo.clock import SimulatedClock, simulated_time
from demo.history import HistorySummary, ProjectHistory, demo_history_simulate, history_start
from experts.models import Expert
from experts.services import claim_counters_reset, domain_ensure, expert_create
from labeling.memberships import memberships_ensure
from labeling.models import Project
from labeling.selectors import item_list
from labeling.services import IngestValidationError, items_ingest, project_create
from routing.models import RoutingDecision
from routing.policies import policy_for_project, policy_version_publish
from routing.reliabilities import accuracy_refresh
from routing.services import projects_purge
from work.selectors import queue_summary


class Command(BaseCommand):
    help = (
        "Build the demo: two projects with real model predictions (scikit-learn's bundled digits and "
        "breast-biopsy sets), demo users for every role, the expert roster and gold labels. Running it "
        "again adds nothing twice; --reset deletes the demo projects first."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--items", type=int, default=None, help="At most this many items per project (default: all held-out items)."
        )
        parser.add_argument(
            "--seed", type=int, default=demo.DEFAULT_SEED, help="Seed of the data split and metadata draws."
        )
        parser.add_argument("--reset", action="store_true", help="Delete the demo projects (and their items) first.")
        parser.add_argument(
            "--no-history", action="store_true", help="Skip the simulated history of labels, reviews and declines."
        )

    def handle(self, *args, items: int | None, seed: int, reset: bool, no_history: bool = False, **options):
        if items is not None and items < 1:
            raise CommandError(f"--items must be at least 1, got {items}")
        projects = demo.build_demo(seed=seed, max_items=items)
        with transaction.atomic():
            if reset:
                deleted = projects_purge(slugs=demo.DEMO_PROJECT_SLUGS)
                # The rebuilt history draws the same gold checks as the first one did.
                demo_users = get_user_model().objects.filter(username__in=[p.username for p in demo.DEMO_PEOPLE])
                claim_counters_reset(user_ids=demo_users.values_list("id", flat=True))
                self.stdout.write(f"Reset: deleted {deleted} demo project(s) and their items.")
            for project in projects:
                for domain in project.domains:
                    domain_ensure(path=domain.path, name=domain.name)
            users = {person.username: self._user(person) for person in demo.DEMO_PEOPLE}
            for person in demo.DEMO_PEOPLE:
                if person.on_roster:
                    self._roster_entry(person, users[person.username])
            admin = users["admin"]
            members = [u for name, u in users.items() if name != "admin"]
            histories: dict[str, HistorySummary] = {}
            fresh = [spec for spec in projects if not Project.objects.filter(slug=spec.slug).exists()]
            if fresh and not no_history:
                # A new project gets its past: created, with its policy, weeks ago, its items arriving week by
                # week since (demo.history). A project that exists keeps the past it has.
                now = timezone.now()
                clock = SimulatedClock(history_start(now))
                with simulated_time(clock):
                    plans = []
                    for spec in fresh:
                        project = self._project_create(spec, admin)
                        memberships_ensure(projects=[project], users=members, actor=admin)
                        ingest = functools.partial(self._ingest, project, spec.slug, admin=admin)
                        plans.append(ProjectHistory(project=project, spec=spec, rows=spec.rows, ingest=ingest))
                    histories = demo_history_simulate(projects=plans, users=users, clock=clock, today=now, seed=seed)
            for spec in projects:
                self._project(spec, admin, members)
            if histories:
                # Measure everyone on the history just made, as the hourly job would.
                accuracy_refresh()
            token, _ = Token.objects.get_or_create(user=admin)
        self._report(projects, token.key, histories)

    def _user(self, person: demo.DemoPerson):
        User = get_user_model()
        user = User.objects.filter(username=person.username).first()
        if user is None:
            # Documented demo passwords are set only when the user is created, so a password changed after
            # seeding survives the next `make run`.
            user = User.objects.create_user(
                username=person.username,
                password=person.password,
                first_name=person.display_name,
                is_staff=person.role == "admin",
                is_superuser=person.role == "admin",
            )
        if person.role == "stakeholder":
            user.groups.add(self._stakeholder_group())
        return user

    def _stakeholder_group(self) -> Group:
        return Group.objects.get_or_create(name=STAKEHOLDER_GROUP)[0]

    def _roster_entry(self, person: demo.DemoPerson, user) -> None:
        if Expert.objects.filter(user=user).exists():
            return
        expert_create(
            user=user,
            display_name=person.display_name,
            time_zone=person.time_zone,
            languages=person.languages,
            role=person.role,
            capacity=person.capacity,
            expertise=person.expertise,
            shifts=[s.times for s in person.shifts],
        )

    def _project_create(self, spec: demo.DemoProject, admin) -> Project:
        project = project_create(
            name=spec.name,
            slug=spec.slug,
            classes=list(spec.classes),
            instructions=spec.instructions,
            data_type=spec.data_type,
            decision_factors=list(spec.decision_factors),
            field_visibility={path: list(roles) for path, roles in spec.field_visibility.items()},
            review_sample_rate=demo.DEMO_REVIEW_SAMPLE_RATE[spec.slug],
            actor=admin,
        )
        # Before any item arrives, so the demo policy routes them all.
        policy_version_publish(
            policy=policy_for_project(project),
            config=demo.DEMO_POLICIES[spec.slug],
            author=admin,
            change_note=demo.DEMO_POLICY_NOTES[spec.slug],
        )
        return project

    def _ingest(self, project: Project, slug: str, rows, admin=None) -> None:
        try:
            items_ingest(project=project, rows=rows, actor=admin, source="seed_demo")
        except IngestValidationError as exc:
            raise CommandError(f"demo rows of {slug} were rejected: {exc}") from exc

    def _project(self, spec: demo.DemoProject, admin, members) -> Project:
        """The demo project (created if missing), with the rows of `spec` not yet stored ingested now."""
        project = Project.objects.filter(slug=spec.slug).first() or self._project_create(spec, admin)
        # Everyone in the demo works on (or reads) every demo project (core.access reads it); before the
        # items arrive, since routing offers an item by name only to members of its project.
        memberships_ensure(projects=[project], users=members, actor=admin)
        # Only rows not yet stored: re-sending stored ones would write nothing but would route them again.
        stored = set(item_list(project=project).values_list("external_id", flat=True))
        rows = [row for row in spec.rows if row["external_id"] not in stored]
        if rows:
            self._ingest(project, spec.slug, rows, admin)
        return project

    def _report(self, projects: tuple[demo.DemoProject, ...], admin_token: str, histories: dict) -> None:
        out = self.stdout
        out.write(self.style.SUCCESS("Demo ready."))
        for spec in projects:
            project = Project.objects.get(slug=spec.slug)
            stored = item_list(project=project)
            statuses = dict(stored.values_list("status").annotate(n=Count("id")).order_by())
            gold = stored.filter(gold__isnull=False).count()
            out.write(
                f"\n{spec.name} ({spec.slug}): {stored.count()} items, {gold} with gold labels; status "
                + ", ".join(f"{status} {n}" for status, n in sorted(statuses.items()))
            )
            routed = dict(
                RoutingDecision.objects.filter(item__project=project, stage="ingest")
                .values_list("outcome")
                .annotate(n=Count("id"))
                .order_by()
            )
            out.write(
                "  routed on arrival: "
                + ", ".join(f"{outcome} {routed.get(outcome, 0)}" for outcome in ("accept", "crowd", "expert"))
            )
            history = histories.get(spec.slug)
            if history is not None:
                labels = ", ".join(f"{kind} {n}" for kind, n in sorted(history.annotations.items()))
                verdicts = ", ".join(f"{verdict} {n}" for verdict, n in sorted(history.reviews.items())) or "none"
                since = f" since {history.first_arrival:%Y-%m-%d}" if history.first_arrival else ""
                out.write(f"  history: {history.weeks} weeks{since}; labels {labels}; declines {history.declines}; "
                          f"reviews {verdicts}")
            for version, figures in demo.confidence_summary(spec).items():
                out.write(
                    f"  model {version}: top probability > 0.95 on {figures['confident_share']:.0%}, "
                    f"< 0.7 on {figures['uncertain_share']:.0%} of {int(figures['items'])} generated items; "
                    f"accuracy on gold {figures['gold_accuracy']:.0%}"
                )
        out.write("\nOpen work in the experts' queues (offered to them by name + waiting in the queue for them):")
        for person in demo.DEMO_PEOPLE:
            if person.role == "expert":
                queue = queue_summary(user=get_user_model().objects.get(username=person.username))
                out.write(f"  {person.username:<12} {queue['assigned']} + {queue['open_for_you']}")
        out.write("\nLogins (password set when the user is first created; see docs/demo.md):")
        for person in demo.DEMO_PEOPLE:
            out.write(f"  {person.role:<12} {person.username:<12} {person.password}")
        out.write(f"\nAPI token of admin: {admin_token}")
        out.write('  e.g. curl -H "Authorization: Token ' + admin_token + '" http://127.0.0.1:8000/api/projects/')
