"""Tamper-evident hashing of events: canonical encoding and the hash chain.

Each event's hash is ``SHA-256(previous_hash || canonical_json(record))``, where
``previous_hash`` is the 32-byte digest of the message's previous event (32 zero
bytes for the first event) and ``record`` holds every stored field of the event
plus its aggregate id, version and type name. The canonical JSON form is RFC 8785
(JCS) for the value types events use: object keys sorted, no whitespace, UTF-8,
no floats. Byte strings are written as standard base64 text and timestamps as
``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC. docs/audit.md describes the encoding for
independent verifiers.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

__all__ = [
    "GENESIS_HASH",
    "canonical_json",
    "chain_hash",
    "event_id",
    "event_id_text",
    "format_timestamp",
]

GENESIS_HASH = "0" * 64
"""The previous-hash value of a message's first event, as hex."""


def format_timestamp(value: datetime) -> str:
    """Format an aware datetime as UTC with microseconds and a ``Z`` suffix."""
    if value.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone")
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _encode_other(value: Any) -> Any:
    """Encode the non-JSON types events hold; called by the JSON encoder."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, timedelta):
        return round(value.total_seconds() * 1_000_000)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"cannot hash a value of type {type(value).__name__}")


_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS


def canonical_json(record: Mapping[str, Any]) -> bytes:
    """Encode a record as canonical JSON bytes (see the module docstring).

    orjson writes the same bytes as ``json.dumps(record, sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)`` for the types events hold
    (a test checks this), several times faster.
    """
    try:
        return orjson.dumps(record, option=_OPTIONS, default=_encode_other)
    except orjson.JSONEncodeError as error:
        raise TypeError(str(error)) from error


def chain_hash(previous_hash: str, record: Mapping[str, Any]) -> str:
    """Return the hex hash of ``record`` chained to ``previous_hash`` (hex)."""
    digest = hashlib.sha256(bytes.fromhex(previous_hash))
    digest.update(canonical_json(record))
    return digest.hexdigest()


def event_id(aggregate_id: uuid.UUID, version: int) -> uuid.UUID:
    """Return the deterministic id of an event: UUIDv5(aggregate id, version)."""
    return uuid.uuid5(aggregate_id, str(version))


def event_id_text(aggregate_id: uuid.UUID, version: int) -> str:
    """Return ``str(event_id(aggregate_id, version))``, computed without uuid objects.

    The relay writes one per published event; building it from the SHA-1
    digest directly costs a third of ``uuid.uuid5``.
    """
    digest = bytearray(hashlib.sha1(aggregate_id.bytes + str(version).encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
