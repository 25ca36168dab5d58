"""Export speed: streaming a project's items (GET /api/projects/<slug>/export) in-process and over HTTP.

Usage:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/workbench_export .venv/bin/python bench/export.py
        [--n 50000] [--rounds 2] [--formats jsonl,csv,label-studio] [--keep] [--json FILE]

Set-up (the projects `bench-export-<n>` and `-<n/10>`, deleted at the end unless --keep, which lets the
next run reuse them): --n items ingested
through labeling.services.items_ingest, each with a prediction, two crowd annotations (with rationale and
factors) and metadata, one in ten with a gold label, in four domains: what a labelled project exports.

Per round:
1. floor: the same rows (items with their domain and gold, predictions, annotations with the annotator's
   name) read by a bare `COPY (SELECT ...) TO STDOUT` each: what the database costs to stream them, with no
   JSON written. Measured with psycopg directly, in this process.
2. in-process: labeling.selectors.item_export_rows written by labeling.formats.write_rows, per format, the
   text encoded as the API sends it.
3. HTTP: gunicorn (1 sync worker, started by bench/claim.py's start_gunicorn) serves GET .../export?format=jsonl to one
   client reading 1 MiB at a time, first for --n/10 items (a second project) then for --n; the worker's
   peak resident memory (VmHWM) after each tells whether memory grows with the number of items.

Prints items/s, MB/s, the ratio to the floor, the load average before and after (the client, gunicorn and
PostgreSQL share the machine's cores). Aim: >= 50,000 items/s streaming, server memory flat in the items.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
# bench/claim.py sets Django up as a production run (DEBUG off) and starts gunicorn as this script wants.
from claim import free_port, start_gunicorn  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from bench.workload import process_children  # noqa: E402
from labeling import formats, selectors, services  # noqa: E402
from labeling.models import Project  # noqa: E402
from labeling.signals import items_ingested  # noqa: E402
from routing.services import projects_purge  # noqa: E402

CLASSES = ["cat", "dog", "bird"]
DOMAINS = ("bench/a", "bench/b", "bench/b/deep", "bench/c")
INGEST_BATCH = 10_000


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def make_rows(start: int, n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(start, start + n):
        p = ((i * 37) % 89 + 5) / 100
        rows.append({
            "external_id": f"item-{i}",
            "data": {"text": f"benchmark item {i}: a sentence of ordinary length to label, with ünïcode"},
            "metadata": {"source": "bench", "batch": i // 1000},
            "domain": DOMAINS[i % len(DOMAINS)],
            "language": "en",
            **({"gold": CLASSES[i % 3]} if i % 10 == 0 else {}),
            "predictions": [{"model_version": "bench-1", "model_name": "m",
                             "probabilities": {"cat": round(p * 0.5, 4), "dog": round(p * 0.5, 4),
                                               "bird": round(1 - p, 4)}}],
            "annotations": [
                {"annotator": f"bench-export-{k}", "label": CLASSES[(i + k) % 3], "role": "crowd",
                 "rationale": "looks like it" if k else "", "factors": ["shape"] if k else [],
                 "time_spent_ms": 1000 + i % 5000, "confidence": 1 + (i + k) % 5,
                 "submitted_at": f"2026-01-0{1 + k}T10:{i % 60:02d}:00+00:00"}
                for k in range(2)
            ],
        })
    return rows


def project(n: int) -> Project:
    """The project `bench-export-<n>` with n items, made once."""
    slug = f"bench-export-{n}"
    found = Project.objects.filter(slug=slug).first()
    if found is not None and found.items.count() == n:
        return found
    if found is not None:
        raise SystemExit(f"{slug} exists with another item count: delete it first")
    for k in range(2):
        get_user_model().objects.get_or_create(username=f"bench-export-{k}")
    made = services.project_create(name=slug, slug=slug, classes=CLASSES)
    saved, items_ingested.receivers = items_ingested.receivers, []  # routing is not what is measured
    items_ingested.sender_receivers_cache.clear()
    try:
        for start in range(0, n, INGEST_BATCH):
            services.items_ingest(project=made, rows=make_rows(start, min(INGEST_BATCH, n - start)))
    finally:
        items_ingested.receivers = saved
        items_ingested.sender_receivers_cache.clear()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return made


def floor(p: Project) -> tuple[float, int]:
    """Seconds and bytes for a bare COPY of the rows an export reads."""
    queries = [
        "SELECT i.id, i.external_id, i.data, i.status, i.final_label, i.final_source, i.final_confidence, "
        "g.label, i.metadata, d.path, i.language FROM labeling_item i "
        "LEFT JOIN labeling_goldlabel g ON g.item_id = i.id LEFT JOIN experts_domain d ON d.id = i.domain_id "
        "WHERE i.project_id = %s ORDER BY i.id",
        "SELECT p.item_id, p.model_name, p.model_version, p.probabilities FROM labeling_prediction p "
        "JOIN labeling_item i ON i.id = p.item_id WHERE i.project_id = %s ORDER BY p.item_id, p.created_at, p.id",
        "SELECT a.item_id, u.username, a.label, a.rationale, a.factors, a.role, a.time_spent_ms, a.submitted_at, "
        "a.confidence FROM labeling_annotation a JOIN labeling_item i ON i.id = a.item_id "
        "JOIN auth_user u ON u.id = a.annotator_id WHERE i.project_id = %s ORDER BY a.item_id, a.submitted_at, a.id",
    ]
    connection.ensure_connection()
    raw = connection.connection
    size = 0
    start = time.perf_counter()
    with raw.cursor() as cursor:
        for sql in queries:
            query = sql.replace("%s", str(int(p.pk)))
            with cursor.copy(f"COPY ({query}) TO STDOUT") as copy:
                for block in copy:
                    size += len(block)
    return time.perf_counter() - start, size


def in_process(p: Project, fmt: str) -> tuple[float, int]:
    size = 0
    start = time.perf_counter()
    rows = selectors.item_export_rows(project=p)
    for chunk in formats.write_rows(rows, fmt):
        size += len(chunk.encode())
    return time.perf_counter() - start, size


def worker_peak_rss_mb(master: subprocess.Popen) -> float:
    """VmHWM (peak resident set) of the gunicorn worker, the master's child."""
    peak = 0.0
    for pid in process_children(master.pid):
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]) / 1024)
    return peak


def over_http(port: int, token: str, slug: str) -> tuple[float, int, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.perf_counter()
    conn.request("GET", f"/api/projects/{slug}/export?format=jsonl", headers={"Authorization": f"Token {token}"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"export answered {response.status}: {response.read()[:300]!r}")
    size = lines = 0
    while block := response.read(1 << 20):
        size += len(block)
        lines += block.count(b"\n")
    return time.perf_counter() - start, size, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--formats", default="jsonl,csv,label-studio")
    parser.add_argument("--keep", action="store_true", help="keep the projects for the next run (set-up is slow)")
    parser.add_argument("--json", metavar="FILE", help="also write the last round's figures here (bench/report.py)")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        raise SystemExit("bench/export.py runs on PostgreSQL (DATABASE_URL=postgres://...)")
    call_command("migrate", verbosity=0)
    print(f"database: {connection.settings_dict['NAME']}  cores: {os.cpu_count()}  load: {load()}")
    t = time.perf_counter()
    big, small = project(args.n), project(args.n // 10)
    print(f"set-up: {time.perf_counter() - t:.1f}s")
    admin, _ = get_user_model().objects.get_or_create(username="bench-export-admin", defaults={"is_staff": True})
    token, _ = Token.objects.get_or_create(user=admin)
    figures: dict[str, Any] = {}
    try:
        for r in range(1, args.rounds + 1):
            figures = {"items": args.n, "load_before": os.getloadavg()[0]}
            print(f"\nround {r}  load before: {load()}")
            wall, size = floor(big)
            figures["floor_per_s"] = floor_rate = args.n / wall
            print(f"{'floor: bare COPY TO STDOUT of the rows':46}{wall:7.2f}s {floor_rate:10,.0f} items/s "
                  f"{size / wall / 1e6:7.1f} MB/s")
            for fmt in args.formats.split(","):
                wall, size = in_process(big, fmt)
                figures[f"in_process_{fmt}_per_s"] = args.n / wall
                print(f"{'in-process export, ' + fmt:46}{wall:7.2f}s {args.n / wall:10,.0f} items/s "
                      f"{size / wall / 1e6:7.1f} MB/s  {args.n / wall / floor_rate:.2f} of floor")
            port = free_port()
            server = start_gunicorn(port, 1)
            try:
                over_http(port, token.key, small.slug)  # warm-up: the worker's first request imports and connects
                for key, p in (("small", small), ("big", big)):
                    n = p.items.count()
                    wall, size, lines = over_http(port, token.key, p.slug)
                    if lines != n:
                        raise RuntimeError(f"expected {n} lines, got {lines}")
                    rss = worker_peak_rss_mb(server)
                    figures[f"http_{key}_items"], figures[f"http_{key}_per_s"] = n, n / wall
                    figures[f"http_{key}_peak_rss_mb"] = rss
                    print(f"{f'HTTP export jsonl, {n:,} items':46}{wall:7.2f}s {n / wall:10,.0f} items/s "
                          f"{size / wall / 1e6:7.1f} MB/s  worker peak RSS {rss:6.1f} MB")
            finally:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=30)
            figures["load_after"] = os.getloadavg()[0]
            print(f"load after: {load()}")
        if args.json:
            pathlib.Path(args.json).write_text(json.dumps(figures))
    finally:
        if not args.keep:
            projects_purge(slugs=[big.slug, small.slug])


if __name__ == "__main__":
    main()
