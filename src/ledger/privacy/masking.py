"""Masking of number-like text in messages that echo what a caller sent."""

from __future__ import annotations

import re

__all__ = ["mask_digit_runs"]

# Seven or more digits, optionally with one separator (space, dot, dash,
# bracket, or a URL-encoded '+') between two of them: long enough for any
# phone number with or without its country code.
_DIGIT_RUN = re.compile(r"\d(?:(?:[\s.()-]|%2[Bb])?\d){6,}")


def _mask(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(c.isdigit() for c in text)
    return "x" * (digits - 2) + text[-2:]


def mask_digit_runs(text: str) -> str:
    """Return ``text`` with every run of seven or more digits masked but its last two.

    Error messages and parser warnings quote receipt fields, which may hold a
    recipient's number in any form; this keeps them free of full numbers
    (numeric carrier ids are masked too, as a precaution).
    """
    return _DIGIT_RUN.sub(_mask, text)
