"""The hash chains verify, and tampering with stored events is detected."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
from click.testing import CliRunner

from ledger.application.commands import RawInput, RecordAcceptance, RecordReceipt, SubmitMessage
from ledger.audit import BrokenLink, VerifyReport, verify_log
from ledger.cli import main
from ledger.domain.outcomes import Status
from ledger.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]


def _record_some(runtime: Runtime) -> None:
    runtime.ledger.execute(
        [
            SubmitMessage(
                tenant="acme",
                message_id=f"m{n}",
                destination="+447700900123",
                sender="A",
                carrier="c",
                segment_count=2,
            )
            for n in range(3)
        ]
        + [RecordAcceptance(tenant="acme", message_id="m1", segments=((1, "a"), (2, "b")))]
        + [
            RecordReceipt(
                tenant="acme",
                carrier_message_id="a",
                connection="c",
                status=Status.FAILED,
                permanent=False,
                error_code="é",
                raw=RawInput("bin\x00é".encode(), "x", "smpp-text"),
            )
        ]
    )


def _tamper(runtime: Runtime, url: str) -> None:
    """Change the error code stored in the Failed event, bypassing the ledger."""
    if url.startswith("sqlite"):
        import sqlite3

        path = url.removeprefix("sqlite:///")
        runtime.close()
        with sqlite3.connect(path) as conn:
            rowid, state = conn.execute(
                "SELECT rowid, state FROM stored_events WHERE topic LIKE '%Failed'"
            ).fetchone()
            data = json.loads(state)
            data["error_code"] = "001"
            conn.execute(
                "UPDATE stored_events SET state = ? WHERE rowid = ?",
                (json.dumps(data).encode(), rowid),
            )
        return
    base, schema = url.split("?schema=")
    with psycopg.connect(base, autocommit=True) as conn:
        position, state = conn.execute(
            f'SELECT notification_id, state FROM "{schema}".ledger_events WHERE topic LIKE %s',
            ["%Failed"],
        ).fetchone()
        data = json.loads(bytes(state))
        data["error_code"] = "001"
        conn.execute(
            f'UPDATE "{schema}".ledger_events SET state = %s WHERE notification_id = %s',
            [json.dumps(data).encode(), position],
        )


def _standalone(url: str) -> subprocess.CompletedProcess[str]:
    if url.startswith("sqlite"):
        args = ["sqlite", url.removeprefix("sqlite:///")]
    else:
        base, schema = url.split("?schema=")
        args = ["postgresql", base, schema]
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "verify_chain.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_untouched_log_verifies(runtime: Runtime, database_url: str) -> None:
    _record_some(runtime)
    results = list(verify_log(runtime.store))
    report = results[-1]
    assert isinstance(report, VerifyReport)
    assert (report.events, report.messages, report.broken) == (5, 3, 0)
    standalone = _standalone(database_url)
    assert standalone.returncode == 0, standalone.stdout + standalone.stderr
    assert "0 broken" in standalone.stdout


def test_edited_event_is_reported(runtime: Runtime, database_url: str, monkeypatch: object) -> None:
    _record_some(runtime)
    _tamper(runtime, database_url)
    standalone = _standalone(database_url)
    assert standalone.returncode == 1
    assert "hash mismatch" in standalone.stdout
    result = CliRunner().invoke(main, ["verify", "--database-url", database_url])
    assert result.exit_code == 1, result.output
    assert "1 broken link" in result.output


def test_broken_link_names_position(runtime: Runtime, database_url: str) -> None:
    _record_some(runtime)
    _tamper(runtime, database_url)
    from ledger.runtime import build_runtime

    fresh = build_runtime(runtime.settings)
    try:
        links = [r for r in verify_log(fresh.store) if isinstance(r, BrokenLink)]
    finally:
        fresh.close()
    assert len(links) == 1
    assert links[0].version == 3
