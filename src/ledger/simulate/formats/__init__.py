"""Receipt encoders: planned receipts written in real carrier formats.

One module per format family. :data:`ENCODERS` maps the family names that
:class:`~ledger.simulate.formats.base.FormatConnection` uses to encoders.
"""

from __future__ import annotations

from collections.abc import Mapping

from ledger.simulate.formats.aws import AwsEncoder
from ledger.simulate.formats.base import ReceiptEncoder
from ledger.simulate.formats.infobip import InfobipEncoder
from ledger.simulate.formats.jasmin import JasminEncoder
from ledger.simulate.formats.kannel import KannelEncoder
from ledger.simulate.formats.messagebird import MessageBirdEncoder
from ledger.simulate.formats.plivo import PlivoEncoder
from ledger.simulate.formats.sinch import SinchEncoder
from ledger.simulate.formats.smpp import SmppPduEncoder, SmppTextEncoder
from ledger.simulate.formats.twilio import TwilioEncoder
from ledger.simulate.formats.vonage import VonageEncoder

__all__ = ["ENCODERS", "JOINED_FAMILIES", "SEGMENT_FAMILIES", "SMPP_FAMILIES"]

ENCODERS: Mapping[str, ReceiptEncoder] = {
    "smpp-text": SmppTextEncoder(),
    "smpp-pdu": SmppPduEncoder(),
    "kannel": KannelEncoder(),
    "jasmin": JasminEncoder(),
    "twilio": TwilioEncoder(),
    "vonage": VonageEncoder(),
    "plivo": PlivoEncoder(),
    "sinch": SinchEncoder(),
    "infobip": InfobipEncoder(),
    "aws": AwsEncoder(),
    "messagebird": MessageBirdEncoder(),
}

SMPP_FAMILIES: frozenset[str] = frozenset({"smpp-text", "smpp-pdu", "kannel", "jasmin"})
"""Families that relay SMPP receipts, where an ACCEPTD often precedes the DELIVRD."""

SEGMENT_FAMILIES: frozenset[str] = frozenset({"smpp-pdu"})
"""Families whose payload can name a part number (``sar_segment_seqnum``)."""

JOINED_FAMILIES: frozenset[str] = frozenset({"infobip"})
"""Families whose reports arrive several to a payload, which batch mode joins."""
