"""SQL of the side tables, for SQLite and PostgreSQL.

Both databases get the same tables and statements; only the parameter style,
the binary column type and how a list parameter is passed differ (see
:class:`Dialect`). Ids are stored as text and times as epoch microseconds.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ledger.storage.records import (
    CarrierIdRow,
    ExpiryRow,
    KeptReceipt,
    ParkedReceipt,
    RequestRecord,
    SideWrites,
    UnparsedReceipt,
)

__all__ = ["POSTGRES", "SQLITE", "UNPARSED_REDACTIONS_COLUMN", "Dialect", "SideTables"]

UNPARSED_REDACTIONS_COLUMN = "redactions TEXT NOT NULL DEFAULT '[]'"
"""Definition of the unparsed table's last column, which tables created before
it lack; :meth:`SideTables.create_statements` adds it to those."""


class Cursor(Protocol):
    """The part of a DB-API cursor the side tables use."""

    def execute(self, query: Any, params: Any = ..., /) -> Any: ...

    def executemany(self, query: Any, params_seq: Any, /) -> Any: ...

    def fetchall(self) -> Any: ...


@dataclass(frozen=True)
class Dialect:
    """Differences between the two SQL databases the ledger supports."""

    name: str
    placeholder: str
    blob_type: str
    # PostgreSQL takes a list as one array parameter; SQLite needs one
    # placeholder per element.
    array_parameters: bool

    def sql(self, statement: str) -> str:
        """Return ``statement`` with ``%s`` placeholders in this dialect's style."""
        return statement if self.placeholder == "%s" else statement.replace("%s", self.placeholder)

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """Return a condition "column is one of values" and its parameters."""
        if self.array_parameters:
            return f"{column} = ANY(%s)", [list(values)]
        marks = ",".join(["%s"] * len(values))
        return f"{column} IN ({marks})", list(values)


POSTGRES = Dialect("postgresql", "%s", "BYTEA", array_parameters=True)
SQLITE = Dialect("sqlite", "?", "BLOB", array_parameters=False)

# SQLite allows 32,766 parameters per statement; stay well below it.
_CHUNK = 500


def _chunks(values: Sequence[Any]) -> list[Sequence[Any]]:
    return [values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK)]


class SideTables:
    """Statements of the side tables for one dialect and table prefix.

    Args:
        dialect: The database dialect.
        prefix: Prefix of every table name, including a schema qualifier
            where one is needed, such as ``"ledger_"`` or ``'"s1".ledger_'``.
    """

    def __init__(self, dialect: Dialect, prefix: str) -> None:
        self.dialect = dialect
        self.prefix = prefix
        t = prefix
        self.requests = f"{t}requests"
        self.carrier_ids = f"{t}carrier_ids"
        self.parked = f"{t}parked"
        self.duplicates = f"{t}duplicates"
        self.expiry = f"{t}expiry"
        self.subject_keys = f"{t}subject_keys"
        self.unparsed = f"{t}unparsed"
        self.subject_messages = f"{t}subject_messages"
        self.profile_digests = f"{t}profile_digests"

    # ----------------------------------------------------------------- schema

    def create_statements(self) -> list[str]:
        """Return the DDL that creates every side table and index if missing."""
        blob = self.dialect.blob_type
        index = self._index_name
        return [
            f"CREATE TABLE IF NOT EXISTS {self.requests} ("
            "tenant TEXT NOT NULL, request_id TEXT NOT NULL, fingerprint TEXT NOT NULL, "
            "result TEXT NOT NULL, created_at BIGINT NOT NULL, "
            "PRIMARY KEY (tenant, request_id))",
            f"CREATE INDEX IF NOT EXISTS {index('requests_created')} "
            f"ON {self.requests} (created_at)",
            f"CREATE TABLE IF NOT EXISTS {self.carrier_ids} ("
            "tenant TEXT NOT NULL, connection TEXT NOT NULL, canonical_id TEXT NOT NULL, "
            "aggregate_id TEXT NOT NULL, message_id TEXT NOT NULL, attempt INTEGER NOT NULL, "
            "segment INTEGER NOT NULL, accepted_at BIGINT NOT NULL, valid_until BIGINT NOT NULL, "
            "PRIMARY KEY (canonical_id, connection, tenant, aggregate_id, attempt, segment))",
            # Lets the stuck-message listing go from pending expiries to carrier ids.
            f"CREATE INDEX IF NOT EXISTS {index('carrier_ids_message')} "
            f"ON {self.carrier_ids} (aggregate_id, attempt)",
            f"CREATE TABLE IF NOT EXISTS {self.parked} ("
            "receipt_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, connection TEXT NOT NULL, "
            "canonical_id TEXT NOT NULL, fingerprint TEXT NOT NULL, received_at BIGINT NOT NULL, "
            f"report TEXT NOT NULL, raw_ciphertext {blob}, raw_key_id TEXT, "
            "duplicates BIGINT NOT NULL DEFAULT 0, "
            "UNIQUE (canonical_id, connection, tenant, fingerprint))",
            f"CREATE INDEX IF NOT EXISTS {index('parked_received')} ON {self.parked} (received_at)",
            f"CREATE TABLE IF NOT EXISTS {self.duplicates} ("
            "aggregate_id TEXT PRIMARY KEY, count BIGINT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {self.expiry} ("
            "aggregate_id TEXT PRIMARY KEY, attempt INTEGER NOT NULL, due_at BIGINT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {index('expiry_due')} ON {self.expiry} (due_at)",
            f"CREATE TABLE IF NOT EXISTS {self.subject_keys} ("
            "key_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, subject_index TEXT UNIQUE, "
            f"wrapped_key {blob}, created_at BIGINT NOT NULL, erased_at BIGINT)",
            f"CREATE TABLE IF NOT EXISTS {self.unparsed} ("
            "receipt_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, connection TEXT NOT NULL, "
            "format TEXT NOT NULL, content_type TEXT NOT NULL, received_at BIGINT NOT NULL, "
            f"error TEXT NOT NULL, body_sha256 TEXT NOT NULL, raw_ciphertext {blob} NOT NULL, "
            "raw_key_id TEXT NOT NULL, metadata TEXT NOT NULL, source TEXT NOT NULL, "
            f"{UNPARSED_REDACTIONS_COLUMN}, "
            "UNIQUE (tenant, connection, body_sha256))",
            # Which messages hold a subject's data, so that an erasure finds them
            # without reading the log.
            f"CREATE TABLE IF NOT EXISTS {self.subject_messages} ("
            "key_id TEXT NOT NULL, aggregate_id TEXT NOT NULL, "
            "PRIMARY KEY (key_id, aggregate_id))",
            # The digest of the configuration a node started with last, by
            # name ("connections"), so that a node started with another one is
            # noticed.
            f"CREATE TABLE IF NOT EXISTS {self.profile_digests} ("
            "name TEXT PRIMARY KEY, digest TEXT NOT NULL, recorded_at BIGINT NOT NULL)",
            *self._added_columns(),
        ]

    def _added_columns(self) -> list[str]:
        """Return the DDL that adds columns newer than their table to existing tables.

        PostgreSQL looks the column up first, so that a start where it exists
        takes no lock on the table; SQLite gets them from :meth:`add_columns`.
        """
        if self.dialect.name != "postgresql":
            return []
        return [
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_attribute "
            f"WHERE attrelid = '{self.unparsed}'::regclass AND attname = 'redactions' "
            "AND NOT attisdropped) THEN "
            f"ALTER TABLE {self.unparsed} ADD COLUMN {UNPARSED_REDACTIONS_COLUMN}; "
            "END IF; END $$"
        ]

    def add_columns(self, cursor: Cursor) -> None:
        """Add columns newer than their table to an existing SQLite table."""
        cursor.execute(f"PRAGMA table_info({self.unparsed})")
        if not any(row["name"] == "redactions" for row in cursor.fetchall()):
            cursor.execute(f"ALTER TABLE {self.unparsed} ADD COLUMN {UNPARSED_REDACTIONS_COLUMN}")

    def _index_name(self, suffix: str) -> str:
        # Index names take no schema qualifier; they live in the table's schema.
        bare = self.prefix.rsplit(".", 1)[-1]
        return f"{bare}{suffix}_idx"

    # ----------------------------------------------------------------- writes

    def write(self, cursor: Cursor, side: SideWrites) -> None:
        """Execute every write of ``side`` on ``cursor`` (inside the caller's transaction)."""
        sql = self.dialect.sql
        if side.requests:
            cursor.executemany(
                sql(
                    f"INSERT INTO {self.requests} "
                    "(tenant, request_id, fingerprint, result, created_at) "
                    "VALUES (%s, %s, %s, %s, %s)"
                ),
                [
                    (r.tenant, r.request_id, r.fingerprint, r.result, r.created_at)
                    for r in side.requests
                ],
            )
        if side.subject_keys:
            # No ON CONFLICT: a subject that got a key from another writer first
            # must fail this transaction, so that the batch is retried with that key.
            cursor.executemany(
                sql(
                    f"INSERT INTO {self.subject_keys} "
                    "(key_id, tenant, subject_index, wrapped_key, created_at) "
                    "VALUES (%s, %s, %s, %s, %s)"
                ),
                [
                    (k.key_id, k.tenant, k.subject_index, k.wrapped_key, k.created_at)
                    for k in side.subject_keys
                ],
            )
        if side.carrier_ids:
            cursor.executemany(
                sql(
                    f"INSERT INTO {self.carrier_ids} (tenant, connection, canonical_id, "
                    "aggregate_id, message_id, attempt, segment, accepted_at, valid_until) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
                ),
                [
                    (
                        r.tenant,
                        r.connection,
                        r.canonical_id,
                        str(r.aggregate_id),
                        r.message_id,
                        r.attempt,
                        r.segment,
                        r.accepted_at,
                        r.valid_until,
                    )
                    for r in side.carrier_ids
                ],
            )
        if side.parked:
            cursor.executemany(
                sql(
                    f"INSERT INTO {self.parked} (receipt_id, tenant, connection, canonical_id, "
                    "fingerprint, received_at, report, raw_ciphertext, raw_key_id) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
                ),
                [
                    (
                        str(p.receipt_id),
                        p.tenant,
                        p.connection,
                        p.canonical_id,
                        p.fingerprint,
                        p.received_at,
                        p.report,
                        p.raw_ciphertext,
                        p.raw_key_id,
                    )
                    for p in side.parked
                ],
            )
        if side.parked_duplicates:
            cursor.executemany(
                sql(f"UPDATE {self.parked} SET duplicates = duplicates + %s WHERE receipt_id = %s"),
                [(n, str(i)) for i, n in side.parked_duplicates.items()],
            )
        if side.unparked:
            cursor.executemany(
                sql(f"DELETE FROM {self.parked} WHERE receipt_id = %s"),
                [(str(i),) for i in side.unparked],
            )
        if side.duplicates:
            cursor.executemany(
                sql(
                    f"INSERT INTO {self.duplicates} AS d (aggregate_id, count) VALUES (%s, %s) "
                    "ON CONFLICT (aggregate_id) DO UPDATE SET count = d.count + excluded.count"
                ),
                [(str(k), n) for k, n in side.duplicates.items()],
            )
        if side.expiry_set:
            cursor.executemany(
                sql(
                    f"INSERT INTO {self.expiry} (aggregate_id, attempt, due_at) "
                    "VALUES (%s, %s, %s) ON CONFLICT (aggregate_id) "
                    "DO UPDATE SET attempt = excluded.attempt, due_at = excluded.due_at"
                ),
                [(str(r.aggregate_id), r.attempt, r.due_at) for r in side.expiry_set],
            )
        if side.unparsed:
            cursor.executemany(
                sql(
                    f"INSERT INTO {self.unparsed} (receipt_id, tenant, connection, format, "
                    "content_type, received_at, error, body_sha256, raw_ciphertext, raw_key_id, "
                    "metadata, source, redactions) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING"
                ),
                [
                    (
                        str(u.receipt_id),
                        u.tenant,
                        u.connection,
                        u.format,
                        u.content_type,
                        u.received_at,
                        u.error,
                        u.body_sha256,
                        u.raw_ciphertext,
                        u.raw_key_id,
                        u.metadata,
                        u.source,
                        json.dumps(list(u.redactions)),
                    )
                    for u in side.unparsed
                ],
            )
        if side.unparsed_cleared:
            cursor.executemany(
                sql(f"DELETE FROM {self.unparsed} WHERE receipt_id = %s"),
                [(str(i),) for i in side.unparsed_cleared],
            )
        if side.expiry_cleared:
            cursor.executemany(
                sql(f"DELETE FROM {self.expiry} WHERE aggregate_id = %s"),
                [(str(i),) for i in side.expiry_cleared],
            )
        if side.subject_messages:
            cursor.executemany(
                sql(
                    f"INSERT INTO {self.subject_messages} (key_id, aggregate_id) "
                    "VALUES (%s, %s) ON CONFLICT DO NOTHING"
                ),
                [(key_id, str(aggregate_id)) for key_id, aggregate_id in side.subject_messages],
            )
        if side.erased_keys:
            # Crypto-shredding: the wrapped key and the blind index go, the
            # erasure time stays.
            cursor.executemany(
                sql(
                    f"UPDATE {self.subject_keys} SET wrapped_key = NULL, subject_index = NULL, "
                    "erased_at = %s WHERE key_id = %s"
                ),
                [(erased_at, key_id) for key_id, erased_at in side.erased_keys],
            )

    # ------------------------------------------------------------------ reads

    def select_requests(
        self, cursor: Cursor, tenant_request_ids: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], RequestRecord]:
        """Return the stored request ids among ``(tenant, request_id)`` pairs."""
        wanted = set(tenant_request_ids)
        found: dict[tuple[str, str], RequestRecord] = {}
        for chunk in _chunks(sorted({r for _, r in wanted})):
            condition, params = self.dialect.in_list("request_id", chunk)
            cursor.execute(
                self.dialect.sql(
                    "SELECT tenant, request_id, fingerprint, result, created_at "
                    f"FROM {self.requests} WHERE {condition}"
                ),
                params,
            )
            for row in cursor.fetchall():
                key = (row["tenant"], row["request_id"])
                if key in wanted:
                    found[key] = RequestRecord(
                        tenant=row["tenant"],
                        request_id=row["request_id"],
                        fingerprint=row["fingerprint"],
                        result=row["result"],
                        created_at=row["created_at"],
                    )
        return found

    def select_carrier_ids(
        self, cursor: Cursor, canonical_ids: Collection[str]
    ) -> list[CarrierIdRow]:
        """Return every mapping of the given canonical ids, on any connection."""
        rows: list[CarrierIdRow] = []
        for chunk in _chunks(sorted(set(canonical_ids))):
            condition, params = self.dialect.in_list("canonical_id", chunk)
            cursor.execute(
                self.dialect.sql(
                    "SELECT tenant, connection, canonical_id, aggregate_id, message_id, attempt, "
                    f"segment, accepted_at, valid_until FROM {self.carrier_ids} WHERE {condition}"
                ),
                params,
            )
            rows.extend(
                CarrierIdRow(
                    tenant=row["tenant"],
                    connection=row["connection"],
                    canonical_id=row["canonical_id"],
                    aggregate_id=uuid.UUID(row["aggregate_id"]),
                    message_id=row["message_id"],
                    attempt=row["attempt"],
                    segment=row["segment"],
                    accepted_at=row["accepted_at"],
                    valid_until=row["valid_until"],
                )
                for row in cursor.fetchall()
            )
        return rows

    def select_parked(self, cursor: Cursor, canonical_ids: Collection[str]) -> list[ParkedReceipt]:
        """Return parked receipts of the given canonical ids, oldest first."""
        rows: list[ParkedReceipt] = []
        for chunk in _chunks(sorted(set(canonical_ids))):
            condition, params = self.dialect.in_list("canonical_id", chunk)
            cursor.execute(self.dialect.sql(self._select_parked(condition)), params)
            rows.extend(_parked(row) for row in cursor.fetchall())
        rows.sort(key=lambda p: (p.received_at, str(p.receipt_id)))
        return rows

    def list_parked(
        self, cursor: Cursor, tenant: str, received_before: int, limit: int
    ) -> list[ParkedReceipt]:
        """Return a tenant's parked receipts that arrived before a time, oldest first."""
        cursor.execute(
            self.dialect.sql(
                self._select_parked("tenant = %s AND received_at < %s")
                + " ORDER BY received_at, receipt_id LIMIT %s"
            ),
            [tenant, received_before, limit],
        )
        return [_parked(row) for row in cursor.fetchall()]

    def _select_parked(self, condition: str) -> str:
        return (
            "SELECT receipt_id, tenant, connection, canonical_id, fingerprint, received_at, "
            f"report, raw_ciphertext, raw_key_id, duplicates FROM {self.parked} WHERE {condition}"
        )

    def select_duplicates(
        self, cursor: Cursor, aggregate_ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, int]:
        """Return the duplicate-receipt counters of the given messages."""
        found: dict[uuid.UUID, int] = {}
        for chunk in _chunks(sorted(str(i) for i in aggregate_ids)):
            condition, params = self.dialect.in_list("aggregate_id", chunk)
            cursor.execute(
                self.dialect.sql(
                    f"SELECT aggregate_id, count FROM {self.duplicates} WHERE {condition}"
                ),
                params,
            )
            for row in cursor.fetchall():
                found[uuid.UUID(row["aggregate_id"])] = row["count"]
        return found

    def select_due_expiries(self, cursor: Cursor, now: int, limit: int) -> list[ExpiryRow]:
        """Return attempts whose expiry deadline has passed, earliest first."""
        cursor.execute(
            self.dialect.sql(
                f"SELECT aggregate_id, attempt, due_at FROM {self.expiry} "
                "WHERE due_at <= %s ORDER BY due_at LIMIT %s"
            ),
            [now, limit],
        )
        return [
            ExpiryRow(uuid.UUID(row["aggregate_id"]), row["attempt"], row["due_at"])
            for row in cursor.fetchall()
        ]

    def select_subject_keys_by_index(
        self, cursor: Cursor, subject_indexes: Collection[str]
    ) -> dict[str, tuple[str, bytes]]:
        """Return ``(key_id, wrapped_key)`` by subject index for subjects that have a key."""
        found: dict[str, tuple[str, bytes]] = {}
        for chunk in _chunks(sorted(set(subject_indexes))):
            condition, params = self.dialect.in_list("subject_index", chunk)
            cursor.execute(
                self.dialect.sql(
                    f"SELECT subject_index, key_id, wrapped_key FROM {self.subject_keys} "
                    f"WHERE {condition}"
                ),
                params,
            )
            for row in cursor.fetchall():
                found[row["subject_index"]] = (row["key_id"], bytes(row["wrapped_key"]))
        return found

    def select_subject_keys(
        self, cursor: Cursor, key_ids: Collection[str]
    ) -> dict[str, bytes | None]:
        """Return wrapped keys by id; an erased key maps to None, an unknown id is absent."""
        found: dict[str, bytes | None] = {}
        for chunk in _chunks(sorted(set(key_ids))):
            condition, params = self.dialect.in_list("key_id", chunk)
            cursor.execute(
                self.dialect.sql(
                    f"SELECT key_id, wrapped_key FROM {self.subject_keys} WHERE {condition}"
                ),
                params,
            )
            for row in cursor.fetchall():
                wrapped = row["wrapped_key"]
                found[row["key_id"]] = bytes(wrapped) if wrapped is not None else None
        return found

    def list_unparsed(
        self, cursor: Cursor, tenant: str, connection: str | None, limit: int
    ) -> list[UnparsedReceipt]:
        """Return a tenant's kept unparsed receipts, oldest first."""
        condition = "tenant = %s"
        params: list[Any] = [tenant]
        if connection:
            condition += " AND connection = %s"
            params.append(connection)
        cursor.execute(
            self.dialect.sql(
                "SELECT receipt_id, tenant, connection, format, content_type, received_at, error, "
                "body_sha256, raw_ciphertext, raw_key_id, metadata, source, redactions "
                f"FROM {self.unparsed} WHERE {condition} ORDER BY received_at, receipt_id LIMIT %s"
            ),
            [*params, limit],
        )
        return [
            UnparsedReceipt(
                receipt_id=uuid.UUID(row["receipt_id"]),
                tenant=row["tenant"],
                connection=row["connection"],
                format=row["format"],
                content_type=row["content_type"],
                received_at=row["received_at"],
                error=row["error"],
                body_sha256=row["body_sha256"],
                raw_ciphertext=bytes(row["raw_ciphertext"]),
                raw_key_id=row["raw_key_id"],
                metadata=row["metadata"],
                source=row["source"],
                redactions=tuple(json.loads(row["redactions"] or "[]")),
            )
            for row in cursor.fetchall()
        ]

    def insert_index_key(self, cursor: Cursor, key_id: str, wrapped: bytes, now: int) -> None:
        """Store the wrapped blind-index key unless a process stored one first."""
        cursor.execute(
            self.dialect.sql(
                f"INSERT INTO {self.subject_keys} (key_id, tenant, subject_index, wrapped_key, "
                "created_at) VALUES (%s, '', NULL, %s, %s) ON CONFLICT DO NOTHING"
            ),
            [key_id, wrapped, now],
        )

    def select_subject_key_state(
        self, cursor: Cursor, key_ids: Collection[str]
    ) -> dict[str, tuple[str, int | None]]:
        """Return ``(tenant, erased_at)`` by key id; unknown ids are absent."""
        found: dict[str, tuple[str, int | None]] = {}
        for chunk in _chunks(sorted(set(key_ids))):
            condition, params = self.dialect.in_list("key_id", chunk)
            cursor.execute(
                self.dialect.sql(
                    f"SELECT key_id, tenant, erased_at FROM {self.subject_keys} WHERE {condition}"
                ),
                params,
            )
            for row in cursor.fetchall():
                found[row["key_id"]] = (row["tenant"], row["erased_at"])
        return found

    def select_subject_messages(self, cursor: Cursor, key_id: str) -> list[uuid.UUID]:
        """Return the messages whose destination is encrypted under a subject key."""
        cursor.execute(
            self.dialect.sql(
                f"SELECT aggregate_id FROM {self.subject_messages} WHERE key_id = %s "
                "ORDER BY aggregate_id"
            ),
            [key_id],
        )
        return [uuid.UUID(row["aggregate_id"]) for row in cursor.fetchall()]

    def select_wrapped_keys_after(
        self, cursor: Cursor, after: str, limit: int
    ) -> list[tuple[str, bytes]]:
        """Return ``(key_id, wrapped_key)`` of keys not erased, by key id after ``after``."""
        cursor.execute(
            self.dialect.sql(
                f"SELECT key_id, wrapped_key FROM {self.subject_keys} "
                "WHERE key_id > %s AND wrapped_key IS NOT NULL ORDER BY key_id LIMIT %s"
            ),
            [after, limit],
        )
        return [(row["key_id"], bytes(row["wrapped_key"])) for row in cursor.fetchall()]

    def replace_wrapped_key(self, cursor: Cursor, key_id: str, old: bytes, new: bytes) -> bool:
        """Swap a wrapped key for its re-wrapped form; False if it changed meanwhile."""
        cursor.execute(
            self.dialect.sql(
                f"UPDATE {self.subject_keys} SET wrapped_key = %s "
                "WHERE key_id = %s AND wrapped_key = %s"
            ),
            [new, key_id, old],
        )
        # Read back rather than use rowcount, which eventsourcing's SQLite cursor lacks.
        cursor.execute(
            self.dialect.sql(f"SELECT wrapped_key FROM {self.subject_keys} WHERE key_id = %s"),
            [key_id],
        )
        rows = cursor.fetchall()
        return (
            bool(rows)
            and rows[0]["wrapped_key"] is not None
            and bytes(rows[0]["wrapped_key"]) == new
        )

    def select_kept_receipts(self, cursor: Cursor, tenant: str) -> list[KeptReceipt]:
        """Return every parked and unparsed receipt of a tenant, with its stored text."""
        sql = self.dialect.sql
        cursor.execute(
            sql(
                f"SELECT receipt_id, raw_ciphertext, raw_key_id, report FROM {self.parked} "
                "WHERE tenant = %s"
            ),
            [tenant],
        )
        kept = [
            KeptReceipt(
                "parked",
                uuid.UUID(row["receipt_id"]),
                bytes(row["raw_ciphertext"]) if row["raw_ciphertext"] is not None else None,
                row["raw_key_id"],
                (row["report"],),
            )
            for row in cursor.fetchall()
        ]
        cursor.execute(
            sql(
                f"SELECT receipt_id, raw_ciphertext, raw_key_id, error, metadata FROM "
                f"{self.unparsed} WHERE tenant = %s"
            ),
            [tenant],
        )
        kept.extend(
            KeptReceipt(
                "unparsed",
                uuid.UUID(row["receipt_id"]),
                bytes(row["raw_ciphertext"]),
                row["raw_key_id"],
                (row["error"], row["metadata"]),
            )
            for row in cursor.fetchall()
        )
        return kept

    def select_digest(self, cursor: Cursor, name: str) -> str | None:
        """Return the recorded digest of the configuration ``name``, or None."""
        cursor.execute(
            self.dialect.sql(f"SELECT digest FROM {self.profile_digests} WHERE name = %s"), [name]
        )
        rows = cursor.fetchall()
        return str(rows[0]["digest"]) if rows else None

    def save_digest(self, cursor: Cursor, name: str, digest: str, now: int) -> None:
        """Record ``digest`` as the digest of the configuration ``name``."""
        cursor.execute(
            self.dialect.sql(
                f"INSERT INTO {self.profile_digests} (name, digest, recorded_at) "
                "VALUES (%s, %s, %s) ON CONFLICT (name) "
                "DO UPDATE SET digest = excluded.digest, recorded_at = excluded.recorded_at"
            ),
            [name, digest, now],
        )

    def delete_requests_before(self, cursor: Cursor, before: int) -> None:
        """Delete request ids first served before ``before``."""
        cursor.execute(
            self.dialect.sql(f"DELETE FROM {self.requests} WHERE created_at < %s"), [before]
        )


def _parked(row: Any) -> ParkedReceipt:
    ciphertext = row["raw_ciphertext"]
    return ParkedReceipt(
        receipt_id=uuid.UUID(row["receipt_id"]),
        tenant=row["tenant"],
        connection=row["connection"],
        canonical_id=row["canonical_id"],
        fingerprint=row["fingerprint"],
        received_at=row["received_at"],
        report=row["report"],
        raw_ciphertext=bytes(ciphertext) if ciphertext is not None else None,
        raw_key_id=row["raw_key_id"],
        duplicates=row["duplicates"],
    )
