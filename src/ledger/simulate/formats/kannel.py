"""Kannel dlr-url callbacks: the query string of ``?type=%d&fid=%F&reply=%A&to=%P&ts=%T``.

``%A`` is the SMSC's receipt text for a receipt, ``ACK/`` for a submit the
SMSC took, and ``NACK/<command_status>/<description>`` for one it refused.
A refused submit has no SMSC id, so the callback names the message through
the sender's own reference (metadata ``message_id``).
"""

from __future__ import annotations

import random
from datetime import datetime

from ledger.receipts.dates import resolve_zone
from ledger.simulate.formats.base import (
    Encoded,
    FormatConnection,
    ReceiptFacts,
    floor_time,
    form_body,
    seeded_rng,
)
from ledger.simulate.formats.smpp import receipt_text
from ledger.simulate.steps import RawPayload

__all__ = ["NACK_CODES", "KannelEncoder"]

# Report types of Kannel's dlr-mask (gw/dlr.h).
_DELIVERED = 1
_FAILED = 2
_BUFFERED = 4
_SMSC_SUCCESS = 8
_SMSC_FAIL = 16
_TYPES = {
    "DELIVERED": _DELIVERED,
    "FAILED": _FAILED,
    "EXPIRED": _FAILED,
    "REJECTED": _FAILED,
    "ENROUTE": _BUFFERED,
    "ACCEPTED": _BUFFERED,
}

# command_status of a refused submit, and whether a retry fails again.
NACK_CODES: dict[str, bool | None] = {
    "0x0000000B": True,  # ESME_RINVDSTADR
    "0x00000058": False,  # ESME_RTHROTTLED
    "0x00000014": False,  # ESME_RMSGQFUL
}
_NACK_TEXT = {
    "0x0000000B": "Invalid Destination Address",
    "0x00000058": "Throttling error",
    "0x00000014": "Message Queue Full",
}


def _nack_code(connection: FormatConnection, code: str) -> str:
    """Return the command_status a refused submit reports for a planned code."""
    if code in connection.carrier.permanent_codes:
        return "0x0000000B"
    transient = sorted(connection.carrier.transient_codes)
    index = transient.index(code) if code in transient else 0
    return ("0x00000058", "0x00000014")[index % 2]


class KannelEncoder:
    """Kannel dlr-url query strings; receipt dates to the second."""

    def supports(self, facts: ReceiptFacts) -> bool:
        """Tell whether a Kannel callback can state ``facts``.

        Kannel passes SMPP stat words on, so UNKNOWN and ACCEPTD stay intermediate.
        """
        return not (facts.final and facts.status in ("UNKNOWN", "ACCEPTED"))

    def acceptance_id(self, written: str) -> str:
        """Return the planned id unchanged."""
        return written

    def encode(
        self, facts: ReceiptFacts, connection: FormatConnection, rng: random.Random
    ) -> Encoded:
        """Write ``facts`` as a dlr-url query string."""
        zone = resolve_zone(str(connection.profile.get("timezone", "UTC")))
        stated = floor_time(facts.occurred_at, "second")
        # Kannel's %T is the time it built the report, in epoch seconds.
        ts = str(int(stated.timestamp()))
        metadata: tuple[tuple[str, str], ...] = ()
        if facts.carrier_id is None:
            metadata = (("message_id", facts.message_id),)
        shape = seeded_rng(facts.message_id, facts.attempt, facts.status, "kannel")

        code = facts.error_code
        stated_time: datetime | None = stated
        if facts.carrier_id is None and facts.status == "REJECTED":
            code = _nack_code(connection, code)
            kind, reply, fid = _SMSC_FAIL, f"NACK/{code}/{_NACK_TEXT[code]}", ""
            stated_time = None
        elif facts.status == "ACCEPTED" and facts.carrier_id and shape.random() < 0.5:
            kind, reply, fid = _SMSC_SUCCESS, "ACK/", facts.carrier_id
            stated_time = None
        else:
            err = code.zfill(3) if code else "000"
            text, _ = receipt_text(
                facts.status, stated, facts.submitted_at, facts.carrier_id, err, zone, 12, rng
            )
            kind, reply = _TYPES[facts.status], text.decode("ascii")
            # %F is sometimes empty, and then the parser takes the receipt text's id.
            fid = facts.carrier_id or ""
            if rng.random() < 0.2:
                fid = ""
            code = err if code else ""

        pairs = [
            ("type", str(kind)),
            ("fid", fid),
            ("reply", reply),
            ("to", facts.destination),
            ("ts", ts),
            ("smsc", connection.name),
        ]
        if facts.carrier_id is None:
            pairs.insert(0, ("ref", facts.message_id))
        body = form_body(pairs, rng, shuffle=0.2)
        return Encoded(
            payload=RawPayload(content_type="", body=body, metadata=metadata),
            stated_time=stated_time,
            # The done date, or Kannel's own time where the reply has no
            # receipt text: both are the same whole second.
            report_time=stated,
            error_code=code,
            permanent=connection.permanence(facts.status, code),
            carrier_id=facts.carrier_id,
        )
