"""Claims stay exclusive under concurrency: 16 people claiming from one queue of 500 slots at once.

Runs on SQLite (the default; no row locks there, so exclusivity rests on IMMEDIATE transactions and the
compare-and-set) and, with DATABASE_URL set to PostgreSQL, on PostgreSQL (SKIP LOCKED row locks).
"""

import threading
from collections import Counter

import pytest
from django.db import connection

from experts.models import Role
from routing.engine.types import PolicyConfig
from routing.models import Assignment, AssignmentStatus
from tests.routing.assignment_helpers import MIDDLING, NOW, ingest_at, person, project, row
from work import claims

CLAIMERS = 16
SLOTS = 500
ROUNDS = 3


def claim_all(users, proj) -> tuple[list[int], list[BaseException]]:
    """Every user claims in its own thread (own connection) until the queue is empty."""
    claimed: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(len(users))

    def work(user):
        try:
            start.wait()
            mine = []
            while (assignment := claims.assignment_claim_next(user=user, project=proj, now=NOW)) is not None:
                mine.append(assignment.pk)
            with lock:
                claimed.extend(mine)
        except BaseException as exc:
            with lock:
                errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return claimed, errors


def run_rounds():
    users = [person(Role.CROWD, capacity=SLOTS) for _ in range(CLAIMERS)]
    for n in range(ROUNDS):
        proj = project(slug=f"queue-{n}", policy=PolicyConfig(crowd_overlap=1, max_crowd_labels=1, gold_check_rate=0))
        ingest_at(proj, [row(f"i{i}", MIDDLING) for i in range(SLOTS)])
        slot_ids = set(Assignment.objects.filter(item__project=proj).values_list("id", flat=True))
        assert len(slot_ids) == SLOTS

        claimed, errors = claim_all(users, proj)

        assert errors == []
        twice = [pk for pk, times in Counter(claimed).items() if times > 1]
        assert twice == [], f"round {n}: claimed twice: {twice[:10]}"
        assert set(claimed) == slot_ids, f"round {n}: lost {len(slot_ids - set(claimed))}"
        rows = Assignment.objects.filter(id__in=slot_ids)
        assert rows.filter(status=AssignmentStatus.ACTIVE).count() == SLOTS
        assert len({(a.item_id) for a in rows}) == SLOTS
        # Work was actually shared out, not taken by one thread while the others waited.
        per_user = Counter(rows.values_list("assignee_id", flat=True))
        assert len(per_user) > 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_are_exclusive_and_lose_nothing():
    run_rounds()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_on_postgres_skip_locked_rows():
    assert connection.vendor == "postgresql"
    run_rounds()
