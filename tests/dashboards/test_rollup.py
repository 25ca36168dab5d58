"""dashboards.rollup (facts to snapshot rows) and the period split of dashboards.selectors: no database."""
from __future__ import annotations

import datetime as dt

import pytest

from dashboards import rollup
from dashboards.rollup import ItemFacts, LabelFact, PredictionFact
from dashboards.selectors import Periods, periods

DAY = dt.date(2026, 3, 4)  # a Wednesday
CLASSES = {1: ("cat", "dog", "bird")}


@pytest.mark.parametrize(
    ("status", "final_source", "route"),
    [
        ("labeled", "model", "auto"),
        ("labeled", "consensus", "crowd"),
        ("labeled", "expert", "expert"),
        ("labeled", "gold", "expert"),
        ("audited", "consensus", "crowd"),
        ("in_crowd_review", "", "crowd"),
        ("escalated", "", "expert"),
        ("new", "", "pending"),
        ("routed", "", "pending"),
    ],
)
def test_route_of(status, final_source, route):
    assert rollup.route_of(status, final_source) == route


def facts(**kw) -> ItemFacts:
    return ItemFacts(**{"project_id": 1, "day": DAY, "domain_id": 7, "status": "labeled", **kw})


def crowd(annotator_id: int, label: str, time_ms: int | None = 1000) -> LabelFact:
    return LabelFact(annotator_id=annotator_id, role="crowd", label=label, time_ms=time_ms)


def test_items_of_one_day_domain_and_route_share_a_row_and_add_up():
    rows = rollup.partition_rows(
        [
            facts(final_label="cat", final_source="consensus", seconds_to_label=3600, gold="cat",
                  labels=(crowd(10, "cat"), crowd(11, "cat", time_ms=3000))),
            facts(final_label="cat", final_source="consensus", seconds_to_label=7200, gold="dog",
                  labels=(crowd(10, "cat"), crowd(11, "dog"), crowd(12, "cat", time_ms=None))),
            facts(final_label="dog", final_source="model", gold="dog",
                  predictions=(PredictionFact("v1", "dog", 0.95),)),
        ],
        CLASSES,
    )
    by_route = {row["route"]: row for row in rows.items}
    assert set(by_route) == {"crowd", "auto"}
    crowd_row = by_route["crowd"]
    assert (crowd_row["items"], crowd_row["labeled"], crowd_row["crowd_labels"]) == (2, 2, 5)
    # pairs 2 + 6, agreeing 2 + 2 (see test_metrics_snapshot's worked example)
    assert (crowd_row["agreement_items"], crowd_row["agreement_pairs"], crowd_row["agreement_agreeing"]) == (2, 8, 4)
    assert crowd_row["agreement_class_totals"] == {"cat": 4, "dog": 1}
    assert (crowd_row["gold_items"], crowd_row["gold_correct"], crowd_row["gold_crowd_labels"]) == (2, 1, 5)
    assert crowd_row["gold_by_class"] == {"cat": [1, 1], "dog": [1, 0]}
    assert sum(crowd_row["seconds_to_label"].values()) == 2
    # Annotation time per item: 4 s and 2 s (the label without a time is left out of its item's sum).
    assert sum(crowd_row["time_per_item"]["crowd"].values()) == 2
    auto = by_route["auto"]
    assert auto["model_versions"]["v1"]["confidence"][9] == 1
    assert auto["model_versions"]["v1"]["gold"] == {"dog": {"dog": 1}}
    assert auto["seconds_to_label"] == {}

    people = {(r["annotator_id"], r["role"]): r for r in rows.annotators}
    assert people[(10, "crowd")]["items"] == 2 and people[(10, "crowd")]["disagreement_items"] == 1
    assert people[(10, "crowd")]["gold_items"] == 2 and people[(10, "crowd")]["gold_correct"] == 1
    assert people[(11, "crowd")]["time_ms"] == 4000 and people[(11, "crowd")]["gold_correct"] == 2
    assert people[(12, "crowd")]["time_ms"] == 0


def test_escalated_item_counts_its_pre_escalation_label_against_the_expert_and_gold():
    rows = rollup.partition_rows(
        [
            facts(final_label="dog", final_source="expert", escalated=True, pre_escalation_label="cat", gold="dog",
                  labels=(LabelFact(annotator_id=5, role="expert", label="dog"),), sla_met=True),
            facts(final_label="cat", final_source="expert", escalated=True, pre_escalation_label="cat", gold="dog",
                  labels=(LabelFact(annotator_id=5, role="expert", label="cat"),), sla_met=False),
            facts(status="escalated", escalated=True, pre_escalation_label="bird"),
        ],
        CLASSES,
    )
    [row] = rows.items
    assert (row["escalated"], row["escalation_labelled"], row["escalation_compared"], row["escalation_agreed"]) == (3,
        2, 2, 1)
    assert (row["escalation_with_gold"], row["escalation_pre_correct"], row["escalation_expert_correct"]) == (2, 0, 1)
    assert (row["escalation_fixed"], row["escalation_broken"]) == (1, 0)
    assert (row["sla_completed"], row["sla_met"], row["expert_labels"]) == (2, 1, 2)
    assert row["statuses"] == {"labeled": 2, "escalated": 1}
    [expert] = rows.annotators
    assert (expert["items"], expert["escalated_items"], expert["disagreement_items"]) == (2, 2, 0)


def test_week_rows_sum_days_of_a_week_and_keep_weeks_apart():
    monday, sunday, next_monday = dt.date(2026, 3, 2), dt.date(2026, 3, 8), dt.date(2026, 3, 9)
    day_rows = []
    for day, label in ((monday, "cat"), (sunday, "dog"), (next_monday, "cat")):
        [row] = rollup.partition_rows(
            [facts(day=day, final_label=label, final_source="model", gold="cat",
                   predictions=(PredictionFact("v1", label, 0.91),))],
            CLASSES,
        ).items
        day_rows.append(row)
    weeks = {row["week"]: row for row in rollup.week_rows(day_rows)}
    assert set(weeks) == {monday, next_monday}
    first = weeks[monday]
    assert (first["items"], first["gold_items"], first["gold_correct"]) == (2, 2, 1)
    assert first["gold_by_class"] == {"cat": [2, 1]}
    assert first["model_versions"]["v1"]["predicted"] == {"cat": 1, "dog": 1}
    assert first["model_versions"]["v1"]["confidence"][9] == 2
    assert first["model_versions"]["v1"]["gold"] == {"cat": {"cat": 1, "dog": 1}}
    assert weeks[next_monday]["items"] == 1


D = dt.date


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        (None, None, Periods(day_ranges=(), weeks=(None, None))),
        # Monday to Sunday: exactly one week.
        (D(2026, 3, 2), D(2026, 3, 8), Periods(day_ranges=(), weeks=(D(2026, 3, 2), D(2026, 3, 2)))),
        # Wednesday to the Tuesday after next: days at both ends around one whole week.
        (D(2026, 3, 4), D(2026, 3, 17),
            Periods(day_ranges=((D(2026, 3, 4), D(2026, 3, 8)), (D(2026, 3, 16), D(2026, 3, 17))),
                                                weeks=(D(2026, 3, 9), D(2026, 3, 9)))),
        # Inside one week: days only.
        (D(2026, 3, 4), D(2026, 3, 6), Periods(day_ranges=((D(2026, 3, 4), D(2026, 3, 6)),), weeks=None)),
        # Open start, mid-week end.
        (None, D(2026, 3, 11), Periods(day_ranges=((D(2026, 3, 9), D(2026, 3, 11)),), weeks=(None, D(2026, 3, 2)))),
        # Mid-week start, open end.
        (D(2026, 3, 7), None, Periods(day_ranges=((D(2026, 3, 7), D(2026, 3, 8)),), weeks=(D(2026, 3, 9), None))),
    ],
)
def test_periods_split_whole_weeks_from_odd_days(since, until, expected):
    assert periods(since, until) == expected


def test_crowd_label_pairs_pair_different_crowd_annotators_lower_id_first():
    item = facts(labels=(crowd(3, "cat"), crowd(1, "dog"), LabelFact(2, "crowd", "cat", count=2),
                         LabelFact(9, "expert", "dog")))
    assert sorted(rollup.crowd_label_pairs(item)) == sorted([
        (1, 2, "dog", "cat"), (1, 2, "dog", "cat"), (1, 3, "dog", "cat"), (2, 3, "cat", "cat"), (2, 3, "cat", "cat"),
    ])
    rows = rollup.partition_rows([item, item], {1: ["cat", "dog"]}).crowd_pairs
    assert {(r["annotator_a_id"], r["annotator_b_id"], r["label_a"], r["label_b"]): r["pairs"] for r in rows} == {
        (1, 2, "dog", "cat"): 4, (1, 3, "dog", "cat"): 2, (2, 3, "cat", "cat"): 4,
    }
