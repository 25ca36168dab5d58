"""Several machines simulated on this one (bench/fleet.py): two web instances and two workers on one
PostgreSQL, one of each SIGKILLed mid-run; nothing claimed twice, no acknowledged label lost, every
abandoned lease expired and offered again, every task a dead worker held run again.

The run itself (`pytest -m fleet`, ~40 s) needs PostgreSQL; the checks it relies on are tested on either
database against a ledger that contradicts the database."""
import importlib.util
import pathlib
import sys

import pytest

from experts.models import Role
from routing.engine.types import PolicyConfig
from tests.routing.assignment_helpers import MIDDLING, NOW, ingest_at, person, project, row
from work import claims, submissions

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_fleet", ROOT / "bench" / "fleet.py")
fleet = sys.modules.setdefault("bench_fleet", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(fleet)


@pytest.mark.postgres
@pytest.mark.fleet
@pytest.mark.django_db(transaction=True)
def test_a_crash_of_one_web_instance_and_one_worker_loses_nothing_and_recovers():
    # Small: 10 annotators (3 vanish with web B), 15 s, killed at 4 s, leases of 5 s expired every 1.25 s.
    result = fleet.fleet_run(annotators=10, seconds=15, kill_at=4, lease_s=5, think=0.7, log=lambda *_: None)
    print(result.table())
    assert result.acknowledged > 0 and result.failovers > 0
    assert result.lost == 0
    assert result.double_claims == 0
    assert result.abandoned > 0
    assert result.expired_in_time == result.reoffered == result.abandoned
    assert result.stuck_leases == 0
    assert result.probes_done == result.probes > 0
    assert result.expiry_runs_after_kill > 0
    assert result.ok


@pytest.mark.django_db(transaction=True)
def test_the_checks_see_a_lost_label_a_double_claim_and_an_unexpired_lease():
    crowd = [person(Role.CROWD, capacity=10) for _ in range(3)]
    proj = project(slug="fleet-check", policy=PolicyConfig(crowd_overlap=2, max_crowd_labels=3, gold_check_rate=0))
    ingest_at(proj, [row(f"i{i}", MIDDLING) for i in range(3)])
    first = claims.assignment_claim_next(user=crowd[0], project=proj, now=NOW)
    submissions.assignment_submit(assignment_id=first.pk, user=crowd[0], label="cat", now=NOW)
    held = claims.assignment_claim_next(user=crowd[1], project=proj, now=NOW)

    def check(ledger):
        result = fleet.FleetResult(annotators=3, seconds=1, lease_seconds=4)
        fleet.fleet_check(result, project=proj, ledger=ledger, killed_at=NOW, lease_s=4, expiry_every=1)
        return result

    honest = fleet.Ledger(claims=[(first.pk, crowd[0].pk), (held.pk, crowd[1].pk)],
                          acked=[(first.pk, crowd[0].pk, "cat")], abandoned=[held.pk])
    result = check(honest)
    assert (result.acknowledged, result.lost, result.double_claims) == (1, 0, 0)
    # `held` was claimed at NOW, long ago: its lease is past its end and nobody expired it.
    assert result.stuck_leases == 1 and result.abandoned == 1 and result.expired_in_time == 0
    assert not result.ok

    wrong_label = fleet.Ledger(claims=honest.claims, acked=[(first.pk, crowd[0].pk, "dog")])
    assert check(wrong_label).lost == 1
    acked_twice = fleet.Ledger(claims=honest.claims, acked=honest.acked * 2)
    assert check(acked_twice).lost == 2
    handed_twice = fleet.Ledger(claims=[*honest.claims, (first.pk, crowd[2].pk)], acked=honest.acked)
    assert check(handed_twice).double_claims == 1
