"""Plivo message status callbacks (form POST).

Final callbacks carry ``DeliveryReportTime`` (``YYYY-mm-dd HH:MM:SS.ffffff``,
no zone). Queued and sent callbacks carry none; their ``Sequence`` number is
what tells one callback from another. Plivo has no status for an expiry or
an unknown outcome.
"""

from __future__ import annotations

import random
from datetime import timedelta

from ledger.receipts.dates import resolve_zone
from ledger.simulate.formats.base import (
    CONTENT_FORM,
    Encoded,
    FormatConnection,
    ReceiptFacts,
    derived_uuid,
    floor_time,
    form_body,
)
from ledger.simulate.steps import RawPayload

__all__ = ["PlivoEncoder"]

_WORDS = {
    "ENROUTE": "queued",
    "ACCEPTED": "sent",
    "DELIVERED": "delivered",
    "REJECTED": "rejected",
}


class PlivoEncoder:
    """Plivo status callback forms; report times to the microsecond."""

    def supports(self, facts: ReceiptFacts) -> bool:
        """Tell whether a Plivo callback can state ``facts``."""
        if facts.status == "ACCEPTED":
            return not facts.final
        return facts.status in ("ENROUTE", "DELIVERED", "FAILED", "REJECTED")

    def acceptance_id(self, written: str) -> str:
        """Return Plivo's message UUID."""
        return derived_uuid(written)

    def encode(
        self, facts: ReceiptFacts, connection: FormatConnection, rng: random.Random
    ) -> Encoded:
        """Write ``facts`` as a status callback form."""
        zone = resolve_zone(str(connection.profile.get("timezone", "UTC")))
        metadata: tuple[tuple[str, str], ...] = ()
        if facts.carrier_id is None:
            uuid_text = derived_uuid(f"{facts.message_id}:{facts.attempt}")
            metadata = (("message_id", facts.message_id),)
        else:
            uuid_text = self.acceptance_id(facts.carrier_id)
        word = _WORDS.get(facts.status) or ("undelivered" if rng.random() < 0.7 else "failed")
        # Sequence numbers grow with time; counted in milliseconds from a day
        # before the submission, they stay positive for every receipt.
        reported = floor_time(facts.occurred_at, "millisecond")
        origin = facts.submitted_at - timedelta(days=1)
        sequence = (reported - origin) // timedelta(milliseconds=1)
        pairs = [
            ("MessageUUID", uuid_text),
            ("To", facts.destination.lstrip("+")),
            ("From", "12025550100"),
            ("Type", "sms"),
            ("Status", word),
            ("Units", "1"),
            ("TotalRate", "0.0050"),
            ("TotalAmount", "0.0050"),
            ("MCC", "234"),
            ("MNC", "10"),
            ("Sequence", str(sequence)),
            ("MessageTime", facts.submitted_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")),
        ]
        if facts.error_code:
            pairs.append(("ErrorCode", facts.error_code))
        stated = None
        if facts.final:
            stated = facts.occurred_at
            report_text = stated.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S.%f")
            pairs.append(("DeliveryReportTime", report_text))
        body = form_body(pairs, rng, shuffle=0.2)
        return Encoded(
            payload=RawPayload(CONTENT_FORM, body, metadata),
            stated_time=stated,
            report_time=stated if stated is not None else reported,
            error_code=facts.error_code,
            permanent=connection.permanence(facts.status, facts.error_code),
            carrier_id=None if facts.carrier_id is None else uuid_text,
        )
