"""Raw receipt ingest benchmark: carrier payloads vs normalized receipts, on PostgreSQL.

One ``smsledger serve`` runs on its own PostgreSQL schema (dropped at the
end) with the simulator's connection profiles. Each run seeds two disjoint
sets of messages with their submissions and acceptances (not timed), then
times, through ``ExecuteBatch`` with the same batch size and calls in flight:

- raw: ``raw_receipt`` entries, each one payload in its carrier's format, in
  the simulator's traffic mix. About 60 % are SMPP receipt texts, PDUs, and
  Kannel and Jasmin callbacks, and the rest Twilio, Vonage, Plivo, Sinch,
  Infobip, AWS and MessageBird webhooks.
- normalized: ``receipt`` entries carrying what the same kind of payloads
  normalize to (the client parses them before timing starts).

Per message there is an ENROUTE receipt and a final one (85 % delivered).
All ENROUTE receipts are sent before the finals. The phases alternate in
order between runs, and the medians of the runs are reported with the
server's CPU time per 1000 receipts. Projections and the metrics endpoint
are off, so the timed work is the ingest path alone. Usage::

    .venv/bin/python bench/raw_ingest.py [--messages 20000] [--runs 3] \\
        [--postgres URL] [--profile DIR]

``--profile DIR`` records the server with py-spy during both phases of the
last run (``DIR/raw.txt``, ``DIR/normalized.txt``, collapsed stacks).
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
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import psycopg

from ledger.receipts.parse import parse_receipt
from ledger.simulate.connections import (
    FORMAT_CONNECTIONS,
    server_profiles,
    write_connections,
)
from ledger.simulate.formats import ENCODERS
from ledger.simulate.formats.base import ReceiptFacts, seeded_rng
from ledger.v1 import ledger_pb2 as pb
from ledger.v1 import ledger_pb2_grpc

TENANT = "bench"
PROFILES = server_profiles()
_STATUS = {
    "ENROUTE": pb.RECEIPT_STATUS_ENROUTE,
    "ACCEPTED": pb.RECEIPT_STATUS_ACCEPTED,
    "DELIVERED": pb.RECEIPT_STATUS_DELIVERED,
    "FAILED": pb.RECEIPT_STATUS_FAILED,
    "EXPIRED": pb.RECEIPT_STATUS_EXPIRED,
    "REJECTED": pb.RECEIPT_STATUS_REJECTED,
    "UNKNOWN": pb.RECEIPT_STATUS_UNKNOWN,
}


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
class Workload:
    """Commands of one side of a run."""

    seed: list[pb.Command]
    receipts: list[pb.Command]


def _normalized(command: pb.Command) -> pb.Command:
    """Return the ``receipt`` entry that a ``raw_receipt`` entry normalizes to."""
    raw = command.raw_receipt
    profile = PROFILES[raw.connection]
    (read,) = parse_receipt(
        raw.format or profile.format, raw.body, raw.content_type, profile, dict(raw.metadata)
    ).receipts
    request = pb.RecordReceiptRequest(
        tenant=raw.tenant,
        status=_STATUS[read.status.name],
        final=read.final,
        error_code=read.error_code or "",
        error_table=read.error_table or "",
    )
    request.carrier.connection = raw.connection
    request.carrier.carrier_message_id = read.carrier_message_id or ""
    if read.permanent is not None:
        request.permanent = read.permanent
    if read.done_at is not None:
        request.occurred_at.FromDatetime(read.done_at)
    return pb.Command(receipt=request)


def build_workload(prefix: str, messages: int, normalized: bool) -> Workload:
    """Build seed commands and receipts for ``messages`` messages with ids ``prefix-N``."""
    rng = random.Random(prefix)
    shares = [c.carrier.traffic_share for c in FORMAT_CONNECTIONS]
    start = datetime.now(UTC) - timedelta(hours=2)
    seed: list[pb.Command] = []
    enroute: list[pb.Command] = []
    finals: list[pb.Command] = []
    for n in range(messages):
        connection = rng.choices(FORMAT_CONNECTIONS, shares)[0]
        encoder = ENCODERS[connection.family]
        message_id = f"{prefix}-{n}"
        planned_id = f"{prefix.upper()}{n:08X}"
        destination = f"+447700900{n % 1000:03d}"
        submitted = start + timedelta(milliseconds=n)
        submit = pb.SubmitMessageRequest(
            tenant=TENANT,
            message_id=message_id,
            destination=destination,
            sender="BENCH",
            carrier=connection.name,
        )
        submit.submitted_at.FromDatetime(submitted)
        accept = pb.RecordAcceptanceRequest(
            tenant=TENANT,
            message_id=message_id,
            segments=[
                pb.SegmentAcceptance(
                    segment=0, carrier_message_id=encoder.acceptance_id(planned_id)
                )
            ],
        )
        seed += [pb.Command(submit=submit), pb.Command(acceptance=accept)]
        carrier = connection.carrier
        if rng.random() < 0.85:
            final, code = "DELIVERED", ""
        else:
            permanent = rng.random() < carrier.permanent_share
            final = "FAILED"
            code = rng.choice(carrier.permanent_codes if permanent else carrier.transient_codes)
        for status, error, seconds, target in (
            ("ENROUTE", "", 2.5, enroute),
            (final, code, 40.5, finals),
        ):
            facts = ReceiptFacts(
                message_id=message_id,
                attempt=1,
                status=status,
                final=status != "ENROUTE",
                error_code=error,
                occurred_at=submitted + timedelta(seconds=seconds),
                carrier_id=planned_id,
                segment=0,
                destination=destination,
                submitted_at=submitted,
            )
            encoded = encoder.encode(facts, connection, seeded_rng(message_id, status))
            payload = encoded.payload
            command = pb.Command(
                raw_receipt=pb.RecordRawReceiptRequest(
                    tenant=TENANT,
                    connection=connection.name,
                    format=payload.format,
                    content_type=payload.content_type,
                    body=payload.body,
                    metadata=dict(payload.metadata),
                    source="bench",
                )
            )
            target.append(_normalized(command) if normalized else command)
    return Workload(seed, enroute + finals)


async def send(address: str, commands: list[pb.Command], batch: int, in_flight: int) -> float:
    """Send ``commands`` in ExecuteBatch calls, ``in_flight`` at once; return the seconds taken."""
    chunks = [commands[i : i + batch] for i in range(0, len(commands), batch)]
    queue: asyncio.Queue[list[pb.Command]] = asyncio.Queue()
    for chunk in chunks:
        queue.put_nowait(chunk)
    options = [("grpc.max_send_message_length", 64 << 20)]
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)

        async def worker() -> None:
            while not queue.empty():
                chunk = queue.get_nowait()
                response = await stub.ExecuteBatch(pb.ExecuteBatchRequest(commands=chunk))
                failed = [r for r in response.results if r.status.code != 0]
                if failed:
                    raise RuntimeError(f"{len(failed)} commands failed: {failed[0].status}")
                parked = [
                    r
                    for r in response.results
                    if r.receipt_disposition == pb.RECEIPT_DISPOSITION_PARKED
                ]
                if parked:
                    raise RuntimeError(f"{len(parked)} receipts parked: ids do not correlate")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    """Return the user plus system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Phase:
    receipts: int
    seconds: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.receipts / self.seconds

    @property
    def cpu_per_thousand(self) -> float:
        return self.cpu / self.receipts * 1000


class Server:
    """``smsledger serve`` on a free port, stopped by its PID."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        smsledger = str(Path(sys.executable).parent / "smsledger")
        self.process = subprocess.Popen(
            [smsledger, "serve"],
            env={**os.environ, **env, "SMSLEDGER_GRPC_ADDRESS": f"127.0.0.1:{self.port}"},
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


def timed_phase(
    server: Server, commands: list[pb.Command], args: argparse.Namespace, profile: Path | None
) -> Phase:
    recorder = None
    if profile is not None:
        py_spy = str(Path(sys.executable).parent / "py-spy")
        pid = str(server.process.pid)
        recorder = subprocess.Popen(
            [
                py_spy,
                "record",
                "-p",
                pid,
                "-f",
                "raw",
                "-o",
                str(profile),
                "--threads",
                "-r",
                "200",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
    cpu_before = cpu_seconds(server.process.pid)
    seconds = asyncio.run(send(server.address, commands, args.batch, args.in_flight))
    cpu = cpu_seconds(server.process.pid) - cpu_before
    if recorder is not None:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=60)
    return Phase(len(commands), seconds, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000, help="messages per side and run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500, help="commands per ExecuteBatch call")
    parser.add_argument("--in-flight", type=int, default=4, help="ExecuteBatch calls in flight")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--profile", type=Path, help="directory for py-spy recordings")
    args = parser.parse_args()

    schema = f"bench_raw_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    work = Path(tempfile.mkdtemp(prefix="raw-ingest-"))
    write_connections(work / "connections.toml")
    env = {
        "SMSLEDGER_DATABASE_URL": f"{args.postgres}?schema={schema}",
        "SMSLEDGER_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        "SMSLEDGER_DATA_DIR": str(work),
        "SMSLEDGER_CONNECTIONS_FILE": str(work / "connections.toml"),
        "SMSLEDGER_LOG_LEVEL": "WARNING",
        "SMSLEDGER_METRICS_ADDRESS": "",
        "SMSLEDGER_PROJECTIONS_IN_SERVER": "false",
    }
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[Phase]] = {"raw": [], "normalized": []}
    try:
        server = Server(env)
        try:
            for run in range(args.runs):
                tag = uuid.uuid4().hex[:6]
                sides = {
                    "raw": build_workload(f"r{tag}", args.messages, normalized=False),
                    "normalized": build_workload(f"n{tag}", args.messages, normalized=True),
                }
                for side in sides.values():
                    asyncio.run(send(server.address, side.seed, args.batch, args.in_flight))
                order = ["raw", "normalized"] if run % 2 == 0 else ["normalized", "raw"]
                last = run == args.runs - 1
                for name in order:
                    profile = args.profile / f"{name}.txt" if args.profile and last else None
                    phase = timed_phase(server, sides[name].receipts, args, profile)
                    results[name].append(phase)
                raw, normalized = results["raw"][-1], results["normalized"][-1]
                print(
                    f"run {run + 1}: raw {raw.rate:,.0f} receipts/s "
                    f"({raw.cpu_per_thousand:.2f} CPU s per 1000), normalized "
                    f"{normalized.rate:,.0f} receipts/s ({normalized.cpu_per_thousand:.2f}), "
                    f"ratio {raw.rate / normalized.rate:.2f}",
                    flush=True,
                )
        finally:
            server.stop()
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

    raw_rate = statistics.median(p.rate for p in results["raw"])
    normalized_rate = statistics.median(p.rate for p in results["normalized"])
    raw_cpu = statistics.median(p.cpu_per_thousand for p in results["raw"])
    normalized_cpu = statistics.median(p.cpu_per_thousand for p in results["normalized"])
    print()
    print(
        f"medians of {args.runs} runs, {2 * args.messages} receipts per phase, "
        f"ExecuteBatch of {args.batch}, {args.in_flight} in flight"
    )
    print(f"  raw payloads         {raw_rate:>9,.0f} receipts/s  {raw_cpu:.2f} CPU s per 1000")
    print(
        f"  normalized receipts  {normalized_rate:>9,.0f} receipts/s  "
        f"{normalized_cpu:.2f} CPU s per 1000"
    )
    print(f"  ratio raw/normalized {raw_rate / normalized_rate:>9.2f}  (target 0.80)")


if __name__ == "__main__":
    main()
