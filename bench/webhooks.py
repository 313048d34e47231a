"""Webhook benchmark: signed HTTP callbacks against the gRPC raw-receipt batch path.

Both paths record the same Twilio status callbacks (form bodies) for messages
that were submitted and accepted beforehand, into the same server process
(``smsledger serve`` with the webhook endpoint beside gRPC):

- HTTP: one POST per callback with a valid ``X-Twilio-Signature``, 64 in
  flight; each is verified and acknowledged only after its commit;
- gRPC: ``ExecuteBatch`` of 500 ``raw_receipt`` commands, 4 calls in flight.

Each run records ``--callbacks`` receipts per path, and the medians of
``--runs`` runs are printed. The target is HTTP >= 0.5x the batch path. The
load generator runs in this process and the server in its own, so on a
2-core machine each has about one core.

Usage::

    .venv/bin/python bench/webhooks.py [--callbacks 20000] [--runs 3] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import grpc
import psycopg

from ledger.v1 import ledger_pb2 as pb
from ledger.v1 import ledger_pb2_grpc
from ledger.webhooks.twilio import twilio_signature

PUBLIC = "https://bench.example"
SECRET = "bench-auth-token-0123456789abcdef"
CONNECTION = "twilio-bench"
TENANT = "bench"
FORM = "application/x-www-form-urlencoded"
PROFILES = f"""
[connections.{CONNECTION}]
format = "twilio"
[connections.{CONNECTION}.webhook]
provider = "twilio"
tenant = "{TENANT}"
secrets = ["{SECRET}"]
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {seconds} s")


def callback_body(carrier_id: str) -> bytes:
    fields = {
        "MessageSid": carrier_id,
        "MessageStatus": "delivered",
        "To": "+447700900123",
        "AccountSid": "AC0123456789",
        "ApiVersion": "2010-04-01",
    }
    return urlencode(fields).encode()


async def prepare(stub: ledger_pb2_grpc.LedgerServiceAsyncStub, run: str, count: int) -> list[str]:
    """Submit and accept ``count`` messages; return their carrier ids."""
    carrier_ids = [f"SM{run}{n:07d}" for n in range(count)]
    commands = []
    for n, carrier_id in enumerate(carrier_ids):
        message_id = f"{run}-{n}"
        commands.append(
            pb.Command(
                submit=pb.SubmitMessageRequest(
                    tenant=TENANT,
                    message_id=message_id,
                    destination=f"+4477009{n % 100000:05d}",
                    sender="BENCH",
                    carrier=CONNECTION,
                )
            )
        )
        commands.append(
            pb.Command(
                acceptance=pb.RecordAcceptanceRequest(
                    tenant=TENANT,
                    message_id=message_id,
                    segments=[pb.SegmentAcceptance(segment=1, carrier_message_id=carrier_id)],
                )
            )
        )
    for start in range(0, len(commands), 1000):
        reply = await stub.ExecuteBatch(
            pb.ExecuteBatchRequest(commands=commands[start : start + 1000])
        )
        failed = [r for r in reply.results if r.status.code != 0]
        assert not failed, failed[:1]
    return carrier_ids


async def http_load(url: str, carrier_ids: list[str], in_flight: int) -> float:
    """POST one signed callback per carrier id; return callbacks per second."""
    signed = []
    for carrier_id in carrier_ids:
        body = callback_body(carrier_id)
        fields = [tuple(pair.split("=", 1)) for pair in body.decode().split("&")]
        signature = twilio_signature(
            SECRET, f"{PUBLIC}/hooks/{CONNECTION}", [(k, v.replace("%2B", "+")) for k, v in fields]
        )
        signed.append((body, {"X-Twilio-Signature": signature, "Content-Type": FORM}))
    queue = iter(signed)
    failures = 0
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal failures
            for body, headers in queue:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{failures} callbacks were not acknowledged")
    return len(carrier_ids) / elapsed


async def batch_load(
    stub: ledger_pb2_grpc.LedgerServiceAsyncStub, carrier_ids: list[str], batch: int, in_flight: int
) -> float:
    """Send the same callbacks as raw_receipt commands in ExecuteBatch calls."""
    commands = [
        pb.Command(
            raw_receipt=pb.RecordRawReceiptRequest(
                tenant=TENANT,
                connection=CONNECTION,
                content_type=FORM,
                body=callback_body(carrier_id),
                source="bench",
            )
        )
        for carrier_id in carrier_ids
    ]
    chunks = iter([commands[i : i + batch] for i in range(0, len(commands), batch)])

    async def worker() -> None:
        for chunk in chunks:
            reply = await stub.ExecuteBatch(pb.ExecuteBatchRequest(commands=chunk))
            failed = [r for r in reply.results if r.status.code != 0]
            if failed:
                raise RuntimeError(f"batch commands failed: {failed[0]}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return len(carrier_ids) / (time.perf_counter() - started)


async def one_run(address: str, webhook_url: str, args: argparse.Namespace) -> tuple[float, float]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub: ledger_pb2_grpc.LedgerServiceAsyncStub = ledger_pb2_grpc.LedgerServiceStub(channel)
        run = uuid.uuid4().hex[:6]
        http_ids = await prepare(stub, f"h{run}", args.callbacks)
        grpc_ids = await prepare(stub, f"g{run}", args.callbacks)
        http_rate = await http_load(webhook_url, http_ids, args.in_flight)
        grpc_rate = await batch_load(stub, grpc_ids, args.batch, 4)
    return http_rate, grpc_rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--callbacks", type=int, default=20_000, help="Callbacks per path per run.")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--in-flight", type=int, default=64, help="HTTP requests in flight.")
    parser.add_argument("--batch", type=int, default=500, help="Commands per ExecuteBatch call.")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    # SIGTERM ends the run through the finally blocks, which stop the server and
    # drop the benchmark's schema.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    grpc_port, http_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as folder:
        profiles = Path(folder) / "connections.toml"
        profiles.write_text(PROFILES)
        env = {
            **os.environ,
            "SMSLEDGER_DATABASE_URL": f"{args.postgres}?schema={schema}",
            "SMSLEDGER_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
            "SMSLEDGER_LOG_LEVEL": "WARNING",
            "SMSLEDGER_DB_POOL_SIZE": "4",
            "SMSLEDGER_GRPC_ADDRESS": f"127.0.0.1:{grpc_port}",
            "SMSLEDGER_WEBHOOK_ADDRESS": f"127.0.0.1:{http_port}",
            "SMSLEDGER_WEBHOOK_PUBLIC_BASE_URL": PUBLIC,
            "SMSLEDGER_WEBHOOK_RATE_PER_SECOND": "1000000",
            "SMSLEDGER_WEBHOOK_BURST": "1000000",
            "SMSLEDGER_CONNECTIONS_FILE": str(profiles),
            "SMSLEDGER_PROJECTIONS_IN_SERVER": "false",
        }
        smsledger = str(Path(sys.executable).parent / "smsledger")
        server = subprocess.Popen(
            [smsledger, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        http_rates: list[float] = []
        grpc_rates: list[float] = []
        try:
            wait_for_port(grpc_port)
            wait_for_port(http_port)
            url = f"http://127.0.0.1:{http_port}/hooks/{CONNECTION}"
            for run in range(args.runs):
                http_rate, grpc_rate = asyncio.run(one_run(f"127.0.0.1:{grpc_port}", url, args))
                http_rates.append(http_rate)
                grpc_rates.append(grpc_rate)
                print(
                    f"run {run + 1}: HTTP {http_rate:,.0f} callbacks/s  "
                    f"ExecuteBatch raw_receipt {grpc_rate:,.0f} receipts/s",
                    flush=True,
                )
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

    http_median = statistics.median(http_rates)
    grpc_median = statistics.median(grpc_rates)
    print()
    print(f"medians of {args.runs} runs, {args.callbacks:,} callbacks per path per run")
    print(
        f"  HTTP signed callbacks ({args.in_flight} in flight)  {http_median:>10,.0f} callbacks/s"
    )
    print(f"  gRPC ExecuteBatch raw_receipt ({args.batch}/call)   {grpc_median:>10,.0f} receipts/s")
    print(f"  ratio {http_median / grpc_median:.2f} (target 0.50)")


if __name__ == "__main__":
    main()
