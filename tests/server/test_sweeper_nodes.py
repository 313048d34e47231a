"""Two nodes sweeping the same overdue messages at once record one expiry each."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ledger.application.commands import SubmitMessage
from ledger.application.committer import GroupCommitter
from ledger.application.results import CommandResult
from ledger.domain.message import Message
from ledger.runtime import build_runtime
from ledger.server.sweeper import ExpirySweeper
from ledger.storage.records import to_micros
from tests.conftest import make_settings

MESSAGES = 60
BATCH = 7
"""Small sweep batches, so that each node runs many rounds that interleave."""
ROUNDS = 3


async def test_two_nodes_expire_each_message_once(postgres_schema_url: str, tmp_path: Path) -> None:
    settings = make_settings(postgres_schema_url, tmp_path, expiry_grace_seconds=0)
    nodes = [build_runtime(settings), build_runtime(settings)]
    committers = [GroupCommitter(node.ledger) for node in nodes]
    try:
        past = datetime.now(UTC) - timedelta(hours=2)
        submitted = nodes[0].ledger.execute(
            [
                SubmitMessage(
                    tenant="acme",
                    message_id=f"m{n}",
                    destination="+447700900123",
                    sender="ACME",
                    carrier="carrier-a",
                    validity=timedelta(minutes=1),
                    submitted_at=past,
                )
                for n in range(MESSAGES)
            ]
        )
        assert all(isinstance(o, CommandResult) for o in submitted)
        due = nodes[0].store.due_expiries(to_micros(datetime.now(UTC)), 1000)
        ids = {row.aggregate_id for row in due}
        assert len(ids) == MESSAGES

        for committer in committers:
            await committer.start()
        sweepers = [
            ExpirySweeper(node.ledger, committer, batch_size=BATCH)
            for node, committer in zip(nodes, committers, strict=True)
        ]
        appended = 0
        for _ in range(ROUNDS):
            counts = await asyncio.wait_for(
                asyncio.gather(*(sweeper.sweep_once() for sweeper in sweepers)), timeout=60
            )
            appended += sum(counts)

        assert appended == MESSAGES
        assert sum(sweeper.expired_total for sweeper in sweepers) == MESSAGES
        expired = Counter(
            aggregate_id
            for aggregate_id in ids
            for stored in nodes[1].store.history(aggregate_id)
            if isinstance(stored.event, Message.Expired)
        )
        assert set(expired) == ids
        assert set(expired.values()) == {1}
        assert nodes[1].store.due_expiries(to_micros(datetime.now(UTC)), 10) == []
    finally:
        for committer in committers:
            await committer.stop()
        for node in nodes:
            node.close()
