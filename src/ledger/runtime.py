"""Builds the ledger's parts from settings (the composition root)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from eventsourcing.persistence import PersistenceError

from ledger.application.ledger import Ledger, LedgerConfig
from ledger.domain.message import RetryPolicy
from ledger.errors import UnavailableError
from ledger.privacy.subjects import SubjectCrypto
from ledger.receipts.model import CarrierProfile
from ledger.receipts.profiles import ProfileConfigError, profiles_digest, profiles_from_toml
from ledger.settings import ConfigurationError, Settings
from ledger.storage.store import LedgerStore, StorageConfig

__all__ = [
    "Runtime",
    "build_runtime",
    "check_connections_digest",
    "load_connections",
    "retry_policy",
    "storage_config",
]

logger = logging.getLogger(__name__)

CONNECTIONS_DIGEST = "connections"
"""Name under which the connection profiles' digest is recorded in the database."""


def storage_config(settings: Settings, *, create_tables: bool = True) -> StorageConfig:
    """Return the storage configuration the settings describe."""
    return StorageConfig(
        url=settings.resolved_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        lock_timeout_seconds=settings.db_lock_timeout_seconds,
        create_tables=create_tables,
    )


def retry_policy(settings: Settings) -> RetryPolicy:
    """Return the retry advice rules the settings describe."""
    return RetryPolicy(
        max_attempts=settings.retry_max_attempts,
        base_delay=timedelta(seconds=settings.retry_base_delay_seconds),
        max_delay=timedelta(seconds=settings.retry_max_delay_seconds),
        multiplier=settings.retry_backoff_multiplier,
        jitter=settings.retry_jitter,
    )


def ledger_config(
    settings: Settings, connections: dict[str, CarrierProfile] | None = None
) -> LedgerConfig:
    """Return the ledger rules the settings describe."""
    return LedgerConfig(
        default_validity=timedelta(seconds=settings.default_validity_seconds),
        expiry_grace=timedelta(seconds=settings.expiry_grace_seconds),
        late_receipt_window=timedelta(seconds=settings.late_receipt_window_seconds),
        request_id_retention=timedelta(seconds=settings.request_id_retention_seconds),
        max_raw_bytes=settings.max_raw_payload_bytes,
        connections=connections or {},
        retry_policy=retry_policy(settings),
    )


@dataclass
class Runtime:
    """The ledger and what it is built from."""

    settings: Settings
    store: LedgerStore
    ledger: Ledger
    connections: dict[str, CarrierProfile] = field(default_factory=dict)
    connections_digest: str | None = None
    """SHA-256 of the connection profiles file's canonical content; None without a file."""

    def close(self) -> None:
        """Release database connections."""
        self.store.close()


def build_runtime(settings: Settings, *, create_tables: bool = True) -> Runtime:
    """Open storage and build the ledger for ``settings``."""
    connections, digest = _read_connections(settings)
    store = LedgerStore(storage_config(settings, create_tables=create_tables))
    if digest is not None:
        check_connections_digest(store, digest)
    crypto = SubjectCrypto(settings.master_key_bytes(), settings.previous_master_key_bytes())
    ledger = Ledger(store, crypto, ledger_config(settings, connections))
    return Runtime(settings, store, ledger, connections, digest)


def load_connections(settings: Settings) -> dict[str, CarrierProfile]:
    """Load carrier connection profiles from the configured file, if any."""
    return _read_connections(settings)[0]


def _read_connections(settings: Settings) -> tuple[dict[str, CarrierProfile], str | None]:
    """Return the configured profiles and the digest of their file (None without one)."""
    if settings.connections_file is None:
        return {}, None
    try:
        # Read once, so that the digest is of the content the profiles came from.
        text = Path(settings.connections_file).read_text(encoding="utf-8")
        return profiles_from_toml(text), profiles_digest(text)
    except (ProfileConfigError, OSError) as error:
        raise ConfigurationError(
            f"SMSLEDGER_CONNECTIONS_FILE={str(settings.connections_file)!r}: {error}"
        ) from error


def check_connections_digest(store: LedgerStore, digest: str) -> None:
    """Record the connection profiles' digest, warning when another one was recorded.

    Every node of a deployment should run with the same profiles, so a node
    that starts with other ones is logged. The digests alone are logged: the
    profiles may hold webhook secrets. The node's digest replaces the recorded
    one, so the warning comes once per change. A database that lacks the
    table (not migrated since it was added) is logged and otherwise ignored:
    the check never stops a node from starting.
    """
    try:
        recorded = store.record_digest(CONNECTIONS_DIGEST, digest)
    except (PersistenceError, UnavailableError) as error:
        logger.warning(
            "cannot compare the connection profiles with those other nodes started with "
            "(run smsledger migrate to create the table): %s",
            error,
            extra={"connections_digest": digest},
        )
        return
    if recorded is not None and recorded != digest:
        logger.warning(
            "connection profiles differ from those a node last started with: "
            "recorded digest %s, this node's digest %s; every node should load the same "
            "profiles file",
            recorded,
            digest,
            extra={"recorded_digest": recorded, "connections_digest": digest},
        )
