"""Unparsable receipts are kept without their message text, and list what was removed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import grpc
import psycopg
import pytest

from ledger.application.batch import RAW_FIELD
from ledger.application.commands import RecordRawReceipt
from ledger.errors import ReceiptParseError
from ledger.privacy.subjects import decrypt_field
from ledger.runtime import Runtime, build_runtime
from ledger.v1 import ledger_pb2 as pb
from ledger.v1 import ledger_pb2_grpc
from tests.conftest import make_settings

# No stat value, so the smpp-text parser rejects it.
NO_STAT = b"id:AB12 sub:001 dlvrd:001 stat: err:000 text:Your code is 4711"


def test_ledger_keeps_redacted_body(runtime: Runtime) -> None:
    raw = RecordRawReceipt(tenant="acme", connection="carrier-a", body=NO_STAT, format="smpp-text")
    (outcome,) = runtime.ledger.execute([raw])
    assert isinstance(outcome, ReceiptParseError)
    assert outcome.kept
    (row,) = runtime.store.list_unparsed("acme", None, 10)
    assert row.redactions == ("text",)
    key = runtime.ledger.keyring.keys_by_id({row.raw_key_id})[row.raw_key_id]
    stored = decrypt_field(key, row.raw_ciphertext, RAW_FIELD)
    assert stored == b"id:AB12 sub:001 dlvrd:001 stat: err:000 text:[redacted]"
    # The same receipt with other text is the same kept receipt.
    other = RecordRawReceipt(
        tenant="acme", connection="carrier-a", body=NO_STAT.replace(b"4711", b"0000")
    )
    runtime.ledger.execute([other])
    assert len(runtime.store.list_unparsed("acme", None, 10)) == 1


async def test_listing_shows_redacted_bodies(
    stubs: tuple[ledger_pb2_grpc.LedgerServiceStub, ledger_pb2_grpc.ReceiptServiceStub],
) -> None:
    ledger, receipts = stubs
    requests = [
        pb.RecordRawReceiptRequest(
            tenant="acme", connection="carrier-a", format="smpp-text", body=NO_STAT
        ),
        pb.RecordRawReceiptRequest(
            tenant="acme",
            connection="carrier-b",
            format="twilio",
            content_type="application/x-www-form-urlencoded",
            body=b"MessageSid=SM1&Body=meet+at+noon",
        ),
        pb.RecordRawReceiptRequest(
            tenant="acme",
            connection="carrier-c",
            format="vonage",
            content_type="application/json",
            body=b'{"text": "meet at noon", "weird": true}',
        ),
    ]

    for request in requests:
        with pytest.raises(grpc.aio.AioRpcError):
            await ledger.RecordRawReceipt(request)

    kept = await receipts.ListUnparsedReceipts(pb.ListUnparsedReceiptsRequest(tenant="acme"))
    by_connection = {r.connection: r for r in kept.receipts}
    assert set(by_connection) == {"carrier-a", "carrier-b", "carrier-c"}
    for item in kept.receipts:
        assert b"4711" not in item.body
        assert b"noon" not in item.body
    assert list(by_connection["carrier-a"].redactions) == ["text"]
    assert by_connection["carrier-a"].body.endswith(b"text:[redacted]")
    assert list(by_connection["carrier-b"].redactions) == ["Body"]
    assert by_connection["carrier-b"].body.startswith(b"MessageSid=SM1&")
    assert list(by_connection["carrier-c"].redactions) == ["text"]


def _drop_redactions_column(database_url: str) -> None:
    """Make the unparsed table look like one created before the column existed."""
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            conn.execute("ALTER TABLE ledger_unparsed DROP COLUMN redactions")
        return
    url, _, schema = database_url.partition("?schema=")
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT table_name FROM information_schema.columns "
            "WHERE table_schema = %s AND column_name = 'redactions'",
            [schema],
        ).fetchone()
        assert row is not None, f"no table of schema {schema} has a redactions column"
        (table,) = row
        conn.execute(f'ALTER TABLE "{schema}"."{table}" DROP COLUMN redactions')


def test_existing_unparsed_table_gets_the_column(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path)
    build_runtime(settings).close()
    _drop_redactions_column(database_url)
    for _ in range(2):
        runtime = build_runtime(settings)
        try:
            runtime.ledger.execute(
                [RecordRawReceipt(tenant="acme", connection="carrier-a", body=NO_STAT)]
            )
            (row,) = runtime.store.list_unparsed("acme", None, 10)
            assert row.redactions == ("text",)
        finally:
            runtime.close()
