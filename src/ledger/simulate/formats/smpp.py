"""SMPP receipts: the Appendix B receipt text, and whole ``deliver_sm`` PDUs.

The text carries the quirks SMSCs show: lower-case stat words, keys in
another order, an unknown extra key, ``Text:`` spelled with a capital, and
message text that itself contains ``stat:``. The PDU connection writes the
id in decimal in its acceptances and in hex in the ``receipted_message_id``
TLV, as some SMSCs do. Its receipt text keeps the zero-padded decimal form.
"""

from __future__ import annotations

import hashlib
import random
from datetime import datetime, tzinfo

from smpplib import command as smpp_command

from ledger.receipts.dates import resolve_zone
from ledger.simulate.formats.base import Encoded, FormatConnection, ReceiptFacts, floor_time
from ledger.simulate.steps import RawPayload

__all__ = ["SmppPduEncoder", "SmppTextEncoder", "numeric_id", "receipt_text", "stat_word"]

_STAT_WORDS = {
    "ENROUTE": "ENROUTE",
    "ACCEPTED": "ACCEPTD",
    "DELIVERED": "DELIVRD",
    "FAILED": "UNDELIV",
    "EXPIRED": "EXPIRED",
    "REJECTED": "REJECTD",
    "UNKNOWN": "UNKNOWN",
}

# message_state values of SMPP 3.4 section 5.2.28.
_MESSAGE_STATES = {
    "ENROUTE": 1,
    "DELIVERED": 2,
    "EXPIRED": 3,
    "FAILED": 5,
    "ACCEPTED": 6,
    "UNKNOWN": 7,
    "REJECTED": 8,
}
_DELETED_STATE = 4

# esm_class message types: SMSC delivery receipt, intermediate notification.
_DELIVERY_RECEIPT = 0x04
_INTERMEDIATE = 0x20

# Network type 3 of network_error_code: the code is a GSM MAP error value.
_NETWORK_TYPE_GSM = 3

# Echoed message texts; some contain receipt keywords the parser must skip.
_TEXTS = (
    "Your code is 4821",
    "Reply stat:DELIVRD",
    "Order shipped err:1",
    "Hi, meet at 6?",
    "id:99 stat:UNDELIV",
    "",
)

_SENDER = "SIMLEDGER"


def stat_word(status: str, rng: random.Random) -> str:
    """Return the Appendix B stat word of a normalized status.

    A failure is written as DELETED one time in seven, which the ledger reads
    as a failure too.
    """
    if status == "FAILED" and rng.random() < 1 / 7:
        return "DELETED"
    return _STAT_WORDS[status]


def receipt_text(
    status: str,
    done_at: datetime,
    submitted_at: datetime,
    text_id: str | None,
    err: str,
    zone: tzinfo,
    date_digits: int,
    rng: random.Random,
) -> tuple[bytes, str]:
    """Write an Appendix B receipt text with the usual SMSC variations.

    Args:
        status: Normalized status.
        done_at: The ``done date``.
        submitted_at: The ``submit date``.
        text_id: The ``id:`` value; None leaves the key out.
        err: The ``err:`` value.
        zone: Zone the dates are written in; the text states none.
        date_digits: 10 (YYMMDDhhmm) or 12 (YYMMDDhhmmss).
        rng: Choices of spelling and order.

    Returns:
        The text and the stat word it contains.
    """
    pattern = "%y%m%d%H%M%S" if date_digits == 12 else "%y%m%d%H%M"
    done = done_at.astimezone(zone).strftime(pattern)
    submitted = submitted_at.astimezone(zone).strftime(pattern)
    word = stat_word(status, rng)
    if rng.random() < 0.2:
        word = word.lower()
    fields = []
    if text_id is not None:
        fields.append(f"id:{text_id}")
    fields += [
        "sub:001",
        f"dlvrd:{'001' if status == 'DELIVERED' else '000'}",
        f"submit date:{submitted}",
        f"done date:{done}",
        f"stat:{word}",
        f"err:{err}",
    ]
    if rng.random() < 0.1:
        fields.insert(rng.randrange(len(fields) + 1), "mccmnc:23410")
    if rng.random() < 0.15:
        rng.shuffle(fields)
    key = "Text:" if rng.random() < 0.2 else "text:"
    return (" ".join(fields) + f" {key}{rng.choice(_TEXTS)}").encode("ascii"), word


def _err_text(code: str) -> str:
    return code.zfill(3) if code else "000"


def _reference(facts: ReceiptFacts) -> tuple[tuple[str, str], ...]:
    """Return the metadata that names the message of a receipt without an id."""
    return (("message_id", facts.message_id),) if facts.carrier_id is None else ()


def _supports(facts: ReceiptFacts) -> bool:
    # An SMPP UNKNOWN and ACCEPTD are intermediate, so neither can be final.
    return not (facts.final and facts.status in ("UNKNOWN", "ACCEPTED"))


class SmppTextEncoder:
    """Receipt texts as an SMSC puts them in ``short_message``; dates to the minute."""

    def supports(self, facts: ReceiptFacts) -> bool:
        """Tell whether a receipt text can state ``facts``."""
        return _supports(facts)

    def acceptance_id(self, written: str) -> str:
        """Return the planned id unchanged: text ids are matched as text."""
        return written

    def encode(
        self, facts: ReceiptFacts, connection: FormatConnection, rng: random.Random
    ) -> Encoded:
        """Write ``facts`` as a receipt text."""
        zone = resolve_zone(str(connection.profile.get("timezone", "UTC")))
        stated = floor_time(facts.occurred_at, "minute")
        text_id = facts.carrier_id
        if text_id is not None and rng.random() < 0.15:
            text_id = text_id.lower()
        err = _err_text(facts.error_code)
        body, _ = receipt_text(
            facts.status, stated, facts.submitted_at, text_id, err, zone, 10, rng
        )
        return Encoded(
            payload=RawPayload(content_type="", body=body, metadata=_reference(facts)),
            stated_time=stated,
            report_time=stated,
            error_code=_err_text(facts.error_code) if facts.error_code else "",
            permanent=connection.permanence(facts.status, facts.error_code),
            carrier_id=text_id,
        )


def numeric_id(written: str) -> int:
    """Return the number an SMSC that counts in integers would use for a planned id.

    The planned ids are text, so the number is derived from the id's
    canonical form (upper case, leading zeros removed); 56 bits keep
    collisions out of any realistic run.
    """
    canonical = written.strip().upper().lstrip("0") or "0"
    digest = hashlib.blake2b(canonical.encode(), digest_size=7).digest()
    return int.from_bytes(digest, "big")


class SmppPduEncoder:
    """Whole ``deliver_sm`` PDUs with receipt TLVs; dates to the second.

    The acceptance writes the id in decimal, zero-padded to 10 digits when
    the plan pads it. The ``receipted_message_id`` TLV writes the same number
    in hex, in upper or lower case.
    """

    def supports(self, facts: ReceiptFacts) -> bool:
        """Tell whether a receipt PDU can state ``facts``."""
        return _supports(facts)

    def acceptance_id(self, written: str) -> str:
        """Return the decimal id of the acceptance."""
        number = numeric_id(written)
        return f"{number:010d}" if written.startswith("0") else str(number)

    def encode(
        self, facts: ReceiptFacts, connection: FormatConnection, rng: random.Random
    ) -> Encoded:
        """Write ``facts`` as a ``deliver_sm`` PDU, as bytes or as hex text."""
        zone = resolve_zone(str(connection.profile.get("timezone", "UTC")))
        stated = floor_time(facts.occurred_at, "second")
        number = None if facts.carrier_id is None else numeric_id(facts.carrier_id)
        text_id = None if number is None else f"{number:010d}"
        code = facts.error_code
        err = f"{int(code):03d}" if code else "000"
        text, word = receipt_text(
            facts.status, stated, facts.submitted_at, text_id, err, zone, 12, rng
        )

        params: dict[str, object] = {
            "sequence": rng.randrange(1, 0x7FFFFFFF),
            "source_addr": facts.destination.lstrip("+"),
            "destination_addr": _SENDER,
            "esm_class": _DELIVERY_RECEIPT,
        }
        if facts.status == "ENROUTE" and rng.random() < 0.5:
            params["esm_class"] = _INTERMEDIATE
        if rng.random() < 0.2:
            # Some SMSCs leave short_message empty and send the text as a TLV.
            params["message_payload"] = text
        else:
            params["short_message"] = text
        if number is not None:
            hex_id = f"{number:x}"
            params["receipted_message_id"] = hex_id.upper() if rng.random() < 0.5 else hex_id
        if rng.random() < 0.9:
            state = _MESSAGE_STATES[facts.status]
            params["message_state"] = _DELETED_STATE if word.upper() == "DELETED" else state
        if code:
            params["network_error_code"] = bytes([_NETWORK_TYPE_GSM]) + int(code).to_bytes(2, "big")
        if facts.segment:
            params["sar_segment_seqnum"] = facts.segment
        pdu = smpp_command.DeliverSM("deliver_sm", **params).generate()
        body = pdu.hex().encode("ascii") if rng.random() < 0.2 else pdu
        return Encoded(
            payload=RawPayload(content_type="", body=body, metadata=_reference(facts)),
            stated_time=stated,
            report_time=stated,
            error_code=code,
            permanent=connection.permanence(facts.status, code),
            carrier_id=None if number is None else str(number),
        )
