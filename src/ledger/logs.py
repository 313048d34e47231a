"""Logging setup of the ledger's long-running commands.

Lines are JSON objects by default (one per record, via ``python-json-logger``)
or human-readable text. Every line carries the ids passed in ``extra=`` as
fields, and the trace and span ids of the span that was current when the
record was made, so that a log line leads to its trace.

Code never logs a destination number, but as defense in depth
:class:`PhoneNumberFilter` masks anything that looks like one (E.164 with its
``+``, or a bare run of 11 to 15 digits) in the message, its arguments, the
extra fields and the exception text, keeping the last two digits.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, Literal, TextIO

from pythonjsonlogger.json import JsonFormatter

from ledger.telemetry import current_trace_ids

__all__ = ["PhoneNumberFilter", "TraceContextFilter", "configure_logging", "mask_phone_numbers"]

LogFormat = Literal["json", "text"]

_PHONE = re.compile(
    # '+', a first digit, then 6 to 14 more digits with at most one space, dot,
    # dash or bracket between two digits.
    r"\+[1-9](?:[\s.()-]?\d){6,14}(?!\d)"
    # Or 11 to 15 digits alone: international numbers written without the '+'.
    r"|(?<![\w.+-])\d{11,15}(?![\w])"
)

# Attributes every LogRecord has; anything else came from ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}

_HANDLER_NAME = "smsledger"


def _mask(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    prefix = "+" if match.group(0).startswith("+") else ""
    return f"{prefix}{'x' * (len(digits) - 2)}{digits[-2:]}"


def mask_phone_numbers(text: str) -> str:
    """Return ``text`` with every phone-number-like sequence masked but its last two digits."""
    return _PHONE.sub(_mask, text)


class PhoneNumberFilter(logging.Filter):
    """Masks phone-number-like text in a record before any formatter sees it.

    The record is changed in place: the message is formatted with its
    arguments, and the exception is rendered to ``exc_text``, both masked.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the record and let it through."""
        message = record.getMessage()
        record.msg = mask_phone_numbers(message)
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRIBUTES and isinstance(value, str):
                setattr(record, key, mask_phone_numbers(value))
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = mask_phone_numbers(record.exc_text)
        return True


class TraceContextFilter(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` of the current span (absent outside a span)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach the ids and let the record through."""
        ids = current_trace_ids()
        if ids is not None:
            record.trace_id, record.span_id = ids
        return True


class _TextFormatter(logging.Formatter):
    """``time level logger message key=value ...`` with the extra fields appended."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {
            key: value
            for key, value in record.__dict__.items()
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_")
        }
        if not fields:
            return line
        head, newline, tail = line.partition("\n")
        extras = " ".join(f"{key}={_text(value)}" for key, value in fields.items())
        return f"{head} {extras}{newline}{tail}"


def _text(value: Any) -> str:
    text = str(value)
    return repr(text) if not text or any(c.isspace() for c in text) else text


def configure_logging(
    log_format: LogFormat = "json", level: str = "INFO", stream: TextIO | None = None
) -> logging.Handler:
    """Send every logger's records to ``stream`` (stderr by default) in ``log_format``.

    Calling it again replaces the handler it installed before.

    Returns:
        The installed handler.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(TraceContextFilter())
    handler.addFilter(PhoneNumberFilter())
    formatter: logging.Formatter
    if log_format == "json":
        formatter = JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )
    else:
        formatter = _TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
