"""Erasure on the event stream: the erasure event is published, the number never is."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.privacy.erasure import Eraser
from ledger.relay import Relay
from ledger.runtime import Runtime
from tests.relay.helpers import make_config, read_stream, running, unique_name, wait_acked
from tests.security.conftest import record_messages
from tests.support.servers import NatsServer

pytestmark = pytest.mark.nats

NUMBER = "+447700900123"
NEEDLES = ("447700900123", "07700900123")


def store_files_containing(store_dir: Path, needle: bytes) -> list[Path]:
    """Return the files under a NATS store directory whose bytes contain ``needle``."""
    return [p for p in store_dir.rglob("*") if p.is_file() and needle in p.read_bytes()]


async def test_erasure_event_on_stream(runtime: Runtime, throwaway_nats: NatsServer) -> None:
    record_messages(runtime, "acme", {"m1": NUMBER, "m2": NUMBER, "m3": "+447700900456"})
    Eraser(runtime.ledger).erase("acme", NUMBER)
    config = make_config(throwaway_nats.url, unique_name())
    relay = Relay(runtime.store, config)
    async with running(relay) as task:
        await wait_acked(relay, runtime.store.max_position(), task, 30)
    streamed = await read_stream(throwaway_nats.url, config.stream, config.stream_subjects)

    erased = [s for s in streamed if s.event.type == "DestinationErased"]
    assert sorted(s.event.message_id for s in erased) == ["m1", "m2"]
    for item in erased:
        assert item.subject == f"{config.subject_prefix}.acme.DestinationErased"
        assert item.event.WhichOneof("body") is None
    for item in streamed:
        payload = item.event.SerializeToString()
        for needle in NEEDLES:
            assert needle.encode() not in payload
    for needle in NEEDLES:
        assert store_files_containing(throwaway_nats.store_dir, needle.encode()) == []
    # The search reads the files that hold the messages.
    assert store_files_containing(throwaway_nats.store_dir, b"DestinationErased") != []
