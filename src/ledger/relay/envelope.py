"""What the relay publishes for one log entry: subject, headers and payload.

Every message carries the CloudEvents attributes in binary content mode: each
attribute is a header named ``ce-<attribute>`` and the payload is the event
data itself, a serialized ``ledger.v1.Event`` (``protos/ledger/v1/events.proto``)
without raw receipt payloads and with the destination masked. The ledger's own
headers give the log position, the message's aggregate id and version, and the
epoch of the relay that published the copy. ``traceparent`` carries the W3C
trace context of the request that appended the event, when it had one.

The headers are set directly rather than through the ``cloudevents`` package,
because the mapping is seven fixed headers and building an SDK event object per
message would cost a large share of the relay's per-event budget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import quote

from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from ledger.domain.audit import format_timestamp
from ledger.domain.message import Message
from ledger.protocol.events import event_to_proto

__all__ = [
    "CONTENT_TYPE",
    "HEADER_AGGREGATE_ID",
    "HEADER_EPOCH",
    "HEADER_MSG_ID",
    "HEADER_POSITION",
    "HEADER_TRACEPARENT",
    "HEADER_VERSION",
    "PUBLISHED_EVENT_TYPES",
    "PUBLISHED_TOPICS",
    "OutboundEvent",
    "encode_notification",
    "event_subject",
    "message_headers",
]

PUBLISHED_EVENT_TYPES: tuple[type[Any], ...] = (
    Message.Submitted,
    Message.Resubmitted,
    Message.CarrierAccepted,
    Message.Enroute,
    Message.Accepted,
    Message.Delivered,
    Message.Failed,
    Message.Expired,
    Message.Rejected,
    Message.Unknown,
    Message.RetryAdvised,
    Message.DestinationErased,
)
"""Lifecycle events that go on the stream (the event types of the history API);
any other log entry is skipped.
"""

PUBLISHED_TOPICS: frozenset[str] = frozenset(get_topic(cls) for cls in PUBLISHED_EVENT_TYPES)
"""eventsourcing topics of :data:`PUBLISHED_EVENT_TYPES`, as stored in the log."""

HEADER_MSG_ID = "Nats-Msg-Id"
HEADER_POSITION = "Ledger-Position"
HEADER_VERSION = "Ledger-Version"
HEADER_AGGREGATE_ID = "Ledger-Aggregate-Id"
HEADER_EPOCH = "Ledger-Relay-Epoch"
HEADER_TRACEPARENT = "traceparent"
CONTENT_TYPE = "application/protobuf"
CLOUDEVENTS_SPEC_VERSION = "1.0"
CLOUDEVENTS_TYPE_PREFIX = "ledger.v1."

# Characters kept as they are in the ce-subject header; everything else in a
# message id is percent-encoded so that the header is plain ASCII.
_SUBJECT_SAFE = "-._~:@!$&'()*+,;="


class OutboundEvent(NamedTuple):
    """One log entry ready to publish.

    The relay adds the ``Ledger-Relay-Epoch`` header when it publishes, so the
    same value can be published again by a later relay.
    """

    position: int
    aggregate_id: str
    version: int
    event_id: str
    subject: str
    headers: dict[str, str]
    payload: bytes


def event_subject(prefix: str, tenant: str, event_type: str) -> str:
    """Return the subject of an event: ``<prefix>.<tenant>.<event type>``.

    Tenant ids are validated on submit to contain only ``a-z``, ``0-9`` and
    ``-``, so they are always a single valid subject token.
    """
    return f"{prefix}.{tenant}.{event_type}"


def message_headers(
    *,
    event: Any,
    identifier: str,
    position: int,
    source: str,
) -> dict[str, str]:
    """Return the headers of one event's message, without the relay epoch.

    Args:
        event: A lifecycle event of :class:`~ledger.domain.message.Message`.
        identifier: The event id (also the ``Nats-Msg-Id``).
        position: The event's position in the ledger's log.
        source: The CloudEvents ``source`` attribute.
    """
    event_type = type(event).__name__
    headers = {
        HEADER_MSG_ID: identifier,
        HEADER_POSITION: str(position),
        HEADER_AGGREGATE_ID: str(event.originator_id),
        HEADER_VERSION: str(event.originator_version),
        "ce-specversion": CLOUDEVENTS_SPEC_VERSION,
        "ce-id": identifier,
        "ce-source": source,
        "ce-type": CLOUDEVENTS_TYPE_PREFIX + event_type,
        "ce-time": format_timestamp(event.timestamp),
        "ce-subject": f"{event.tenant}/{quote(event.message_id, safe=_SUBJECT_SAFE)}",
        "content-type": CONTENT_TYPE,
    }
    # The W3C trace context of the request that appended the event, so that
    # consumers can continue its trace.
    trace_context = getattr(event, "trace_context", None)
    if trace_context:
        headers[HEADER_TRACEPARENT] = trace_context
    return headers


def encode_notification(
    decode: Callable[[Notification], Any], notification: Notification, *, prefix: str, source: str
) -> OutboundEvent | None:
    """Decode one log entry and build its message; None for entries not published.

    Args:
        decode: Turns a log entry into its domain event, such as
            ``mapper.to_domain_event`` or :meth:`ledger.relay.decode.EventDecoder.decode`.
        notification: The log entry.
        prefix: The subject prefix.
        source: The CloudEvents ``source`` attribute.
    """
    if notification.topic not in PUBLISHED_TOPICS:
        return None
    event: Any = decode(notification)
    proto = event_to_proto(event, event.tenant, event.message_id)
    # event_to_proto derives the event id with ledger.domain.audit.event_id.
    identifier = proto.event_id
    return OutboundEvent(
        position=notification.id,
        aggregate_id=proto.aggregate_id,
        version=proto.version,
        event_id=identifier,
        subject=event_subject(prefix, event.tenant, type(event).__name__),
        headers=message_headers(
            event=event, identifier=identifier, position=notification.id, source=source
        ),
        payload=proto.SerializeToString(),
    )
