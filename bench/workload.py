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


def database_ensure() -> None:
    """The configured database, created from PostgreSQL's maintenance database when it is missing, and
    migrated (SQLite creates its file itself)."""
    from django.core.management import call_command
    from django.db import connection

    try:
        connection.ensure_connection()
    except Exception:  # noqa: BLE001 - a missing database: create it from the maintenance database
        if connection.vendor != "postgresql":
            raise
        import psycopg

        settings = connection.settings_dict
        with psycopg.connect(host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"],
                             password=settings["PASSWORD"] or None, dbname="postgres", autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{settings["NAME"]}"')
        connection.close()
    call_command("migrate", interactive=False, verbosity=0)
