"""Rows the ledger keeps beside the event log, written in the same transaction
as the events they belong to.

Times are integer microseconds since the Unix epoch (UTC) in every table, so
SQLite and PostgreSQL store and compare them the same way.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

__all__ = [
    "CarrierIdRow",
    "ExpiryRow",
    "KeptReceipt",
    "ParkedReceipt",
    "RequestRecord",
    "SideWrites",
    "SubjectKeyRow",
    "UnparsedReceipt",
    "from_micros",
    "to_micros",
]


def to_micros(value: datetime) -> int:
    """Return an aware datetime as integer microseconds since the epoch."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    """Return microseconds since the epoch as an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=value)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class RequestRecord:
    """A served request id: the command's fingerprint and its first result.

    Attributes:
        tenant: Tenant the request id is scoped to.
        request_id: The caller's request id.
        fingerprint: SHA-256 hex of the command's canonical content.
        result: The first result, as JSON text.
        created_at: When it was first served (epoch microseconds).
    """

    tenant: str
    request_id: str
    fingerprint: str
    result: str
    created_at: int


@dataclass(frozen=True)
class CarrierIdRow:
    """One carrier message id mapped to the message segment it names.

    Attributes:
        tenant: Tenant of the message.
        connection: Carrier connection the id was issued on.
        canonical_id: The id in canonical matching form.
        aggregate_id: The message.
        message_id: The caller's id of the message.
        attempt: Attempt the id belongs to.
        segment: 1-based segment, 0 for an id that covers the whole message.
        accepted_at: When the carrier issued it (epoch microseconds).
        valid_until: End of the window in which receipts may name it.
    """

    tenant: str
    connection: str
    canonical_id: str
    aggregate_id: uuid.UUID
    message_id: str
    attempt: int
    segment: int
    accepted_at: int
    valid_until: int


@dataclass(frozen=True)
class ParkedReceipt:
    """A receipt waiting for the acceptance that names its carrier id.

    Attributes:
        receipt_id: Id of this parked receipt.
        tenant: Tenant it arrived for.
        connection: Carrier connection it arrived on.
        canonical_id: Its carrier id in canonical form.
        fingerprint: Identity for duplicate detection.
        received_at: First arrival (epoch microseconds).
        report: The normalized receipt as JSON text.
        raw_ciphertext: The raw payload, encrypted under the tenant's
            unattributed-data key, or None.
        raw_key_id: Id of that key.
        duplicates: Repeats of it received while it waited; they count for
            the message once it is applied.
    """

    receipt_id: uuid.UUID
    tenant: str
    connection: str
    canonical_id: str
    fingerprint: str
    received_at: int
    report: str
    raw_ciphertext: bytes | None
    raw_key_id: str | None
    duplicates: int = 0


@dataclass(frozen=True)
class UnparsedReceipt:
    """A raw receipt that could not be parsed, kept for a reprocess after a fix.

    Attributes:
        receipt_id: Id of this kept receipt.
        tenant: Tenant it arrived for.
        connection: Carrier connection it arrived on.
        format: The format it was parsed as.
        content_type: Its content type.
        received_at: Arrival (epoch microseconds).
        error: Why parsing failed.
        body_sha256: Hex digest of the body, so repeats are kept once.
        raw_ciphertext: The body, with message text redacted, encrypted under
            the tenant's unattributed-data key.
        raw_key_id: Id of that key.
        metadata: Transport metadata as JSON text.
        source: Where the payload came from.
        redactions: Names of the parts removed from the body before storage.
    """

    receipt_id: uuid.UUID
    tenant: str
    connection: str
    format: str
    content_type: str
    received_at: int
    error: str
    body_sha256: str
    raw_ciphertext: bytes
    raw_key_id: str
    metadata: str
    source: str
    redactions: tuple[str, ...] = ()


@dataclass(frozen=True)
class KeptReceipt:
    """A parked or unparsed receipt as an erasure scans it.

    Attributes:
        kind: ``"parked"`` or ``"unparsed"``.
        receipt_id: Id of the row.
        raw_ciphertext: The raw payload under the tenant's unattributed-data key.
        raw_key_id: Id of that key.
        texts: The row's columns stored in clear that may quote the payload
            (the normalized report, a parse error, transport metadata).
    """

    kind: str
    receipt_id: uuid.UUID
    raw_ciphertext: bytes | None
    raw_key_id: str | None
    texts: tuple[str, ...]


@dataclass(frozen=True)
class SubjectKeyRow:
    """A new subject key, written in the transaction of the first event using it."""

    key_id: str
    tenant: str
    subject_index: str
    wrapped_key: bytes
    created_at: int


@dataclass(frozen=True)
class ExpiryRow:
    """When the ledger gives up waiting for a final receipt of an attempt."""

    aggregate_id: uuid.UUID
    attempt: int
    due_at: int


@dataclass
class SideWrites:
    """Everything a batch writes beside its events, in the same transaction."""

    subject_keys: list[SubjectKeyRow] = field(default_factory=list)
    requests: list[RequestRecord] = field(default_factory=list)
    carrier_ids: list[CarrierIdRow] = field(default_factory=list)
    parked: list[ParkedReceipt] = field(default_factory=list)
    unparked: list[uuid.UUID] = field(default_factory=list)
    parked_duplicates: dict[uuid.UUID, int] = field(default_factory=dict)
    duplicates: dict[uuid.UUID, int] = field(default_factory=dict)
    expiry_set: list[ExpiryRow] = field(default_factory=list)
    expiry_cleared: list[uuid.UUID] = field(default_factory=list)
    unparsed: list[UnparsedReceipt] = field(default_factory=list)
    unparsed_cleared: list[uuid.UUID] = field(default_factory=list)
    subject_messages: list[tuple[str, uuid.UUID]] = field(default_factory=list)
    """``(subject key id, aggregate id)`` of each new message, for erasure."""
    erased_keys: list[tuple[str, int]] = field(default_factory=list)
    """``(subject key id, erased at)`` of keys to destroy."""

    def __bool__(self) -> bool:
        return bool(
            self.subject_keys
            or self.requests
            or self.carrier_ids
            or self.parked
            or self.unparked
            or self.parked_duplicates
            or self.duplicates
            or self.expiry_set
            or self.expiry_cleared
            or self.unparsed
            or self.unparsed_cleared
            or self.subject_messages
            or self.erased_keys
        )
