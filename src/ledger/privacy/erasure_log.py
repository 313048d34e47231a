"""The erasure log: an append-only JSON Lines file of every erasure.

A database restored from a backup predates some erasures; replaying this log
with ``smsledger erase --reapply`` destroys those subjects' keys again. An
entry names the subject by tenant, blind index and key id, never by number.
The blind index is an HMAC of the number under the index key, so whoever
holds the master key and this file can test guessed numbers against it: keep
the file as protected as the master key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

__all__ = ["ErasureLog", "ErasureLogError", "ErasureRecord", "read_erasure_log"]

_VERSION = 1


class ErasureLogError(ValueError):
    """An erasure log line cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class ErasureRecord:
    """One erasure as logged.

    Attributes:
        tenant: Tenant of the subject.
        subject_index: Blind index of the subject (HMAC of tenant and number).
        key_id: The destroyed subject key; None when the subject had none.
        erased_at: When the erasure was made (aware, UTC).
        parked: Ids of the parked receipts deleted because they named the number.
        unparsed: Ids of the unparsed receipts deleted for the same reason.
    """

    tenant: str
    subject_index: str
    key_id: str | None
    erased_at: datetime
    parked: tuple[str, ...] = ()
    unparsed: tuple[str, ...] = ()

    def to_json(self) -> str:
        """Return the record as one line of JSON."""
        return json.dumps(
            {
                "version": _VERSION,
                "tenant": self.tenant,
                "subject_index": self.subject_index,
                "key_id": self.key_id,
                "erased_at": self.erased_at.isoformat(),
                "parked": list(self.parked),
                "unparsed": list(self.unparsed),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, line: str) -> ErasureRecord:
        """Parse a line written by :meth:`to_json`.

        Raises:
            ValueError: The line is not a record of a known version.
        """
        data = json.loads(line)
        if not isinstance(data, dict) or data.get("version") != _VERSION:
            raise ValueError(f"not an erasure record of version {_VERSION}")
        erased_at = datetime.fromisoformat(data["erased_at"])
        if erased_at.tzinfo is None:
            raise ValueError("erased_at has no time zone")
        return cls(
            tenant=str(data["tenant"]),
            subject_index=str(data["subject_index"]),
            key_id=None if data.get("key_id") is None else str(data["key_id"]),
            erased_at=erased_at,
            parked=tuple(str(i) for i in data.get("parked", [])),
            unparsed=tuple(str(i) for i in data.get("unparsed", [])),
        )


class ErasureLog:
    """Appends records to the erasure log file, creating it (mode 0600) if missing.

    Args:
        path: The log file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: ErasureRecord) -> None:
        """Append one record and flush it to disk before returning.

        Raises:
            OSError: The file cannot be opened or written.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (record.to_json() + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)


def read_erasure_log(path: Path) -> Iterator[ErasureRecord]:
    """Yield the records of an erasure log in file order.

    Raises:
        ErasureLogError: A line is not a valid record.
        OSError: The file cannot be read.
    """
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield ErasureRecord.from_json(line)
            except (ValueError, KeyError, TypeError) as error:
                raise ErasureLogError(
                    f"{path}:{number}: invalid erasure record ({error}); fix or remove the line"
                ) from error
