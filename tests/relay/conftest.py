"""Fixtures of the relay tests: a stream name that is deleted afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.relay.helpers import delete_stream, unique_name


@pytest.fixture
async def stream_name(nats_url: str) -> AsyncIterator[str]:
    """A fresh stream name on the shared NATS server; the stream is deleted afterwards."""
    name = unique_name()
    yield name
    await delete_stream(nats_url, name)
