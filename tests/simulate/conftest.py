"""Fixtures of the simulator tests: a server whose sweeper runs every second."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.runtime import Runtime, build_runtime
from tests.conftest import make_settings


@pytest.fixture
def runtime(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A ledger runtime on each backend, with no expiry grace and a 1 s sweep interval."""
    built = build_runtime(
        make_settings(
            database_url,
            tmp_path,
            expiry_grace_seconds=0,
            expiry_sweep_interval_seconds=1.0,
        )
    )
    try:
        yield built
    finally:
        built.close()
