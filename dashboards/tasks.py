"""Background tasks (django-q2), scheduled by migration 0002: each calls one service."""
from dashboards import services


def snapshots_refresh(full: bool = False) -> str:
    result = services.snapshots_refresh(full=full)
    return f"{result.partitions} partitions, {result.items} items (full={result.full})"
