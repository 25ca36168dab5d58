"""Ingest throughput: the service the API uses against a plain bulk insert of the same rows (the floor).

Usage:
    .venv/bin/python bench/ingest.py [--n 100000] [--classes K] [--seed 7] [--keep]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/workbench_bench .venv/bin/python bench/ingest.py

Generates N items with one prediction each over K classes (3-10, seeded when not given): --confident of
them (default 0.55, as bench/scale.py) with 0.955 on one class, which the default policy accepts, the rest
Dirichlet-random, which it sends to the crowd or an expert; then, each into a fresh project on the
configured database (migrated first):

1. floor: Item.objects.bulk_create + Prediction.objects.bulk_create in chunks, one transaction;
   raw floor: the same rows through core.bulk (COPY on PostgreSQL), without any checks;
2. ingest: labeling.services.items_ingest over the same rows (validation, idempotency lookups, domains,
   audit, signal), with the items_ingested receivers disconnected so the figure is ingest alone;
3. routing: routing.services.items_route over the ingested items (what the ingest receiver runs, here
   without ingest's own rows, so it reads them back);
4. ingest + routing: items_ingest with routing on, in one more project: the real path (the receiver routes
   from the rows ingest hands it), what an API client or an import waits for.

Prints wall time, items/s and this process's CPU time for each (on a busy machine the CPU column is
the steadier figure), ingest/floor and ingest/raw floor (aim: >= 20,000 items/s on PostgreSQL and a ratio >= 0.5).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbench.settings")
# A local run with production's settings: a throwaway key (DEBUG is off) and plain HTTP, not HTTPS.
os.environ.setdefault("SECRET_KEY", "bench-only-key-that-signs-nothing-real")
os.environ.setdefault("HTTPS", "false")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import DatabaseError, connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from core import bulk
from labeling import services
from labeling.models import Item, Prediction, Project  # noqa: E402
from labeling.signals import items_ingested  # noqa: E402
from routing import services as routing_services  # noqa: E402
from routing.engine.types import Stage  # noqa: E402

CHUNK = services.INGEST_CHUNK_SIZE
DOMAINS = ("bench/a", "bench/b", "bench/b/deep", "bench/c")


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float  # this process only: the database server's work is not in it


class Clock:
    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> Timing:
        return Timing(time.perf_counter() - self.wall, time.process_time() - self.cpu)


def make_rows(n: int, classes: list[str], seed: int, confident: float = 0.55) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    probabilities = rng.dirichlet(np.ones(len(classes)), size=n)
    sure = rng.random(n) < confident
    probabilities[sure] = 0.045 / (len(classes) - 1)
    probabilities[sure, rng.integers(0, len(classes), size=int(sure.sum()))] = 0.955
    probabilities = probabilities.tolist()
    domains = rng.integers(0, len(DOMAINS), size=n).tolist()
    return [
        {
            "external_id": f"item-{i}",
            "data": {"text": f"benchmark item {i}"},
            "domain": DOMAINS[domains[i]],
            "language": "en",
            "predictions": [{"model_version": "bench-1", "probabilities": dict(zip(classes, probabilities[i]))}],
        }
        for i in range(n)
    ]


@contextlib.contextmanager
def receivers_disconnected(signal) -> Iterator[None]:
    saved = list(signal.receivers)
    signal.receivers.clear()
    signal.sender_receivers_cache.clear()
    try:
        yield
    finally:
        signal.receivers[:] = saved
        signal.sender_receivers_cache.clear()


def new_project(kind: str, classes: list[str]) -> Project:
    slug = f"bench-{kind}-{time.time_ns()}"
    return services.project_create(name=slug, slug=slug, classes=classes)


def floor(project: Project, rows: list[dict[str, Any]]) -> float:
    """The least a bulk load can cost through the ORM: no validation, no lookups."""
    domain_ids = services.domains_ensure(DOMAINS)
    clock = Clock()
    with transaction.atomic():
        for offset in range(0, len(rows), CHUNK):
            chunk = rows[offset : offset + CHUNK]
            items = Item.objects.bulk_create([
                Item(project_id=project.pk, external_id=r["external_id"], data=r["data"], metadata={},
                     domain_id=domain_ids[r["domain"]], language=r["language"])
                for r in chunk
            ], batch_size=CHUNK)
            Prediction.objects.bulk_create([
                Prediction(item_id=item.pk, model_version=p["model_version"], probabilities=p["probabilities"])
                for item, r in zip(items, chunk)
                for p in r["predictions"]
            ], batch_size=CHUNK)
    return clock.stop()


def raw_floor(project: Project, rows: list[dict[str, Any]]) -> float:
    """The database's own cost: the COPY/executemany path ingest writes through, with no validation,
    lookups or audit (ids read back by external_id, as ingest does)."""
    domain_ids = services.domains_ensure(DOMAINS)
    clock = Clock()
    now = timezone.now()
    with transaction.atomic():
        for offset in range(0, len(rows), CHUNK):
            chunk = rows[offset : offset + CHUNK]
            bulk.insert_rows(Item, services.ITEM_INSERT_FIELDS, [
                (project.pk, r["external_id"], bulk.json_value(r["data"]), services.EMPTY_OBJECT,
                 domain_ids[r["domain"]], r["language"])
                for r in chunk
            ], now=now)
            ids = dict(bulk.select_in(Item, ("external_id", "id"), key="external_id",
                                      values=[r["external_id"] for r in chunk], where={"project_id": project.pk}))
            bulk.insert_rows(Prediction, services.PREDICTION_INSERT_FIELDS, [
                (ids[r["external_id"]], "", p["model_version"], bulk.json_value(p["probabilities"]))
                for r in chunk
                for p in r["predictions"]
            ], now=now)
    return clock.stop()


def ingest(project: Project, rows: list[dict[str, Any]]) -> tuple[Timing, services.IngestResult]:
    with receivers_disconnected(items_ingested):
        clock = Clock()
        result = services.items_ingest(project=project, rows=rows)
        return clock.stop(), result


def time_routing(project: Project, item_ids: tuple[int, ...]) -> tuple[Timing, dict[str, int]]:
    """Route the freshly ingested items with the service the ingest receiver calls (set-based, in chunks):
    signals, policy, stored decisions with their inputs and digests, item updates and the crowd/expert
    slots the decisions ask for. Timed apart from ingest so both figures stay visible."""
    clock = Clock()
    with transaction.atomic():
        result = routing_services.items_route(item_ids=item_ids, stage=Stage.INGEST)
    return clock.stop(), result.counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--classes", type=int, help="number of classes, 3-10 (default: seeded random)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--confident", type=float, default=0.55, help="share of confident predictions")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark projects")
    parser.add_argument("--json", help="also write the figures to this file (bench/report.py reads it)")
    args = parser.parse_args()

    call_command("migrate", interactive=False, verbosity=0)
    rng = np.random.default_rng(args.seed)
    k = args.classes or int(rng.integers(3, 11))
    if not 3 <= k <= 10:
        parser.error("--classes must be 3 to 10")
    classes = [f"class_{c}" for c in range(k)]
    rows = make_rows(args.n, classes, args.seed, args.confident)
    db = connection.settings_dict
    print(f"database: {connection.vendor} {db.get('NAME')}  items: {args.n:,}  classes: {k}  chunk: {CHUNK}")

    projects = [new_project("floor", classes), new_project("raw", classes), new_project("ingest", classes),
                new_project("routed", classes)]
    try:
        floor_t = floor(projects[0], rows)
        raw_t = raw_floor(projects[1], rows)
        ingest_t, result = ingest(projects[2], rows)
        assert result.created == args.n and result.predictions_added == args.n, result
        again_t, again = ingest(projects[2], rows)
        assert again.created == 0 and again.predictions_added == 0, again
        routing_t, outcomes = time_routing(projects[2], result.item_ids)
        clock = Clock()
        services.items_ingest(project=projects[3], rows=rows)
        real_t = clock.stop()

        print(f"{'':44}{'wall':>9}{'items/s':>10}{'client CPU':>12}")
        for label, t in (
            ("floor  (bulk_create items + predictions)", floor_t),
            ("raw floor (COPY/executemany, no checks)", raw_t),
            ("ingest (labeling.services.items_ingest)", ingest_t),
            ("re-ingest, all rows known (idempotent)", again_t),
        ):
            print(f"{label:44}{t.wall:8.2f}s{args.n / t.wall:10,.0f}{t.cpu:11.2f}s")
        print(
            f"ratio ingest/floor: {floor_t.wall / ingest_t.wall:.2f}   "
            f"ingest/raw floor: {raw_t.wall / ingest_t.wall:.2f}"
        )
        print(f"{'routing (routing.services.items_route)':44}{routing_t.wall:8.2f}s{args.n / routing_t.wall:10,.0f}"
              f"{routing_t.cpu:11.2f}s   outcomes {outcomes}")
        print(f"{'ingest + routing (items_ingest, routing on)':44}{real_t.wall:8.2f}s{args.n / real_t.wall:10,.0f}"
              f"{real_t.cpu:11.2f}s   load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if args.json:
            figures = {
                "database": connection.vendor, "items": args.n, "classes": k,
                "floor_per_s": args.n / floor_t.wall, "raw_floor_per_s": args.n / raw_t.wall,
                "ingest_per_s": args.n / ingest_t.wall, "reingest_per_s": args.n / again_t.wall,
                "routing_per_s": args.n / routing_t.wall, "combined_per_s": args.n / real_t.wall,
                "ingest_over_floor": floor_t.wall / ingest_t.wall, "ingest_over_raw": raw_t.wall / ingest_t.wall,
            }
            pathlib.Path(args.json).write_text(json.dumps(figures))
    finally:
        if not args.keep:
            with receivers_disconnected(items_ingested):
                for project in projects:
                    try:
                        routing_services.projects_purge(slugs=[project.slug])
                    except DatabaseError as exc:
                        print(f"could not delete benchmark project {project.slug}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    main()
