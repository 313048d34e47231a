"""Verification of the hash chains of every message in the log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import MapperDeserialisationError

from ledger.domain.audit import GENESIS_HASH, chain_hash
from ledger.domain.message import hashed_record
from ledger.storage.store import LedgerStore

__all__ = ["BrokenLink", "VerifyReport", "verify_log"]


@dataclass(frozen=True)
class BrokenLink:
    """An event whose hash or version does not follow from its predecessor."""

    position: int
    aggregate_id: str
    version: int
    reason: str


@dataclass
class VerifyReport:
    """Totals of a verification run."""

    events: int = 0
    messages: int = 0
    broken: int = 0


def verify_log(
    store: LedgerStore,
    *,
    page_size: int = 1000,
    on_progress: Callable[[int, int], None] | None = None,
) -> Iterator[BrokenLink | VerifyReport]:
    """Walk the whole log and recompute every hash chain.

    Yields each broken link as it is found, then one final report. A chain is
    broken when an event's stored hash differs from the hash recomputed over
    its stored fields and its predecessor's hash, or when versions skip.

    Args:
        store: The ledger's storage.
        page_size: Log entries read per query.
        on_progress: Called with (position reached, highest position).
    """
    last: dict[Any, tuple[int, str]] = {}
    report = VerifyReport()
    top = store.max_position()
    start = 1
    while True:
        page = store.notifications(start, page_size)
        if not page:
            break
        for notification in page:
            report.events += 1
            try:
                event: Any = store.app.mapper.to_domain_event(notification)
            except (MapperDeserialisationError, ValueError, TypeError) as error:
                report.broken += 1
                yield BrokenLink(
                    notification.id,
                    str(notification.originator_id),
                    notification.originator_version,
                    f"the stored event cannot be decoded: {error}",
                )
                continue
            version = event.originator_version
            previous_version, previous_hash = last.get(event.originator_id, (0, GENESIS_HASH))
            stored_hash, record = hashed_record(event)
            if version != previous_version + 1:
                report.broken += 1
                yield BrokenLink(
                    notification.id,
                    str(event.originator_id),
                    version,
                    f"version {version} follows version {previous_version}",
                )
            elif chain_hash(previous_hash, record) != stored_hash:
                report.broken += 1
                yield BrokenLink(
                    notification.id,
                    str(event.originator_id),
                    version,
                    "stored hash does not match the hash of the stored fields and the "
                    "previous event's hash",
                )
            last[event.originator_id] = (version, stored_hash)
        start = page[-1].id + 1
        if on_progress is not None:
            on_progress(page[-1].id, top)
    report.messages = len(last)
    yield report
