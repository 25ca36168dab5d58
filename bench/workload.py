"""What several benchmarks set up: the environment of a local production-settings run, crowd annotators, and a
project whose items all go to the crowd. Django is imported inside the functions, so a script (or a test)
may import this module before `django.setup()`."""
from __future__ import annotations

import os
import pathlib
import sys
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]

CLASSES = ["cat", "dog", "bird"]


def bench_environment() -> None:
    """Production settings on this machine: DEBUG off (Django would also log every query), a throwaway key
    that signs nothing real, plain HTTP; then `django.setup()`."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbench.settings")
    os.environ.setdefault("DEBUG", "false")
    os.environ.setdefault("SECRET_KEY", "bench-only-key-that-signs-nothing-real")
    os.environ.setdefault("HTTPS", "false")
    import django

    django.setup()


def crowd_users(n: int, prefix: str) -> list[Any]:
    """`n` crowd annotators named `<prefix>-<i>` (made once, reused by later runs)."""
    from django.contrib.auth import get_user_model

    from experts.models import Role
    from experts.services import expert_create

    User = get_user_model()
    users = []
    for i in range(n):
        user, created = User.objects.get_or_create(username=f"{prefix}-{i}")
        if created:
            expert_create(user=user, display_name=user.username, role=Role.CROWD, capacity=100_000, languages=["en"])
        users.append(user)
    return users


def crowd_project(slug: str, n: int, *, crowd_overlap: int, batch: int = 2000, **policy: Any) -> Any:
    """A project whose `n` items all go to the crowd (routing makes `crowd_overlap` slots each on ingest),
    ingested `batch` at a time; `policy` sets further PolicyConfig fields."""
    import numpy as np

    from labeling.services import items_ingest, project_create
    from routing import policies
    from routing.engine.types import PolicyConfig

    project = project_create(name=slug, slug=slug, classes=CLASSES)
    policies.policy_version_publish(
        policy=policies.policy_for_project(project),
        config=PolicyConfig(crowd_overlap=crowd_overlap, max_crowd_labels=max(3, crowd_overlap), **policy),
        author=None,
        change_note="benchmark",
    )
    rng = np.random.default_rng(7)
    rows = []
    for i in range(n):
        top = float(rng.uniform(0.45, 0.8))
        rest = 1.0 - top
        rows.append(
            {
                "external_id": f"item-{i}",
                "data": {"text": f"benchmark item {i}"},
                "language": "en",
                "predictions": [
                    {"model_version": "bench-1", "probabilities": {"cat": top, "dog": rest * 0.6, "bird": rest * 0.4}}
                ],
            }
        )
    for start in range(0, n, batch):
        items_ingest(project=project, rows=rows[start : start + batch])
    return project


def ensure_postgres_database(url: str) -> None:
    """The PostgreSQL database `url` names, created from the server's maintenance database if missing."""
    import psycopg

    name = url.rsplit("/", 1)[-1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def database_ensure() -> None:
    """The configured database (DATABASE_URL), created when it is a missing PostgreSQL one, and migrated
    (SQLite creates its file itself)."""
    from django.core.management import call_command

    url = os.environ.get("DATABASE_URL") or ""
    if url.startswith(("postgres://", "postgresql://")):
        ensure_postgres_database(url)
    call_command("migrate", interactive=False, verbosity=0)


def process_children(pid: int) -> list[int]:
    """The processes `pid` started (a gunicorn master's workers), none when it is gone."""
    path = pathlib.Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []
