"""Comparing the stream with the log, one recent range at a time.

JetStream acknowledges a publish before it reaches disk, so a NATS node that
crashes can lose the tail of what it acknowledged. The check finds such gaps
without reading the whole stream each time. It keeps a :class:`Checkpoint`
``(V, Q, S, id)`` with two invariants:

- every publishable log entry at or below position ``V`` is stored at stream
  sequence ``S`` or below, and the message at ``S`` has ``Nats-Msg-Id`` ``id``;
- every stored message with a position above ``V`` has a sequence above ``Q``.

Both checks assume that a crash loses only a suffix of the stream, which is how
JetStream's file store loses unsynced writes. So when the message at some
sequence is still there, so is every message below it.

:func:`check_by_acks` is the cheap check a running relay makes. Each
acknowledgement names the sequence the message is stored at; for a duplicate,
it names the sequence of the stored copy. Let ``A`` be the relay's
acknowledged position. When the relay has the acknowledgements of every
position in ``(V, A]``, reading the one message at the highest of those
sequences proves them all stored.

:func:`check_stream` reads the headers of sequences ``Q+1..last`` and the log
positions ``V+1..A``; it runs when the relay starts and whenever the cheap check
cannot decide. It first makes sure the stream still holds the message at ``S``;
when it does not (the stream lost its tail, or was deleted and created again),
it falls back to the latest older checkpoint whose message is still there, or
to the beginning. Positions of the log missing from the stream are returned for
publishing again, and the checkpoint moves to just below the first missing
position, or to ``A`` when none is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from ledger.relay.envelope import HEADER_MSG_ID
from ledger.relay.stream import StoredRef, read_refs
from ledger.relay.tracking import Checkpoint

__all__ = ["CheckResult", "LogPositions", "check_by_acks", "check_stream"]

logger = logging.getLogger(__name__)

LogPositions = Callable[[int, int], Awaitable[Sequence[int]]]
"""Returns the publishable log positions in ``(after, through]``, ascending."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check.

    Attributes:
        checkpoint: The checkpoint to store.
        missing: Log positions to publish again, ascending.
        messages_read: Stream messages whose headers were read.
        fell_back: The stream no longer held the latest checkpoint's message,
            so an older checkpoint (or the beginning) was used.
        max_position_read: Highest position among the messages read (0 if none).
    """

    checkpoint: Checkpoint
    missing: tuple[int, ...]
    messages_read: int
    fell_back: bool
    max_position_read: int = 0


async def _still_stored(
    js: JetStreamContext, stream: str, checkpoint: Checkpoint, first: int, last: int
) -> bool:
    if checkpoint.end_sequence == 0:
        return True
    if checkpoint.end_sequence > last:
        return False
    if checkpoint.end_sequence < first:
        # Discarded by the stream's limits (max_age), not lost in a crash:
        # a crash loses the newest messages, never the oldest.
        return True
    try:
        stored = await js.get_msg(stream, seq=checkpoint.end_sequence)
    except NotFoundError:
        return False
    headers = stored.headers or {}
    return bool(headers.get(HEADER_MSG_ID) == checkpoint.end_msg_id)


async def _base_checkpoint(
    js: JetStreamContext,
    stream: str,
    checkpoints: Sequence[Checkpoint],
    first: int,
    last: int,
) -> tuple[Checkpoint, bool]:
    for index in range(len(checkpoints) - 1, -1, -1):
        if await _still_stored(js, stream, checkpoints[index], first, last):
            return checkpoints[index], index != len(checkpoints) - 1
    return Checkpoint(), bool(checkpoints)


def _next_checkpoint(base: Checkpoint, refs: list[StoredRef], verified: int) -> Checkpoint:
    above = [ref.sequence for ref in refs if ref.position > verified]
    if above:
        start = min(above) - 1
    elif refs:
        start = refs[-1].sequence
    else:
        start = base.start_sequence
    if refs and refs[-1].sequence > base.end_sequence:
        end, end_id = refs[-1].sequence, refs[-1].msg_id
    else:
        end, end_id = base.end_sequence, base.end_msg_id
    return Checkpoint(verified, max(start, base.start_sequence), end, end_id)


async def check_stream(
    js: JetStreamContext,
    *,
    stream: str,
    subjects: str,
    checkpoints: Sequence[Checkpoint],
    acked_position: int,
    log_positions: LogPositions,
) -> CheckResult:
    """Compare the stream with the log since the last usable checkpoint.

    Args:
        js: JetStream context.
        stream: Stream name.
        subjects: The stream's subject filter.
        checkpoints: Stored checkpoints, oldest first.
        acked_position: The relay's acknowledged position, read before this call.
        log_positions: Reads publishable positions from the log.

    Raises:
        nats.errors.Error: NATS failed; check again later.
        TimeoutError: Reading the stream stalled.
    """
    info = await js.stream_info(stream)
    first, last = info.state.first_seq, info.state.last_seq
    base, fell_back = await _base_checkpoint(js, stream, checkpoints, first, last)
    if fell_back:
        logger.warning(
            "stream no longer contains messages that were verified; verifying again from an "
            "earlier position",
            extra={
                "stream": stream,
                "position": base.verified_position,
                "sequence": base.start_sequence,
            },
        )

    start = base.start_sequence + 1
    refs = await read_refs(js, stream, subjects, max(start, first), last) if last >= start else []

    verified_floor = base.verified_position
    if first > start and refs:
        # The stream's limits discarded part of the range; positions below the
        # first message still stored are not looked for.
        # NOTE: this assumes stream order follows log order around that point.
        verified_floor = max(verified_floor, refs[0].position - 1)

    present = {ref.position for ref in refs}
    expected = (
        await log_positions(verified_floor, acked_position)
        if (acked_position > verified_floor)
        else []
    )
    missing = tuple(position for position in expected if position not in present)
    verified = missing[0] - 1 if missing else max(verified_floor, acked_position)
    checkpoint = _next_checkpoint(base, refs, verified)
    highest = max((ref.position for ref in refs), default=0)
    return CheckResult(checkpoint, missing, len(refs), fell_back, highest)


async def check_by_acks(
    js: JetStreamContext,
    *,
    stream: str,
    base: Checkpoint,
    acks: Sequence[tuple[int, int, str]],
    acked_position: int,
    barrier: int,
) -> CheckResult | None:
    """Verify ``(V, A]`` from acknowledgements; None when the stream lost messages.

    Args:
        js: JetStream context.
        stream: Stream name.
        base: The latest checkpoint.
        acks: ``(position, sequence, msg id)`` of every acknowledgement for a
            position above ``base.verified_position``.
        acked_position: The relay's acknowledged position ``A``.
        barrier: Messages with positions up to here may have been stored out of
            log order (sent before a reconnect, or by an earlier relay).

    Raises:
        nats.errors.Error: NATS failed; check again later.
    """
    verified = max(base.verified_position, acked_position)
    relevant = [ack for ack in acks if base.verified_position < ack[0] <= acked_position]
    # The highest sequence known to hold a checked or acknowledged message:
    # when it is intact, so is everything below it.
    top_sequence, top_id = max(((a[1], a[2]) for a in relevant), default=(0, ""))
    sequence, msg_id = base.end_sequence, base.end_msg_id
    if top_sequence > sequence:
        sequence, msg_id = top_sequence, top_id
    if sequence:
        try:
            stored = await js.get_msg(stream, seq=sequence)
        except NotFoundError:
            return None
        if (stored.headers or {}).get(HEADER_MSG_ID) != msg_id:
            return None
    if not relevant:
        return CheckResult(replace(base, verified_position=verified), (), 0, False)
    # Once the acknowledged position has passed every message that may have
    # been stored out of order, any later position is stored after the
    # highest sequence acknowledged for a position up to it.
    start = base.start_sequence
    if acked_position >= barrier:
        start = max(start, top_sequence)
    return CheckResult(Checkpoint(verified, start, sequence, msg_id), (), 1, False)
