"""Feeding the read models from the NATS event stream instead of the database log.

``smsledger project --source nats`` runs the same three projections as the
log-fed worker, but takes events from a durable JetStream pull consumer on the
stream the relay publishes:

- Each fetched batch is turned into :class:`~projections.decode.LogEvent`
  values from the ``ledger.v1.Event`` payloads and applied by a
  :class:`~projections.runner.Projector`, which writes the rows, the folds and
  its position in one transaction. Only then are the messages acknowledged, so
  a crash before the commit gets them redelivered.
- Every fold stores its message's version with the rows, and the projector
  skips an event whose version is not newer than the fold's. So redeliveries
  and republished copies (JetStream drops copies only within its duplicate
  window) change nothing: event ids are deduplicated in the same transaction
  as the effects.
- An event whose message lacks an earlier version is not applied yet. This
  happens only after a NATS node lost acknowledged messages and the relay
  published them again, later in the stream. The event is negatively
  acknowledged with a delay, and applied once its predecessor has been.

The payload lacks two things the folds need: the per-segment effects of a
message-wide receipt on a multipart message, and the effect of an expiry the
ledger inferred. Those events are read from the ledger's log by their
``Ledger-Position`` instead.

The positions of the NATS-fed projections are stored under
``<projection>@nats``: the highest ``Ledger-Position`` applied, or one more
than the previous position when a copy from before it arrives late. The
log-fed and the NATS-fed workers write the same tables, so only one may run
per database; on PostgreSQL both take the same advisory lock, and the one that
does not hold it stands by.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import nats.errors
import nats.js.errors
import psycopg
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from ledger.domain.message import Message
from ledger.relay.envelope import HEADER_POSITION, HEADER_TRACEPARENT
from ledger.relay.link import NatsLink
from ledger.runtime import Runtime
from ledger.storage.store import LedgerStore
from ledger.v1 import events_pb2
from projections.database import Connection, DatabaseTarget
from projections.decode import LogDecoder, LogEvent
from projections.fold import fold_from_json
from projections.runner import BatchResult, Projector, build_projections

__all__ = ["NatsProjectionWorker", "NatsSourceOptions", "event_from_payload", "nats_worker"]

logger = logging.getLogger(__name__)

_KINDS: dict[str, type[Any]] = {
    name: getattr(Message, name)
    for name in (
        "Submitted",
        "Resubmitted",
        "CarrierAccepted",
        "Enroute",
        "Accepted",
        "Delivered",
        "Failed",
        "Expired",
        "Rejected",
        "Unknown",
        "RetryAdvised",
        "DestinationErased",
    )
}
_DRAIN_SECONDS = 0.01
"""Maximum wait for more messages once the first message of a batch arrived."""

_LOG_RANGE = 1000
"""Maximum number of log entries one query reads for the events the payload lacks."""

_STREAM_NOT_FOUND = 10059
"""JetStream's error code for a stream that does not exist."""

_STATUS_NAMES = {value: name for name, value in events_pb2.MessageStatus.items()}
_EFFECT_NAMES = {
    value: name.removeprefix("RECEIPT_EFFECT_") for name, value in events_pb2.ReceiptEffect.items()
}


@dataclass(frozen=True)
class NatsSourceOptions:
    """How the NATS-fed projections run.

    Attributes:
        servers: NATS server URLs.
        stream: The stream the relay publishes to.
        subjects: The stream's subject filter.
        consumer: Name of the durable pull consumer; it keeps the delivery
            state on the server across restarts.
        batch_size: Most messages fetched and applied per transaction.
        fetch_timeout_seconds: Maximum wait for the first message of a batch.
        retry_delay_seconds: Delay before an event whose predecessor has not
            been applied yet is delivered again.
        exclusive: Take the PostgreSQL advisory lock of the read models.
        backoff_initial_seconds: First wait after a failure.
        backoff_max_seconds: Maximum wait after repeated failures.
        stream_poll_seconds: Pause between two checks for a stream that does
            not exist yet (the relay creates it when it first runs).
    """

    servers: tuple[str, ...]
    stream: str
    subjects: str
    consumer: str = "smsledger-projections"
    batch_size: int = 1000
    fetch_timeout_seconds: float = 1.0
    retry_delay_seconds: float = 1.0
    exclusive: bool = True
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    stream_poll_seconds: float = 1.0


def _stream_missing(error: BaseException) -> bool:
    """Return True when ``error`` reports that the stream does not exist."""
    return isinstance(error, nats.js.errors.NotFoundError) and error.err_code in (
        _STREAM_NOT_FOUND,
        None,
    )


def _time(stamp: Any) -> datetime:
    return datetime.fromtimestamp(stamp.seconds, UTC).replace(microsecond=stamp.nanos // 1000)


def event_from_payload(
    payload: bytes, position: int, traceparent: str | None
) -> tuple[LogEvent, bool]:
    """Return the log event a stream message carries, and whether it is complete.

    An event is incomplete when its ``segment_effects`` may not be what the
    payload states: an inferred expiry, or a message-wide receipt, whose
    effects depend on the segment count. The caller decides whether to read
    such an event from the log.

    Raises:
        ValueError: The payload is not a ``ledger.v1.Event`` of a known type.
    """
    event = events_pb2.Event.FromString(payload)
    kind = _KINDS.get(event.type)
    if kind is None:
        raise ValueError(f"event {event.event_id} has unknown type {event.type!r}")
    recorded = _time(event.recorded_at)
    occurred = _time(event.occurred_at) if event.HasField("occurred_at") else recorded
    data: dict[str, Any] = {
        "tenant": event.tenant,
        "message_id": event.message_id,
        "attempt": event.attempt,
        "status_after": _STATUS_NAMES[event.status].removeprefix("MESSAGE_STATUS_"),
        "final_after": event.final,
        "conflict_after": event.conflict,
        "trace_context": traceparent,
    }
    complete = True
    body = event.WhichOneof("body")
    if body == "submission":
        submission = event.submission
        data.update(
            country=submission.country,
            carrier=submission.carrier,
            segment_count=submission.segment_count,
        )
    elif body == "acceptance":
        data["segments"] = [
            {
                "segment": item.segment,
                "carrier_message_id": item.carrier_message_id,
                "canonical_id": item.canonical_id,
            }
            for item in event.acceptance.segments
        ]
    elif body == "receipt":
        receipt = event.receipt
        data.update(
            status=receipt.status,
            final=receipt.final,
            permanent=receipt.permanent if receipt.HasField("permanent") else None,
            error_code=receipt.error_code or None,
            error_table=receipt.error_table or None,
            inferred=False,
            segment=receipt.segment,
            effect=_EFFECT_NAMES[receipt.effect],
            segment_effects=[_EFFECT_NAMES[receipt.effect]],
        )
        complete = receipt.segment != 0
    elif body == "inferred_expiry":
        complete = False
    return (
        LogEvent(position, event.aggregate_id, event.version, kind, recorded, occurred, data),
        complete,
    )


@dataclass
class _Known:
    """Applied version and segment counts of one message, as far as the worker has seen."""

    version: int
    segment_counts: dict[int, int] = field(default_factory=dict)


class _Entry:
    """A prepared event in the shape the projector reads from its log."""

    __slots__ = ("event", "id")

    def __init__(self, event: LogEvent) -> None:
        self.event = event
        self.id = event.position


class _PreparedLog:
    """Stands in for the ledger store in a projector: hands it prepared events."""

    def __init__(self, store: LedgerStore) -> None:
        self.app = store.app
        self.store = store
        self.pending: list[_Entry] = []

    def notifications(self, start: int, limit: int) -> list[_Entry]:
        entries, self.pending = self.pending, []
        return entries

    def max_position(self) -> int:
        return self.store.max_position()


class _PassThrough:
    def decode(self, entry: _Entry) -> LogEvent:
        return entry.event


class NatsProjectionWorker:
    """Runs the projections from the stream until cancelled, restarting after failures.

    The attributes ``position``, ``active``, ``restarts`` and
    ``last_lag_seconds`` mirror those of the log-fed worker for metrics.
    """

    def __init__(
        self, store: LedgerStore, target: DatabaseTarget, options: NatsSourceOptions
    ) -> None:
        self.store = store
        self.target = target
        self.options = options
        self.position = 0
        self.active = False
        self.restarts = 0
        self.last_lag_seconds = 0.0
        self.applied = 0
        self.read_from_log = 0
        self._known: OrderedDict[str, _Known] = OrderedDict()
        self._decoder = LogDecoder(store.app.mapper)

    async def run(self) -> None:
        """Project until cancelled; a failed run is retried after a backoff."""
        backoff = self.options.backoff_initial_seconds
        while True:
            started = time.monotonic()
            try:
                await self._run_once()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if _stream_missing(error):
                    # Deleted after the run found it: the next run waits for
                    # it and logs that once, as at a first start.
                    logger.debug("stream %s is gone: %s", self.options.stream, error)
                    await asyncio.sleep(self.options.stream_poll_seconds)
                    backoff = self.options.backoff_initial_seconds
                    continue
                self.restarts += 1
                if time.monotonic() - started > 60:
                    backoff = self.options.backoff_initial_seconds
                delay = backoff * random.uniform(0.8, 1.2)
                logger.warning(
                    "NATS-fed projections stopped (%s: %s); restarting in %.1f s",
                    type(error).__name__,
                    error,
                    delay,
                    extra={"restarts": self.restarts, "stream": self.options.stream},
                )
                await asyncio.sleep(delay)
                backoff = min(backoff * 2, self.options.backoff_max_seconds)
            finally:
                self.active = False

    async def _run_once(self) -> None:
        options = self.options
        log = _PreparedLog(self.store)
        projections = build_projections(self.target)
        for projection in projections:
            projection.position_name = f"{projection.name}@nats"
        projector = Projector(
            log,  # type: ignore[arg-type]
            self.target,
            projections,
            batch_size=max(options.batch_size, 1),
        )
        projector._decoder = _PassThrough()  # type: ignore[assignment]
        lock: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        link = NatsLink(options.servers, max_pending=1, name="smsledger-projections")
        reader: Connection | None = None
        try:
            if self.target.is_postgres and options.exclusive:
                lock = await psycopg.AsyncConnection.connect(self.target.conninfo, autocommit=True)
                await self._take_lock(lock)
            await asyncio.to_thread(projector.open)
            reader = await asyncio.to_thread(self.target.connect)
            await link.connect()
            await self._wait_for_stream(link)
            subscription = await link.js.pull_subscribe(
                options.subjects,
                durable=options.consumer,
                stream=options.stream,
                config=ConsumerConfig(
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_wait=30.0,
                    max_ack_pending=max(4 * options.batch_size, 1000),
                ),
            )
            self.position = projector.position
            self.active = True
            logger.info(
                "NATS-fed projections running",
                extra={"stream": options.stream, "consumer": options.consumer},
            )
            while True:
                messages = await self._fetch(subscription)
                if not messages:
                    continue
                await self._apply(projector, log, reader, messages, projections[0])
        finally:
            self.active = False
            if reader is not None:
                reader.close()
            await asyncio.to_thread(projector.close)
            await link.close()
            if lock is not None:
                await lock.close()

    async def _wait_for_stream(self, link: NatsLink) -> None:
        """Return once the stream exists, checking every ``stream_poll_seconds``.

        The relay creates the stream when it first runs, so a worker started
        before it finds none. That is expected at a first deployment: it is
        logged once, not treated as a failure.
        """
        stream = self.options.stream
        waiting_since: float | None = None
        while True:
            try:
                await link.js.stream_info(stream)
            except nats.js.errors.Error as error:
                if not _stream_missing(error):
                    raise
                if waiting_since is None:
                    waiting_since = time.monotonic()
                    logger.info(
                        "waiting for stream %s, which the relay creates when it first runs",
                        stream,
                        extra={"stream": stream},
                    )
                await asyncio.sleep(self.options.stream_poll_seconds)
                continue
            if waiting_since is not None:
                logger.info(
                    "stream %s exists after %.0f s of waiting",
                    stream,
                    time.monotonic() - waiting_since,
                    extra={"stream": stream},
                )
            return

    async def _fetch(self, subscription: Any) -> list[Msg]:
        """Wait for one message, then take every message already available.

        A single fetch of a whole batch would wait until the batch is full or
        its timeout passes. This returns as soon as something arrived, so the
        batch is what accumulated meanwhile.
        """
        try:
            first = await subscription.fetch(1, timeout=self.options.fetch_timeout_seconds)
        except nats.errors.TimeoutError:
            return []
        if self.options.batch_size <= 1:
            return list(first)
        try:
            rest = await subscription.fetch(self.options.batch_size - 1, timeout=_DRAIN_SECONDS)
        except nats.errors.TimeoutError:
            rest = []
        return [*first, *rest]

    async def _take_lock(self, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        # The log-fed worker takes the same lock: one writer of the read models.
        key = f"smsledger-projections:{self.target.schema}"
        waiting = False
        while True:
            cursor = await conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,))
            row = await cursor.fetchone()
            if row is not None and row[0]:
                if waiting:
                    logger.info("projection lock taken; this worker now projects")
                return
            if not waiting:
                logger.info("projection lock is held by another worker; waiting for it")
                waiting = True
            await asyncio.sleep(2.0)

    async def _apply(
        self,
        projector: Projector,
        log: _PreparedLog,
        reader: Connection,
        messages: Sequence[Msg],
        fold_source: Any,
    ) -> None:
        """Apply one fetched batch, then acknowledge it."""
        decoded = []
        for msg in messages:
            headers = msg.headers or {}
            event, complete = event_from_payload(msg.data, 0, headers.get(HEADER_TRACEPARENT))
            decoded.append((msg, event, complete, int(headers.get(HEADER_POSITION, 0))))
        await asyncio.to_thread(
            self._load_known, reader, fold_source, {e.aggregate_id for _, e, _, _ in decoded}
        )

        ready: list[LogEvent] = []
        # Log position of each event in `ready`, from its Ledger-Position header.
        ready_positions: list[int] = []
        # Indexes in `ready` of the events to read from the log.
        from_log: list[int] = []
        deferred: list[Msg] = []
        done: list[Msg] = []
        versions: dict[str, _Known] = {}
        for msg, event, complete, log_position in decoded:
            known = versions.get(event.aggregate_id) or self._copy_known(event.aggregate_id)
            versions[event.aggregate_id] = known
            if event.version <= known.version:
                done.append(msg)  # applied before: a redelivery or a copy
                continue
            if event.version != known.version + 1:
                deferred.append(msg)
                continue
            if not complete and not self._completes(event, known):
                from_log.append(len(ready))
            if event.kind in (Message.Submitted, Message.Resubmitted):
                known.segment_counts[event.data["attempt"]] = event.data["segment_count"]
            known.version = event.version
            ready.append(event)
            ready_positions.append(log_position)
            done.append(msg)

        if from_log:
            wanted = [ready_positions[index] for index in from_log]
            found = await asyncio.to_thread(self._read_log, sorted(wanted))
            for index in from_log:
                ready[index] = found[ready_positions[index]]
        if ready:
            position = projector.position
            for event, log_position in zip(ready, ready_positions, strict=True):
                # Positions must rise within a batch for the projector to take
                # each event, and following the log positions makes the stored
                # position comparable with the log's end for the lag.
                position = max(position + 1, log_position)
                event.position = position
            log.pending = [_Entry(e) for e in ready]
            result: BatchResult = await asyncio.to_thread(projector.run_batch)
            self.position = result.position
            self.applied += result.events
            if result.last_recorded_at is not None:
                self.last_lag_seconds = max(time.time() - result.last_recorded_at.timestamp(), 0)
        for aggregate_id, known in versions.items():
            self._remember(aggregate_id, known)
        # Acknowledge only after the commit: a crash before it redelivers.
        for msg in done:
            await msg.ack()
        for msg in deferred:
            await msg.nak(delay=self.options.retry_delay_seconds)
        if deferred:
            logger.info(
                "events waiting for an earlier version of their message",
                extra={"stream": self.options.stream, "deferred": len(deferred)},
            )

    def _completes(self, event: LogEvent, known: _Known) -> bool:
        """Fill in what the payload leaves open when the segment count settles it."""
        if event.kind is Message.Expired and "segment" not in event.data:
            return False  # an inferred expiry: its effect is not in the payload
        return known.segment_counts.get(event.data["attempt"]) == 1

    def _read_log(self, positions: list[int]) -> dict[int, LogEvent]:
        """Read the events at ``positions`` (ascending) from the ledger's log.

        Positions that lie close together share one range query.
        """
        self.read_from_log += len(positions)
        wanted = set(positions)
        found: dict[int, LogEvent] = {}
        index = 0
        while index < len(positions):
            first = positions[index]
            last = first
            while index + 1 < len(positions) and positions[index + 1] - first < _LOG_RANGE:
                index += 1
                last = positions[index]
            index += 1
            for entry in self.store.notifications(first, last - first + 1):
                if entry.id in wanted:
                    found[entry.id] = self._decoder.decode(entry)
        missing = wanted - set(found)
        if missing:
            raise ValueError(
                f"log positions {sorted(missing)[:5]} not found in the ledger's log: the stream "
                "and the database disagree"
            )
        return found

    def _copy_known(self, aggregate_id: str) -> _Known:
        known = self._known.get(aggregate_id)
        if known is None:
            return _Known(0)
        return _Known(known.version, dict(known.segment_counts))

    def _remember(self, aggregate_id: str, known: _Known) -> None:
        self._known[aggregate_id] = known
        self._known.move_to_end(aggregate_id)
        while len(self._known) > 200_000:
            self._known.popitem(last=False)

    def _load_known(self, reader: Connection, projection: Any, aggregate_ids: set[str]) -> None:
        """Load the applied version and segment counts of messages not in memory."""
        missing = [a for a in aggregate_ids if a not in self._known]
        if not missing:
            return
        for aggregate_id, text in projection.load_folds(reader, missing).items():
            fold = fold_from_json(aggregate_id, text)
            self._known[aggregate_id] = _Known(
                fold.version, {a.number: a.segment_count for a in fold.attempts}
            )


def nats_worker(runtime: Runtime, consumer: str) -> NatsProjectionWorker:
    """Return the NATS-fed worker the runtime's settings describe.

    Raises:
        ValueError: ``SMSLEDGER_NATS_URL`` is not set.
    """
    settings = runtime.settings
    if not settings.nats_servers:
        raise ValueError(
            "SMSLEDGER_NATS_URL is not set: --source nats reads the stream the relay publishes; "
            "name its server, such as nats://127.0.0.1:4222"
        )
    options = NatsSourceOptions(
        servers=settings.nats_servers,
        stream=settings.nats_stream,
        subjects=f"{settings.nats_subject_prefix}.>",
        consumer=consumer,
        batch_size=settings.projections_batch_size,
    )
    target = DatabaseTarget.from_env(runtime.store.config.eventsourcing_env())
    return NatsProjectionWorker(runtime.store, target, options)
