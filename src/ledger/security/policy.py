"""Roles and the policy table: which roles may call each RPC, and where its tenants are.

Least privilege: no role implies another, so a token that both writes and
reads read models lists both roles. Health checking and server reflection
stay open to everyone. An RPC missing from the table is denied to everyone,
and a test compares the table with the service descriptors.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from google.protobuf.descriptor import ServiceDescriptor

from ledger.v1 import ledger_pb2, readmodels_pb2

__all__ = [
    "OPEN_METHOD_PREFIXES",
    "POLICIES",
    "MethodPolicy",
    "Role",
    "Tenancy",
    "protected_services",
]


class Role(enum.StrEnum):
    """What a token may do."""

    WRITER = "writer"
    """Record submissions, acceptances and receipts; read the state of messages."""
    READER = "reader"
    """Read message state, read models and statistics; no raw payloads."""
    AUDITOR = "auditor"
    """Read histories with destinations and raw payloads, and kept receipts."""
    ADMIN = "admin"
    """Erase subjects and reprocess kept receipts."""


class Tenancy(enum.Enum):
    """Where an RPC names tenants, and how a call for a tenant the token may not see ends.

    Every denial looks like the answer for data that does not exist.
    """

    NONE = "none"
    """The RPC touches no tenant's data."""
    MESSAGE = "message"
    """``request.tenant`` names a message's tenant: NOT_FOUND as for an unknown message."""
    CARRIER_ID = "carrier_id"
    """``request.tenant`` with a carrier id: NOT_FOUND as for an unknown carrier id."""
    SUBJECT = "subject"
    """``request.tenant`` with a number: NOT_FOUND as for an unknown subject."""
    BATCH = "batch"
    """Each ``commands[i]`` names its tenant: that entry alone gets NOT_FOUND."""
    LIST = "list"
    """``request.tenant`` selects a list: the list comes back empty."""
    LIST_OR_ALL = "list_or_all"
    """``request.tenant`` may be empty for every tenant: other tenants' items are left out."""
    ACTION = "action"
    """``request.tenant`` selects data to act on: nothing is done, an empty response returns."""


@dataclass(frozen=True)
class MethodPolicy:
    """Who may call one RPC, and how its tenants are checked."""

    roles: frozenset[Role]
    tenancy: Tenancy


def _policy(tenancy: Tenancy, *roles: Role) -> MethodPolicy:
    return MethodPolicy(frozenset(roles), tenancy)


_W, _R, _AU, _AD = Role.WRITER, Role.READER, Role.AUDITOR, Role.ADMIN

POLICIES: dict[str, MethodPolicy] = {
    # Commands.
    "/ledger.v1.LedgerService/SubmitMessage": _policy(Tenancy.MESSAGE, _W),
    "/ledger.v1.LedgerService/RecordAcceptance": _policy(Tenancy.MESSAGE, _W),
    "/ledger.v1.LedgerService/RecordReceipt": _policy(Tenancy.MESSAGE, _W),
    "/ledger.v1.LedgerService/RecordRawReceipt": _policy(Tenancy.MESSAGE, _W),
    "/ledger.v1.LedgerService/ExecuteBatch": _policy(Tenancy.BATCH, _W),
    # State without personal data: writers read their own results.
    "/ledger.v1.LedgerService/GetMessage": _policy(Tenancy.MESSAGE, _W, _R, _AU),
    "/ledger.v1.LedgerService/LookupCarrierMessage": _policy(Tenancy.CARRIER_ID, _W, _R, _AU),
    # Destinations and raw payloads.
    "/ledger.v1.LedgerService/GetHistory": _policy(Tenancy.MESSAGE, _AU),
    # Receipt tools: a dry-run parse holds no stored data.
    "/ledger.v1.ReceiptService/NormalizeReceipt": _policy(Tenancy.NONE, _W, _AU, _AD),
    "/ledger.v1.ReceiptService/ListUnparsedReceipts": _policy(Tenancy.LIST, _AU),
    "/ledger.v1.ReceiptService/ReprocessUnparsedReceipts": _policy(Tenancy.ACTION, _AD),
    "/ledger.v1.ReceiptService/ListOrphanReceipts": _policy(Tenancy.LIST, _R, _AU),
    "/ledger.v1.ReconciliationService/ListStuckMessages": _policy(Tenancy.LIST_OR_ALL, _W, _R),
    # Read models.
    "/ledger.v1.ReadModelService/ListMessages": _policy(Tenancy.LIST, _R),
    "/ledger.v1.ReadModelService/GetCarrierPerformance": _policy(Tenancy.LIST, _R),
    "/ledger.v1.ReadModelService/GetLatency": _policy(Tenancy.LIST, _R),
    # Administration.
    "/ledger.v1.AdminService/EraseSubject": _policy(Tenancy.SUBJECT, _AD),
}
"""Policy of every protected RPC, by full method path."""

OPEN_METHOD_PREFIXES: tuple[str, ...] = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
"""RPCs every caller may use, with or without a token."""


def protected_services() -> list[ServiceDescriptor]:
    """Return the descriptors of every service the policy table must cover."""
    return [
        *ledger_pb2.DESCRIPTOR.services_by_name.values(),
        *readmodels_pb2.DESCRIPTOR.services_by_name.values(),
    ]
