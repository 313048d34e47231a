"""Timestamps in receipts: SMPP digit dates, ISO 8601 text and epoch milliseconds.

Every function returns an aware datetime in UTC. Dates without a zone are read
in the connection's zone, which comes from the carrier profile because the
receipt never states it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "from_epoch_millis",
    "parse_iso_datetime",
    "parse_smpp_date",
    "read_iso_field",
    "resolve_zone",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# "+03:00", "-0530", "+3", optionally after "UTC" or "GMT".
_OFFSET = re.compile(r"(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?", re.IGNORECASE)

# Epoch milliseconds beyond year 9999 cannot become a datetime.
_MAX_EPOCH_MILLIS = 253_402_300_799_999


@lru_cache(maxsize=256)
def resolve_zone(name: str) -> tzinfo:
    """Return the zone named by a profile's ``timezone`` setting.

    Args:
        name: ``UTC`` (or ``Z``, ``GMT``), a fixed offset such as ``+03:00``,
            ``-0530`` or ``UTC+3``, or an IANA zone name such as ``Europe/Berlin``.

    Returns:
        A fixed-offset ``timezone`` or a ``ZoneInfo``. Results are cached, so
        callers may resolve the zone on every receipt.

    Raises:
        ValueError: The name is neither an offset nor a known IANA zone.
    """
    text = name.strip()
    if text.upper() in ("UTC", "Z", "GMT", "ETC/UTC", ""):
        return UTC
    match = _OFFSET.fullmatch(text)
    if match is not None:
        sign, hours, minutes = match.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
        if delta >= timedelta(hours=24):
            raise ValueError(f"zone offset {name!r} is out of range; use -23:59 to +23:59")
        return timezone(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r}; use UTC, an offset such as +03:00, or an IANA name"
        ) from exc


def _to_utc(naive: datetime, zone: tzinfo) -> datetime:
    if zone is UTC:
        return naive.replace(tzinfo=UTC)
    if isinstance(zone, timezone):
        # A fixed offset needs no zone rules: subtracting it is enough and faster.
        offset = zone.utcoffset(None)
        return (naive - offset).replace(tzinfo=UTC)
    return naive.replace(tzinfo=zone).astimezone(UTC)


def parse_smpp_date(digits: str, zone: tzinfo) -> datetime | None:
    """Parse an SMPP receipt date written as 10, 12 or 14 digits.

    Widths:
        10 digits are YYMMDDhhmm. 14 digits are YYYYMMDDhhmmss. 12 digits are
        tried as YYMMDDhhmmss first and as YYYYMMDDhhmm when that is not a
        valid date: ``202603140926`` cannot have month 26, so it is read as
        2026-03-14 09:26. Two-digit years are 2000-2099.

    Args:
        digits: The date text as the receipt wrote it.
        zone: The connection's zone; receipts never carry one.

    Returns:
        The instant in UTC, or None when the text is not a valid date of a
        known width.
    """
    if not (digits.isascii() and digits.isdigit()):
        return None
    width = len(digits)
    try:
        if width == 10:
            naive = datetime(
                2000 + int(digits[0:2]),
                int(digits[2:4]),
                int(digits[4:6]),
                int(digits[6:8]),
                int(digits[8:10]),
            )
        elif width == 12:
            naive = _parse_twelve_digits(digits)
        elif width == 14:
            naive = datetime(
                int(digits[0:4]),
                int(digits[4:6]),
                int(digits[6:8]),
                int(digits[8:10]),
                int(digits[10:12]),
                int(digits[12:14]),
            )
        else:
            return None
        return _to_utc(naive, zone)
    except (ValueError, OverflowError):
        return None


def _parse_twelve_digits(digits: str) -> datetime:
    try:
        return datetime(
            2000 + int(digits[0:2]),
            int(digits[2:4]),
            int(digits[4:6]),
            int(digits[6:8]),
            int(digits[8:10]),
            int(digits[10:12]),
        )
    except ValueError:
        return datetime(
            int(digits[0:4]),
            int(digits[4:6]),
            int(digits[6:8]),
            int(digits[8:10]),
            int(digits[10:12]),
        )


def parse_iso_datetime(text: str, zone: tzinfo) -> datetime | None:
    """Parse an ISO 8601 or RFC 3339 timestamp.

    Accepts a ``T`` or space separator, ``Z``, ``+00:00`` and ``+0000``
    offsets, and fractions of any length (digits past microseconds are cut).

    Args:
        text: The timestamp text.
        zone: Zone applied when the text carries no offset.

    Returns:
        The instant in UTC, or None when the text is not a timestamp.
    """
    value = text.strip()
    if not value or not value.isascii():
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    try:
        if parsed.tzinfo is None:
            return _to_utc(parsed, zone)
        return parsed.astimezone(UTC)
    except OverflowError:
        return None


def from_epoch_millis(millis: int) -> datetime | None:
    """Return the UTC instant of a count of milliseconds since 1970-01-01 UTC.

    Returns:
        The instant, or None when the count is negative or past year 9999.
    """
    if millis < 0 or millis > _MAX_EPOCH_MILLIS:
        return None
    return _EPOCH + timedelta(milliseconds=millis)


def read_iso_field(
    text: str | None, field: str, zone: tzinfo, warnings: list[str]
) -> datetime | None:
    """Parse an optional ISO 8601 field, adding a warning when it is present but invalid.

    Args:
        text: The field's value, or None when the source left it out.
        field: The field name, for the warning.
        zone: Zone applied when the value carries no offset.
        warnings: Receives the warning.

    Returns:
        The instant in UTC, or None.
    """
    if text is None or not text.strip():
        return None
    value = parse_iso_datetime(text, zone)
    if value is None:
        warnings.append(f"invalid {field} {text[:40]!r}; expected an ISO 8601 timestamp")
    return value
