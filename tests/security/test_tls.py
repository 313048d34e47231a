"""TLS and mutual TLS on the gRPC port, with certificates made in the test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ledger.security.tls import server_credentials
from ledger.settings import ConfigurationError
from ledger.v1 import ledger_pb2 as pb
from ledger.v1 import ledger_pb2_grpc
from tests.conftest import make_settings
from tests.security.certs import Authority, Issued, issue, make_ca, write
from tests.security.conftest import Secured, auth, start_secured, stop_secured


@pytest.fixture(scope="module")
def authority() -> Authority:
    return make_ca("smsledger test CA")


@pytest.fixture
async def tls_server(
    tmp_path: Path, tokens_file: Path, authority: Authority
) -> AsyncIterator[Secured]:
    issued = issue(authority, "localhost", server=True)
    started = await start_secured(
        f"sqlite:///{tmp_path / 'ledger.db'}",
        tmp_path,
        tokens_file,
        tls_cert_file=write(tmp_path, "server.pem", issued.cert),
        tls_key_file=write(tmp_path, "server.key", issued.key),
        tls_client_ca_file=write(tmp_path, "clients.pem", authority.pem),
    )
    try:
        yield started
    finally:
        await stop_secured(started)


async def health(address: str, authority: Authority, client: Issued | None) -> grpc.StatusCode:
    """Check health over TLS presenting ``client``; return the status code."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=authority.pem,
        private_key=client.key if client else None,
        certificate_chain=client.cert if client else None,
    )
    async with grpc.aio.secure_channel(address, credentials) as channel:
        try:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        except grpc.aio.AioRpcError as error:
            return error.code()
    return grpc.StatusCode.OK


async def test_tls_valid_client_certificate(tls_server: Secured, authority: Authority) -> None:
    client = issue(authority, "routing-engine", server=False)
    assert await health(tls_server.address, authority, client) == grpc.StatusCode.OK
    credentials = grpc.ssl_channel_credentials(
        root_certificates=authority.pem, private_key=client.key, certificate_chain=client.cert
    )
    async with grpc.aio.secure_channel(tls_server.address, credentials) as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetMessage(pb.GetMessageRequest(tenant="acme", message_id="m1"), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as found:
            await stub.GetMessage(
                pb.GetMessageRequest(tenant="acme", message_id="m1"),
                metadata=auth("reader"),
                timeout=5,
            )
        assert found.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("case", ["expired", "not-yet-valid", "unknown-ca", "none"])
async def test_tls_rejects_bad_client_certificate(
    tls_server: Secured, authority: Authority, case: str
) -> None:
    client: Issued | None
    if case == "expired":
        client = issue(authority, "old", server=False, valid_days=(-30, -1))
    elif case == "not-yet-valid":
        client = issue(authority, "early", server=False, valid_days=(1, 30))
    elif case == "unknown-ca":
        client = issue(make_ca("another CA"), "stranger", server=False)
    else:
        client = None
    assert await health(tls_server.address, authority, client) == grpc.StatusCode.UNAVAILABLE


async def test_tls_port_refuses_plaintext(tls_server: Secured) -> None:
    async with grpc.aio.insecure_channel(tls_server.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_tls_settings_need_pairs(tmp_path: Path, authority: Authority) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    cert = write(tmp_path, "server.pem", issue(authority, "localhost", server=True).cert)
    with pytest.raises(ConfigurationError, match="TLS_KEY_FILE is not set"):
        server_credentials(make_settings(url, tmp_path, tls_cert_file=cert))
    with pytest.raises(ConfigurationError, match="mutual TLS needs"):
        server_credentials(make_settings(url, tmp_path, tls_client_ca_file=cert))
    with pytest.raises(ConfigurationError, match="is not PEM"):
        server_credentials(
            make_settings(
                url,
                tmp_path,
                tls_cert_file=cert,
                tls_key_file=write(tmp_path, "bad.key", b"not a key"),
            )
        )
    assert server_credentials(make_settings(url, tmp_path)) is None
