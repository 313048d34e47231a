"""Vonage SMS API delivery receipts, as a GET query, a POST form or POST JSON.

``scts`` is the carrier's done time as YYMMDDhhmm without a zone, and
``msisdn`` is the recipient. Vonage's ``unknown`` is not final, so it cannot
end a message.
"""

from __future__ import annotations

import json
import random
from datetime import timedelta

from ledger.receipts.dates import resolve_zone
from ledger.simulate.formats.base import (
    CONTENT_FORM,
    CONTENT_JSON,
    Encoded,
    FormatConnection,
    ReceiptFacts,
    derived_hex,
    floor_time,
    form_body,
)
from ledger.simulate.steps import RawPayload

__all__ = ["VonageEncoder"]

_WORDS = {
    "ENROUTE": "buffered",
    "ACCEPTED": "accepted",
    "DELIVERED": "delivered",
    "FAILED": "failed",
    "EXPIRED": "expired",
    "REJECTED": "rejected",
}


class VonageEncoder:
    """Vonage delivery receipts in all three transports; done times to the minute."""

    def supports(self, facts: ReceiptFacts) -> bool:
        """Tell whether a Vonage receipt can state ``facts``."""
        if facts.status == "ACCEPTED":
            return not facts.final
        return facts.status in _WORDS

    def acceptance_id(self, written: str) -> str:
        """Return Vonage's message id: 16 upper-case hex digits."""
        return "0C" + derived_hex(written, 14).upper()

    def encode(
        self, facts: ReceiptFacts, connection: FormatConnection, rng: random.Random
    ) -> Encoded:
        """Write ``facts`` as a delivery receipt."""
        zone = resolve_zone(str(connection.profile.get("timezone", "UTC")))
        stated = floor_time(facts.occurred_at, "minute")
        metadata: tuple[tuple[str, str], ...] = ()
        if facts.carrier_id is None:
            message_id = "0C" + derived_hex(f"{facts.message_id}:{facts.attempt}", 14).upper()
            metadata = (("message_id", facts.message_id),)
        else:
            message_id = self.acceptance_id(facts.carrier_id)
        sent_at = stated + timedelta(seconds=rng.randint(1, 20))
        pairs = [
            ("msisdn", facts.destination.lstrip("+")),
            ("to", "SIMLEDGER"),
            ("network-code", "23410"),
            ("messageId", message_id),
            ("price", "0.03330000"),
            ("status", _WORDS[facts.status]),
            ("scts", stated.astimezone(zone).strftime("%y%m%d%H%M")),
            ("err-code", facts.error_code or "0"),
            ("api-key", "a1b2c3d4"),
            ("message-timestamp", sent_at.strftime("%Y-%m-%d %H:%M:%S")),
        ]
        if rng.random() < 0.5:
            pairs.append(("client-ref", facts.message_id))
        transport = rng.random()
        if transport < 0.4:
            content_type, body = CONTENT_JSON, json.dumps(dict(pairs)).encode()
        elif transport < 0.7:
            content_type, body = CONTENT_FORM, form_body(pairs, rng, shuffle=0.2)
        else:
            # A GET callback: the query string, with the path it was sent to.
            content_type, body = "", b"/receipts/vonage?" + form_body(pairs, rng, shuffle=0.2)
        return Encoded(
            payload=RawPayload(content_type, body, metadata),
            stated_time=stated,
            report_time=stated,
            error_code=facts.error_code,
            permanent=connection.permanence(facts.status, facts.error_code),
            carrier_id=None if facts.carrier_id is None else message_id,
        )
