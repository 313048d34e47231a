"""The one table that maps ledger errors to gRPC status codes, with rich details.

Field violations travel as ``google.rpc.BadRequest``, retry delays as
``google.rpc.RetryInfo`` and reused request ids as
``google.rpc.PreconditionFailure``, inside ``google.rpc.Status.details``.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2  # type: ignore[import-untyped]

from ledger.errors import (
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    LedgerError,
    LifecycleError,
    NotFoundError,
    RequestIdReusedError,
    ResourceExhaustedError,
    UnavailableError,
)

__all__ = ["STATUS_CODES", "error_to_status", "grpc_code"]

STATUS_CODES: dict[type[LedgerError], grpc.StatusCode] = {
    InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    NotFoundError: grpc.StatusCode.NOT_FOUND,
    FailedPreconditionError: grpc.StatusCode.FAILED_PRECONDITION,
    ResourceExhaustedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    DeadlineExceededError: grpc.StatusCode.DEADLINE_EXCEEDED,
    UnavailableError: grpc.StatusCode.UNAVAILABLE,
    InternalError: grpc.StatusCode.INTERNAL,
}
"""Status code of each error class; subclasses take their nearest ancestor's code."""


def grpc_code(error: LedgerError) -> grpc.StatusCode:
    """Return the status code of an error, by its nearest mapped class."""
    for cls in type(error).__mro__:
        code = STATUS_CODES.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def error_to_status(error: LedgerError) -> status_pb2.Status:
    """Return the ``google.rpc.Status`` of an error, with details a client can act on."""
    code = grpc_code(error)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=error.message)
    if isinstance(error, InvalidArgumentError):
        status.details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description
                        )
                        for v in error.violations
                    ]
                )
            )
        )
    elif isinstance(error, RequestIdReusedError):
        status.details.append(
            _pack(
                error_details_pb2.PreconditionFailure(
                    violations=[
                        error_details_pb2.PreconditionFailure.Violation(
                            type="REQUEST_ID_REUSED",
                            subject=f"{error.tenant}/{error.request_id}",
                            description="the request id already served a different command",
                        )
                    ]
                )
            )
        )
    elif isinstance(error, LifecycleError):
        status.details.append(
            _pack(
                error_details_pb2.PreconditionFailure(
                    violations=[
                        error_details_pb2.PreconditionFailure.Violation(
                            type=error.kind,
                            subject=f"message/{error.message_id}",
                            description=error.message,
                        )
                    ]
                )
            )
        )
    elif isinstance(error, ResourceExhaustedError) and error.retry_after_seconds is None:
        # A fixed limit: retrying the same request cannot help, so no RetryInfo.
        status.details.append(
            _pack(
                error_details_pb2.QuotaFailure(
                    violations=[
                        error_details_pb2.QuotaFailure.Violation(
                            subject=error.quota or "", description=error.message
                        )
                    ]
                )
            )
        )
    elif isinstance(error, ResourceExhaustedError | UnavailableError):
        delay = 1.0
        if isinstance(error, ResourceExhaustedError) and error.retry_after_seconds is not None:
            delay = error.retry_after_seconds
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.CopyFrom(
            duration_pb2.Duration(seconds=int(delay), nanos=int((delay % 1) * 1e9))
        )
        status.details.append(_pack(retry))
    return status
