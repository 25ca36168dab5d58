"""Several machines, simulated on this one: two web instances, two background workers, one PostgreSQL, and
a crash of one of each in the middle of the annotators' work.

Usage:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/wt_fleet .venv/bin/python bench/fleet.py
        [--annotators 32] [--seconds 60] [--kill-at 20] [--lease 10] [--web-workers 2] [--keep]

What runs (each in its own process group, all SIGKILLed at the end whatever happens):
- web A on 127.0.0.2 and web B on 127.0.0.3 (Linux routes all of 127/8 to the loopback), both
  `gunicorn -c deploy/gunicorn.conf.py workbench.wsgi` configured by the environment as on a web host;
- worker A and worker B, both `manage.py qcluster` (Q_WORKERS processes each) on the same database.

--annotators crowd annotators (API tokens, project members) loop over HTTP: POST /api/projects/<slug>/next,
think for about --think seconds, POST /api/assignments/<id>/submit. Half of them start on web A, half on
web B; a request that cannot reach its instance is sent to the other one, as a load balancer would.

At --kill-at seconds, web B's and worker B's process groups get SIGKILL (the host is gone). Of the
annotators on web B, every other one vanishes with it (its claimed assignment is abandoned: its lease must
run out and the slot be offered again); the others carry on through web A. Just before the kill, probe
tasks (a few seconds' sleep) are queued so that worker B dies holding some: django-q's ORM broker hands a
task a dead worker took to another after Q_RETRY seconds.

The lease expiry job is queued every --expiry-every seconds (default a quarter of the lease) by this
script, in place of django-q's scheduler, whose finest interval is a minute (it runs the same task,
work.tasks.assignments_expire, through the same queue, so a worker must take it). At the kill the schedule's
own lease expiry is made due; with 35 s or more left, the surviving scheduler (it ticks every 30 s) must
have run it.

Checked afterwards, in the database:
- acknowledged: submits answered 200; lost: an acknowledged (assignment, label, annotator) not stored
  exactly so;
- double claims: an assignment handed to two annotators by /next, an annotator with two labels of one item,
  two labels for one assignment;
- recovery: every abandoned assignment expired, within one lease period after its lease ended, and its
  replacement offered again; no active assignment left past its lease; every probe task done; the
  surviving worker ran the expiry job (and the scheduled one, if checked) after the kill.
Prints a table and the load average. tests/work/test_fleet.py runs `fleet_run` at a small size.
"""
from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import pathlib
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
HOSTS = ("127.0.0.2", "127.0.0.3")
SLUG_PREFIX = "bench-fleet-"
USER_PREFIX = "bench-fleet-crowd"
INGEST_BATCH = 20
# Connection-level failures: the instance is gone (refused, reset, or closed without an answer).
DOWN = (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine, socket.timeout, OSError)


@dataclass
class FleetResult:
    annotators: int
    seconds: float
    lease_seconds: float
    acknowledged: int = 0
    lost: int = 0
    double_claims: int = 0
    abandoned: int = 0
    expired_in_time: int = 0
    reoffered: int = 0
    reclaimed: int = 0
    stuck_leases: int = 0
    max_expiry_lag_s: float = float("nan")  # after the lease's end
    max_recovery_s: float = float("nan")  # from the kill to the last abandoned slot offered again
    max_reclaim_s: float = float("nan")  # from the kill to the last re-offered slot claimed (if it was)
    probes: int = 0
    probes_done: int = 0
    probes_redelivered: int = 0
    expiry_runs_after_kill: int = 0
    scheduled_runs_after_kill: int | None = None  # None: the run ended before the scheduler's tick
    failovers: int = 0
    errors: int = 0
    http_5xx: int = 0
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    notes: list[str] = field(default_factory=list)

    @property
    def recovered(self) -> bool:
        return (self.abandoned > 0 and self.expired_in_time == self.abandoned and self.reoffered == self.abandoned
                and self.stuck_leases == 0 and self.probes_done == self.probes and self.expiry_runs_after_kill > 0
                and self.scheduled_runs_after_kill != 0)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.double_claims == 0 and self.recovered

    def table(self) -> str:
        rows = [
            ("annotations acknowledged (submit 200)", self.acknowledged),
            ("acknowledged labels lost", self.lost),
            ("double claims", self.double_claims),
            ("leases abandoned with the killed instance", self.abandoned),
            ("  expired within one lease period after their end", self.expired_in_time),
            ("  offered again (a fresh slot of the item)", self.reoffered),
            ("  of those, claimed again before the end", self.reclaimed),
            ("active leases left past their end", self.stuck_leases),
            ("lease period, s", f"{self.lease_seconds:.1f}"),
            ("longest expiry after a lease's end, s", f"{self.max_expiry_lag_s:.1f}"),
            ("kill -> last abandoned slot offered again, s", f"{self.max_recovery_s:.1f}"),
            ("kill -> last of those claimed again, s", f"{self.max_reclaim_s:.1f}"),
            ("probe tasks done / queued", f"{self.probes_done} / {self.probes}"),
            ("  of them run again after the killed worker's lock ran out", self.probes_redelivered),
            ("lease expiry runs by the surviving worker after the kill", self.expiry_runs_after_kill),
            ("  of them from django-q's schedule (ticks every 30 s)",
             "not checked (< 35 s after the kill)" if self.scheduled_runs_after_kill is None
             else self.scheduled_runs_after_kill),
            ("requests sent to the other instance", self.failovers),
            ("other HTTP errors (5xx)", f"{self.errors} ({self.http_5xx})"),
            ("load average 1/5/15 min", "/".join(f"{x:.1f}" for x in self.load)),
        ]
        width = max(len(name) for name, _ in rows)
        verdict = "PASS" if self.ok else "FAIL"
        lines = [f"{name:<{width}}  {value}" for name, value in rows]
        return "\n".join([*lines, f"{'result':<{width}}  {verdict}", *self.notes])


# --- processes -------------------------------------------------------------------------------------------


def database_url() -> str:
    from django.db import connection

    s = connection.settings_dict
    auth = urllib.parse.quote(s["USER"] or "")
    if s.get("PASSWORD"):
        auth += ":" + urllib.parse.quote(s["PASSWORD"])
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def free_port(hosts: tuple[str, ...]) -> int:
    """A port free on every one of `hosts` (each instance binds its own address, same port)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((hosts[0], 0))
            port = s.getsockname()[1]
        try:
            for host in hosts[1:]:
                with socket.socket() as s:
                    s.bind((host, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port free on every address")


class Fleet:
    """The child processes, each in a session of its own so that one killpg takes a whole "host"."""

    def __init__(self, env: dict[str, str], log_dir: pathlib.Path) -> None:
        self.env, self.log_dir = env, log_dir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], **env: str) -> None:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 (lives as long as the process)
        self.procs[name] = subprocess.Popen(argv, cwd=ROOT, env={**self.env, **env}, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, name: str) -> None:
        process = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def kill_all(self) -> None:
        for name in self.procs:
            with contextlib.suppress(Exception):
                self.kill(name)

    def log_tail(self, name: str, lines: int = 20) -> str:
        text = (self.log_dir / f"{name}.log").read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def wait_ready(host: str, port: int, fleet: Fleet, name: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fleet.procs[name].poll() is not None:
            raise RuntimeError(f"{name} exited:\n{fleet.log_tail(name)}")
        with contextlib.suppress(*DOWN):
            conn = http.client.HTTPConnection(host, port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{name} not ready after {timeout:.0f} s:\n{fleet.log_tail(name)}")


# --- the annotators --------------------------------------------------------------------------------------


@dataclass
class Ledger:
    """What the annotators saw, appended under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    claims: list[tuple[int, int]] = field(default_factory=list)  # (assignment, user) from /next 200
    acked: list[tuple[int, int, str]] = field(default_factory=list)  # (assignment, user, label) submit 200
    abandoned: list[int] = field(default_factory=list)
    failovers: int = 0
    errors: int = 0
    http_5xx: int = 0


def annotator(*, user_id: int, token: str, slug: str, port: int, home: int, vanishes: bool, think: float,
              stop: threading.Event, killed: threading.Event, ledger: Ledger, seed: int) -> None:
    rng = random.Random(seed)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    host = home

    def post(path: str, body: dict | None) -> tuple[int, Any]:
        """POST to the current instance; on a connection failure, once more on the other (a load balancer's
        retry), and stay there."""
        nonlocal host
        for _ in range(2):
            try:
                conn = http.client.HTTPConnection(HOSTS[host], port, timeout=30)
                conn.request("POST", path, body=json.dumps(body) if body is not None else None, headers=headers)
                response = conn.getresponse()
                data = response.read()
                conn.close()
                return response.status, (json.loads(data) if data and response.status < 300 else None)
            except DOWN:
                host = 1 - host
                with ledger.lock:
                    ledger.failovers += 1
        return 0, None

    held: int | None = None
    classes: list[str] = []
    while not stop.is_set():
        if vanishes and killed.is_set():
            # Gone with its instance: whatever it holds is never submitted.
            if held is not None:
                with ledger.lock:
                    ledger.abandoned.append(held)
            return
        if held is None:
            status, claimed = post(f"/api/projects/{slug}/next", None)
            if status == 200:
                held, classes = claimed["assignment"], claimed["classes"]
                with ledger.lock:
                    ledger.claims.append((held, user_id))
            else:
                if status != 204:
                    with ledger.lock:
                        ledger.errors += 1
                        ledger.http_5xx += status >= 500
                stop.wait(0.2)  # nothing offered now (or the error): ask again shortly
            continue
        # Reading the item and choosing a label takes a person a while; a vanishing one may go meanwhile.
        if stop.wait(rng.uniform(0.5 * think, 1.5 * think)) or (vanishes and killed.is_set()):
            continue
        label = rng.choice(classes)
        status, _ = post(f"/api/assignments/{held}/submit", {"label": label, "time_spent_ms": 1000})
        with ledger.lock:
            if status == 200:
                ledger.acked.append((held, user_id, label))
            else:
                # 409: the lease ran out meanwhile, or a lost answer of a submit that went through.
                ledger.errors += 1
                ledger.http_5xx += status >= 500
        held = None


# --- set-up and checks -----------------------------------------------------------------------------------


def fleet_setup(*, annotators: int, items: int) -> tuple[Any, list[tuple[int, str]]]:
    """A project whose items all go to two crowd annotators, and `annotators` crowd members with tokens."""
    from rest_framework.authtoken.models import Token

    from bench.workload import crowd_project, crowd_users
    from labeling.memberships import memberships_ensure

    users = crowd_users(annotators, USER_PREFIX)
    # In small batches, as items arrive in a live project: each batch's slots get a later SLA deadline, so
    # an abandoned slot offered again (with its predecessor's deadline) is claimed before later arrivals.
    # No gold checks: a gold check is drawn for one person and not offered again when abandoned.
    project = crowd_project(f"{SLUG_PREFIX}{time.time_ns()}", items, crowd_overlap=2, batch=INGEST_BATCH,
                            gold_check_rate=0)
    memberships_ensure(projects=[project], users=users)
    return project, [(u.pk, Token.objects.get_or_create(user=u)[0].key) for u in users]


def fleet_check(result: FleetResult, *, project: Any, ledger: Ledger, killed_at: Any, lease_s: float,
                expiry_every: float) -> None:
    """Fill `result` from the ledger and the database (see the module's docstring)."""
    import datetime as dt
    from collections import Counter

    from django.db.models import Count
    from django.utils import timezone

    from labeling.models import Annotation
    from routing.models import Assignment, AssignmentStatus

    by_claimer: dict[int, set[int]] = {}
    for assignment_id, user_id in ledger.claims:
        by_claimer.setdefault(assignment_id, set()).add(user_id)
    handed_twice = sum(1 for users in by_claimer.values() if len(users) > 1)
    labels = Annotation.objects.filter(item__project=project)
    same_item_twice = labels.values("item_id", "annotator_id").annotate(n=Count("id")).filter(n__gt=1).count()
    # Assignment.annotation is one-to-one; an item's labels beyond its submitted slots would be a second
    # label for one slot.
    submitted = Assignment.objects.filter(project=project, annotation__isnull=False)
    unslotted = labels.exclude(id__in=submitted.values("annotation_id")).count()
    result.double_claims = handed_twice + same_item_twice + unslotted
    if handed_twice or same_item_twice or unslotted:
        result.notes.append(f"double claims: handed twice {handed_twice}, an item labeled twice by one annotator "
                            f"{same_item_twice}, labels without their own slot {unslotted}")

    acked = Counter(ledger.acked)
    stored = {
        a["id"]: (a["assignee_id"], a["annotation__label"], a["annotation__annotator_id"])
        for a in Assignment.objects.filter(id__in=[a for a, _, _ in acked]).values(
            "id", "assignee_id", "annotation__label", "annotation__annotator_id")
    }
    result.acknowledged = sum(acked.values())
    result.lost = sum(
        n for (assignment_id, user_id, label), n in acked.items()
        if n != 1 or stored.get(assignment_id) != (user_id, label, user_id)
    )

    now = timezone.now()
    abandoned = Assignment.objects.filter(id__in=ledger.abandoned)
    result.abandoned = len(ledger.abandoned)
    lags, recoveries, reclaims = [], [], []
    for a in abandoned:
        if a.status != AssignmentStatus.EXPIRED:
            continue
        lag = (a.completed_at - a.lease_expires_at).total_seconds()
        lags.append(lag)
        result.expired_in_time += lag <= lease_s
        # The expiry job's successor: same item and kind, made when the old one expired. It waits in the
        # queue behind older slots of the same deadline, so it may not be reached before the run ends.
        fresh = (Assignment.objects.filter(item_id=a.item_id, kind=a.kind, created_at=a.completed_at)
                 .exclude(id=a.id).first())
        if fresh is not None:
            result.reoffered += 1
            recoveries.append((fresh.created_at - killed_at).total_seconds())
            if fresh.claimed_at is not None:
                result.reclaimed += 1
                reclaims.append((fresh.claimed_at - killed_at).total_seconds())
    result.max_expiry_lag_s = max(lags, default=float("nan"))
    result.max_recovery_s = max(recoveries, default=float("nan"))
    result.max_reclaim_s = max(reclaims, default=float("nan"))
    # Past its end by more than an expiry interval and a margin, an active lease should have been expired.
    result.stuck_leases = Assignment.objects.filter(
        project=project, status=AssignmentStatus.ACTIVE,
        lease_expires_at__lt=now - dt.timedelta(seconds=expiry_every + 2),
    ).count()


# --- the run ---------------------------------------------------------------------------------------------


def fleet_run(*, annotators: int = 32, seconds: float = 60.0, kill_at: float | None = None, lease_s: float = 10.0,
              expiry_every: float | None = None, think: float = 1.0, items: int | None = None,
              web_workers: int = 2, q_workers: int = 2, probe_s: float = 1.0, keep: bool = False,
              log: Any = print) -> FleetResult:
    """Run the fleet against the configured (PostgreSQL) database and return the checked result."""
    from django.db import connection, connections
    from django.utils import timezone
    from django_q.models import OrmQ, Schedule, Task
    from django_q.tasks import async_task

    if connection.vendor != "postgresql":
        raise RuntimeError("the fleet runs on PostgreSQL (DATABASE_URL=postgres://...)")
    kill_at = seconds / 3 if kill_at is None else kill_at
    expiry_every = lease_s / 4 if expiry_every is None else expiry_every
    # Queued probe tasks sleep probe_s; a dead worker's are handed out again after q_retry.
    q_timeout = max(int(probe_s) + 2, 3)
    q_retry = q_timeout + 1
    if kill_at + lease_s + 2 * expiry_every + 1 > seconds:
        raise ValueError("--seconds too short to see the abandoned leases expire after the kill")
    items = items or max(200, int(annotators * seconds / think))
    result = FleetResult(annotators=annotators, seconds=seconds, lease_seconds=lease_s)

    t0 = time.monotonic()
    project, tokens = fleet_setup(annotators=annotators, items=items)
    log(f"set-up: {items} items, {annotators} annotators in {time.monotonic() - t0:.0f} s")
    port = free_port(HOSTS)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "workbench.settings",
        "DATABASE_URL": database_url(),
        "DEBUG": "false",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-fleet-key-that-signs-nothing-real-0123456789",
        "HTTPS": "false",
        "ALLOWED_HOSTS": ",".join(HOSTS),
        "CONN_MAX_AGE": "600",
        "LOG_LEVEL": "WARNING",
        "GUNICORN_ACCESS_LOG": os.devnull,
        "WEB_CONCURRENCY": str(web_workers),
        "Q_WORKERS": str(q_workers),
        "Q_TIMEOUT": str(q_timeout),
        "Q_RETRY": str(q_retry),
        "ASSIGNMENT_LEASE_MINUTES": repr(lease_s / 60),
        "READYZ_MAX_QUEUE_LAG": "off",
    }
    python = str(ROOT / ".venv" / "bin" / "python")
    gunicorn = str(ROOT / ".venv" / "bin" / "gunicorn")
    connections.close_all()
    ledger = Ledger()
    stop, killed = threading.Event(), threading.Event()
    threads: list[threading.Thread] = []
    with tempfile.TemporaryDirectory(prefix="fleet-") as log_dir:
        fleet = Fleet(env, pathlib.Path(log_dir))
        try:
            for name, host in zip(("web-a", "web-b"), HOSTS, strict=True):
                fleet.start(name, [gunicorn, "-c", "deploy/gunicorn.conf.py", "workbench.wsgi"],
                            GUNICORN_BIND=f"{host}:{port}")
            for name in ("worker-a", "worker-b"):
                fleet.start(name, [python, "manage.py", "qcluster"])
            for name, host in zip(("web-a", "web-b"), HOSTS, strict=True):
                wait_ready(host, port, fleet, name)
            log(f"web A {HOSTS[0]}:{port}, web B {HOSTS[1]}:{port} (x{web_workers} each), "
                f"2 qclusters (x{q_workers}); lease {lease_s:.0f} s, expiry every {expiry_every:.1f} s, "
                f"Q_RETRY {q_retry} s")
            for i, (user_id, token) in enumerate(tokens):
                home = i % 2
                vanishes = home == 1 and (i // 2) % 2 == 0
                threads.append(threading.Thread(target=annotator, daemon=True, kwargs=dict(
                    user_id=user_id, token=token, slug=project.slug, port=port, home=home, vanishes=vanishes,
                    think=think, stop=stop, killed=killed, ledger=ledger, seed=i)))
            started = time.monotonic()
            for t in threads:
                t.start()
            probes: list[str] = []
            expiries: list[tuple[float, str]] = []
            next_expiry = started + expiry_every
            killed_at, killed_wall = None, None
            locked_at_kill: dict[str, Any] = {}
            while (now := time.monotonic()) < started + seconds:
                if now >= next_expiry:
                    expiries.append((now, async_task("work.tasks.assignments_expire")))
                    next_expiry += expiry_every
                if not probes and now >= started + kill_at - probe_s / 2:
                    probes = [async_task("time.sleep", probe_s) for _ in range(2 * q_workers)]
                if killed_at is None and now >= started + kill_at:
                    for name in ("web-b", "worker-b"):
                        fleet.kill(name)
                    killed_at, killed_wall = now, timezone.now()
                    # The schedule's own lease expiry is due now: the surviving scheduler must queue it.
                    Schedule.objects.filter(func="work.tasks.assignments_expire").update(next_run=killed_wall)
                    killed.set()
                    # Taken by a worker and not acknowledged at the kill: worker A's finish before their lock
                    # runs out; worker B's finish only after it has, run again by A (Task.started is the
                    # enqueue time, so `stopped` tells).
                    locked_at_kill = {q.task_id(): q.lock for q in OrmQ.objects.filter(lock__gt=timezone.now())}
                    log(f"{now - started:.1f} s: SIGKILL web B and worker B ({len(ledger.acked)} acknowledged, "
                        f"{len(locked_at_kill)} tasks taken and not acknowledged)")
                for name in ("web-a", "worker-a"):
                    if fleet.procs[name].poll() is not None:
                        raise RuntimeError(f"{name} exited:\n{fleet.log_tail(name)}")
                time.sleep(0.05)
            stop.set()
            for t in threads:
                t.join(timeout=60)
            # Give the surviving worker until the retry time has passed twice to finish the probes.
            deadline = time.monotonic() + 2 * q_retry + probe_s
            done = Task.objects.filter(id__in=probes, success=True)
            while time.monotonic() < deadline and done.count() < len(probes):
                time.sleep(0.5)
            result.probes = len(probes)
            result.probes_done = done.count()
            result.probes_redelivered = sum(
                1 for task in done if task.id in locked_at_kill and task.stopped >= locked_at_kill[task.id])
            after_kill = [task_id for at, task_id in expiries if killed_at is not None and at > killed_at]
            result.expiry_runs_after_kill = Task.objects.filter(id__in=after_kill, success=True).count()
            if seconds - kill_at >= 35:
                scheduled = Task.objects.filter(group="assignments_expire", stopped__gt=killed_wall, success=True)
                result.scheduled_runs_after_kill = scheduled.count()
                result.expiry_runs_after_kill += result.scheduled_runs_after_kill
            # The last abandoned slots may still wait for a claim: the survivors' queue is open a little longer.
            fleet_check(result, project=project, ledger=ledger, killed_at=killed_wall, lease_s=lease_s,
                        expiry_every=expiry_every)
        except BaseException:
            stop.set()
            for name in fleet.procs:
                log(f"--- {name} log:\n{fleet.log_tail(name)}")
            raise
        finally:
            stop.set()
            fleet.kill_all()
            connections.close_all()
    result.failovers, result.errors, result.http_5xx = ledger.failovers, ledger.errors, ledger.http_5xx
    result.load = os.getloadavg()
    if not keep:
        from routing.services import projects_purge

        projects_purge(slugs=[project.slug])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotators", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--kill-at", type=float, help="seconds into the run (default: a third of it)")
    parser.add_argument("--lease", type=float, default=10.0, help="assignment lease, seconds")
    parser.add_argument("--expiry-every", type=float, help="seconds between lease expiry runs (default lease/4)")
    parser.add_argument("--think", type=float, default=1.0, help="mean seconds an annotator takes per label")
    parser.add_argument("--items", type=int)
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn processes per web instance")
    parser.add_argument("--q-workers", type=int, default=2, help="processes per qcluster")
    parser.add_argument("--keep", action="store_true", help="keep the project")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    from bench.workload import bench_environment

    bench_environment()
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        parser.error("run it on PostgreSQL: DATABASE_URL=postgres://postgres@127.0.0.1:5432/wt_fleet")
    call_command("migrate", interactive=False, verbosity=0)
    # SIGTERM (a CI timeout) runs the clean-up too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"database: {connection.settings_dict['NAME']}  cores: {os.cpu_count()}  "
          f"load: {'/'.join(f'{x:.1f}' for x in os.getloadavg())}")
    result = fleet_run(annotators=args.annotators, seconds=args.seconds, kill_at=args.kill_at, lease_s=args.lease,
                       expiry_every=args.expiry_every, think=args.think, items=args.items,
                       web_workers=args.web_workers, q_workers=args.q_workers, keep=args.keep)
    print()
    print(result.table())
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({**asdict(result), "ok": result.ok}))
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
