"""Every RPC of the ledger over a real gRPC channel, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from ledger.runtime import Runtime
from ledger.v1 import events_pb2, ledger_pb2, ledger_pb2_grpc

pb = ledger_pb2
NUMBER = "+447700900123"


def submit(message_id: str = "m1", **changes: object) -> pb.SubmitMessageRequest:
    fields: dict[str, object] = {
        "tenant": "acme",
        "message_id": message_id,
        "destination": NUMBER,
        "sender": "ACME",
        "carrier": "carrier-a",
        "validity_period": Duration(seconds=3600),
    }
    fields.update(changes)
    return pb.SubmitMessageRequest(**fields)  # type: ignore[arg-type]


def accept(message_id: str = "m1", carrier_id: str = "AB12") -> pb.RecordAcceptanceRequest:
    return pb.RecordAcceptanceRequest(
        tenant="acme",
        message_id=message_id,
        segments=[pb.SegmentAcceptance(segment=1, carrier_message_id=carrier_id)],
    )


def receipt(carrier_id: str, status: int, **changes: object) -> pb.RecordReceiptRequest:
    return pb.RecordReceiptRequest(
        tenant="acme",
        carrier=pb.CarrierRef(connection="carrier-a", carrier_message_id=carrier_id),
        status=status,  # type: ignore[arg-type]
        **changes,  # type: ignore[arg-type]
    )


def violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    found: dict[str, str] = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found.update({v.field: v.description for v in bad.field_violations})
    return found


async def test_lifecycle_over_grpc(stubs: tuple[ledger_pb2_grpc.LedgerServiceStub, object]) -> None:
    ledger, _ = stubs
    submitted = await ledger.SubmitMessage(submit(request_id="r1"))
    assert submitted.message_status == events_pb2.MESSAGE_STATUS_SUBMITTED
    assert (await ledger.SubmitMessage(submit(request_id="r1"))).replayed
    await ledger.RecordAcceptance(accept())
    delivered = await ledger.RecordReceipt(receipt("ab12", pb.RECEIPT_STATUS_DELIVERED))
    assert delivered.receipt_disposition == pb.RECEIPT_DISPOSITION_RECORDED
    state = await ledger.GetMessage(pb.GetMessageRequest(tenant="acme", message_id="m1"))
    assert state.status == events_pb2.MESSAGE_STATUS_DELIVERED
    assert state.final
    assert state.destination_masked == "+44 7700 9xxx23"
    assert state.country == "GB"
    history = [
        e async for e in ledger.GetHistory(pb.GetHistoryRequest(tenant="acme", message_id="m1"))
    ]
    assert [e.event.type for e in history] == ["Submitted", "CarrierAccepted", "Delivered"]
    assert [e.event.version for e in history] == [1, 2, 3]
    assert all(len(e.event.hash) == 64 for e in history)
    found = await ledger.LookupCarrierMessage(
        pb.LookupCarrierMessageRequest(
            tenant="acme", connection="carrier-a", carrier_message_id="AB12"
        )
    )
    assert found.message_id == "m1"
    assert found.message_status == events_pb2.MESSAGE_STATUS_DELIVERED


async def test_invalid_submit_names_fields_without_number(
    stubs: tuple[ledger_pb2_grpc.LedgerServiceStub, object],
) -> None:
    ledger, _ = stubs
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ledger.SubmitMessage(submit(tenant="Bad!", destination="447700900999", message_id=""))
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = violations(error)
    assert set(fields) == {"tenant", "destination", "message_id"}
    assert "447700900999" not in (error.details() or "")
    assert "447700900999" not in fields["destination"]


async def test_submit_with_invalid_number_shapes_is_rejected(
    stubs: tuple[ledger_pb2_grpc.LedgerServiceStub, object],
) -> None:
    ledger, _ = stubs
    for number in ("+44 7700 900123", "+4477009001234567", "+0447700900123", "+", "+999123456789"):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await ledger.SubmitMessage(submit(destination=number))
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "destination" in violations(raised.value)


async def test_unknown_message_is_not_found(
    stubs: tuple[ledger_pb2_grpc.LedgerServiceStub, object],
) -> None:
    ledger, _ = stubs
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ledger.GetMessage(pb.GetMessageRequest(tenant="acme", message_id="nope"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ledger.RecordAcceptance(accept("nope"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in ledger.GetHistory(pb.GetHistoryRequest(tenant="acme", message_id="nope")):
            pass
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ledger.LookupCarrierMessage(
            pb.LookupCarrierMessageRequest(tenant="acme", connection="c", carrier_message_id="x")
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_reused_request_id_is_failed_precondition(
    stubs: tuple[ledger_pb2_grpc.LedgerServiceStub, object],
) -> None:
    ledger, _ = stubs
    await ledger.SubmitMessage(submit(request_id="r1"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ledger.SubmitMessage(submit("m2", request_id="r1"))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "r1" in (raised.value.details() or "")
    assert preconditions(raised.value) == [("REQUEST_ID_REUSED", "acme/r1")]


def preconditions(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    found = []
    for detail in status.details:
        failure = error_details_pb2.PreconditionFailure()
        if detail.Unpack(failure):
            found.extend((v.type, v.subject) for v in failure.violations)
    return found


@pytest.mark.parametrize(
    ("request_fields", "kind"),
    [
        ({"destination": "+447700900999"}, "ATTEMPT_CHANGED"),
        ({"attempt": 3}, "ATTEMPT_OUT_OF_SEQUENCE"),
        ({"attempt": 2}, "ATTEMPT_NOT_FINAL"),
    ],
)
async def test_lifecycle_rejection_names_reason(
    stubs: tuple[ledger_pb2_grpc.LedgerServiceStub, object],
    request_fields: dict[str, object],
    kind: str,
) -> None:
    ledger, _ = stubs
    await ledger.SubmitMessage(submit())
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ledger.SubmitMessage(submit(**request_fields))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert preconditions(raised.value) == [(kind, "message/m1")]


async def test_first_submission_must_be_attempt_one(
    stubs: tuple[ledger_pb2_grpc.LedgerServiceStub, object],
) -> None:
    ledger, _ = stubs
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ledger.SubmitMessage(submit("m9", attempt=5))
    assert preconditions(raised.value) == [("FIRST_ATTEMPT_REQUIRED", "message/m9")]


async def test_invalid_receipt_status_and_target(
    stubs: tuple[ledger_pb2_grpc.LedgerServiceStub, object],
) -> None:
    ledger, _ = stubs
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ledger.RecordReceipt(receipt("AB12", 99))
    assert "status" in violations(raised.value)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ledger.RecordReceipt(
            pb.RecordReceiptRequest(tenant="acme", status=pb.RECEIPT_STATUS_DELIVERED)
        )
    assert "target" in violations(raised.value)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ledger.RecordReceipt(receipt("AB12", pb.RECEIPT_STATUS_ENROUTE, final=True))
    assert "final" in violations(raised.value)


async def test_raw_payload_over_limit_is_invalid(
    stubs: tuple[ledger_pb2_grpc.LedgerServiceStub, object],
) -> None:
    ledger, _ = stubs
    raw = pb.RawPayload(body=b"x" * 70_000, format="smpp-text")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ledger.RecordReceipt(receipt("AB12", pb.RECEIPT_STATUS_DELIVERED, raw=raw))
    assert "raw.body" in violations(raised.value)


async def test_metadata_flood_is_invalid_argument(
    stubs: tuple[ledger_pb2_grpc.LedgerServiceStub, object],
) -> None:
    ledger, _ = stubs
    request = pb.RecordRawReceiptRequest(
        tenant="acme",
        connection="carrier-a",
        format="smpp-text",
        body=b"id:1 stat:DELIVRD",
        metadata={f"k{i}": "v" * 1_000 for i in range(3_000)},
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ledger.RecordRawReceipt(request)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    listed = violations(raised.value)
    assert "metadata" in listed
    assert len(listed) <= 21


async def test_message_over_transport_limit_is_resource_exhausted(
    stubs: tuple[ledger_pb2_grpc.LedgerServiceStub, object],
) -> None:
    ledger, _ = stubs
    raw = pb.RawPayload(body=b"x" * (5 * 1024 * 1024), format="smpp-text")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ledger.RecordReceipt(receipt("AB12", pb.RECEIPT_STATUS_DELIVERED, raw=raw))
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_batch_results_are_per_command(
    stubs: tuple[ledger_pb2_grpc.LedgerServiceStub, object],
) -> None:
    ledger, _ = stubs
    response = await ledger.ExecuteBatch(
        pb.ExecuteBatchRequest(
            commands=[
                pb.Command(submit=submit()),
                pb.Command(submit=submit("m2", destination="12345")),
                pb.Command(),
                pb.Command(acceptance=accept()),
                pb.Command(receipt=receipt("AB12", pb.RECEIPT_STATUS_DELIVERED)),
                pb.Command(acceptance=accept("missing")),
            ]
        )
    )
    codes = [r.status.code for r in response.results]
    assert codes == [
        0,
        grpc.StatusCode.INVALID_ARGUMENT.value[0],
        grpc.StatusCode.INVALID_ARGUMENT.value[0],
        0,
        0,
        grpc.StatusCode.NOT_FOUND.value[0],
    ]
    assert [r.index for r in response.results] == list(range(6))
    bad = error_details_pb2.BadRequest()
    assert response.results[1].status.details[0].Unpack(bad)
    assert bad.field_violations[0].field == "commands[1].destination"
    assert response.results[4].message_status == events_pb2.MESSAGE_STATUS_DELIVERED


async def test_batch_over_limit_is_resource_exhausted(
    stubs: tuple[ledger_pb2_grpc.LedgerServiceStub, object],
) -> None:
    ledger, _ = stubs
    commands = [pb.Command(submit=submit(f"m{i}")) for i in range(1001)]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ledger.ExecuteBatch(pb.ExecuteBatchRequest(commands=commands))
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_raw_smpp_receipt_is_parsed_correlated_and_redacted(
    stubs: tuple[ledger_pb2_grpc.LedgerServiceStub, object],
) -> None:
    ledger, _ = stubs
    await ledger.SubmitMessage(submit())
    await ledger.RecordAcceptance(accept(carrier_id="5012345678"))
    body = (
        b"id:5012345678 sub:001 dlvrd:000 submit date:2603140925 done date:2603140926 "
        b"stat:UNDELIV err:006 text:Your code is 4711"
    )
    result = await ledger.RecordRawReceipt(
        pb.RecordRawReceiptRequest(
            tenant="acme",
            connection="carrier-a",
            format="smpp-text",
            body=body,
            content_type="text/plain",
        )
    )
    assert result.message_status == events_pb2.MESSAGE_STATUS_FAILED
    assert result.retry_advice.retry
    assert result.retry_advice.attempts_left == 2
    assert [e.type for e in result.events] == ["Failed", "RetryAdvised"]
    history = [
        e async for e in ledger.GetHistory(pb.GetHistoryRequest(tenant="acme", message_id="m1"))
    ]
    failed = history[2]
    assert failed.event.receipt.error_code == "006"
    assert "text" in " ".join(failed.event.receipt.redactions)
    assert b"4711" not in failed.raw.body
    assert failed.raw.body.startswith(b"id:5012345678")


async def test_unparsable_raw_receipt_is_kept_and_reprocessable(
    stubs: tuple[ledger_pb2_grpc.LedgerServiceStub, ledger_pb2_grpc.ReceiptServiceStub],
) -> None:
    ledger, receipts = stubs
    request = pb.RecordRawReceiptRequest(
        tenant="acme", connection="carrier-a", format="twilio", body=b"\xff\xfe not a form"
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ledger.RecordRawReceipt(request)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() and "twilio" in raised.value.details()
    kept = await receipts.ListUnparsedReceipts(pb.ListUnparsedReceiptsRequest(tenant="acme"))
    assert [r.body for r in kept.receipts] == [request.body]
    result = await receipts.ReprocessUnparsedReceipts(
        pb.ReprocessUnparsedReceiptsRequest(tenant="acme")
    )
    assert (result.recorded, result.still_unparsed) == (0, 1)


async def test_normalize_receipt_dry_run_records_nothing(
    stubs: tuple[ledger_pb2_grpc.LedgerServiceStub, ledger_pb2_grpc.ReceiptServiceStub],
) -> None:
    _, receipts = stubs
    body = (
        b"id:0A1B sub:001 dlvrd:001 submit date:2603140925 done date:2603140926 "
        b"stat:DELIVRD err:000"
    )
    response = await receipts.NormalizeReceipt(
        pb.NormalizeReceiptRequest(
            connection="carrier-a",
            format="smpp-text",
            body=body,
            profile=pb.ProfileOverrides(timezone="+03:00", receipt_id_base="hex"),
        )
    )
    (item,) = response.receipts
    assert item.status == pb.RECEIPT_STATUS_DELIVERED
    assert item.canonical_id == str(0x0A1B)
    assert item.done_at.ToDatetime(tzinfo=UTC) == datetime(2026, 3, 14, 6, 26, tzinfo=UTC)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await receipts.NormalizeReceipt(
            pb.NormalizeReceiptRequest(
                connection="c",
                format="smpp-text",
                body=body,
                profile=pb.ProfileOverrides(timezone="Mars/Olympus"),
            )
        )
    assert "profile.timezone" in violations(raised.value)


async def test_orphans_are_listed(
    stubs: tuple[ledger_pb2_grpc.LedgerServiceStub, ledger_pb2_grpc.ReceiptServiceStub],
) -> None:
    ledger, receipts = stubs
    result = await ledger.RecordReceipt(receipt("nobody", pb.RECEIPT_STATUS_DELIVERED))
    assert result.receipt_disposition == pb.RECEIPT_DISPOSITION_PARKED
    listed = await receipts.ListOrphanReceipts(
        pb.ListOrphanReceiptsRequest(tenant="acme", min_age=Duration(seconds=0))
    )
    assert [r.canonical_id for r in listed.receipts] == ["NOBODY"]


async def test_health_reports_serving(server: tuple[str, Runtime]) -> None:
    address, _ = server
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="ledger.v1.LedgerService")
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_deadline_expired_in_queue_records_nothing(server: tuple[str, Runtime]) -> None:
    address, _ = server
    async with grpc.aio.insecure_channel(address) as channel:
        ledger = ledger_pb2_grpc.LedgerServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await ledger.SubmitMessage(submit("late"), timeout=0.000001)
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_submitted_at_in_the_past_is_kept(
    stubs: tuple[ledger_pb2_grpc.LedgerServiceStub, object],
) -> None:
    ledger, _ = stubs
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    stamp = Timestamp()
    stamp.FromDatetime(when)
    await ledger.SubmitMessage(submit(submitted_at=stamp))
    state = await ledger.GetMessage(pb.GetMessageRequest(tenant="acme", message_id="m1"))
    assert state.submitted_at.ToDatetime(tzinfo=UTC) == when
    assert state.attempts[0].validity_period.ToTimedelta() == timedelta(hours=1)
