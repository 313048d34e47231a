"""Erasure of a data subject (crypto-shredding) and its re-application after a restore.

Erasing a subject (a tenant's destination number):

1. appends an entry to the erasure log, when one is configured, before
   anything changes, so that a crash half-way is completed by ``--reapply``;
2. in one transaction, destroys the subject key, appends a
   ``DestinationErased`` event to the first messages of the subject, and
   deletes the parked and unparsed receipts that name the number. Destroying
   the key removes the wrapped key and the blind index and keeps the erasure
   time;
3. appends ``DestinationErased`` to the remaining messages, 500 per
   transaction.

Parked and unparsed receipts are encrypted under the tenant's unattributed
key, which is not erased, so they are found by content: the raw payload is
decrypted and its digit sequences, and the row's clear-text columns, are
compared with the number's E.164, national and trunk-prefixed forms.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote_plus

from ledger.application.batch import RAW_FIELD
from ledger.application.ledger import Ledger
from ledger.domain.identity import check_tenant
from ledger.errors import FieldViolation, InvalidArgumentError, NotFoundError, UnavailableError
from ledger.privacy.erasure_log import ErasureLog, ErasureRecord
from ledger.privacy.numbers import CheckedNumber, check_destination
from ledger.privacy.subjects import decrypt_field
from ledger.storage.records import KeptReceipt, SideWrites, from_micros, to_micros
from ledger.storage.store import ConflictError

__all__ = ["Eraser", "ErasureResult", "number_forms"]

logger = logging.getLogger(__name__)

_CHUNK = 500
_MAX_CONFLICTS = 20
# Digits that may be split by spaces, dots, dashes or brackets, as numbers
# are often written in carrier payloads ("+44 7700 900123", "(0)7700-900123").
_LOOSE_NUMBER = re.compile(r"\+?\d[\d \t().\-]{4,}\d")
_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True)
class ErasureResult:
    """Counts and ids of one erasure.

    Attributes:
        tenant: The subject's tenant.
        key_id: The destroyed subject key, None when the subject had no key.
        erased_at: The erasure time.
        messages: Messages that got a ``DestinationErased`` event.
        receipts_deleted: Parked and unparsed receipts deleted.
    """

    tenant: str
    key_id: str | None
    erased_at: datetime
    messages: int
    receipts_deleted: int


def number_forms(number: CheckedNumber) -> frozenset[str]:
    """Return the digit strings a payload may write ``number`` as.

    The E.164 digits (matched with or without a ``+`` or an international
    ``00``) and the national number after a trunk ``0``. The bare national
    number is left out: it is short enough to collide with carrier ids.
    """
    e164 = number.e164.removeprefix("+")
    return frozenset({e164, f"0{number.national_number.lstrip('0')}"})


def _candidates(text: str) -> set[str]:
    """Return the digit strings in ``text`` that could be a phone number."""
    found: set[str] = set()
    spans = [m.group() for m in _LOOSE_NUMBER.finditer(text)] + _DIGITS.findall(text)
    for span in spans:
        for variant in (span, span.replace("(0)", "")):
            digits = "".join(_DIGITS.findall(variant))
            found.add(digits)
            found.add(digits.removeprefix("00"))
    return found


def names_number(texts: Iterable[str], forms: frozenset[str]) -> bool:
    """Return True when any of ``texts``, as is or URL-decoded, contains one of ``forms``."""
    for text in texts:
        for variant in (text, unquote_plus(text)):
            if not forms.isdisjoint(_candidates(variant)):
                return True
    return False


class Eraser:
    """Erases data subjects of one ledger and re-applies logged erasures.

    Args:
        ledger: The ledger whose store and keyring hold the subjects.
        log: Where erasures are appended; None keeps no log.
        clock: Returns the current time (aware, UTC).
    """

    def __init__(
        self,
        ledger: Ledger,
        log: ErasureLog | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.ledger = ledger
        self.store = ledger.store
        self.log = log
        self.clock = clock or (lambda: datetime.now(UTC))

    def erase(self, tenant: str, destination: str) -> ErasureResult:
        """Erase the subject ``destination`` of ``tenant``.

        Raises:
            InvalidArgumentError: The tenant or number is malformed.
            NotFoundError: The tenant has no key and no kept receipt for the number.
        """
        checked = _check(tenant, destination)
        crypto = self.ledger.keyring.crypto
        subject_index = crypto.subject_index(tenant, checked.e164)
        key_id = self._find_key_id(subject_index)
        forms = number_forms(checked)
        kept = self._matching_receipts(tenant, forms)
        if key_id is None and not kept:
            raise NotFoundError(f"tenant {tenant!r} has no data subject with that number")

        erased_at = self.clock()
        record = ErasureRecord(
            tenant=tenant,
            subject_index=subject_index,
            key_id=key_id,
            erased_at=erased_at,
            parked=tuple(str(r.receipt_id) for r in kept if r.kind == "parked"),
            unparsed=tuple(str(r.receipt_id) for r in kept if r.kind == "unparsed"),
        )
        if self.log is not None:
            self.log.append(record)
        result = self._apply(record)
        self.ledger.keyring.forget(key_id or "", subject_index)
        logger.info(
            "subject erased",
            extra={
                "tenant": tenant,
                "key_id": key_id,
                "messages": result.messages,
                "receipts_deleted": result.receipts_deleted,
            },
        )
        return result

    def reapply(self, records: Sequence[ErasureRecord]) -> list[ErasureResult]:
        """Apply logged erasures again, such as on a database restored from a backup.

        Keys already erased stay erased, messages that already have their
        ``DestinationErased`` event get no second one, and receipts already
        deleted are skipped, so running it twice changes nothing the second time.
        """
        results = []
        for record in records:
            key_id = record.key_id
            if key_id is None:
                key_id = self._find_key_id(record.subject_index)
            result = self._apply(dataclasses.replace(record, key_id=key_id))
            self.ledger.keyring.forget(key_id or "", record.subject_index)
            results.append(result)
        return results

    # ----------------------------------------------------------------- steps

    def _find_key_id(self, subject_index: str) -> str | None:
        """Return the id of the subject key with ``subject_index``, None when there is none."""
        found = self.store.find_subject_keys([subject_index]).get(subject_index)
        return found[0] if found is not None else None

    def _matching_receipts(self, tenant: str, forms: frozenset[str]) -> list[KeptReceipt]:
        """Return the tenant's parked and unparsed receipts that name the number."""
        kept = self.store.kept_receipts(tenant)
        keys = self.ledger.keyring.keys_by_id({r.raw_key_id for r in kept if r.raw_key_id})
        matching = []
        for receipt in kept:
            texts = list(receipt.texts)
            key = keys.get(receipt.raw_key_id or "")
            if receipt.raw_ciphertext is not None and key is not None:
                body = decrypt_field(key, receipt.raw_ciphertext, RAW_FIELD)
                texts.append(body.decode("utf-8", errors="replace"))
                texts.append(body.decode("latin-1"))
            if names_number(texts, forms):
                matching.append(receipt)
        return matching

    def _apply(self, record: ErasureRecord) -> ErasureResult:
        """Destroy the key, delete the receipts and append the erasure events."""
        erased_at_micros = to_micros(record.erased_at)
        messages = self.store.subject_messages(record.key_id) if record.key_id else []
        # The first chunk, empty when the subject has no messages, also destroys
        # the key and deletes the receipts.
        chunks = [messages[i : i + _CHUNK] for i in range(0, len(messages), _CHUNK)] or [[]]
        first_side = SideWrites()
        if record.key_id is not None:
            state = self.store.subject_key_state([record.key_id]).get(record.key_id)
            if state is not None and state[1] is None:
                first_side.erased_keys.append((record.key_id, erased_at_micros))
        first_side.unparked.extend(uuid.UUID(i) for i in record.parked)
        first_side.unparsed_cleared.extend(uuid.UUID(i) for i in record.unparsed)
        appended = 0
        for index, chunk in enumerate(chunks):
            side = first_side if index == 0 else SideWrites()
            appended += self._save_chunk(chunk, record, side)
        return ErasureResult(
            tenant=record.tenant,
            key_id=record.key_id,
            erased_at=from_micros(erased_at_micros),
            messages=appended,
            receipts_deleted=len(record.parked) + len(record.unparsed),
        )

    def _save_chunk(
        self, aggregate_ids: list[uuid.UUID], record: ErasureRecord, side: SideWrites
    ) -> int:
        """Append the erasure event to messages that lack it, with ``side``, atomically."""
        for _ in range(_MAX_CONFLICTS):
            messages = self.store.load_messages(aggregate_ids)
            changed = [m for m in messages.values() if not getattr(m, "destination_erased", False)]
            now = self.clock()
            for message in changed:
                message.record_erasure(erased_at=record.erased_at, recorded_at=now)
            try:
                self.store.save(changed, side)
            except ConflictError:
                # A command changed one of the messages meanwhile: reload and redo.
                continue
            return len(changed)
        raise UnavailableError(
            f"erasure of a subject of tenant {record.tenant!r} kept losing races with other "
            "writers; run it again"
        )


def _check(tenant: str, destination: str) -> CheckedNumber:
    violations: list[FieldViolation] = []
    tenant_violation = check_tenant(tenant)
    if tenant_violation is not None:
        violations.append(tenant_violation)
    checked = check_destination(destination)
    if isinstance(checked, FieldViolation):
        violations.append(checked)
    if violations:
        raise InvalidArgumentError(violations)
    assert isinstance(checked, CheckedNumber)
    return checked
