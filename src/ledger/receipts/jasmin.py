"""Jasmin SMS gateway HTTP delivery reports (form fields, GET or POST).

Jasmin posts two kinds of report, by dlr-level:

* Level 1, on ``submit_sm_resp``: ``message_status`` is an SMPP
  command_status name. ``ESME_ROK`` means accepted by the SMSC; any other name
  is a rejection, and no later receipt follows. ``id`` is Jasmin's own UUID,
  so there is no carrier id.
* Level 2, on the SMSC receipt: ``message_status`` is the Appendix B stat
  word and ``id_smsc`` the carrier id, which Jasmin upper-cases, strips of
  leading zeros and may convert between hex and decimal. ``err`` and
  ``donedate`` are copied from the receipt, and ``ND`` marks a value the
  receipt lacked.

A message sent with level 3 gets both reports, each naming its own level. The
level is taken from the shape of ``message_status`` (``ESME_*`` names are
level 1); the ``level`` field and the requested level from metadata key
``jasmin_requested_level`` are only cross-checked, with a warning when they
disagree.
"""

from __future__ import annotations

from collections.abc import Mapping

from ledger.errors import ReceiptParseError
from ledger.receipts.classification import build_receipt, lookup_status
from ledger.receipts.model import CarrierProfile, ParsedReceipts, ReceiptStatus
from ledger.receipts.payloads import decode_form, redact_form
from ledger.receipts.smpp_text import STAT_WORDS, profile_zone, read_done_date

__all__ = ["parse_jasmin"]

FORMAT = "jasmin"

_COMMAND_STATUS_PREFIX = "ESME_"
_ESME_ROK = "ESME_ROK"


def _level_warnings(level_field: str | None, level: int, requested: str | None) -> list[str]:
    warnings: list[str] = []
    reported = (level_field or "").strip()
    if reported and reported != str(level):
        warnings.append(f"level field {reported[:8]!r} does not match a level-{level} report")
    wanted = (requested or "").strip()
    if wanted in ("1", "2") and wanted != str(level):
        warnings.append(f"level-{level} report, but dlr-level {wanted} was requested")
    return warnings


def parse_jasmin(
    body: bytes,
    content_type: str,
    profile: CarrierProfile,
    metadata: Mapping[str, str],
) -> ParsedReceipts:
    """Parse a Jasmin HTTP delivery report.

    Args:
        body: The form body or query string.
        content_type: Unused.
        profile: The connection's profile (zone and err table of the SMSC).
        metadata: ``jasmin_requested_level`` (``1``, ``2`` or ``3``), the
            dlr-level requested when the message was sent, if known.

    Returns:
        One receipt, with the ``text`` field redacted.

    Raises:
        ReceiptParseError: ``message_status`` is missing.
    """
    fields = decode_form(body, FORMAT)
    message_status = (fields.get("message_status") or "").strip()
    if not message_status:
        raise ReceiptParseError(FORMAT, "message_status", "", "message_status is missing")

    if message_status.upper().startswith(_COMMAND_STATUS_PREFIX):
        name = message_status.upper()
        rejected = name != _ESME_ROK
        warnings = _level_warnings(fields.get("level"), 1, metadata.get("jasmin_requested_level"))
        receipt = build_receipt(
            ReceiptStatus.REJECTED if rejected else ReceiptStatus.ACCEPTED,
            profile,
            carrier_message_id=None,
            error_code=message_status if rejected else None,
            error_table="smpp-command-status",
            warnings=tuple(warnings),
        )
    else:
        warnings = _level_warnings(fields.get("level"), 2, metadata.get("jasmin_requested_level"))
        status, warning = lookup_status(message_status, STAT_WORDS, profile)
        if warning is not None:
            warnings.append(warning)
        done_text = fields.get("donedate")
        done_at = read_done_date(done_text, profile_zone(profile, FORMAT), warnings)
        receipt = build_receipt(
            status,
            profile,
            carrier_message_id=fields.get("id_smsc"),
            error_code=fields.get("err"),
            error_table=profile.error_table,
            done_at=done_at,
            source_time=None if (done_text or "").upper() == "ND" else done_text,
            warnings=tuple(warnings),
        )

    redacted, redactions = redact_form(body)
    return ParsedReceipts((receipt,), redacted, redactions)
