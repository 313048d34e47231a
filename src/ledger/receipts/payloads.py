"""Decoding and redaction of webhook payloads: URL-encoded forms and JSON.

Form redaction works on the received bytes pair by pair, so every pair it
does not redact stays byte-identical. JSON bodies are re-serialized (compact,
UTF-8) only when a field was redacted; otherwise the received bytes are kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote_plus, unquote_plus

from ledger.errors import ReceiptParseError

__all__ = [
    "BODY_FIELDS",
    "REDACTION_MARKER",
    "FormFields",
    "decode_form",
    "dump_json",
    "is_json_body",
    "json_object",
    "json_text",
    "load_json_object",
    "redact_form",
    "redact_json",
    "redacted_json_body",
]

REDACTION_MARKER = "[redacted]"

# Names (compared case-insensitively) of fields that carry message text in
# webhooks: Twilio `Body`, Jasmin and Vonage `text`, Plivo `Text`, and the
# usual spellings of custom dlr-url templates.
BODY_FIELDS = frozenset(
    {
        "body",
        "text",
        "content",
        "message_body",
        "messagebody",
        "message_text",
        "messagetext",
        "msgtext",
        "sms_text",
        "smstext",
    }
)

# More pairs than any known webhook sends; a larger body is rejected.
_MAX_FORM_FIELDS = 500

_QUOTED_MARKER = quote_plus(REDACTION_MARKER).encode("ascii")


class FormFields:
    """Fields of a URL-encoded form, looked up by name.

    The first occurrence of a repeated name wins. Lookups try the exact name
    first and then ignore case, because gateways differ in capitalization.
    """

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._exact: dict[str, str] = {}
        self._folded: dict[str, str] = {}
        for name, value in pairs:
            self._exact.setdefault(name, value)
            self._folded.setdefault(name.casefold(), value)

    def get(self, *names: str) -> str | None:
        """Return the value of the first of ``names`` present in the form."""
        for name in names:
            value = self._exact.get(name)
            if value is not None:
                return value
        for name in names:
            value = self._folded.get(name.casefold())
            if value is not None:
                return value
        return None

    def __len__(self) -> int:
        return len(self._exact)


def _query_start(body: bytes) -> int:
    # A GET callback may be stored with its path: start after the "?".
    question = body.find(b"?")
    if question != -1 and b"=" not in body[:question]:
        return question + 1
    return 0


def decode_form(body: bytes, fmt: str) -> FormFields:
    """Decode a query string or ``application/x-www-form-urlencoded`` body.

    Args:
        body: The received bytes; a leading path and ``?`` are skipped.
        fmt: Receipt format, for error messages.

    Returns:
        The form fields.

    Raises:
        ReceiptParseError: The body has no fields or too many.
    """
    text = body[_query_start(body) :].decode("utf-8", "replace").strip()
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="replace",
            max_num_fields=_MAX_FORM_FIELDS,
        )
    except ValueError as exc:
        raise ReceiptParseError(fmt, "body", text, f"form has too many fields: {exc}") from exc
    fields = FormFields(pairs)
    if len(fields) == 0:
        raise ReceiptParseError(fmt, "body", text, "no form fields found")
    return fields


def redact_form(
    body: bytes,
    rewriters: Mapping[str, Callable[[str], str | None]] | None = None,
) -> tuple[bytes, tuple[str, ...]]:
    """Remove message text from a URL-encoded body.

    Values of :data:`BODY_FIELDS` are replaced by :data:`REDACTION_MARKER`.
    A field named in ``rewriters`` (case-insensitively) is decoded and passed
    to its function, which returns the new value, or None to keep the pair as
    received.

    Args:
        body: The received bytes.
        rewriters: Functions that redact part of a value, such as the
            ``text:`` part of a receipt carried in a Kannel reply field.

    Returns:
        The redacted body and the names of the fields that changed.
    """
    folded_rewriters = {name.casefold(): rewrite for name, rewrite in (rewriters or {}).items()}
    start = _query_start(body)
    pieces = body[start:].split(b"&")
    redacted: list[str] = []
    for index, piece in enumerate(pieces):
        raw_name, separator, raw_value = piece.partition(b"=")
        if not separator or not raw_value.strip():
            continue
        name = unquote_plus(raw_name.decode("utf-8", "replace")).strip()
        folded = name.casefold()
        rewrite = folded_rewriters.get(folded)
        if rewrite is not None:
            new_value = rewrite(unquote_plus(raw_value.decode("utf-8", "replace")))
            if new_value is None:
                continue
            pieces[index] = raw_name + b"=" + quote_plus(new_value).encode("utf-8")
        elif folded in BODY_FIELDS:
            pieces[index] = raw_name + b"=" + _QUOTED_MARKER
        else:
            continue
        if name not in redacted:
            redacted.append(name)
    if not redacted:
        return body, ()
    return body[:start] + b"&".join(pieces), tuple(redacted)


def is_json_body(body: bytes, content_type: str) -> bool:
    """Tell whether a webhook body is JSON, from its content type or first character."""
    if "json" in content_type.lower():
        return True
    return body.lstrip()[:1] in (b"{", b"[")


def load_json_object(body: bytes | str, fmt: str) -> dict[str, Any]:
    """Decode a JSON body whose top level must be an object.

    Raises:
        ReceiptParseError: The body is not JSON or not an object.
    """
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as exc:
        preview = body[:64] if isinstance(body, str) else body[:64].decode("utf-8", "replace")
        raise ReceiptParseError(fmt, "body", preview, f"invalid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ReceiptParseError(
            fmt, "body", type(value).__name__, "top-level JSON value must be an object"
        )
    return value


def json_text(obj: Mapping[str, Any], key: str) -> str | None:
    """Return a JSON member as text: strings as they are, integers in decimal.

    Booleans, floats, objects, arrays and null give None.
    """
    value = obj.get(key)
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if -(10**18) < value < 10**18 else None
    return None


def json_object(obj: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    """Return a JSON member when it is an object, else None."""
    value = obj.get(key)
    return value if isinstance(value, dict) else None


def redact_json(value: Any) -> tuple[str, ...]:
    """Replace string values of :data:`BODY_FIELDS` members, at any depth, in place.

    Returns:
        The member names that were redacted, without repeats.
    """
    redacted: list[str] = []
    stack: list[Any] = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, member in node.items():
                if isinstance(member, str) and member and key.casefold() in BODY_FIELDS:
                    node[key] = REDACTION_MARKER
                    if key not in redacted:
                        redacted.append(key)
                elif isinstance(member, (dict, list)):
                    stack.append(member)
        elif isinstance(node, list):
            stack.extend(item for item in node if isinstance(item, (dict, list)))
    return tuple(redacted)


def dump_json(value: Any, fmt: str) -> bytes:
    """Serialize a redacted JSON value as compact UTF-8.

    Raises:
        ReceiptParseError: The value is nested too deeply to serialize.
    """
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate from a "\ud800" escape has no UTF-8 form.
            return json.dumps(value, separators=(",", ":")).encode("ascii")
    except (RecursionError, ValueError) as exc:
        raise ReceiptParseError(fmt, "body", "", f"JSON cannot be re-serialized: {exc}") from exc


def redacted_json_body(body: bytes, document: Any, fmt: str) -> tuple[bytes, tuple[str, ...]]:
    """Return the stored form of a JSON body and the names of redacted members.

    The received bytes are returned unchanged when nothing needed redaction.
    """
    redactions = redact_json(document)
    if not redactions:
        return body, ()
    return dump_json(document, fmt), redactions
