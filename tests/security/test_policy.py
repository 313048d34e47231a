"""Each role against each RPC, from the service descriptors, so a new RPC needs a policy."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from ledger.security.policy import OPEN_METHOD_PREFIXES, POLICIES, Role, protected_services
from tests.security.conftest import Secured, auth

METHODS: list[tuple[str, MethodDescriptor]] = [
    (f"/{service.full_name}/{method.name}", method)
    for service in protected_services()
    for method in service.methods
]


async def call(
    channel: grpc.aio.Channel, path: str, method: MethodDescriptor, metadata: Any
) -> grpc.StatusCode:
    """Call ``path`` with an empty request; return the status code it ends with."""
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    try:
        if method.server_streaming:
            stream = channel.unary_stream(
                path,
                request_serializer=request_class.SerializeToString,
                response_deserializer=response_class.FromString,
            )(request_class(), metadata=metadata, timeout=10)
            async for _ in stream:
                pass
        else:
            await channel.unary_unary(
                path,
                request_serializer=request_class.SerializeToString,
                response_deserializer=response_class.FromString,
            )(request_class(), metadata=metadata, timeout=10)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def test_policy_table_matches_descriptors() -> None:
    described = {path for path, _ in METHODS}
    assert described - set(POLICIES) == set(), "RPCs without a policy"
    assert set(POLICIES) - described == set(), "policies of RPCs that do not exist"


def test_policy_every_rpc_has_a_role() -> None:
    for path, policy in POLICIES.items():
        assert policy.roles, path


def test_policy_raw_payloads_auditor_only() -> None:
    assert POLICIES["/ledger.v1.LedgerService/GetHistory"].roles == {Role.AUDITOR}
    assert POLICIES["/ledger.v1.ReceiptService/ListUnparsedReceipts"].roles == {Role.AUDITOR}
    assert POLICIES["/ledger.v1.AdminService/EraseSubject"].roles == {Role.ADMIN}


async def test_policy_covers_registered_services(secured_sqlite: Secured) -> None:
    async with grpc.aio.insecure_channel(secured_sqlite.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = [s.name async for r in responses for s in r.list_services_response.service]
    protected = {service.full_name for service in protected_services()}
    for name in names:
        is_open = any(prefix.startswith(f"/{name}/") for prefix in OPEN_METHOD_PREFIXES)
        assert is_open or name in protected, f"{name} is served but has no policies"
    assert protected <= set(names)


async def test_policy_role_matrix(secured_sqlite: Secured) -> None:
    async with grpc.aio.insecure_channel(secured_sqlite.address) as channel:
        for path, method in METHODS:
            allowed = POLICIES[path].roles
            for role in Role:
                code = await call(channel, path, method, auth(role.value))
                if role in allowed:
                    assert code not in (
                        grpc.StatusCode.UNAUTHENTICATED,
                        grpc.StatusCode.PERMISSION_DENIED,
                    ), f"{role.value} on {path}: {code}"
                else:
                    assert code == grpc.StatusCode.PERMISSION_DENIED, f"{role.value} on {path}"


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("authorization", "Bearer not-a-configured-token"),),
        (("authorization", "Basic dXNlcjpwYXNz"),),
        (("authorization", "Bearer "),),
    ],
    ids=["missing", "unknown", "basic", "empty"],
)
async def test_policy_bad_credentials_unauthenticated(
    secured_sqlite: Secured, metadata: Any
) -> None:
    async with grpc.aio.insecure_channel(secured_sqlite.address) as channel:
        for path, method in METHODS:
            code = await call(channel, path, method, metadata)
            assert code == grpc.StatusCode.UNAUTHENTICATED, path


async def test_policy_health_is_open(secured_sqlite: Secured) -> None:
    async with grpc.aio.insecure_channel(secured_sqlite.address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_policy_denial_logged_once_without_token(
    secured_sqlite: Secured, caplog: pytest.LogCaptureFixture
) -> None:
    path, method = METHODS[0]
    async with grpc.aio.insecure_channel(secured_sqlite.address) as channel:
        for _ in range(5):
            await call(channel, path, method, (("authorization", "Bearer wrong-secret-value"),))
    denials = [r for r in caplog.records if r.getMessage().startswith("gRPC call denied")]
    assert len(denials) == 1
    assert "wrong-secret-value" not in caplog.text
    for name in ("writer", "reader"):
        assert "test-token-" not in caplog.text, name
