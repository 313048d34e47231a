"""Master-key rotation: reads work throughout, blind indexes keep matching."""

from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path

import pytest

from ledger.domain.identity import message_aggregate_id
from ledger.privacy.rotation import rewrap_keys
from ledger.runtime import Runtime, build_runtime
from ledger.server.history import history_events
from ledger.settings import Settings
from tests.security.conftest import record_messages

NUMBER = "+447700900123"
OTHER = "+447700900456"


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def open_runtime(url: str, data_dir: Path, key: str, previous: str | None = None) -> Runtime:
    settings = Settings(
        database_url=url,
        data_dir=data_dir,
        master_key=key,  # type: ignore[arg-type]
        previous_master_keys=previous,  # type: ignore[arg-type]
        _env_file=None,  # type: ignore[call-arg]
    )
    return build_runtime(settings)


def key_id_of(runtime: Runtime, message_id: str) -> str:
    aggregate_id: uuid.UUID = message_aggregate_id("acme", message_id)
    return runtime.store.load_messages([aggregate_id])[aggregate_id].destination.key_id


def test_rotation_keeps_data_readable(database_url: str, tmp_path: Path) -> None:
    old, new = new_key(), new_key()
    runtime = open_runtime(database_url, tmp_path, old)
    record_messages(runtime, "acme", {"m1": NUMBER, "m2": OTHER})
    runtime.close()

    # Every node gets the new key first and keeps the old one for reading.
    runtime = open_runtime(database_url, tmp_path, new, previous=old)
    try:
        assert history_events(runtime.ledger, "acme", "m1")[0].destination == NUMBER
        record_messages(runtime, "acme", {"m3": NUMBER, "m4": "+447700900789"})
        assert key_id_of(runtime, "m3") == key_id_of(runtime, "m1")
        first = rewrap_keys(runtime.store, runtime.ledger.keyring.crypto)
        second = rewrap_keys(runtime.store, runtime.ledger.keyring.crypto)
    finally:
        runtime.close()
    # The two old subjects and the index key were wrapped again; m4's key was new.
    assert (first.rewrapped, first.current, first.unreadable) == (3, 1, 0)
    assert (second.rewrapped, second.current) == (0, 4)

    # Then the old key goes away.
    runtime = open_runtime(database_url, tmp_path, new)
    try:
        for message_id, number in (("m1", NUMBER), ("m2", OTHER), ("m3", NUMBER)):
            assert history_events(runtime.ledger, "acme", message_id)[0].destination == number
        record_messages(runtime, "acme", {"m5": NUMBER})
        assert key_id_of(runtime, "m5") == key_id_of(runtime, "m1")
    finally:
        runtime.close()


def test_rotation_old_key_alone_rejected(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    old, new = new_key(), new_key()
    open_runtime(url, tmp_path, old).close()
    runtime = open_runtime(url, tmp_path, new, previous=old)
    rewrap_keys(runtime.store, runtime.ledger.keyring.crypto)
    runtime.close()
    with pytest.raises(ValueError, match="blind-index key does not verify"):
        open_runtime(url, tmp_path, old)


def test_rotation_previous_keys_validated() -> None:
    with pytest.raises(ValueError, match="key 2 decodes to 3 bytes"):
        Settings(
            master_key=new_key(),  # type: ignore[arg-type]
            previous_master_keys=f"{new_key()},{base64.b64encode(b'abc').decode()}",  # type: ignore[arg-type]
            _env_file=None,  # type: ignore[call-arg]
        )
