"""Identifiers of tenants and messages.

A message is named by the caller as (tenant, message id). Its aggregate id is
derived from that pair deterministically, so a repeated submission finds the
message it repeats on any ledger node.
"""

from __future__ import annotations

import functools
import re
import uuid

from ledger.errors import FieldViolation

__all__ = [
    "MAX_ID_LENGTH",
    "MESSAGE_NAMESPACE",
    "check_id",
    "check_tenant",
    "message_aggregate_id",
]

MESSAGE_NAMESPACE = uuid.UUID("5d0f3a4e-7c1b-5b2a-9e8d-2f6c1a0b9d37")
"""UUIDv5 namespace of message aggregate ids."""

MAX_ID_LENGTH = 128
"""Longest accepted message id, request id or carrier message id, in characters."""

_TENANT = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


@functools.lru_cache(maxsize=65_536)
def message_aggregate_id(tenant: str, message_id: str) -> uuid.UUID:
    """Return the aggregate id of a message: UUIDv5 of ``tenant/message_id``."""
    return uuid.uuid5(MESSAGE_NAMESPACE, f"{tenant}/{message_id}")


def check_tenant(tenant: str, field: str = "tenant") -> FieldViolation | None:
    """Return a violation when ``tenant`` is not a valid tenant id.

    Tenant ids are 1-63 characters of ``a-z``, ``0-9`` and ``-``, starting with
    a letter or digit, so they are safe as NATS subject tokens.
    """
    if _TENANT.fullmatch(tenant):
        return None
    if not tenant:
        return FieldViolation(field, "is required")
    return FieldViolation(
        field,
        f"{tenant[:70]!r} is not a tenant id: use 1-63 characters of a-z, 0-9 and '-', "
        "starting with a letter or digit",
    )


def check_id(value: str, field: str, *, required: bool = True) -> FieldViolation | None:
    """Return a violation when an id is empty (if required), too long or unprintable."""
    if not value:
        return FieldViolation(field, "is required") if required else None
    if len(value) > MAX_ID_LENGTH:
        return FieldViolation(
            field, f"is {len(value)} characters long; the maximum is {MAX_ID_LENGTH}"
        )
    if not value.isprintable():
        return FieldViolation(field, "contains control characters")
    return None
