"""Exceptions raised by the ledger.

Every error the ledger raises on purpose derives from :class:`LedgerError`, and the
gRPC layer maps each class to one status code (``ledger.server.status``)::

    LedgerError
    ├── InvalidArgumentError          INVALID_ARGUMENT, with field violations
    │   └── ReceiptParseError         a carrier receipt that cannot be parsed
    ├── NotFoundError                 NOT_FOUND
    ├── FailedPreconditionError       FAILED_PRECONDITION
    │   ├── RequestIdReusedError      same request id, different command
    │   └── LifecycleError            command not allowed in the message's state
    ├── ResourceExhaustedError        RESOURCE_EXHAUSTED, with a retry delay
    ├── DeadlineExceededError         DEADLINE_EXCEEDED
    ├── UnavailableError              UNAVAILABLE: storage down, retry later
    └── InternalError                 INTERNAL: a defect; nothing was recorded

Messages never contain a full phone number: callers pass masked values.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.privacy.masking import mask_digit_runs

__all__ = [
    "DeadlineExceededError",
    "FailedPreconditionError",
    "FieldViolation",
    "InternalError",
    "InvalidArgumentError",
    "LedgerError",
    "LifecycleError",
    "NotFoundError",
    "ReceiptParseError",
    "RequestIdReusedError",
    "ResourceExhaustedError",
    "UnavailableError",
]


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field of a request: its path and why it is invalid."""

    field: str
    description: str


class LedgerError(Exception):
    """Root of the errors the ledger raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


MAX_LISTED_VIOLATIONS = 20
"""Most field violations one error lists; the rest are counted in one more entry."""


class InvalidArgumentError(LedgerError):
    """A request field has an invalid value; nothing was recorded."""

    def __init__(self, violations: list[FieldViolation] | FieldViolation) -> None:
        if isinstance(violations, FieldViolation):
            violations = [violations]
        violations = list(violations)
        if len(violations) > MAX_LISTED_VIOLATIONS:
            # The list travels in the status message and details, and grpcio
            # clients reject trailing metadata over 16 KiB by default. A
            # longer list would turn the response into a transport error.
            hidden = len(violations) - MAX_LISTED_VIOLATIONS
            violations = [
                *violations[:MAX_LISTED_VIOLATIONS],
                FieldViolation("request", f"{hidden} more invalid fields, not listed"),
            ]
        self.violations = violations
        text = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(f"invalid argument: {text}")


class ReceiptParseError(InvalidArgumentError):
    """A carrier receipt cannot be parsed in its declared format.

    Attributes:
        format: The receipt format the parser expected, such as ``smpp-text``.
        field: The receipt field that failed, such as ``stat`` or ``done date``.
        value: The offending value, shortened to 64 characters. Outside date
            and time fields, digit runs that could be phone numbers are masked.
    """

    def __init__(self, format: str, field: str, value: str, reason: str) -> None:
        self.format = format
        self.field = field
        self.kept = False
        is_time = any(word in field.lower() for word in ("date", "time", "scts"))
        self.value = value[:64] if is_time else mask_digit_runs(value[:64])
        self.reason = reason
        super().__init__(
            FieldViolation(
                field=f"body.{field}",
                description=f"{format} receipt: {reason} (value {self.value!r})",
            )
        )

    def as_kept(self) -> ReceiptParseError:
        """Return this error noting that the payload was kept for reprocessing."""
        kept = ReceiptParseError(self.format, self.field, self.value, self.reason)
        kept.kept = True
        kept.message = (
            f"{self.message}; the payload was kept as an unparsed receipt "
            "(ListUnparsedReceipts) and can be reprocessed after a parser fix"
        )
        kept.args = (kept.message,)
        return kept


class NotFoundError(LedgerError):
    """The named message, carrier id or resource does not exist for this tenant."""


class FailedPreconditionError(LedgerError):
    """The command is valid but cannot be applied in the current state."""


class RequestIdReusedError(FailedPreconditionError):
    """A request id already served a different command of the same tenant."""

    def __init__(self, tenant: str, request_id: str) -> None:
        self.tenant = tenant
        self.request_id = request_id
        super().__init__(
            f"request id {request_id!r} of tenant {tenant!r} was already used for a "
            "different command; send a new request id for a new command"
        )


class LifecycleError(FailedPreconditionError):
    """The message's lifecycle does not allow the command, such as a new attempt
    after a permanent failure.

    Attributes:
        kind: Machine-readable reason, such as ``MESSAGE_FINAL``; clients get
            it as the type of a ``google.rpc.PreconditionFailure`` violation.
        message_id: The caller's id of the message concerned.
    """

    def __init__(self, message: str, *, kind: str = "LIFECYCLE", message_id: str = "") -> None:
        self.kind = kind
        self.message_id = message_id
        super().__init__(message)


class ResourceExhaustedError(LedgerError):
    """A limit was exceeded.

    Attributes:
        retry_after_seconds: When the same call may succeed; None for a
            request over a fixed limit, which no retry can pass.
        quota: The limit exceeded, such as ``ExecuteBatch.commands``, for
            requests over a fixed limit; clients get it in a
            ``google.rpc.QuotaFailure``.
    """

    def __init__(
        self, message: str, retry_after_seconds: float | None = 1.0, quota: str | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
        self.quota = quota


class DeadlineExceededError(LedgerError):
    """The caller's deadline passed before the command reached storage."""


class UnavailableError(LedgerError):
    """Storage is unreachable or timed out; nothing was recorded, retry later."""


class InternalError(LedgerError):
    """A defect in the ledger stopped the command; nothing of it was recorded."""
