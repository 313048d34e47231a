"""Independent verifier of the ledger's hash chains, using only the standard library.

It reads the stored events straight from the database and recomputes every
hash from the stored fields, without importing the ledger, so an auditor can
check a copy of the database with code they can read in one sitting.

Usage:
    python tools/verify_chain.py sqlite PATH_TO_LEDGER_DB
    python tools/verify_chain.py postgresql "postgresql://USER@HOST/DB" [SCHEMA]

PostgreSQL needs psycopg (3). Exits with status 1 when any link is broken.
See docs/audit.md for the rules this implements.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

UNHASHED = {"hash", "trace_context", "originator_topic", "timestamp"}


def decode(value: Any) -> Any:
    """Undo eventsourcing's type tags and write values in their canonical form."""
    if isinstance(value, dict):
        if set(value) == {"_type_", "_data_"}:
            kind, data = value["_type_"], value["_data_"]
            if kind == "datetime_iso":
                moment = datetime.fromisoformat(data).astimezone(UTC)
                return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
            if kind == "b64":
                return data  # already standard base64
            if kind == "uuid_hex":
                return str(__import__("uuid").UUID(hex=data))
            raise ValueError(f"unexpected stored type {kind!r}")
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def record_of(originator_id: str, version: int, topic: str, state: bytes) -> tuple[str, bytes]:
    """Return an event's stored hash and the canonical bytes of its hashed record."""
    fields = json.loads(state)
    stored_hash = fields["hash"]
    record = {k: decode(v) for k, v in fields.items() if k not in UNHASHED}
    record["aggregate_id"] = originator_id
    record["version"] = version
    record["type"] = topic.rsplit(".", 1)[-1]
    record["recorded_at"] = decode(fields["timestamp"])
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return stored_hash, canonical.encode("utf-8")


def rows_sqlite(path: str) -> Iterator[tuple[int, str, int, str, bytes]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        yield from conn.execute(
            "SELECT rowid, originator_id, originator_version, topic, state "
            "FROM stored_events ORDER BY rowid"
        )


def rows_postgres(url: str, schema: str) -> Iterator[tuple[int, str, int, str, bytes]]:
    import psycopg  # only needed for PostgreSQL

    with psycopg.connect(url) as conn, conn.cursor(name="verify") as cursor:
        cursor.execute(
            f'SELECT notification_id, originator_id, originator_version, topic, state '
            f'FROM "{schema}".ledger_events ORDER BY notification_id'
        )
        for position, originator, version, topic, state in cursor:
            yield position, str(originator), version, topic, bytes(state)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] not in ("sqlite", "postgresql"):
        print(__doc__, file=sys.stderr)
        return 2
    rows = rows_sqlite(argv[2]) if argv[1] == "sqlite" else rows_postgres(
        argv[2], argv[3] if len(argv) > 3 else "public"
    )
    heads: dict[str, tuple[int, str]] = {}
    events = broken = 0
    for position, originator, version, topic, state in rows:
        aggregate_id = str(__import__("uuid").UUID(originator))
        events += 1
        last_version, last_hash = heads.get(aggregate_id, (0, "0" * 64))
        stored_hash, canonical = record_of(aggregate_id, version, topic, state)
        expected = hashlib.sha256(bytes.fromhex(last_hash) + canonical).hexdigest()
        if version != last_version + 1 or expected != stored_hash:
            broken += 1
            reason = "version gap" if version != last_version + 1 else "hash mismatch"
            print(f"BROKEN position {position} message {aggregate_id} version {version}: {reason}")
        heads[aggregate_id] = (version, stored_hash)
    print(f"{events} events of {len(heads)} messages, {broken} broken link(s)")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
