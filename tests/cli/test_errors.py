"""The command line reports wrong settings, missing tables and busy ports in one line."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ledger.checkpoints import append_checkpoint, generate_key, load_private_key
from ledger.cli import main
from ledger.runtime import build_runtime
from tests.conftest import make_settings, schema_exists
from tests.support.servers import free_port
from tests.support.serving import stop_process, wait_serving

SMSLEDGER = str(Path(sys.executable).parent / "smsledger")

# Every command that opens the database without creating its tables.
READ_ONLY = [
    ["verify"],
    ["history", "acme", "m1"],
    ["report", "--from", "2026-01-01", "--to", "2026-01-02"],
    ["projections", "status"],
    ["projections", "rebuild"],
    ["erase", "acme", "+447700900123"],
    ["erase", "--reapply", "{erasures}"],
    ["receipts", "reprocess", "--tenant", "acme"],
    ["relay", "--status"],
    ["keys", "rotate"],
    ["checkpoint", "verify", "{checkpoints}"],
]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without SMSLEDGER_ settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSLEDGER_")}
    env.update(SMSLEDGER_METRICS_ADDRESS="", **extra)
    return env


def master_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def assert_one_line_error(result: Result, expected: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.output.strip() == f"Error: {expected}"


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, str]:
    """A valid erasure log and checkpoint file, made against a database of their own."""
    erasures = tmp_path / "erasures.jsonl"
    erasures.write_text("")
    checkpoints = tmp_path / "checkpoints.jsonl"
    runtime = build_runtime(make_settings(f"sqlite:///{tmp_path / 'other.db'}", tmp_path))
    try:
        append_checkpoint(runtime.store, load_private_key(generate_key()[0]), checkpoints)
    finally:
        runtime.close()
    return {"erasures": str(erasures), "checkpoints": str(checkpoints)}


def arguments(command: list[str], inputs: dict[str, str]) -> list[str]:
    return [part.format(**inputs) for part in command]


@pytest.mark.postgres
@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_typo_schema_reported_not_created(
    command: list[str], postgres_url: str, fresh_schema: str, inputs: dict[str, str]
) -> None:
    url = f"{postgres_url}?schema={fresh_schema}"
    result = CliRunner().invoke(
        main,
        [*arguments(command, inputs), "--database-url", url],
        env=clean_env(SMSLEDGER_MASTER_KEY=master_key(), SMSLEDGER_NATS_URL=""),
    )
    assert_one_line_error(
        result,
        f"no ledger tables in schema '{fresh_schema}' of that database; check the URL or run "
        "`smsledger migrate`",
    )
    assert not schema_exists(postgres_url, fresh_schema)


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
@pytest.mark.parametrize("exists", [True, False], ids=["empty", "missing"])
def test_sqlite_without_tables_reported(
    command: list[str], exists: bool, tmp_path: Path, inputs: dict[str, str]
) -> None:
    path = tmp_path / "typo" / "ledger.db"
    if exists:
        path.parent.mkdir()
        path.write_bytes(b"")
    result = CliRunner().invoke(
        main,
        [*arguments(command, inputs), "--database-url", f"sqlite:///{path}"],
        env=clean_env(SMSLEDGER_NATS_URL=""),
    )
    problem = f"no ledger tables in {path}" if exists else f"no ledger database at {path}"
    assert_one_line_error(result, f"{problem}; check the URL or run `smsledger migrate`")
    # Neither the file nor its folder is created.
    assert path.parent.exists() == exists


def run_serve(tmp_path: Path, *arguments: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``smsledger serve``, which must exit by itself within a minute."""
    return subprocess.run(
        [SMSLEDGER, "serve", "--database-url", f"sqlite:///{tmp_path / 'ledger.db'}", *arguments],
        env=clean_env(SMSLEDGER_DATA_DIR=str(tmp_path), **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("tokens", [None, "[[tokens]\nname = 'x'\n"], ids=["missing", "invalid"])
def test_serve_bad_tokens_file(tmp_path: Path, tokens: str | None) -> None:
    path = tmp_path / "tokens.toml"
    if tokens is not None:
        path.write_text(tokens)
    done = run_serve(
        tmp_path,
        "--address",
        "127.0.0.1:0",
        "--log-format",
        "text",
        SMSLEDGER_TOKENS_FILE=str(path),
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"Error: SMSLEDGER_TOKENS_FILE: tokens file {path}")


def test_serve_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        address = f"127.0.0.1:{holder.getsockname()[1]}"
        done = run_serve(tmp_path, "--address", address, "--log-format", "text")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"Error: cannot listen on {address}: address in use or not available"
    )


async def test_second_serve_port_in_use(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    first = subprocess.Popen(
        [SMSLEDGER, "serve", "--database-url", f"sqlite:///{tmp_path / 'first.db'}"],
        env=clean_env(SMSLEDGER_DATA_DIR=str(tmp_path), SMSLEDGER_GRPC_ADDRESS=address),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await wait_serving(address, first)
        done = run_serve(tmp_path, "--address", address, "--log-format", "text")
    finally:
        stop_process(first)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"Error: cannot listen on {address}: address in use or not available"
    )


def migrated(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    build_runtime(make_settings(url, tmp_path)).close()
    return url


@pytest.mark.parametrize("answers", [False, True], ids=["refused", "silent"])
def test_relay_status_unreachable_nats(tmp_path: Path, answers: bool) -> None:
    url = migrated(tmp_path)
    with socket.socket() as peer:
        peer.bind(("127.0.0.1", 0))
        if answers:
            # Accepts connections but never sends NATS's INFO line.
            peer.listen()
        nats_url = f"nats://127.0.0.1:{peer.getsockname()[1]}"
        started = time.monotonic()
        result = CliRunner().invoke(
            main,
            ["relay", "--status", "--database-url", url, "--nats-url", nats_url],
            env=clean_env(),
        )
        elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert elapsed < 15
    lines = result.output.strip().splitlines()
    assert lines[0] == "stream: LEDGER_EVENTS"
    assert lines[-2] == "heartbeat_at: None"
    reason = "timed out" if answers else "Connect call failed"
    assert lines[-1].startswith(f"NATS unreachable at {nats_url}: ")
    assert reason in lines[-1]


def test_relay_status_hides_password(tmp_path: Path) -> None:
    url = migrated(tmp_path)
    with socket.socket() as peer:
        peer.bind(("127.0.0.1", 0))
        port = peer.getsockname()[1]
        result = CliRunner().invoke(
            main,
            ["relay", "--status", "--database-url", url],
            env=clean_env(SMSLEDGER_NATS_URL=f"nats://relay:s3cret@127.0.0.1:{port}"),
        )
    assert "s3cret" not in result.output
    assert f"NATS unreachable at nats://relay:***@127.0.0.1:{port}: " in result.output


def test_verify_prints_no_blank_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["verify", "--database-url", migrated(tmp_path)], env=clean_env()
    )
    assert result.exit_code == 0, result.output
    assert result.output == "verified 0 events of 0 messages: 0 broken link(s)\n"


def test_simulate_help_keeps_examples() -> None:
    result = CliRunner().invoke(main, ["simulate", "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    assert "\\b" not in result.output
    assert "\b" not in result.output
    lines = [line.strip() for line in result.output.splitlines()]
    for example in (
        "smsledger simulate --write-connections sim-connections.toml",
        "SMSLEDGER_CONNECTIONS_FILE=sim-connections.toml smsledger serve",
        "smsledger simulate --webhooks --write-connections sim-hooks.toml",
        "export SMSLEDGER_CONNECTIONS_FILE=sim-hooks.toml",
        "SMSLEDGER_WEBHOOK_ADDRESS=127.0.0.1:8080 smsledger serve",
        "smsledger simulate --webhooks --connections-file sim-hooks.toml",
    ):
        assert example in lines


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("AAAA", "decodes to 3 bytes, not the 32 of an Ed25519 public key"),
        ("not base64!", "invalid base64"),
    ],
)
def test_checkpoint_verify_invalid_public_key(
    tmp_path: Path, inputs: dict[str, str], key: str, problem: str
) -> None:
    result = CliRunner().invoke(
        main,
        [
            "checkpoint",
            "verify",
            inputs["checkpoints"],
            "--public-key",
            key,
            "--database-url",
            migrated(tmp_path),
        ],
        env=clean_env(),
    )
    assert result.exit_code == 2, result.output
    assert f"Invalid value for --public-key: {problem}" in result.output
    assert "another key" not in result.output


def test_checkpoint_verify_names_bad_line(tmp_path: Path, inputs: dict[str, str]) -> None:
    path = Path(inputs["checkpoints"])
    path.write_text(path.read_text() + "\n{not json\n")
    result = CliRunner().invoke(
        main,
        ["checkpoint", "verify", str(path), "--database-url", migrated(tmp_path)],
        env=clean_env(),
    )
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: {path} line 3: invalid checkpoint: ")
