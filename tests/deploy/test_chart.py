"""The chart check passes on the real chart and fails on broken copies."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.deploy.conftest import CHART, CheckRun


def render(helm: Path, *args: str) -> list[dict[str, object]]:
    text = subprocess.run(
        [str(helm), "template", "t", str(CHART), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [doc for doc in yaml.safe_load_all(text) if doc]


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
