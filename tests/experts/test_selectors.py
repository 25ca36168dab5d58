import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from experts import selectors, services
from experts.availability import ShiftSpec, on_call
from experts.models import Domain

pytestmark = pytest.mark.django_db


def count_queries(fn):
    with CaptureQueriesContext(connection) as ctx:
        result = fn()
    return result, len(ctx.captured_queries)


class TestExpertSnapshots:
    def test_snapshot_carries_the_roster_row(self, make_expert):
        expert = make_expert(
            "Ada",
            time_zone="America/New_York",
            languages=["en", "pt-BR"],
            capacity=3,
            expertise={"medical/radiology": 4, "legal": 2},
            shifts=[(4, dt.time(22), dt.time(6))],
            time_off=[(dt.date(2026, 4, 1), dt.date(2026, 4, 2))],
        )
        radiology = Domain.objects.get(path="medical/radiology")
        services.expert_accuracy_record(
            expert=expert, domain=radiology, gold_correct=10, gold_total=10, agreement_correct=0, agreement_total=0
        )
        services.expert_accuracy_record(
            expert=expert, domain=None, gold_correct=0, gold_total=0, agreement_correct=0, agreement_total=0
        )

        [snap] = selectors.expert_snapshots(open_assignment_counts={expert.user_id: 2, 999: 7})
        assert (snap.expert_id, snap.user_id, snap.display_name) == (expert.pk, expert.user_id, "Ada")
        assert snap.time_zone == "America/New_York"
        assert snap.languages == ("en", "pt-BR")
        assert sorted(snap.expertise) == [("legal", 2), ("medical/radiology", 4)]
        assert snap.shifts == (ShiftSpec(4, dt.time(22), dt.time(6)),)
        assert snap.time_off == ((dt.date(2026, 4, 1), dt.date(2026, 4, 2)),)
        assert snap.accuracy["medical/radiology"] == pytest.approx(14 / 15)
        assert snap.accuracy[""] is None
        assert (snap.capacity, snap.open_assignments) == (3, 2)

    def test_query_count_does_not_grow_with_the_roster(self, make_expert):
        for n in range(2):
            make_expert(f"E{n}")
        small, small_queries = count_queries(selectors.expert_snapshots)
        for n in range(2, 8):
            make_expert(f"E{n}")
        large, large_queries = count_queries(selectors.expert_snapshots)
        assert (len(small), len(large)) == (2, 8)
        assert small_queries == large_queries == 5

    def test_filters(self, make_expert):
        a = make_expert("A")
        b = make_expert("B", role="reviewer")
        c = make_expert("C", active=False)
        assert [s.expert_id for s in selectors.expert_snapshots()] == [a.pk, b.pk]
        assert [s.expert_id for s in selectors.expert_snapshots(role="reviewer")] == [b.pk]
        assert [s.expert_id for s in selectors.expert_snapshots(user_ids=[c.user_id, a.user_id])] == [a.pk]
        assert [s.expert_id for s in selectors.expert_snapshots(user_ids=[c.user_id], active_only=False)] == [c.pk]
        assert [s.open_assignments for s in selectors.expert_snapshots()] == [0, 0]


class TestOnCallRotations:
    def test_most_specific_covering_domain_first(self, make_expert):
        a, b, c = make_expert("A"), make_expert("B"), make_expert("C")
        services.domain_ensure(path="medical/cardiology")
        start = dt.date(2026, 3, 2)
        for path, name in [
            ("medical", "general"),
            ("medical/radiology", "radiology"),
            ("medical/cardiology", "cardio"),
        ]:
            services.on_call_rotation_create(
                domain=Domain.objects.get(path=path), name=name, starts_on=start, members=[c, a, b]
            )

        specs, queries = count_queries(lambda: selectors.on_call_rotations("medical/radiology/ct"))
        assert [s.name for s in specs] == ["radiology", "general"]
        assert specs[0].member_expert_ids == (c.pk, a.pk, b.pk)
        assert queries == 2
        assert on_call(specs[0], dt.datetime(2026, 3, 9, 12, tzinfo=dt.UTC)) == a.pk
        assert [s.name for s in selectors.on_call_rotations("legal")] == []
        assert len(selectors.on_call_rotations("")) == 3

    def test_inactive_members_are_skipped(self, make_expert):
        a, b = make_expert("A"), make_expert("B", active=False)
        rotation = services.on_call_rotation_create(
            domain=Domain.objects.get(path="medical"), name="r", starts_on=dt.date(2026, 3, 2), members=[b, a]
        )
        [spec] = selectors.on_call_rotations("medical")
        assert spec.rotation_id == rotation.pk
        assert spec.member_expert_ids == (a.pk,)


def test_expert_ids_on_shift(make_expert):
    berlin = make_expert("Berlin")  # 09-17 local = 07-15 UTC in April
    tokyo = make_expert("Tokyo", time_zone="Asia/Tokyo")  # 00-08 UTC
    at = dt.datetime(2026, 4, 6, 7, 30, tzinfo=dt.UTC)
    assert selectors.expert_ids_on_shift(at=at) == {berlin.pk, tokyo.pk}
    assert selectors.expert_ids_on_shift(at=at + dt.timedelta(hours=1)) == {berlin.pk}
