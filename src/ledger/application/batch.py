"""One batch of commands being applied: what it read, and what it will write."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from ledger.application.commands import (
    Command,
    InferExpiry,
    RawInput,
    RecordAcceptance,
    RecordRawReceipt,
    RecordReceipt,
    SubmitMessage,
    plausible_time,
)
from ledger.application.results import CommandResult, Disposition, EventRef
from ledger.domain.audit import format_timestamp
from ledger.domain.identity import message_aggregate_id
from ledger.domain.message import (
    Acceptance,
    Message,
    ProtectedNumber,
    RawRecord,
    ReceiptReport,
    RetryAdvice,
)
from ledger.domain.outcomes import Outcome, Status, normalize_report
from ledger.errors import (
    FieldViolation,
    InvalidArgumentError,
    LedgerError,
    LifecycleError,
    NotFoundError,
    ReceiptParseError,
)
from ledger.privacy.numbers import CheckedNumber, check_destination
from ledger.privacy.subjects import UNATTRIBUTED, decrypt_field, encrypt_field, number_digest
from ledger.receipts.ids import canonical_carrier_id
from ledger.receipts.model import ParsedReceipts
from ledger.receipts.parse import parse_receipt
from ledger.receipts.redaction import redact_unparsable
from ledger.storage.records import (
    CarrierIdRow,
    ExpiryRow,
    ParkedReceipt,
    SideWrites,
    SubjectKeyRow,
    UnparsedReceipt,
    from_micros,
    to_micros,
)

if TYPE_CHECKING:
    from ledger.application.ledger import Ledger

__all__ = ["Batch"]

_CarrierKey = tuple[str, str, str]
"""(tenant, connection, canonical carrier id)."""

RAW_FIELD = "raw_payload"
DESTINATION_FIELD = "destination"


class Batch:
    """Reads what a batch of commands needs, applies them, and collects writes.

    Args:
        ledger: The ledger (storage, keys, configuration).
        now: The batch's recording time.
        commands: The valid commands of the batch, in order.
    """

    def __init__(self, ledger: Ledger, now: datetime, commands: list[Command]) -> None:
        self.ledger = ledger
        self.store = ledger.store
        self.config = ledger.config
        self.now = now
        self.now_micros = to_micros(now)
        self.side = SideWrites()
        self._messages: dict[uuid.UUID, Message] = {}
        self._before: dict[uuid.UUID, tuple[bool, int]] = {}
        self._carrier_rows: dict[_CarrierKey, list[CarrierIdRow]] = defaultdict(list)
        self._parked: dict[_CarrierKey, list[ParkedReceipt]] = defaultdict(list)
        self._parked_new: set[uuid.UUID] = set()
        # Parser warnings of the receipt commands a raw receipt expanded into.
        self._warnings: dict[int, tuple[str, ...]] = {}
        self._numbers: dict[str, CheckedNumber] = {}
        self._trace: str | None = None
        self.new_keys: list[tuple[SubjectKeyRow, bytes]] = []
        self._new_keys_by_id: dict[str, bytes] = {}
        # Messages taken from the ledger's cache rather than read from storage.
        self.from_cache: frozenset[uuid.UUID] = frozenset()
        self._read(commands)

    # ------------------------------------------------------------------ reads

    def _read(self, commands: list[Command]) -> None:
        self.requests = self.store.find_requests(
            {(c.tenant, c.request_id) for c in commands if c.request_id}
        )

        # Raw receipts become normalized receipts before anything is read for them.
        self._expanded: dict[int, list[RecordReceipt] | LedgerError] = {}
        for c in commands:
            if isinstance(c, RecordRawReceipt):
                self._expanded[id(c)] = self._expand(c)
        commands = [
            *commands,
            *(r for e in self._expanded.values() if isinstance(e, list) for r in e),
        ]

        # Carrier ids named by receipts, and the messages they map to.
        receipt_keys = {
            self._receipt_key(c)
            for c in commands
            if isinstance(c, RecordReceipt) and c.message_id is None
        }
        for row in self.store.find_carrier_ids({k[2] for k in receipt_keys}):
            self._carrier_rows[(row.tenant, row.connection, row.canonical_id)].append(row)

        wanted: set[uuid.UUID] = set()
        for c in commands:
            if isinstance(c, SubmitMessage | RecordAcceptance) or (
                isinstance(c, RecordReceipt) and c.message_id is not None
            ):
                wanted.add(message_aggregate_id(c.tenant, c.message_id))
            elif isinstance(c, InferExpiry):
                wanted.add(c.aggregate_id)
        for key in receipt_keys:
            wanted.update(r.aggregate_id for r in self._carrier_rows.get(key, []))
        self._load(wanted)

        # Parked receipts waiting for the carrier ids this batch accepts, and
        # those a receipt of this batch may repeat.
        submitted = {
            message_aggregate_id(c.tenant, c.message_id): c.carrier
            for c in commands
            if isinstance(c, SubmitMessage)
        }
        parked_keys = {k[2] for k in receipt_keys}
        for c in commands:
            if isinstance(c, RecordAcceptance):
                carrier = self._carrier_of(c, submitted)
                if carrier is not None:
                    base = self.config.profile(carrier).submit_id_base
                    parked_keys.update(canonical_carrier_id(i, base) for _, i in c.segments)
        for parked in self.store.find_parked(parked_keys):
            self._parked[(parked.tenant, parked.connection, parked.canonical_id)].append(parked)

        # Subject keys of the destinations submitted; missing ones are created
        # when first used, and stored in the batch's transaction.
        subjects = set()
        for c in commands:
            if isinstance(c, SubmitMessage):
                checked = check_destination(c.destination)
                assert isinstance(checked, CheckedNumber)
                self._numbers[c.destination] = checked
                subjects.add((c.tenant, checked.e164))
        self._subject_keys = self.ledger.keyring.lookup(subjects)
        self._looked_up = subjects

    def subject_key(self, tenant: str, subject: str) -> tuple[str, bytes]:
        """Return the key of a subject, creating it in this batch if it has none."""
        pair = (tenant, subject)
        entry = self._subject_keys.get(pair)
        if entry is None and pair not in self._looked_up:
            entry = self.ledger.keyring.lookup([pair]).get(pair)
        if entry is None:
            entry, row = self.ledger.keyring.create(tenant, subject, self.now_micros)
            self.side.subject_keys.append(row)
            self.new_keys.append((row, entry[1]))
            self._new_keys_by_id[row.key_id] = entry[1]
        self._subject_keys[pair] = entry
        return entry

    def _expand(self, command: RecordRawReceipt) -> list[RecordReceipt] | LedgerError:
        """Parse a raw receipt into normalized receipt commands, or return why not."""
        profile = self.config.profile(command.connection)
        format_name = command.format or profile.format
        metadata = dict(command.metadata)
        try:
            parsed = parse_receipt(
                format_name, command.body, command.content_type, profile, metadata
            )
        except ReceiptParseError as error:
            return error
        return self._receipt_commands(command, parsed, format_name, metadata)

    def _receipt_commands(
        self,
        command: RecordRawReceipt,
        parsed: ParsedReceipts,
        format_name: str,
        metadata: dict[str, str],
    ) -> list[RecordReceipt] | LedgerError:
        message_id = metadata.get("message_id") or None
        receipts = []
        for index, receipt in enumerate(parsed.receipts):
            if receipt.carrier_message_id is None and message_id is None:
                return InvalidArgumentError(
                    FieldViolation(
                        "body",
                        f"the {format_name} receipt names no carrier message id; pass the "
                        "message id as metadata 'message_id'",
                    )
                )
            body = parsed.parts[index] if parsed.parts else parsed.redacted_body
            done_at = receipt.done_at
            warnings = receipt.warnings
            if done_at is not None and not plausible_time(done_at, self.now):
                # Carriers' clocks and zones are unreliable: an impossible done
                # date is replaced by the time of arrival rather than recorded.
                warnings = (
                    *warnings,
                    f"done date {done_at.isoformat()} is before 2000 or more than a day "
                    "ahead of the ledger's clock; the arrival time is used",
                )
                done_at = None
            receipts.append(
                RecordReceipt(
                    tenant=command.tenant,
                    status=Status[receipt.status.name],
                    message_id=message_id,
                    segment=receipt.segment or 0,
                    connection=command.connection,
                    carrier_message_id=receipt.carrier_message_id,
                    final=receipt.final,
                    permanent=receipt.permanent,
                    error_code=receipt.error_code,
                    error_table=receipt.error_table,
                    occurred_at=done_at,
                    source_time=receipt.source_time,
                    raw=RawInput(
                        body=body,
                        content_type=command.content_type,
                        format=format_name,
                        source=command.source,
                        redactions=parsed.redactions,
                    ),
                )
            )
            if warnings:
                self._warnings[id(receipts[-1])] = warnings
        return receipts

    def _carrier_of(self, command: RecordAcceptance, submitted: dict[uuid.UUID, str]) -> str | None:
        aggregate_id = message_aggregate_id(command.tenant, command.message_id)
        message = self._messages.get(aggregate_id)
        if message is None:
            return submitted.get(aggregate_id)
        try:
            return message.attempt(command.attempt).carrier
        except NotFoundError:
            return submitted.get(aggregate_id)

    def _load(self, wanted: set[uuid.UUID]) -> None:
        cached = self.ledger._cache.take_many(wanted)
        self.from_cache = frozenset(cached)
        self._messages.update(cached)
        missing = wanted - cached.keys()
        self._messages.update(self.store.load_messages(missing))
        self._before = {
            i: (m.outcome.final or m.current_attempt.outcome.final, m.current_attempt.number)
            for i, m in self._messages.items()
        }

    def _receipt_key(self, command: RecordReceipt) -> _CarrierKey:
        connection = command.connection or ""
        base = self.config.profile(connection).receipt_id_base
        canonical = canonical_carrier_id(command.carrier_message_id or "", base)
        return (command.tenant, connection, canonical)

    def _message(self, tenant: str, message_id: str) -> Message:
        message = self._messages.get(message_aggregate_id(tenant, message_id))
        if message is None:
            raise NotFoundError(f"tenant {tenant!r} has no message {message_id!r}")
        message.trace_context = self._trace
        return message

    def _key_of(self, message: Message) -> bytes | None:
        return self._key_by_id(message.destination.key_id)

    def _key_by_id(self, key_id: str) -> bytes | None:
        key = self._new_keys_by_id.get(key_id)
        if key is not None:
            return key
        return self.ledger.keyring.keys_by_id([key_id]).get(key_id)

    # ---------------------------------------------------------------- results

    def rejected_from_cache(self, results: Iterable[tuple[Command, object]]) -> bool:
        """True when a lifecycle rule rejected a command on a message read from the cache.

        Another node (or an erasure run elsewhere) may have appended to the
        message since it was cached, and appends are caught by the save's
        version check, but a rejection saves nothing, so it could rest on
        outdated state unchecked.
        """
        return any(
            isinstance(outcome, LifecycleError)
            and isinstance(command, SubmitMessage | RecordAcceptance)
            and message_aggregate_id(command.tenant, command.message_id) in self.from_cache
            for command, outcome in results
        )

    def loaded_messages(self) -> list[Message]:
        """Every message this batch holds, at its state after the batch."""
        return list(self._messages.values())

    def changed_messages(self) -> list[Message]:
        """Messages with events to save."""
        return [m for m in self._messages.values() if m.pending_events]

    def _result(
        self,
        message: Message,
        before: int,
        *,
        duplicate: bool = False,
        disposition: Disposition | None = None,
    ) -> CommandResult:
        events = tuple(
            EventRef(message.id, type(e).__name__, e.originator_version)
            for e in message.pending_events
            if e.originator_version > before
        )
        retry = None
        for event in message.pending_events:
            if event.originator_version > before and isinstance(event, Message.RetryAdvised):
                retry = RetryAdvice(
                    event.retry, event.not_before, event.attempts_left, event.reason
                )
        return CommandResult(
            tenant=message.tenant,
            message_id=message.message_id,
            aggregate_id=message.id,
            version=message.version,
            status=message.outcome.status,
            events=events,
            duplicate=duplicate,
            disposition=disposition,
            retry=retry,
        )

    def schedule_expiries(self) -> None:
        """Set or clear the expiry deadlines that this batch's changes moved.

        A deadline is set when an attempt starts and cleared when the message
        becomes final; other changes leave the stored deadline as it is.
        """
        grace = self.config.expiry_grace
        for message in self.changed_messages():
            attempt = message.current_attempt
            final = message.outcome.final or attempt.outcome.final
            was_final, was_attempt = self._before.get(message.id, (False, 0))
            if final:
                if not was_final or attempt.number != was_attempt:
                    self.side.expiry_cleared.append(message.id)
            elif was_final or attempt.number != was_attempt:
                due = attempt.submitted_at + attempt.validity + grace
                self.side.expiry_set.append(ExpiryRow(message.id, attempt.number, to_micros(due)))

    # --------------------------------------------------------------- commands

    def apply(self, command: Command) -> CommandResult:
        """Apply one valid command to the in-memory messages.

        Raises:
            LedgerError: The command cannot be applied; nothing changed.
        """
        self._trace = command.trace_context
        if isinstance(command, SubmitMessage):
            return self._submit(command)
        if isinstance(command, RecordAcceptance):
            return self._accept(command)
        if isinstance(command, RecordReceipt):
            return self._receipt(command)
        if isinstance(command, RecordRawReceipt):
            return self._raw_receipt(command)
        return self._expire(command)

    def _raw_receipt(self, command: RecordRawReceipt) -> CommandResult:
        expanded = self._expanded[id(command)]
        if isinstance(expanded, LedgerError):
            if isinstance(expanded, ReceiptParseError):
                self._keep_unparsed(command, expanded)
                raise expanded.as_kept()
            raise expanded
        results: list[CommandResult | LedgerError] = []
        for receipt in expanded:
            try:
                result = self._receipt(receipt)
            except LedgerError as error:
                results.append(error)
            else:
                results.append(replace(result, warnings=self._warnings.get(id(receipt), ())))
        applied = [r for r in results if isinstance(r, CommandResult)]
        if not applied:
            first_error = results[0]
            assert isinstance(first_error, LedgerError)
            raise first_error
        if command.replaces_unparsed is not None:
            self.side.unparsed_cleared.append(command.replaces_unparsed)
        first = applied[0]
        return replace(
            first,
            retry=next((r.retry for r in applied if r.retry), None),
            receipts=tuple(results) if len(results) > 1 else (),
            warnings=tuple(w for r in applied for w in r.warnings),
        )

    def _keep_unparsed(self, command: RecordRawReceipt, error: ReceiptParseError) -> None:
        """Keep the bytes of a receipt that cannot be parsed, redacted and encrypted.

        Repeats are recognized by the digest of the redacted body, so that no
        digest of message text is stored either.
        """
        key_id, key = self.subject_key(command.tenant, UNATTRIBUTED)
        body, redactions = redact_unparsable(command.body, command.content_type)
        self.side.unparsed.append(
            UnparsedReceipt(
                receipt_id=command.replaces_unparsed or uuid.uuid4(),
                tenant=command.tenant,
                connection=command.connection,
                format=command.format or self.config.profile(command.connection).format,
                content_type=command.content_type,
                received_at=self.now_micros,
                error=error.message,
                body_sha256=hashlib.sha256(body).hexdigest(),
                raw_ciphertext=encrypt_field(key, body, RAW_FIELD),
                raw_key_id=key_id,
                metadata=json.dumps(dict(command.metadata), sort_keys=True),
                source=command.source,
                redactions=redactions,
            )
        )

    def _submit(self, command: SubmitMessage) -> CommandResult:
        checked = self._numbers[command.destination]
        key_id, key = self.subject_key(command.tenant, checked.e164)
        digest = number_digest(key, checked.e164)
        validity = command.validity or self.config.default_validity
        occurred_at = command.submitted_at or self.now
        aggregate_id = message_aggregate_id(command.tenant, command.message_id)
        message = self._messages.get(aggregate_id)
        if message is not None:
            message.trace_context = self._trace

        if message is None:
            if command.attempt != 1:
                raise LifecycleError(
                    f"tenant {command.tenant!r} has no message {command.message_id!r}; its "
                    f"first submission must be attempt 1, not {command.attempt}",
                    kind="FIRST_ATTEMPT_REQUIRED",
                    message_id=command.message_id,
                )
            destination = ProtectedNumber(
                ciphertext=encrypt_field(key, checked.e164.encode(), DESTINATION_FIELD),
                key_id=key_id,
                digest=digest,
                masked=checked.masked,
                country=checked.country,
                country_code=checked.country_code,
                unallocated=checked.unallocated,
            )
            message = Message.submit(
                tenant=command.tenant,
                message_id=command.message_id,
                destination=destination,
                sender=command.sender,
                carrier=command.carrier,
                segment_count=command.segment_count,
                validity=validity,
                request_id=command.request_id,
                occurred_at=occurred_at,
                recorded_at=self.now,
                trace_context=command.trace_context,
            )
            self._messages[aggregate_id] = message
            self.side.subject_messages.append((key_id, aggregate_id))
            return self._result(message, 0)

        before = message.version
        if command.attempt <= len(message.attempts):
            message.check_repeated_submission(
                attempt=command.attempt,
                destination_digest=digest,
                sender=command.sender,
                carrier=command.carrier,
                segment_count=command.segment_count,
                validity=validity,
            )
            return self._result(message, before, duplicate=True)
        message.resubmit(
            attempt=command.attempt,
            destination_digest=digest,
            sender=command.sender,
            carrier=command.carrier,
            segment_count=command.segment_count,
            validity=validity,
            request_id=command.request_id,
            occurred_at=occurred_at,
            recorded_at=self.now,
        )
        return self._result(message, before)

    def _accept(self, command: RecordAcceptance) -> CommandResult:
        message = self._message(command.tenant, command.message_id)
        attempt = message.attempt(command.attempt)
        profile = self.config.profile(attempt.carrier)
        acceptances = [
            Acceptance(segment, raw, canonical_carrier_id(raw, profile.submit_id_base))
            for segment, raw in command.segments
        ]
        occurred_at = command.accepted_at or self.now
        before = message.version
        appended = message.accept(
            attempt=attempt.number,
            acceptances=acceptances,
            request_id=command.request_id,
            occurred_at=occurred_at,
            recorded_at=self.now,
        )
        if not appended:
            return self._result(message, before, duplicate=True)

        valid_until = to_micros(
            attempt.submitted_at
            + attempt.validity
            + self.config.expiry_grace
            + self.config.late_receipt_window
        )
        for acceptance in acceptances:
            row = CarrierIdRow(
                tenant=message.tenant,
                connection=attempt.carrier,
                canonical_id=acceptance.canonical_id,
                aggregate_id=message.id,
                message_id=message.message_id,
                attempt=attempt.number,
                segment=acceptance.segment,
                accepted_at=to_micros(occurred_at),
                valid_until=valid_until,
            )
            key = (row.tenant, row.connection, row.canonical_id)
            if row not in self._carrier_rows[key]:
                self.side.carrier_ids.append(row)
                self._carrier_rows[key].append(row)
            self._apply_parked(message, row, attempt.submitted_at)
        return self._result(message, before)

    def _apply_parked(self, message: Message, row: CarrierIdRow, submitted_at: datetime) -> None:
        """Apply receipts that were waiting for the carrier id in ``row``."""
        key = (row.tenant, row.connection, row.canonical_id)
        waiting = self._parked.pop(key, [])
        earliest = to_micros(submitted_at - self.config.clock_skew)
        keep = []
        for parked in waiting:
            if parked.received_at < earliest:
                # Arrived before this attempt was even submitted: it belongs to an
                # earlier use of a wrapped-around id.
                keep.append(parked)
                continue
            report = json.loads(parked.report)
            raw = None
            if parked.raw_ciphertext is not None and parked.raw_key_id is not None:
                raw = self._reencrypt_parked(message, parked, report)
            outcome = _outcome_from_json(report)
            message.record_receipt(
                ReceiptReport(
                    outcome=outcome,
                    attempt=row.attempt,
                    segment=row.segment or int(report.get("segment") or 0),
                    connection=row.connection,
                    carrier_message_id=report.get("carrier_message_id"),
                    received_at=from_micros(parked.received_at),
                    parked=True,
                    fingerprint=parked.fingerprint,
                    raw=raw,
                    request_id=report.get("request_id"),
                ),
                self.now,
                self.config.retry_policy_for(message.current_attempt.carrier),
            )
            repeats = parked.duplicates + self.side.parked_duplicates.pop(parked.receipt_id, 0)
            if repeats:
                self.side.duplicates[message.id] = self.side.duplicates.get(message.id, 0) + repeats
            if parked.receipt_id in self._parked_new:
                self.side.parked = [
                    p for p in self.side.parked if p.receipt_id != parked.receipt_id
                ]
            else:
                self.side.unparked.append(parked.receipt_id)
        if keep:
            self._parked[key] = keep

    def _reencrypt_parked(
        self, message: Message, parked: ParkedReceipt, report: dict[str, object]
    ) -> RawRecord | None:
        parked_key = self._key_by_id(str(parked.raw_key_id))
        subject_key = self._key_of(message)
        if parked_key is None or subject_key is None or parked.raw_ciphertext is None:
            return None
        body = decrypt_field(parked_key, parked.raw_ciphertext, RAW_FIELD)
        return RawRecord(
            ciphertext=encrypt_field(subject_key, body, RAW_FIELD),
            key_id=message.destination.key_id,
            format=str(report.get("raw_format") or ""),
            content_type=str(report.get("raw_content_type") or ""),
            source=str(report.get("raw_source") or ""),
            redactions=tuple(str(r) for r in report.get("raw_redactions") or []),  # type: ignore[attr-defined]
        )

    def _receipt(self, command: RecordReceipt) -> CommandResult:
        outcome = normalize_report(
            Outcome(
                status=command.status,
                final=command.final,
                permanent=command.permanent,
                error_code=command.error_code or None,
                error_table=command.error_table or None,
                at=command.occurred_at or self.now,
            )
        )
        if command.message_id is not None:
            message = self._message(command.tenant, command.message_id)
            attempt = message.attempt(command.attempt)
            identity = f"message:{command.message_id}:{attempt.number}"
            return self._record(
                message,
                command,
                outcome,
                attempt.number,
                command.segment,
                attempt.carrier,
                identity,
            )

        key = self._receipt_key(command)
        row = self._match(key)
        identity = f"carrier:{key[1]}:{key[2]}"
        if row is None:
            return self._park(command, outcome, key, identity)
        message = self._messages[row.aggregate_id]
        message.trace_context = self._trace
        segment = row.segment or command.segment
        return self._record(
            message, command, outcome, row.attempt, segment, row.connection, identity
        )

    def _match(self, key: _CarrierKey) -> CarrierIdRow | None:
        """Pick the mapping of a carrier id whose validity window holds now."""
        skew = int(self.config.clock_skew.total_seconds() * 1_000_000)
        candidates = [
            r
            for r in self._carrier_rows.get(key, [])
            if r.accepted_at - skew <= self.now_micros <= r.valid_until
            and r.aggregate_id in self._messages
        ]
        if not candidates:
            return None
        # On equal times the mapping added last (in this batch) wins.
        return max(reversed(candidates), key=lambda r: r.accepted_at)

    def _record(
        self,
        message: Message,
        command: RecordReceipt,
        outcome: Outcome,
        attempt: int,
        segment: int,
        connection: str,
        identity: str,
    ) -> CommandResult:
        # The receipt's own segment (not the one resolved from the carrier id)
        # goes into its identity, so a resend matches whether or not the
        # first copy waited parked.
        fingerprint = _fingerprint(command, outcome, identity, command.segment)
        raw = None
        if command.raw is not None:
            key = self._key_of(message)
            if key is not None:
                raw = _raw_record(command.raw, key, message.destination.key_id)
        before = message.version
        result = message.record_receipt(
            ReceiptReport(
                outcome=outcome,
                attempt=attempt,
                segment=segment,
                connection=connection,
                carrier_message_id=command.carrier_message_id,
                received_at=self.now,
                parked=False,
                fingerprint=fingerprint,
                raw=raw,
                request_id=command.request_id,
            ),
            self.now,
            self.config.retry_policy_for(message.current_attempt.carrier),
        )
        if result.duplicate:
            self.side.duplicates[message.id] = self.side.duplicates.get(message.id, 0) + 1
            return self._result(message, before, duplicate=True, disposition=Disposition.DUPLICATE)
        return self._result(message, before, disposition=Disposition.RECORDED)

    def _park(
        self, command: RecordReceipt, outcome: Outcome, key: _CarrierKey, identity: str
    ) -> CommandResult:
        fingerprint = _fingerprint(command, outcome, identity, command.segment)
        repeated = next(
            (p for p in self._parked.get(key, []) if p.fingerprint == fingerprint), None
        )
        if repeated is not None:
            # Counted for the message once the waiting receipt is applied.
            dups = self.side.parked_duplicates
            dups[repeated.receipt_id] = dups.get(repeated.receipt_id, 0) + 1
            return CommandResult(
                tenant=command.tenant,
                message_id="",
                aggregate_id=None,
                version=0,
                status=None,
                duplicate=True,
                disposition=Disposition.DUPLICATE,
            )
        raw_ciphertext = None
        raw_key_id = None
        if command.raw is not None:
            raw_key_id, raw_key = self.subject_key(command.tenant, UNATTRIBUTED)
            raw_ciphertext = encrypt_field(raw_key, command.raw.body, RAW_FIELD)
        parked = ParkedReceipt(
            receipt_id=uuid.uuid4(),
            tenant=command.tenant,
            connection=key[1],
            canonical_id=key[2],
            fingerprint=fingerprint,
            received_at=self.now_micros,
            report=_outcome_to_json(outcome, command),
            raw_ciphertext=raw_ciphertext,
            raw_key_id=raw_key_id,
        )
        self.side.parked.append(parked)
        self._parked_new.add(parked.receipt_id)
        self._parked[key].append(parked)
        return CommandResult(
            tenant=command.tenant,
            message_id="",
            aggregate_id=None,
            version=0,
            status=None,
            disposition=Disposition.PARKED,
        )

    def _expire(self, command: InferExpiry) -> CommandResult:
        message = self._messages.get(command.aggregate_id)
        if message is None:
            raise NotFoundError(f"message {command.aggregate_id} does not exist")
        message.trace_context = self._trace
        before = message.version
        message.infer_expiry(
            attempt=command.attempt,
            deadline=command.deadline,
            reason=command.reason,
            recorded_at=self.now,
            policy=self.config.retry_policy_for(message.current_attempt.carrier),
        )
        return self._result(message, before)


def _fingerprint(command: RecordReceipt, outcome: Outcome, identity: str, segment: int) -> str:
    """Identity of a report: target, status, error code and source time.

    Where the source gives no time, the raw body stands in for it.
    """
    if command.source_time:
        when = command.source_time
    elif command.occurred_at is not None:
        when = format_timestamp(command.occurred_at)
    elif command.raw is not None:
        when = "body:" + hashlib.sha256(command.raw.body).hexdigest()
    else:
        when = ""
    parts = [
        identity,
        str(segment),
        outcome.status.value,
        "final" if outcome.final else "",
        outcome.error_code or "",
        when,
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


def _raw_record(raw: RawInput, key: bytes, key_id: str) -> RawRecord:
    return RawRecord(
        ciphertext=encrypt_field(key, raw.body, RAW_FIELD),
        key_id=key_id,
        format=raw.format,
        content_type=raw.content_type,
        source=raw.source,
        redactions=raw.redactions,
    )


def _outcome_to_json(outcome: Outcome, command: RecordReceipt) -> str:
    return json.dumps(
        {
            "status": outcome.status.value,
            "final": outcome.final,
            "permanent": outcome.permanent,
            "error_code": outcome.error_code,
            "error_table": outcome.error_table,
            "at": format_timestamp(outcome.at) if outcome.at else None,
            "segment": command.segment,
            "carrier_message_id": command.carrier_message_id,
            "request_id": command.request_id,
            "raw_format": command.raw.format if command.raw else None,
            "raw_content_type": command.raw.content_type if command.raw else None,
            "raw_source": command.raw.source if command.raw else None,
            "raw_redactions": list(command.raw.redactions) if command.raw else [],
        },
        separators=(",", ":"),
    )


def _outcome_from_json(data: dict[str, object]) -> Outcome:
    at = data.get("at")
    return Outcome(
        status=Status(str(data["status"])),
        final=bool(data["final"]),
        permanent=data["permanent"] if isinstance(data.get("permanent"), bool) else None,  # type: ignore[arg-type]
        error_code=str(data["error_code"]) if data.get("error_code") else None,
        error_table=str(data["error_table"]) if data.get("error_table") else None,
        at=datetime.fromisoformat(str(at).replace("Z", "+00:00")) if at else None,
    )
