"""Ingest benchmark: the ledger's gRPC write path on PostgreSQL, against baselines.

Measured in one run, each several times (the median is reported):

- baseline A: a trivial grpc.aio unary handler (same client, same concurrency);
- baseline B: raw psycopg multi-row INSERTs of 100 rows per transaction;
- the ledger with unary commands, 64 in flight (rate and p50/p99 latency);
- the ledger with ExecuteBatch (500 commands per call, 4 calls in flight).

The load is the simulator's command mix: per message a Submit, the carrier's
acceptance, an ENROUTE receipt and a final receipt (delivered or failed),
with 5% of receipts repeated as duplicates.

The server runs in its own process (``smsledger serve``) so that the load
generator does not share its interpreter. Usage::

    .venv/bin/python bench/ingest.py [--seconds 10] [--runs 3] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg

from ledger.v1 import ledger_pb2 as pb
from ledger.v1 import ledger_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
TRIVIAL_SERVER = ROOT / "bench" / "trivial_server.py"


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
    raise RuntimeError(f"nothing listens on port {port}")


@dataclass
class Result:
    commands: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.commands / self.seconds

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def command_stream(run: str) -> Iterator[list[pb.Command]]:
    """Yield, per message, its commands in order (the simulator's mix)."""
    rng = random.Random(run)
    n = 0
    while True:
        n += 1
        message_id = f"{run}-{n}"
        carrier_id = f"{run}{n:x}"
        carrier = f"carrier-{n % 4}"
        commands = [
            pb.Command(
                submit=pb.SubmitMessageRequest(
                    tenant="bench",
                    message_id=message_id,
                    destination=f"+4477009{n % 100000:05d}",
                    sender="BENCH",
                    carrier=carrier,
                )
            ),
            pb.Command(
                acceptance=pb.RecordAcceptanceRequest(
                    tenant="bench",
                    message_id=message_id,
                    segments=[pb.SegmentAcceptance(segment=1, carrier_message_id=carrier_id)],
                )
            ),
            pb.Command(receipt=_receipt(carrier, carrier_id, pb.RECEIPT_STATUS_ENROUTE, 1)),
        ]
        final = pb.RECEIPT_STATUS_DELIVERED if rng.random() < 0.85 else pb.RECEIPT_STATUS_FAILED
        commands.append(pb.Command(receipt=_receipt(carrier, carrier_id, final, 2)))
        if rng.random() < 0.05:
            commands.append(commands[-1])
        yield commands


def _receipt(carrier: str, carrier_id: str, status: int, second: int) -> pb.RecordReceiptRequest:
    request = pb.RecordReceiptRequest(
        tenant="bench",
        carrier=pb.CarrierRef(connection=carrier, carrier_message_id=carrier_id),
        status=status,  # type: ignore[arg-type]
        error_code="6" if status == pb.RECEIPT_STATUS_FAILED else "",
    )
    request.occurred_at.FromSeconds(1_790_000_000 + second)
    return request


async def unary_load(address: str, seconds: float, in_flight: int, trivial: bool) -> Result:
    """Run ``in_flight`` message scripts at once, each command a unary call."""
    stream = command_stream(uuid.uuid4().hex[:8])
    latencies: list[float] = []
    count = 0
    stop_at = time.perf_counter() + seconds
    async with grpc.aio.insecure_channel(address) as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)

        async def worker() -> None:
            nonlocal count
            while time.perf_counter() < stop_at:
                for command in next(stream):
                    started = time.perf_counter()
                    kind = command.WhichOneof("command")
                    if trivial or kind == "submit":
                        await stub.SubmitMessage(
                            command.submit if kind == "submit" else pb.SubmitMessageRequest()
                        )
                    elif kind == "acceptance":
                        await stub.RecordAcceptance(command.acceptance)
                    else:
                        await stub.RecordReceipt(command.receipt)
                    latencies.append(time.perf_counter() - started)
                    count += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        elapsed = time.perf_counter() - started
    return Result(count, elapsed, latencies)


async def batch_load(address: str, seconds: float, batch: int, in_flight: int) -> Result:
    """Send ExecuteBatch calls of ``batch`` commands, ``in_flight`` at once.

    Each call carries whole message scripts, so commands of one message stay
    in order within one call.
    """
    stream = command_stream(uuid.uuid4().hex[:8])
    latencies: list[float] = []
    count = 0
    stop_at = time.perf_counter() + seconds
    async with grpc.aio.insecure_channel(
        address, options=[("grpc.max_send_message_length", 64 << 20)]
    ) as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)

        async def worker() -> None:
            nonlocal count
            while time.perf_counter() < stop_at:
                commands: list[pb.Command] = []
                while len(commands) < batch:
                    commands.extend(next(stream))
                started = time.perf_counter()
                response = await stub.ExecuteBatch(pb.ExecuteBatchRequest(commands=commands))
                latencies.append(time.perf_counter() - started)
                failed = [r for r in response.results if r.status.code != 0]
                if failed:
                    raise RuntimeError(f"{len(failed)} commands failed: {failed[0].status}")
                count += len(commands)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        elapsed = time.perf_counter() - started
    return Result(count, elapsed, latencies)


def psycopg_baseline(url: str, seconds: float) -> float:
    """Rows per second of 100-row multi-row INSERT transactions on one connection."""
    table = f"bench_rows_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id bigserial primary key, a text, b bytea, c bigint)")
        try:
            rows = 0
            payload = os.urandom(200)
            started = time.perf_counter()
            values = ",".join(["(%s, %s, %s)"] * 100)
            while time.perf_counter() - started < seconds:
                params: list[object] = []
                for i in range(100):
                    params.extend((f"row-{rows + i}", payload, rows + i))
                with conn.transaction():
                    conn.execute(f"INSERT INTO {table} (a, b, c) VALUES {values}", params)
                rows += 100
            return rows / (time.perf_counter() - started)
        finally:
            conn.execute(f"DROP TABLE {table}")


class Server:
    """A process serving gRPC on a free port, stopped by its PID."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.port = free_port()
        env = {**os.environ, **env, "SMSLEDGER_GRPC_ADDRESS": f"127.0.0.1:{self.port}"}
        self.process = subprocess.Popen(
            [*argv, str(self.port)] if argv[-1] == str(TRIVIAL_SERVER) else argv,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    env = {
        "SMSLEDGER_DATABASE_URL": f"{args.postgres}?schema={schema}",
        "SMSLEDGER_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        "SMSLEDGER_LOG_LEVEL": "WARNING",
        "SMSLEDGER_DB_POOL_SIZE": "4",
        # Measure ingest alone: read models and metrics run elsewhere in production.
        "SMSLEDGER_PROJECTIONS_IN_SERVER": "false",
        "SMSLEDGER_METRICS_ADDRESS": "",
    }
    smsledger = str(Path(sys.executable).parent / "smsledger")
    results: dict[str, list[float]] = {k: [] for k in ("trivial", "psycopg", "unary", "batch")}
    p50: list[float] = []
    p99: list[float] = []
    try:
        trivial = Server([sys.executable, str(TRIVIAL_SERVER)], {})
        ledger = Server([smsledger, "serve"], env)
        try:
            asyncio.run(unary_load(ledger.address, 2, args.in_flight, trivial=False))  # warm-up
            for run in range(args.runs):
                t = asyncio.run(
                    unary_load(trivial.address, args.seconds, args.in_flight, trivial=True)
                )
                results["trivial"].append(t.rate)
                results["psycopg"].append(psycopg_baseline(args.postgres, args.seconds / 2))
                u = asyncio.run(
                    unary_load(ledger.address, args.seconds, args.in_flight, trivial=False)
                )
                results["unary"].append(u.rate)
                p50.append(u.percentile(0.5))
                p99.append(u.percentile(0.99))
                b = asyncio.run(batch_load(ledger.address, args.seconds, args.batch, 4))
                results["batch"].append(b.rate)
                print(
                    f"run {run + 1}: trivial {t.rate:,.0f}/s  "
                    f"psycopg {results['psycopg'][-1]:,.0f} rows/s  "
                    f"unary {u.rate:,.0f}/s (p50 {p50[-1]:.1f} ms, p99 {p99[-1]:.1f} ms)  "
                    f"batch {b.rate:,.0f} commands/s",
                    flush=True,
                )
        finally:
            ledger.stop()
            trivial.stop()
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

    med = {k: statistics.median(v) for k, v in results.items()}
    print()
    print(
        f"medians of {args.runs} runs, {args.seconds:g} s each, "
        f"{args.in_flight} unary calls in flight"
    )
    print(f"  trivial grpc.aio handler     {med['trivial']:>10,.0f} calls/s")
    print(f"  psycopg 100-row INSERTs      {med['psycopg']:>10,.0f} rows/s")
    print(
        f"  ledger unary commands        {med['unary']:>10,.0f} commands/s  "
        f"ratio to trivial {med['unary'] / med['trivial']:.2f} (target 0.75)  "
        f"p50 {statistics.median(p50):.1f} ms  p99 {statistics.median(p99):.1f} ms (target 100)"
    )
    print(
        f"  ledger ExecuteBatch          {med['batch']:>10,.0f} events/s  "
        f"ratio to psycopg rows {med['batch'] / med['psycopg']:.2f} (target 10,000/s)"
    )


if __name__ == "__main__":
    main()
