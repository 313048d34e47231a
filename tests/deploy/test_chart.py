"""The chart check passes on the real chart and fails on broken copies."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ledger.receipts.profiles import load_profiles
from tests.deploy.conftest import CHART, CheckRun


def helm_template(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), "template", "t", str(CHART), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def render(helm: Path, *args: str) -> list[dict[str, object]]:
    result = helm_template(helm, *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_chart_passes_checks(check_chart: CheckRun) -> None:
    result = check_chart()
    assert result.returncode == 0, result.stderr
    assert "values-production.yaml" in result.stdout


def test_chart_gate_fails_on_invalid_manifest(check_chart: CheckRun, chart_copy: Path) -> None:
    template = chart_copy / "templates" / "server-deployment.yaml"
    text = template.read_text()
    template.write_text(text.replace('args: ["serve"]', 'args: ["serve"]\n          cmd: x', 1))

    result = check_chart("--chart", str(chart_copy))

    assert result.returncode == 1
    assert "'cmd' was unexpected" in result.stderr


def test_chart_gate_fails_on_schema_violation(check_chart: CheckRun, tmp_path: Path) -> None:
    values = tmp_path / "bad.yaml"
    values.write_text("settings:\n  dbPoolSize: 0\n  commitMaxBatchh: 10\n")

    result = check_chart("--values", str(values))

    assert result.returncode == 1
    assert "dbPoolSize" in result.stderr
    assert "commitMaxBatchh" in result.stderr


def test_chart_gate_fails_on_connection_budget(check_chart: CheckRun, tmp_path: Path) -> None:
    values = tmp_path / "small-db.yaml"
    values.write_text("database:\n  maxConnections: 50\n")

    result = check_chart("--values", str(values))

    assert result.returncode == 1
    assert "PostgreSQL connections at full scale are 86" in result.stderr
    assert "server 6 x 10" in result.stderr


def test_chart_gate_fails_on_unknown_alert_metric(check_chart: CheckRun, chart_copy: Path) -> None:
    rules = chart_copy / "templates" / "prometheusrule.yaml"
    rules.write_text(rules.read_text().replace("ledger_relay_lag_events", "ledger_relay_lagg"))

    result = check_chart("--chart", str(chart_copy))

    assert result.returncode == 1
    assert "metric ledger_relay_lagg is not exported" in result.stderr


def test_chart_gate_fails_on_monitor_port(check_chart: CheckRun, chart_copy: Path) -> None:
    monitor = chart_copy / "templates" / "servicemonitor.yaml"
    monitor.write_text(monitor.read_text().replace("- port: metrics", "- port: prom"))

    result = check_chart("--chart", str(chart_copy))

    assert result.returncode == 1
    assert "has no port named 'prom'" in result.stderr


def test_chart_pods_run_without_table_creation(helm: Path) -> None:
    manifests = render(helm)
    deployments = [m for m in manifests if m["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {  # type: ignore[index]
        "t-smsledger-server",
        "t-smsledger-relay",
        "t-smsledger-projector",
    }
    for deployment in deployments:
        container = deployment["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["SMSLEDGER_CREATE_TABLES"] == "false"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]

    job = next(m for m in manifests if m["kind"] == "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"  # type: ignore[index]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]  # type: ignore[index]


def test_chart_gives_nats_url_to_relay_only(helm: Path) -> None:
    for manifest in render(helm):
        if manifest["kind"] not in ("Deployment", "Job"):
            continue
        container = manifest["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
        names = {e["name"] for e in container["env"]}
        relay = manifest["metadata"]["name"] == "t-smsledger-relay"  # type: ignore[index]
        assert ("SMSLEDGER_NATS_URL" in names) is relay
        assert "SMSLEDGER_DATABASE_URL" in names
        assert "SMSLEDGER_MASTER_KEY" in names


def test_chart_server_uses_grpc_probes(helm: Path) -> None:
    server = next(
        m
        for m in render(helm)
        if m["metadata"]["name"] == "t-smsledger-server"  # type: ignore[index]
        and m["kind"] == "Deployment"
    )
    container = server["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    assert container["readinessProbe"]["grpc"] == {
        "port": 50051,
        "service": "ledger.v1.LedgerService",
    }
    assert container["livenessProbe"]["grpc"] == {"port": 50051}


PROFILES_TOML = """\
[connections.uk-smpp-a]
format = "smpp-text"
timezone = "+03:00"
stuck_after_seconds = 3600
"""


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def by_name(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{m['kind']}/{m['metadata']['name']}": m for m in manifests}


def test_chart_mounts_connection_profiles(helm: Path, tmp_path: Path) -> None:
    profiles = tmp_path / "connections.toml"
    profiles.write_text(PROFILES_TOML)
    # The text the chart ships must be a profiles file the ledger accepts.
    assert set(load_profiles(profiles)) == {"uk-smpp-a"}

    manifests = by_name(render(helm, "--set-file", f"connectionProfiles.toml={profiles}"))

    config_map = manifests["ConfigMap/t-smsledger-connections"]
    assert config_map["data"] == {"connections.toml": PROFILES_TOML}
    checksums = set()
    for name in ("Deployment/t-smsledger-server", "Deployment/t-smsledger-projector"):
        deployment = manifests[name]
        spec = pod_spec(deployment)
        container = spec["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        path = Path(env["SMSLEDGER_CONNECTIONS_FILE"])
        mount = next(m for m in container["volumeMounts"] if m["name"] == "connection-profiles")
        assert mount == {
            "name": "connection-profiles",
            "mountPath": str(path.parent),
            "readOnly": True,
        }
        volume = next(v for v in spec["volumes"] if v["name"] == "connection-profiles")
        assert volume["configMap"]["name"] == "t-smsledger-connections"
        assert path.name in config_map["data"]
        checksums.add(
            deployment["spec"]["template"]["metadata"]["annotations"][
                "checksum/connection-profiles"
            ]
        )
    assert len(checksums) == 1, "a change of the profiles must roll every pod that reads them"

    # The relay reads no profiles, and the migration Job runs before the
    # ConfigMap exists on a first install.
    for name in ("Deployment/t-smsledger-relay", "Job/t-smsledger-migrate"):
        container = pod_spec(manifests[name])["containers"][0]
        assert "SMSLEDGER_CONNECTIONS_FILE" not in {e["name"] for e in container["env"]}
        assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]


def test_chart_mounts_connection_profiles_from_secret(helm: Path) -> None:
    manifests = by_name(render(helm, "--set", "connectionProfiles.existingSecret=carrier-profiles"))

    assert not any(key.startswith("ConfigMap/") for key in manifests)
    for name in ("Deployment/t-smsledger-server", "Deployment/t-smsledger-projector"):
        spec = pod_spec(manifests[name])
        volume = next(v for v in spec["volumes"] if v["name"] == "connection-profiles")
        assert volume["secret"] == {
            "secretName": "carrier-profiles",
            "items": [{"key": "connections.toml", "path": "connections.toml"}],
        }
        env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
        assert env["SMSLEDGER_CONNECTIONS_FILE"] == "/etc/smsledger/connections.toml"


def test_chart_without_profiles_sets_no_connections_file(helm: Path) -> None:
    manifests = by_name(render(helm))

    assert not any(key.startswith("ConfigMap/") for key in manifests)
    for manifest in manifests.values():
        if manifest["kind"] in ("Deployment", "Job"):
            container = pod_spec(manifest)["containers"][0]
            assert "SMSLEDGER_CONNECTIONS_FILE" not in {e["name"] for e in container["env"]}


def test_chart_gate_passes_with_connection_profiles(check_chart: CheckRun, tmp_path: Path) -> None:
    values = tmp_path / "profiles.yaml"
    values.write_text(yaml.safe_dump({"connectionProfiles": {"toml": PROFILES_TOML}}))

    result = check_chart("--values", str(values))

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--set", "connectionProfiles.existingSecret=p", "--set", "connectionProfiles.toml=x"],
            "set toml or existingSecret, not both",
        ),
        (
            ["--set", "connectionProfiles.toml=x", "--set", "settings.connectionsFile=/etc/c.toml"],
            "settings.connectionsFile must stay null when connectionProfiles is set",
        ),
    ],
)
def test_chart_rejects_two_profile_sources(helm: Path, args: list[str], expected: str) -> None:
    result = helm_template(helm, *args)

    assert result.returncode != 0
    assert expected in result.stderr
