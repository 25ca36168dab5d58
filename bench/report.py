"""One run of the benchmarks on the current code, written to docs/benchmarks.md (`make bench`).

Usage:
    .venv/bin/python bench/report.py [--pg-url URL | --no-postgres] [--out docs/benchmarks.md]
        [--ingest-items 20000] [--claim-slots 4000] [--claim-seconds 5] [--http-items 2000]
        [--http-seconds 10] [--auth-requests 2000] [--export-items 20000] [--simulate-items 10000]
        [--page-requests 30] [--page-items 300] [--dashboard-items 30000] [--dashboard-annotations 100000]
        [--scale [--scale-url URL] [--scale-sizes 10000,1000000,10000000] | --scale-from FILE]

Runs each script of bench/ in its own process with `--json`, in this order: ingest (SQLite, then
PostgreSQL), claim latency, the HTTP next/submit loop, token authentication and the item export
(PostgreSQL), the simulator's replay (no database), the labeling page (the demo, SQLite), the dashboard
(SQLite). SQLite runs use scratch files in a temporary folder; PostgreSQL runs use --pg-url (created if missing; the
scripts delete the projects they make). The 1-minute load average is read before and after each script
and printed next to its figures: on a shared machine it says how much the figures are worth.

The section "Scale: 10 million items" comes from bench/scale.py, which takes about 20 minutes on 2 cores
(it grows a project to 10M items on PostgreSQL), so it is opt-in: --scale runs it (on --scale-url, kept and
resumed between runs), --scale-from renders a run saved by `bench/scale.py --json FILE`; without either the
section already in the page is kept as it is.

The page records the machine (CPU model, cores), the date, the git commit (marked "+ uncommitted changes"
when the tree is dirty) and the sizes used. The defaults finish in a few minutes on a 2-core machine;
each script's own defaults (bench/<script>.py --help) are the larger sizes its aims are set at.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workload import ensure_postgres_database

ROOT = pathlib.Path(__file__).resolve().parents[1]
PY = sys.executable
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/workbench_bench"


@dataclass
class Run:
    """One script's figures and the 1-minute load average before and after it."""

    name: str
    figures: dict[str, Any] | None
    load_before: float
    load_after: float
    seconds: float
    error: str = ""
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (what, figure, note)

    @property
    def load(self) -> str:
        return f"{self.load_before:.1f} → {self.load_after:.1f}"


def run_script(name: str, script: str, args: list[str], *, database_url: str | None) -> Run:
    env = {**os.environ, "DEBUG": "false"}
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        path = pathlib.Path(out.name)
    before, started = os.getloadavg()[0], time.perf_counter()
    print(f"--- {name}: bench/{script} {' '.join(args)}", flush=True)
    process = subprocess.run(
        [PY, str(ROOT / "bench" / script), *args, "--json", str(path)], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    print(process.stdout, flush=True)
    after, seconds = os.getloadavg()[0], time.perf_counter() - started
    figures = json.loads(path.read_text()) if path.stat().st_size else None
    path.unlink()
    error = "" if process.returncode == 0 and figures else f"failed (exit {process.returncode}); see the console"
    return Run(name, figures, before, after, seconds, error)


def postgres_version(url: str) -> str:
    import psycopg

    with psycopg.connect(url) as conn:
        return str(conn.execute("SHOW server_version").fetchone()[0]).split()[0]


# --- rows of the table, one function per script -----------------------------------------------------------


def ingest_rows(f: dict[str, Any]) -> list[tuple[str, str, str]]:
    n = f"{f['items']:,} items, {f['classes']} classes"
    return [
        ("`items_ingest`", f"{f['ingest_per_s']:,.0f} items/s",
         f"{n}; {f['ingest_over_floor']:.2f}x a plain bulk_create, {f['ingest_over_raw']:.2f} of a raw "
         f"COPY/executemany ({f['raw_floor_per_s']:,.0f}/s)"),
        ("re-ingest of known rows", f"{f['reingest_per_s']:,.0f} items/s", "idempotent: nothing written"),
        ("`items_route` (routing the ingested items)", f"{f['routing_per_s']:,.0f} items/s", "decisions and slots"),
        ("ingest + routing", f"{f['combined_per_s']:,.0f} items/s", ""),
    ]


def claim_rows(f: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = [
        (f"claim, {c['claimers']} claimer{'s' if c['claimers'] > 1 else ''}",
         f"median {c['median_ms']:.2f} ms, p95 {c['p95_ms']:.2f} ms",
         f"{c['per_s']:,.0f} claims/s, {c['claims']:,} claims, client CPU {c['client_cpu_ms']:.2f} ms/claim")
        for c in f["claims"]
    ]
    h = f.get("http")
    if h:
        rows.append((
            f"HTTP loop: next + submit, {h['clients']} annotators, gunicorn x{h['workers']}",
            f"{h['per_s']:,.0f} annotations/s",
            f"{h['errors']} errors; next median {h['next_median_ms']:.1f} ms (p95 {h['next_p95_ms']:.1f}), "
            f"submit median {h['submit_median_ms']:.1f} ms (p95 {h['submit_p95_ms']:.1f})"
            + (f"; CPU per annotation: client {h['client_cpu_ms']:.2f} ms, gunicorn {h['server_cpu_ms']:.2f} ms, "
               f"PostgreSQL {h['database_cpu_ms']:.2f} ms" if "server_cpu_ms" in h else ""),
        ))
    rows += [
        (f"token authentication (`{dotted.rsplit('.', 1)[-1]}`)",
         f"median {r['median_us']:.0f} µs, p95 {r['p95_us']:.0f} µs", f"mean {r['mean_us']:.0f} µs per request")
        for dotted, r in (f.get("auth") or {}).items()
    ]
    return rows


def simulate_rows(f: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(
        f"replay of {f['judgments']:,} judgments ({f['items']:,} items)",
        f"{f['seconds']:.1f} s ({f['per_s']:,.0f} judgments/s)",
        f"adaptive accuracy {f['accuracy']:.3f} at {f['labels_per_item']:.2f} labels/item",
    )]


def page_rows(f: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (p["name"], f"median {p['median_ms']:.1f} ms, p90 {p['p90_ms']:.1f} ms", f"{p['queries']} queries, n={p['n']}")
        for p in f["pages"]
    ]


def dashboard_rows(f: dict[str, Any]) -> list[tuple[str, str, str]]:
    size = f"{f['items']:,} items, {f['annotations']:,} annotations, median of {f['runs']}"
    return [
        (f"dashboard {p['name']}", f"{p['median_ms']:.0f} ms", f"{size}; {p['queries']} queries")
        for p in f["pages"] if not p["name"].startswith("api ")
    ]


SCALE_HEADING = "## Scale: 10 million items"


def _ms(step: dict[str, Any], part: str, key: str) -> str:
    value = (step.get(part) or {}).get(key)
    return f"{value:,.1f} ms" if value is not None else "not measured"


def scale_section(f: dict[str, Any], *, started: dt.datetime, version: str, command: str) -> str:
    """bench/scale.py's figures, one column per size step, each figure with the load average it was
    taken at (1 minute)."""
    steps = f["steps"]

    def cell(step: dict[str, Any], part: str, text: Callable[[dict[str, Any]], str], load: str = "load") -> str:
        value = step.get(part)
        return f"{text(value)} (load {value.get(load, value['load']):.1f})" if value else "not measured"

    rows = [
        ("ingest + routing, real path (items/s)", lambda s: cell(s, "ingest", lambda v: f"{v['per_s']:,.0f}/s "
                                                                      f"over {v['items']:,}")),
        ("claim, 16 claimers: p95 (median)", lambda s: cell(s, "claims", lambda v: f"{v['p95_ms']:.1f} ms "
                                                               f"({v['median_ms']:.1f})")),
        ("submit over HTTP: p95 (median)", lambda s: cell(s, "submit", lambda v: f"{v['submit_p95_ms']:.0f} ms "
                                                              f"({v['submit_median_ms']:.0f}); {v['per_s']:.0f} "
                                                              "annotations/s")),
        ("item list, first page: median (p95)", lambda s: cell(s, "list", lambda v: f"{v['first_median_ms']:.0f} ms "
                                                                   f"({v['first_p95_ms']:.0f})")),
        ("item list, deep page (90%): median (p95)", lambda s: cell(s, "list", lambda v: f"{v['deep_median_ms']:.0f}"
                                                                        f" ms ({v['deep_p95_ms']:.0f})")),
        ("export, jsonl (items/s)", lambda s: cell(s, "export", lambda v: (
            f"{v['per_s']:,.0f}/s over {v['items']:,}{'' if v['whole'] else ' (first part)'}"
            + ("; the worker was killed mid-stream" if v.get("error") else "")))),
        ("export: worker peak RSS (before)", lambda s: cell(s, "export", lambda v: (
            f"{v['peak_rss_mib']:.0f} MiB ({v['rss_before_mib']:.0f})" if v["peak_rss_mib"] else
            f"not read ({v['rss_before_mib']:.0f})"))),
        ("dashboard page: median", lambda s: cell(s, "dashboard", lambda v: f"{v['page_median_ms']:.0f} ms")),
        ("dashboard snapshots", lambda s: cell(s, "dashboard", lambda v: f"{v['refresh_scope']}: "
                                                    f"{v['refresh_s']:.0f} s for {v['refresh_items']:,} items",
                                                    load="refresh_load")),
        ("dashboard every-minute refresh (one day touched, plus the loops' submits)", lambda s: cell(
            s, "dashboard", lambda v: (f"{v['day_refresh_s']:.1f} s for {v['day_refresh_items']:,} items"
                                       if "day_refresh_s" in v else "none"))),
    ]
    lines = [
        SCALE_HEADING,
        "",
        "Written by `bench/report.py --scale` or `--scale-from` from `bench/scale.py` (see its `--help`: what is",
        "measured on the real write path and what is filled in bulk). One project grown to each size on",
        "PostgreSQL; each figure with the 1-minute load average when it was taken.",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC; database {f.get('database', '?')}",
        f"- commit: {version}",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        f"- command: `{command}`",
        "",
        "| figure | " + " | ".join(s.get("label") or f"{s['size']:,} items" for s in steps) + " |",
        "|---|" + "---|" * len(steps),
    ]
    lines += [f"| {name} | " + " | ".join(text(s) for s in steps) + " |" for name, text in rows]
    return "\n".join(lines) + "\n"


def kept_scale_section(out: pathlib.Path) -> str:
    """The scale section already in the page (empty when none): a run without --scale keeps it."""
    if not out.exists():
        return ""
    text = out.read_text()
    start = text.find(SCALE_HEADING)
    if start < 0:
        return ""
    end = text.find("\n## ", start + len(SCALE_HEADING))
    return text[start:] if end < 0 else text[start:end + 1]


# --- the page ---------------------------------------------------------------------------------------------


def export_rows(f: dict[str, Any]) -> list[tuple[str, str, str]]:
    floor = f"{f['items']:,} items; a bare COPY of the same rows: {f['floor_per_s']:,.0f}/s"
    rows = [(f"item export, in-process, {fmt}", f"{f[f'in_process_{fmt}_per_s']:,.0f} items/s",
             f"{f[f'in_process_{fmt}_per_s'] / f['floor_per_s']:.2f} of the floor ({floor})")
            for fmt in ("jsonl", "csv", "label-studio") if f"in_process_{fmt}_per_s" in f]
    rows.append(("item export over HTTP (gunicorn), jsonl", f"{f['http_big_per_s']:,.0f} items/s",
                 f"worker peak RSS {f['http_small_peak_rss_mb']:.0f} MB after {f['http_small_items']:,} items, "
                 f"{f['http_big_peak_rss_mb']:.0f} MB after {f['http_big_items']:,}"))
    return rows


def cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def code_version(out: pathlib.Path) -> str:
    """The commit measured, read before the first script runs (edits made during the run are not measured);
    the page being rewritten does not count as a change."""
    changes = git("status", "--porcelain", "--untracked-files=no", "--", ".", f":!{out.resolve().relative_to(ROOT)}")
    dirty = " + uncommitted changes" if changes else ""
    return f"`{git('rev-parse', '--short', 'HEAD')}`{dirty} ({git('log', '-1', '--format=%s')[:80]})"


def render(runs: list[tuple[str, Run]], *, pg: str, started: dt.datetime, version: str, command: str) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`bench/report.py`): one run of the code at the commit below, every figure from",
        "that run. Do not edit by hand; run it again. The load average (1 minute, before → after the script",
        "that gave the figure) shows how busy the machine was: on a shared machine figures taken at a load",
        "above the core count are pessimistic.",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC",
        f"- commit: {version}",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}; PostgreSQL {pg} on the same machine",
        f"- command: `{command}`",
        "",
        "| script | database | what | figure | notes | load |",
        "|---|---|---|---|---|---|",
    ]
    for (database, run) in runs:
        if run.error:
            lines.append(f"| {run.name} | {database} | | {run.error} | | {run.load} |")
        for what, figure, note in run.rows:
            lines.append(f"| {run.name} | {database} | {what} | {figure} | {note} | {run.load} |")
    lines += [
        "",
        "Each script's docstring says what it measures and the aims set for it; their default sizes are larger",
        "than these (for instance `bench/ingest.py --n 100000`, `bench/dashboard.py` with 1,000,000 annotations).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_DATABASE_URL") or DEFAULT_PG)
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL rows")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--ingest-items", type=int, default=20_000)
    parser.add_argument("--claim-slots", type=int, default=4000)
    parser.add_argument("--claim-seconds", type=float, default=5)
    parser.add_argument("--http-items", type=int, default=2000)
    parser.add_argument("--http-seconds", type=float, default=10)
    parser.add_argument("--auth-requests", type=int, default=2000)
    parser.add_argument("--export-items", type=int, default=20_000)
    parser.add_argument("--simulate-items", type=int, default=10_000)
    parser.add_argument("--page-requests", type=int, default=30)
    parser.add_argument("--page-items", type=int, default=300)
    parser.add_argument("--dashboard-items", type=int, default=30_000)
    parser.add_argument("--dashboard-annotations", type=int, default=100_000)
    parser.add_argument("--scale", action="store_true", help="also run bench/scale.py (about 20 minutes; see above)")
    parser.add_argument("--scale-url", default="postgres://postgres@127.0.0.1:5432/workbench_scale")
    parser.add_argument("--scale-sizes", default="10000,1000000,10000000")
    parser.add_argument("--scale-from", help="render the scale section from this `bench/scale.py --json` file")
    parser.add_argument("--only-scale", action="store_true", help="run or render only the scale section, "
                        "keeping the rest of the page")
    args = parser.parse_args()

    started = dt.datetime.now(dt.UTC)
    version = code_version(pathlib.Path(args.out))
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="workbench-bench-"))
    sqlite = {name: f"sqlite:///{scratch / name}.sqlite3" for name in ("ingest", "page", "dashboard")}
    pg = "not measured"
    if not args.no_postgres:
        ensure_postgres_database(args.pg_url)
        pg = postgres_version(args.pg_url)

    plan: list[tuple[str, str, str, list[str], str | None, Callable[[dict[str, Any]], list[tuple[str, str, str]]]]]
    plan = [("ingest", "SQLite", "ingest.py", ["--n", str(args.ingest_items)], sqlite["ingest"], ingest_rows)]
    if not args.no_postgres:
        plan += [
            ("ingest", "PostgreSQL", "ingest.py", ["--n", str(args.ingest_items)], args.pg_url, ingest_rows),
            ("claim", "PostgreSQL", "claim.py",
             ["--slots", str(args.claim_slots), "--seconds", str(args.claim_seconds), "--http-items",
              str(args.http_items), "--http-seconds", str(args.http_seconds), "--auth-requests",
              str(args.auth_requests), "--auth-rounds", "2"], args.pg_url, claim_rows),
            ("export", "PostgreSQL", "export.py", ["--n", str(args.export_items), "--rounds", "1"], args.pg_url,
             export_rows),
        ]
    plan += [
        ("simulate", "none", "simulate.py", ["--items", str(args.simulate_items)], None, simulate_rows),
        ("labeling_page", "SQLite", "labeling_page.py",
         ["--requests", str(args.page_requests), "--items", str(args.page_items)], sqlite["page"], page_rows),
        ("dashboard", "SQLite", "dashboard.py",
         ["--items", str(args.dashboard_items), "--annotations", str(args.dashboard_annotations)],
         sqlite["dashboard"], dashboard_rows),
    ]
    if args.only_scale:
        plan = []
    runs = []
    for name, database, script, script_args, url, rows in plan:
        run = run_script(name, script, script_args, database_url=url)
        if run.figures:
            run.rows = rows(run.figures)
        runs.append((database, run))
    command = "bench/report.py " + " ".join(sys.argv[1:]) if sys.argv[1:] else "make bench"
    out = pathlib.Path(args.out)
    scale = kept_scale_section(out)
    if args.scale:
        ensure_postgres_database(args.scale_url)
        run = run_script("scale", "scale.py", ["--sizes", args.scale_sizes], database_url=args.scale_url)
        runs.append(("PostgreSQL", run))
        if run.figures:
            scale = scale_section(run.figures, started=started, version=version, command=command)
    elif args.scale_from:
        figures = json.loads(pathlib.Path(args.scale_from).read_text())
        scale = scale_section(figures, started=started, version=version, command=command)
    shutil.rmtree(scratch)
    if args.only_scale:
        text = out.read_text()
        head = text[: text.find(SCALE_HEADING)] if SCALE_HEADING in text else text.rstrip("\n") + "\n\n"
        out.write_text(head + scale)
    else:
        page = render(runs, pg=pg, started=started, version=version, command=command)
        out.write_text(page + ("\n" + scale if scale else ""))
    failed = [run.name for _, run in runs if run.error]
    print(f"wrote {out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
