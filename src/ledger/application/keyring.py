"""Subject keys with an in-process cache in front of the key table."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Collection, Iterable

from ledger.privacy.subjects import INDEX_KEY_ID, SubjectCrypto
from ledger.storage.records import SubjectKeyRow
from ledger.storage.store import LedgerStore

__all__ = ["Keyring"]

logger = logging.getLogger(__name__)


class _LRU:
    """Least-recently-used cache whose entries also expire ``ttl`` seconds after insertion."""

    def __init__(self, capacity: int, ttl: float) -> None:
        self._items: OrderedDict[str, tuple[float, tuple[str, bytes]]] = OrderedDict()
        self._capacity = capacity
        self._ttl = ttl

    def get(self, key: str) -> tuple[str, bytes] | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] <= time.monotonic():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return item[1]

    def put(self, key: str, value: tuple[str, bytes]) -> None:
        self._items[key] = (time.monotonic() + self._ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def discard(self, key: str) -> None:
        self._items.pop(key, None)


class Keyring:
    """Finds, creates and unwraps subject keys, caching unwrapped keys in memory.

    Unwrapped keys stay cached for at most ``ttl_seconds``, so that an
    erasure made by another process (``smsledger erase``) stops this one from
    using the destroyed key within that time.

    Args:
        store: Where wrapped keys live.
        crypto: Key operations under the master key.
        capacity: How many subjects' keys to keep unwrapped in memory.
        ttl_seconds: How long an unwrapped key stays cached.

    Raises:
        ValueError: The stored blind-index key does not verify under the
            configured master keys.
    """

    def __init__(
        self,
        store: LedgerStore,
        crypto: SubjectCrypto,
        capacity: int = 100_000,
        ttl_seconds: float = 60.0,
    ) -> None:
        self.store = store
        self.crypto = crypto
        self._by_subject = _LRU(capacity, ttl_seconds)
        self._by_id = _LRU(capacity, ttl_seconds)
        self._lock = threading.Lock()
        crypto.use_index_key(self._load_index_key())

    def _load_index_key(self) -> bytes:
        """Return the stored blind-index key, storing the derived one on first use.

        The first value is the key derived from the master key, so that blind
        indexes written before the index key was stored keep matching.
        """
        wrapped = self.store.subject_keys([INDEX_KEY_ID]).get(INDEX_KEY_ID)
        if wrapped is None:
            key = self.crypto.derived_index_key
            self.store.insert_index_key(INDEX_KEY_ID, self.crypto.wrap(INDEX_KEY_ID, key))
            wrapped = self.store.subject_keys([INDEX_KEY_ID]).get(INDEX_KEY_ID)
            if wrapped is None:
                raise ValueError("the blind-index key could not be stored")
        try:
            return self.crypto.unwrap(INDEX_KEY_ID, wrapped)
        except ValueError as error:
            raise ValueError(
                "the stored blind-index key does not verify: SMSLEDGER_MASTER_KEY (or one of "
                "SMSLEDGER_PREVIOUS_MASTER_KEYS) must be the key this database was written with"
            ) from error

    def lookup(
        self, subjects: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[str, bytes]]:
        """Return ``(key_id, key)`` for each ``(tenant, subject)`` that has a stored key."""
        found: dict[tuple[str, str], tuple[str, bytes]] = {}
        missing: dict[str, tuple[str, str]] = {}
        with self._lock:
            for tenant, subject in set(subjects):
                index = self.crypto.subject_index(tenant, subject)
                cached = self._by_subject.get(index)
                if cached is None:
                    missing[index] = (tenant, subject)
                else:
                    found[(tenant, subject)] = cached
        if not missing:
            return found
        stored = self.store.find_subject_keys(missing)
        with self._lock:
            for index, (key_id, wrapped) in stored.items():
                entry = (key_id, self.crypto.unwrap(key_id, wrapped))
                self._by_subject.put(index, entry)
                self._by_id.put(key_id, entry)
                found[missing[index]] = entry
        return found

    def create(
        self, tenant: str, subject: str, now_micros: int
    ) -> tuple[tuple[str, bytes], SubjectKeyRow]:
        """Make a new key for a subject; it exists once ``row`` is committed.

        The row must be written in the same transaction as the first event
        encrypted with the key; the key is cached by :meth:`remember` after
        that transaction commits.
        """
        key_id, key, wrapped = self.crypto.new_key()
        row = SubjectKeyRow(
            key_id=key_id,
            tenant=tenant,
            subject_index=self.crypto.subject_index(tenant, subject),
            wrapped_key=wrapped,
            created_at=now_micros,
        )
        return (key_id, key), row

    def remember(self, created: Iterable[tuple[SubjectKeyRow, bytes]]) -> None:
        """Cache keys whose rows were committed."""
        with self._lock:
            for row, key in created:
                entry = (row.key_id, key)
                self._by_subject.put(row.subject_index, entry)
                self._by_id.put(row.key_id, entry)

    def keys_by_id(self, key_ids: Collection[str]) -> dict[str, bytes | None]:
        """Return unwrapped keys by id; None for an erased, unknown or unreadable key."""
        found: dict[str, bytes | None] = {}
        missing = []
        with self._lock:
            for key_id in set(key_ids):
                cached = self._by_id.get(key_id)
                if cached is None:
                    missing.append(key_id)
                else:
                    found[key_id] = cached[1]
        if not missing:
            return found
        stored = self.store.subject_keys(missing)
        with self._lock:
            for key_id in missing:
                wrapped = stored.get(key_id)
                if wrapped is None:
                    found[key_id] = None
                    continue
                try:
                    key = self.crypto.unwrap(key_id, wrapped)
                except ValueError:
                    # A key wrapped under another master key: its data stays
                    # unreadable here, but nothing else fails because of it.
                    logger.error("subject key does not verify", extra={"key_id": key_id})
                    found[key_id] = None
                    continue
                self._by_id.put(key_id, (key_id, key))
                found[key_id] = key
        return found

    def forget(self, key_id: str, subject_index: str | None = None) -> None:
        """Drop a key from the cache (after erasure)."""
        with self._lock:
            self._by_id.discard(key_id)
            if subject_index:
                self._by_subject.discard(subject_index)
