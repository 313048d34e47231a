"""Tenant isolation: requests and responses as a tenant-limited token may see them.

A call that names a tenant the token may not see gets the response of a call
for data that does not exist. That is NOT_FOUND with the message the ledger
gives for an unknown message, carrier id or subject, or an empty list.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message as ProtoMessage

from ledger.errors import LedgerError, NotFoundError
from ledger.protocol.states import result_to_proto
from ledger.security.policy import Tenancy
from ledger.security.tokens import Principal

__all__ = [
    "blank_list",
    "denial",
    "denied_batch_entries",
    "drop_hidden_items",
    "masked_batch",
    "replace_denied_results",
]

_PAGE_TOKEN_FIELDS = ("next_page_token",)


def _message_id(request: Any) -> str:
    """Return the message id a request names, or "" when it names none."""
    if hasattr(request, "message_id"):
        return str(request.message_id)
    if hasattr(request, "WhichOneof") and _has_oneof(request, "target"):
        if request.WhichOneof("target") == "message":
            return str(request.message.message_id)
        return ""
    metadata = getattr(request, "metadata", None)
    if metadata is not None and "message_id" in metadata:
        return str(metadata["message_id"])
    return ""


def _has_oneof(request: ProtoMessage, name: str) -> bool:
    return name in request.DESCRIPTOR.oneofs_by_name


def denial(tenancy: Tenancy, request: Any) -> LedgerError:
    """Return the error a call for a hidden tenant ends with, worded as for missing data."""
    tenant = str(request.tenant)
    if tenancy is Tenancy.CARRIER_ID:
        return NotFoundError(
            f"carrier message id {request.carrier_message_id!r} is not known on connection "
            f"{request.connection!r} for tenant {tenant!r}"
        )
    if tenancy is Tenancy.SUBJECT:
        return NotFoundError(f"tenant {tenant!r} has no data subject with that number")
    return NotFoundError(f"tenant {tenant!r} has no message {_message_id(request)!r}")


def denied_batch_entries(request: Any, principal: Principal) -> dict[int, LedgerError]:
    """Return the errors of the batch entries that name tenants ``principal`` may not see."""
    denied: dict[int, LedgerError] = {}
    for index, entry in enumerate(request.commands):
        kind = entry.WhichOneof("command")
        if kind is None:
            continue
        command = getattr(entry, kind)
        if not principal.may_see(command.tenant):
            denied[index] = denial(Tenancy.MESSAGE, command)
    return denied


def masked_batch(request: Any, denied: dict[int, LedgerError]) -> Any:
    """Return a copy of a batch request with the denied entries emptied.

    The entries keep their positions, so that every other result keeps its
    index and field paths; the emptied ones are replaced in the response.
    """
    masked = type(request)()
    masked.CopyFrom(request)
    for index in denied:
        masked.commands[index].Clear()
    return masked


def replace_denied_results(response: Any, denied: dict[int, LedgerError]) -> None:
    """Put the denial of each denied entry in its place in a batch response."""
    for index, error in denied.items():
        response.results[index].CopyFrom(result_to_proto(error, index))


def blank_list(response: ProtoMessage) -> None:
    """Empty a list response as for a tenant without data: no items, no next page."""
    for field in response.DESCRIPTOR.fields:
        if _is_repeated(field) or field.name in _PAGE_TOKEN_FIELDS:
            response.ClearField(field.name)


def drop_hidden_items(response: ProtoMessage, principal: Principal) -> None:
    """Remove the items of other tenants from every repeated field of ``response``."""
    if principal.tenants is None:
        return
    for field in response.DESCRIPTOR.fields:
        if not _is_repeated(field) or field.message_type is None:
            continue
        if "tenant" not in field.message_type.fields_by_name:
            continue
        items = getattr(response, field.name)
        for position in reversed(range(len(items))):
            if not principal.may_see(items[position].tenant):
                del items[position]


def _is_repeated(field: Any) -> bool:
    return bool(field.is_repeated)
