"""Checking, before a run, that the server reads each format connection as the simulator does.

For every connection the simulator encodes one failure receipt and has the
server parse it with ``ReceiptService/NormalizeReceipt``, which records
nothing. The request leaves the format empty, so the server uses the
connection's configured one. Every simulated profile differs from the
default profile in a way this receipt shows (format, zone, id bases, a code
override), so a server without the simulator's connections file reads it
differently, and the run is refused before anything is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import grpc

from ledger.receipts.ids import canonical_carrier_id
from ledger.simulate.channels import open_channel
from ledger.simulate.connections import server_profiles
from ledger.simulate.formats import ENCODERS
from ledger.simulate.formats.base import FormatConnection, ReceiptFacts, seeded_rng
from ledger.v1 import ledger_pb2, ledger_pb2_grpc

__all__ = ["UnknownConnectionsError", "check_connections", "probe_facts"]

_PROBE_TIME = datetime(2026, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC)
_PROBE_ID = "00PROBE1A2B3C"


class UnknownConnectionsError(RuntimeError):
    """The server does not read the simulator's connections as the simulator does.

    Attributes:
        target: The server's address.
        problems: One line per connection that the server reads differently.
    """

    def __init__(self, target: str, problems: list[str]) -> None:
        self.target = target
        self.problems = problems
        super().__init__(
            f"the server at {target} does not hold the simulator's connection profiles: "
            + "; ".join(problems)
            + ". Write them with `smsledger simulate --write-connections FILE` and restart "
            "the server with SMSLEDGER_CONNECTIONS_FILE=FILE"
        )


def probe_facts(connection: FormatConnection) -> ReceiptFacts:
    """Return the failure receipt that probes ``connection``.

    Its code is one the profile overrides where the profile has overrides,
    and otherwise the connection's first permanent code.
    """
    overrides = [
        *connection.profile.get("permanent_codes", ()),
        *connection.profile.get("transient_codes", ()),
    ]
    code = overrides[0] if overrides else connection.carrier.permanent_codes[0]
    return ReceiptFacts(
        message_id="probe",
        attempt=1,
        status="FAILED",
        final=True,
        error_code=str(code),
        occurred_at=_PROBE_TIME,
        carrier_id=_PROBE_ID,
        segment=0,
        destination="+447700900000",
        submitted_at=_PROBE_TIME - timedelta(minutes=2),
    )


async def _probe(
    stub: ledger_pb2_grpc.ReceiptServiceAsyncStub,
    connection: FormatConnection,
    timeout_seconds: float,
) -> str | None:
    """Return how the server's reading of the probe differs, or None when it does not."""
    encoder = ENCODERS[connection.family]
    facts = probe_facts(connection)
    encoded = encoder.encode(facts, connection, seeded_rng("probe", connection.name))
    profile = server_profiles({connection.name: connection})[connection.name]
    accepted_id = canonical_carrier_id(encoder.acceptance_id(_PROBE_ID), profile.submit_id_base)
    request = ledger_pb2.NormalizeReceiptRequest(
        connection=connection.name,
        content_type=encoded.payload.content_type,
        body=encoded.payload.body,
        metadata=dict(encoded.payload.metadata),
    )
    try:
        response = await stub.NormalizeReceipt(request, timeout=timeout_seconds)
    except grpc.aio.AioRpcError as error:
        return f"{connection.name}: {error.code().name}: {error.details()}"
    if len(response.receipts) != 1:
        return f"{connection.name}: {len(response.receipts)} receipts instead of 1"
    read = response.receipts[0]
    done_at = read.done_at.ToDatetime(UTC) if read.HasField("done_at") else None
    expected = {
        "status": (ledger_pb2.RECEIPT_STATUS_FAILED, read.status),
        "final": (True, read.final),
        "permanent": (encoded.permanent, read.permanent if read.HasField("permanent") else None),
        "error_code": (encoded.error_code, read.error_code),
        "done_at": (encoded.stated_time, done_at),
        "canonical_id": (accepted_id, read.canonical_id),
    }
    differences = [
        f"{name} {want!r} expected, server read {got!r}"
        for name, (want, got) in expected.items()
        if want != got
    ]
    if read.warnings:
        differences.append(f"parser warnings {list(read.warnings)}")
    return f"{connection.name}: {', '.join(differences)}" if differences else None


async def check_connections(
    target: str,
    connections: Mapping[str, FormatConnection],
    *,
    timeout_seconds: float = 10.0,
) -> None:
    """Probe every connection on the server at ``target``.

    Raises:
        UnknownConnectionsError: The server reads some connection differently.
        ConnectionError: The server cannot be reached.
    """
    async with open_channel(target) as channel:
        try:
            await asyncio.wait_for(channel.channel_ready(), timeout_seconds)
        except TimeoutError:
            raise ConnectionError(
                f"cannot connect to {target} within {timeout_seconds:g} s; "
                "check that `smsledger serve` listens there"
            ) from None
        stub = ledger_pb2_grpc.ReceiptServiceStub(channel)
        found = await asyncio.gather(
            *(_probe(stub, c, timeout_seconds) for c in connections.values())
        )
    problems = [problem for problem in found if problem is not None]
    if problems:
        raise UnknownConnectionsError(target, problems)
