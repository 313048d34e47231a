"""Periodic work beside the server: inferred expiries and request-id cleanup."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime

from ledger.application.commands import Command, InferExpiry
from ledger.application.committer import GroupCommitter
from ledger.application.ledger import Ledger
from ledger.application.results import CommandResult
from ledger.errors import LedgerError
from ledger.storage.records import from_micros, to_micros

__all__ = ["ExpirySweeper"]

logger = logging.getLogger(__name__)

_PURGE_EVERY = 60
"""Sweeps between two request-id cleanups."""


class ExpirySweeper:
    """Records inferred expiries for attempts past validity plus grace.

    Several ledger nodes may sweep at once: the expiry goes through the normal
    command path, where optimistic concurrency lets exactly one Expired event
    be appended per attempt and makes the others no-ops.

    Args:
        ledger: The ledger to read due attempts from.
        committer: The group committer the expiry commands go through.
        interval_seconds: Pause between sweeps.
        batch_size: Most attempts expired per sweep round.
    """

    def __init__(
        self,
        ledger: Ledger,
        committer: GroupCommitter,
        *,
        interval_seconds: float = 5.0,
        batch_size: int = 500,
    ) -> None:
        self.ledger = ledger
        self.committer = committer
        self.interval_seconds = interval_seconds
        self.batch_size = batch_size
        self.expired_total = 0

    async def sweep_once(self) -> int:
        """Expire every attempt due now; return how many Expired events were appended."""
        appended = 0
        while True:
            now = to_micros(datetime.now(UTC))
            due = await asyncio.to_thread(self.ledger.store.due_expiries, now, self.batch_size)
            if not due:
                return appended
            commands: list[Command] = [
                InferExpiry(row.aggregate_id, row.attempt, from_micros(row.due_at)) for row in due
            ]
            outcomes = await self.committer.execute(commands)
            expired = sum(1 for o in outcomes if isinstance(o, CommandResult) and o.events)
            appended += expired
            self.expired_total += expired
            if len(due) < self.batch_size:
                return appended

    async def run(self) -> None:
        """Sweep forever, every ``interval_seconds`` (with jitter across nodes)."""
        rounds = 0
        failing = False
        while True:
            await asyncio.sleep(self.interval_seconds * random.uniform(0.8, 1.2))
            try:
                appended = await self.sweep_once()
                if appended:
                    logger.info("inferred expiry", extra={"messages": appended})
                rounds += 1
                if rounds % _PURGE_EVERY == 0:
                    await asyncio.to_thread(self.ledger.purge_request_ids)
                if failing:
                    logger.info("expiry sweep recovered")
                    failing = False
            except LedgerError as error:
                if not failing:
                    logger.warning("expiry sweep failed; retrying", extra={"error": str(error)})
                    failing = True
