from __future__ import annotations

import inspect

import grpc

from ledger import errors
from ledger.protocol.status import STATUS_CODES, error_to_status, grpc_code


def _error_classes() -> list[type[errors.LedgerError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.LedgerError) and cls is not errors.LedgerError
    ]


def test_every_error_class_has_a_status_code() -> None:
    for cls in _error_classes():
        mapped = [STATUS_CODES[c] for c in cls.__mro__ if c in STATUS_CODES]
        assert mapped, f"{cls.__name__} has no gRPC status code"
        assert mapped[0] is not grpc.StatusCode.UNKNOWN


def test_status_details_carry_field_violations() -> None:
    error = errors.InvalidArgumentError([errors.FieldViolation("tenant", "is required")])
    status = error_to_status(error)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert status.details[0].type_url.endswith("google.rpc.BadRequest")


def test_retry_delay_travels_with_resource_exhausted() -> None:
    status = error_to_status(errors.ResourceExhaustedError("busy", retry_after_seconds=1.5))
    assert status.details[0].type_url.endswith("google.rpc.RetryInfo")


def test_subclasses_take_their_ancestor_code() -> None:
    assert grpc_code(errors.RequestIdReusedError("t", "r")) is grpc.StatusCode.FAILED_PRECONDITION
    assert (
        grpc_code(errors.ReceiptParseError("f", "x", "v", "r")) is grpc.StatusCode.INVALID_ARGUMENT
    )
