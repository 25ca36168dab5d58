"""labeling.api_support.type_errors answers exactly what a partial validation by a fresh copy of the
documented serializer finds (what it did before it reused the documented serializer's own fields)."""
import pytest

from labeling import api_support
from work.api import DECLINE, REVIEW, SUBMISSION


def by_fresh_serializer(serializer, data):
    checker = type(serializer)(data=data, partial=True)
    if checker.is_valid():
        return []
    return [
        {"field": field.split(".")[0].split("[")[0], "message": str(message)}
        for field, message in api_support._flat_details(checker.errors)
        if getattr(message, "code", None) in api_support._TYPE_CODES
    ]


BODIES = [
    (SUBMISSION, {"label": "cat"}),
    (SUBMISSION, {}),
    (SUBMISSION, {"label": 5, "rationale": 7, "factors": "smudge", "confidence": "x", "time_spent_ms": [1]}),
    (SUBMISSION, {"label": None, "rationale": None, "factors": None, "confidence": None, "unsure": "maybe"}),
    (SUBMISSION, {"label": "cat", "factors": ["a", 3, None], "confidence": 9, "time_spent_ms": -1}),
    (SUBMISSION, {"label": "", "rationale": "", "factors": [], "confidence": "3", "unsure": "true"}),
    (SUBMISSION, {"label": {"a": 1}, "unknown": object(), "time_spent_ms": 1.5}),
    (DECLINE, {"reason": ["a", "list"]}),
    (DECLINE, {"reason": ""}),
    (REVIEW, {"verdict": "maybe", "label": {"a": 1}, "reason": 3}),
    (REVIEW, {"verdict": None}),
]


@pytest.mark.parametrize(("serializer", "data"), BODIES)
def test_type_errors_are_those_of_a_fresh_partial_validation(serializer, data):
    assert api_support.type_errors(serializer, data) == by_fresh_serializer(serializer, data)


def test_checking_a_body_leaves_nothing_behind_for_the_next():
    bad = {"label": 5, "factors": "smudge"}
    first = api_support.type_errors(SUBMISSION, bad)
    assert [e["field"] for e in first] == ["label", "factors"]
    assert api_support.type_errors(SUBMISSION, {"label": "cat"}) == []
    assert api_support.type_errors(SUBMISSION, bad) == first
