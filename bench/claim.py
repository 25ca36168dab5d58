"""Claim latency and the annotators' work loop over HTTP, on PostgreSQL.

Usage:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/workbench_claims .venv/bin/python bench/claim.py
        [--slots 3000] [--seconds 15] [--warmup 10] [--http-items 6000] [--http-seconds 20] [--workers 4] [--keep]
        [--auth-requests 5000] [--auth-rounds 3] [--auth-classes dotted.Class,...]
        [--ab-root /path/to/other/worktree] [--ab-rounds 2]

1. claims: for 1, 4 and 16 concurrent claimers (separate processes, as web workers would be), a fresh
   project with --slots open crowd slots made by routing; every claimer claims (work.claims.
   assignment_claim_next) in a loop without pause. What is measured is steady-state claiming, as a
   long-lived web worker with CONN_MAX_AGE sees it: each claimer first makes --warmup claims on its own
   connection (untimed; the first prepares the statements, and PostgreSQL plans a prepared statement
   afresh for its first five executions before it settles on a generic plan; a process's first claims
   also fault in its copy-on-write memory), then all start together and claim until --seconds pass or the
   first of them finds the queue empty (the others stop at their next claim, so every timed claim had all
   claimers competing). Prints median and p95 latency of one timed claim, claims/s, the claimers' CPU
   per timed claim, the load average, and, so that nothing is hidden, the median of each claimer's very
   first claim (connection's first statement). Aim: p95 < 20 ms with 16 claimers on a quiet machine.
2. http loop: gunicorn (--workers sync workers) on 127.0.0.1 against the same database; --clients threads,
   each a different crowd annotator with an API token, repeat POST /api/projects/<slug>/next and POST
   /api/assignments/<id>/submit (the item is routed again on every submit) for --http-seconds, after an
   unmeasured warm-up (WARM_UP_SECONDS: a fresh worker imports the URLconf, DRF and the API modules on
   its first requests, 0.3-0.7 s of CPU each, which earlier runs counted in the measurement). Prints
   annotations/s, median/p95 of each call and the CPU per annotation of the client, gunicorn and the
   database's backends (from /proc): on one machine they share its cores, so their sum bounds the
   rate. Aim: > 200 annotations/s. The client is cheap on purpose (about 0.9 ms of CPU per annotation,
   against 7-8 for gunicorn and 2.5-3.5 for PostgreSQL, load 7-8): one small JSON body each way, and a
   new connection per request because gunicorn's sync worker closes every connection after its
   response, so keep-alive would save nothing. With --ab-root, the loop alternates between this code
   and the code of another worktree (its own .venv, the same migrations) on the same database, --ab-rounds
   times each: old and new measured under the same load.
3. token authentication, the first step of every call of the loop: per class of --auth-classes (default
   the API's core.authentication.PreparedTokenAuthentication and DRF's TokenAuthentication, which it
   specialises) and round, --auth-requests requests (`Authorization: Token <key>`, built by RequestFactory,
   the loop's annotators' keys in turn) through the class's `authenticate` on one connection, as a web
   worker with CONN_MAX_AGE would; rounds alternate the classes so that a change in
   the load falls on all of them. Prints median, p95 and mean of one authentication.

The database is VACUUMed and ANALYZEd after set-up, as autovacuum would have done on a live one (dead rows
left by earlier runs, whose projects are deleted, otherwise slow the index scans), then CHECKPOINTed, so
that writing out the set-up does not fall into the measurement. The machine's load
matters (the client, gunicorn and PostgreSQL share its cores): the script prints the load average.
"""
from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import pathlib
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.workload import bench_environment, crowd_project, crowd_users, process_children

bench_environment()

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, connections
from django.db.models import Q
from django.test import RequestFactory
from django.utils.module_loading import import_string
from rest_framework.authtoken.models import Token
from rest_framework.request import Request

from labeling.memberships import memberships_ensure
from labeling.models import Project
from routing.models import Assignment, AssignmentStatus
from routing.services import projects_purge
from work import claims

LEVELS = tuple(int(x) for x in os.environ.get("CLAIM_LEVELS", "1,4,16").split(","))
DEFAULT_HTTP_CLIENTS = 8
# The HTTP loop runs this long before it is measured.
WARM_UP_SECONDS = 2.0
# The API's token check, timed next to DRF's own TokenAuthentication, which it specialises.
API_AUTH = "core.authentication.PreparedTokenAuthentication"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def queue_project(slug: str, n: int, *, crowd_overlap: int) -> Project:
    """A project whose `n` items all go to the crowd (routing creates the slots on ingest)."""
    project = crowd_project(slug, n, crowd_overlap=crowd_overlap)
    # Claims take only from projects the claimer is a member of (core.access).
    bench_crowd = get_user_model().objects.filter(username__startswith="bench-crowd")
    memberships_ensure(projects=[project], users=list(bench_crowd))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        # Written out now, not by the checkpointer in the middle of the measurement.
        cursor.execute("CHECKPOINT")
    return project


# --- 1. claims -------------------------------------------------------------------------------------------


# Untimed claims per claimer before the timed ones (module docstring: what they warm up).
WARMUP_CLAIMS = 10


def _claimer(user_id: int, project_id: int, seconds: float, warmup: int, barrier: Any, ran_dry: Any,
             out: multiprocessing.Queue) -> None:
    connections.close_all()
    user = get_user_model().objects.get(pk=user_id)
    project = Project.objects.get(pk=project_id)
    t0 = time.perf_counter()
    first = claims.assignment_claim_next(user=user, project=project) is not None
    first_s = time.perf_counter() - t0
    taken = int(first)
    for _ in range(warmup - 1):
        taken += claims.assignment_claim_next(user=user, project=project) is not None
    barrier.wait()
    latencies = []
    cpu = time.process_time()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline and not ran_dry.value:
        t0 = time.perf_counter()
        claimed = claims.assignment_claim_next(user=user, project=project)
        elapsed = time.perf_counter() - t0
        if claimed is None:
            ran_dry.value = 1
            break
        latencies.append(elapsed)
    cpu = time.process_time() - cpu
    connections.close_all()
    out.put((latencies, cpu, taken, first_s if first else None))


def run_claimers(user_ids: list[int], project_id: int, seconds: float, *, warmup: int = WARMUP_CLAIMS
                 ) -> tuple[list[float], float, float, dict[str, Any]]:
    """One claimer process per user: `warmup` untimed claims each, then all claim together for `seconds` or
    until one finds the queue empty: (seconds of every timed claim, the claimers' CPU seconds over the
    timed claims, wall seconds of the timed part, {"warmup_claims": untimed claims taken, "first_s": each
    claimer's first claim (seconds), "ran_dry": whether the queue ran empty before `seconds`})."""
    connections.close_all()
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    # The parent is the last party: it notes the time when every claimer is warm and released.
    barrier = ctx.Barrier(len(user_ids) + 1)
    ran_dry = ctx.Value("i", 0)
    procs = [ctx.Process(target=_claimer, args=(user_id, project_id, seconds, warmup, barrier, ran_dry, out))
             for user_id in user_ids]
    for p in procs:
        p.start()
    barrier.wait()
    started = time.perf_counter()
    gathered = [out.get() for _ in procs]
    wall = time.perf_counter() - started
    for p in procs:
        p.join()
    details = {
        "warmup_claims": sum(g[2] for g in gathered),
        "first_s": [g[3] for g in gathered if g[3] is not None],
        "ran_dry": bool(ran_dry.value),
    }
    return [x for g in gathered for x in g[0]], sum(g[1] for g in gathered), wall, details


def bench_claims(slots: int, seconds: float, warmup: int = WARMUP_CLAIMS) -> list[dict[str, float]]:
    results = []
    for level in LEVELS:
        # Fresh annotators per level: what one level's claimers hold does not weigh on the next.
        users = crowd_users(level, f"bench-crowd-{level}x")
        project = queue_project(f"bench-claim-{level}-{time.time_ns()}", slots, crowd_overlap=1)
        latencies, cpu, wall, details = run_claimers([u.pk for u in users[:level]], project.pk, seconds, warmup=warmup)
        load = os.getloadavg()[0]
        claimed = Assignment.objects.filter(project=project, status=AssignmentStatus.ACTIVE)
        taken = claimed.count()
        twice = taken - claimed.values("item_id").distinct().count()
        assert taken == len(latencies) + details["warmup_claims"] and twice == 0, (taken, len(latencies), twice)
        results.append(
            {
                "claimers": level,
                "claims": len(latencies),
                "warmup_claims": details["warmup_claims"],
                "median_ms": 1000 * statistics.median(latencies),
                "p95_ms": 1000 * percentile(latencies, 95),
                "per_s": len(latencies) / wall,
                "client_cpu_ms": 1000 * cpu / max(1, len(latencies)),
                "first_claim_median_ms": 1000 * statistics.median(details["first_s"]),
                "ran_dry": details["ran_dry"],
                "load": load,
            }
        )
    return results


# --- 2. the HTTP loop ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(port: int, workers: int, root: pathlib.Path = ROOT) -> subprocess.Popen:
    """gunicorn serving the code in `root` (a worktree with its own .venv; default this one)."""
    env = {
        **os.environ,
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "HTTPS": "false",
        "LOG_LEVEL": "WARNING",
        "CONN_MAX_AGE": "600",
    }
    process = subprocess.Popen(
        [
            str(root / ".venv" / "bin" / "gunicorn"),
            "workbench.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        cwd=root,
        env=env,
        start_new_session=True,
    )
    for _ in range(200):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/accounts/login/")
            if conn.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError("gunicorn did not start")


def _client(port: int, token: str, slug: str, seconds: float, seed: int, out: dict, lock: threading.Lock) -> None:
    rng = np.random.default_rng(seed)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    next_ms, submit_ms, errors = [], [], 0
    deadline = time.perf_counter() + seconds

    def post(path: str, body: dict | None) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, (json.loads(data) if data else None)

    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        status, claimed = post(f"/api/projects/{slug}/next", None)
        next_ms.append(1000 * (time.perf_counter() - t0))
        if status == 204:
            break
        if status != 200:
            errors += 1
            continue
        label = "cat" if rng.random() < 0.85 else "dog"
        t0 = time.perf_counter()
        status, _ = post(f"/api/assignments/{claimed['assignment']}/submit", {"label": label, "time_spent_ms": 1})
        submit_ms.append(1000 * (time.perf_counter() - t0))
        if status != 200:
            errors += 1
    with lock:
        out["next"] += next_ms
        out["submit"] += submit_ms
        out["errors"] += errors


def run_clients(port: int, tokens: list[str], slug: str, seconds: float) -> tuple[dict[str, Any], float]:
    """One client thread per token looping next + submit for `seconds`: ({"next": [ms], "submit": [ms],
    "errors": n}, wall seconds)."""
    out: dict[str, Any] = {"next": [], "submit": [], "errors": 0}
    lock = threading.Lock()
    threads = [threading.Thread(target=_client, args=(port, token, slug, seconds, i, out, lock))
               for i, token in enumerate(tokens)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out, time.perf_counter() - started


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) each process has used so far; those gone are left out."""
    used = {}
    for pid in pids:
        try:
            fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


def cpu_since(before: dict[int, float], now: dict[int, float]) -> float:
    """CPU seconds the processes of `now` used since `before` (all of it for those started since)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in now.items())


def server_pids(server: subprocess.Popen) -> list[int]:
    """gunicorn's master and its workers."""
    return [server.pid, *process_children(server.pid)]


def database_pids() -> list[int]:
    """The PostgreSQL backends serving this database, this process's own connection left out (none of them
    is on this machine when the database is elsewhere: cpu_seconds then finds none)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        pids = [pid for (pid,) in cursor.fetchall()]
    connections.close_all()
    return pids


def bench_http(users: list[Any], items: int, seconds: float, workers: int, clients: int,
               root: pathlib.Path = ROOT) -> dict[str, float]:
    """The loop against gunicorn serving the code in `root`. Besides latencies, the CPU each side spent per
    annotation: this client (its threads), gunicorn (master and workers) and the database's backends (read
    from /proc at the end, when the workers' connections are still open; a database on another machine
    counts 0): on one machine they share its cores, so their sum bounds the annotations per second."""
    project = queue_project(f"bench-http-{time.time_ns()}", items, crowd_overlap=2)
    tokens = [Token.objects.get_or_create(user=u)[0].key for u in users[:clients]]
    connections.close_all()
    port = free_port()
    server = start_gunicorn(port, workers, root)
    try:
        # Unmeasured: every worker imports and builds what it does on its first requests (seconds of CPU
        # on these cores, which a server that has been running has long spent).
        run_clients(port, tokens[:clients], project.slug, WARM_UP_SECONDS)
        server_before = cpu_seconds(server_pids(server))
        database_before = cpu_seconds(database_pids())
        client_before = time.process_time()
        out, wall = run_clients(port, tokens[:clients], project.slug, seconds)
        client_cpu = time.process_time() - client_before
        server_cpu = cpu_since(server_before, cpu_seconds(server_pids(server)))
        database_cpu = cpu_since(database_before, cpu_seconds(database_pids()))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    n = max(1, len(out["submit"]))
    return {
        "annotations": len(out["submit"]),
        "per_s": len(out["submit"]) / wall,
        "errors": out["errors"],
        "next_median_ms": statistics.median(out["next"]),
        "next_p95_ms": percentile(out["next"], 95),
        "submit_median_ms": statistics.median(out["submit"]),
        "submit_p95_ms": percentile(out["submit"], 95),
        "client_cpu_ms": 1000 * client_cpu / n,
        "server_cpu_ms": 1000 * server_cpu / n,
        "database_cpu_ms": 1000 * database_cpu / n,
        "labeled": project.items.filter(status="labeled").count(),
        "load": os.getloadavg()[0],
    }


def http_report(h: dict[str, float], *, clients: int, workers: int, code: str = "") -> str:
    return (
        f"\nHTTP loop{code}, {clients} annotators, gunicorn x{workers}: {h['annotations']} annotations, "
        f"{h['per_s']:.0f}/s, {h['errors']} errors, {h['labeled']} items labeled, load {h['load']:.2f}\n"
        f"  next:   median {h['next_median_ms']:.1f} ms, p95 {h['next_p95_ms']:.1f} ms\n"
        f"  submit: median {h['submit_median_ms']:.1f} ms, p95 {h['submit_p95_ms']:.1f} ms\n"
        f"  CPU per annotation: client {h['client_cpu_ms']:.2f} ms, gunicorn {h['server_cpu_ms']:.2f} ms, "
        f"PostgreSQL {h['database_cpu_ms']:.2f} ms"
    )


# --- 3. token authentication ----------------------------------------------------------------------------


def time_class(dotted: str, keys: list[str], requests: int) -> list[float]:
    """Seconds per `authenticate` call; the user it returns is checked against the token's."""
    authenticator = import_string(dotted)()
    factory = RequestFactory()
    built = [Request(factory.post("/api/", HTTP_AUTHORIZATION=f"Token {keys[i % len(keys)]}")) for i in range(requests)]
    expected = dict(Token.objects.filter(key__in=keys).values_list("key", "user_id"))
    latencies = []
    for request in built:
        t0 = time.perf_counter()
        user, token = authenticator.authenticate(request)
        latencies.append(time.perf_counter() - t0)
        assert user.pk == expected[token.key]
    return latencies


def bench_auth(classes: list[str], keys: list[str], *, requests: int, rounds: int) -> dict[str, dict[str, float]]:
    """Per class: median, p95 and mean microseconds over all rounds, and the load average while measured."""
    for dotted in classes:  # warm-up: imports, the connection, prepared statements
        time_class(dotted, keys, min(requests, 200))
    gathered: dict[str, list[float]] = {c: [] for c in classes}
    loads: dict[str, list[float]] = {c: [] for c in classes}
    for _ in range(rounds):
        for dotted in classes:
            gathered[dotted] += time_class(dotted, keys, requests)
            loads[dotted].append(os.getloadavg()[0])
    out = {}
    for dotted, latencies in gathered.items():
        latencies.sort()
        out[dotted] = {
            "median_us": 1e6 * statistics.median(latencies),
            "p95_us": 1e6 * latencies[int(0.95 * (len(latencies) - 1))],
            "mean_us": 1e6 * statistics.fmean(latencies),
            "load": statistics.fmean(loads[dotted]),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slots", type=int, default=3000, help="open crowd slots per claim level")
    parser.add_argument("--seconds", type=float, default=15.0, help="most time per claim level")
    parser.add_argument("--warmup", type=int, default=WARMUP_CLAIMS, help="untimed claims per claimer first")
    parser.add_argument("--http-items", type=int, default=6000)
    parser.add_argument("--http-seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--clients", type=int, default=DEFAULT_HTTP_CLIENTS, help="annotators in the HTTP loop")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark projects")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--ab-root", help="also run the HTTP loop against the code in this directory (another "
                        "worktree with its own .venv and the same migrations), alternating with this code")
    parser.add_argument("--ab-rounds", type=int, default=2, help="rounds of the alternation with --ab-root")
    parser.add_argument("--skip-claims", action="store_true")
    parser.add_argument("--auth-requests", type=int, default=5000, help="authentications per class and round")
    parser.add_argument("--auth-rounds", type=int, default=3)
    parser.add_argument("--auth-classes", default=f"{API_AUTH},rest_framework.authentication.TokenAuthentication",
                        help="comma-separated dotted paths of DRF authentication classes to time")
    parser.add_argument("--skip-auth", action="store_true")
    parser.add_argument("--json", help="also write the figures to this file (bench/report.py reads it)")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        parser.error("run it on PostgreSQL: DATABASE_URL=postgres://postgres@127.0.0.1:5432/workbench_claims")
    call_command("migrate", interactive=False, verbosity=0)
    print(f"database: {connection.settings_dict['NAME']}  cores: {os.cpu_count()}  load: {os.getloadavg()[0]:.1f}")
    users = crowd_users(args.clients, "bench-crowd")
    try:
        if not args.skip_claims:
            print(
                f"\n{'claimers':>8}{'claims':>8}{'median ms':>11}{'p95 ms':>9}{'claims/s':>10}"
                f"{'client CPU ms/claim':>21}{'1st claim ms':>14}{'load':>6}"
            )
        claims = [] if args.skip_claims else bench_claims(args.slots, args.seconds, args.warmup)
        for r in claims:
            print(
                f"{r['claimers']:>8}{r['claims']:>8}{r['median_ms']:>11.2f}{r['p95_ms']:>9.2f}{r['per_s']:>10.0f}"
                f"{r['client_cpu_ms']:>21.2f}{r['first_claim_median_ms']:>14.1f}{r['load']:>6.2f}"
                + ("  (queue ran empty)" if r["ran_dry"] else "")
            )
        if claims:
            warm = sum(r["warmup_claims"] for r in claims)
            print(f"  (timed after {args.warmup} untimed claims per claimer, {warm} in all; '1st claim': median of"
                  " each claimer's first claim, on a new connection)")
        h = None
        if not args.skip_http:
            other = pathlib.Path(args.ab_root).resolve() if args.ab_root else None
            for _ in range(args.ab_rounds if other else 1):
                h = bench_http(users, args.http_items, args.http_seconds, args.workers, args.clients)
                print(http_report(h, clients=args.clients, workers=args.workers, code=" (this code)" if other else ""))
                if other:
                    b = bench_http(users, args.http_items, args.http_seconds, args.workers, args.clients, other)
                    print(http_report(b, clients=args.clients, workers=args.workers, code=f" ({other})"))
        auth = None
        if not args.skip_auth:
            keys = [Token.objects.get_or_create(user=u)[0].key for u in users]
            auth = bench_auth(args.auth_classes.split(","), keys, requests=args.auth_requests, rounds=args.auth_rounds)
            print(f"\n{'token authentication':<55}{'median us':>11}{'p95 us':>9}{'mean us':>10}{'load':>7}")
            for dotted, r in auth.items():
                print(f"{dotted:<55}{r['median_us']:>11.0f}{r['p95_us']:>9.0f}{r['mean_us']:>10.0f}{r['load']:>7.2f}")
        print(f"load after: {os.getloadavg()[0]:.1f}")
        if args.json:
            http = h and {**h, "clients": args.clients, "workers": args.workers}
            pathlib.Path(args.json).write_text(json.dumps({"claims": claims, "http": http, "auth": auth}))
    finally:
        if not args.keep:
            projects_purge(slugs=Project.objects.filter(
                Q(slug__startswith="bench-claim-") | Q(slug__startswith="bench-http-")
            ).values_list("slug", flat=True))


if __name__ == "__main__":
    main()
