import pytest
from django.db import transaction

from dashboards.services import snapshots_refresh
from tests.dashboards.builders import LATER, scenario


@pytest.fixture(scope="module")
def built(django_db_setup, django_db_blocker):
    """builders.scenario() with fresh snapshots, built once per test module and rolled back after it.
    Tests take it through `s` (which also opens the per-test transaction)."""
    with django_db_blocker.unblock(), transaction.atomic():
        built = scenario()
        snapshots_refresh(now=LATER)
        yield built
        transaction.set_rollback(True)


@pytest.fixture
def s(built, db):
    return built
