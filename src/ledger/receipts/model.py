"""Types shared by the receipt parsers and the ledger.

They are normalized receipts and carrier connection profiles. A parser turns
the bytes a carrier or aggregator sent into one or more
:class:`NormalizedReceipt` values (batched webhooks carry many). It never
raises anything but :class:`ledger.errors.ReceiptParseError`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

__all__ = [
    "CarrierProfile",
    "IdBase",
    "NormalizedReceipt",
    "ParsedReceipts",
    "ReceiptStatus",
    "WebhookProfile",
]


class ReceiptStatus(enum.Enum):
    """Normalized outcome reported by one receipt."""

    ENROUTE = "enroute"
    ACCEPTED = "accepted"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


class IdBase(enum.Enum):
    """How a connection writes carrier message ids, for matching across forms.

    ``TEXT`` ids are compared case-insensitively with leading zeros removed;
    ``DECIMAL`` and ``HEX`` ids are compared by their integer value, so
    ``0000436949`` (decimal) and ``6aad5`` (hex) match.
    """

    TEXT = "text"
    DECIMAL = "decimal"
    HEX = "hex"


@dataclass(frozen=True)
class NormalizedReceipt:
    """One receipt in the ledger's normalized vocabulary.

    Attributes:
        status: Normalized status.
        final: True when the source says no further status follows.
        permanent: For failures, whether a retry of the same message would fail
            again; None when not a failure or when the cause is unknown.
        carrier_message_id: The carrier's id exactly as reported, trimmed of
            whitespace and NUL; None where the source has none.
        error_code: The source's error code verbatim, None for no error.
        error_table: Name of the error table that classified ``error_code``.
        done_at: Completion time in UTC, only for final statuses.
        source_time: The source's own timestamp text (done date, event time),
            used to tell repeated deliveries of one report from new reports.
        recipient: The destination number as the receipt writes it, when present.
        segment: 1-based part number when the receipt names one.
        warnings: Notes for operators, such as an unrecognized status word.
    """

    status: ReceiptStatus
    final: bool
    permanent: bool | None
    carrier_message_id: str | None
    error_code: str | None = None
    error_table: str | None = None
    done_at: datetime | None = None
    source_time: str | None = None
    recipient: str | None = None
    segment: int | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParsedReceipts:
    """What one raw payload yields.

    Attributes:
        receipts: One entry per report in the payload (batched webhooks carry
            several).
        redacted_body: The payload with message text removed, as it is stored.
        redactions: Names of the fields that were redacted.
        parts: For a payload of several reports, the redacted bytes of each
            report on its own, in ``receipts`` order, so that each event stores
            only its own report; empty when the payload is one report.
    """

    receipts: tuple[NormalizedReceipt, ...]
    redacted_body: bytes
    redactions: tuple[str, ...] = ()
    parts: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class WebhookProfile:
    """How a connection's aggregator delivers receipts over HTTP, and how to check them.

    Attributes:
        provider: Signature scheme and response style: ``twilio``,
            ``vonage-sms``, ``vonage-messages``, ``plivo``, ``sinch``, ``sns``,
            ``messagebird``, ``bird``, ``kannel``, ``jasmin`` or ``infobip``.
        tenant: Tenant that receipts arriving on this route belong to.
        format: Receipt format the bodies are parsed with.
        secrets: Signing secrets (or URL tokens for ``kannel``, ``jasmin`` and
            ``infobip``); any of them is accepted, so a new secret can be added
            before the old one is removed.
        public_base_url: Scheme, host, port and path prefix under which the
            aggregator calls this service; signatures cover that URL, never the
            Host header. None uses the server-wide setting.
        signature_method: For ``vonage-sms``: ``md5hash``, ``md5``, ``sha1``,
            ``sha256`` or ``sha512``.
        topic_arns: For ``sns``: the topics whose messages are accepted.
        max_age_seconds: Oldest signed timestamp accepted; None uses the
            provider's default.
        message_id_param: Query parameter of the callback URL that carries the
            sender's own message id, for receipts without a carrier id (Kannel,
            Jasmin level 1).
        metadata: Extra parser metadata, such as ``kannel.type_param``.
    """

    provider: str
    tenant: str
    format: str
    secrets: tuple[str, ...] = field(default=(), repr=False)
    public_base_url: str | None = None
    signature_method: str | None = None
    topic_arns: tuple[str, ...] = ()
    max_age_seconds: int | None = None
    message_id_param: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CarrierProfile:
    """Per-connection settings that decide how receipts are read and matched.

    Attributes:
        name: Carrier connection name, as Submit commands and receipts use it.
        format: Default receipt format on this connection, such as ``smpp-text``.
        timezone: Zone of dates that carry none: ``UTC``, a fixed offset such as
            ``+03:00``, or an IANA name.
        error_table: Table that classifies bare SMPP ``err`` values:
            ``gsm-map``, ``twilio-smpp`` or ``unknown``.
        submit_id_base: How the carrier writes ids in its submit responses.
        receipt_id_base: How the carrier writes ids in its receipts.
        status_synonyms: Extra status words mapped to normalized statuses,
            such as ``{"ACKED": "accepted"}``.
        confirms_delivery: False for routes that never confirm handset delivery:
            their acceptance is final.
        permanent_codes: Error codes this connection treats as permanent,
            overriding the error table.
        transient_codes: Error codes this connection treats as transient,
            overriding the error table.
        stuck_after_seconds: How long an accepted message may stay without a
            final outcome before it is listed as stuck; None uses the
            server-wide setting.
        retry_max_attempts: Attempts a message sent on this connection may
            have before the ledger stops advising a retry; None uses the
            server-wide setting.
        webhook: How receipts arrive over HTTP; None when they do not.
    """

    name: str
    format: str = "smpp-text"
    timezone: str = "UTC"
    error_table: str = "unknown"
    submit_id_base: IdBase = IdBase.TEXT
    receipt_id_base: IdBase = IdBase.TEXT
    status_synonyms: dict[str, str] = field(default_factory=dict)
    confirms_delivery: bool = True
    permanent_codes: frozenset[str] = frozenset()
    transient_codes: frozenset[str] = frozenset()
    stuck_after_seconds: int | None = None
    retry_max_attempts: int | None = None
    webhook: WebhookProfile | None = None
