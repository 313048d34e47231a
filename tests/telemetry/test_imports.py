"""OpenTelemetry is imported by the telemetry package alone."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
TELEMETRY = SRC / "ledger" / "telemetry"
IMPORT = re.compile(r"^\s*(from|import)\s+opentelemetry\b", re.MULTILINE)


def test_opentelemetry_only_in_telemetry_package() -> None:
    offenders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if TELEMETRY not in path.parents and IMPORT.search(path.read_text())
    ]
    assert offenders == []
