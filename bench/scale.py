"""A project of 10 million items on PostgreSQL: what stays flat as it grows, and what does not.

Usage:
    .venv/bin/python bench/scale.py [--sizes 10000,1000000,10000000] [--slice 20000] [--fresh]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/wt_scale_10m .venv/bin/python bench/scale.py ...

PostgreSQL only; the database defaults to wt_scale_10m (created when missing) and is KEPT between runs: a
run resumes from the project's current size, so 10M items are built once (--fresh drops the project first).
At each size step (--sizes, ascending) the one project "scale" is grown to the size, then measured:

  ingest+routing  MEASURED ON THE REAL PATH: --slice new items (55% confident predictions, 45% unsure) go
                  through labeling.services.items_ingest with routing on (the items_ingested receiver runs
                  routing.services.items_route: decisions, item updates, crowd slots), 2,000 rows a call as
                  the API takes them, into the project as it stands at that size. Items/s of the whole.
  claim p95       16 claimer processes (bench/claim.py's) take from the project's open crowd slots for
                  --claim-seconds through work.claims.assignment_claim_next, each after 10 untimed warm-up
                  claims (steady state, as a long-lived web worker claims): median and p95 of one claim.
  submit p95      gunicorn (--workers) on 127.0.0.1; 8 crowd annotators loop POST .../next + POST
                  .../submit (each submit routes the item again) for --http-seconds (bench/claim.py's loop).
  item list       GET /api/projects/scale/items: the first page and a deep page (a cursor at the item 90%
                  of the way through the id order), 100 items a page; median and p95 of --list-runs each.
  export          GET /api/projects/scale/export?format=jsonl on a fresh one-worker gunicorn started with
                  deploy/gunicorn.conf.py, read for at most --export-seconds (whole project when it finishes
                  sooner; the output says which): items/s, and the worker's peak RSS (VmHWM, sampled while
                  streaming) against its RSS before the request.
  dashboard       the snapshots (dashboards.services.snapshots_refresh): the full rebuild (the nightly
                  job) while the project has at most --refresh-max-items items, beyond that only the newest
                  --refresh-days filled days; then the every-minute refresh after one day's items changed
                  (plus whatever the loops above touched); then the project's dashboard page through
                  Django's test client: median server time of 5.

Every figure is printed with the load average (the machine is shared). Only ingest+routing is measured
on the real write path. The rest of the items are FILLED between steps, by INSERT ... SELECT on the
server (bench/scale_fill.py; the fastest faithful path: no Python per row, foreign keys not re-checked
row by row), shaped like what routing and the work loop write:
items with one prediction each; 55% accepted from the model; 35% labeled by crowd consensus (2 crowd
labels, 2 completed crowd slots, 3 decisions); 3% open in the crowd queue (1 offered slot); 5% labeled by an
expert after 2 crowd labels; 2% escalated and waiting in the expert queue. Decisions carry the inputs,
posterior, reasons and signals of real decisions of the project (copied from its measured slices), so
rows have their real size. Filled items' ingest times spread over the year before the run (a 10M project
is a year of work), in id order.
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import http.client
import json
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlencode

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/wt_scale_10m")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbench.settings")
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "bench-only-key-that-signs-nothing-real")
os.environ.setdefault("HTTPS", "false")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1")

import django  # noqa: E402

django.setup()

import claim as claim_bench  # noqa: E402  (bench/claim.py: claimer processes, gunicorn, the HTTP loop)
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402
from scale_fill import CLASSES, DOMAINS, fill  # noqa: E402

from bench.workload import database_ensure  # noqa: E402
from dashboards.services import snapshots_refresh  # noqa: E402
from experts.models import Role  # noqa: E402
from experts.services import expert_create  # noqa: E402
from labeling.memberships import memberships_ensure  # noqa: E402
from labeling.models import Item, Project  # noqa: E402
from labeling.services import items_ingest, project_create  # noqa: E402
from routing.services import projects_purge  # noqa: E402
from work.claims import assignment_lease  # noqa: E402
from work.jobs import assignments_expire  # noqa: E402

SLUG = "scale"
INGEST_BATCH = 2000
FILL_DAYS = 365
FILL_CROWD = 100
FILL_EXPERTS = 10
CLAIMERS = 16
HTTP_CLIENTS = 8
DEFAULT_SIZES = "10000,1000000,10000000"
TABLES = ("labeling_item", "labeling_prediction", "labeling_annotation", "routing_routingdecision",
          "routing_assignment")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def say(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {line}  [load {load()}]", flush=True)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# --- set-up ----------------------------------------------------------------------------------------------


def users(prefix: str, n: int, role: str) -> list[Any]:
    User = get_user_model()
    out = []
    for i in range(n):
        user, created = User.objects.get_or_create(username=f"{prefix}-{i:03d}")
        if created:
            expert_create(user=user, display_name=user.username, role=role, capacity=100_000, languages=["en"])
        out.append(user)
    return out


def the_project(fresh: bool) -> Project:
    if fresh:
        projects_purge(slugs=[SLUG])
    project = Project.objects.filter(slug=SLUG).first()
    if project is None:
        project = project_create(name="Scale benchmark", slug=SLUG, classes=CLASSES)
    people = (users("scale-claimer", CLAIMERS, Role.CROWD) + users("scale-http", HTTP_CLIENTS, Role.CROWD)
              + users("scale-crowd", FILL_CROWD, Role.CROWD) + users("scale-expert", FILL_EXPERTS, Role.EXPERT))
    memberships_ensure(projects=[project], users=people)
    return project


def size_of(project: Project) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM labeling_item WHERE project_id = %s", [project.pk])
        return cursor.fetchone()[0]


# --- the measured slice: the real write path ---------------------------------------------------------------


def slice_rows(tag: str, n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    sure = rng.random(n) < 0.55
    top = np.where(sure, 0.97, rng.uniform(0.45, 0.8, n))
    domain = rng.integers(0, len(DOMAINS), n)
    rows = []
    for i in range(n):
        rest = 1.0 - float(top[i])
        rows.append({
            "external_id": f"{tag}-{i}",
            "data": {"text": f"scale item {tag} {i}"},
            "domain": DOMAINS[domain[i]],
            "language": "en",
            "predictions": [{"model_version": "scale-1",
                             "probabilities": {"cat": float(top[i]), "dog": rest * 0.6, "bird": rest * 0.4}}],
        })
    return rows


def ingest_slice(project: Project, n: int, step: int) -> dict[str, float]:
    rows = slice_rows(f"slice{step}", n, seed=step)
    t0 = time.perf_counter()
    for start in range(0, n, INGEST_BATCH):
        items_ingest(project=project, rows=rows[start:start + INGEST_BATCH])
    wall = time.perf_counter() - t0
    return {"items": n, "seconds": wall, "per_s": n / wall, "load": os.getloadavg()[0]}


# --- measurements -----------------------------------------------------------------------------------------


def vacuum() -> float:
    t = time.perf_counter()
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute("CHECKPOINT")
    return time.perf_counter() - t


def measure_claims(project: Project, seconds: float) -> dict[str, float]:
    claimers = list(get_user_model().objects.filter(username__startswith="scale-claimer-").order_by("username")
                    .values_list("id", flat=True))
    latencies, _, wall, _ = claim_bench.run_claimers(claimers, project.pk, seconds)
    return {"claimers": len(claimers), "claims": len(latencies), "median_ms": 1000 * statistics.median(latencies),
            "p95_ms": 1000 * pct(latencies, 95), "per_s": len(latencies) / wall, "load": os.getloadavg()[0]}


def staff_token() -> str:
    admin, _ = get_user_model().objects.get_or_create(username="scale-admin",
                                                      defaults={"is_staff": True, "is_superuser": True})
    return Token.objects.get_or_create(user=admin)[0].key


def get(port: int, path: str, token: str) -> tuple[int, bytes, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    t = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"Token {token}"})
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - t
    conn.close()
    return response.status, body, elapsed


def measure_submit(project: Project, port: int, seconds: float) -> dict[str, float]:
    people = list(get_user_model().objects.filter(username__startswith="scale-http-").order_by("username"))
    tokens = [Token.objects.get_or_create(user=u)[0].key for u in people]
    out, wall = claim_bench.run_clients(port, tokens, project.slug, seconds)
    return {"annotations": len(out["submit"]), "per_s": len(out["submit"]) / wall, "errors": out["errors"],
            "next_p95_ms": pct(out["next"], 95), "submit_median_ms": statistics.median(out["submit"] or [float("nan")]),
            "submit_p95_ms": pct(out["submit"], 95), "load": os.getloadavg()[0]}


def deep_cursor(project: Project, fraction: float) -> tuple[str, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id) FROM labeling_item WHERE project_id = %s", [project.pk])
        low, high = cursor.fetchone()
    position = int(low + fraction * (high - low))
    # DRF's CursorPagination cursor: base64 of a query string, "p" the last id seen.
    return base64.b64encode(urlencode({"p": str(position)}).encode()).decode(), position


def measure_list(project: Project, port: int, token: str, runs: int) -> dict[str, float]:
    base = f"/api/projects/{project.slug}/items/"
    cursor, position = deep_cursor(project, 0.9)
    out: dict[str, float] = {"deep_after_id": position}
    for name, path in (("first", base), ("deep", f"{base}?{urlencode({'cursor': cursor})}")):
        status, body, _ = get(port, path, token)  # warm-up
        if status != 200:
            raise SystemExit(f"{path} answered {status}: {body[:300]!r}")
        if len(json.loads(body)["results"]) != 100:
            raise SystemExit(f"{path} returned fewer than 100 items")
        times = [get(port, path, token)[2] * 1000 for _ in range(runs)]
        out[f"{name}_median_ms"], out[f"{name}_p95_ms"] = statistics.median(times), pct(times, 95)
    out["load"] = os.getloadavg()[0]
    return out


def stop(server: subprocess.Popen) -> None:
    """Stop a gunicorn started here: SIGTERM, then SIGKILL if a request (an abandoned export) holds it."""
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _kib(pid: int, field: str) -> int:
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:  # the process is gone
        pass
    return 0


def export_server(port: int) -> subprocess.Popen:
    """One gunicorn worker with the deployment's settings (deploy/gunicorn.conf.py: its timeout on silence,
    no worker recycling during the request)."""
    env = {**os.environ, "DEBUG": "false", "ALLOWED_HOSTS": "127.0.0.1", "HTTPS": "false", "LOG_LEVEL": "WARNING",
           "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1", "GUNICORN_ACCESS_LOG": "/dev/null",
           "GUNICORN_PRELOAD": "false"}
    config = str(ROOT / "deploy" / "gunicorn.conf.py")
    process = subprocess.Popen([str(ROOT / ".venv" / "bin" / "gunicorn"), "-c", config, "workbench.wsgi"], cwd=ROOT,
                               env=env, start_new_session=True)
    for _ in range(300):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/accounts/login/")
            if conn.getresponse().status == 200 and _children(process.pid):
                return process
        except OSError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError("gunicorn did not start")


def measure_export(project: Project, token: str, seconds: float, total: int) -> dict[str, Any]:
    port = claim_bench.free_port()
    server = export_server(port)
    try:
        worker = _children(server.pid)[0]
        rss_before = _kib(worker, "VmRSS")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        t = time.perf_counter()
        conn.request("GET", f"/api/projects/{project.slug}/export?format=jsonl",
                     headers={"Authorization": f"Token {token}"})
        response = conn.getresponse()
        if response.status != 200:
            raise SystemExit(f"export answered {response.status}: {response.read()[:300]!r}")
        lines, first_byte, error, peak = 0, None, "", 0
        while True:
            # Sampled while streaming: a worker killed mid-stream (gunicorn's timeout) takes its figures along.
            peak = max(peak, _kib(worker, "VmHWM"))
            try:
                chunk = response.read1(1 << 20)
            except (http.client.HTTPException, OSError) as exc:  # the worker killed mid-stream, say
                error = f"stream broken after {lines:,} items: {exc!r}"
                break
            if not chunk:
                break
            if first_byte is None:
                first_byte = time.perf_counter() - t
            lines += chunk.count(b"\n")
            if time.perf_counter() - t > seconds:
                break
        wall = time.perf_counter() - t
        whole = lines >= total
        peak = max(peak, _kib(worker, "VmHWM"))
        conn.close()
    finally:
        stop(server)
    return {"items": lines, "whole": whole, "error": error, "seconds": wall, "per_s": lines / wall,
            "first_byte_s": first_byte or 0.0,
            "rss_before_mib": rss_before / 1024, "peak_rss_mib": peak / 1024, "load": os.getloadavg()[0]}


def measure_dashboard(project: Project, max_items: int, recent_days: int) -> dict[str, Any]:
    """The snapshots' full rebuild (the nightly job) up to `max_items` items in the project; beyond, the
    refresh of the newest `recent_days` days of filled items only (the page then reads older snapshots for
    the rest); the every-minute refresh of one changed day; and the page."""
    out: dict[str, Any] = {}
    total = size_of(project)
    if total > max_items:
        newest = Item.objects.filter(project=project, external_id__startswith="fill-").order_by("-id").values_list(
            "created_at", flat=True)[0]
        Item.objects.filter(project=project, created_at__gte=newest - dt.timedelta(days=recent_days),
                            created_at__lte=newest).update(updated_at=timezone.now())
        out["refresh_scope"] = f"the newest {recent_days} filled days (full rebuild skipped)"
        full = False
    else:
        out["refresh_scope"] = "full rebuild"
        full = True
    t = time.perf_counter()
    result = snapshots_refresh(full=full)
    out.update(refresh_s=time.perf_counter() - t, refresh_items=result.items, refresh_partitions=result.partitions,
               refresh_load=os.getloadavg()[0])
    # The every-minute job's usual work: one day whose items changed (the newest filled day).
    day = Item.objects.filter(project=project, external_id__startswith="fill-").order_by("-id").values_list(
        "created_at", flat=True).first()
    if day is not None:
        start = day.replace(hour=0, minute=0, second=0, microsecond=0)
        Item.objects.filter(project=project, created_at__gte=start, created_at__lt=start + dt.timedelta(days=1)
                            ).update(updated_at=timezone.now())
        t = time.perf_counter()
        result = snapshots_refresh()
        out.update(day_refresh_s=time.perf_counter() - t, day_refresh_items=result.items)
    admin = get_user_model().objects.get(username="scale-admin")
    client = Client()
    client.force_login(admin)
    url = reverse("dashboards:project", kwargs={"slug": project.slug})
    client.get(url)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - t)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
    out.update(page_median_ms=1000 * statistics.median(times), page_max_ms=1000 * max(times),
               load=os.getloadavg()[0])
    return out


# --- the run ------------------------------------------------------------------------------------------------


def step(project: Project, size: int, args: argparse.Namespace, t0: dt.datetime, total_target: int) -> dict:
    have = size_of(project)
    say(f"step {size:,}: the project has {have:,} items")
    figures: dict[str, Any] = {"size": size}
    real = min(args.slice, size - have)
    if real <= 0:
        say(f"  already {have:,} >= {size:,}: measuring as it stands")
        real = 0
    to_fill = size - have - real
    if to_fill > 0:
        filled_before = Item.objects.filter(project=project, external_id__startswith="fill-").count()
        t = time.perf_counter()
        fill(project, to_fill, filled_before, total_target, t0, days=FILL_DAYS, say=say)
        figures["fill"] = {"items": to_fill, "seconds": time.perf_counter() - t}
        say(f"  fill: {to_fill:,} items in {figures['fill']['seconds']:.0f} s")
    if real:
        figures["ingest"] = ingest_slice(project, real, size)
        f = figures["ingest"]
        say(f"  ingest+routing (real path): {f['items']:,} items in {f['seconds']:.1f} s = {f['per_s']:,.0f} items/s")
    figures["vacuum_s"] = vacuum()
    say(f"  VACUUM ANALYZE + CHECKPOINT: {figures['vacuum_s']:.0f} s")
    figures["items"] = size_of(project)
    token = staff_token()
    if not args.skip_dashboard:
        d = figures["dashboard"] = measure_dashboard(project, args.refresh_max_items, args.refresh_days)
        say(f"  dashboard: {d['refresh_scope']}: {d['refresh_s']:.1f} s ({d['refresh_items']:,} items, "
            f"{d['refresh_partitions']} partitions, load {d['refresh_load']:.2f}); refresh of one changed day "
            f"{d.get('day_refresh_s', float('nan')):.1f} s ({d.get('day_refresh_items', 0):,} items); "
            f"page median {d['page_median_ms']:.0f} ms (max {d['page_max_ms']:.0f})")
    if not args.skip_claims:
        c = figures["claims"] = measure_claims(project, args.claim_seconds)
        say(f"  claims x{c['claimers']}: {c['claims']:,} claims, median {c['median_ms']:.2f} ms, "
            f"p95 {c['p95_ms']:.2f} ms, {c['per_s']:.0f}/s")
        # The claimers' slots go back to the queue as when their leases run out: at 10k items they held
        # every open crowd slot, and the HTTP loop below found no work at all.
        after_leases, released = timezone.now() + assignment_lease() + dt.timedelta(seconds=1), 0
        while expired := assignments_expire(now=after_leases):  # a batch (work.jobs.JOB_BATCH) per call
            released += expired
        say(f"  claims released (leases expired): {released:,}")
    if not args.skip_http:
        connections.close_all()
        port = claim_bench.free_port()
        server = claim_bench.start_gunicorn(port, args.workers)
        try:
            s = figures["submit"] = measure_submit(project, port, args.http_seconds)
            say(f"  HTTP loop x{HTTP_CLIENTS}: {s['annotations']} annotations ({s['per_s']:.0f}/s, "
                f"{s['errors']} errors); submit median {s['submit_median_ms']:.1f} ms, "
                f"p95 {s['submit_p95_ms']:.1f} ms; next p95 "
                f"{s['next_p95_ms']:.1f} ms")
            li = figures["list"] = measure_list(project, port, token, args.list_runs)
            say(f"  item list: first page median {li['first_median_ms']:.1f} ms (p95 {li['first_p95_ms']:.1f}); "
                f"deep page (after id {li['deep_after_id']:,}) median {li['deep_median_ms']:.1f} ms "
                f"(p95 {li['deep_p95_ms']:.1f})")
        finally:
            stop(server)
    if not args.skip_export:
        connections.close_all()
        e = figures["export"] = measure_export(project, token, args.export_seconds, figures["items"])
        say(f"  export: {e['items']:,} items ({'whole project' if e['whole'] else 'stopped after --export-seconds'})"
            f" in {e['seconds']:.1f} s = {e['per_s']:,.0f} items/s, first byte after {e['first_byte_s']:.1f} s; "
            f"worker RSS {e['rss_before_mib']:.0f} MiB before, peak {e['peak_rss_mib']:.0f} MiB {e['error']}")
    return figures


def save(path: pathlib.Path, figures: dict[str, Any]) -> None:
    steps = json.loads(path.read_text())["steps"] if path.exists() and path.stat().st_size else []
    steps = sorted([s for s in steps if s["size"] != figures["size"]] + [figures], key=lambda s: s["size"])
    path.write_text(json.dumps({"database": connection.settings_dict["NAME"], "steps": steps}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help=f"ascending item counts (default {DEFAULT_SIZES})")
    parser.add_argument("--slice", type=int, default=20_000, help="items ingested on the real path per step")
    parser.add_argument("--fresh", action="store_true", help="drop the project first (default: resume)")
    parser.add_argument("--claim-seconds", type=float, default=3.0)
    parser.add_argument("--http-seconds", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of the HTTP loop")
    parser.add_argument("--list-runs", type=int, default=20)
    parser.add_argument("--export-seconds", type=float, default=50.0,
                        help="stop reading the export after this long (gunicorn's sync worker is killed after "
                             "deploy/gunicorn.conf.py's timeout, 60 s, however much it streams)")
    parser.add_argument("--skip-claims", action="store_true")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-export", action="store_true")
    parser.add_argument("--skip-dashboard", action="store_true")
    parser.add_argument("--refresh-max-items", type=int, default=1_200_000,
                        help="rebuild the snapshots in full up to this many items in the project; beyond, "
                             "refresh only the newest --refresh-days filled days")
    parser.add_argument("--refresh-days", type=int, default=14)
    parser.add_argument("--json", help='write the figures to this file as {"steps": [...]}, replacing steps of '
                                         "the same size already in it (so resumed runs add up; bench/report.py "
                                         "reads it)")
    args = parser.parse_args()
    if not os.environ["DATABASE_URL"].startswith("postgres"):
        parser.error("PostgreSQL only: DATABASE_URL=postgres://postgres@127.0.0.1:5432/wt_scale_10m")
    sizes = [int(s) for s in args.sizes.split(",")]
    if sizes != sorted(sizes):
        parser.error("--sizes must be ascending")
    database_ensure()
    project = the_project(args.fresh)
    first = Item.objects.filter(project=project).order_by("id").values_list("created_at", flat=True).first()
    # Filled items' ingest times: over the year before the project's first run, in id order.
    t0 = (first or timezone.now()) - dt.timedelta(days=FILL_DAYS)
    say(f"database {connection.settings_dict['NAME']}, project {SLUG!r} (id {project.pk}), cores {os.cpu_count()}")
    for size in sizes:
        figures = step(project, size, args, t0, sizes[-1])
        figures["load_after"] = os.getloadavg()
        if args.json:
            save(pathlib.Path(args.json), figures)
    say("done")


if __name__ == "__main__":
    main()
