"""Webhook settings in connection profiles, and the routes built from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.receipts.profiles import WEBHOOK_PROVIDERS, ProfileConfigError, profiles_from_toml
from ledger.settings import ConfigurationError, Settings
from ledger.webhooks.app import build_routes
from ledger.webhooks.verifiers import SIGNS_URL, TOKEN_PROVIDERS
from tests.webhooks.conftest import CONNECTIONS


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def test_every_provider_has_a_verifier() -> None:
    from ledger.webhooks.sns import SnsVerifier
    from ledger.webhooks.verifiers import build_verifiers

    async def fetch(url: str) -> bytes:
        raise AssertionError(url)

    assert set(build_verifiers(SnsVerifier(fetch))) == set(WEBHOOK_PROVIDERS)
    assert set(WEBHOOK_PROVIDERS) >= SIGNS_URL | TOKEN_PROVIDERS


def test_profiles_with_webhooks_load() -> None:
    profiles = profiles_from_toml(CONNECTIONS)
    twilio = profiles["twilio-a"]
    assert twilio.stuck_after_seconds == 60
    assert twilio.webhook is not None
    assert twilio.webhook.format == "twilio"
    assert twilio.webhook.secrets == ("twilio-new-token", "twilio-old-token")
    assert "twilio-new-token" not in repr(twilio)
    assert profiles["vonage-md5-a"].webhook.signature_method == "md5hash"  # type: ignore[union-attr]
    assert profiles["smpp-a"].webhook is None


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ('provider = "carrier-pigeon"\ntenant = "acme"\nsecrets = ["x"]', "webhook.provider"),
        ('provider = "twilio"\nsecrets = ["x"]', "webhook.tenant"),
        ('provider = "twilio"\ntenant = "Acme!"\nsecrets = ["x"]', "webhook.tenant"),
        ('provider = "twilio"\ntenant = "acme"', "webhook.secrets"),
        ('provider = "twilio"\ntenant = "acme"\nsecrets = []', "webhook.secrets"),
        ('provider = "twilio"\ntenant = "acme"\nsecrets = ["x"]\nextra = 1', "webhook.extra"),
        ('provider = "sns"\ntenant = "acme"', "webhook.topic_arns"),
        (
            'provider = "vonage-sms"\ntenant = "acme"\nsecrets = ["x"]\nsignature_method = "crc"',
            "webhook.signature_method",
        ),
        (
            'provider = "twilio"\ntenant = "acme"\nsecrets = ["x"]\npublic_base_url = "ftp://h"',
            "webhook.public_base_url",
        ),
        (
            'provider = "twilio"\ntenant = "acme"\nsecrets = ["x"]\nmax_age_seconds = 0',
            "webhook.max_age_seconds",
        ),
    ],
)
def test_invalid_webhook_table_names_field(table: str, field: str) -> None:
    with pytest.raises(ProfileConfigError) as raised:
        profiles_from_toml(f"[connections.c1.webhook]\n{table}\n")
    assert raised.value.field == field
    assert raised.value.connection == "c1"


def test_secret_not_in_error_message() -> None:
    with pytest.raises(ProfileConfigError) as raised:
        profiles_from_toml(
            '[connections.c1.webhook]\nprovider = "twilio"\ntenant = "acme"\n'
            'secrets = ["hunter2-secret", ""]\n'
        )
    assert "hunter2" not in str(raised.value)


def test_url_signing_provider_needs_base_url() -> None:
    profiles = profiles_from_toml(
        '[connections.c1.webhook]\nprovider = "plivo"\ntenant = "acme"\nsecrets = ["x"]\n'
    )
    with pytest.raises(ConfigurationError, match="public_base_url"):
        build_routes(profiles, settings())
    routes = build_routes(profiles, settings(webhook_public_base_url="https://h.example/sms/"))
    assert routes["c1"].url == "https://h.example/sms/hooks/c1"


def test_profile_base_url_wins(tmp_path: Path) -> None:
    profiles = profiles_from_toml(
        '[connections.c1.webhook]\nprovider = "twilio"\ntenant = "acme"\nsecrets = ["x"]\n'
        'public_base_url = "https://own.example:8443/"\n'
    )
    routes = build_routes(profiles, settings(webhook_public_base_url="https://h.example"))
    assert routes["c1"].url == "https://own.example:8443/hooks/c1"
