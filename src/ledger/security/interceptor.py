"""The one server interceptor that authenticates, authorizes, isolates tenants and limits.

For every RPC except health checking and reflection, in this order:

1. authentication: the ``authorization: Bearer <token>`` metadata must name
   a configured token (UNAUTHENTICATED otherwise); with no tokens file every
   call is the all-roles ``anonymous`` principal;
2. authorization: the token needs one of the roles the policy table gives the
   RPC (PERMISSION_DENIED otherwise, also for an RPC missing from the table);
3. limits: the client's rate and calls in flight (RESOURCE_EXHAUSTED with a
   ``google.rpc.RetryInfo`` delay);
4. tenants: a tenant-limited token gets other tenants' data treated as missing
   (:mod:`ledger.security.tenancy`).

Denials are logged at most once per client, method and status a minute,
without the token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.message import DecodeError

from ledger.errors import FieldViolation, InvalidArgumentError, LedgerError
from ledger.security import tenancy
from ledger.security.limits import ClientLimiter
from ledger.security.policy import (
    OPEN_METHOD_PREFIXES,
    POLICIES,
    MethodPolicy,
    Tenancy,
    protected_services,
)
from ledger.security.tokens import ANONYMOUS, Principal, TokenStore
from ledger.server.service import abort_with_error

__all__ = ["SecurityInterceptor", "peer_host"]

logger = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
_DENIAL_LOG_INTERVAL_SECONDS = 60.0
_DENIAL_LOG_MAX_KEYS = 10_000
_BEARER = "bearer "

# grpc-stubs make the class generic; at run time it is not subscriptable.
_ServerInterceptor: Any = grpc.aio.ServerInterceptor


def peer_host(peer: str) -> str:
    """Return the host part of a gRPC peer string such as ``ipv4:127.0.0.1:5555``."""
    kind, _, address = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        host = address.rsplit(":", 1)[0]
        return host.strip("[]")
    return peer


class _Malformed:
    """Stands for a request body that did not parse; the handler is never given it."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """Wrap a request parser so that a malformed body becomes a :class:`_Malformed`.

    Without it grpc.aio returns UNKNOWN with the parser's error text and logs
    a traceback for every such call, which a flood of garbage turns into a
    flood of logs.
    """
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except (DecodeError, ValueError, RecursionError) as error:
            return _Malformed(type(error).__name__)

    return parse


def _malformed_error(method: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        FieldViolation("request", f"is not a valid protobuf message for {method}")
    )


class _Denied(Exception):
    """A call is rejected before its handler runs."""

    def __init__(self, code: grpc.StatusCode, message: str, client: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.client = client


class _DenialLog:
    """Logs a denial once per (client, method, code) a minute, counting the rest."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: dict[tuple[str, str, str], tuple[float, int]] = {}

    def record(self, client: str, method: str, code: str, reason: str) -> None:
        now = self._clock()
        key = (client, method, code)
        last = self._last.get(key)
        if last is not None and now - last[0] < _DENIAL_LOG_INTERVAL_SECONDS:
            self._last[key] = (last[0], last[1] + 1)
            return
        if len(self._last) >= _DENIAL_LOG_MAX_KEYS:
            self._last.clear()
        suppressed = last[1] if last is not None else 0
        self._last[key] = (now, 0)
        logger.warning(
            "gRPC call denied: %s",
            reason,
            extra={"client": client, "method": method, "code": code, "suppressed": suppressed},
        )


class SecurityInterceptor(_ServerInterceptor):  # type: ignore[misc]
    """Checks every protected RPC against the policy table.

    Args:
        tokens: The configured tokens; None turns authentication off.
        limiter: Per-client rate and in-flight limits.
        policies: Policy by full method path.
    """

    def __init__(
        self,
        tokens: TokenStore | None,
        limiter: ClientLimiter,
        policies: dict[str, MethodPolicy] | None = None,
    ) -> None:
        self.tokens = tokens
        self.limiter = limiter
        self.policies = POLICIES if policies is None else policies
        self._denials = _DenialLog()
        self._responses: dict[str, type[Any]] = {}
        for service in protected_services():
            for method in service.methods:
                path = f"/{service.full_name}/{method.name}"
                self._responses[path] = message_factory.GetMessageClass(method.output_type)

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """Return the method's handler wrapped in the checks."""
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_METHOD_PREFIXES):
            return handler
        policy = self.policies.get(method)
        serializers = {
            "request_deserializer": _tolerant(handler.request_deserializer),
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, policy, handler.unary_unary), **serializers
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._unary_stream(method, policy, handler.unary_stream), **serializers
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(method, policy, handler.stream_unary), **serializers
            )
        return grpc.stream_stream_rpc_method_handler(
            self._unary_stream(method, policy, handler.stream_stream), **serializers
        )

    # ------------------------------------------------------------- checks

    def _admit(self, context: Context, method: str, policy: MethodPolicy | None) -> Principal:
        """Authenticate and authorize a call; raise :class:`_Denied` when it may not run."""
        host = peer_host(context.peer())
        principal = self._authenticate(context, host)
        if policy is None or not principal.roles & policy.roles:
            needed = ", ".join(sorted(r.value for r in policy.roles)) if policy else "none"
            raise _Denied(
                grpc.StatusCode.PERMISSION_DENIED,
                f"token {principal.name!r} may not call {method}: it needs one of the roles "
                f"{needed}",
                principal.name,
            )
        return principal

    def _authenticate(self, context: Context, host: str) -> Principal:
        if self.tokens is None:
            return ANONYMOUS
        values = [
            value for key, value in context.invocation_metadata() or () if key == "authorization"
        ]
        if len(values) != 1 or not isinstance(values[0], str):
            raise _Denied(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing bearer token: send the metadata 'authorization: Bearer <token>'",
                host,
            )
        value = values[0]
        if not value.lower().startswith(_BEARER) or not value[len(_BEARER) :].strip():
            raise _Denied(
                grpc.StatusCode.UNAUTHENTICATED,
                "malformed authorization metadata: expected 'Bearer <token>'",
                host,
            )
        principal = self.tokens.authenticate(value[len(_BEARER) :].strip())
        if principal is None:
            raise _Denied(grpc.StatusCode.UNAUTHENTICATED, "invalid bearer token", host)
        return principal

    def _client(self, principal: Principal, context: Context) -> str:
        if self.tokens is None:
            return peer_host(context.peer())
        return principal.name

    async def _start_call(
        self, context: Context, method: str, policy: MethodPolicy | None
    ) -> tuple[Principal, MethodPolicy, str]:
        """Admit a call and count it against its client's limits, or abort it.

        Returns the principal, the method's policy and the client name that
        :meth:`ClientLimiter.release` needs when the call ends.
        """
        try:
            principal = self._admit(context, method, policy)
        except _Denied as denied:
            self._denials.record(denied.client, method, denied.code.name, denied.message)
            await context.abort(denied.code, denied.message)
        # _admit raises for a method without a policy.
        assert policy is not None
        client = self._client(principal, context)
        try:
            self.limiter.acquire(client)
        except LedgerError as error:
            self._denials.record(client, method, "RESOURCE_EXHAUSTED", error.message)
            await abort_with_error(context, error)
            raise AssertionError("unreachable: abort raises") from None
        return principal, policy, client

    async def _reject_malformed(
        self, context: Context, method: str, client: str, request: Any
    ) -> None:
        """Abort the call with INVALID_ARGUMENT when its request body did not parse."""
        if isinstance(request, _Malformed):
            self._denials.record(client, method, "INVALID_ARGUMENT", request.reason)
            await abort_with_error(context, _malformed_error(method))

    # ----------------------------------------------------------- wrappers

    def _unary(
        self, method: str, policy: MethodPolicy | None, behavior: Any
    ) -> Callable[[Any, Context], Awaitable[Any]]:
        async def guarded(request: Any, context: Context) -> Any:
            principal, admitted, client = await self._start_call(context, method, policy)
            try:
                await self._reject_malformed(context, method, client, request)
                return await self._call(method, admitted, principal, behavior, request, context)
            finally:
                self.limiter.release(client)

        return guarded

    async def _call(
        self,
        method: str,
        policy: MethodPolicy,
        principal: Principal,
        behavior: Any,
        request: Any,
        context: Context,
    ) -> Any:
        """Run the handler as a tenant-limited principal may see it."""
        if principal.tenants is None or policy.tenancy is Tenancy.NONE:
            return await behavior(request, context)
        kind = policy.tenancy
        if kind is Tenancy.BATCH:
            denied = tenancy.denied_batch_entries(request, principal)
            if not denied:
                return await behavior(request, context)
            response = await behavior(tenancy.masked_batch(request, denied), context)
            tenancy.replace_denied_results(response, denied)
            return response
        visible = principal.may_see(request.tenant)
        if kind in (Tenancy.MESSAGE, Tenancy.CARRIER_ID, Tenancy.SUBJECT) and not visible:
            await abort_with_error(context, tenancy.denial(kind, request))
        if kind is Tenancy.ACTION and not visible:
            return self._responses[method]()
        response = await behavior(request, context)
        if kind in (Tenancy.LIST, Tenancy.LIST_OR_ALL):
            if not visible and (kind is Tenancy.LIST or request.tenant):
                tenancy.blank_list(response)
            # Also for a visible tenant, so that no query can return another's items.
            tenancy.drop_hidden_items(response, principal)
        return response

    def _unary_stream(
        self, method: str, policy: MethodPolicy | None, behavior: Any
    ) -> Callable[[Any, Context], AsyncIterator[Any]]:
        async def guarded(request: Any, context: Context) -> AsyncIterator[Any]:
            principal, admitted, client = await self._start_call(context, method, policy)
            try:
                await self._reject_malformed(context, method, client, request)
                limited = principal.tenants is not None and admitted.tenancy is not Tenancy.NONE
                if limited and not principal.may_see(request.tenant):
                    await abort_with_error(context, tenancy.denial(admitted.tenancy, request))
                    return
                async for response in behavior(request, context):
                    yield response
            finally:
                self.limiter.release(client)

        return guarded
