"""The web server's memory: gunicorn (deploy/gunicorn.conf.py, master + WEB_CONCURRENCY workers) right after
start and after a warm-up of the main pages and API calls.

Usage:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/workbench_memory .venv/bin/python bench/memory.py
        [--workers 4] [--rounds 6] [--no-preload] [--items 300] [--venv DIR]

Builds the demo (`seed_demo --items N`) unless it is there, starts gunicorn on 127.0.0.1 as a web host
would (preload_app on unless --no-preload), reads every process's /proc/<pid>/smaps_rollup, warms up
(--rounds rounds, 8 at once so every worker gets every page: the home page, queues, the labeling page, the
dashboards, item search, the admin, the policy admin (the pilot's calibration), the API's project and item
lists, claim and submit; the work loop in a fresh project of bench/fleet.py's, deleted afterwards), and
reads again. Per process: RSS (what `ps` shows; pages shared with the master counted in each) and PSS
(shared pages divided among the processes that share them); the PSS total is the server's real footprint.
Also prints which heavy packages loading the application imports (what preload_app puts in the master,
from a fresh process's sys.modules), which compiled ones the workers have mapped after the warm-up (what
requests imported), and the load average.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import io
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LOG_LEVEL", "WARNING")

from bench.workload import process_children  # noqa: E402

# Packages with compiled extensions show in a process's /proc/<pid>/maps once imported.
COMPILED = ("numpy", "scipy", "sklearn", "pandas", "pyarrow", "statsmodels")
HEAVY = (*COMPILED, "plotly", "pilot")
MIB = 1024 * 1024


def smaps(pid: int) -> dict[str, int]:
    """RSS and PSS of one process, in bytes."""
    out = {}
    for line in pathlib.Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in {"Rss", "Pss"}:
            out[key] = int(rest.split()[0]) * 1024
    return out


def snapshot(master: int) -> dict[str, object]:
    procs = [master, *sorted(process_children(master))]
    sizes = [smaps(p) for p in procs]
    return {
        "pids": procs,
        "rss": [s["Rss"] for s in sizes],
        "pss": [s["Pss"] for s in sizes],
        "rss_total": sum(s["Rss"] for s in sizes),
        "pss_total": sum(s["Pss"] for s in sizes),
    }


def heavy_mapped(pid: int) -> list[str]:
    """The compiled heavy packages a running process has imported (their extensions are mapped)."""
    maps = pathlib.Path(f"/proc/{pid}/maps").read_text()
    return [name for name in COMPILED if f"/site-packages/{name}/" in maps]


def heavy_at_load(python: str) -> list[str]:
    """The heavy packages loading the application imports (what preload_app puts in the master), plotly and
    the pilot included, from sys.modules of a fresh process."""
    code = ("import sys, workbench.wsgi; from django.urls import get_resolver; get_resolver().url_patterns; "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))")
    out = subprocess.run([python, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1].replace("'", '"'))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, method: str, path: str, headers: dict[str, str], body: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def setup(items: int) -> dict[str, object]:
    """The demo (built once), an admin session, a crowd annotator's session and token, the URLs."""
    from bench.workload import bench_environment, database_ensure

    bench_environment()
    database_ensure()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from labeling.models import Project

    if not Project.objects.filter(slug="handwritten-digits").exists():
        call_command("seed_demo", items=items, stdout=io.StringIO())
    # The work loop in a fresh project of its own (bench/fleet.py's), so every run has the same work to do.
    from bench.fleet import fleet_setup

    work_project, tokens = fleet_setup(annotators=1, items=200)
    User = get_user_model()
    admin, crowd = User.objects.get(username="admin"), User.objects.get(pk=tokens[0][0])
    sessions = {}
    for name, user in (("admin", admin), ("crowd", crowd)):
        client = Client()
        client.force_login(user)
        sessions[name] = client.cookies["sessionid"].value
    project = Project.objects.get(slug="handwritten-digits")
    return {
        "sessions": sessions,
        "token": tokens[0][1],
        "work_slug": work_project.slug,
        "admin_pages": [
            "/", "/dashboards/", f"/dashboards/{project.slug}/", "/items/?q=item", "/admin/",
            "/admin/labeling/item/", "/admin/routing/escalationpolicy/", "/api/projects/",
            f"/api/projects/{project.slug}/items/",
        ],
        "crowd_pages": ["/queue/", f"/projects/{work_project.slug}/queue/"],
    }


def warm_up(port: int, ctx: dict, rounds: int) -> dict[int, int]:
    """Every page and call, `rounds` times, 8 at once. Returns the count of each status."""
    admin = {"Cookie": f"sessionid={ctx['sessions']['admin']}"}
    crowd_api = {"Authorization": f"Token {ctx['token']}", "Content-Type": "application/json"}
    crowd_page = {"Cookie": f"sessionid={ctx['sessions']['crowd']}"}

    def work_loop(slug: str) -> list[int]:
        status, data = request(port, "POST", f"/api/projects/{slug}/next", crowd_api)
        statuses = [status]
        if status == 200:
            assignment = json.loads(data)["assignment"]
            statuses.append(request(port, "GET", f"/work/{assignment}/", crowd_page)[0])
            label = json.loads(data)["classes"][0]
            statuses.append(request(port, "POST", f"/api/assignments/{assignment}/submit", crowd_api,
                                    {"label": label, "time_spent_ms": 1000})[0])
        return statuses

    counts: dict[int, int] = {}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for _ in range(rounds):
            jobs = [pool.submit(lambda p=p: [request(port, "GET", p, admin)[0]]) for p in ctx["admin_pages"]]
            jobs += [pool.submit(lambda p=p: [request(port, "GET", p, crowd_page)[0]]) for p in ctx["crowd_pages"]]
            jobs += [pool.submit(work_loop, ctx["work_slug"]) for _ in range(8)]
            for job in jobs:
                for status in job.result():
                    counts[status] = counts.get(status, 0) + 1
    return counts


def start(port: int, workers: int, preload: bool, venv: pathlib.Path) -> subprocess.Popen:
    env = {**os.environ, "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers),
           "GUNICORN_PRELOAD": "true" if preload else "false", "GUNICORN_ACCESS_LOG": os.devnull,
           "ALLOWED_HOSTS": "127.0.0.1", "CONN_MAX_AGE": "600", "LOG_LEVEL": "ERROR"}
    process = subprocess.Popen([str(venv / "bin" / "gunicorn"), "-c", "deploy/gunicorn.conf.py",
                                "workbench.wsgi"], cwd=ROOT, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if request(port, "GET", "/healthz", {})[0] == 200 and len(process_children(process.pid)) == workers:
                time.sleep(1)  # the last worker's own start-up settles
                return process
        except OSError:
            pass
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    raise RuntimeError("gunicorn did not start")


def show(label: str, snap: dict) -> None:
    per = "  ".join(f"{r / MIB:.0f}/{p / MIB:.0f}" for r, p in zip(snap["rss"], snap["pss"], strict=True))
    print(f"{label:<22} RSS {snap['rss_total'] / MIB:>6.0f} MiB  PSS {snap['pss_total'] / MIB:>6.0f} MiB   "
          f"(master, workers: RSS/PSS MiB {per})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--items", type=int, default=300, help="demo items per project, if it is built")
    parser.add_argument("--no-preload", action="store_true")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--venv", type=pathlib.Path, default=ROOT / ".venv",
                        help="the virtualenv whose gunicorn serves (default .venv, which has the dev extra; a web "
                             "host's has the runtime packages alone, docs/deploy.md)")
    args = parser.parse_args()
    ctx = setup(args.items)
    from django.db import connections

    connections.close_all()
    port = free_port()
    load = os.getloadavg()
    server = start(port, args.workers, not args.no_preload, args.venv)
    try:
        master = server.pid
        at_start = snapshot(master)
        print(f"gunicorn x{args.workers} from {args.venv}, preload_app {'off' if args.no_preload else 'on'}; "
              f"load {'/'.join(f'{x:.1f}' for x in load)}")
        loaded = heavy_at_load(str(args.venv / "bin" / "python"))
        print(f"heavy packages the application imports when loaded: {loaded or '-'}; "
              f"mapped in a worker after start: {heavy_mapped(at_start['pids'][1]) or '-'}")
        show("after start", at_start)
        counts = warm_up(port, ctx, args.rounds)
        time.sleep(1)
        warm = snapshot(master)
        show("after warm-up", warm)
        after = {pid: heavy_mapped(pid) for pid in warm["pids"][1:]}
        print(f"warm-up statuses {dict(sorted(counts.items()))}; heavy packages mapped by workers after it: "
              f"{sorted({m for ms in after.values() for m in ms}) or '-'}")
        print(f"load after: {'/'.join(f'{x:.1f}' for x in os.getloadavg())}")
        if args.json:
            pathlib.Path(args.json).write_text(json.dumps({"start": at_start, "warm": warm, "load": load}))
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        from routing.services import projects_purge

        projects_purge(slugs=[ctx["work_slug"]])


if __name__ == "__main__":
    main()
