"""MessageBird status reports (legacy GET query) and Bird message statuses (JSON).

Both state ``statusDatetime`` in RFC 3339 with an offset. A Bird failure
carries its extended error code in ``failure.source.code``. Neither has a
status for a rejection or an unknown outcome.
"""

from __future__ import annotations

import json
import random

from ledger.simulate.formats.base import (
    CONTENT_JSON,
    Encoded,
    FormatConnection,
    ReceiptFacts,
    derived_hex,
    floor_time,
    form_body,
)
from ledger.simulate.steps import RawPayload

__all__ = ["MessageBirdEncoder"]

_WORDS = {
    "ACCEPTED": "sent",
    "DELIVERED": "delivered",
    "FAILED": "delivery_failed",
    "EXPIRED": "expired",
}
_REASONS = {
    "ENROUTE": "pending delivery",
    "ACCEPTED": "successfully delivered to the carrier",
    "DELIVERED": "successfully delivered",
    "FAILED": "unknown subscriber",
    "EXPIRED": "expired",
}


class MessageBirdEncoder:
    """MessageBird and Bird status reports; times to the second."""

    def supports(self, facts: ReceiptFacts) -> bool:
        """Tell whether a MessageBird report can state ``facts``."""
        if facts.status == "ACCEPTED":
            return not facts.final
        return facts.status in ("ENROUTE", "DELIVERED", "FAILED", "EXPIRED")

    def acceptance_id(self, written: str) -> str:
        """Return MessageBird's message id: 32 lower-case hex digits."""
        return derived_hex(written, 32)

    def encode(
        self, facts: ReceiptFacts, connection: FormatConnection, rng: random.Random
    ) -> Encoded:
        """Write ``facts`` as a legacy query string or as Bird JSON."""
        stated = floor_time(facts.occurred_at, "second")
        metadata: tuple[tuple[str, str], ...] = ()
        if facts.carrier_id is None:
            message_id = derived_hex(f"{facts.message_id}:{facts.attempt}", 32)
            metadata = (("message_id", facts.message_id),)
        else:
            message_id = self.acceptance_id(facts.carrier_id)
        word = _WORDS.get(facts.status) or rng.choice(("buffered", "scheduled"))
        when = stated.isoformat()
        recipient = facts.destination.lstrip("+")
        if rng.random() < 0.2:
            document: dict[str, object] = {
                "id": message_id,
                "recipient": recipient,
                "status": word,
                "reason": _REASONS[facts.status],
                "statusDatetime": when,
            }
            if facts.error_code:
                document["reason"] = f"{_REASONS[facts.status]}; code: {facts.error_code}"
                document["failure"] = {
                    "code": 15001,
                    "source": {"name": "sms-messagebird", "code": facts.error_code},
                }
            content_type, body = CONTENT_JSON, json.dumps(document).encode()
        else:
            pairs = [
                ("id", message_id),
                ("reference", facts.message_id),
                ("recipient", recipient),
                ("status", word),
                ("statusReason", _REASONS[facts.status]),
                ("statusDatetime", when),
                ("mccmnc", "23410"),
                ("ported", "0"),
                ("price[amount]", "0.062"),
                ("price[currency]", "EUR"),
            ]
            if facts.error_code:
                pairs.insert(5, ("statusErrorCode", facts.error_code))
            content_type, body = "", form_body(pairs, rng, shuffle=0.2)
        return Encoded(
            payload=RawPayload(content_type, body, metadata),
            stated_time=stated,
            report_time=stated,
            error_code=facts.error_code,
            permanent=connection.permanence(facts.status, facts.error_code),
            carrier_id=None if facts.carrier_id is None else message_id,
        )
