"""Group commit: a command whose deadline passes while it is queued records nothing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence

import pytest

from ledger.application.commands import Command
from ledger.application.committer import GroupCommitter
from ledger.application.ledger import Outcome
from ledger.application.results import CommandResult
from ledger.errors import DeadlineExceededError, NotFoundError
from ledger.runtime import Runtime
from tests.application.test_ledger import submit

QUEUED_TIMEOUT = 0.2
"""Seconds the queued command may wait, while the batch ahead of it blocks the worker longer."""


class SlowFirstBatch:
    """Blocks the first batch on the worker thread until the test releases it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(
        self, apply: Callable[[Sequence[Command]], list[Outcome]], commands: Sequence[Command]
    ) -> list[Outcome]:
        if not self.entered.is_set():
            self.entered.set()
            # Bounded, so that a broken test cannot hold the worker thread forever.
            assert self.release.wait(timeout=30), "the test never released the first batch"
        return apply(commands)


async def test_deadline_passing_in_queue_records_nothing(runtime: Runtime) -> None:
    slow = SlowFirstBatch()
    committer = GroupCommitter(runtime.ledger, around_batch=slow)
    await committer.start()
    try:
        ahead = asyncio.create_task(committer.execute([submit("ahead")], timeout=30))
        assert await asyncio.to_thread(slow.entered.wait, 10), "the first batch never started"

        queued = asyncio.create_task(committer.execute([submit("queued")], timeout=QUEUED_TIMEOUT))
        await asyncio.sleep(QUEUED_TIMEOUT * 2)
        assert committer.queued == 1
        slow.release.set()

        outcomes = await asyncio.wait_for(ahead, timeout=30)
        with pytest.raises(DeadlineExceededError):
            await asyncio.wait_for(queued, timeout=30)
    finally:
        slow.release.set()
        await committer.stop()

    assert isinstance(outcomes[0], CommandResult)
    assert [e.type for e in outcomes[0].events] == ["Submitted"]
    message, _ = runtime.ledger.get_message("acme", "ahead")
    assert message.version == 1
    with pytest.raises(NotFoundError):
        runtime.ledger.get_message("acme", "queued")
    assert runtime.store.max_position() == 1, "only the command ahead wrote an event"
    assert committer.stats.expired == 1
    assert committer.stats.commands == 1
