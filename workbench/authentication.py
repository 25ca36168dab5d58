"""API token authentication in one prepared statement.

DRF's TokenAuthentication compiles an ORM query (token joined with its user) on every request; on the
annotators' work loop that cost as much as the claim itself. This reads the same row by hand-written SQL
(core.bulk.prepared_cursor) and answers exactly as DRF does.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from core.bulk import columns, model_from_row, prepared_cursor


class FastTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, as DRF's TokenAuthentication (same errors, same request.auth)."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Token]:
        User = get_user_model()
        with prepared_cursor() as cursor:
            cursor.execute(
                f"SELECT {columns(Token, 't')}, {columns(User, 'u')} FROM {Token._meta.db_table} t"
                f" JOIN {User._meta.db_table} u ON u.{User._meta.pk.column} = t.user_id WHERE t.key = %s",
                [key],
            )
            row = cursor.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        token = model_from_row(Token, row)
        token.user = model_from_row(User, row[len(Token._meta.concrete_fields) :])
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return token.user, token
