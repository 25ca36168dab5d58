"""Label Studio's export shapes, read for import: the class chosen in a `result` array, its free-text
answer, and who `completed_by` names. Pure; the row validator (labeling.validation) reports the errors."""

from __future__ import annotations

from typing import Any


def chosen_class(result: list[Any]) -> str | None:
    """The single class chosen in a `result` list (its `choices` region); None unless there is exactly one
    choices region with exactly one chosen class."""
    choices = [
        r["value"]["choices"]
        for r in result
        if isinstance(r, dict) and isinstance(r.get("value"), dict) and "choices" in r["value"]
    ]
    if len(choices) != 1 or not isinstance(choices[0], list) or len(choices[0]) != 1:
        return None
    return choices[0][0]


def text_answer(result: Any) -> str | None:
    """The text of the first `textarea` region (lines joined), if any."""
    if not isinstance(result, list):
        return None
    for r in result:
        if isinstance(r, dict) and r.get("type") == "textarea" and isinstance(r.get("value"), dict):
            text = r["value"].get("text")
            if isinstance(text, list) and all(isinstance(t, str) for t in text):
                return "\n".join(text)
            if isinstance(text, str):
                return text
    return None


def annotator_name(completed_by: Any) -> str | None:
    """`completed_by` as a user id or an object; ids become `label-studio-<id>`."""
    if isinstance(completed_by, dict):
        return completed_by.get("username") or completed_by.get("email") or (
            f"label-studio-{completed_by['id']}" if "id" in completed_by else None
        )
    if isinstance(completed_by, str):
        return completed_by
    if isinstance(completed_by, (int, float)) and not isinstance(completed_by, bool):
        return f"label-studio-{int(completed_by)}"
    return None
