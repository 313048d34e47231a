"""Normalization rules shared by every receipt format.

The format modules extract raw values (a status word, an error code, a
completion time); the functions here turn them into a
:class:`~ledger.receipts.model.NormalizedReceipt` with the same rules for all
sources:

* Status words are matched case-insensitively. A word missing from the
  format's table becomes ``unknown``, non-final, with a warning, and is never
  guessed as failed or delivered.
* ``final`` follows the status unless the source says otherwise, and an
  acceptance is final on routes whose profile says they never confirm delivery.
* ``permanent`` is set only for failures and rejections: a profile override
  first, then the source's own flag, then the error table. Expiry is always
  transient, and a cancellation or an unclassified code gives None.
* ``done_at`` is kept only for final statuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from ledger.privacy.masking import mask_digit_runs
from ledger.receipts.error_tables import canonical_code, classify_code
from ledger.receipts.model import CarrierProfile, NormalizedReceipt, ReceiptStatus

__all__ = [
    "FINAL_BY_DEFAULT",
    "UNRECOGNIZED_STATUS",
    "build_receipt",
    "clean_error_code",
    "clean_text",
    "decide_permanent",
    "is_unrecognized_status",
    "lookup_status",
]

FINAL_BY_DEFAULT: Mapping[ReceiptStatus, bool] = {
    ReceiptStatus.ENROUTE: False,
    ReceiptStatus.ACCEPTED: False,
    ReceiptStatus.DELIVERED: True,
    ReceiptStatus.FAILED: True,
    ReceiptStatus.EXPIRED: True,
    ReceiptStatus.REJECTED: True,
    ReceiptStatus.UNKNOWN: False,
}

UNRECOGNIZED_STATUS = "unrecognized"
"""First word of every warning about a status the format's table lacks (a
word, a name or a state number), so that they can be counted."""

_FAILURES = frozenset({ReceiptStatus.FAILED, ReceiptStatus.REJECTED})

# Values that sources put where they have no error code.
_PLACEHOLDER_CODES = frozenset({"", "ND", "N/A", "NA", "-", "NONE", "NULL", "NIL"})

_STRIP = " \t\r\n\x00"


def is_unrecognized_status(warning: str) -> bool:
    """Tell whether a parser warning reports a status that was not recognized."""
    return warning.startswith(UNRECOGNIZED_STATUS + " ")


def clean_text(value: str | None) -> str | None:
    """Return ``value`` trimmed of whitespace and NUL, or None when nothing remains."""
    if value is None:
        return None
    text = value.strip(_STRIP)
    return text or None


def lookup_status(
    word: str,
    table: Mapping[str, ReceiptStatus],
    profile: CarrierProfile,
) -> tuple[ReceiptStatus, str | None]:
    """Map a source's status word to a normalized status.

    The profile's ``status_synonyms`` are checked before ``table``, so a
    connection can also redefine a standard word.

    Args:
        word: The status word as the source wrote it.
        table: Upper-case words of the source's format.
        profile: The connection's profile.

    Returns:
        The status and a warning: the warning is None when the word is known,
        and the status is ``UNKNOWN`` when it is not.
    """
    key = word.strip(_STRIP).upper()
    if profile.status_synonyms:
        for synonym, target in profile.status_synonyms.items():
            if synonym.strip().upper() == key:
                try:
                    return ReceiptStatus(target.strip().lower()), None
                except ValueError:
                    return ReceiptStatus.UNKNOWN, (
                        f"profile {profile.name!r} maps status word {key!r} to "
                        f"{target!r}, which is not a receipt status"
                    )
    status = table.get(key)
    if status is None:
        word_shown = word.strip(_STRIP)[:64]
        return ReceiptStatus.UNKNOWN, f"{UNRECOGNIZED_STATUS} status word {word_shown!r}"
    return status, None


def clean_error_code(raw: str | None) -> str | None:
    """Return a source's error code, or None where it means "no error".

    Empty values, placeholders such as ``ND`` and codes made only of zeros
    (``0``, ``000``, ``0x00000000``) become None. Every other code is kept
    verbatim, trimmed of whitespace and NUL.
    """
    if raw is None:
        return None
    code = raw.strip(_STRIP)
    if code.upper() in _PLACEHOLDER_CODES:
        return None
    digits = code[2:] if code[:2] in ("0x", "0X") else code
    if digits and digits.strip("0") == "":
        return None
    return code


def decide_permanent(
    status: ReceiptStatus,
    error_code: str | None,
    error_table: str | None,
    profile: CarrierProfile,
    *,
    source_flag: bool | None = None,
    cancelled: bool = False,
) -> bool | None:
    """Decide whether a failure is permanent.

    Args:
        status: The normalized status.
        error_code: The cleaned error code, or None.
        error_table: Table that classifies ``error_code``.
        profile: The connection's profile; its ``permanent_codes`` and
            ``transient_codes`` win over the source flag and the table.
        source_flag: The source's own permanence flag, if it sends one.
        cancelled: True when the sender cancelled the message; a cancellation
            is not a delivery failure.

    Returns:
        True or False for a classified failure or rejection, False for an
        expiry, None otherwise.
    """
    if status is ReceiptStatus.EXPIRED:
        return False
    if status not in _FAILURES or cancelled:
        return None
    if error_code is not None and (profile.permanent_codes or profile.transient_codes):
        key = canonical_code(error_code)
        if key in _canonical_set(profile.permanent_codes):
            return True
        if key in _canonical_set(profile.transient_codes):
            return False
    if source_flag is not None:
        return source_flag
    if error_code is None or error_table is None:
        return None
    return classify_code(error_table, error_code)


def _canonical_set(codes: frozenset[str]) -> set[str]:
    return {canonical_code(code) for code in codes}


def build_receipt(
    status: ReceiptStatus,
    profile: CarrierProfile,
    *,
    carrier_message_id: str | None,
    final: bool | None = None,
    error_code: str | None = None,
    error_table: str | None = None,
    source_flag: bool | None = None,
    cancelled: bool = False,
    done_at: datetime | None = None,
    source_time: str | None = None,
    recipient: str | None = None,
    segment: int | None = None,
    warnings: tuple[str, ...] = (),
) -> NormalizedReceipt:
    """Assemble a normalized receipt from values a format module extracted.

    Args:
        status: The normalized status.
        profile: The connection's profile.
        carrier_message_id: The carrier's id; it is trimmed here.
        final: The source's own finality where it states one; None applies
            :data:`FINAL_BY_DEFAULT`.
        error_code: The raw error code; placeholders and zeros become None.
        error_table: Table that classifies ``error_code``.
        source_flag: The source's own permanence flag, if any.
        cancelled: True for a cancellation by the sender.
        done_at: Completion time in UTC; dropped unless the receipt is final.
        source_time: The source's timestamp text, kept for duplicate detection.
        recipient: Destination number as the source writes it.
        segment: 1-based part number, when known.
        warnings: Notes for operators.

    Returns:
        The normalized receipt.
    """
    if final is None:
        final = FINAL_BY_DEFAULT[status]
    if status is ReceiptStatus.ACCEPTED and not profile.confirms_delivery:
        final = True
    code = clean_error_code(error_code)
    return NormalizedReceipt(
        status=status,
        final=final,
        permanent=decide_permanent(
            status, code, error_table, profile, source_flag=source_flag, cancelled=cancelled
        ),
        carrier_message_id=clean_text(carrier_message_id),
        error_code=code,
        error_table=error_table if code is not None else None,
        done_at=done_at if final else None,
        source_time=clean_text(source_time),
        recipient=clean_text(recipient),
        segment=segment,
        warnings=tuple(mask_digit_runs(w) for w in warnings),
    )
