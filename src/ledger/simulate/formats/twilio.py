"""Twilio Programmable Messaging status callbacks (form POST).

Twilio sends ``RawDlrDoneDate`` (YYMMDDhhmm, no zone) only with delivered
and undelivered, so other callbacks state no time at all. Twilio has no
status for an expiry, a rejection or an unknown outcome.
"""

from __future__ import annotations

import random

from ledger.receipts.dates import resolve_zone
from ledger.simulate.formats.base import (
    CONTENT_FORM,
    Encoded,
    FormatConnection,
    ReceiptFacts,
    derived_hex,
    floor_time,
    form_body,
    stand_in_time,
)
from ledger.simulate.steps import RawPayload

__all__ = ["TwilioEncoder"]

_ACCOUNT_SID = "AC" + "5e11" * 8
_SERVICE_SID = "MG" + "0a1b" * 8
_FROM = "+12025550100"


class TwilioEncoder:
    """Twilio status callback forms; done dates to the minute."""

    def supports(self, facts: ReceiptFacts) -> bool:
        """Tell whether a Twilio callback can state ``facts``."""
        if facts.status == "ACCEPTED":
            return not facts.final
        return facts.status in ("ENROUTE", "DELIVERED", "FAILED")

    def acceptance_id(self, written: str) -> str:
        """Return the message SID Twilio assigns: ``SM`` and 32 hex digits."""
        return "SM" + derived_hex(written, 32)

    def encode(
        self, facts: ReceiptFacts, connection: FormatConnection, rng: random.Random
    ) -> Encoded:
        """Write ``facts`` as a status callback form."""
        zone = resolve_zone(str(connection.profile.get("timezone", "UTC")))
        metadata: tuple[tuple[str, str], ...] = ()
        if facts.carrier_id is None:
            # Twilio's SID is not known to the ledger yet, so the message is named.
            sid = "SM" + derived_hex(f"{facts.message_id}:{facts.attempt}", 32)
            metadata = (("message_id", facts.message_id),)
        else:
            sid = self.acceptance_id(facts.carrier_id)

        dated = False
        if facts.status == "ENROUTE":
            word = rng.choice(("queued", "sending"))
        elif facts.status == "ACCEPTED":
            word = "sent"
        elif facts.status == "DELIVERED":
            word, dated = "delivered", rng.random() < 0.85
        else:
            word = "undelivered" if rng.random() < 0.7 else "failed"
            dated = word == "undelivered"

        pairs = [
            ("SmsSid", sid),
            ("SmsStatus", word),
            ("MessageStatus", word),
            ("To", facts.destination),
            ("MessagingServiceSid", _SERVICE_SID),
            ("MessageSid", sid),
            ("AccountSid", _ACCOUNT_SID),
            ("From", _FROM),
            ("ApiVersion", "2010-04-01"),
        ]
        if facts.error_code:
            pairs.append(("ErrorCode", facts.error_code))
        stated = floor_time(facts.occurred_at, "minute") if dated else None
        if stated is not None:
            pairs.append(("RawDlrDoneDate", stated.astimezone(zone).strftime("%y%m%d%H%M")))
        body = form_body(pairs, rng, shuffle=0.3)
        return Encoded(
            payload=RawPayload(CONTENT_FORM, body, metadata),
            stated_time=stated,
            report_time=stated if stated is not None else stand_in_time(body),
            error_code=facts.error_code,
            permanent=connection.permanence(facts.status, facts.error_code),
            carrier_id=None if facts.carrier_id is None else sid,
        )
