"""Periodic signed checkpoints of the log head, beside the server."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.checkpoints import append_checkpoint
from ledger.errors import LedgerError
from ledger.storage.store import LedgerStore

__all__ = ["Checkpointer"]

logger = logging.getLogger(__name__)


class Checkpointer:
    """Appends a signed checkpoint every ``interval_seconds``.

    Several nodes may each append to their own file; a checkpoint is only a
    statement of what the log held at a moment, so duplicates do no harm.
    """

    def __init__(
        self, store: LedgerStore, key: Ed25519PrivateKey, path: Path, interval_seconds: float
    ) -> None:
        self.store = store
        self.key = key
        self.path = path
        self.interval_seconds = interval_seconds

    async def run(self) -> None:
        """Append checkpoints until cancelled; failures are logged and retried next time."""
        failing = False
        while True:
            try:
                checkpoint = await asyncio.to_thread(
                    append_checkpoint, self.store, self.key, self.path
                )
                logger.info(
                    "checkpoint written",
                    extra={"position": checkpoint.position, "events": checkpoint.events},
                )
                failing = False
            except (LedgerError, OSError) as error:
                if not failing:
                    logger.error("checkpoint failed; retrying", extra={"error": str(error)})
                failing = True
            await asyncio.sleep(self.interval_seconds)
