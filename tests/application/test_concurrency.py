"""Many writers on the same messages lose nothing and see no version conflict."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc

from ledger.application.commands import RecordAcceptance, RecordReceipt, SubmitMessage
from ledger.application.results import CommandResult
from ledger.domain.outcomes import Status
from ledger.runtime import Runtime, build_runtime
from ledger.v1 import ledger_pb2 as pb
from ledger.v1 import ledger_pb2_grpc
from tests.conftest import make_settings

MESSAGES = 5
WRITERS = 50
RECEIPTS_PER_WRITER = 8
T0 = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)


def _setup(runtime: Runtime) -> None:
    commands = []
    for n in range(MESSAGES):
        commands.append(
            SubmitMessage(
                tenant="acme",
                message_id=f"m{n}",
                destination="+447700900123",
                sender="ACME",
                carrier="carrier-a",
            )
        )
        commands.append(
            RecordAcceptance(tenant="acme", message_id=f"m{n}", segments=((1, f"id{n}"),))
        )
    assert all(isinstance(o, CommandResult) for o in runtime.ledger.execute(commands))


def _receipt(writer: int, index: int) -> RecordReceipt:
    # Every receipt is distinct (its own source time), so each must append an event.
    return RecordReceipt(
        tenant="acme",
        status=Status.ENROUTE,
        connection="carrier-a",
        carrier_message_id=f"id{(writer + index) % MESSAGES}",
        occurred_at=T0 + timedelta(seconds=writer * 1000 + index),
    )


def test_two_nodes_fifty_threads_lose_nothing(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path)
    nodes = [build_runtime(settings), build_runtime(settings)]
    try:
        _setup(nodes[0])
        nodes[1].ledger.get_message("acme", "m0")

        def write(writer: int) -> list[object]:
            ledger = nodes[writer % 2].ledger
            outcomes = []
            for index in range(RECEIPTS_PER_WRITER):
                outcomes.extend(ledger.execute([_receipt(writer, index)]))
            return outcomes

        with ThreadPoolExecutor(max_workers=WRITERS) as pool:
            results = [o for chunk in pool.map(write, range(WRITERS)) for o in chunk]

        failures = [o for o in results if not isinstance(o, CommandResult)]
        assert failures == []
        total = sum(
            nodes[0].ledger.get_message("acme", f"m{n}")[0].version for n in range(MESSAGES)
        )
        assert total == MESSAGES * 2 + WRITERS * RECEIPTS_PER_WRITER
    finally:
        for node in nodes:
            node.close()


async def test_fifty_grpc_clients_on_same_messages(server: tuple[str, Runtime]) -> None:
    address, runtime = server
    _setup(runtime)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)

        async def client(writer: int) -> None:
            for index in range(RECEIPTS_PER_WRITER):
                receipt = _receipt(writer, index)
                stamp = pb.RecordReceiptRequest().occurred_at
                stamp.FromDatetime(receipt.occurred_at)  # type: ignore[arg-type]
                await stub.RecordReceipt(
                    pb.RecordReceiptRequest(
                        tenant="acme",
                        carrier=pb.CarrierRef(
                            connection="carrier-a", carrier_message_id=receipt.carrier_message_id
                        ),
                        status=pb.RECEIPT_STATUS_ENROUTE,
                        occurred_at=stamp,
                    )
                )

        await asyncio.gather(*(client(w) for w in range(WRITERS)))
    total = sum(runtime.ledger.get_message("acme", f"m{n}")[0].version for n in range(MESSAGES))
    assert total == MESSAGES * 2 + WRITERS * RECEIPTS_PER_WRITER
