"""Master-key rotation: wrap every stored key again under the current master key.

Rotation needs no downtime. Every node is first given the new key as
``SMSLEDGER_MASTER_KEY`` and the old one in ``SMSLEDGER_PREVIOUS_MASTER_KEYS``:
new keys are wrapped under the new master key, and keys wrapped under the old
one stay readable. :func:`rewrap_keys` then wraps the old ones again, after
which the old master key can be removed from every node. Blind indexes do not
change, because the index key is itself a stored key that is only re-wrapped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ledger.privacy.subjects import SubjectCrypto
from ledger.storage.store import LedgerStore

__all__ = ["RotationResult", "rewrap_keys"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RotationResult:
    """Counts of one rotation run.

    Attributes:
        rewrapped: Keys wrapped again under the current master key.
        current: Keys that were already wrapped under it.
        unreadable: Keys that no configured master key opens; they stay as they are.
        changed: Keys erased or re-wrapped by another process during the run.
    """

    rewrapped: int = 0
    current: int = 0
    unreadable: int = 0
    changed: int = 0


def rewrap_keys(store: LedgerStore, crypto: SubjectCrypto, page_size: int = 500) -> RotationResult:
    """Wrap every stored key that is not under the current master key again.

    Each key is swapped only if its stored form is still the one read, so an
    erasure running at the same time is never undone.
    """
    rewrapped = current = unreadable = changed = 0
    after = ""
    while True:
        page = store.wrapped_keys_after(after, page_size)
        if not page:
            break
        for key_id, wrapped in page:
            try:
                key, is_current = crypto.unwrap_with_age(key_id, wrapped)
            except ValueError:
                logger.error(
                    "subject key opens under no configured master key", extra={"key_id": key_id}
                )
                unreadable += 1
                continue
            if is_current:
                current += 1
            elif store.replace_wrapped_key(key_id, wrapped, crypto.wrap(key_id, key)):
                rewrapped += 1
            else:
                changed += 1
        after = page[-1][0]
    result = RotationResult(rewrapped, current, unreadable, changed)
    logger.info(
        "master key rotation finished",
        extra={
            "rewrapped": rewrapped,
            "current": current,
            "unreadable": unreadable,
            "changed": changed,
        },
    )
    return result
