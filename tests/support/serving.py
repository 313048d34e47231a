"""Waiting for a ``smsledger serve`` process that a test started, and stopping it."""

from __future__ import annotations

import asyncio
import subprocess
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["stop_process", "wait_serving"]


async def wait_serving(
    address: str, process: subprocess.Popen[bytes], timeout: float = 30.0
) -> None:
    """Poll the health service at ``address`` until it reports SERVING.

    Fails with the process's standard error when it exits first, and when
    ``timeout`` seconds pass.
    """
    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            assert time.monotonic() < deadline, f"server did not start serving in {timeout} s"
            await asyncio.sleep(0.2)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate ``process`` by its PID, and kill it if it is still running after 20 s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
