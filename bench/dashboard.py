"""Dashboard server time on a large project: 1,000,000 annotations on 300,000 items.

Usage:
    .venv/bin/python bench/dashboard.py [--items 300000] [--annotations 1000000] [--seed 7] [--regenerate]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/workbench_dash .venv/bin/python bench/dashboard.py
    .venv/bin/python bench/dashboard.py --demo [--runs 20]

--demo times the pages on `make run`'s demo instead (seed_demo in its own SQLite file,
var/bench_dashboard_demo.sqlite3, or DATABASE_URL): /dashboards/ and each project's page as the stakeholder
sees them, whole page and htmx panels, median and 90th percentile of server time, queries and HTML size,
with the load average before and after (aim: every page under 300 ms and 200 KB).

Without DATABASE_URL it uses its own SQLite file (var/bench_dashboard.sqlite3), never the demo database.
The database is migrated first. The project "bench-dashboard" is generated once (seeded; COPY on
PostgreSQL, executemany on SQLite, bypassing the services because they route every item) and reused on the
next run unless --regenerate is given or its size differs. Then, as a staff user through Django's test
Client, the project page and every metric's JSON endpoint are requested five times each; the median server
time of each is printed (aim: the page under 1 s on PostgreSQL). The dashboard reads pre-computed snapshots,
so the script also times their full rebuild (after generating) and the every-minute refresh of one changed day.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbench.settings")
DEMO = "--demo" in sys.argv[1:]
if not os.environ.get("DATABASE_URL"):
    (ROOT / "var").mkdir(exist_ok=True)
    db_name = "bench_dashboard_demo.sqlite3" if DEMO else "bench_dashboard.sqlite3"
    os.environ["DATABASE_URL"] = f"sqlite:///{ROOT / 'var' / db_name}"
# A local run with production's settings: a throwaway key (DEBUG is off) and plain HTTP, not HTTPS.
os.environ.setdefault("SECRET_KEY", "bench-only-key-that-signs-nothing-real")
os.environ.setdefault("HTTPS", "false")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")  # the test client's host

import django

django.setup()

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.color import no_style
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext, setup_test_environment
from django.urls import reverse
from django.utils import timezone

from core.bulk import datetime_value, insert_rows
from dashboards.reports import METRIC_NAMES
from dashboards.services import snapshots_refresh
from experts.models import Domain, Expert, Expertise, Role, Shift
from labeling.models import Annotation, GoldLabel, Item, Prediction, Project
from labeling.services import project_create
from routing.models import Assignment, RoutingDecision
from routing.policies import policy_for_project
from routing.services import projects_purge

SLUG = "bench-dashboard"
CLASSES = tuple(f"class-{k}" for k in range(10))
DOMAINS = ("bench", "bench/radiology", "bench/oncology", "bench/cardiology", "bench/dermatology", "bench/general")
N_CROWD = 300
N_EXPERTS = 12
DAYS = 120
# Shares of items by route: accepted from the model, settled by crowd consensus, escalated to an expert.
ROUTE_SHARES = {"auto": 0.30, "crowd": 0.50, "expert": 0.20}
# Items ingested in the last PENDING_HOURS are still open when the routing below says so.
PENDING_HOURS = 36
GOLD_SHARE = 0.05
RUNS = 5


# ------------------------------------------------------------------------------------------ generation


def _insert(model, fields: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Bulk-load rows through core.bulk.insert_rows (COPY on PostgreSQL); other fields get defaults."""
    rows = [tuple(datetime_value(v) if isinstance(v, dt.datetime) else v for v in row) for row in rows]
    insert_rows(model, fields, rows, now=timezone.now())
    return len(rows)


def _reset_sequences(models: Sequence[Any]) -> None:
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), models):
            cursor.execute(statement)


def _next_id(model) -> int:
    last = model.objects.order_by("-id").values_list("id", flat=True).first()
    return (last or 0) + 1


def _users(prefix: str, n: int) -> list[int]:
    User = get_user_model()
    names = [f"{prefix}{i:03d}" for i in range(n)]
    existing = set(User.objects.filter(username__in=names).values_list("username", flat=True))
    User.objects.bulk_create([User(username=u, password="!") for u in names if u not in existing])
    ids = dict(User.objects.filter(username__in=names).values_list("username", "id"))
    return [ids[u] for u in names]


def _roster(expert_user_ids: Sequence[int], domain_ids: dict[str, int]) -> None:
    have = set(Expert.objects.filter(user_id__in=expert_user_ids).values_list("user_id", flat=True))
    experts = Expert.objects.bulk_create(
        [
            Expert(user_id=u, display_name=f"Bench expert {i}", role=Role.EXPERT, capacity=6)
            for i, u in enumerate(expert_user_ids)
            if u not in have
        ]
    )
    paths = DOMAINS[1:]
    Expertise.objects.bulk_create(
        [Expertise(expert=e, domain_id=domain_ids[paths[i % len(paths)]], proficiency=4) for i, e in enumerate(experts)]
    )
    # Weekday day shifts only, so nights and weekends show up as coverage gaps.
    Shift.objects.bulk_create(
        [Shift(expert=e, weekday=d, start=dt.time(8), end=dt.time(18)) for e in experts for d in range(5)]
    )


def _counts_summing_to(rng: np.random.Generator, low: np.ndarray, high: np.ndarray, total: int) -> np.ndarray:
    """Integer counts within [low, high] per entry, drawn uniformly then nudged until they sum to `total`."""
    counts = rng.integers(low, high + 1)
    if not low.sum() <= total <= high.sum():
        raise SystemExit(f"cannot place {total} annotations: between {low.sum()} and {high.sum()} fit")
    while (diff := total - int(counts.sum())) != 0:
        room = np.flatnonzero(counts < high) if diff > 0 else np.flatnonzero(counts > low)
        pick = rng.choice(room, size=min(abs(diff), room.size), replace=False)
        counts[pick] += 1 if diff > 0 else -1
    return counts


def generate(*, n_items: int, n_annotations: int, seed: int) -> Project:
    rng = np.random.default_rng(seed)
    now = timezone.now().replace(microsecond=0)
    start = now - dt.timedelta(days=DAYS)
    latest = now - dt.timedelta(minutes=1)
    t0 = time.perf_counter()
    with transaction.atomic():
        projects_purge(slugs=[SLUG])
        project = project_create(name="Dashboard benchmark", slug=SLUG, classes=list(CLASSES))
        policy = policy_for_project(project)
        version_id = policy.live_version_id
        sla = dt.timedelta(hours=float(policy.live_version.config["sla_hours"]))
        domain_ids = {}
        for path in DOMAINS:
            parent = path.rpartition("/")[0]
            domain, _ = Domain.objects.get_or_create(
                path=path, defaults={"name": path.rsplit("/", 1)[-1], "parent_id": domain_ids.get(parent)}
            )
            domain_ids[path] = domain.pk
        crowd = np.array(_users("bench-crowd-", N_CROWD))
        experts = np.array(_users("bench-expert-", N_EXPERTS))
        _roster(experts.tolist(), domain_ids)

        n = n_items
        K = len(CLASSES)
        item_ids = np.arange(_next_id(Item), _next_id(Item) + n)
        created = np.sort(rng.uniform(0, DAYS * 86400, size=n))
        created_at = [start + dt.timedelta(seconds=float(s)) for s in created]
        domain_of = rng.choice(len(DOMAINS) - 1, size=n, p=[0.3, 0.25, 0.2, 0.15, 0.1]) + 1
        truth = rng.choice(K, size=n, p=np.linspace(2, 1, K) / np.linspace(2, 1, K).sum())
        route = rng.choice(3, size=n, p=list(ROUTE_SHARES.values()))  # 0 auto, 1 crowd, 2 expert
        age_hours = (now - start).total_seconds() / 3600 - created / 3600
        pending = (age_hours < PENDING_HOURS) & (route > 0) & (rng.random(n) < 0.6)

        # Model predictions: confident on auto items; the last 14 days come from a newer, less sure model,
        # so the drift panel has something to show.
        recent = age_hours < 14 * 24
        top_p = np.where(route == 0, rng.uniform(0.92, 0.995, n), rng.uniform(0.3, 0.85, n))
        top_p = np.where(recent & (route > 0), top_p * 0.85, top_p)
        model_right = (route == 0) | (rng.random(n) < np.where(route == 1, 0.8, 0.5))
        predicted = np.where(model_right, truth, (truth + rng.integers(1, K, n)) % K)
        rest = rng.dirichlet(np.ones(K - 1), size=n) * (1 - top_p)[:, None]
        version = np.where(recent, "bench-2", "bench-1")

        # Annotation counts per item: none on auto items, 2-5 crowd labels on crowd items, 3-7 on escalated
        # items (+1 expert label when done), scaled so the total is exactly n_annotations.
        expert_label_n = ((route == 2) & ~pending).astype(int)
        low = np.select([route == 1, route == 2], [2, 3], 0)
        high = np.select([route == 1, route == 2], [5, 7], 0)
        high = np.where(pending, np.minimum(high, 1), high)
        low = np.minimum(low, high)
        crowd_n = _counts_summing_to(rng, low, high, n_annotations - int(expert_label_n.sum()))

        items = []
        predictions = []
        annotations = []
        gold = []
        decisions = []
        final_label = [""] * n
        for i in range(n):
            probs = np.insert(rest[i], predicted[i], top_p[i])
            probs = np.round(probs / probs.sum(), 6)
            predictions.append(
                (int(item_ids[i]), "bench", str(version[i]), json.dumps(dict(zip(CLASSES, probs.tolist()))),
                    created_at[i])
            )
        a0 = rng.integers(0, N_CROWD, n)
        step = rng.integers(1, N_CROWD // 6, n)
        crowd_accuracy = np.where(route == 2, 0.55, 0.8)
        item_state = []
        for i in range(n):
            t = created_at[i]
            labels = []
            submitted = t
            for k in range(int(crowd_n[i])):
                # Never in the future: the refresh would keep seeing such rows as just changed.
                submitted = min(submitted + dt.timedelta(minutes=float(rng.exponential(90))), latest)
                label = truth[i] if rng.random() < crowd_accuracy[i] else rng.integers(K)
                labels.append(int(label))
                annotations.append(
                    (
                        int(item_ids[i]), int(crowd[(a0[i] + k * step[i]) % N_CROWD]), CLASSES[label], "[]",
                        int(rng.lognormal(np.log(20000), 0.5)), submitted, Role.CROWD, "", False,
                    )
                )
            escalated_at = None
            if route[i] == 2:
                escalated_at = min(submitted + dt.timedelta(minutes=1), latest)
            if expert_label_n[i]:
                done = min(escalated_at + dt.timedelta(hours=float(rng.gamma(2.0, 8.0))), latest)
                label = truth[i] if rng.random() < 0.95 else int(rng.integers(K))
                annotations.append(
                    (
                        int(item_ids[i]), int(experts[i % N_EXPERTS]), CLASSES[label], "[]",
                        int(rng.lognormal(np.log(120000), 0.5)), done, Role.EXPERT, "", False,
                    )
                )
                final_label[i], source, labeled_at, status = CLASSES[label], "expert", done, "labeled"
            elif route[i] == 0:
                final_label[i], source, labeled_at, status = CLASSES[predicted[i]], "model", t, "labeled"
            elif pending[i]:
                source, labeled_at, status = "", None, "escalated" if route[i] == 2 else "in_crowd_review"
            else:
                final_label[i] = CLASSES[int(np.bincount(labels, minlength=K).argmax())]
                source, labeled_at, status = "consensus", submitted, "labeled"
            item_state.append((status, source, labeled_at, escalated_at))
            items.append(
                (
                    int(item_ids[i]), project.pk, f"bench-{i}", '{"text": "benchmark item"}', "{}",
                    int(domain_ids[DOMAINS[domain_of[i]]]), "en", status, final_label[i], source,
                    float(top_p[i]) if source == "model" else None, t, t, labeled_at,
                )
            )
            if rng.random() < GOLD_SHARE:
                gold.append((int(item_ids[i]), CLASSES[truth[i]], "bench", t))
            ingest_outcome = "accept" if route[i] == 0 else "crowd"
            decisions.append((int(item_ids[i]), version_id, "ingest", "{}", "", ingest_outcome,
                              final_label[i] if route[i] == 0 else "", "model" if route[i] == 0 else "",
                              "{}", "[]", "{}", 0, t))
            if escalated_at is not None:
                posterior = dict(zip(CLASSES, np.round(np.insert(rest[i], predicted[i], top_p[i]), 6).tolist()))
                decisions.append((int(item_ids[i]), version_id, "annotation", "{}", "", "expert", "", "",
                                  json.dumps(posterior), '[{"code": "no_consensus", "evidence": "bench"}]', "{}", 1,
                                  escalated_at))
            if source in ("consensus", "expert"):
                decisions.append((int(item_ids[i]), version_id, "annotation", "{}", "", "accept", final_label[i],
                                  source, "{}", "[]", "{}", 0, labeled_at))
        print(f"generated rows in {time.perf_counter() - t0:.0f} s; loading", flush=True)
        _insert(Item, ["id", "project", "external_id", "data", "metadata", "domain", "language", "status",
                       "final_label", "final_source", "final_confidence", "created_at", "updated_at", "labeled_at"],
                items)
        _insert(Prediction, ["item", "model_name", "model_version", "probabilities", "created_at"], predictions)
        _insert(Annotation, ["item", "annotator", "label", "factors", "time_spent_ms", "submitted_at", "role",
                             "rationale", "unsure"], annotations)
        _insert(GoldLabel, ["item", "label", "provenance", "created_at"], gold)
        _insert(RoutingDecision, ["item", "policy_version", "stage", "inputs", "inputs_digest", "outcome",
                                  "final_label", "final_source", "posterior", "reasons", "signals",
                                  "labels_requested", "created_at"], decisions)
        assignment_rows = _assignments(project.pk, item_ids, item_state, experts, sla, now)
        _reset_sequences([Item, Prediction, Annotation, GoldLabel, RoutingDecision, Assignment])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"generated {n} items, {len(annotations)} annotations, {len(gold)} gold labels, {len(decisions)} "
          f"decisions, {assignment_rows} assignments in {time.perf_counter() - t0:.0f} s", flush=True)
    return project


def _assignments(project_id, item_ids, item_state, experts, sla, now) -> int:
    """Expert assignments of escalated items (done or open, some overdue), and open crowd slots."""
    rows = []
    for i, (status, source, labeled_at, escalated_at) in enumerate(item_state):
        item_id = int(item_ids[i])
        if escalated_at is not None:
            expert = int(experts[i % len(experts)])
            if source == "expert":
                rows.append((item_id, project_id, expert, "expert", "completed", escalated_at + sla, escalated_at,
                             escalated_at, labeled_at))
            else:
                rows.append((item_id, project_id, expert, "expert", "active", escalated_at + sla, escalated_at,
                             escalated_at, None))
        elif status == "in_crowd_review":
            rows.append((item_id, project_id, None, "crowd", "offered", now + sla, now - dt.timedelta(hours=1),
                         None, None))
    return _insert(Assignment, ["item", "project", "assignee", "kind", "status", "due_at", "created_at",
                                "claimed_at", "completed_at"], rows)


# ------------------------------------------------------------------------------------------ timing


def _timed(client: Client, url: str) -> tuple[float, int, int]:
    headers = {"HX-Request": "true"} if "route=crowd" in url else {}
    with CaptureQueriesContext(connection) as queries:
        t = time.perf_counter()
        response = client.get(url, headers=headers)
        elapsed = time.perf_counter() - t
    if response.status_code != 200:
        raise SystemExit(f"{url} answered {response.status_code}: {response.content[:500]!r}")
    return elapsed, len(queries.captured_queries), len(response.content)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def demo(runs: int) -> None:
    """Server time of the dashboard pages on the demo, as the stakeholder sees them."""
    setup_test_environment()  # lets CaptureQueriesContext see queries with DEBUG off
    call_command("migrate", verbosity=0)
    t = time.perf_counter()
    call_command("seed_demo", stdout=open(os.devnull, "w"))
    snapshots_refresh(full=True)
    print(f"demo seeded and snapshots rebuilt in {time.perf_counter() - t:.1f} s")
    client = Client()
    client.force_login(get_user_model().objects.get(username="stakeholder"))
    pages = [("/dashboards/", reverse("dashboards:index"))]
    pages += [(f"/dashboards/{p.slug}/", reverse("dashboards:project", kwargs={"slug": p.slug}))
              for p in Project.objects.order_by("name")]
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(f"\n{engine}, demo data; {runs} runs each; load average before: {_load()}")
    for label, url in pages:
        for kind, headers in (("page", {}), ("htmx panels", {"HX-Request": "true"})):
            client.get(url, headers=headers)  # warm-up
            times, sizes, queries = [], [], []
            for _ in range(runs):
                with CaptureQueriesContext(connection) as captured:
                    t = time.perf_counter()
                    response = client.get(url, headers=headers)
                    times.append(time.perf_counter() - t)
                if response.status_code != 200:
                    raise SystemExit(f"{url} answered {response.status_code}")
                sizes.append(len(response.content))
                queries.append(len(captured))
            ms = sorted(x * 1000 for x in times)
            p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
            print(f"  {label:<34} {kind:<12} median {statistics.median(ms):6.0f} ms  p90 {p90:6.0f} ms  "
                  f"{queries[-1]:3d} queries  {sizes[-1] / 1024:6.0f} KiB")
    print(f"load average after: {_load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=300_000)
    parser.add_argument("--annotations", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--demo", action="store_true", help="Time the pages on the demo data instead.")
    parser.add_argument("--runs", type=int, default=20, help="Requests per page with --demo (default 20).")
    parser.add_argument("--json", help="also write the figures to this file (bench/report.py reads it)")
    args = parser.parse_args()
    if args.demo:
        demo(args.runs)
        return

    call_command("migrate", verbosity=0)
    project = Project.objects.filter(slug=SLUG).first()
    have = (
        (Item.objects.filter(project=project).count(), Annotation.objects.filter(item__project=project).count())
        if project
        else None
    )
    if args.regenerate or have != (args.items, args.annotations):
        project = generate(n_items=args.items, n_annotations=args.annotations, seed=args.seed)
        t = time.perf_counter()
        snapshots_refresh(full=True)
        print(f"snapshots: full rebuild in {time.perf_counter() - t:.1f} s")
    else:
        snapshots_refresh()
    # What the every-minute job costs when one day of items changed (the usual case while labelling).
    last_day = Item.objects.filter(project=project).order_by("-created_at").values_list("created_at", flat=True)[0]
    Item.objects.filter(project=project, created_at__date=last_day.date()).update(updated_at=timezone.now())
    t = time.perf_counter()
    result = snapshots_refresh()
    print(f"snapshots: refresh of {result.partitions} changed day(s), {result.items:,} items, in "
          f"{time.perf_counter() - t:.1f} s")

    User = get_user_model()
    admin, _ = User.objects.get_or_create(username="bench-admin", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(admin)

    page = reverse("dashboards:project", kwargs={"slug": SLUG})
    # A filtered view: a date range starting and ending mid-week (day rows at both ends) and one domain.
    until = timezone.now().date() - dt.timedelta(days=10)
    until -= dt.timedelta(days=(until.weekday() - 2) % 7)  # a Wednesday
    since = until - dt.timedelta(days=62)
    filtered = f"{page}?since={since}&until={until}&domain=bench/radiology"
    targets = [("page", page), ("page, filtered", filtered), ("page, htmx panels", filtered + "&route=crowd")]
    targets += [
        (f"api {name}", reverse("dashboard-metric", kwargs={"name": name}) + f"?project={SLUG}")
        for name in METRIC_NAMES
    ]
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(f"\n{engine}: {args.items:,} items, {args.annotations:,} annotations; median of {RUNS} runs")
    figures = []
    for label, url in targets:
        _timed(client, url)  # warm-up: connection, caches of the database itself
        runs = [_timed(client, url) for _ in range(RUNS)]
        median = statistics.median(r[0] for r in runs)
        print(f"  {label:<28} {median * 1000:8.0f} ms  ({runs[0][1]} queries, {runs[0][2] / 1024:.0f} KiB)")
        figures.append({"name": label, "median_ms": median * 1000, "queries": runs[0][1]})
    if args.json:
        summary = {"database": connection.vendor, "items": args.items, "annotations": args.annotations,
                   "runs": RUNS, "pages": figures}
        pathlib.Path(args.json).write_text(json.dumps(summary))


if __name__ == "__main__":
    main()
