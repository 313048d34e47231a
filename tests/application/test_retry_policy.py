"""Retry advice follows the configured policy: settings, then the connection's profile."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledger.application.commands import RecordReceipt
from ledger.application.results import CommandResult
from ledger.domain.message import RetryAdvice
from ledger.domain.outcomes import Status
from ledger.receipts.profiles import ProfileConfigError, profiles_from_toml
from ledger.runtime import Runtime, build_runtime, retry_policy
from tests.application.test_ledger import accept, submit
from tests.conftest import make_settings

Build = Callable[..., Runtime]


def failed(carrier_id: str = "ab12", connection: str = "carrier-a") -> RecordReceipt:
    return RecordReceipt(
        tenant="acme",
        status=Status.FAILED,
        connection=connection,
        carrier_message_id=carrier_id,
        final=True,
        permanent=False,
        error_code="034",
    )


def advice_after_failure(runtime: Runtime, connection: str = "carrier-a") -> RetryAdvice:
    outcomes = runtime.ledger.execute(
        [submit(carrier=connection), accept(), failed(connection=connection)]
    )
    result = outcomes[2]
    assert isinstance(result, CommandResult), result
    assert result.retry is not None
    return result.retry


@pytest.fixture
def build(tmp_path: Path) -> Iterator[Build]:
    built: list[Runtime] = []

    def make(**overrides: object) -> Runtime:
        url = f"sqlite:///{tmp_path / f'ledger-{len(built)}.db'}"
        runtime = build_runtime(make_settings(url, tmp_path, **overrides))
        built.append(runtime)
        return runtime

    yield make
    for runtime in built:
        runtime.close()


def test_default_policy_advises_a_retry(build: Build) -> None:
    advice = advice_after_failure(build())
    assert advice.retry
    assert advice.attempts_left == 2


def test_configured_maximum_stops_the_advice(build: Build) -> None:
    advice = advice_after_failure(build(retry_max_attempts=1))
    assert not advice.retry
    assert advice.attempts_left == 0
    assert "maximum of 1 attempts" in advice.reason


def test_configured_maximum_raises_attempts_left(build: Build) -> None:
    advice = advice_after_failure(build(retry_max_attempts=7))
    assert advice.retry
    assert advice.attempts_left == 6


def test_configured_backoff_sets_the_advised_wait(build: Build) -> None:
    runtime = build(retry_base_delay_seconds=90, retry_jitter=0)
    start = datetime.now(UTC)
    advice = advice_after_failure(runtime)
    end = datetime.now(UTC)
    assert advice.not_before is not None
    assert start + timedelta(seconds=90) <= advice.not_before <= end + timedelta(seconds=90)


def test_settings_become_the_ledger_policy(tmp_path: Path) -> None:
    settings = make_settings(
        "sqlite:///unused.db",
        tmp_path,
        retry_max_attempts=4,
        retry_base_delay_seconds=10,
        retry_backoff_multiplier=3,
        retry_max_delay_seconds=600,
        retry_jitter=0.5,
    )
    policy = retry_policy(settings)
    assert policy.max_attempts == 4
    assert policy.base_delay == timedelta(seconds=10)
    assert policy.multiplier == 3
    assert policy.max_delay == timedelta(minutes=10)
    assert policy.jitter == 0.5


def test_connection_maximum_overrides_the_setting(build: Build, tmp_path: Path) -> None:
    profiles = tmp_path / "connections.toml"
    profiles.write_text(
        "[connections.carrier-a]\nretry_max_attempts = 1\n[connections.carrier-b]\n"
    )
    runtime = build(connections_file=profiles, retry_max_attempts=5)
    assert not advice_after_failure(runtime, "carrier-a").retry
    policy = runtime.ledger.config.retry_policy_for("carrier-b")
    assert policy.max_attempts == 5


@pytest.mark.parametrize("value", ["0", "-1", "true", '"3"', "1.5"])
def test_connection_maximum_must_be_a_positive_whole_number(value: str) -> None:
    with pytest.raises(ProfileConfigError) as caught:
        profiles_from_toml(f"[connections.c]\nretry_max_attempts = {value}\n")
    assert caught.value.field == "retry_max_attempts"
