"""Canonical carrier message ids, so that the forms carriers vary still match.

Carriers write the same id differently in the submit response and in the
receipt: hex in one and decimal in the other, in another letter case, or with
leading zeros. Both sides are reduced to one canonical text before matching.
"""

from __future__ import annotations

from ledger.receipts.model import IdBase

__all__ = ["canonical_carrier_id"]

_STRIP = " \t\r\n\x00"


def canonical_carrier_id(raw: str, base: IdBase) -> str:
    """Return the canonical form of a carrier message id.

    ``DECIMAL`` and ``HEX`` ids become the decimal text of their value; an id
    that is not a number in the declared base falls back to the ``TEXT`` rule
    (upper case, leading zeros removed), so a misconfigured profile degrades to
    text matching instead of failing.

    Args:
        raw: The id as the carrier wrote it.
        base: How the carrier writes ids on this side of the exchange.

    Returns:
        The canonical id; an id of only zeros becomes ``"0"``.
    """
    text = raw.strip(_STRIP)
    if base is not IdBase.TEXT:
        try:
            return str(int(text, 10 if base is IdBase.DECIMAL else 16))
        except ValueError:
            pass
    return text.upper().lstrip("0") or "0"
