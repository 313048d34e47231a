"""Write deploy/helm/smsledger/values.schema.json, its settings part taken from the settings model.

Each ``settings`` key is a setting's name in camelCase, with the type and
bounds that pydantic gives it. Null is allowed too, and leaves the variable
unset. An unknown key is an error, so a misspelt setting fails ``helm lint``
and ``helm template``. Usage: ``python scripts/gen_chart_schema.py`` rewrites the
file; ``--check`` exits with 1 when it is stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ledger.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "deploy" / "helm" / "smsledger" / "values.schema.json"

SECRET_SETTINGS = ("database_url", "master_key", "nats_url")
"""Settings the chart reads from Secrets (``secretSettings``), never from plain values."""

_KEPT = ("type", "enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def camel(name: str) -> str:
    """Return ``snake_case`` as ``camelCase``."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _setting_schema(prop: dict[str, Any]) -> dict[str, Any]:
    variants = prop.get("anyOf", [prop])
    types: list[str] = ["null"]
    result: dict[str, Any] = {"description": prop.get("description", "")}
    for variant in variants:
        kind = variant.get("type")
        if kind and kind != "null":
            types.append(kind)
            # Helm reads every number as a float, so an integer setting accepts
            # whole floats: "integer" in JSON Schema already does.
            result.update({k: v for k, v in variant.items() if k in _KEPT and k != "type"})
    result["type"] = sorted(set(types))
    if "enum" in result:
        result["enum"] = [*result["enum"], None]
    return result


def settings_schema() -> dict[str, Any]:
    """Return the schema of a ``settings`` map (every key optional)."""
    properties = Settings.model_json_schema()["properties"]
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            camel(name): _setting_schema(prop)
            for name, prop in properties.items()
            if name not in SECRET_SETTINGS
        },
    }


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


_INT = {"type": "integer", "minimum": 0}
_POSITIVE = {"type": "integer", "minimum": 1}
_STR = {"type": "string"}
_BOOL = {"type": "boolean"}
_ANY_OBJECT = {"type": "object"}
_SECRET_REF = _object(
    {"secretName": {"type": "string", "minLength": 1}, "key": _STR}, ["secretName", "key"]
)


def _component(extra: dict[str, Any]) -> dict[str, Any]:
    properties = {
        "settings": {"$ref": "#/$defs/settings"},
        "extraConnections": _INT,
        "resources": _ANY_OBJECT,
        "terminationGracePeriodSeconds": _INT,
        "nodeSelector": _ANY_OBJECT,
        "tolerations": {"type": "array"},
        "affinity": _ANY_OBJECT,
        **extra,
    }
    return _object(properties, ["settings", "extraConnections", "resources"])


def chart_schema() -> dict[str, Any]:
    """Return the whole values schema."""
    pdb = _object({"enabled": _BOOL, "minAvailable": _INT}, ["enabled", "minAvailable"])
    return {
        "$schema": "https://json-schema.org/draft-07/schema#",
        "title": "smsledger chart values",
        "type": "object",
        "$defs": {"settings": settings_schema()},
        "required": ["image", "secretSettings", "settings", "database", "server", "service"],
        "properties": {
            "image": _object(
                {
                    "repository": {"type": "string", "minLength": 1},
                    "tag": _STR,
                    "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                },
                ["repository"],
            ),
            "imagePullSecrets": {"type": "array"},
            "serviceAccount": _object({"create": _BOOL, "name": _STR}),
            "secretSettings": {
                "type": "object",
                "additionalProperties": False,
                "properties": {camel(n): _SECRET_REF for n in SECRET_SETTINGS},
                "required": [camel(n) for n in SECRET_SETTINGS],
            },
            "settings": {"$ref": "#/$defs/settings"},
            "extraEnv": {"type": "array"},
            "connectionProfiles": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"toml": _STR, "existingSecret": _STR},
            },
            "database": _object(
                {"maxConnections": _POSITIVE, "reservedConnections": _INT},
                ["maxConnections", "reservedConnections"],
            ),
            "podSecurityContext": _ANY_OBJECT,
            "securityContext": _ANY_OBJECT,
            "tmpSizeLimit": _STR,
            "server": _component(
                {
                    "replicas": _POSITIVE,
                    "autoscaling": _object(
                        {
                            "enabled": _BOOL,
                            "minReplicas": _POSITIVE,
                            "maxReplicas": _POSITIVE,
                            "targetCPUUtilizationPercentage": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 100,
                            },
                        },
                        ["enabled", "minReplicas", "maxReplicas"],
                    ),
                    "podDisruptionBudget": pdb,
                }
            ),
            "relay": _component(
                {"enabled": _BOOL, "replicas": _POSITIVE, "podDisruptionBudget": pdb}
            ),
            "projector": _component({"enabled": _BOOL, "replicas": _POSITIVE}),
            "migration": _object(
                {
                    "enabled": _BOOL,
                    "backoffLimit": _INT,
                    "activeDeadlineSeconds": _POSITIVE,
                    "resources": _ANY_OBJECT,
                },
                ["enabled"],
            ),
            "service": _object(
                {
                    "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                    "grpcPort": {"type": "integer", "minimum": 1, "maximum": 65535},
                    "metricsPort": {"type": "integer", "minimum": 1, "maximum": 65535},
                },
                ["grpcPort", "metricsPort"],
            ),
            "metrics": _object(
                {
                    "serviceMonitor": _object(
                        {"enabled": _BOOL, "interval": _STR, "labels": _ANY_OBJECT}
                    ),
                    "prometheusRule": _object(
                        {
                            "enabled": _BOOL,
                            "labels": _ANY_OBJECT,
                            "deliveryRateThreshold": {
                                "type": "number",
                                "exclusiveMinimum": 0,
                                "maximum": 1,
                            },
                            "deliveryRateWindow": {"type": "string", "pattern": "^[0-9]+[smhd]$"},
                            "deliveryRateMinReceipts": _POSITIVE,
                            "relayLagEvents": _POSITIVE,
                            "projectionLagEvents": _POSITIVE,
                            "lagFor": {"type": "string", "pattern": "^[0-9]+[smh]$"},
                            "webhookRejectedSignatures": {"type": "integer", "minimum": 0},
                            "stuckMessages": {"type": "integer", "minimum": 0},
                            "stuckFor": {"type": "string", "pattern": "^[0-9]+[smh]$"},
                        }
                    ),
                }
            ),
        },
    }


def render() -> str:
    """Return the text of values.schema.json."""
    return json.dumps(chart_schema(), indent=2) + "\n"


def main() -> int:
    """Write the file, or with ``--check`` compare it."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET} is stale: run python scripts/gen_chart_schema.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
