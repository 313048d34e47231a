"""Destination numbers: E.164 checks, country, and the masked display form.

The ledger records what was sent, so it checks form, not allocation: a number
with a plausible length for its country code is accepted even where the
numbering metadata does not list it as assigned (fictional drama ranges such
as +44 7700 900xxx among them), and it is flagged as unallocated.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import phonenumbers

from ledger.errors import FieldViolation

__all__ = ["CheckedNumber", "check_destination", "mask_number"]

_E164 = re.compile(r"\+[1-9][0-9]{5,14}")


@dataclass(frozen=True)
class CheckedNumber:
    """A destination that passed the E.164 check.

    Attributes:
        e164: The number in E.164 form, such as ``+447700900123``.
        country_code: The calling code, such as 44.
        national_number: The digits after the calling code.
        country: ISO 3166-1 alpha-2 region, or ``"001"`` for non-geographic codes.
        unallocated: The numbering metadata does not list the number as assigned.
        masked: Display form that identifies no one, such as ``+44 7700 9xxx23``.
    """

    e164: str
    country_code: int
    national_number: str
    country: str
    unallocated: bool
    masked: str


def mask_number(country_code: int, national_number: str) -> str:
    """Mask the middle digits of a number: ``+44 7700 9xxx23``.

    At least three digits are hidden, more for long numbers, so that at most
    seven digits of the national number remain visible.
    """
    hidden = max(3, len(national_number) - 7)
    tail = 2 if len(national_number) > hidden + 2 else 0
    head = national_number[: len(national_number) - hidden - tail]
    visible_head = f"{head[:4]} {head[4:]}" if len(head) > 4 else head
    visible_tail = national_number[len(national_number) - tail :] if tail else ""
    return f"+{country_code} {visible_head}{'x' * hidden}{visible_tail}"


def masked_for_error(value: str) -> str:
    """Return a form of unvalidated input that is safe to put in an error message."""
    digits = re.sub(r"[^0-9]", "", value)
    if not digits:
        return f"a value of {len(value)} characters without digits"
    if len(digits) <= 4:
        return "x" * len(digits)
    return f"{value[:3]}...{'x' * (len(digits) - 5)}{digits[-2:]}"


@functools.lru_cache(maxsize=65_536)
def check_destination(value: str, field: str = "destination") -> CheckedNumber | FieldViolation:
    """Check that ``value`` is an E.164 number and derive its country.

    Returns:
        The checked number, or a violation whose description shows only a
        masked form of the value. Results are cached, because parsing a
        number with the numbering metadata costs tens of microseconds.
    """
    if not value:
        return FieldViolation(field, "is required")
    if not value.startswith("+"):
        return FieldViolation(
            field,
            f"{masked_for_error(value)} lacks the leading '+': send it in E.164 form, '+' "
            "followed by the country code and the national number",
        )
    if not _E164.fullmatch(value):
        return FieldViolation(
            field,
            f"{masked_for_error(value)} is not in E.164 form: '+' then 6 to 15 digits, "
            "no spaces or punctuation",
        )
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return FieldViolation(field, f"{masked_for_error(value)} has no known country code")
    reason = phonenumbers.is_possible_number_with_reason(parsed)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        return FieldViolation(
            field,
            f"{masked_for_error(value)} has an implausible length for country code "
            f"+{parsed.country_code}",
        )
    country_code = parsed.country_code or 0
    national = str(parsed.national_number)
    if parsed.italian_leading_zero:
        national = "0" * (parsed.number_of_leading_zeros or 1) + national
    # region_code_for_number does not check validity for single-region
    # calling codes, so validity is checked against the region found.
    region = phonenumbers.region_code_for_number(parsed)
    valid = region is not None and phonenumbers.is_valid_number_for_region(parsed, region)
    if not valid:
        region = phonenumbers.region_code_for_country_code(country_code)
    return CheckedNumber(
        e164=value,
        country_code=country_code,
        national_number=national,
        country=region or "ZZ",
        unallocated=not valid,
        masked=mask_number(country_code, national),
    )
