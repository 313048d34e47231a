"""Signed checkpoints of the log head, kept outside the database.

Each message's hash chain shows edits inside it, but not a message whose
newest events were cut off, a message deleted whole, or a database rewritten
consistently. A checkpoint closes that gap: it records the log position
reached and a digest over every event up to it, signed with an Ed25519 key
that the database does not hold, and is appended to a file the operator keeps
elsewhere (and published on NATS when configured).

The digest runs over the log in position order::

    digest(0) = 32 zero bytes
    digest(p) = SHA-256( digest(previous) || position (8 bytes, big-endian) || event hash )

so it covers every event's own hash (and through it every stored field) and
its place in the log. A checkpoint is a JSON line::

    {"position": P, "events": N, "digest": "<hex>", "time": "<ISO 8601>",
     "key": "<public key, base64>", "signature": "<base64 of Ed25519 over the
     canonical JSON of the other fields>"}
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.domain.audit import canonical_json
from ledger.storage.store import LedgerStore

__all__ = [
    "Checkpoint",
    "CheckpointProblem",
    "LogDigest",
    "append_checkpoint",
    "generate_key",
    "load_private_key",
    "read_checkpoints",
    "verify_checkpoints",
]

_ZERO = bytes(32)
_PAGE = 2000


def generate_key() -> tuple[str, str]:
    """Return a new signing key and its public key, both as base64 text."""
    private = Ed25519PrivateKey.generate()
    return _encode_private(private), _encode_public(private.public_key())


def load_private_key(text: str) -> Ed25519PrivateKey:
    """Load a signing key from the base64 of its 32-byte seed.

    Raises:
        ValueError: The text is not base64 of 32 bytes.
    """
    try:
        seed = base64.b64decode(text, validate=True)
    except ValueError as error:
        raise ValueError("the checkpoint key is not valid base64") from error
    if len(seed) != 32:
        raise ValueError(f"the checkpoint key decodes to {len(seed)} bytes; 32 are needed")
    return Ed25519PrivateKey.from_private_bytes(seed)


def _encode_private(key: Ed25519PrivateKey) -> str:
    raw = key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return base64.b64encode(raw).decode()


def _encode_public(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


class LogDigest:
    """The running digest of the log, extended event by event in position order."""

    def __init__(self, digest: bytes = _ZERO, position: int = 0, events: int = 0) -> None:
        self.digest = digest
        self.position = position
        self.events = events

    def add(self, position: int, event_hash: str) -> None:
        """Extend the digest with the event at ``position``."""
        step = hashlib.sha256(self.digest)
        step.update(position.to_bytes(8, "big"))
        step.update(bytes.fromhex(event_hash))
        self.digest = step.digest()
        self.position = position
        self.events += 1

    def extend(self, store: LedgerStore, until: int | None = None) -> None:
        """Extend the digest with every logged event after its position (up to ``until``)."""
        for position, event_hash in _event_hashes(store, self.position + 1, until):
            self.add(position, event_hash)


def _event_hashes(store: LedgerStore, start: int, until: int | None) -> Iterator[tuple[int, str]]:
    while True:
        page = store.notifications(start, _PAGE)
        if not page:
            return
        for notification in page:
            if until is not None and notification.id > until:
                return
            state = json.loads(notification.state)
            yield notification.id, str(state["hash"])
        start = page[-1].id + 1


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement of the log head at one moment."""

    position: int
    events: int
    digest: str
    time: str
    key: str
    signature: str

    def signed_part(self) -> dict[str, Any]:
        """Return the fields the signature covers."""
        return {
            "position": self.position,
            "events": self.events,
            "digest": self.digest,
            "time": self.time,
            "key": self.key,
        }

    def to_json(self) -> str:
        """Return the checkpoint as one JSON line."""
        return json.dumps({**self.signed_part(), "signature": self.signature}, sort_keys=True)

    def signature_valid(self) -> bool:
        """Return whether the signature verifies under the checkpoint's own public key."""
        try:
            public = Ed25519PublicKey.from_public_bytes(base64.b64decode(self.key))
            public.verify(base64.b64decode(self.signature), canonical_json(self.signed_part()))
        except (InvalidSignature, ValueError):
            return False
        return True


def read_checkpoints(path: Path) -> list[Checkpoint]:
    """Read every checkpoint from a file of JSON lines (none when it does not exist)."""
    if not path.exists():
        return []
    checkpoints = []
    for line in path.read_text().splitlines():
        if line.strip():
            data = json.loads(line)
            checkpoints.append(Checkpoint(**data))
    return checkpoints


def append_checkpoint(
    store: LedgerStore,
    key: Ed25519PrivateKey,
    path: Path,
    clock: Callable[[], datetime] | None = None,
) -> Checkpoint:
    """Sign the current log head and append it to ``path``.

    The digest continues from the last checkpoint in the file, so each call
    reads only the events logged since; the file is flushed to disk before
    this returns.
    """
    previous = read_checkpoints(path)
    digest = LogDigest()
    if previous:
        last = previous[-1]
        digest = LogDigest(bytes.fromhex(last.digest), last.position, last.events)
    digest.extend(store)
    unsigned = Checkpoint(
        position=digest.position,
        events=digest.events,
        digest=digest.digest.hex(),
        time=(clock or (lambda: datetime.now(UTC)))().isoformat(),
        key=_encode_public(key.public_key()),
        signature="",
    )
    signature = base64.b64encode(key.sign(canonical_json(unsigned.signed_part()))).decode()
    checkpoint = dataclasses.replace(unsigned, signature=signature)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(checkpoint.to_json() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return checkpoint


@dataclass(frozen=True)
class CheckpointProblem:
    """A checkpoint the database does not match."""

    position: int
    reason: str


def verify_checkpoints(
    store: LedgerStore, checkpoints: list[Checkpoint], public_key: str | None = None
) -> list[CheckpointProblem]:
    """Check the database against signed checkpoints.

    Args:
        store: The ledger's storage.
        checkpoints: Checkpoints in the order they were written.
        public_key: The expected signing key (base64); when None, each
            checkpoint's own key is used, which shows tampering with the file
            but not its replacement.

    Returns:
        One problem per checkpoint whose signature fails or whose position,
        event count or digest the database does not reproduce.
    """
    problems = []
    digest = LogDigest()
    for checkpoint in sorted(checkpoints, key=lambda c: c.position):
        if public_key is not None and checkpoint.key != public_key:
            problems.append(CheckpointProblem(checkpoint.position, "signed with another key"))
            continue
        if not checkpoint.signature_valid():
            problems.append(CheckpointProblem(checkpoint.position, "signature does not verify"))
            continue
        digest.extend(store, until=checkpoint.position)
        if digest.position < checkpoint.position or digest.events != checkpoint.events:
            problems.append(
                CheckpointProblem(
                    checkpoint.position,
                    f"the log holds {digest.events} events up to position {digest.position}; "
                    f"the checkpoint recorded {checkpoint.events} up to {checkpoint.position}",
                )
            )
        elif digest.digest.hex() != checkpoint.digest:
            problems.append(
                CheckpointProblem(
                    checkpoint.position,
                    "the digest of the log differs: events up to this position were changed, "
                    "removed or replaced",
                )
            )
    return problems
