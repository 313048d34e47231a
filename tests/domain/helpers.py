"""Builders of messages for domain tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ledger.domain.message import Acceptance, Message, ProtectedNumber, ReceiptReport
from ledger.domain.outcomes import Outcome, Status

T0 = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
NUMBER = ProtectedNumber(b"ciphertext", "key-1", "digest-1", "+44 7700 9xxx23", "GB", 44, True)


def new_message(segments: int = 1, message_id: str = "m1") -> Message:
    message = Message.submit(
        tenant="acme",
        message_id=message_id,
        destination=NUMBER,
        sender="ACME",
        carrier="carrier-a",
        segment_count=segments,
        validity=timedelta(hours=1),
        request_id=None,
        occurred_at=T0,
        recorded_at=T0,
    )
    message.accept(
        attempt=0,
        acceptances=[Acceptance(n, f"id{n}", f"ID{n}") for n in range(1, segments + 1)],
        request_id=None,
        occurred_at=T0,
        recorded_at=T0,
    )
    return message


def report(
    status: Status,
    *,
    final: bool = False,
    permanent: bool | None = None,
    code: str | None = None,
    segment: int = 1,
    attempt: int = 0,
    fingerprint: str = "",
    minute: int = 1,
) -> ReceiptReport:
    final = final or status in (Status.DELIVERED, Status.FAILED, Status.REJECTED, Status.EXPIRED)
    at = T0 + timedelta(minutes=minute)
    return ReceiptReport(
        outcome=Outcome(status, final=final, permanent=permanent, error_code=code, at=at),
        attempt=attempt,
        segment=segment,
        connection="carrier-a",
        carrier_message_id=f"id{segment}",
        received_at=at,
        parked=False,
        fingerprint=fingerprint,
    )
