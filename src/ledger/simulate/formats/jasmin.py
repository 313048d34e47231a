"""Jasmin HTTP delivery reports (form POST), at dlr-level 1 and 2.

Level 1 reports the SMSC's ``submit_sm_resp``: ``ESME_ROK`` for a submit it
took, another command status name for one it refused. It names no carrier
id, so the ledger gets the message id as metadata. Level 2 relays the SMSC's
receipt, with the carrier id in Jasmin's coded form (upper case, leading
zeros removed) in ``id_smsc`` and ``ND`` for values the receipt lacked.
"""

from __future__ import annotations

import random
import uuid

from ledger.receipts.dates import resolve_zone
from ledger.simulate.formats.base import (
    CONTENT_FORM,
    Encoded,
    FormatConnection,
    ReceiptFacts,
    floor_time,
    form_body,
    stand_in_time,
)
from ledger.simulate.formats.smpp import stat_word
from ledger.simulate.steps import RawPayload

__all__ = ["ESME_CODES", "JasminEncoder"]

# Command status names of a refused submit, and whether a retry fails again.
ESME_CODES: dict[str, bool | None] = {
    "ESME_RINVDSTADR": True,
    "ESME_RTHROTTLED": False,
    "ESME_RMSGQFUL": False,
}

_TEXT = "Your code is 4821"


def _esme_code(connection: FormatConnection, code: str) -> str:
    """Return the command status name a refused submit reports for a planned code."""
    if code in connection.carrier.permanent_codes:
        return "ESME_RINVDSTADR"
    transient = sorted(connection.carrier.transient_codes)
    index = transient.index(code) if code in transient else 0
    return ("ESME_RTHROTTLED", "ESME_RMSGQFUL")[index % 2]


def _jasmin_id(facts: ReceiptFacts) -> str:
    """Return Jasmin's own message id, a UUID that stays the same for a message attempt."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"jasmin:{facts.message_id}:{facts.attempt}"))


def coded_id(carrier_id: str) -> str:
    """Return an id as Jasmin forwards it: upper case, leading zeros removed."""
    return carrier_id.strip().upper().lstrip("0") or "0"


class JasminEncoder:
    """Jasmin delivery report forms; done dates to the minute."""

    def supports(self, facts: ReceiptFacts) -> bool:
        """Tell whether a Jasmin report can state ``facts``.

        Jasmin relays SMPP stat words, so UNKNOWN and ACCEPTD stay intermediate.
        """
        return not (facts.final and facts.status in ("UNKNOWN", "ACCEPTED"))

    def acceptance_id(self, written: str) -> str:
        """Return the planned id unchanged."""
        return written

    def encode(
        self, facts: ReceiptFacts, connection: FormatConnection, rng: random.Random
    ) -> Encoded:
        """Write ``facts`` as a level-1 or level-2 report."""
        code = facts.error_code
        if facts.carrier_id is None and facts.status in ("ACCEPTED", "REJECTED"):
            code = _esme_code(connection, code) if facts.status == "REJECTED" else ""
            pairs = [
                ("id", _jasmin_id(facts)),
                ("message_status", code or "ESME_ROK"),
                ("level", "1"),
                ("connector", connection.name),
            ]
            body = form_body(pairs, rng, shuffle=0.2)
            level_one = (("message_id", facts.message_id), ("jasmin_requested_level", "3"))
            return Encoded(
                payload=RawPayload(CONTENT_FORM, body, level_one),
                stated_time=None,
                report_time=stand_in_time(body),
                error_code=code,
                permanent=connection.permanence(facts.status, code),
                carrier_id=None,
            )

        zone = resolve_zone(str(connection.profile.get("timezone", "UTC")))
        stated = floor_time(facts.occurred_at, "minute")
        word = stat_word(facts.status, rng)
        # A receipt without an err field reaches the callback as ND.
        no_error = "ND" if rng.random() < 0.3 else "000"
        err = code.zfill(3) if code else no_error
        pairs = [
            ("id", _jasmin_id(facts)),
            ("message_status", word),
            ("level", "2"),
            ("connector", facts.carrier_id or connection.name),
            ("sub", "001"),
            ("dlvrd", "001" if facts.status == "DELIVERED" else "000"),
            ("subdate", facts.submitted_at.astimezone(zone).strftime("%y%m%d%H%M")),
            ("donedate", stated.astimezone(zone).strftime("%y%m%d%H%M")),
            ("err", err),
            ("text", _TEXT),
        ]
        metadata: tuple[tuple[str, str], ...] = ()
        carrier_id = None
        if facts.carrier_id is None:
            metadata = (("message_id", facts.message_id),)
        else:
            carrier_id = coded_id(facts.carrier_id)
            pairs.insert(4, ("id_smsc", carrier_id))
        body = form_body(pairs, rng, shuffle=0.2)
        written_code = err if code else ""
        return Encoded(
            payload=RawPayload(CONTENT_FORM, body, metadata),
            stated_time=stated,
            report_time=stated,
            error_code=written_code,
            permanent=connection.permanence(facts.status, written_code),
            carrier_id=carrier_id,
        )
