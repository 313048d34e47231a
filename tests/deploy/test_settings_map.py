"""Chart values, generated docs and settings stay one-to-one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from ledger.settings import ConfigurationError, Settings, load_settings
from tests.deploy.conftest import CHART, load_script

gen_config_docs = load_script("gen_config_docs")
gen_chart_schema = load_script("gen_chart_schema")


def test_values_name_every_setting() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    in_values = set(values["settings"]) | set(values["secretSettings"])

    expected = {gen_chart_schema.camel(name) for name in Settings.model_fields}
    assert in_values - expected == set(), "values.yaml names settings that do not exist"
    assert expected - in_values == set(), "settings missing from values.yaml"


def test_rendered_env_names_are_settings(helm: Path) -> None:
    text = subprocess.run(
        [str(helm), "template", "t", str(CHART)], capture_output=True, text=True, check=True
    ).stdout
    server = next(
        d
        for d in yaml.safe_load_all(text)
        if d and d["metadata"]["name"] == "t-smsledger-server" and d["kind"] == "Deployment"
    )
    env = server["spec"]["template"]["spec"]["containers"][0]["env"]
    names = {e["name"] for e in env if e["name"].startswith("SMSLEDGER_")}

    known = {f"SMSLEDGER_{name.upper()}" for name in Settings.model_fields}
    assert names - known == set()
    # Every setting but the relay's NATS URL and the unset files and keys.
    assert known - names == {
        "SMSLEDGER_NATS_URL",
        "SMSLEDGER_CONNECTIONS_FILE",
        "SMSLEDGER_TOKENS_FILE",
        "SMSLEDGER_TLS_CERT_FILE",
        "SMSLEDGER_TLS_KEY_FILE",
        "SMSLEDGER_TLS_CLIENT_CA_FILE",
        "SMSLEDGER_PREVIOUS_MASTER_KEYS",
        "SMSLEDGER_ERASURE_LOG_FILE",
        "SMSLEDGER_CHECKPOINT_KEY",
        "SMSLEDGER_CHECKPOINT_FILE",
    }


def test_configuration_doc_is_fresh() -> None:
    current = (Path(gen_config_docs.TARGET)).read_text()
    assert current == gen_config_docs.render(), "run: python scripts/gen_config_docs.py"


def test_chart_schema_is_fresh() -> None:
    current = Path(gen_chart_schema.TARGET).read_text()
    assert current == gen_chart_schema.render(), "run: python scripts/gen_chart_schema.py"


def test_configuration_doc_lists_every_setting() -> None:
    text = Path(gen_config_docs.TARGET).read_text()
    for name in Settings.model_fields:
        assert f"`SMSLEDGER_{name.upper()}`" in text


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"db_pool_size": 0}, "SMSLEDGER_DB_POOL_SIZE=0: Input should be greater than 0"),
        ({"log_format": "xml"}, "SMSLEDGER_LOG_FORMAT='xml': Input should be 'json' or 'text'"),
        (
            {"metrics_poll_interval_seconds": "soon"},
            "SMSLEDGER_METRICS_POLL_INTERVAL_SECONDS='soon': Input should be a valid number",
        ),
        (
            {"create_tables": "maybe"},
            "SMSLEDGER_CREATE_TABLES='maybe': Input should be a valid boolean",
        ),
        ({"metrics_address": "nohost"}, "SMSLEDGER_METRICS_ADDRESS='nohost': Value error, is not"),
        ({"grpc_address": "1.2.3.4:http"}, "SMSLEDGER_GRPC_ADDRESS='1.2.3.4:http': Value error"),
        ({"webhook_address": ":8080"}, "SMSLEDGER_WEBHOOK_ADDRESS=':8080': Value error"),
        ({"database_url": "mysql://x/y"}, "SMSLEDGER_DATABASE_URL='mysql://x/y': Value error"),
        ({"retry_base_delay_seconds": "inf"}, "Input should be a finite number"),
        ({"default_validity_seconds": 10**11}, "is more than 2,592,000 seconds"),
        ({"stuck_after_seconds": 10**20}, "is more than 315,360,000 seconds"),
    ],
)
def test_load_settings_error_names_setting(overrides: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_env_file=None, **overrides)
    assert expected in str(caught.value)


def test_load_settings_error_hides_master_key() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_env_file=None, master_key="not-base64!")
    assert "SMSLEDGER_MASTER_KEY=(secret)" in str(caught.value)
    assert "not-base64" not in str(caught.value)


def test_load_settings_error_hides_database_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_env_file=None, database_url="mysql://ledger:s3cret@db/x")
    assert "mysql://ledger:***@db/x" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_empty_endpoint_addresses_are_allowed() -> None:
    settings = load_settings(_env_file=None, metrics_address="", webhook_address="")
    assert settings.metrics_address == ""
    assert settings.webhook_address == ""


def test_load_settings_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSLEDGER_METRICS_ADDRESS", "0.0.0.0:9999")
    monkeypatch.setenv("SMSLEDGER_CREATE_TABLES", "false")

    settings = load_settings(_env_file=None)

    assert settings.metrics_address == "0.0.0.0:9999"
    assert settings.create_tables is False
