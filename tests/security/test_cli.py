"""`smsledger erase`, `erase --reapply` and `keys rotate` from the command line."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from click.testing import CliRunner

from ledger.cli import main
from ledger.runtime import build_runtime
from ledger.server.history import history_events
from ledger.settings import Settings
from tests.security.conftest import record_messages

NUMBER = "+447700900123"


def environment(tmp_path: Path, key: str, **extra: str) -> dict[str, str]:
    return {
        "SMSLEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "SMSLEDGER_DATA_DIR": str(tmp_path),
        "SMSLEDGER_MASTER_KEY": key,
        **extra,
    }


def test_cli_erase_and_reapply(tmp_path: Path) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    log = tmp_path / "erasures.jsonl"
    env = environment(tmp_path, key, SMSLEDGER_ERASURE_LOG_FILE=str(log))
    settings = Settings(
        database_url=env["SMSLEDGER_DATABASE_URL"],
        master_key=key,  # type: ignore[arg-type]
        _env_file=None,  # type: ignore[call-arg]
    )
    runtime = build_runtime(settings)
    record_messages(runtime, "acme", {"m1": NUMBER})
    runtime.close()

    runner = CliRunner()
    erased = runner.invoke(main, ["erase", "acme", "-"], input=NUMBER + "\n", env=env)
    assert erased.exit_code == 0, erased.output
    assert "1 message(s) marked" in erased.output
    assert "900123" not in erased.output
    missing = runner.invoke(main, ["erase", "acme", NUMBER], env=env)
    assert missing.exit_code == 1
    assert "no data subject with that number" in missing.output
    again = runner.invoke(main, ["erase", "--reapply", str(log)], env=env)
    assert again.exit_code == 0, again.output
    assert "0 message(s) newly marked" in again.output
    usage = runner.invoke(main, ["erase", "acme"], env=env)
    assert usage.exit_code == 2

    runtime = build_runtime(settings)
    try:
        assert history_events(runtime.ledger, "acme", "m1")[0].destination_erased
    finally:
        runtime.close()


def test_cli_keys_rotate(tmp_path: Path) -> None:
    old = base64.b64encode(os.urandom(32)).decode()
    new = base64.b64encode(os.urandom(32)).decode()
    runner = CliRunner()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'ledger.db'}",
        master_key=old,  # type: ignore[arg-type]
        _env_file=None,  # type: ignore[call-arg]
    )
    runtime = build_runtime(settings)
    record_messages(runtime, "acme", {"m1": NUMBER})
    runtime.close()
    rotated = runner.invoke(
        main,
        ["keys", "rotate"],
        env=environment(tmp_path, new, SMSLEDGER_PREVIOUS_MASTER_KEYS=old),
    )
    assert rotated.exit_code == 0, rotated.output
    assert "re-wrapped 2 key(s)" in rotated.output
    alone = runner.invoke(main, ["keys", "rotate"], env=environment(tmp_path, new))
    assert "re-wrapped 0 key(s); 2 already current" in alone.output
