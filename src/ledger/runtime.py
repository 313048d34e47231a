"""Builds the ledger's parts from settings (the composition root)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from ledger.application.ledger import Ledger, LedgerConfig
from ledger.domain.message import RetryPolicy
from ledger.privacy.subjects import SubjectCrypto
from ledger.receipts.model import CarrierProfile
from ledger.receipts.profiles import ProfileConfigError, load_profiles
from ledger.settings import ConfigurationError, Settings
from ledger.storage.store import LedgerStore, StorageConfig

__all__ = ["Runtime", "build_runtime", "retry_policy", "storage_config"]


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

    def close(self) -> None:
        """Release database connections."""
        self.store.close()


def build_runtime(settings: Settings, *, create_tables: bool = True) -> Runtime:
    """Open storage and build the ledger for ``settings``."""
    connections = load_connections(settings)
    store = LedgerStore(storage_config(settings, create_tables=create_tables))
    crypto = SubjectCrypto(settings.master_key_bytes(), settings.previous_master_key_bytes())
    ledger = Ledger(store, crypto, ledger_config(settings, connections))
    return Runtime(settings, store, ledger, connections)


def load_connections(settings: Settings) -> dict[str, CarrierProfile]:
    """Load carrier connection profiles from the configured file, if any."""
    if settings.connections_file is None:
        return {}
    try:
        return dict(load_profiles(settings.connections_file))
    except (ProfileConfigError, OSError) as error:
        raise ConfigurationError(
            f"SMSLEDGER_CONNECTIONS_FILE={str(settings.connections_file)!r}: {error}"
        ) from error
