"""The relay_position row: epochs, fencing and checkpoints on both databases."""

from __future__ import annotations

import pytest

from ledger.relay.database import FencedError, open_relay_database
from ledger.relay.status import read_relay_status, relay_lag
from ledger.relay.tracking import MAX_CHECKPOINTS, Checkpoint
from ledger.runtime import Runtime
from tests.relay.helpers import ingest


async def test_claim_raises_epoch(runtime: Runtime):
    first = open_relay_database(runtime.store, "S1")
    await first.setup()
    try:
        assert await first.try_acquire()
        claimed = await first.claim("host:1", 1.0)
        assert claimed.record.epoch == 1
        assert claimed.record.acked_position == 0
        assert claimed.record.owner == "host:1"
        await first.release()

        assert await first.try_acquire()
        again = await first.claim("host:2", 1.0)
        assert again.record.epoch == 2
        assert again.record.owner == "host:2"
    finally:
        await first.close()


async def test_save_position_fenced_by_epoch(runtime: Runtime):
    database = open_relay_database(runtime.store, "S1")
    await database.setup()
    try:
        assert await database.try_acquire()
        old = (await database.claim("a", 1.0)).record.epoch
        await database.save_position(old, 42)
        new = (await database.claim("b", 1.0)).record
        assert new.acked_position == 42

        with pytest.raises(FencedError, match="superseded"):
            await database.save_position(old, 50)
        with pytest.raises(FencedError, match="superseded"):
            await database.save_checkpoints(old, (Checkpoint(1, 2, 3, "x"),))

        await database.save_position(new.epoch, 60)
        assert read_relay_status(runtime.store, "S1").acked_position == 60
    finally:
        await database.close()


async def test_checkpoints_round_trip_and_cap(runtime: Runtime):
    database = open_relay_database(runtime.store, "S1")
    await database.setup()
    try:
        assert await database.try_acquire()
        epoch = (await database.claim("a", 1.0)).record.epoch
        checkpoints = tuple(Checkpoint(i, i + 1, i + 2, f"id-{i}") for i in range(30))
        await database.save_checkpoints(epoch, checkpoints)
        stored = (await database.claim("a", 1.0)).record.checkpoints
        assert stored == checkpoints[-MAX_CHECKPOINTS:]
    finally:
        await database.close()


async def test_streams_tracked_apart(runtime: Runtime):
    one = open_relay_database(runtime.store, "S1")
    two = open_relay_database(runtime.store, "S2")
    await one.setup()
    try:
        assert await one.try_acquire()
        assert await two.try_acquire()
        await one.save_position((await one.claim("a", 1.0)).record.epoch, 7)
        await two.save_position((await two.claim("a", 1.0)).record.epoch, 9)
        assert read_relay_status(runtime.store, "S1").acked_position == 7
        assert read_relay_status(runtime.store, "S2").acked_position == 9
    finally:
        await one.close()
        await two.close()


def test_status_before_any_relay(runtime: Runtime):
    last = ingest(runtime, 3)
    status = read_relay_status(runtime.store, "NEVER")
    assert status.acked_position == 0
    assert status.lag == last
    assert status.heartbeat_at is None
    assert relay_lag(runtime.store, "NEVER") == last
