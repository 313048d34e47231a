"""The commands of a simulated message's script, as plain immutable values.

A script is the ordered list of what the routing engine and the carrier send
about one message. The driver sends the steps in order; the ground truth
(:mod:`ledger.simulate.truth`) replays them to find the state the ledger must
reach. Times are aware UTC datetimes with microsecond precision, the
precision the ledger stores.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

__all__ = [
    "FINAL_STATUSES",
    "Accept",
    "MessagePlan",
    "RawPayload",
    "Receipt",
    "ReceiptStatus",
    "Replay",
    "Step",
    "Submit",
    "WaitForExpiry",
]

ReceiptStatus = Literal[
    "ENROUTE", "ACCEPTED", "DELIVERED", "FAILED", "EXPIRED", "REJECTED", "UNKNOWN"
]

FINAL_STATUSES: frozenset[str] = frozenset({"DELIVERED", "FAILED", "EXPIRED", "REJECTED"})
"""Statuses that are final whatever the receipt says."""


@dataclass(frozen=True)
class Submit:
    """A submission of attempt ``attempt`` on connection ``carrier``.

    Attributes:
        attempt: 1 for the first submission, n+1 for a retry.
        carrier: Carrier connection of this attempt.
        destination: E.164 destination number (a fictional range).
        segment_count: Number of segments.
        validity_seconds: Validity period given to the carrier.
        submitted_at: When the message was handed to the carrier.
        expires_in_run: ``submitted_at`` plus validity plus the server's expiry
            grace is already past, so the server's sweeper will infer expiry
            of this attempt during the run unless a final receipt came first.
        request_id: Client request id; empty for none.
    """

    attempt: int
    carrier: str
    destination: str
    segment_count: int
    validity_seconds: int
    submitted_at: datetime
    expires_in_run: bool = False
    request_id: str = ""


@dataclass(frozen=True)
class Accept:
    """The carrier's acceptance of an attempt, with its ids.

    Attributes:
        attempt: The attempt accepted.
        segments: (segment, carrier message id as the carrier wrote it) pairs;
            segment 0 means one id for the whole message.
        accepted_at: When the carrier accepted.
        request_id: Client request id; empty for none.
    """

    attempt: int
    segments: tuple[tuple[int, str], ...]
    accepted_at: datetime
    request_id: str = ""


@dataclass(frozen=True)
class RawPayload:
    """A receipt as the carrier sends it, for ``RecordRawReceipt``.

    Attributes:
        content_type: Content type of ``body``; empty for SMPP.
        body: The payload bytes.
        metadata: Transport facts no payload carries, such as ``message_id``
            for a receipt without a carrier id.
        format: Receipt format; empty leaves it to the connection's profile.
    """

    content_type: str
    body: bytes
    metadata: tuple[tuple[str, str], ...] = ()
    format: str = ""


@dataclass(frozen=True)
class Receipt:
    """A normalized receipt, sent by carrier id or by message reference.

    When ``carrier_message_id`` is set the receipt names the carrier's id on
    ``connection``; otherwise it names the message with ``attempt`` (0 for
    the latest) and ``segment`` (0 for every segment).

    Attributes:
        status: Normalized receipt status.
        occurred_at: When the status happened according to the carrier.
        final: Whether the source says no further status follows.
        permanent: For failures, whether a retry would fail again.
        error_code: Carrier error code; empty for none.
        error_table: Table the error code belongs to; empty for none.
        connection: Connection the receipt arrived on (carrier-id receipts).
        carrier_message_id: Carrier id as the receipt writes it; empty when
            the receipt names the message.
        attempt: Attempt named by a message-reference receipt; 0 for the latest.
        segment: Segment named by a message-reference receipt; 0 for all.
        request_id: Client request id; empty for none.
        raw: The payload that carries this receipt in the carrier's own
            format; None sends the normalized fields with ``RecordReceipt``.
        time_stated: The ledger records ``occurred_at`` as the receipt's
            time. False for a raw payload that states no time, which the
            ledger dates by its own clock.
    """

    status: ReceiptStatus
    occurred_at: datetime
    final: bool = False
    permanent: bool | None = None
    error_code: str = ""
    error_table: str = ""
    connection: str = ""
    carrier_message_id: str = ""
    attempt: int = 0
    segment: int = 0
    request_id: str = ""
    raw: RawPayload | None = None
    time_stated: bool = True

    @property
    def by_carrier_id(self) -> bool:
        """True when the receipt names the carrier's id rather than the message."""
        return bool(self.carrier_message_id)

    @property
    def is_final(self) -> bool:
        """Finality after the ledger's rule: some statuses are always final."""
        if self.status in FINAL_STATUSES:
            return True
        return self.final and self.status != "ENROUTE"


@dataclass(frozen=True)
class Replay:
    """A resend of an earlier step of the same script with the same request id.

    Attributes:
        index: Position of the repeated step in the script; that step must
            carry a request id.
    """

    index: int


@dataclass(frozen=True)
class WaitForExpiry:
    """Pause the script until the server's sweeper inferred expiry of the message."""


Step = Submit | Accept | Receipt | Replay | WaitForExpiry


@dataclass(frozen=True)
class MessagePlan:
    """One simulated message: its id, the scenario it follows and its script.

    Attributes:
        message_id: Message id, unique per run.
        scenario: Name of the scenario that generated the script.
        carrier: Connection of the first attempt.
        steps: The script, in sending order.
    """

    message_id: str
    scenario: str
    carrier: str
    steps: tuple[Step, ...]

    @property
    def command_count(self) -> int:
        """Number of RPC commands the script sends (waits excluded)."""
        return sum(1 for step in self.steps if not isinstance(step, WaitForExpiry))
