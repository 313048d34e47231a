"""Read-model requests from protobuf: validation into query objects, and page tokens."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp

from ledger.domain.identity import check_tenant
from ledger.errors import FieldViolation, InvalidArgumentError
from ledger.protocol.events import STATUS_TO_PROTO
from ledger.v1 import readmodels_pb2
from projections.queries import Grouping, MessageQuery, StatsQuery

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "MessagePage",
    "encode_page_token",
    "message_page_from_proto",
    "stats_query_from_proto",
]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

_STATUS_NAMES = {number: name for name, number in STATUS_TO_PROTO.items()}
_GROUPINGS: dict[int, Grouping] = {
    readmodels_pb2.GROUPING_CARRIER: "carrier",
    readmodels_pb2.GROUPING_COUNTRY: "country",
    readmodels_pb2.GROUPING_HOUR: "hour",
    readmodels_pb2.GROUPING_DAY: "day",
}


def _micros(value: Timestamp) -> int:
    return value.seconds * 1_000_000 + value.nanos // 1000


@dataclass(frozen=True)
class MessagePage:
    """A validated list request: filters, page size and where the page starts."""

    query: MessageQuery
    page_size: int
    after: tuple[int, str] | None


def _fingerprint(query: MessageQuery) -> str:
    text = json.dumps(
        [
            query.tenant,
            sorted(query.statuses),
            query.carrier,
            query.country,
            query.submitted_from,
            query.submitted_to,
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_page_token(query: MessageQuery, submitted_at: int, aggregate_id: str) -> str:
    """Return the token of the page after the row ``(submitted_at, aggregate_id)``."""
    data = json.dumps({"s": submitted_at, "a": aggregate_id, "f": _fingerprint(query)})
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


def _decode_page_token(token: str, query: MessageQuery) -> tuple[int, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        after = (int(data["s"]), str(data["a"]))
        fingerprint = str(data["f"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidArgumentError(
            FieldViolation(
                "page_token", "is not a token from next_page_token; omit it for the first page"
            )
        ) from None
    if fingerprint != _fingerprint(query):
        raise InvalidArgumentError(
            FieldViolation(
                "page_token",
                "belongs to a request with other filters; repeat that request's filters or "
                "omit the token to start over",
            )
        )
    return after


def message_page_from_proto(request: readmodels_pb2.ListMessagesRequest) -> MessagePage:
    """Validate a ``ListMessagesRequest``.

    Raises:
        InvalidArgumentError: A field is invalid; each violation names it.
    """
    violations = [v for v in (check_tenant(request.tenant),) if v is not None]
    statuses: list[str] = []
    for index, number in enumerate(request.statuses):
        name = _STATUS_NAMES.get(number)
        if name is None:
            violations.append(
                FieldViolation(f"statuses[{index}]", f"{number} is not a message status")
            )
        else:
            statuses.append(name)
    start = _micros(request.submitted_from) if request.HasField("submitted_from") else None
    end = _micros(request.submitted_to) if request.HasField("submitted_to") else None
    if start is not None and end is not None and end <= start:
        violations.append(FieldViolation("submitted_to", "must be after submitted_from"))
    if violations:
        raise InvalidArgumentError(violations)
    query = MessageQuery(
        tenant=request.tenant,
        statuses=tuple(sorted(set(statuses))),
        carrier=request.carrier or None,
        country=request.country.upper() or None,
        submitted_from=start,
        submitted_to=end,
    )
    size = request.page_size or DEFAULT_PAGE_SIZE
    after = _decode_page_token(request.page_token, query) if request.page_token else None
    return MessagePage(query, min(size, MAX_PAGE_SIZE), after)


def stats_query_from_proto(request: readmodels_pb2.StatisticsRequest) -> StatsQuery:
    """Validate a ``StatisticsRequest``.

    Raises:
        InvalidArgumentError: A field is invalid; each violation names it.
    """
    violations = [v for v in (check_tenant(request.tenant),) if v is not None]
    if not request.HasField("start_time"):
        violations.append(FieldViolation("start_time", "is required"))
    if not request.HasField("end_time"):
        violations.append(FieldViolation("end_time", "is required"))
    start = request.start_time.seconds
    end = request.end_time.seconds + (1 if request.end_time.nanos else 0)
    if request.HasField("start_time") and request.HasField("end_time") and end <= start:
        violations.append(FieldViolation("end_time", "must be after start_time"))
    groups: list[Grouping] = []
    for index, number in enumerate(request.group_by):
        grouping = _GROUPINGS.get(number)
        if grouping is None:
            violations.append(
                FieldViolation(
                    f"group_by[{index}]",
                    f"{number} is not a grouping: use CARRIER, COUNTRY, HOUR or DAY",
                )
            )
        elif grouping not in groups:
            groups.append(grouping)
    if "hour" in groups and "day" in groups:
        violations.append(FieldViolation("group_by", "cannot group by both HOUR and DAY"))
    if violations:
        raise InvalidArgumentError(violations)
    return StatsQuery(
        start=start,
        end=end,
        tenant=request.tenant,
        carriers=tuple(request.carriers),
        countries=tuple(c.upper() for c in request.countries),
        group_by=tuple(groups),
    )
