"""Building one message's script: ids, request ids, virtual time and receipt targets."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from ledger.simulate.carriers import SimCarrier
from ledger.simulate.steps import (
    FINAL_STATUSES,
    Accept,
    Receipt,
    ReceiptStatus,
    Replay,
    Step,
    Submit,
    WaitForExpiry,
)

__all__ = ["CarrierIds", "Report", "ScriptBuilder"]

Via = Literal["carrier", "message", "any"]
"""Receipt target form: by carrier id, by message reference, or either at random."""


@dataclass
class CarrierIds:
    """Source of carrier message ids that are unique across runs.

    Each id is the run id followed by a counter in upper-case hex, all of one
    length, so no two ids share a canonical form (case and leading zeros
    ignored).
    """

    run_id: str
    issued: int = 0

    def next_id(self) -> str:
        """Return a new carrier id."""
        self.issued += 1
        return f"{self.run_id}{self.issued:08X}".upper()


@dataclass(frozen=True)
class Report:
    """Status, finality and error of a receipt, before it is addressed to a target."""

    status: ReceiptStatus
    final: bool = True
    permanent: bool | None = None
    error_code: str = ""
    error_table: str = ""

    @property
    def is_final(self) -> bool:
        """Finality after the ledger's rule: some statuses are always final."""
        return self.status in FINAL_STATUSES or (self.final and self.status != "ENROUTE")


@dataclass
class _AttemptIds:
    carrier: SimCarrier
    segment_count: int
    ids: dict[int, str] = field(default_factory=dict)


class ScriptBuilder:
    """Appends the steps of one message's script and keeps its virtual clock.

    Args:
        rng: The plan's random generator.
        message_id: The message's id.
        destination: E.164 destination.
        start: Virtual time of the first submission.
        ids: Source of carrier ids.
        request_id_rate: Share of commands that carry a request id.
    """

    def __init__(
        self,
        rng: random.Random,
        message_id: str,
        destination: str,
        start: datetime,
        ids: CarrierIds,
        request_id_rate: float = 0.8,
    ) -> None:
        self.rng = rng
        self.message_id = message_id
        self.destination = destination
        self.clock = start
        self.ids = ids
        self.request_id_rate = request_id_rate
        self.steps: list[Step] = []
        self._attempts: list[_AttemptIds] = []
        self._requests = 0

    # ------------------------------------------------------------ basics

    @property
    def attempt(self) -> int:
        """Number of the latest attempt."""
        return len(self._attempts)

    def carrier(self, attempt: int = 0) -> SimCarrier:
        """Return the carrier of ``attempt`` (0: the latest)."""
        return self._attempts[(attempt or self.attempt) - 1].carrier

    def request_id(self, *, force: bool = False) -> str:
        """Return a new request id, or an empty one for commands sent without."""
        if not force and self.rng.random() >= self.request_id_rate:
            return ""
        self._requests += 1
        return f"{self.message_id}-q{self._requests}"

    def advance(self, low: float, high: float) -> datetime:
        """Move the virtual clock forward by ``low``-``high`` seconds and return it."""
        micros = int(self.rng.uniform(low, high) * 1_000_000)
        self.clock += timedelta(microseconds=micros)
        return self.clock

    def before(self, moment: datetime, low: float, high: float) -> datetime:
        """Return a time ``low``-``high`` seconds before ``moment``."""
        micros = int(self.rng.uniform(low, high) * 1_000_000)
        return moment - timedelta(microseconds=micros)

    # ----------------------------------------------------------- commands

    def submit(
        self,
        carrier: SimCarrier,
        *,
        segments: int = 1,
        validity_seconds: int = 86_400,
        expires_in_run: bool = False,
    ) -> int:
        """Append the Submit of the next attempt and return its number."""
        if self._attempts:
            self.advance(1, 60)
        self._attempts.append(_AttemptIds(carrier, segments))
        self.steps.append(
            Submit(
                attempt=self.attempt,
                carrier=carrier.name,
                destination=self.destination,
                segment_count=segments,
                validity_seconds=validity_seconds,
                submitted_at=self.clock,
                expires_in_run=expires_in_run,
                request_id=self.request_id(),
            )
        )
        return self.attempt

    def allocate_ids(self, *, whole: bool | None = None) -> dict[int, str]:
        """Choose the latest attempt's carrier ids without sending the acceptance yet.

        Args:
            whole: One id for the whole message (segment 0) instead of one per
                segment; None picks at random. A single-part message gets
                segment 0 or 1 at random either way.
        """
        current = self._attempts[-1]
        if whole is None:
            whole = self.rng.random() < (0.5 if current.segment_count == 1 else 0.3)
        if whole:
            current.ids = {0: self.ids.next_id()}
        else:
            current.ids = {n: self.ids.next_id() for n in range(1, current.segment_count + 1)}
        return current.ids

    def acceptance_time(self) -> datetime:
        """Advance the clock by the latest attempt's acceptance latency and return it."""
        return self.advance(*self._attempts[-1].carrier.accept_latency_seconds)

    def accept(self, *, written: dict[int, str] | None = None, at: datetime | None = None) -> None:
        """Append the acceptance of the latest attempt with its allocated ids.

        Args:
            written: Ids as the acceptance writes them, when they differ in
                form from the allocated ones.
            at: Acceptance time, for an acceptance that reaches the ledger
                after receipts that happened later; by default the clock
                advances by the carrier's acceptance latency.
        """
        current = self._attempts[-1]
        if not current.ids:
            self.allocate_ids()
        self.steps.append(
            Accept(
                attempt=self.attempt,
                segments=tuple(sorted((written or current.ids).items())),
                accepted_at=at or self.acceptance_time(),
                request_id=self.request_id(),
            )
        )

    def receipt(
        self,
        report: Report,
        *,
        segment: int = 0,
        attempt: int = 0,
        via: Via = "any",
        at: datetime | None = None,
        written_id: str | None = None,
    ) -> Receipt:
        """Append a receipt for ``segment`` of ``attempt`` (0: whole message, latest attempt).

        Args:
            report: Status, finality and error of the receipt.
            segment: Target segment; 0 for every segment.
            attempt: Target attempt; 0 for the latest.
            via: Whether to name the carrier id or the message.
            at: Source time; by default the clock advances by the carrier's
                delivery latency (finals) or a few seconds (intermediates).
            written_id: The carrier id as this receipt writes it.
        """
        number = attempt or self.attempt
        target = self._attempts[number - 1]
        if at is None:
            if report.is_final:
                at = self.advance(*target.carrier.delivery_latency_seconds)
            else:
                at = self.advance(0.5, 5)
        carrier_id = self._carrier_id_for(target, segment)
        if via == "any":
            via = "carrier" if carrier_id is not None and self.rng.random() < 0.5 else "message"
        if via == "carrier":
            if carrier_id is None:
                raise ValueError(
                    f"no carrier id covers segment {segment} of attempt {number}; "
                    "send the receipt by message reference"
                )
            receipt = Receipt(
                status=report.status,
                occurred_at=at,
                final=report.final,
                permanent=report.permanent,
                error_code=report.error_code,
                error_table=report.error_table,
                connection=target.carrier.name,
                carrier_message_id=written_id or carrier_id,
                request_id=self.request_id(),
            )
        else:
            named_attempt = 0 if number == self.attempt and self.rng.random() < 0.5 else number
            receipt = Receipt(
                status=report.status,
                occurred_at=at,
                final=report.final,
                permanent=report.permanent,
                error_code=report.error_code,
                error_table=report.error_table,
                attempt=named_attempt,
                segment=segment,
                request_id=self.request_id(),
            )
        self.steps.append(receipt)
        return receipt

    @staticmethod
    def _carrier_id_for(target: _AttemptIds, segment: int) -> str | None:
        if 0 in target.ids:
            # One id covers every segment, so it can only name all of them.
            return target.ids[0] if segment == 0 or target.segment_count == 1 else None
        if segment == 0 and target.segment_count == 1:
            return target.ids.get(1)
        return target.ids.get(segment)

    def resend(self, receipt: Receipt) -> None:
        """Append an exact resend of ``receipt``, as a new call (own request id or none)."""
        self.steps.append(replace(receipt, request_id=self.request_id()))

    def replay(self, index: int) -> None:
        """Append a resend of step ``index`` with its request id."""
        self.steps.append(Replay(index))

    def wait_for_expiry(self) -> None:
        """Append a pause until the server inferred expiry."""
        self.steps.append(WaitForExpiry())

    # ------------------------------------------------------------ reports

    def carrier_final(self, carrier: SimCarrier | None = None) -> Report:
        """Draw a final outcome from a carrier's delivery rate and failure mix."""
        carrier = carrier or self.carrier()
        if self.rng.random() < carrier.delivery_rate:
            return Report("DELIVERED")
        return self.failure(carrier, permanent=self.rng.random() < carrier.permanent_share)

    def failure(self, carrier: SimCarrier | None = None, *, permanent: bool) -> Report:
        """Return a FAILED report with one of the carrier's codes of that kind."""
        carrier = carrier or self.carrier()
        codes = carrier.permanent_codes if permanent else carrier.transient_codes
        return Report(
            "FAILED",
            permanent=permanent,
            error_code=self.rng.choice(codes),
            error_table=carrier.error_table,
        )

    def coded(self, status: ReceiptStatus, carrier: SimCarrier | None = None) -> Report:
        """Return a final report of ``status`` with one of the carrier's transient codes."""
        carrier = carrier or self.carrier()
        return Report(
            status,
            error_code=self.rng.choice(carrier.transient_codes),
            error_table=carrier.error_table,
        )
