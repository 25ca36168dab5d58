"""Feature rules: every operator firing and not firing, wrong types, missing fields, validation."""

import pytest

from routing.engine.rules import (
    MAX_PATTERN_LENGTH,
    MISSING,
    OPERATORS,
    describe_rule,
    fired_rules,
    resolve,
    rule_fires,
    validate_rule,
)
from routing.engine.types import FeatureRule, ItemInput

ITEM = ItemInput(
    item_id=1,
    classes=("pos", "neg"),
    data={
        "text": "Refund requested for order 1234",
        "tokens": ["refund", "order"],
        "score": 0.42,
        "count": 3,
        "flag": True,
        "empty": "",
        "nothing": None,
        "nested": {"items": [{"sku": "A-1"}, {"sku": "B-2"}]},
    },
    metadata={"source": "forum", "date": "2024-03-01"},
    language="pt-BR",
    domain="medical/radiology",
)


def rule(field, operator, value=None, action="expert"):
    return FeatureRule(field=field, operator=operator, value=value, reason_code="r", action=action)


@pytest.mark.parametrize(
    "field, operator, value, fires",
    [
        ("metadata.source", "eq", "forum", True),
        ("metadata.source", "eq", "web", False),
        ("data.count", "eq", 3.0, True),  # numbers compare by value
        ("data.count", "eq", "3", False),  # text is not a number
        ("data.flag", "eq", 1, False),  # a flag is not a count, although True == 1 in Python
        ("data.flag", "eq", True, True),
        ("data.nothing", "eq", None, True),
        ("metadata.source", "ne", "web", True),
        ("metadata.source", "ne", "forum", False),
        ("data.score", "lt", 0.5, True),
        ("data.score", "lt", 0.42, False),
        ("data.score", "le", 0.42, True),
        ("data.score", "le", 0.4199, False),
        ("data.score", "gt", 0.42, False),
        ("data.score", "gt", 0.4199, True),
        ("data.score", "ge", 0.42, True),
        ("data.score", "ge", 0.4201, False),
        ("metadata.date", "lt", "2024-06-01", True),  # text compares alphabetically (ISO dates sort)
        ("metadata.date", "gt", "2024-06-01", False),
        ("language", "in", ["pt-BR", "es"], True),
        ("language", "in", ["en"], False),
        ("language", "not_in", ["en"], True),
        ("language", "not_in", ["pt-BR"], False),
        ("data.text", "present", None, True),
        ("data.missing", "present", None, False),
        ("data.empty", "present", None, False),
        ("data.nothing", "present", None, False),
        ("data.missing", "absent", None, True),
        ("data.empty", "absent", None, True),
        ("data.text", "absent", None, False),
        ("data.text", "len_gt", 30, True),
        ("data.text", "len_gt", 31, False),  # the text is exactly 31 characters
        ("data.text", "len_lt", 32, True),
        ("data.text", "len_lt", 31, False),
        ("data.tokens", "len_gt", 1, True),
        ("data.tokens", "len_lt", 2, False),
        ("data.text", "contains", "order", True),
        ("data.text", "contains", "Order", False),  # case-sensitive
        ("data.tokens", "contains", "refund", True),
        ("data.tokens", "contains", "ref", False),  # list membership, not substring
        ("data.text", "matches", r"order \d{4}$", True),
        ("data.text", "matches", r"(?i)^REFUND", True),
        ("data.text", "matches", r"^order", False),
        ("domain", "matches", r"^medical/", True),
        ("data.nested.items.1.sku", "eq", "B-2", True),  # lists by index
        ("data.nested.items.5.sku", "present", None, False),
    ],
)
def test_operator(field, operator, value, fires):
    assert rule_fires(rule(field, operator, value), ITEM) is fires


@pytest.mark.parametrize(
    "field, operator, value",
    [
        ("data.count", "len_gt", 1),  # a number has no length
        ("data.score", "lt", "1"),  # number against text
        ("data.text", "gt", 5),  # text against number
        ("data.flag", "gt", 0),  # a flag is not a number
        ("data.count", "contains", "3"),
        ("data.count", "matches", "3"),
        ("data.tokens", "in", ["refund"]),  # a list is not a scalar
        ("data.tokens", "not_in", ["x"]),
        ("data.text", "in", "Refund"),  # operand not a list (an invalid rule)
        ("data.text", "matches", "(unclosed"),  # bad regex never fires, never raises
        ("data.text.inner", "eq", "x"),  # a path through text
    ],
)
def test_type_mismatch_does_not_fire_or_crash(field, operator, value):
    assert rule_fires(rule(field, operator, value), ITEM) is False


@pytest.mark.parametrize("operator", sorted(set(OPERATORS) - {"absent"}))
def test_missing_field_only_fires_absent(operator):
    value = {"in": ["x"], "not_in": ["x"], "len_gt": 0, "len_lt": 5, "matches": "x"}.get(operator, "x")
    assert rule_fires(rule("metadata.nope", operator, value), ITEM) is False


def test_unknown_operator_or_root_never_fires():
    assert rule_fires(rule("metadata.source", "startswith", "f"), ITEM) is False
    assert rule_fires(rule("payload.text", "present"), ITEM) is False


def test_fired_rules_keeps_order_and_filters():
    rules = (rule("data.count", "gt", 5), rule("language", "eq", "pt-BR"), rule("data.text", "present"))
    assert fired_rules(rules, ITEM) == (rules[1], rules[2])


def test_resolve_follows_mappings_and_lists():
    doc = {"data": {"a": [{"b": 1}]}}
    assert resolve(doc, "data.a.0.b") == 1
    assert resolve(doc, "data.a.1.b") is MISSING
    assert resolve(doc, "data.a.x") is MISSING
    assert resolve({"data": {"a": None}}, "data.a") is None


@pytest.mark.parametrize(
    "rule_, fragment",
    [
        (rule("text", "eq", "x"), "must start with one of"),
        (rule("data..text", "eq", "x"), "empty segment"),
        (rule("language.code", "eq", "x"), "no sub-fields"),
        (rule("data.text", "like", "x"), "unknown operator 'like'"),
        (rule("data.text", "eq", ["x"]), "eq needs"),
        (rule("data.text", "lt", None), "lt needs a number"),
        (rule("data.text", "in", "x"), "non-empty list"),
        (rule("data.text", "not_in", []), "non-empty list"),
        (rule("data.text", "len_gt", "10"), "whole number"),
        (rule("data.text", "len_lt", -1), "whole number"),
        (rule("data.text", "len_gt", True), "whole number"),
        (rule("data.text", "contains", {"a": 1}), "contains needs"),
        (rule("data.text", "matches", "(unclosed"), "invalid regular expression"),
        (rule("data.text", "matches", "x" * (MAX_PATTERN_LENGTH + 1)), "the limit is"),
        (rule("data.text", "matches", "(a+)+$"), "nests quantifiers"),
        (rule("data.text", "matches", r"(?:\w*)*x"), "nests quantifiers"),
        (rule("data.text", "matches", ""), "non-empty regular expression"),
        (FeatureRule(field="data.text", operator="present", value=None, reason_code="Bad Code"), "reason_code"),
        (FeatureRule(field="data.text", operator="present", value=None, reason_code="ok", action="drop"), "action"),
    ],
)
def test_validate_rule_explains_errors(rule_, fragment):
    errors = validate_rule(rule_)
    assert any(fragment in e for e in errors), errors


@pytest.mark.parametrize(
    "rule_",
    [
        rule("data.text", "len_gt", 500),
        rule("metadata.source", "in", ["forum", "web"]),
        rule("data.text", "matches", r"\b(refund|chargeback)\b"),
        rule("data.text", "present"),
        rule("language", "eq", "en", action="crowd"),
        rule("data.score", "ge", 0.5),
    ],
)
def test_valid_rules_have_no_errors(rule_):
    assert validate_rule(rule_) == []


@pytest.mark.parametrize(
    "rule_, evidence",
    [
        (rule("data.text", "len_gt", 20), "data.text length 31 > 20"),
        (rule("metadata.source", "in", ["forum", "web"]), "metadata.source 'forum' in ['forum', 'web']"),
        (rule("data.score", "lt", 0.5), "data.score 0.42 < 0.5"),
        (rule("data.text", "present"), "data.text is present"),
    ],
)
def test_describe_rule_gives_evidence_in_words(rule_, evidence):
    assert describe_rule(rule_, ITEM) == evidence
