"""Cost of API token authentication per request, for each authentication class given.

Usage:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/workbench_bench .venv/bin/python bench/auth.py
        [--requests 5000] [--users 8] [--rounds 3] [--classes dotted.Class,...]

Makes --users users with a DRF token each (the authtoken table), then, per class and round, authenticates
--requests requests (`Authorization: Token <key>`, built by RequestFactory, keys taken in turn) through the
class's `authenticate` on one connection (as a web worker with CONN_MAX_AGE would), and prints the median,
p95 and mean time of one authentication with the load average. Rounds alternate the classes so that a
change in the machine's load falls on all of them. Default class: DRF's TokenAuthentication, the one the
API uses; the claim on the same database costs about 1 ms (bench/claim.py), which puts the figure in scale.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbench.settings")
os.environ.setdefault("DEBUG", "false")
# A local run with production's settings: a throwaway key (DEBUG is off) and plain HTTP, not HTTPS.
os.environ.setdefault("SECRET_KEY", "bench-only-key-that-signs-nothing-real")
os.environ.setdefault("HTTPS", "false")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import RequestFactory  # noqa: E402
from django.utils.module_loading import import_string  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402
from rest_framework.request import Request  # noqa: E402

DEFAULT_CLASSES = "rest_framework.authentication.TokenAuthentication"


def tokens(n: int) -> list[str]:
    User = get_user_model()
    keys = []
    for i in range(n):
        user, _ = User.objects.get_or_create(username=f"bench-auth-{i}")
        keys.append(Token.objects.get_or_create(user=user)[0].key)
    return keys


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


def measure(classes: list[str], *, requests: int, users: int, rounds: int) -> dict[str, dict[str, float]]:
    """Per class: median, p95 and mean microseconds over all rounds, and the load average while measured."""
    keys = tokens(users)
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
    parser.add_argument("--requests", type=int, default=5000, help="authentications per class and round")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--classes", default=DEFAULT_CLASSES, help="comma-separated dotted paths")
    parser.add_argument("--json", help="also write the figures to this file (bench/report.py reads it)")
    args = parser.parse_args()
    call_command("migrate", interactive=False, verbosity=0)
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}  cores: {os.cpu_count()}")
    results = measure(args.classes.split(","), requests=args.requests, users=args.users, rounds=args.rounds)
    print(f"{'class':<55}{'median us':>11}{'p95 us':>9}{'mean us':>10}{'load':>7}")
    for dotted, r in results.items():
        print(f"{dotted:<55}{r['median_us']:>11.0f}{r['p95_us']:>9.0f}{r['mean_us']:>10.0f}{r['load']:>7.2f}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results))


if __name__ == "__main__":
    main()
