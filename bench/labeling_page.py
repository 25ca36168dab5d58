"""How long the server takes to serve the labeling page, with the demo data.

Usage:
    .venv/bin/python bench/labeling_page.py [--requests 50] [--items N] [--db PATH]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/workbench_bench .venv/bin/python bench/labeling_page.py

Builds the demo (`seed_demo`, every item unless --items) in a scratch SQLite file (or the DATABASE_URL
database), then, in-process through Django's test client (so the figure is the server's work: URL
routing, middleware, queries, template rendering; no network, no browser), times:

1. the labeling page (GET /work/<id>/, a whole page) of a crowd annotator and of an expert;
2. the htmx partial of the same page (what a swap receives);
   (the expert's item is a biopsy record escalated by a policy that flags referral-impression conflicts);
3. a submit that answers with the next item's panel (POST, routing the item again, claiming the next).

Prints the median, 90th percentile and queries per request for each.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50, help="Requests per measured page (default 50).")
    parser.add_argument("--items", type=int, default=None, help="Demo items per project (default: all).")
    parser.add_argument("--db", default=None, help="SQLite file to build the demo in (default: a temporary one).")
    parser.add_argument("--json", help="also write the figures to this file (bench/report.py reads it)")
    return parser.parse_args()


args = parse_args()
if not os.environ.get("DATABASE_URL"):
    db_path = pathlib.Path(args.db or tempfile.mkdtemp(prefix="bench-labeling-")) / "demo.sqlite3"
    os.environ["DATABASE_URL"] = f"sqlite:///{db_path}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbench.settings")
os.environ.setdefault("DEBUG", "false")
# A local run with production's settings: a throwaway key (DEBUG is off) and plain HTTP, not HTTPS.
os.environ.setdefault("SECRET_KEY", "bench-only-key-that-signs-nothing-real")
os.environ.setdefault("HTTPS", "false")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.urls import reverse  # noqa: E402

from labeling.models import Project  # noqa: E402
from routing import (
    policies,
    services,  # noqa: E402
)
from routing.engine.types import PolicyConfig  # noqa: E402
from routing.models import Assignment, AssignmentKind  # noqa: E402
from work import claims


def timed(client: Client, method: str, url: str, n: int, **kwargs) -> tuple[list[float], int]:
    times = []
    queries = 0
    for _ in range(n):
        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            response = getattr(client, method)(url() if callable(url) else url, **kwargs)
            times.append(time.perf_counter() - start)
        assert response.status_code in (200, 302), (url, response.status_code)
        queries = len(captured)
    return times, queries


FIGURES: list[dict[str, object]] = []


def report(name: str, times: list[float], queries: int) -> None:
    ms = sorted(t * 1000 for t in times)
    p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
    FIGURES.append({"name": name, "median_ms": statistics.median(ms), "p90_ms": p90, "queries": queries, "n": len(ms)})
    print(f"{name:<44} median {statistics.median(ms):7.1f} ms   p90 {p90:7.1f} ms   {queries:3d} queries   n={len(ms)}")


def main() -> None:
    setup_test_environment()  # lets CaptureQueriesContext see queries with DEBUG off
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    kwargs = {"items": args.items} if args.items else {}
    call_command("seed_demo", stdout=io.StringIO(), **kwargs)
    User = get_user_model()
    print(f"demo built in {time.perf_counter() - started:.1f} s on {connection.vendor}: "
          f"{', '.join(f'{p.slug} {p.items.count()} items' for p in Project.objects.all())}")

    crowd = User.objects.get(username="crowd1")
    crowd_assignment = claims.assignment_claim_next(user=crowd)
    # Expert work, as an admin would create it: escalate biopsy records whose referral impression
    # contradicts the model (a policy change), then re-route them.
    admin = User.objects.get(username="admin")
    biopsy = Project.objects.get(slug="biopsy-records")
    policy = policies.policy_for_project(biopsy)
    config = dataclasses.replace(
        PolicyConfig.from_dict(policy.live_version.config), metadata_conflict_field="referral_impression"
    )
    policies.policy_version_publish(policy=policy, config=config, author=admin, change_note="bench")
    services.items_reroute(item_ids=list(biopsy.items.values_list("id", flat=True)), actor=admin, note="bench")
    expert = User.objects.get(username="dr.ada")
    expert_assignment = claims.assignment_claim_next(user=expert)
    assert expert_assignment is not None and expert_assignment.kind == AssignmentKind.EXPERT

    n = args.requests
    for who, user, assignment in (("crowd", crowd, crowd_assignment), ("expert", expert, expert_assignment)):
        client = Client()
        client.force_login(user)
        url = reverse("work:work", args=[assignment.pk])
        client.get(url)  # warm the template cache
        report(f"labeling page, {who} (whole page)", *timed(client, "get", url, n))
        report(f"labeling page, {who} (htmx partial)", *timed(client, "get", url, n, HTTP_HX_REQUEST="true"))

    # Submit and receive the next panel: crowd1 labels the next n items of the digits queue.
    client = Client()
    client.force_login(crowd)
    digits = Project.objects.get(slug="handwritten-digits")
    times, queries = [], 0
    current = claims.assignment_claim_next(user=crowd, project=digits)
    for _ in range(n):
        if current is None:
            break
        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            response = client.post(
                reverse("work:submit", args=[current.pk]),
                {"label": "3", "scope": digits.slug, "time_spent_ms": "4000"},
                HTTP_HX_REQUEST="true",
            )
            times.append(time.perf_counter() - start)
        assert response.status_code == 200, response.status_code
        queries = len(captured)
        next_url = response.headers.get("HX-Push-Url", "")
        current = None
        if "/work/" in next_url:
            current = Assignment.objects.get(pk=int(next_url.split("/")[2]))
    if times:
        report("submit + next item's panel (htmx)", times, queries)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"database": connection.vendor, "pages": FIGURES}))


if __name__ == "__main__":
    main()
