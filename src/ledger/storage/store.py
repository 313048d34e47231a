"""The ledger's storage: the eventsourcing application and its side tables.

One :class:`LedgerStore` serves both backends. The database is chosen by URL:
``sqlite:///path/ledger.db`` (the embedded default) or
``postgresql://user:password@host:5432/dbname?schema=ledger``.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlparse

from eventsourcing.application import Application, project_aggregate
from eventsourcing.persistence import (
    IntegrityError,
    JSONTranscoder,
    Notification,
    OperationalError,
    PersistenceError,
    Transcoding,
)
from eventsourcing.utils import Environment

from ledger.domain.message import Message
from ledger.errors import UnavailableError
from ledger.storage.records import (
    CarrierIdRow,
    ExpiryRow,
    KeptReceipt,
    ParkedReceipt,
    RequestRecord,
    SideWrites,
    UnparsedReceipt,
    to_micros,
)
from ledger.storage.tables import Cursor, SideTables

logger = logging.getLogger(__name__)

__all__ = ["ConflictError", "LedgerStore", "StorageConfig", "StoredHistoryEvent"]


class ConflictError(Exception):
    """A save lost a race: another writer appended to one of the messages, or
    stored one of the request ids, first. Reload and retry.
    """


class _BytesAsBase64(Transcoding):
    type = bytes
    name = "b64"

    def encode(self, obj: bytes) -> str:
        return base64.b64encode(obj).decode("ascii")

    def decode(self, data: str) -> bytes:
        return base64.b64decode(data)


class LedgerApplication(Application[uuid.UUID]):
    """The eventsourcing application that stores message events.

    Its configuration comes only from the ``env`` given to it, never from the
    process environment, so the ledger's settings module stays the one place
    that reads environment variables.
    """

    name = "Ledger"

    def construct_env(self, name: str, env: Mapping[str, str] | None = None) -> Environment:
        """Build the eventsourcing environment from ``env`` alone."""
        return Environment(name, dict(env or {}))

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        """Register the default transcodings plus byte strings as base64."""
        super().register_transcodings(transcoder)
        transcoder.register(_BytesAsBase64())


@dataclass(frozen=True)
class StorageConfig:
    """Where and how the ledger stores its data.

    Attributes:
        url: ``sqlite:///PATH`` or ``postgresql://USER:PASSWORD@HOST:PORT/DB?schema=S``.
        pool_size: PostgreSQL connections kept open.
        max_overflow: Extra PostgreSQL connections opened under load.
        lock_timeout_seconds: How long a PostgreSQL writer waits for the
            events table lock before failing (0 waits forever).
        create_tables: Create missing tables at start.
    """

    url: str
    pool_size: int = 5
    max_overflow: int = 10
    lock_timeout_seconds: int = 5
    create_tables: bool = True

    def eventsourcing_env(self) -> dict[str, str]:
        """Translate the URL into eventsourcing settings."""
        parsed = urlparse(self.url)
        if parsed.scheme == "sqlite":
            # As in SQLAlchemy: sqlite:///relative/path and sqlite:////absolute/path.
            path = unquote(parsed.netloc + parsed.path.removeprefix("/"))
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": path,
                "SQLITE_LOCK_TIMEOUT": str(max(self.lock_timeout_seconds, 1)),
                "APPLICATION_RECORDER_TOPIC": "ledger.storage.sqlite:LedgerSQLiteRecorder",
                "CREATE_TABLE": "y" if self.create_tables else "n",
            }
        if parsed.scheme in ("postgresql", "postgres"):
            query = parse_qs(parsed.query)
            return {
                "PERSISTENCE_MODULE": "eventsourcing.postgres",
                "POSTGRES_DBNAME": unquote(parsed.path.lstrip("/")) or "postgres",
                "POSTGRES_HOST": parsed.hostname or "127.0.0.1",
                "POSTGRES_PORT": str(parsed.port or 5432),
                "POSTGRES_USER": unquote(parsed.username or "postgres"),
                "POSTGRES_PASSWORD": unquote(parsed.password or ""),
                "POSTGRES_SCHEMA": query.get("schema", ["public"])[0],
                "POSTGRES_POOL_SIZE": str(self.pool_size),
                "POSTGRES_MAX_OVERFLOW": str(self.max_overflow),
                "POSTGRES_LOCK_TIMEOUT": str(self.lock_timeout_seconds),
                "POSTGRES_PRE_PING": "y",
                "POSTGRES_CONNECT_TIMEOUT": "5",
                "APPLICATION_RECORDER_TOPIC": "ledger.storage.postgres:LedgerPostgresRecorder",
                "CREATE_TABLE": "y" if self.create_tables else "n",
            }
        raise ValueError(
            f"storage URL scheme {parsed.scheme!r} is not supported: use sqlite:///PATH or "
            "postgresql://USER@HOST:PORT/DBNAME"
        )


@dataclass(frozen=True)
class StoredHistoryEvent:
    """One event of a message's history with its position in the log."""

    event: Message.Submitted | Message.Resubmitted | Message.CarrierAccepted | Message.ReceiptEvent
    position: int


class LedgerStore:
    """Reads and writes of the ledger, on SQLite or PostgreSQL.

    All methods are synchronous and thread-safe (each takes a pooled
    connection); the gRPC layer calls them from worker threads.
    """

    def __init__(self, config: StorageConfig) -> None:
        try:
            self.app = LedgerApplication(env=config.eventsourcing_env())
        except (PersistenceError, OSError) as error:
            raise UnavailableError(f"cannot open the ledger database: {error}") from error
        self.config = config
        self.recorder = self.app.recorder
        self.side: SideTables = cast(Any, self.recorder).side_tables
        self.is_postgres = self.side.dialect.array_parameters
        self.save_listeners: list[Callable[[Sequence[Any]], None]] = []
        """Called with the domain events of every committed save (for metrics)."""

    def close(self) -> None:
        """Close the connection pool."""
        self.app.close()

    @contextmanager
    def _cursor(self, *, commit: bool = False) -> Iterator[Cursor]:
        """Yield a cursor: in a transaction when writing; plain when reading.

        PostgreSQL connections of eventsourcing's pool are in autocommit mode,
        so a read runs without BEGIN and ROLLBACK round trips.
        """
        datastore = cast(Any, self.recorder).datastore
        try:
            if commit or not self.is_postgres:
                with datastore.transaction(commit=commit) as curs:
                    yield curs
            else:
                with datastore.get_connection() as conn, conn.cursor() as curs:
                    yield curs
        except OperationalError as error:
            raise UnavailableError(f"database unavailable: {error}") from error

    # ------------------------------------------------------------- messages

    def load_messages(self, aggregate_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, Message]:
        """Rebuild the named messages from their events; missing ids are absent."""
        if not aggregate_ids:
            return {}
        grouped: dict[uuid.UUID, list[Any]] = defaultdict(list)
        for stored, _ in self._select_stored_events(aggregate_ids):
            grouped[cast(uuid.UUID, stored.originator_id)].append(
                self.app.mapper.to_domain_event(stored)
            )
        messages: dict[uuid.UUID, Message] = {}
        for aggregate_id, events in grouped.items():
            message = project_aggregate(None, events)
            if message is not None:
                messages[aggregate_id] = cast(Message, message)
        return messages

    def history(self, aggregate_id: uuid.UUID) -> list[StoredHistoryEvent]:
        """Return every event of one message in version order, with positions."""
        return [
            StoredHistoryEvent(cast(Any, self.app.mapper.to_domain_event(stored)), position)
            for stored, position in self._select_stored_events([aggregate_id])
        ]

    def _select_stored_events(self, aggregate_ids: Collection[uuid.UUID]) -> list[tuple[Any, int]]:
        try:
            return cast(Any, self.recorder).select_stored_events(list(aggregate_ids))  # type: ignore[no-any-return]
        except OperationalError as error:
            raise UnavailableError(f"database unavailable: {error}") from error

    def save(self, messages: Sequence[Message], side: SideWrites) -> None:
        """Append the pending events of ``messages`` and the side rows atomically.

        Raises:
            ConflictError: Another writer got there first; nothing was written.
            UnavailableError: The database could not be reached.
        """
        events = [e for m in messages for e in m.collect_events()]
        try:
            self.app.events.put(events, side=side)
        except IntegrityError as error:
            raise ConflictError(str(error)) from error
        except (OperationalError, PersistenceError) as error:
            raise UnavailableError(f"database write failed: {error}") from error
        for listener in self.save_listeners:
            try:
                listener(events)
            except Exception:
                # The events are committed: a failing listener must not make
                # the caller believe otherwise.
                logger.exception("save listener %r failed", listener)

    def notifications(self, start: int, limit: int) -> Sequence[Notification]:
        """Return up to ``limit`` log entries with positions from ``start`` on."""
        return self.recorder.select_notifications(start, limit)

    def max_position(self) -> int:
        """Return the highest log position, 0 for an empty log."""
        return self.recorder.max_notification_id() or 0

    # ----------------------------------------------------------- side tables

    def find_requests(
        self, keys: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], RequestRecord]:
        """Return the stored request ids among ``(tenant, request_id)`` pairs."""
        if not keys:
            return {}
        with self._cursor() as curs:
            return self.side.select_requests(curs, keys)

    def find_carrier_ids(self, canonical_ids: Collection[str]) -> list[CarrierIdRow]:
        """Return every carrier id mapping with one of the canonical ids."""
        if not canonical_ids:
            return []
        with self._cursor() as curs:
            return self.side.select_carrier_ids(curs, canonical_ids)

    def find_parked(self, canonical_ids: Collection[str]) -> list[ParkedReceipt]:
        """Return parked receipts naming one of the canonical ids, oldest first."""
        if not canonical_ids:
            return []
        with self._cursor() as curs:
            return self.side.select_parked(curs, canonical_ids)

    def list_parked(self, tenant: str, received_before: int, limit: int) -> list[ParkedReceipt]:
        """Return a tenant's parked receipts older than ``received_before``."""
        with self._cursor() as curs:
            return self.side.list_parked(curs, tenant, received_before, limit)

    def list_unparsed(
        self, tenant: str, connection: str | None, limit: int
    ) -> list[UnparsedReceipt]:
        """Return a tenant's kept unparsed receipts, oldest first."""
        with self._cursor() as curs:
            return self.side.list_unparsed(curs, tenant, connection, limit)

    def duplicate_counts(self, aggregate_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, int]:
        """Return how many duplicate receipts each message has seen."""
        if not aggregate_ids:
            return {}
        with self._cursor() as curs:
            return self.side.select_duplicates(curs, aggregate_ids)

    def due_expiries(self, now: int, limit: int) -> list[ExpiryRow]:
        """Return attempts whose expiry deadline has passed."""
        with self._cursor() as curs:
            return self.side.select_due_expiries(curs, now, limit)

    def purge_requests(self, before: int) -> None:
        """Forget request ids first served before ``before`` (epoch microseconds)."""
        with self._cursor(commit=True) as curs:
            self.side.delete_requests_before(curs, before)

    def find_subject_keys(self, subject_indexes: Collection[str]) -> dict[str, tuple[str, bytes]]:
        """Return ``(key_id, wrapped_key)`` by subject index, for subjects with a key."""
        if not subject_indexes:
            return {}
        with self._cursor() as curs:
            return self.side.select_subject_keys_by_index(curs, subject_indexes)

    def subject_keys(self, key_ids: Collection[str]) -> dict[str, bytes | None]:
        """Return wrapped keys by id (None once erased)."""
        if not key_ids:
            return {}
        with self._cursor() as curs:
            return self.side.select_subject_keys(curs, key_ids)

    # ------------------------------------------------------------- erasure

    def insert_index_key(self, key_id: str, wrapped: bytes) -> None:
        """Store the wrapped blind-index key unless another process stored one first."""
        with self._cursor(commit=True) as curs:
            self.side.insert_index_key(curs, key_id, wrapped, to_micros(datetime.now(UTC)))

    def record_digest(self, name: str, digest: str) -> str | None:
        """Record ``digest`` for the configuration ``name``; return the one recorded before.

        Returns None when none was recorded, and ``digest`` itself when it was
        recorded already (nothing is written then).
        """
        with self._cursor(commit=True) as curs:
            previous = self.side.select_digest(curs, name)
            if previous != digest:
                self.side.save_digest(curs, name, digest, to_micros(datetime.now(UTC)))
        return previous

    def subject_key_state(self, key_ids: Collection[str]) -> dict[str, tuple[str, int | None]]:
        """Return ``(tenant, erased_at)`` by key id; unknown ids are absent."""
        if not key_ids:
            return {}
        with self._cursor() as curs:
            return self.side.select_subject_key_state(curs, key_ids)

    def subject_messages(self, key_id: str) -> list[uuid.UUID]:
        """Return the messages whose destination is encrypted under ``key_id``."""
        with self._cursor() as curs:
            return self.side.select_subject_messages(curs, key_id)

    def kept_receipts(self, tenant: str) -> list[KeptReceipt]:
        """Return every parked and unparsed receipt of ``tenant``."""
        with self._cursor() as curs:
            return self.side.select_kept_receipts(curs, tenant)

    def wrapped_keys_after(self, after: str, limit: int) -> list[tuple[str, bytes]]:
        """Return up to ``limit`` wrapped keys (erased ones left out) with ids after ``after``."""
        with self._cursor() as curs:
            return self.side.select_wrapped_keys_after(curs, after, limit)

    def replace_wrapped_key(self, key_id: str, old: bytes, new: bytes) -> bool:
        """Store a re-wrapped key if the stored one is still ``old``."""
        with self._cursor(commit=True) as curs:
            return self.side.replace_wrapped_key(curs, key_id, old, new)
