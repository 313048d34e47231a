"""The simulator sends its bearer token on every call."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from ledger.cli import main
from ledger.runtime import Runtime
from ledger.security.tokens import hash_token


async def test_simulate_with_token_against_secured_server(tmp_path: Path, runtime: Runtime) -> None:
    import asyncio

    from ledger.server.app import create_server

    path = tmp_path / "tokens.toml"
    path.write_text(
        "[[tokens]]\n"
        'name = "sim"\n'
        f'sha256 = "{hash_token("s3cret-token-value")}"\n'
        'roles = ["writer", "reader"]\n'
    )
    secured = runtime.settings.model_copy(update={"tokens_file": path})
    runtime.settings = secured
    server = await create_server(runtime, "127.0.0.1:0")
    await server.start()
    try:
        args = [
            "simulate",
            "--target",
            f"127.0.0.1:{server.port}",
            "--messages",
            "30",
            "--tenant",
            "sim",
            "--seed",
            "3",
            "--expiry-grace",
            "0",
            # Expiry scenarios wait for the sweeper; they are tested elsewhere.
            "--skip-scenario",
            "inferred-expiry",
            "--skip-scenario",
            "delivered-after-expiry",
            "--token",
            "s3cret-token-value",
        ]
        outcome = await asyncio.to_thread(CliRunner().invoke, main, args)
        assert outcome.exit_code == 0, outcome.output
        denied = await asyncio.to_thread(CliRunner().invoke, main, [*args[:-2], "--token", "wrong"])
        assert denied.exit_code != 0
    finally:
        await server.stop(0)
