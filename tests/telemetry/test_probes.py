"""The gauges read from the database, polled through the store's own connections."""

from __future__ import annotations

import pytest

from ledger.runtime import Runtime
from ledger.telemetry.probes import projection_lags
from projections.database import DatabaseTarget
from projections.rebuild import pooled_projection_status, projection_status
from tests.projections.helpers import projector, target_of
from tests.projections.traffic import BASE, submit


def test_projection_lags_before_the_read_models_exist(runtime: Runtime) -> None:
    assert projection_lags(runtime.store) == []


def test_projection_lags_reuse_store_pool(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime.ledger.execute([submit("m1", "alpha", BASE)])
    built = projector(runtime)
    try:
        built.run_batch()
    finally:
        built.close()
    runtime.ledger.execute([submit("m2", "alpha", BASE)])
    expected = projection_status(runtime.store, target_of(runtime))
    assert expected
    assert all(status.lag > 0 for status in expected)

    def unexpected_connect(self: DatabaseTarget) -> None:
        raise AssertionError("the probe opened a connection of its own")

    # A projector pod's connection budget counts its ledger pool and a fixed
    # number of other connections. A connection opened per poll is not among them.
    monkeypatch.setattr(DatabaseTarget, "connect", unexpected_connect)
    for _ in range(3):
        assert pooled_projection_status(runtime.store, target_of(runtime)) == expected
        assert projection_lags(runtime.store) == [
            ({"projection": status.name}, float(status.lag)) for status in expected
        ]
