"""Sinch per-recipient delivery reports (JSON POST).

``batch_id`` is the carrier id and ``operator_status_at`` the completion
time in UTC, to the millisecond. Sinch marks Unknown as final. Codes 400 and
401 only restate Queued and Dispatched.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

from ledger.simulate.formats.base import (
    CONTENT_JSON,
    Encoded,
    FormatConnection,
    ReceiptFacts,
    derived_hex,
    floor_time,
)
from ledger.simulate.steps import RawPayload

__all__ = ["SinchEncoder", "sinch_time"]

_WORDS = {
    "ENROUTE": ("Queued", 400),
    "ACCEPTED": ("Dispatched", 401),
    "DELIVERED": ("Delivered", 0),
    "FAILED": ("Failed", 0),
    "EXPIRED": ("Expired", 0),
    "REJECTED": ("Rejected", 0),
    "UNKNOWN": ("Unknown", 0),
}


def sinch_time(value: datetime) -> str:
    """Write a UTC time as Sinch does: ISO 8601 with milliseconds and ``Z``."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


class SinchEncoder:
    """Sinch per-recipient delivery reports; times to the millisecond."""

    def supports(self, facts: ReceiptFacts) -> bool:
        """Tell whether a Sinch report can state ``facts``: Dispatched is never final."""
        return not (facts.status == "ACCEPTED" and facts.final)

    def acceptance_id(self, written: str) -> str:
        """Return Sinch's batch id: 26 upper-case characters."""
        return "01" + derived_hex(written, 24).upper()

    def encode(
        self, facts: ReceiptFacts, connection: FormatConnection, rng: random.Random
    ) -> Encoded:
        """Write ``facts`` as a per-recipient delivery report."""
        stated = floor_time(facts.occurred_at, "millisecond")
        metadata: tuple[tuple[str, str], ...] = ()
        if facts.carrier_id is None:
            batch_id = "01" + derived_hex(f"{facts.message_id}:{facts.attempt}", 24).upper()
            metadata = (("message_id", facts.message_id),)
        else:
            batch_id = self.acceptance_id(facts.carrier_id)
        word, code = _WORDS[facts.status]
        document: dict[str, object] = {
            "type": "recipient_delivery_report_sms",
            "batch_id": batch_id,
            "recipient": facts.destination.lstrip("+"),
            "code": int(facts.error_code) if facts.error_code else code,
            "status": word,
            "at": sinch_time(stated + timedelta(milliseconds=rng.randint(50, 3000))),
            "operator_status_at": sinch_time(stated),
            "applied_originator": "SIMLEDGER",
            "encoding": "GSM",
            "number_of_message_parts": 1,
            "operator": "23410",
        }
        if rng.random() < 0.5:
            document["client_reference"] = facts.message_id
        body = json.dumps(document, separators=(",", ":")).encode()
        return Encoded(
            payload=RawPayload(CONTENT_JSON, body, metadata),
            stated_time=stated,
            report_time=stated,
            error_code=facts.error_code,
            permanent=connection.permanence(facts.status, facts.error_code),
            carrier_id=None if facts.carrier_id is None else batch_id,
        )
