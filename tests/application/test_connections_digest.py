"""Nodes of one database that start with different connection profiles are logged."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ledger.receipts.profiles import profiles_digest
from ledger.runtime import CONNECTIONS_DIGEST, build_runtime, check_connections_digest
from ledger.settings import Settings
from tests.conftest import make_settings

FIRST = """\
[connections.carrier-a]
status_synonyms = { ACKED = "accepted" }
stuck_after_seconds = 3600
"""
# The same profiles written differently, so with the same canonical content.
FIRST_REWRITTEN = """\
# Carrier A over SMPP.
[connections.carrier-a]
stuck_after_seconds = 3600

status_synonyms = { "ACKED" = 'accepted' }
"""
SECOND = """\
[connections.carrier-a]
status_synonyms = { ACKED = "accepted", ZZPRIVATE = "delivered" }
stuck_after_seconds = 3600
"""


def test_digest_is_of_the_canonical_content() -> None:
    assert profiles_digest(FIRST) == profiles_digest(FIRST_REWRITTEN)
    assert profiles_digest(FIRST) != profiles_digest(SECOND)
    assert len(profiles_digest(FIRST)) == 64


def digest_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "ledger.runtime" and r.levelno >= logging.WARNING
    ]


def start_node(settings: Settings, tmp_path: Path, name: str, profiles: str) -> str | None:
    """Build and close a runtime with its own profiles file, and return the digest now recorded."""
    path = tmp_path / f"{name}.toml"
    path.write_text(profiles)
    runtime = build_runtime(settings.model_copy(update={"connections_file": path}))
    try:
        assert runtime.connections_digest == profiles_digest(profiles)
        with runtime.store._cursor() as curs:
            return runtime.store.side.select_digest(curs, CONNECTIONS_DIGEST)
    finally:
        runtime.close()


def test_nodes_with_different_profiles(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ledger.runtime")
    settings = make_settings(database_url, tmp_path)
    first, second = profiles_digest(FIRST), profiles_digest(SECOND)

    assert start_node(settings, tmp_path, "a", FIRST) == first
    assert start_node(settings, tmp_path, "b", FIRST_REWRITTEN) == first
    assert digest_warnings(caplog) == []

    assert start_node(settings, tmp_path, "c", SECOND) == second
    warnings = digest_warnings(caplog)
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert first in message
    assert second in message
    assert "ZZPRIVATE" not in message
    assert "carrier-a" not in message

    # Recorded now: the next node with the same profiles starts quietly.
    assert start_node(settings, tmp_path, "d", SECOND) == second
    assert len(digest_warnings(caplog)) == 1


def test_node_without_profiles_records_nothing(database_url: str, tmp_path: Path) -> None:
    runtime = build_runtime(make_settings(database_url, tmp_path))
    try:
        assert runtime.connections_digest is None
        with runtime.store._cursor() as curs:
            assert runtime.store.side.select_digest(curs, CONNECTIONS_DIGEST) is None
    finally:
        runtime.close()


def test_missing_table_is_logged_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    runtime = build_runtime(make_settings(database_url, tmp_path))
    try:
        with runtime.store._cursor(commit=True) as curs:
            curs.execute(f"DROP TABLE {runtime.store.side.profile_digests}")
        caplog.set_level(logging.INFO, logger="ledger.runtime")
        check_connections_digest(runtime.store, profiles_digest(FIRST))
    finally:
        runtime.close()
    [warning] = digest_warnings(caplog)
    assert "smsledger migrate" in warning.getMessage()
