"""Feature rules: a small, safe interpreter for admin-written (field, operator, value) conditions.

Nothing here evaluates code: a rule is a dotted path into the item, one operator from OPERATORS and a
JSON value. A rule never raises while routing: a missing field, a type mismatch or an invalid rule makes
it not fire. `validate_rule` tells the admin, in words, what is wrong before a policy is saved.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .types import FeatureRule, ItemInput

ROOTS = ("data", "metadata", "language", "domain")
ACTIONS = ("expert", "crowd")
MAX_PATTERN_LENGTH = 200
# `matches` looks at this many leading characters only, bounding the regex engine's work per item.
MAX_MATCH_TEXT = 10_000
REASON_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# A group that ends in a quantifier and is itself quantified, e.g. "(a+)+" or "(\w*)*": the classic
# catastrophic-backtracking shape. Python's re has no timeout, so such patterns are refused up front.
_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*[+*}]\)(?:[+*]|\{\d*,)")

OPERATORS: dict[str, str] = {
    # name: what the admin reads
    "eq": "equals value",
    "ne": "differs from value",
    "lt": "is less than value (numbers, or strings compared alphabetically)",
    "le": "is at most value",
    "gt": "is greater than value",
    "ge": "is at least value",
    "in": "is one of the listed values",
    "not_in": "is none of the listed values",
    "present": "exists and is not null or empty text",
    "absent": "is missing, null or empty text",
    "len_gt": "text or list is longer than value",
    "len_lt": "text or list is shorter than value",
    "contains": "text contains value as a substring (case-sensitive), or list contains value",
    "matches": f"text matches the regular expression value (re.search, at most {MAX_PATTERN_LENGTH} chars)",
}
_SYMBOLS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}

# What `resolve` returns for a path that leads nowhere (None is a value a field can hold).
MISSING = object()


def item_view(item: ItemInput) -> dict[str, Any]:
    """The document rules see: the payload, metadata, language and domain path of the item."""
    return {"data": item.data, "metadata": item.metadata, "language": item.language, "domain": item.domain}


def resolve(document: Mapping[str, Any], path: str) -> Any:
    """Follow a dotted path through mappings (by key) and lists (by index); MISSING if it leads nowhere."""
    current: Any = document
    for part in path.split("."):
        if isinstance(current, Mapping):
            if part not in current:
                return MISSING
            current = current[part]
        elif isinstance(current, (list, tuple)) and part.isdigit():
            index = int(part)
            if index >= len(current):
                return MISSING
            current = current[index]
        else:
            return MISSING
    return current


def path_errors(path: Any, *, label: str = "field") -> list[str]:
    if not isinstance(path, str) or not path:
        return [f"{label} must be a dotted path such as 'data.text' or 'metadata.source'"]
    parts = path.split(".")
    errors = []
    if parts[0] not in ROOTS:
        errors.append(f"{label} '{path}' must start with one of: {', '.join(ROOTS)}")
    if any(not p for p in parts):
        errors.append(f"{label} '{path}' has an empty segment")
    if parts[0] in ("language", "domain") and len(parts) > 1:
        errors.append(f"{label} '{path}': {parts[0]} is text and has no sub-fields")
    return errors


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, bool)) or _is_number(value)


def _pattern_errors(pattern: Any) -> list[str]:
    if not isinstance(pattern, str) or not pattern:
        return ["matches needs a non-empty regular expression as text"]
    if len(pattern) > MAX_PATTERN_LENGTH:
        return [f"regular expression is {len(pattern)} characters; the limit is {MAX_PATTERN_LENGTH}"]
    if _NESTED_QUANTIFIER.search(pattern):
        return ["regular expression nests quantifiers such as '(a+)+', which can take exponential time"]
    try:
        _compile(pattern)
    except re.error as exc:
        return [f"invalid regular expression: {exc}"]
    return []


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def validate_rule(rule: FeatureRule) -> list[str]:
    """Everything wrong with a rule, in words for the admin; an empty list means it is valid."""
    errors = path_errors(rule.field)
    op, value = rule.operator, rule.value
    if op not in OPERATORS:
        errors.append(f"unknown operator '{op}'; use one of: {', '.join(OPERATORS)}")
    elif op in ("eq", "ne") and not _is_scalar(value):
        errors.append(f"{op} needs a text, number, true/false or null value")
    elif op in ("lt", "le", "gt", "ge") and not (_is_number(value) or isinstance(value, str)):
        errors.append(f"{op} needs a number (or text, compared alphabetically)")
    elif op in ("in", "not_in") and not (
        isinstance(value, (list, tuple)) and value and all(_is_scalar(v) for v in value)
    ):
        errors.append(f"{op} needs a non-empty list of texts, numbers, true/false or null")
    elif op in ("len_gt", "len_lt") and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        errors.append(f"{op} needs a whole number of at least 0")
    elif op == "contains" and not _is_scalar(value):
        errors.append("contains needs a text (or a single value to look for in a list)")
    elif op == "matches":
        errors.extend(_pattern_errors(value))
    if not isinstance(rule.reason_code, str) or not REASON_CODE.match(rule.reason_code):
        errors.append("reason_code must be lower-case letters, digits and underscores, starting with a letter")
    if rule.action not in ACTIONS:
        errors.append(f"action must be one of: {', '.join(ACTIONS)}")
    return errors


def _compare(op: str, actual: Any, expected: Any) -> bool:
    # Numbers compare with numbers, text with text; anything else (bools included) does not fire.
    if not ((_is_number(actual) and _is_number(expected)) or (isinstance(actual, str) and isinstance(expected, str))):
        return False
    if op == "lt":
        return bool(actual < expected)
    if op == "le":
        return bool(actual <= expected)
    if op == "gt":
        return bool(actual > expected)
    return bool(actual >= expected)


def _same(actual: Any, expected: Any) -> bool:
    # True == 1 in Python; a rule on a flag should not fire on a count, nor a rule on a count on a flag.
    return isinstance(actual, bool) == isinstance(expected, bool) and actual == expected


def _evaluate(op: str, actual: Any, value: Any) -> bool:
    if op == "present":
        return actual is not MISSING and actual is not None and actual != ""
    if op == "absent":
        return actual is MISSING or actual is None or actual == ""
    if actual is MISSING:
        return False
    if op == "eq":
        return _same(actual, value)
    if op == "ne":
        return not _same(actual, value)
    if op in ("lt", "le", "gt", "ge"):
        return _compare(op, actual, value)
    if op in ("in", "not_in"):
        if not _is_scalar(actual) or not isinstance(value, (list, tuple)):
            return False
        found = any(_same(actual, v) for v in value)
        return found if op == "in" else not found
    if op in ("len_gt", "len_lt"):
        if not isinstance(actual, (str, list, tuple, Mapping)) or not _is_number(value):
            return False
        return bool(len(actual) > value if op == "len_gt" else len(actual) < value)
    if op == "contains":
        if isinstance(actual, str):
            return isinstance(value, str) and value in actual
        if isinstance(actual, (list, tuple)):
            return any(_same(element, value) for element in actual)
        return False
    if op == "matches":
        if not isinstance(actual, str) or _pattern_errors(value):
            return False
        return _compile(value).search(actual[:MAX_MATCH_TEXT]) is not None
    return False


def rule_fires(rule: FeatureRule, item: ItemInput) -> bool:
    """Whether the rule's condition holds for the item. Invalid rules and type mismatches never fire."""
    if rule.operator not in OPERATORS or path_errors(rule.field):
        return False
    return _evaluate(rule.operator, resolve(item_view(item), rule.field), rule.value)


def fired_rules(rules: Iterable[FeatureRule], item: ItemInput) -> tuple[FeatureRule, ...]:
    """The rules that fire on the item, in the order given."""
    view = item_view(item)
    return tuple(
        rule
        for rule in rules
        if rule.operator in OPERATORS
        and not path_errors(rule.field)
        and _evaluate(rule.operator, resolve(view, rule.field), rule.value)
    )


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    return repr(value)


def describe_rule(rule: FeatureRule, item: ItemInput) -> str:
    """Evidence in words for a fired rule, e.g. "data.text length 812 > 500"."""
    actual = resolve(item_view(item), rule.field)
    op, value = rule.operator, rule.value
    if op in ("present", "absent"):
        return f"{rule.field} is {op}"
    shown = "missing" if actual is MISSING else _show(actual)
    if op in _SYMBOLS:
        return f"{rule.field} {shown} {_SYMBOLS[op]} {_show(value)}"
    if op in ("in", "not_in"):
        return f"{rule.field} {shown} {'in' if op == 'in' else 'not in'} {_show(list(value))}"
    if op in ("len_gt", "len_lt"):
        length = len(actual) if isinstance(actual, (str, list, tuple, Mapping)) else "?"
        return f"{rule.field} length {length} {'>' if op == 'len_gt' else '<'} {value}"
    if op == "contains":
        return f"{rule.field} contains {_show(value)}"
    return f"{rule.field} matches /{value}/"
