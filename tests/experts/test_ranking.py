"""Expert ranking, no database: who is eligible, in what order, and the words that say why."""

import datetime as dt
import json
import random

import pytest

from experts.availability import ExpertSnapshot, ShiftSpec
from experts.ranking import PRIOR_ACCURACY, RejectionCode, measured_accuracy, rank_experts

UTC = dt.UTC
NOW = dt.datetime(2026, 3, 30, 10, tzinfo=UTC)  # a Monday, Berlin already on summer time
DEADLINE = dt.datetime(2026, 3, 30, 12, tzinfo=UTC)
ALL_WEEK_UTC_8_TO_18 = tuple(ShiftSpec(wd, dt.time(8), dt.time(18)) for wd in range(7))


def snap(expert_id: int, name: str, **kw) -> ExpertSnapshot:
    kw.setdefault("shifts", ALL_WEEK_UTC_8_TO_18)
    kw.setdefault("expertise", (("medical/radiology", 3),))
    kw.setdefault("languages", ("en",))
    return ExpertSnapshot(expert_id=expert_id, user_id=100 + expert_id, display_name=name, **kw)


def rank(experts, **kw):
    kw.setdefault("domain", "medical/radiology")
    kw.setdefault("language", "en")
    kw.setdefault("now", NOW)
    kw.setdefault("sla_deadline", DEADLINE)
    return rank_experts(experts, **kw)


def ids(ranking):
    return [c.expert_id for c in ranking.candidates]


def rejection(ranking, expert_id):
    return next(r for r in ranking.rejected if r.expert_id == expert_id)


class TestExplanation:
    def roster(self):
        return [
            # Berlin 16:00 local = 14:00 UTC: after the 12:00 deadline.
            snap(1, "A", time_zone="Europe/Berlin", shifts=[ShiftSpec(0, dt.time(16), dt.time(20))]),
            snap(2, "B", accuracy={"medical/radiology": 0.94}, open_assignments=2, capacity=5),
            snap(
                3,
                "C",
                accuracy={"medical/radiology": 0.99},
                open_assignments=5,
                capacity=5,
                expertise=(("medical/radiology", 5),),
            ),
            snap(4, "D", role="crowd"),
        ]

    def test_picks_the_only_available_expert_and_says_why_the_others_are_out(self):
        ranking = rank(self.roster())
        assert ids(ranking) == [2]
        assert ranking.best.display_name == "B"
        text = ranking.explanation
        assert text.startswith("picked B: medical/radiology proficiency 3, accuracy 0.94, 2/5 open")
        assert "A off shift until 14:00 UTC, after the SLA deadline 12:00 UTC" in text
        assert "C at capacity 5/5" in text
        assert "1 not qualified" in text  # the crowd annotator is counted, not listed

    def test_rejections_carry_codes_and_reasons(self):
        ranking = rank(self.roster())
        assert rejection(ranking, 1).code == RejectionCode.OFF_SHIFT
        assert rejection(ranking, 3).code == RejectionCode.AT_CAPACITY
        assert rejection(ranking, 4).code == RejectionCode.ROLE
        assert rejection(ranking, 4).reason == "role crowd, not expert"

    def test_nobody_eligible_lists_every_reason(self):
        ranking = rank(self.roster()[0:1] + self.roster()[2:])
        assert ranking.candidates == ()
        assert ranking.best is None
        assert ranking.explanation.startswith("nobody eligible")
        assert "D role crowd, not expert" in ranking.explanation

    def test_runner_up_is_explained_with_its_score(self):
        roster = [snap(1, "A", accuracy={"medical": 0.7}), snap(2, "B", accuracy={"": 0.9})]
        ranking = rank(roster)
        assert ids(ranking) == [2, 1]
        assert "picked B: medical/radiology proficiency 3, accuracy 0.90 overall, 0/5 open" in ranking.explanation
        runner_up, best = ranking.candidates[1].score, ranking.candidates[0].score
        expected = (
            f"A ranked 2 (score {runner_up:.2f} vs {best:.2f}): "
            "medical/radiology proficiency 3, accuracy 0.70 in medical"
        )
        assert expected in ranking.explanation

    def test_explanation_is_capped_for_big_rosters(self):
        roster = [snap(i, f"E{i}", open_assignments=5, capacity=5) for i in range(1, 30)] + [snap(99, "Z")]
        text = rank(roster).explanation
        assert text.startswith("picked Z")
        assert "and 21 more" in text


class TestEligibility:
    @pytest.mark.parametrize(
        "changes, code",
        [
            ({"active": False}, RejectionCode.INACTIVE),
            ({"role": "reviewer"}, RejectionCode.ROLE),
            ({"expertise": (("medical/cardiology", 5),)}, RejectionCode.DOMAIN),
            ({"languages": ("de",)}, RejectionCode.LANGUAGE),
            ({"open_assignments": 5, "capacity": 5}, RejectionCode.AT_CAPACITY),
            ({"open_assignments": 0, "capacity": 0}, RejectionCode.AT_CAPACITY),
            ({"shifts": ()}, RejectionCode.OFF_SHIFT),
        ],
    )
    def test_each_failed_check_is_a_rejection(self, changes, code):
        ranking = rank([snap(1, "A", **changes)])
        assert ranking.candidates == ()
        assert rejection(ranking, 1).code == code

    def test_parent_domain_expertise_covers_the_item(self):
        assert ids(rank([snap(1, "A", expertise=(("medical", 2),))])) == [1]

    def test_regional_language_variants_match(self):
        assert ids(rank([snap(1, "A", languages=("pt",))], language="pt-BR")) == [1]

    def test_already_labeled_by_this_user_is_excluded(self):
        ranking = rank([snap(1, "A"), snap(2, "B")], already_labeled_by={101})
        assert ids(ranking) == [2]
        assert rejection(ranking, 1).code == RejectionCode.ALREADY_LABELED
        assert "A already labeled this item" in ranking.explanation

    def test_excluded_users_are_rejected(self):
        ranking = rank([snap(1, "A"), snap(2, "B")], exclude_user_ids=(102,))
        assert ids(ranking) == [1]
        assert rejection(ranking, 2).code == RejectionCode.EXCLUDED

    def test_reviewers_when_asked(self):
        roster = [snap(1, "A"), snap(2, "R", role="reviewer")]
        assert ids(rank(roster, roles=("reviewer",))) == [2]

    def test_coming_on_shift_before_the_deadline_is_eligible_but_waits(self):
        later = snap(1, "A", shifts=[ShiftSpec(0, dt.time(11), dt.time(18))])
        ranking = rank([later])
        assert ids(ranking) == [1]
        components = ranking.candidates[0].components
        assert components.on_shift_from == dt.datetime(2026, 3, 30, 11, tzinfo=UTC)
        assert components.wait_hours == pytest.approx(1.0)
        assert "on shift from 11:00 UTC" in ranking.explanation

    def test_past_deadline_only_people_on_shift_count(self):
        later = snap(1, "A", shifts=[ShiftSpec(0, dt.time(11), dt.time(18))])
        now_on = snap(2, "B")
        ranking = rank([later, now_on], sla_deadline=NOW - dt.timedelta(hours=1))
        assert ids(ranking) == [2]
        assert rejection(ranking, 1).code == RejectionCode.OFF_SHIFT

    def test_deadline_on_another_day_is_shown_with_its_date(self):
        tuesday = snap(1, "A", shifts=[ShiftSpec(1, dt.time(9), dt.time(17))])
        ranking = rank([tuesday], sla_deadline=NOW + dt.timedelta(hours=4))
        assert rejection(ranking, 1).reason == "off shift until 2026-03-31 09:00 UTC, after the SLA deadline 14:00 UTC"


class TestScore:
    def test_score_follows_the_documented_formula(self):
        e = snap(
            1,
            "A",
            accuracy={"medical": 0.9},
            expertise=(("medical", 4),),
            open_assignments=1,
            capacity=4,
            shifts=[ShiftSpec(0, dt.time(11), dt.time(18))],
        )
        c = rank([e], sla_deadline=NOW + dt.timedelta(hours=4)).candidates[0]
        # accuracy 0.9, proficiency 4, load 1/4, waits 1 of 4 hours of slack.
        assert c.score == pytest.approx(0.6 * 0.9 + 0.4 * 3 / 4 - 0.3 * 0.25 - 0.3 * 0.25)

    @pytest.mark.parametrize(
        "better, worse",
        [
            ({"accuracy": {"medical/radiology": 0.95}}, {"accuracy": {"medical/radiology": 0.85}}),
            ({"expertise": (("medical/radiology", 5),)}, {"expertise": (("medical/radiology", 2),)}),
            ({"open_assignments": 0}, {"open_assignments": 3}),
            ({}, {"shifts": [ShiftSpec(0, dt.time(11), dt.time(18))]}),
        ],
    )
    def test_each_component_moves_the_order(self, better, worse):
        # The worse one gets the lower id, so only the score can put the better one first.
        assert ids(rank([snap(1, "W", **worse), snap(2, "B", **better)])) == [2, 1]

    def test_ties_go_to_the_lower_expert_id_whatever_the_input_order(self):
        roster = [snap(i, f"E{i}") for i in (5, 3, 9, 1, 7)]
        orders = set()
        for seed in range(5):
            shuffled = roster[:]
            random.Random(seed).shuffle(shuffled)
            orders.add(tuple(ids(rank(shuffled))))
        assert orders == {(1, 3, 5, 7, 9)}

    @pytest.mark.parametrize(
        "accuracy, domain, expected",
        [
            ({"medical/radiology": 0.9, "medical": 0.7, "": 0.6}, "medical/radiology/ct", (0.9, "medical/radiology")),
            ({"medical/radiology": None, "medical": 0.7, "": 0.6}, "medical/radiology", (0.7, "medical")),
            ({"medical/cardiology": 0.99, "": 0.6}, "medical/radiology", (0.6, "overall")),
            ({"legal": 0.99}, "medical/radiology", (PRIOR_ACCURACY, "prior")),
            ({}, "", (PRIOR_ACCURACY, "prior")),
        ],
    )
    def test_accuracy_comes_from_the_most_specific_covering_domain(self, accuracy, domain, expected):
        assert measured_accuracy(snap(1, "A", accuracy=accuracy), domain) == expected

    def test_most_specific_expertise_sets_the_proficiency(self):
        e = snap(1, "A", expertise=(("medical", 5), ("medical/radiology", 2)))
        assert rank([e]).candidates[0].components.proficiency == 2


def test_ranking_serialises_to_json():
    ranking = rank([snap(1, "A"), snap(2, "B", role="crowd")])
    data = json.loads(json.dumps(ranking.to_dict()))
    assert data["candidates"][0]["components"]["on_shift_from"] == NOW.isoformat()
    assert data["rejected"][0]["code"] == "role"


def test_naive_now_is_refused():
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        rank([snap(1, "A")], now=dt.datetime(2026, 3, 30, 10))
