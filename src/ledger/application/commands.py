"""Commands the ledger accepts, independent of the transport that carried them.

Each command validates its own fields (:meth:`violations`) before it reaches a
message, so that an invalid command records nothing and its retry is
processed anew.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

from ledger.domain.audit import canonical_json
from ledger.domain.identity import check_id, check_tenant
from ledger.domain.outcomes import Status
from ledger.errors import FieldViolation

__all__ = [
    "Command",
    "InferExpiry",
    "RawInput",
    "RecordAcceptance",
    "RecordRawReceipt",
    "RecordReceipt",
    "SubmitMessage",
    "command_fingerprint",
]

MAX_SEGMENTS = 255
"""Most segments a concatenated SMS can have (the UDH counter is one octet)."""

MAX_VALIDITY = timedelta(days=30)

MAX_METADATA_ENTRIES = 64
"""Most transport metadata entries one raw receipt may carry."""

_CONNECTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_RECEIPT_STATUSES = frozenset(Status) - {Status.SUBMITTED}


def _check_connection(value: str, field: str) -> FieldViolation | None:
    if not value:
        return FieldViolation(field, "is required")
    if not _CONNECTION.fullmatch(value):
        return FieldViolation(
            field,
            f"{value[:70]!r} is not a connection name: use 1-64 characters of letters, digits, "
            "'.', '_', ':' and '-', starting with a letter or digit",
        )
    return None


EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
"""Earliest time a command may name; older ones are typing or clock errors."""

LATEST_AHEAD = timedelta(days=1)
"""How far past the ledger's clock a command's time may lie (clock skew, zone mistakes)."""


def plausible_time(value: datetime, now: datetime | None = None) -> bool:
    """True when ``value`` lies between 2000 and one day past ``now``."""
    latest = (now or datetime.now(UTC)) + LATEST_AHEAD
    return EARLIEST_TIME <= value <= latest


def _check_time(value: datetime | None, field: str) -> FieldViolation | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return FieldViolation(field, "has no time zone")
    if not plausible_time(value):
        return FieldViolation(
            field,
            f"{value.isoformat()} is implausible: use a time after 2000-01-01 and at most one "
            "day past the ledger's clock",
        )
    return None


@dataclass(frozen=True)
class SubmitMessage:
    """Record that a message was handed to a carrier (attempt 1 or a new attempt)."""

    tenant: str
    message_id: str
    destination: str
    sender: str
    carrier: str
    segment_count: int = 1
    validity: timedelta | None = None
    attempt: int = 1
    request_id: str | None = None
    submitted_at: datetime | None = None
    trace_context: str | None = None

    def violations(self) -> list[FieldViolation]:
        """Return what is invalid about the command's fields (the number is checked apart)."""
        found = [
            check_tenant(self.tenant),
            check_id(self.message_id, "message_id"),
            check_id(self.sender, "sender"),
            _check_connection(self.carrier, "carrier"),
            check_id(self.request_id or "", "request_id", required=False),
            _check_time(self.submitted_at, "submitted_at"),
        ]
        if not 1 <= self.segment_count <= MAX_SEGMENTS:
            found.append(
                FieldViolation("segment_count", f"is {self.segment_count}; use 1 to {MAX_SEGMENTS}")
            )
        if not 1 <= self.attempt <= 1000:
            found.append(FieldViolation("attempt", f"is {self.attempt}; attempts count from 1"))
        if self.validity is not None and not timedelta(0) < self.validity <= MAX_VALIDITY:
            found.append(
                FieldViolation(
                    "validity_period",
                    f"is {self.validity.total_seconds():.0f} s; use more than 0 and at most "
                    f"{MAX_VALIDITY.days} days",
                )
            )
        return [v for v in found if v is not None]


@dataclass(frozen=True)
class RecordAcceptance:
    """Record the carrier's acceptance and its id per segment (0: whole message)."""

    tenant: str
    message_id: str
    segments: tuple[tuple[int, str], ...]
    attempt: int = 0
    accepted_at: datetime | None = None
    request_id: str | None = None
    trace_context: str | None = None

    def violations(self) -> list[FieldViolation]:
        """Return what is invalid about the command's fields."""
        found = [
            check_tenant(self.tenant),
            check_id(self.message_id, "message_id"),
            check_id(self.request_id or "", "request_id", required=False),
            _check_time(self.accepted_at, "accepted_at"),
        ]
        if not self.segments:
            found.append(FieldViolation("segments", "needs at least one carrier message id"))
        seen: set[int] = set()
        seen_ids: dict[str, int] = {}
        for index, (segment, carrier_id) in enumerate(self.segments):
            found.append(check_id(carrier_id, f"segments[{index}].carrier_message_id"))
            # A receipt names one carrier id; two segments sharing it could
            # never be distinguished, so one of them would never get its receipt.
            if carrier_id and carrier_id in seen_ids:
                found.append(
                    FieldViolation(
                        f"segments[{index}].carrier_message_id",
                        f"is also the id of segments[{seen_ids[carrier_id]}]",
                    )
                )
            seen_ids.setdefault(carrier_id, index)
            if not 0 <= segment <= MAX_SEGMENTS:
                found.append(FieldViolation(f"segments[{index}].segment", f"is {segment}"))
            if segment in seen:
                found.append(
                    FieldViolation(f"segments[{index}].segment", f"segment {segment} is repeated")
                )
            seen.add(segment)
        if 0 in seen and len(self.segments) > 1:
            found.append(
                FieldViolation(
                    "segments", "segment 0 (the whole message) cannot be combined with others"
                )
            )
        return [v for v in found if v is not None]


@dataclass(frozen=True)
class RawInput:
    """A raw receipt payload as received, with what was redacted from it."""

    body: bytes
    content_type: str
    format: str
    source: str = ""
    redactions: tuple[str, ...] = ()


@dataclass(frozen=True)
class RecordReceipt:
    """Record a normalized receipt, named by message id or by carrier id.

    Exactly one of ``message_id`` and ``carrier_message_id`` names the target;
    a receipt by carrier id also names its ``connection``.
    """

    tenant: str
    status: Status
    message_id: str | None = None
    attempt: int = 0
    segment: int = 0
    connection: str | None = None
    carrier_message_id: str | None = None
    final: bool = False
    permanent: bool | None = None
    error_code: str | None = None
    error_table: str | None = None
    occurred_at: datetime | None = None
    source_time: str | None = None
    raw: RawInput | None = None
    request_id: str | None = None
    trace_context: str | None = None

    def violations(self) -> list[FieldViolation]:
        """Return what is invalid about the command's fields."""
        found = [
            check_tenant(self.tenant),
            check_id(self.request_id or "", "request_id", required=False),
            check_id(self.error_code or "", "error_code", required=False),
            _check_time(self.occurred_at, "occurred_at"),
        ]
        if self.status not in _RECEIPT_STATUSES:
            found.append(
                FieldViolation(
                    "status",
                    "is not a receipt status: use ENROUTE, ACCEPTED, DELIVERED, FAILED, "
                    "EXPIRED, REJECTED or UNKNOWN",
                )
            )
        if self.status is Status.ENROUTE and self.final:
            found.append(FieldViolation("final", "an ENROUTE receipt cannot be final"))
        if self.message_id is not None:
            found.append(check_id(self.message_id, "target.message.message_id"))
            if not 0 <= self.segment <= MAX_SEGMENTS:
                found.append(FieldViolation("target.message.segment", f"is {self.segment}"))
        elif self.carrier_message_id is not None:
            found.append(_check_connection(self.connection or "", "target.carrier.connection"))
            found.append(check_id(self.carrier_message_id, "target.carrier.carrier_message_id"))
        else:
            found.append(FieldViolation("target", "name the message or the carrier's id for it"))
        return [v for v in found if v is not None]


@dataclass(frozen=True)
class RecordRawReceipt:
    """Record a receipt exactly as the carrier sent it; the ledger parses it.

    Attributes:
        tenant: Tenant the receipt is for.
        connection: Carrier connection it arrived on.
        body: The payload as received.
        content_type: Its content type.
        format: Receipt format; empty means the connection's configured format.
        metadata: Transport facts as ``(key, value)`` pairs, such as the
            caller's ``message_id`` for receipts that carry no carrier id.
        source: Where the payload came from.
        request_id: The caller's request id.
        replaces_unparsed: Id of a kept unparsed receipt this reprocesses.
    """

    tenant: str
    connection: str
    body: bytes
    content_type: str = ""
    format: str = ""
    metadata: tuple[tuple[str, str], ...] = ()
    source: str = ""
    request_id: str | None = None
    replaces_unparsed: uuid.UUID | None = None
    trace_context: str | None = None

    def violations(self) -> list[FieldViolation]:
        """Return what is invalid about the command's fields."""
        found = [
            check_tenant(self.tenant),
            _check_connection(self.connection, "connection"),
            check_id(self.request_id or "", "request_id", required=False),
        ]
        if not self.body:
            found.append(FieldViolation("body", "is empty"))
        if len(self.metadata) > MAX_METADATA_ENTRIES:
            found.append(
                FieldViolation(
                    "metadata",
                    f"has {len(self.metadata)} entries; at most {MAX_METADATA_ENTRIES} are kept",
                )
            )
        for key, value in self.metadata:
            if len(key) > 64 or len(value) > 256:
                found.append(
                    FieldViolation(
                        f"metadata[{key[:64]!r}]", "keys are at most 64 and values 256 characters"
                    )
                )
        return [v for v in found if v is not None]


@dataclass(frozen=True)
class InferExpiry:
    """Record an expiry the ledger inferred (issued by the expiry sweeper)."""

    aggregate_id: uuid.UUID
    attempt: int
    deadline: datetime
    reason: str = "no final receipt within the validity period plus grace"
    tenant: str = ""
    request_id: str | None = None
    trace_context: str | None = None

    def violations(self) -> list[FieldViolation]:
        """Return nothing: the sweeper builds these from stored rows."""
        return []


Command = SubmitMessage | RecordAcceptance | RecordReceipt | RecordRawReceipt | InferExpiry


def command_fingerprint(command: Command) -> str:
    """Return a SHA-256 hex digest of a command's content, request id excluded.

    A request id repeated with the same fingerprint is a replay; with another
    fingerprint it is a reused id.
    """
    content = {
        f.name: getattr(command, f.name)
        for f in fields(command)
        if f.name not in ("request_id", "replaces_unparsed", "trace_context")
    }
    content["kind"] = type(command).__name__
    plain = _plain(content)
    assert isinstance(plain, dict)
    return hashlib.sha256(canonical_json(plain)).hexdigest()


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, RawInput):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    return value
