"""API token authentication with the token's lookup as one prepared statement.

DRF's TokenAuthentication reads the token joined with its user through the ORM on every request; the
query is compiled in Python and planned by PostgreSQL each time. On the annotators' work loop (two calls
per label) that cost 0.7 ms a call, as much as the claim itself: `bench/claim.py` times both classes side
by side and the HTTP loop with each (docs/assignments.md, "Token authentication"). This subclass changes
only where the row comes from; DRF still parses the header and gives the same answers and errors.
"""
from __future__ import annotations

import functools
from typing import Any

from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from core.bulk import columns, model_from_row, prepared_cursor


class PreparedTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, answered exactly as DRF's TokenAuthentication answers it."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Token]:
        with prepared_cursor() as cursor:
            cursor.execute(_token_statement(cursor.db.vendor), [key])
            row = cursor.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        token = model_from_row(Token, row)
        token.user = model_from_row(get_user_model(), row[len(Token._meta.concrete_fields) :])
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return token.user, token


@functools.cache
def _token_statement(vendor: str) -> str:
    """The token joined with its user, by key: written once per process and database vendor (columns()
    quotes names as it does), where every API call used to write it again."""
    User = get_user_model()
    return (
        f"SELECT {columns(Token, 't')}, {columns(User, 'u')} FROM {Token._meta.db_table} t"
        f" JOIN {User._meta.db_table} u ON u.{User._meta.pk.column} = t.user_id WHERE t.key = %s"
    )
