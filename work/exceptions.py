"""Errors of the assignment services, shared by services, selectors, the API and the pages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class AssignmentError(Exception):
    """Base of the errors below; nothing has been changed when one is raised."""


class AssignmentNotFound(AssignmentError):
    """No such assignment, or it is someone else's: both answer 404, so ids of others' work leak nothing."""


class AssignmentConflict(AssignmentError):
    """The assignment is no longer open to its assignee (expired, completed, declined, cancelled)."""


class AssignmentInvalid(AssignmentError):
    """The submission is not acceptable; `errors` maps a field name to its messages."""

    def __init__(self, errors: Mapping[str, Sequence[str] | str]):
        self.errors: dict[str, list[str]] = {
            field: [messages] if isinstance(messages, str) else list(messages) for field, messages in errors.items()
        }
        super().__init__("; ".join(f"{field}: {' '.join(m)}" for field, m in self.errors.items()))

    def as_list(self) -> list[dict[str, str]]:
        """[{field, message}, ...], the API's error shape."""
        return [{"field": field, "message": m} for field, messages in self.errors.items() for m in messages]
