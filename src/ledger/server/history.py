"""The audit view of a message: every event with its raw payload, decrypted."""

from __future__ import annotations

from ledger.application.batch import DESTINATION_FIELD, RAW_FIELD
from ledger.application.ledger import Ledger
from ledger.domain.identity import message_aggregate_id
from ledger.domain.message import Message
from ledger.errors import NotFoundError
from ledger.privacy.subjects import decrypt_field
from ledger.protocol.events import event_to_proto
from ledger.storage.store import StoredHistoryEvent
from ledger.v1 import ledger_pb2

__all__ = ["history_events"]


def history_events(ledger: Ledger, tenant: str, message_id: str) -> list[ledger_pb2.HistoryEvent]:
    """Return the full history of a message, for auditors.

    Raw payloads and the destination are decrypted with the subject's key;
    after erasure they come back empty and the events still verify.

    Raises:
        NotFoundError: The tenant has no message with this id.
    """
    stored = ledger.store.history(message_aggregate_id(tenant, message_id))
    if not stored:
        raise NotFoundError(f"tenant {tenant!r} has no message {message_id!r}")
    first = stored[0].event
    assert isinstance(first, Message.Submitted)
    erased = _erased_keys(ledger, stored)
    # The table decides, not the key cache: another process may have erased
    # the subject while this one still holds its key in memory.
    key = None
    if first.destination_key_id not in erased:
        key = ledger.keyring.keys_by_id([first.destination_key_id]).get(first.destination_key_id)
    destination = ""
    if key is not None:
        destination = decrypt_field(key, first.destination_ciphertext, DESTINATION_FIELD).decode()

    result = []
    for item in stored:
        event = item.event
        proto = ledger_pb2.HistoryEvent(
            event=event_to_proto(event, first.tenant, first.message_id),
            position=item.position,
            destination=destination,
            destination_erased=first.destination_key_id in erased,
        )
        if isinstance(event, Message.ReceiptEvent) and event.raw_ciphertext is not None:
            raw_key = (
                key
                if event.raw_key_id == first.destination_key_id
                else None
                if event.raw_key_id in erased
                else ledger.keyring.keys_by_id([event.raw_key_id or ""]).get(event.raw_key_id or "")
            )
            proto.raw.format = event.raw_format or ""
            proto.raw.content_type = event.raw_content_type or ""
            proto.raw.source = event.raw_source or ""
            if raw_key is not None:
                proto.raw.body = decrypt_field(raw_key, event.raw_ciphertext, RAW_FIELD)
            proto.raw.erased = event.raw_key_id in erased
        result.append(proto)
    return result


def _erased_keys(ledger: Ledger, stored: list[StoredHistoryEvent]) -> set[str]:
    """Return the ids of the erased subject keys that the history's events name."""
    key_ids = {stored[0].event.destination_key_id}  # type: ignore[union-attr]
    for item in stored:
        if isinstance(item.event, Message.ReceiptEvent) and item.event.raw_key_id:
            key_ids.add(item.event.raw_key_id)
    states = ledger.store.subject_key_state(key_ids)
    return {key_id for key_id, (_, erased_at) in states.items() if erased_at is not None}
