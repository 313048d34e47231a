"""Stuck messages: accepted by a carrier, yet without a final outcome for too long.

Aggregators retry their callbacks for seconds (Twilio) to about a day (Vonage,
Sinch), and some final receipts never arrive at all, so the sending side has
to ask the provider about such messages. This module finds them: attempts
that still have an expiry deadline (the ledger clears it when the message
becomes final) and whose carrier acceptance is older than the connection's
threshold. It reads the ``expiry`` and ``carrier_ids`` side tables, joined
through the ``(aggregate_id, attempt)`` index of the latter, so each query
costs in proportion to the messages still pending, not to the whole history.

A message submitted but never accepted has no carrier id to ask about and is
not listed. Once the ledger infers an expiry the message is final and leaves
the list.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from eventsourcing.persistence import OperationalError

from ledger.errors import UnavailableError
from ledger.receipts.model import CarrierProfile
from ledger.storage.records import from_micros, to_micros
from ledger.storage.store import LedgerStore
from ledger.storage.tables import Cursor

__all__ = ["StuckMessage", "StuckQuery", "count_stuck", "list_stuck"]

MAX_PAGE = 1000


@dataclass(frozen=True)
class StuckMessage:
    """One stuck attempt of a message.

    Attributes:
        tenant: Tenant of the message.
        message_id: The sender's id of the message.
        aggregate_id: The message's aggregate id.
        connection: Carrier connection of the attempt.
        attempt: Attempt number.
        accepted_at: When the carrier first accepted the attempt.
        threshold_seconds: The connection's stuck threshold.
        carrier_message_ids: ``(segment, carrier id)`` as the carrier issued
            them; segment 0 names an id that covers the whole message.
        status: The message's current status name, such as ``ACCEPTED``.
    """

    tenant: str
    message_id: str
    aggregate_id: uuid.UUID
    connection: str
    attempt: int
    accepted_at: datetime
    threshold_seconds: int
    carrier_message_ids: tuple[tuple[int, str], ...]
    status: str


@dataclass(frozen=True)
class StuckQuery:
    """Filters of a stuck-message listing and the thresholds that define "stuck".

    Attributes:
        now: The time to measure ages at.
        default_threshold_seconds: Threshold of connections without their own.
        connections: Profiles whose ``stuck_after_seconds`` override the default.
        tenant: Only this tenant's messages; None for all.
        connection: Only this connection's messages; None for all.
    """

    now: datetime
    default_threshold_seconds: int
    connections: Mapping[str, CarrierProfile]
    tenant: str | None = None
    connection: str | None = None

    def threshold(self, connection: str) -> int:
        """Return the stuck threshold of ``connection`` in seconds."""
        profile = self.connections.get(connection)
        if profile is not None and profile.stuck_after_seconds is not None:
            return profile.stuck_after_seconds
        return self.default_threshold_seconds

    def condition(self) -> tuple[str, list[Any]]:
        """Return the WHERE clause and its parameters (``%s`` placeholders)."""
        now = to_micros(self.now)
        clauses: list[str] = []
        params: list[Any] = []
        if self.tenant is not None:
            clauses.append("c.tenant = %s")
            params.append(self.tenant)
        if self.connection is not None:
            clauses.append("c.connection = %s AND c.accepted_at <= %s")
            params += [self.connection, now - self.threshold(self.connection) * 1_000_000]
        else:
            own = sorted(
                name for name, p in self.connections.items() if p.stuck_after_seconds is not None
            )
            alternatives = []
            for name in own:
                alternatives.append("(c.connection = %s AND c.accepted_at <= %s)")
                params += [name, now - self.threshold(name) * 1_000_000]
            default_cutoff = now - self.default_threshold_seconds * 1_000_000
            if own:
                marks = ", ".join(["%s"] * len(own))
                alternatives.append(f"(c.connection NOT IN ({marks}) AND c.accepted_at <= %s)")
                params += [*own, default_cutoff]
            else:
                alternatives.append("c.accepted_at <= %s")
                params.append(default_cutoff)
            clauses.append("(" + " OR ".join(alternatives) + ")")
        return " AND ".join(clauses), params


@contextmanager
def _reading(store: LedgerStore) -> Iterator[Cursor]:
    """Yield a cursor for reads (PostgreSQL pool connections are in autocommit mode)."""
    datastore = cast(Any, store.recorder).datastore
    try:
        if store.is_postgres:
            with datastore.get_connection() as conn, conn.cursor() as cursor:
                yield cursor
        else:
            with datastore.transaction(commit=False) as cursor:
                yield cursor
    except OperationalError as error:
        raise UnavailableError(f"database unavailable: {error}") from error


def _page_token(accepted_at: int, aggregate_id: str) -> str:
    return f"{accepted_at}:{aggregate_id}"


def list_stuck(
    store: LedgerStore, query: StuckQuery, limit: int = 100, page_token: str = ""
) -> tuple[list[StuckMessage], str]:
    """Return stuck attempts, oldest acceptance first, and the next page's token.

    Args:
        store: The ledger's storage.
        query: Filters and thresholds.
        limit: Most attempts returned (at most 1000).
        page_token: The token a previous call returned; empty for the first page.

    Returns:
        The attempts and the token of the next page ("" after the last).

    Raises:
        ValueError: ``page_token`` is not one this function returned.
        UnavailableError: The database cannot be reached.
    """
    limit = max(1, min(limit, MAX_PAGE))
    side = store.side
    where, params = query.condition()
    having = ""
    if page_token:
        after, _, after_id = page_token.partition(":")
        try:
            after_micros = int(after)
            uuid.UUID(after_id)
        except ValueError:
            raise ValueError(f"page token {page_token[:80]!r} is invalid; start again") from None
        having = (
            "HAVING MIN(c.accepted_at) > %s OR (MIN(c.accepted_at) = %s AND c.aggregate_id > %s)"
        )
        params += [after_micros, after_micros, after_id]
    statement = (
        "SELECT c.aggregate_id, c.tenant, c.message_id, c.connection, c.attempt, "
        "MIN(c.accepted_at) AS accepted_at "
        f"FROM {side.expiry} e JOIN {side.carrier_ids} c "
        "ON c.aggregate_id = e.aggregate_id AND c.attempt = e.attempt "
        f"WHERE {where} "
        "GROUP BY c.aggregate_id, c.tenant, c.message_id, c.connection, c.attempt "
        f"{having} ORDER BY accepted_at, c.aggregate_id LIMIT %s"
    )
    with _reading(store) as cursor:
        cursor.execute(side.dialect.sql(statement), [*params, limit + 1])
        rows = list(cursor.fetchall())

    more = len(rows) > limit
    rows = rows[:limit]
    messages = store.load_messages([uuid.UUID(r["aggregate_id"]) for r in rows])
    found = []
    for row in rows:
        aggregate_id = uuid.UUID(row["aggregate_id"])
        message = messages.get(aggregate_id)
        ids: tuple[tuple[int, str], ...] = ()
        status = ""
        if message is not None:
            attempt = message.attempt(row["attempt"])
            status = message.outcome.status.name
            if attempt.whole_message_id:
                ids = ((0, attempt.whole_message_id),)
            ids += tuple(
                (s.number, s.carrier_message_id) for s in attempt.segments if s.carrier_message_id
            )
        found.append(
            StuckMessage(
                tenant=row["tenant"],
                message_id=row["message_id"],
                aggregate_id=aggregate_id,
                connection=row["connection"],
                attempt=row["attempt"],
                accepted_at=from_micros(row["accepted_at"]),
                threshold_seconds=query.threshold(row["connection"]),
                carrier_message_ids=ids,
                status=status,
            )
        )
    token = _page_token(rows[-1]["accepted_at"], rows[-1]["aggregate_id"]) if more else ""
    return found, token


def count_stuck(store: LedgerStore, query: StuckQuery) -> dict[str, int]:
    """Return the number of stuck attempts per connection, for a gauge.

    Raises:
        UnavailableError: The database cannot be reached.
    """
    side = store.side
    where, params = query.condition()
    statement = (
        "SELECT c.connection, COUNT(DISTINCT c.aggregate_id) AS stuck "
        f"FROM {side.expiry} e JOIN {side.carrier_ids} c "
        "ON c.aggregate_id = e.aggregate_id AND c.attempt = e.attempt "
        f"WHERE {where} GROUP BY c.connection"
    )
    with _reading(store) as cursor:
        cursor.execute(side.dialect.sql(statement), params)
        return {row["connection"]: int(row["stuck"]) for row in cursor.fetchall()}
