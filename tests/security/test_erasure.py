"""Erasure: the key is destroyed, the number is found nowhere, the chain still verifies."""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2

from ledger.audit import BrokenLink, VerifyReport, verify_log
from ledger.domain.identity import message_aggregate_id
from ledger.privacy.erasure import Eraser, names_number, number_forms
from ledger.privacy.erasure_log import ErasureLog, read_erasure_log
from ledger.privacy.numbers import CheckedNumber, check_destination
from ledger.privacy.subjects import decrypt_field
from ledger.runtime import Runtime, build_runtime
from ledger.server.history import history_events
from ledger.v1 import ledger_pb2 as pb
from ledger.v1 import ledger_pb2_grpc, readmodels_pb2, readmodels_pb2_grpc
from projections.rebuild import rebuild
from tests.conftest import make_settings
from tests.projections.helpers import snapshot, target_of
from tests.security.conftest import Secured, auth, record_messages
from tests.security.dbdump import Rows, dump_tables, tables_containing

NUMBER = "+447700900123"
DIGITS = "447700900123"
TRUNK = "07700900123"
OTHER = "+447700900456"


def submit(tenant: str, message_id: str, number: str) -> pb.Command:
    return pb.Command(
        submit=pb.SubmitMessageRequest(
            tenant=tenant,
            message_id=message_id,
            destination=number,
            sender="ACME",
            carrier="carrier-a",
            validity_period=Duration(seconds=3600),
        )
    )


def accept(tenant: str, message_id: str, carrier_id: str) -> pb.Command:
    return pb.Command(
        acceptance=pb.RecordAcceptanceRequest(
            tenant=tenant,
            message_id=message_id,
            segments=[pb.SegmentAcceptance(segment=1, carrier_message_id=carrier_id)],
        )
    )


def twilio(tenant: str, sid: str, to: str, status: str = "delivered") -> pb.Command:
    body = f"MessageSid={sid}&MessageStatus={status}&To={to.replace('+', '%2B')}&From=ACME"
    return pb.Command(
        raw_receipt=pb.RecordRawReceiptRequest(
            tenant=tenant,
            connection="carrier-a",
            format="twilio",
            content_type="application/x-www-form-urlencoded",
            body=body.encode(),
        )
    )


def unparsable(tenant: str, text: str) -> pb.Command:
    return pb.Command(
        raw_receipt=pb.RecordRawReceiptRequest(
            tenant=tenant,
            connection="carrier-a",
            format="twilio",
            body=b"\xff\xfe " + text.encode(),
        )
    )


async def seed(channel: grpc.aio.Channel) -> None:
    """Messages, receipts, a parked and an unparsed receipt to NUMBER and to others."""
    stub = ledger_pb2_grpc.LedgerServiceStub(channel)
    commands = [
        submit("acme", "m1", NUMBER),
        submit("acme", "m2", NUMBER),
        submit("acme", "m3", OTHER),
        submit("globex", "g1", NUMBER),
        accept("acme", "m1", "SM1"),
        accept("acme", "m3", "SM3"),
        accept("globex", "g1", "SMG"),
    ]
    await stub.ExecuteBatch(pb.ExecuteBatchRequest(commands=commands), metadata=auth("all"))
    receipts = [
        twilio("acme", "SM1", NUMBER),
        twilio("acme", "SM3", OTHER, "undelivered"),
        twilio("globex", "SMG", NUMBER),
        twilio("acme", "SM9", "+44 (0)7700 900123"),  # parked: no message has SM9
        twilio("acme", "SM8", OTHER),  # parked, another number
        unparsable("acme", f"To={TRUNK}"),
        unparsable("acme", "To=07700900456"),
    ]
    response = await stub.ExecuteBatch(
        pb.ExecuteBatchRequest(commands=receipts), metadata=auth("all")
    )
    dispositions = [r.receipt_disposition for r in response.results[:5]]
    assert dispositions[3:] == [pb.RECEIPT_DISPOSITION_PARKED] * 2
    assert [r.status.code for r in response.results[5:]] == [3, 3]


def tenant_rows(rows: Rows, runtime: Runtime, tenant: str) -> dict[str, list[object]]:
    """Return every row that belongs to ``tenant``: its events and its side rows."""
    ids = {str(m.id) for m in runtime.store.load_messages(_ids(runtime, tenant)).values()}
    found: dict[str, list[object]] = {}
    for name, table in rows.items():
        found[name] = [row for row in table if any(str(v) in ids or v == tenant for v in row)]
    return found


def _ids(runtime: Runtime, tenant: str) -> list[uuid.UUID]:
    return [message_aggregate_id(tenant, m) for m in ("m1", "m2", "m3", "m4", "g1")]


def verify(runtime: Runtime) -> VerifyReport:
    items = list(verify_log(runtime.store))
    assert [i for i in items if isinstance(i, BrokenLink)] == []
    report = items[-1]
    assert isinstance(report, VerifyReport)
    return report


def read_model_rows(runtime: Runtime) -> dict[str, list[tuple[object, ...]]]:
    """Return every row of every read-model table."""
    conn = target_of(runtime).connect()
    try:
        return snapshot(conn)
    finally:
        conn.close()


def statistics_rows(
    tables: dict[str, list[tuple[object, ...]]],
) -> dict[str, list[tuple[object, ...]]]:
    """Return the carrier statistics and latency tables of a snapshot."""
    return {name: rows for name, rows in tables.items() if name in STATISTICS_TABLES}


# The fold tables keep each message's last event, so the erasure event changes
# them. The tables of counts must not change.
STATISTICS_TABLES = frozenset({"rm_carrier_hourly", "rm_failure_causes", "rm_latency_buckets"})


async def performance(
    channel: grpc.aio.Channel, runtime: Runtime
) -> readmodels_pb2.CarrierPerformanceResponse:
    """Return acme's carrier statistics once the projections have caught up."""
    stub = readmodels_pb2_grpc.ReadModelServiceStub(channel)
    start, end = Timestamp(), Timestamp()
    start.FromDatetime(datetime.now(UTC) - timedelta(days=1))
    end.FromDatetime(datetime.now(UTC) + timedelta(days=1))
    request = readmodels_pb2.StatisticsRequest(tenant="acme", start_time=start, end_time=end)
    top = runtime.store.max_position()
    for _ in range(100):
        response = await stub.GetCarrierPerformance(request, metadata=auth("reader"))
        if response.position >= top:
            return response
        await asyncio.sleep(0.05)
    raise AssertionError(f"projections stayed behind position {top}")


async def test_erasure_removes_every_trace(
    secured: Secured, channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    runtime = secured.runtime
    url = runtime.settings.resolved_database_url
    await seed(channel)
    stats_before = await performance(channel, runtime)
    statistics_before = statistics_rows(read_model_rows(runtime))
    assert all(statistics_before.values()), statistics_before
    before = dump_tables(url)
    globex_before = tenant_rows(before, runtime, "globex")
    first = history_events(runtime.ledger, "acme", "m1")
    assert first[0].destination == NUMBER
    m1_id = message_aggregate_id("acme", "m1")
    message = runtime.store.load_messages([m1_id])[m1_id]
    key_id = message.destination.key_id
    subject_key = runtime.ledger.keyring.keys_by_id([key_id])[key_id]
    assert subject_key is not None

    reply = await ledger_pb2_grpc.AdminServiceStub(channel).EraseSubject(
        pb.EraseSubjectRequest(tenant="acme", destination=NUMBER), metadata=auth("admin")
    )
    assert (reply.messages, reply.receipts_deleted) == (2, 2)

    # History replays with the destination and the raw payload shown as erased.
    history = history_events(runtime.ledger, "acme", "m1")
    assert history[-1].event.type == "DestinationErased"
    assert not history[-1].event.HasField("submission")
    assert all(h.destination == "" and h.destination_erased for h in history)
    receipt = next(h for h in history if h.HasField("raw"))
    assert receipt.raw.erased
    assert receipt.raw.body == b""
    assert history_events(runtime.ledger, "acme", "m3")[0].destination == OTHER
    assert history_events(runtime.ledger, "globex", "g1")[0].destination == NUMBER

    # The chain verifies, statistics are unchanged.
    report = verify(runtime)
    assert report.broken == 0
    stats_after = await performance(channel, runtime)
    assert list(stats_after.groups) == list(stats_before.groups)

    # Read models rebuilt from the log after the erasure equal the live ones and
    # count the same outcomes as before it.
    live_after = read_model_rows(runtime)
    assert statistics_rows(live_after) == statistics_before
    result = await asyncio.to_thread(rebuild, runtime.store, target_of(runtime))
    assert result.swapped
    rebuilt = read_model_rows(runtime)
    assert rebuilt == live_after
    assert statistics_rows(rebuilt) == statistics_before
    stats_rebuilt = await performance(channel, runtime)
    assert list(stats_rebuilt.groups) == list(stats_before.groups)

    # The key is gone: no stored key opens the subject's ciphertext any more.
    after = dump_tables(url)
    ciphertext = message.destination.ciphertext
    assert decrypt_field(subject_key, ciphertext, "destination") == NUMBER.encode()
    assert runtime.ledger.keyring.keys_by_id([key_id]) == {key_id: None}
    assert runtime.store.subject_key_state([key_id])[key_id][1] is not None
    keys_table = next(n for n in after if n.endswith("subject_keys"))
    row = next(r for r in after[keys_table] if r[0] == key_id)
    assert row[2] is None  # subject_index
    assert row[3] is None  # wrapped_key
    crypto = runtime.ledger.keyring.crypto
    for stored_id, _, _, wrapped, _, _ in after[keys_table]:
        if wrapped is None:
            continue
        candidate = crypto.unwrap(stored_id, bytes(wrapped))
        with pytest.raises(ValueError):
            decrypt_field(candidate, ciphertext, "destination")

    # No table contains the number in clear; the kept receipts naming it are gone.
    for needle in (DIGITS, TRUNK, "7700 900123"):
        assert tables_containing(after, needle) == [], needle
    assert len(runtime.store.kept_receipts("acme")) == 2
    for kept in runtime.store.kept_receipts("acme"):
        key = runtime.ledger.keyring.keys_by_id([kept.raw_key_id or ""])[kept.raw_key_id or ""]
        assert key is not None and kept.raw_ciphertext is not None
        body = decrypt_field(key, kept.raw_ciphertext, "raw_payload")
        assert b"900123" not in body
        assert b"900456" in body

    # Another tenant's data is byte-identical.
    assert tenant_rows(after, runtime, "globex") == globex_before

    # Logs never held the number.
    for needle in (DIGITS, TRUNK, "900123"):
        assert needle not in caplog.text


async def test_erasure_unknown_subject_not_found(
    secured: Secured, channel: grpc.aio.Channel
) -> None:
    await seed(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await ledger_pb2_grpc.AdminServiceStub(channel).EraseSubject(
            pb.EraseSubjectRequest(tenant="acme", destination="+447700900999"),
            metadata=auth("admin"),
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_erasure_new_message_gets_new_key(
    secured: Secured, channel: grpc.aio.Channel
) -> None:
    await seed(channel)
    runtime = secured.runtime
    eraser = Eraser(runtime.ledger)
    erased = eraser.erase("acme", NUMBER)
    stub = ledger_pb2_grpc.LedgerServiceStub(channel)
    await stub.ExecuteBatch(
        pb.ExecuteBatchRequest(commands=[submit("acme", "m4", NUMBER)]), metadata=auth("all")
    )
    history = history_events(runtime.ledger, "acme", "m4")
    assert history[0].destination == NUMBER
    assert not history[0].destination_erased
    m1_id, m4_id = message_aggregate_id("acme", "m1"), message_aggregate_id("acme", "m4")
    messages = runtime.store.load_messages([m1_id, m4_id])
    assert erased.key_id == messages[m1_id].destination.key_id
    assert messages[m4_id].destination.key_id != erased.key_id

    # Submitting an erased message again names the reason, not a changed destination.
    again = await stub.ExecuteBatch(
        pb.ExecuteBatchRequest(commands=[submit("acme", "m1", NUMBER)]), metadata=auth("all")
    )
    failure = error_details_pb2.PreconditionFailure()
    assert again.results[0].status.details[0].Unpack(failure)
    assert [v.type for v in failure.violations] == ["DESTINATION_ERASED"]


def test_erasure_log_reapplied_after_restore(tmp_path: Path) -> None:
    database = tmp_path / "ledger.db"
    settings = make_settings(f"sqlite:///{database}", tmp_path)
    runtime = build_runtime(settings)
    record_messages(runtime, "acme", {"m1": NUMBER, "m2": OTHER})
    runtime.close()
    backup = tmp_path / "backup.db"
    shutil.copyfile(database, backup)
    log_path = tmp_path / "erasures.jsonl"
    runtime = build_runtime(settings)
    try:
        Eraser(runtime.ledger, ErasureLog(log_path)).erase("acme", NUMBER)
    finally:
        runtime.close()
    assert DIGITS not in log_path.read_text()
    records = list(read_erasure_log(log_path))
    assert len(records) == 1
    assert records[0].tenant == "acme"
    assert oct(log_path.stat().st_mode & 0o777) == "0o600"

    for leftover in tmp_path.glob("ledger.db-*"):
        leftover.unlink()
    shutil.copyfile(backup, database)
    restored = build_runtime(settings)
    try:
        assert history_events(restored.ledger, "acme", "m1")[0].destination == NUMBER
        results = Eraser(restored.ledger).reapply(records)
        assert [r.messages for r in results] == [1]
        again = Eraser(restored.ledger).reapply(records)
        assert [r.messages for r in again] == [0]
        history = history_events(restored.ledger, "acme", "m1")
        assert history[0].destination == ""
        assert history[0].destination_erased
        assert history_events(restored.ledger, "acme", "m2")[0].destination == OTHER
        assert verify(restored).broken == 0
    finally:
        restored.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("To=%2B447700900123", True),
        ("to=+44+7700+900123", True),
        ("+44 (0)7700 900123", True),
        ("0044-7700-900-123", True),
        ("07700 900123", True),
        ("id 7700900123", False),
        ("4477009001234", False),
        ("+447700900456", False),
    ],
)
def test_erasure_number_match(text: str, expected: bool) -> None:
    checked = check_destination(NUMBER)
    assert isinstance(checked, CheckedNumber)
    assert names_number([text], number_forms(checked)) is expected
