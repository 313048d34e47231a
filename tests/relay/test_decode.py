"""The relay's event decoder builds the same events as eventsourcing's mapper."""

from __future__ import annotations

from ledger.relay.decode import EventDecoder
from ledger.runtime import Runtime
from tests.relay.helpers import ingest


def test_decoder_matches_mapper(runtime: Runtime):
    ingest(runtime, 60)
    mapper = runtime.store.app.mapper
    decoder = EventDecoder(mapper)
    assert decoder.fast

    notifications = runtime.store.notifications(1, 10_000)
    assert len(notifications) > 200
    for notification in notifications:
        expected = mapper.to_domain_event(notification)
        decoded = decoder.decode(notification)
        assert type(decoded) is type(expected)
        assert vars(decoded) == vars(expected), notification.id
