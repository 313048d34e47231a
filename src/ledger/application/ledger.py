"""The ledger: applies batches of commands to messages in one transaction each.

:meth:`Ledger.execute` is the only write path. For a batch it

1. validates each command (an invalid one gets its error and records nothing);
2. reads, in one query each, what the batch needs: served request ids, carrier
   id mappings, parked receipts, the messages themselves (from the cache when
   present) and subject keys;
3. applies the commands in order to the in-memory messages, so that commands
   on the same message within a batch see each other;
4. saves every new event and side row in one transaction.

If another writer appended to one of the messages first (optimistic
concurrency), the batch is re-read and re-applied; callers never see that
conflict. A command that cannot be applied gets its own error and never fails
the others.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from ledger.application.batch import Batch
from ledger.application.commands import (
    Command,
    InferExpiry,
    RecordRawReceipt,
    RecordReceipt,
    SubmitMessage,
    command_fingerprint,
)
from ledger.application.keyring import Keyring
from ledger.application.results import CommandResult
from ledger.domain.identity import message_aggregate_id
from ledger.domain.message import Message, RetryPolicy
from ledger.errors import (
    FieldViolation,
    InternalError,
    InvalidArgumentError,
    LedgerError,
    NotFoundError,
    RequestIdReusedError,
    UnavailableError,
)
from ledger.privacy.numbers import check_destination
from ledger.privacy.subjects import SubjectCrypto
from ledger.receipts.ids import canonical_carrier_id
from ledger.receipts.model import CarrierProfile
from ledger.storage.records import CarrierIdRow, RequestRecord, from_micros, to_micros
from ledger.storage.store import ConflictError, LedgerStore

__all__ = ["Ledger", "LedgerConfig", "Outcome"]

logger = logging.getLogger(__name__)

Outcome = CommandResult | LedgerError
"""What one command of a batch produced: its result, or why it was not applied."""


@dataclass(frozen=True)
class LedgerConfig:
    """Rules of the ledger that operators may tune.

    Attributes:
        default_validity: Validity assumed when a Submit names none.
        expiry_grace: Wait after validity before the ledger infers expiry.
        late_receipt_window: How long after the expiry deadline a receipt may
            still match its carrier id; later receipts are parked as orphans,
            because short carrier ids wrap around.
        clock_skew: Tolerance when comparing carrier and ledger clocks.
        request_id_retention: How long a request id is remembered.
        max_raw_bytes: Largest raw receipt payload stored.
        conflict_retries: Re-applications of a batch after losing a race, before
            its commands are retried one by one.
        conflict_timeout: How long one command keeps retrying after lost races.
        cache_size: Messages kept in memory between batches.
        connections: Carrier connection profiles by name. When empty, any
            connection name is accepted with default rules.
        retry_policy: When to advise a new attempt after a final failure; a
            connection's ``retry_max_attempts`` overrides its maximum.
    """

    default_validity: timedelta = timedelta(hours=48)
    expiry_grace: timedelta = timedelta(minutes=10)
    late_receipt_window: timedelta = timedelta(days=1)
    clock_skew: timedelta = timedelta(minutes=5)
    request_id_retention: timedelta = timedelta(hours=24)
    max_raw_bytes: int = 65536
    conflict_retries: int = 8
    conflict_timeout: timedelta = timedelta(seconds=15)
    cache_size: int = 50_000
    connections: Mapping[str, CarrierProfile] = field(default_factory=dict)
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)

    def profile(self, connection: str) -> CarrierProfile:
        """Return the profile of a connection (default rules when not configured)."""
        return self.connections.get(connection) or CarrierProfile(name=connection)

    def retry_policy_for(self, connection: str) -> RetryPolicy:
        """Return the retry policy of messages whose latest attempt went to ``connection``."""
        profile = self.connections.get(connection)
        if profile is None or profile.retry_max_attempts is None:
            return self.retry_policy
        return replace(self.retry_policy, max_attempts=profile.retry_max_attempts)


class _MessageCache:
    """Messages at their last saved version, shared between batches.

    A batch takes the messages it uses out of the cache and puts them back
    after its save, so two batches running at once never mutate one object;
    the second one reads the message from storage instead, and optimistic
    concurrency settles which of them wins.
    """

    def __init__(self, capacity: int) -> None:
        self._items: OrderedDict[uuid.UUID, Message] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def take_many(self, ids: set[uuid.UUID]) -> dict[uuid.UUID, Message]:
        with self._lock:
            found = {}
            for aggregate_id in ids:
                message = self._items.pop(aggregate_id, None)
                if message is not None:
                    found[aggregate_id] = message
            return found

    def put_many(self, messages: Sequence[Message]) -> None:
        with self._lock:
            for message in messages:
                self._items[message.id] = message
                self._items.move_to_end(message.id)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)


class Ledger:
    """Applies commands to messages and answers queries about them.

    Thread-safe; :meth:`execute` is meant to be called by one group-commit
    worker at a time, but concurrent calls are correct (they retry on conflict).

    Args:
        store: Storage of events and side tables.
        crypto: Key operations under the master key.
        config: Tunable rules.
        clock: Returns the current time (aware, UTC).
    """

    def __init__(
        self,
        store: LedgerStore,
        crypto: SubjectCrypto,
        config: LedgerConfig | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.config = config or LedgerConfig()
        self.keyring = Keyring(store, crypto)
        self.clock = clock or (lambda: datetime.now(UTC))
        self._cache = _MessageCache(self.config.cache_size)

    # ----------------------------------------------------------------- writes

    def execute(self, commands: Sequence[Command]) -> list[Outcome]:
        """Apply a batch of commands; return one outcome per command, in order.

        Raises:
            UnavailableError: Storage failed; nothing of the batch was recorded.
        """
        try:
            return self._execute_with_retries(commands)
        except LedgerError:
            raise
        except Exception:
            if len(commands) == 1:
                logger.exception("command failed with a defect; nothing was recorded")
                return [InternalError("internal error; nothing was recorded")]
            # A defect triggered by one command must not fail the others.
            logger.exception("batch of %d failed with a defect; retrying one by one", len(commands))
            return [self.execute([command])[0] for command in commands]

    def _execute_with_retries(self, commands: Sequence[Command]) -> list[Outcome]:
        """Apply a batch, re-reading and re-applying it when another writer won a race.

        A batch that keeps losing is split into single commands, so that one
        hot message does not hold back the others; a single command keeps
        retrying, with growing jittered pauses, until ``conflict_timeout``.
        """
        deadline = time.monotonic() + self.config.conflict_timeout.total_seconds()
        attempt = 0
        while True:
            try:
                return self._execute_once(commands)
            except ConflictError as error:
                attempt += 1
                logger.debug("batch of %d lost a race (try %d)", len(commands), attempt)
                if len(commands) > 1 and attempt >= self.config.conflict_retries:
                    return [self._execute_with_retries([c])[0] for c in commands]
                if time.monotonic() >= deadline:
                    raise UnavailableError(
                        f"gave up after {attempt} tries: other writers kept changing the same "
                        "message; nothing was recorded, retry later"
                    ) from error
                time.sleep(random.uniform(0, min(0.002 * 2**attempt, 0.2)))

    def _execute_once(self, commands: Sequence[Command]) -> list[Outcome]:
        now = self.clock()
        outcomes: list[Outcome | None] = [None] * len(commands)
        valid: list[tuple[int, Command]] = []
        for index, command in enumerate(commands):
            error = self._validate(command)
            if error is None:
                valid.append((index, command))
            else:
                outcomes[index] = error

        # A failure below leaves the batch's messages out of the cache, since
        # they may hold events that were never saved.
        batch = Batch(self, now, [c for _, c in valid])
        served: dict[tuple[str, str], tuple[str, Outcome]] = {}
        for index, command in valid:
            outcomes[index] = self._apply_once(batch, command, served)
        if batch.rejected_from_cache((command, outcomes[index]) for index, command in valid):
            # The batch's messages are out of the cache now; the retry reads
            # them from storage and decides on their current state.
            raise ConflictError("a rejection rested on a cached message; rereading it")
        batch.schedule_expiries()
        self.store.save(batch.changed_messages(), batch.side)
        self.keyring.remember(batch.new_keys)
        self._cache.put_many(batch.loaded_messages())
        return [o for o in outcomes if o is not None]

    def _apply_once(
        self,
        batch: Batch,
        command: Command,
        served: dict[tuple[str, str], tuple[str, Outcome]],
    ) -> Outcome:
        request_key = (command.tenant, command.request_id) if command.request_id else None
        fingerprint = ""
        if request_key is not None:
            fingerprint = command_fingerprint(command)
            earlier = served.get(request_key)
            if earlier is None:
                stored = batch.requests.get(request_key)
                if stored is not None:
                    earlier = (stored.fingerprint, CommandResult.from_json(stored.result))
            if earlier is not None:
                if earlier[0] != fingerprint:
                    return RequestIdReusedError(*request_key)
                result = earlier[1]
                return result.as_replay() if isinstance(result, CommandResult) else result

        try:
            outcome: Outcome = batch.apply(command)
        except LedgerError as error:
            outcome = error

        if request_key is not None and isinstance(outcome, CommandResult):
            served[request_key] = (fingerprint, outcome)
            batch.side.requests.append(
                RequestRecord(
                    tenant=request_key[0],
                    request_id=request_key[1],
                    fingerprint=fingerprint,
                    result=outcome.to_json(),
                    created_at=to_micros(batch.now),
                )
            )
        return outcome

    def _validate(self, command: Command) -> LedgerError | None:
        violations = command.violations()
        if isinstance(command, SubmitMessage):
            checked = check_destination(command.destination)
            if isinstance(checked, FieldViolation):
                violations.append(checked)
        raw_body = None
        if isinstance(command, RecordReceipt) and command.raw is not None:
            raw_body = command.raw.body
        elif isinstance(command, RecordRawReceipt):
            raw_body = command.body
        if raw_body is not None:
            size = len(raw_body)
            if size > self.config.max_raw_bytes:
                field_name = "body" if isinstance(command, RecordRawReceipt) else "raw.body"
                violations.append(
                    FieldViolation(
                        field_name, f"is {size} bytes; the maximum is {self.config.max_raw_bytes}"
                    )
                )
        if self.config.connections:
            names = self._named_connections(command)
            for field_name, name in names:
                if name and name not in self.config.connections:
                    known = ", ".join(sorted(self.config.connections))
                    violations.append(
                        FieldViolation(
                            field_name, f"{name!r} is not a configured connection ({known})"
                        )
                    )
        return InvalidArgumentError(violations) if violations else None

    @staticmethod
    def _named_connections(command: Command) -> list[tuple[str, str | None]]:
        if isinstance(command, SubmitMessage):
            return [("carrier", command.carrier)]
        if isinstance(command, RecordReceipt) and command.carrier_message_id is not None:
            return [("target.carrier.connection", command.connection)]
        if isinstance(command, RecordRawReceipt):
            return [("connection", command.connection)]
        return []

    def expire_due(self, limit: int = 500) -> int:
        """Infer expiry for attempts past their deadline; return how many expired."""
        now = self.clock()
        due = self.store.due_expiries(to_micros(now), limit)
        commands: list[Command] = [
            InferExpiry(
                aggregate_id=row.aggregate_id,
                attempt=row.attempt,
                deadline=from_micros(row.due_at),
            )
            for row in due
        ]
        if not commands:
            return 0
        outcomes = self.execute(commands)
        return sum(1 for o in outcomes if isinstance(o, CommandResult) and o.events)

    def purge_request_ids(self) -> None:
        """Forget request ids older than the retention period."""
        cutoff = self.clock() - self.config.request_id_retention
        self.store.purge_requests(to_micros(cutoff))

    # ---------------------------------------------------------------- queries

    def get_message(self, tenant: str, message_id: str) -> tuple[Message, int]:
        """Return a message rebuilt from its events and its duplicate count.

        Raises:
            NotFoundError: The tenant has no message with this id.
        """
        aggregate_id = message_aggregate_id(tenant, message_id)
        message = self.store.load_messages([aggregate_id]).get(aggregate_id)
        if message is None:
            raise NotFoundError(f"tenant {tenant!r} has no message {message_id!r}")
        duplicates = self.store.duplicate_counts([aggregate_id]).get(aggregate_id, 0)
        return message, duplicates

    def lookup_carrier_id(
        self, tenant: str, connection: str, carrier_message_id: str
    ) -> tuple[CarrierIdRow, str]:
        """Return the latest mapping of a carrier id on a connection and its canonical form.

        Raises:
            NotFoundError: The id is not known on this connection for this tenant.
        """
        profile = self.config.profile(connection)
        canonical = canonical_carrier_id(carrier_message_id, profile.receipt_id_base)
        rows = [
            r
            for r in self.store.find_carrier_ids([canonical])
            if r.tenant == tenant and r.connection == connection
        ]
        if not rows:
            raise NotFoundError(
                f"carrier message id {carrier_message_id!r} is not known on connection "
                f"{connection!r} for tenant {tenant!r}"
            )
        return max(rows, key=lambda r: r.accepted_at), canonical
