"""A tenant-limited token gets for other tenants' data what it gets for data that does not exist."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from ledger.v1 import ledger_pb2 as pb
from ledger.v1 import ledger_pb2_grpc, readmodels_pb2, readmodels_pb2_grpc
from tests.security.conftest import Secured, auth, start_secured, stop_secured

NUMBER = "+447700900123"


def submit(tenant: str, message_id: str, number: str = NUMBER) -> pb.SubmitMessageRequest:
    return pb.SubmitMessageRequest(
        tenant=tenant,
        message_id=message_id,
        destination=number,
        sender="ACME",
        carrier="carrier-a",
        validity_period=Duration(seconds=3600),
    )


def accept(tenant: str, message_id: str, carrier_id: str) -> pb.RecordAcceptanceRequest:
    return pb.RecordAcceptanceRequest(
        tenant=tenant,
        message_id=message_id,
        segments=[pb.SegmentAcceptance(segment=1, carrier_message_id=carrier_id)],
    )


async def seed(channel: grpc.aio.Channel) -> None:
    """Record a message with a carrier id in tenants acme and globex."""
    stub = ledger_pb2_grpc.LedgerServiceStub(channel)
    for tenant in ("acme", "globex"):
        await stub.SubmitMessage(submit(tenant, "m1"), metadata=auth("all"))
        await stub.RecordAcceptance(accept(tenant, "m1", f"C-{tenant}"), metadata=auth("all"))


async def failure(call: object) -> grpc.aio.AioRpcError:
    """Await ``call`` and return the error it fails with."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        if hasattr(call, "__aiter__"):
            async for _ in call:
                pass
        else:
            await call  # type: ignore[misc]
    return caught.value


def same_shape(hidden: grpc.aio.AioRpcError, missing: grpc.aio.AioRpcError, *names: str) -> None:
    """Assert two errors differ only in the named values."""
    assert hidden.code() == missing.code() == grpc.StatusCode.NOT_FOUND
    pattern = hidden.details() or ""
    other = missing.details() or ""
    for name in names:
        pattern = pattern.replace(name, "X")
        other = other.replace(name, "X")
    assert re.sub(r"'[^']*'", "'X'", pattern) == re.sub(r"'[^']*'", "'X'", other)
    hidden_keys = sorted(k for k, _ in cast(Any, hidden.trailing_metadata()) or ())
    missing_keys = sorted(k for k, _ in cast(Any, missing.trailing_metadata()) or ())
    assert hidden_keys == missing_keys


async def test_tenancy_get_message_not_found(secured: Secured, channel: grpc.aio.Channel) -> None:
    await seed(channel)
    stub = ledger_pb2_grpc.LedgerServiceStub(channel)
    hidden = await failure(
        stub.GetMessage(
            pb.GetMessageRequest(tenant="globex", message_id="m1"), metadata=auth("acme-reader")
        )
    )
    missing = await failure(
        stub.GetMessage(
            pb.GetMessageRequest(tenant="acme", message_id="zz"), metadata=auth("acme-reader")
        )
    )
    same_shape(hidden, missing)
    assert hidden.details() == "tenant 'globex' has no message 'm1'"
    allowed = await stub.GetMessage(
        pb.GetMessageRequest(tenant="acme", message_id="m1"), metadata=auth("acme-reader")
    )
    assert allowed.tenant == "acme"


async def test_tenancy_history_not_found(secured: Secured, channel: grpc.aio.Channel) -> None:
    await seed(channel)
    stub = ledger_pb2_grpc.LedgerServiceStub(channel)
    hidden = await failure(
        stub.GetHistory(
            pb.GetHistoryRequest(tenant="globex", message_id="m1"), metadata=auth("acme-auditor")
        )
    )
    missing = await failure(
        stub.GetHistory(
            pb.GetHistoryRequest(tenant="acme", message_id="zz"), metadata=auth("acme-auditor")
        )
    )
    same_shape(hidden, missing)


async def test_tenancy_lookup_not_found(secured: Secured, channel: grpc.aio.Channel) -> None:
    await seed(channel)
    stub = ledger_pb2_grpc.LedgerServiceStub(channel)
    hidden = await failure(
        stub.LookupCarrierMessage(
            pb.LookupCarrierMessageRequest(
                tenant="globex", connection="carrier-a", carrier_message_id="C-globex"
            ),
            metadata=auth("acme-reader"),
        )
    )
    missing = await failure(
        stub.LookupCarrierMessage(
            pb.LookupCarrierMessageRequest(
                tenant="acme", connection="carrier-a", carrier_message_id="C-none"
            ),
            metadata=auth("acme-reader"),
        )
    )
    same_shape(hidden, missing)


async def test_tenancy_commands_not_found(secured: Secured, channel: grpc.aio.Channel) -> None:
    await seed(channel)
    stub = ledger_pb2_grpc.LedgerServiceStub(channel)
    hidden = await failure(
        stub.RecordAcceptance(accept("globex", "m1", "C-other"), metadata=auth("acme-writer"))
    )
    missing = await failure(
        stub.RecordAcceptance(accept("acme", "zz", "C-other"), metadata=auth("acme-writer"))
    )
    same_shape(hidden, missing)
    created = await failure(
        stub.SubmitMessage(submit("globex", "m2"), metadata=auth("acme-writer"))
    )
    assert created.code() == grpc.StatusCode.NOT_FOUND
    absent = await failure(
        stub.GetMessage(
            pb.GetMessageRequest(tenant="globex", message_id="m2"), metadata=auth("all")
        )
    )
    assert absent.code() == grpc.StatusCode.NOT_FOUND


async def test_tenancy_batch_entries(secured: Secured, channel: grpc.aio.Channel) -> None:
    await seed(channel)
    stub = ledger_pb2_grpc.LedgerServiceStub(channel)
    before = await stub.GetMessage(
        pb.GetMessageRequest(tenant="globex", message_id="m1"), metadata=auth("all")
    )
    response = await stub.ExecuteBatch(
        pb.ExecuteBatchRequest(
            commands=[
                pb.Command(submit=submit("acme", "b1")),
                pb.Command(acceptance=accept("globex", "m1", "C-stolen")),
                pb.Command(acceptance=accept("acme", "zz", "C-none")),
                pb.Command(submit=pb.SubmitMessageRequest(tenant="acme", message_id="")),
            ]
        ),
        metadata=auth("acme-writer"),
    )
    codes = [r.status.code for r in response.results]
    assert codes[0] == grpc.StatusCode.OK.value[0]
    assert codes[1] == codes[2] == grpc.StatusCode.NOT_FOUND.value[0]
    assert codes[3] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [r.index for r in response.results] == [0, 1, 2, 3]
    hidden, missing = response.results[1], response.results[2]
    assert re.sub(r"'[^']*'", "'X'", hidden.status.message) == re.sub(
        r"'[^']*'", "'X'", missing.status.message
    )
    assert hidden.tenant == missing.tenant == ""
    assert "commands[3]" in response.results[3].status.message
    after = await stub.GetMessage(
        pb.GetMessageRequest(tenant="globex", message_id="m1"), metadata=auth("all")
    )
    assert after.version == before.version


async def test_tenancy_lists_empty(secured: Secured, channel: grpc.aio.Channel) -> None:
    await seed(channel)
    receipts = ledger_pb2_grpc.ReceiptServiceStub(channel)
    for tenant in ("globex", "nobody"):
        orphans = await receipts.ListOrphanReceipts(
            pb.ListOrphanReceiptsRequest(tenant=tenant, min_age=Duration(seconds=0)),
            metadata=auth("acme-auditor"),
        )
        assert list(orphans.receipts) == []
        unparsed = await receipts.ListUnparsedReceipts(
            pb.ListUnparsedReceiptsRequest(tenant=tenant), metadata=auth("acme-auditor")
        )
        assert list(unparsed.receipts) == []
    reprocessed = await receipts.ReprocessUnparsedReceipts(
        pb.ReprocessUnparsedReceiptsRequest(tenant="globex"), metadata=auth("acme-admin")
    )
    assert reprocessed == pb.ReprocessUnparsedReceiptsResponse()


async def test_tenancy_read_models_empty(secured: Secured, channel: grpc.aio.Channel) -> None:
    await seed(channel)
    stub = readmodels_pb2_grpc.ReadModelServiceStub(channel)
    request = readmodels_pb2.ListMessagesRequest(tenant="globex")
    listed: list[int] = []
    for _ in range(50):
        everyone = await stub.ListMessages(request, metadata=auth("reader"))
        listed.append(len(everyone.messages))
        if everyone.messages:
            break
        await asyncio.sleep(0.1)
    assert listed[-1] == 1, "the projection never listed globex's message"
    hidden = await stub.ListMessages(request, metadata=auth("acme-reader"))
    assert list(hidden.messages) == []
    assert hidden.next_page_token == ""


async def test_tenancy_erase_not_found(secured: Secured, channel: grpc.aio.Channel) -> None:
    await seed(channel)
    stub = ledger_pb2_grpc.AdminServiceStub(channel)
    hidden = await failure(
        stub.EraseSubject(
            pb.EraseSubjectRequest(tenant="globex", destination=NUMBER), metadata=auth("acme-admin")
        )
    )
    missing = await failure(
        stub.EraseSubject(
            pb.EraseSubjectRequest(tenant="acme", destination="+447700900999"),
            metadata=auth("acme-admin"),
        )
    )
    same_shape(hidden, missing)


async def test_tenancy_stuck_list_filtered(tmp_path: Path, tokens_file: Path) -> None:
    secured = await start_secured(
        f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path, tokens_file, stuck_after_seconds=1
    )
    try:
        async with grpc.aio.insecure_channel(secured.address) as channel:
            await seed(channel)
            await asyncio.sleep(1.2)
            stub = ledger_pb2_grpc.ReconciliationServiceStub(channel)
            everyone = await stub.ListStuckMessages(
                pb.ListStuckMessagesRequest(), metadata=auth("reader")
            )
            limited = await stub.ListStuckMessages(
                pb.ListStuckMessagesRequest(), metadata=auth("acme-reader")
            )
            hidden = await stub.ListStuckMessages(
                pb.ListStuckMessagesRequest(tenant="globex"), metadata=auth("acme-reader")
            )
    finally:
        await stop_secured(secured)
    assert sorted(m.tenant for m in everyone.messages) == ["acme", "globex"]
    assert [m.tenant for m in limited.messages] == ["acme"]
    assert list(hidden.messages) == []
