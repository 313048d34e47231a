"""Fast decoding of log entries agrees with eventsourcing's mapper."""

from __future__ import annotations

from datetime import datetime

import pytest

from ledger.runtime import Runtime
from projections.decode import LogDecoder
from projections.rebuild import rebuild
from tests.projections.helpers import projector, snapshot, target_of
from tests.projections.traffic import plans, run_rounds


def test_fast_decode_matches_mapper(runtime: Runtime) -> None:
    run_rounds(runtime.ledger, plans(30, seed=8))
    fast = LogDecoder(runtime.store.app.mapper)
    slow = LogDecoder(runtime.store.app.mapper)
    slow.fast = False
    assert fast.fast, "the ledger stores plain JSON, so the fast path applies"
    notifications = runtime.store.notifications(1, 10_000)
    assert len(notifications) > 100
    for notification in notifications:
        quick = fast.decode(notification)
        full = slow.decode(notification)
        assert quick.position == full.position
        assert quick.aggregate_id == full.aggregate_id
        assert quick.version == full.version
        assert quick.kind is full.kind
        assert quick.recorded_at == full.recorded_at
        assert quick.occurred_at == full.occurred_at
        for name, value in full.data.items():
            if isinstance(value, datetime | bytes) or name.startswith("originator"):
                continue
            assert quick.data[name] == value, (full.kind.__name__, name)


def test_mapper_decoding_gives_same_rows(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    run_rounds(runtime.ledger, plans(40, seed=12))
    built = projector(runtime)
    built.catch_up()
    built.close()
    target = target_of(runtime)
    monkeypatch.setattr("projections.decode._plain_json", lambda mapper: False)
    rebuild(runtime.store, target, swap=False)
    conn = target.connect()
    try:
        assert snapshot(conn, shadow=True) == snapshot(conn)
    finally:
        conn.close()
