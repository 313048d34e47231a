"""Rewriting a plan so that its receipts travel in carrier formats.

Every receipt on a format connection gets a raw payload. Its normalized
fields become what the payload states: the time at the format's precision,
the error code as written, the permanence the profile gives that code, and
the carrier id in the form the acceptance writes it. Acceptances on those
connections write ids the way the carrier does (decimal numbers, SIDs,
UUIDs). The ground truth then runs on the rewritten plan, so the ledger must
read every payload back exactly.

A receipt that names its message rather than a carrier id is rewritten to
name the id that an earlier acceptance gave its attempt and part, as a
carrier's receipt would. Without such an acceptance it names the message
through metadata ``message_id``, which only works for the latest attempt.
Receipts that no payload of the connection's format can state (a final
UNKNOWN on an SMPP route, an expiry on Twilio) stay normalized.

Two quirks are added on top of the plan: an ACCEPTD receipt before some
deliveries on SMPP routes, and byte-identical resends of some payloads.
Infobip reports lose their request id, as webhook deliveries have none,
unless a later step resends them with it; the driver can then join them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from ledger.simulate.formats import ENCODERS, JOINED_FAMILIES, SEGMENT_FAMILIES, SMPP_FAMILIES
from ledger.simulate.formats.base import FormatConnection, ReceiptFacts, seeded_rng
from ledger.simulate.steps import (
    Accept,
    MessagePlan,
    Receipt,
    Replay,
    Step,
    Submit,
)
from ledger.simulate.truth import canonical_id

__all__ = ["EncodedReceipt", "EncodedRun", "EncodingStats", "encode_plans"]

# Shares of the quirks added on top of the plan.
_ACCEPTD_BEFORE_DELIVERY = 0.25
_TRANSPORT_RESEND = 0.03


@dataclass
class EncodingStats:
    """Counts of the changes a plan rewrite made.

    Attributes:
        raw: Receipts sent as raw payloads, by connection.
        normalized: Receipts on format connections left normalized because
            no payload of the format can state them, by connection.
        by_reference: Raw receipts that name their message through metadata.
        acceptances_added: ACCEPTD receipts added before deliveries.
        resends_added: Byte-identical resends added.
    """

    raw: Counter[str] = field(default_factory=Counter)
    normalized: Counter[str] = field(default_factory=Counter)
    by_reference: int = 0
    acceptances_added: int = 0
    resends_added: int = 0


@dataclass(frozen=True)
class EncodedReceipt:
    """A receipt as sent, with what its payload must read back as.

    Attributes:
        connection: The connection it was encoded for.
        receipt: The rewritten receipt step, with its payload.
        stated_time: The completion time its payload states; None for none.
    """

    connection: str
    receipt: Receipt
    stated_time: datetime | None


@dataclass(frozen=True)
class EncodedRun:
    """A rewritten plan.

    Attributes:
        plans: The scripts, with raw payloads.
        receipts: Every raw receipt, once per distinct receipt step.
        stats: Counts of what the rewrite did.
    """

    plans: list[MessagePlan]
    receipts: list[EncodedReceipt]
    stats: EncodingStats


@dataclass
class _Attempt:
    carrier: str
    submitted_at: datetime
    segment_count: int
    destination: str
    accepted: dict[int, str] = field(default_factory=dict)


def _covering_id(attempt: _Attempt, segment: int) -> str | None:
    """Return the accepted id that names exactly ``segment`` of ``attempt`` (0: all)."""
    ids = attempt.accepted
    if 0 in ids:
        return ids[0] if segment == 0 or attempt.segment_count == 1 else None
    if segment == 0 and attempt.segment_count == 1:
        return ids.get(1)
    return ids.get(segment)


class _PlanEncoder:
    """Rewrites the steps of one script."""

    def __init__(
        self,
        plan: MessagePlan,
        connections: Mapping[str, FormatConnection],
        seed: int,
        stats: EncodingStats,
        records: list[EncodedReceipt],
    ) -> None:
        self.plan = plan
        self.connections = connections
        self.stats = stats
        self.records = records
        self.rng = seeded_rng(seed, plan.message_id, "quirks")
        self.attempts: list[_Attempt] = []
        # Attempt and part of each planned carrier id, from every acceptance
        # of the script, so that a receipt before its acceptance finds them.
        self.id_targets: dict[tuple[str, str], tuple[int, int]] = {}
        number, carrier = 0, ""
        for step in plan.steps:
            if isinstance(step, Submit):
                number = step.attempt
                carrier = step.carrier
            elif isinstance(step, Accept):
                for segment, written in step.segments:
                    self.id_targets[(carrier, canonical_id(written))] = (number, segment)

    def encode(self) -> MessagePlan:
        steps: list[Step] = []
        positions: dict[int, int] = {}
        replayed = {step.index for step in self.plan.steps if isinstance(step, Replay)}
        for index, step in enumerate(self.plan.steps):
            if isinstance(step, Submit):
                self.attempts.append(
                    _Attempt(step.carrier, step.submitted_at, step.segment_count, step.destination)
                )
            elif isinstance(step, Accept):
                step = self._accept(step)
            elif isinstance(step, Receipt):
                encoded = self._receipt(step)
                if index not in replayed and self._joinable(encoded):
                    # Webhook reports carry no request id of the sender's, and
                    # only such reports can share a payload.
                    encoded = replace(encoded, request_id="")
                if self._wants_acceptance(step, encoded):
                    steps.append(self._acceptance_before(step))
                positions[index] = len(steps)
                steps.append(encoded)
                if encoded.raw is not None and self.rng.random() < _TRANSPORT_RESEND:
                    steps.append(replace(encoded, request_id=""))
                    self.stats.resends_added += 1
                continue
            elif isinstance(step, Replay):
                step = Replay(positions[step.index])
            positions[index] = len(steps)
            steps.append(step)
        return replace(self.plan, steps=tuple(steps))

    def _accept(self, step: Accept) -> Accept:
        attempt = self.attempts[step.attempt - 1]
        attempt.accepted.update(step.segments)
        connection = self.connections.get(attempt.carrier)
        if connection is None:
            return step
        encoder = ENCODERS[connection.family]
        written = tuple((segment, encoder.acceptance_id(i)) for segment, i in step.segments)
        return replace(step, segments=written)

    def _joinable(self, encoded: Receipt) -> bool:
        """Tell whether ``encoded`` is a report that a batch may join with others."""
        connection = self.connections.get(encoded.connection)
        return (
            connection is not None
            and connection.family in JOINED_FAMILIES
            and encoded.raw is not None
            and not encoded.raw.metadata
        )

    def _wants_acceptance(self, planned: Receipt, encoded: Receipt) -> bool:
        connection = self.connections.get(encoded.connection)
        return (
            connection is not None
            and connection.family in SMPP_FAMILIES
            and encoded.raw is not None
            and encoded.by_carrier_id
            and planned.status == "DELIVERED"
            and self.rng.random() < _ACCEPTD_BEFORE_DELIVERY
        )

    def _acceptance_before(self, planned: Receipt) -> Receipt:
        """Return an ACCEPTD receipt for the same id, a few seconds before ``planned``."""
        earlier = planned.occurred_at - timedelta(seconds=self.rng.uniform(1, 20))
        # The same target as the delivery, so that it gets the same carrier id.
        acceptance = Receipt(
            status="ACCEPTED",
            occurred_at=earlier,
            connection=planned.connection,
            carrier_message_id=planned.carrier_message_id,
            attempt=planned.attempt,
            segment=planned.segment,
        )
        self.stats.acceptances_added += 1
        return self._receipt(acceptance)

    def _receipt(self, receipt: Receipt) -> Receipt:
        """Return ``receipt`` with a payload, or unchanged where none can state it."""
        target: tuple[int, int] | None = None
        if receipt.by_carrier_id:
            key = (receipt.connection, canonical_id(receipt.carrier_message_id))
            target = self.id_targets.get(key, (len(self.attempts), 0))
            number = target[0]
            attempt = self.attempts[number - 1]
            written: str | None = receipt.carrier_message_id
            segment = 0
        else:
            number = receipt.attempt or len(self.attempts)
            attempt = self.attempts[number - 1]
            written = _covering_id(attempt, receipt.segment)
            segment = 0 if written is not None else receipt.segment
        connection = self.connections.get(attempt.carrier)
        if connection is None:
            return receipt
        if written is None and (
            number != len(self.attempts) or (segment and connection.family not in SEGMENT_FAMILIES)
        ):
            # Metadata names the message's latest attempt and no part.
            return self._normalized(receipt, connection, None)
        facts = ReceiptFacts(
            message_id=self.plan.message_id,
            attempt=number,
            status=receipt.status,
            final=receipt.is_final,
            error_code=receipt.error_code,
            occurred_at=receipt.occurred_at,
            carrier_id=written,
            segment=segment,
            destination=attempt.destination,
            submitted_at=attempt.submitted_at,
        )
        encoder = ENCODERS[connection.family]
        if not encoder.supports(facts):
            return self._normalized(receipt, connection, target)
        content = (self.plan.message_id, number, receipt.status, receipt.is_final)
        rng = seeded_rng(*content, receipt.error_code, receipt.occurred_at, written, segment)
        encoded = encoder.encode(facts, connection, rng)
        rewritten = replace(
            receipt,
            occurred_at=encoded.report_time,
            permanent=encoded.permanent,
            error_code=encoded.error_code,
            error_table="",
            connection=connection.name,
            carrier_message_id=encoded.carrier_id or "",
            attempt=0 if encoded.carrier_id else number,
            segment=0 if encoded.carrier_id else segment,
            raw=encoded.payload,
            time_stated=encoded.stated_time is not None,
        )
        self.stats.raw[connection.name] += 1
        if encoded.carrier_id is None:
            self.stats.by_reference += 1
        self.records.append(EncodedReceipt(connection.name, rewritten, encoded.stated_time))
        return rewritten

    def _normalized(
        self, receipt: Receipt, connection: FormatConnection, target: tuple[int, int] | None
    ) -> Receipt:
        """Return a receipt for ``RecordReceipt``; one by carrier id names its message instead.

        The connection's acceptances write ids in the carrier's form, and on
        a connection whose receipts write ids in another base than its
        acceptances no single form of the id matches. So a receipt by
        carrier id names the attempt and part (``target``) its id was
        accepted for. The ledger and the ground truth both record such a
        receipt at once, without parking it.
        """
        self.stats.normalized[connection.name] += 1
        if target is None:
            return receipt
        number, segment = target
        return replace(
            receipt, connection="", carrier_message_id="", attempt=number, segment=segment
        )


def encode_plans(
    plans: Sequence[MessagePlan],
    connections: Mapping[str, FormatConnection],
    seed: int,
) -> EncodedRun:
    """Rewrite ``plans`` so that receipts on ``connections`` travel as raw payloads.

    The result depends only on the plans, the connections and ``seed``.
    """
    stats = EncodingStats()
    records: list[EncodedReceipt] = []
    encoded = [_PlanEncoder(plan, connections, seed, stats, records).encode() for plan in plans]
    return EncodedRun(encoded, records, stats)
