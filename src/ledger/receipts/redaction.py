"""Best-effort redaction of receipt payloads that no parser could read.

A parsed receipt has its message text removed by its format's parser. A
payload that fails to parse is kept for a reprocess, and must lose its text
too, without knowing its layout for sure:

* a JSON object or array loses the string values of the usual body members
  (:data:`~ledger.receipts.payloads.BODY_FIELDS`, and ``message``, ``msg``,
  ``sms`` and ``short_message``) and, in any other string,
  the content after an SMPP ``text:`` key;
* any other payload is first treated as a URL-encoded form: it loses the
  same body fields, and the content after ``text:`` in any other value;
* then as receipt text: everything after a ``text:`` key still in the bytes
  (SMPP text, or a binary PDU) is replaced by the redaction marker.

Payloads that match none of these stay as they are. The names returned follow
the parsers' names: a field, ``<field>.text`` for the ``text:`` part of a
field, and ``text`` for the ``text:`` part of the payload itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

from ledger.errors import ReceiptParseError
from ledger.receipts.payloads import (
    BODY_FIELDS,
    REDACTION_MARKER,
    dump_json,
    is_json_body,
    redact_form,
    redact_json,
)
from ledger.receipts.smpp_text import parse_receipt_text, redact_receipt_text

__all__ = ["redact_unparsable"]

_FORMAT = "unparsable"

# Besides the body fields that parsers redact: names that some gateways give
# the message text, and that a payload of unknown layout may use for it.
_EXTRA_BODY_FIELDS = frozenset({"message", "msg", "sms", "short_message"})


def _redact_text_key(value: str) -> str | None:
    raw = value.encode("utf-8", "surrogatepass")
    redacted = redact_receipt_text(raw, parse_receipt_text(raw).text_start)
    return None if redacted is None else redacted.decode("utf-8", "replace")


def _whole_value(value: str) -> str:
    return REDACTION_MARKER


def _redact_json(body: bytes, document: Any) -> tuple[bytes, tuple[str, ...]] | None:
    names = list(redact_json(document))
    stack: list[Any] = [document]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, member in list(items):
            if isinstance(member, str) and member and str(key).casefold() in _EXTRA_BODY_FIELDS:
                node[key] = REDACTION_MARKER
                if key not in names:
                    names.append(key)
            elif isinstance(member, str):
                redacted = _redact_text_key(member)
                if redacted is not None:
                    node[key] = redacted
                    name = f"{key}.text" if isinstance(node, dict) else "text"
                    if name not in names:
                        names.append(name)
            elif isinstance(member, (dict, list)):
                stack.append(member)
    if not names:
        return body, ()
    try:
        return dump_json(document, _FORMAT), tuple(names)
    except ReceiptParseError:
        return None


def _form_fields_with_text(body: bytes) -> list[str]:
    """Return the names of form fields whose value contains a ``text:`` key."""
    question = body.find(b"?")
    if question != -1 and b"=" not in body[:question]:
        body = body[question + 1 :]
    names = []
    for piece in body.split(b"&"):
        raw_name, separator, raw_value = piece.partition(b"=")
        if not separator:
            continue
        value = unquote_plus(raw_value.decode("utf-8", "replace"))
        if parse_receipt_text(value.encode("utf-8")).text_start >= 0:
            names.append(unquote_plus(raw_name.decode("utf-8", "replace")).strip())
    return names


def redact_unparsable(body: bytes, content_type: str) -> tuple[bytes, tuple[str, ...]]:
    """Remove what may be message text from a payload that could not be parsed.

    Args:
        body: The bytes received.
        content_type: Their HTTP content type, if any.

    Returns:
        The payload as it may be stored, and the names of the parts removed.
    """
    if is_json_body(body, content_type):
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            document = None
        if isinstance(document, (dict, list)):
            redacted = _redact_json(body, document)
            if redacted is not None:
                return redacted
    # A body field loses its whole value, even where it contains a text: key.
    text_fields = [
        name
        for name in _form_fields_with_text(body)
        if name.casefold() not in BODY_FIELDS | _EXTRA_BODY_FIELDS
    ]
    rewriters: dict[str, Callable[[str], str | None]] = {
        name: _whole_value for name in _EXTRA_BODY_FIELDS
    }
    rewriters.update(dict.fromkeys(text_fields, _redact_text_key))
    body, names = redact_form(body, rewriters)
    folded = {name.casefold() for name in text_fields}
    redactions = [f"{name}.text" if name.casefold() in folded else name for name in names]
    redacted_text = redact_receipt_text(body, parse_receipt_text(body).text_start)
    if redacted_text is not None:
        body = redacted_text
        if "text" not in redactions:
            redactions.append("text")
    return body, tuple(redactions)
