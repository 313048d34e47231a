"""A grpc.aio server whose handlers do nothing: the baseline of the ingest benchmark.

Usage: python bench/trivial_server.py PORT
"""

from __future__ import annotations

import asyncio
import sys

import grpc

from ledger.v1 import ledger_pb2 as pb
from ledger.v1 import ledger_pb2_grpc


class Trivial(ledger_pb2_grpc.LedgerServiceServicer):
    async def SubmitMessage(
        self, request: pb.SubmitMessageRequest, context: object
    ) -> pb.CommandResult:
        return pb.CommandResult(tenant=request.tenant, message_id=request.message_id, version=1)


async def main(port: int) -> None:
    server = grpc.aio.server()
    ledger_pb2_grpc.add_LedgerServiceServicer_to_server(Trivial(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
