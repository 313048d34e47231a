"""The Node.js example consumer reads and decodes every event the relay published.

The events come from a simulated run: the simulator's scripts against an
in-process gRPC server, with every scenario, expiries inferred by the sweeper
included.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from ledger.relay import Relay
from ledger.runtime import Runtime, build_runtime
from ledger.simulate.carriers import build_carriers
from ledger.simulate.driver import DriverConfig
from ledger.simulate.plan import PlanConfig
from ledger.simulate.runner import prepare, run_simulation
from ledger.simulate.truth import ExpectedState
from ledger.v1 import events_pb2, ledger_pb2, ledger_pb2_grpc
from tests.conftest import make_settings
from tests.relay.helpers import log_event_ids, make_config, running, wait_acked
from tests.support.servers import require_or_skip

pytestmark = [pytest.mark.nats, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "node-consumer"
TENANT = "sim-node"
MESSAGES = 200
SAMPLE = 40


@pytest.fixture
def runtime(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime whose sweeper infers expiries every second, without projections."""
    built = build_runtime(
        make_settings(
            database_url,
            tmp_path,
            expiry_grace_seconds=0,
            expiry_sweep_interval_seconds=1.0,
            projections_in_server=False,
        )
    )
    try:
        yield built
    finally:
        built.close()


@pytest.fixture(scope="module")
def node_consumer() -> Iterator[Path]:
    """The example with its dependencies installed and its protobuf code generated."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        require_or_skip("Node.js and npm are needed for the example consumer")
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        require_or_skip(f"npm ci failed: {done.stderr[-2000:]}")
    yield EXAMPLE


def run_consumer(example: Path, **env: str) -> tuple[list[dict[str, object]], dict[str, int]]:
    done = subprocess.run(
        ["node", "consumer.js"],
        cwd=example,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    summary = json.loads(done.stderr.strip().splitlines()[-1])
    return lines, summary


async def simulated_run(address: str) -> dict[str, ExpectedState]:
    """Send the scripts of ``MESSAGES`` simulated messages, check their states, return the truth."""
    prepared = prepare(
        PlanConfig(
            messages=MESSAGES,
            seed=23,
            run_id="node23",
            now=datetime.now(UTC),
            carriers=tuple(build_carriers(3)),
            expiry_grace_seconds=0,
        )
    )
    config = DriverConfig(
        target=address,
        tenant=TENANT,
        concurrency=4,
        batch_size=25,
        expiry_wait_seconds=20,
        max_seconds=60,
    )
    result = await run_simulation(prepared, config)
    assert [m.describe() for m in result.mismatches] == []
    assert result.stats.problems == []
    return result.expected


def ledger_body(event: events_pb2.Event) -> tuple[str, dict[str, object]]:
    """Return an event's body kind and fields as the consumer prints them."""
    kind = event.WhichOneof("body") or ""
    if kind == "submission":
        s = event.submission
        fields: dict[str, object] = {
            "country": s.country,
            "destination_masked": s.destination_masked,
            "carrier": s.carrier,
            "segment_count": s.segment_count,
        }
    elif kind == "acceptance":
        fields = {
            "carrier": event.acceptance.carrier,
            "segments": [s.segment for s in event.acceptance.segments],
        }
    elif kind == "receipt":
        r = event.receipt
        fields = {
            "connection": r.connection,
            "segment": r.segment,
            "status": r.status,
            "final": r.final,
            "error_code": r.error_code,
            "effect": events_pb2.ReceiptEffect.Name(r.effect),
        }
    elif kind == "inferred_expiry":
        kind, fields = "inferredExpiry", {"reason": event.inferred_expiry.reason}
    elif kind == "retry_advice":
        advice = event.retry_advice
        kind, fields = "retryAdvice", {"retry": advice.retry, "reason": advice.reason}
    else:
        fields = {}
    return kind, fields


async def history(address: str, message_ids: list[str]) -> dict[str, events_pb2.Event]:
    """Return the ledger's own events of ``message_ids``, by event id."""
    events: dict[str, events_pb2.Event] = {}
    async with grpc.aio.insecure_channel(address) as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        for message_id in message_ids:
            request = ledger_pb2.GetHistoryRequest(tenant=TENANT, message_id=message_id)
            async for item in stub.GetHistory(request):
                events[item.event.event_id] = item.event
    return events


@pytest.mark.timeout(240)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_node_consumer_decodes_every_event(
    node_consumer: Path, server: tuple[str, Runtime], nats_url: str, stream_name: str
):
    address, runtime = server
    truth = await simulated_run(address)
    last = runtime.store.max_position()
    config = make_config(nats_url, stream_name)
    relay = Relay(runtime.store, config)
    async with running(relay) as task:
        await wait_acked(relay, last, task, 60)
    expected = log_event_ids(runtime)

    events, summary = run_consumer(
        node_consumer,
        NATS_URL=nats_url,
        STREAM=stream_name,
        SUBJECTS=config.stream_subjects,
        EXPECT=str(len(expected)),
        IDLE_MS="5000",
    )
    assert {e["id"] for e in events} == expected
    assert summary == {"events": len(expected), "duplicates": 0, "out_of_order": 0}
    for event in events:
        assert event["ce_type"] == f"ledger.v1.{event['type']}"
        assert event["tenant"] == TENANT
        assert event["status"]
    bodies = {e["body"] for e in events}
    assert {"submission", "acceptance", "receipt", "inferredExpiry"} <= bodies

    # The bodies the consumer decoded equal the ledger's own history of a sample.
    message_ids = sorted({str(e["message_id"]) for e in events})
    assert len(message_ids) == MESSAGES
    sample = random.Random(23).sample(message_ids, SAMPLE)
    ledger_events = await history(address, sample)
    decoded = {e["id"]: e for e in events if e["message_id"] in sample}
    assert set(decoded) == set(ledger_events)
    for event_id, event in ledger_events.items():
        kind, fields = ledger_body(event)
        assert (decoded[event_id]["body"], decoded[event_id]["fields"]) == (kind, fields), event_id
    receipts = [e["fields"] for e in decoded.values() if e["body"] == "receipt"]
    assert any(r["error_code"] for r in receipts)
    assert {r["status"] for r in receipts} >= {"DELIVERED", "FAILED"}
    # A message's first submission names the region the simulator chose.
    firsts = [e for e in decoded.values() if e["body"] == "submission" and e["version"] == 1]
    assert len(firsts) == SAMPLE
    for first in firsts:
        fields = first["fields"]
        assert fields["country"] == truth[first["message_id"]].country
        assert "xxx" in fields["destination_masked"]

    # Replay from a stream sequence with a durable consumer.
    replayed, summary = run_consumer(
        node_consumer,
        NATS_URL=nats_url,
        STREAM=stream_name,
        SUBJECTS=config.stream_subjects,
        DURABLE="replay",
        START_SEQUENCE="11",
        EXPECT=str(len(expected) - 10),
    )
    assert [e["sequence"] for e in replayed] == list(range(11, len(expected) + 1))
    assert summary["events"] == len(expected) - 10
