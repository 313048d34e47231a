"""Creating the JetStream stream and reading back what it stores."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, NamedTuple

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamInfo,
)
from nats.js.errors import NotFoundError

from ledger.relay.config import RelayConfig
from ledger.relay.envelope import HEADER_MSG_ID, HEADER_POSITION

__all__ = ["StoredRef", "ensure_stream", "read_refs", "stream_config"]

logger = logging.getLogger(__name__)


class StoredRef:
    """Sequence, log position and message id of one stored message."""

    __slots__ = ("msg_id", "position", "sequence")

    def __init__(self, sequence: int, position: int, msg_id: str) -> None:
        self.sequence = sequence
        self.position = position
        self.msg_id = msg_id


class _Fields(NamedTuple):
    subjects: list[str] | None
    duplicate_window: float
    num_replicas: int | None
    max_age: float | None


def stream_config(config: RelayConfig) -> StreamConfig:
    """Return the stream configuration the relay creates or updates to."""
    return StreamConfig(
        name=config.stream,
        description="SMS Delivery Ledger lifecycle events, copied from the ledger's log",
        subjects=[config.stream_subjects],
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        storage=StorageType.FILE,
        num_replicas=config.stream_replicas,
        duplicate_window=config.duplicate_window_seconds,
        max_age=config.stream_max_age_seconds,
    )


def _fields(config: StreamConfig) -> _Fields:
    return _Fields(
        config.subjects,
        float(config.duplicate_window or 0),
        config.num_replicas or 1,
        float(config.max_age or 0),
    )


async def ensure_stream(js: JetStreamContext, config: RelayConfig) -> StreamInfo:
    """Create the stream, or update it where its settings differ from ``config``.

    Raises:
        nats.js.errors.APIError: JetStream rejected the configuration, for
            example because another stream already takes these subjects.
    """
    wanted = stream_config(config)
    try:
        info = await js.stream_info(config.stream)
    except NotFoundError:
        info = await js.add_stream(wanted)
        logger.info(
            "created stream",
            extra={"stream": config.stream, "subjects": config.stream_subjects},
        )
        return info
    if _fields(info.config) != _fields(wanted):
        # Keep what the relay does not manage, such as placement.
        updated = info.config.evolve(
            subjects=wanted.subjects,
            duplicate_window=wanted.duplicate_window,
            num_replicas=wanted.num_replicas,
            max_age=wanted.max_age,
        )
        info = await js.update_stream(updated)
        logger.info(
            "updated stream",
            extra={
                "stream": config.stream,
                "duplicate_window_seconds": config.duplicate_window_seconds,
            },
        )
    return info


async def read_refs(
    js: JetStreamContext,
    stream: str,
    subjects: str,
    start_sequence: int,
    end_sequence: int,
    *,
    idle_timeout: float = 5.0,
) -> list[StoredRef]:
    """Return the messages stored at sequences ``start_sequence..end_sequence``.

    Reads headers only, through an ordered consumer, so the cost grows with
    the range and not with the stream.

    Raises:
        TimeoutError: No message arrived for ``idle_timeout`` seconds before
            the end of the range was reached.
    """
    refs: list[StoredRef] = []
    if end_sequence < start_sequence:
        return refs
    finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    received = 0

    async def collect(msg: Msg) -> None:
        nonlocal received
        received += 1
        metadata = msg.metadata
        sequence = metadata.sequence.stream
        headers: dict[str, Any] = msg.headers or {}
        position = headers.get(HEADER_POSITION)
        if position is not None and sequence <= end_sequence:
            refs.append(StoredRef(sequence, int(position), str(headers.get(HEADER_MSG_ID, ""))))
        if (sequence >= end_sequence or metadata.num_pending == 0) and not finished.done():
            finished.set_result(None)

    subscription = await js.subscribe(
        subjects,
        stream=stream,
        cb=collect,
        ordered_consumer=True,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(start_sequence, 1),
            headers_only=True,
        ),
        # The server removes the consumer this long after the reader leaves.
        inactive_threshold=2.0,
    )
    try:
        seen = 0
        while not finished.done():
            # Wait while messages keep arriving; give up after a silent spell.
            await asyncio.wait([finished], timeout=idle_timeout)
            if finished.done():
                break
            if received == 0:
                # Nothing is stored from start_sequence on.
                break
            if received == seen:
                raise TimeoutError(
                    f"reading stream {stream} from sequence {start_sequence} stalled after "
                    f"{received} messages; the range ends at {end_sequence}"
                )
            seen = received
    finally:
        await subscription.unsubscribe()
    return refs
