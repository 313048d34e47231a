"""gRPC channels of the simulator, with the bearer token it was given."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc

__all__ = ["open_channel", "use_token"]

_token: list[str] = []


def use_token(token: str | None) -> None:
    """Send ``authorization: Bearer <token>`` on every call of channels opened later."""
    _token.clear()
    if token:
        _token.append(token)


class _BearerToken(
    grpc.aio.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.aio.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
):
    def __init__(self, token: str) -> None:
        self._metadata = ("authorization", f"Bearer {token}")

    def _with_token(self, details: Any) -> Any:
        metadata = list(details.metadata or ())
        metadata.append(self._metadata)
        return details._replace(metadata=metadata)

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(self._with_token(client_call_details), request)

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(self._with_token(client_call_details), request)


def open_channel(target: str, options: Sequence[tuple[str, Any]] | None = None) -> grpc.aio.Channel:
    """Open an insecure channel to ``target`` that carries the configured token."""
    interceptors: Any = [_BearerToken(_token[0])] if _token else None
    return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
