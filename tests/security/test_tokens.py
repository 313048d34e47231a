"""The tokens file, the `smsledger tokens hash` helper, and authentication turned off."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner

import ledger.security as security
from ledger.cli import main
from ledger.security.policy import Role
from ledger.security.tokens import TokenFileError, TokenStore, hash_token, load_tokens
from ledger.v1 import ledger_pb2 as pb
from ledger.v1 import ledger_pb2_grpc
from tests.security.conftest import start_secured, stop_secured

ENTRY = 'name = "{name}"\nsha256 = "{digest}"\nroles = {roles}\n'


def write_entry(
    path: Path, name: str, token: str, roles: str = '["reader"]', extra: str = ""
) -> Path:
    path.write_text(
        "[[tokens]]\n" + ENTRY.format(name=name, digest=hash_token(token), roles=roles) + extra
    )
    return path


def test_tokens_file_loaded(tmp_path: Path) -> None:
    path = write_entry(
        tmp_path / "t.toml", "ops", "secret-1", '["reader", "auditor"]', 'tenants = ["acme"]\n'
    )
    principals = load_tokens(path)
    principal = principals[hash_token("secret-1")]
    assert principal.name == "ops"
    assert principal.roles == {Role.READER, Role.AUDITOR}
    assert principal.tenants == frozenset({"acme"})
    assert principal.may_see("acme")
    assert not principal.may_see("globex")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[tokens]]\nname = "a"\nsha256 = "abc"\nroles = ["reader"]\n', "64 lowercase hex"),
        (
            '[[tokens]]\nname = "a"\nsha256 = "sha256:' + "0" * 64 + '"\nroles = ["root"]\n',
            "roles are",
        ),
        ('[[tokens]]\nname = "a"\nsha256 = "sha256:' + "0" * 64 + '"\nroles = []\n', "one or more"),
        (
            '[[tokens]]\nname = "a"\nsha256 = "sha256:'
            + "0" * 64
            + '"\nroles = ["reader"]\ntenants = ["Bad Tenant"]\n',
            "tenants",
        ),
        (
            '[[tokens]]\nname = "a"\nsha256 = "sha256:'
            + "0" * 64
            + '"\nroles = ["reader"]\ntoken = "x"\n',
            "unknown keys",
        ),
        ("tokens = 3\n", "array of tables"),
        ("[[tokens]\n", "invalid TOML"),
    ],
)
def test_tokens_file_invalid(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.toml"
    path.write_text(text)
    with pytest.raises(TokenFileError, match=message):
        load_tokens(path)


def test_tokens_file_reloaded(tmp_path: Path) -> None:
    path = write_entry(tmp_path / "t.toml", "one", "secret-1")
    store = TokenStore(path, check_interval=0)
    assert store.authenticate("secret-1") is not None
    write_entry(path, "two", "secret-2")
    later = time.time() + 5
    os.utime(path, (later, later))
    assert store.authenticate("secret-1") is None
    assert store.authenticate("secret-2") is not None
    path.write_text("not toml [")
    os.utime(path, (later + 5, later + 5))
    assert store.authenticate("secret-2") is not None


def test_tokens_hash_cli_entry_loads(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["tokens", "hash", "--name", "eu", "--role", "writer", "--tenant", "acme"]
    )
    assert result.exit_code == 0, result.output
    token = next(
        line.removeprefix("token: ")
        for line in result.stderr.splitlines()
        if line.startswith("token: ")
    )
    path = tmp_path / "t.toml"
    path.write_text(result.stdout)
    principal = load_tokens(path)[hash_token(token)]
    assert principal.roles == {Role.WRITER}
    assert principal.tenants == frozenset({"acme"})
    assert token not in result.stdout


async def test_tokens_off_allows_all_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    security._warned_open = False
    secured = await start_secured(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path, None)
    second = await start_secured(f"sqlite:///{tmp_path / 'other.db'}", tmp_path, None)
    try:
        async with grpc.aio.insecure_channel(secured.address) as channel:
            stub = ledger_pb2_grpc.AdminServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.EraseSubject(
                    pb.EraseSubjectRequest(tenant="acme", destination="+447700900123")
                )
    finally:
        await stop_secured(second)
        await stop_secured(secured)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    warnings = [r for r in caplog.records if "authentication is off" in r.getMessage()]
    assert len(warnings) == 1
