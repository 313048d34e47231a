"""The outbox relay: publishes the ledger's log to NATS JetStream.

See ``docs/events.md`` for what consumers receive and which guarantees hold.
"""

from __future__ import annotations

from ledger.relay.config import DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX, RelayConfig, relay_config
from ledger.relay.relay import Relay, RelaySnapshot, RelayState
from ledger.relay.status import RelayStatus, read_relay_status, relay_lag

__all__ = [
    "DEFAULT_STREAM",
    "DEFAULT_SUBJECT_PREFIX",
    "Relay",
    "RelayConfig",
    "RelaySnapshot",
    "RelayState",
    "RelayStatus",
    "read_relay_status",
    "relay_config",
    "relay_lag",
]
