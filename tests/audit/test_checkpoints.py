"""Signed checkpoints show truncation, deletion and rewrites that hash chains cannot."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from ledger.application.commands import RecordReceipt, SubmitMessage
from ledger.checkpoints import (
    append_checkpoint,
    generate_key,
    load_private_key,
    read_checkpoints,
    verify_checkpoints,
)
from ledger.domain.outcomes import Status
from ledger.runtime import Runtime


def _record(runtime: Runtime, first: int, count: int) -> None:
    runtime.ledger.execute(
        [
            SubmitMessage(
                tenant="acme",
                message_id=f"m{n}",
                destination="+447700900123",
                sender="A",
                carrier="c",
            )
            for n in range(first, first + count)
        ]
        + [RecordReceipt(tenant="acme", message_id=f"m{first}", status=Status.DELIVERED)]
    )


def _delete_last_event_of(runtime: Runtime, url: str, topic_suffix: str) -> None:
    if url.startswith("sqlite"):
        import sqlite3

        runtime.close()
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute(
                "DELETE FROM stored_events WHERE rowid = "
                "(SELECT MAX(rowid) FROM stored_events WHERE topic LIKE ?)",
                (f"%{topic_suffix}",),
            )
        return
    base, schema = url.split("?schema=")
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(
            f'DELETE FROM "{schema}".ledger_events WHERE notification_id = '
            f'(SELECT MAX(notification_id) FROM "{schema}".ledger_events WHERE topic LIKE %s)',
            [f"%{topic_suffix}"],
        )


def test_checkpoints_verify_on_untouched_log(runtime: Runtime, tmp_path: Path) -> None:
    private, public = generate_key()
    key = load_private_key(private)
    path = tmp_path / "checkpoints.jsonl"
    _record(runtime, 0, 3)
    first = append_checkpoint(runtime.store, key, path)
    _record(runtime, 3, 2)
    second = append_checkpoint(runtime.store, key, path)
    assert (first.events, second.events) == (4, 7)
    assert verify_checkpoints(runtime.store, read_checkpoints(path), public) == []


def test_deleted_tail_event_is_detected(
    runtime: Runtime, database_url: str, tmp_path: Path
) -> None:
    private, public = generate_key()
    path = tmp_path / "checkpoints.jsonl"
    _record(runtime, 0, 3)
    append_checkpoint(runtime.store, load_private_key(private), path)
    # The newest event of m0 is removed: its hash chain stays intact.
    _delete_last_event_of(runtime, database_url, "Delivered")
    from ledger.runtime import build_runtime

    fresh = build_runtime(runtime.settings)
    try:
        problems = verify_checkpoints(fresh.store, read_checkpoints(path), public)
    finally:
        fresh.close()
    assert len(problems) == 1
    assert "3 events" in problems[0].reason


def test_tampered_checkpoint_file_is_detected(runtime: Runtime, tmp_path: Path) -> None:
    private, public = generate_key()
    path = tmp_path / "checkpoints.jsonl"
    _record(runtime, 0, 2)
    append_checkpoint(runtime.store, load_private_key(private), path)
    data = json.loads(path.read_text())
    data["events"] = 1
    path.write_text(json.dumps(data) + "\n")
    problems = verify_checkpoints(runtime.store, read_checkpoints(path), public)
    assert [p.reason for p in problems] == ["signature does not verify"]
    other_private, _ = generate_key()
    path.unlink()
    append_checkpoint(runtime.store, load_private_key(other_private), path)
    problems = verify_checkpoints(runtime.store, read_checkpoints(path), public)
    assert [p.reason for p in problems] == ["signed with another key"]
