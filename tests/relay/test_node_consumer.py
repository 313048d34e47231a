"""The Node.js example consumer reads and decodes every event the relay published."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.relay import Relay
from ledger.runtime import Runtime
from tests.relay.helpers import ingest, log_event_ids, make_config, running, wait_acked
from tests.support.servers import require_or_skip

pytestmark = [pytest.mark.nats, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "node-consumer"


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


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_node_consumer_decodes_every_event(
    node_consumer: Path, runtime: Runtime, nats_url: str, stream_name: str
):
    last = ingest(runtime, 30)
    config = make_config(nats_url, stream_name)
    relay = Relay(runtime.store, config)
    async with running(relay) as task:
        await wait_acked(relay, last, task, 30)
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
        assert event["tenant"] in ("acme", "globex")
        assert event["status"]

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
