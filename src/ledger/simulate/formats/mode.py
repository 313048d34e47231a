"""The simulator's real-format mode: carriers, plan rewrite, server check and summary."""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.simulate.carriers import SimCarrier
from ledger.simulate.connections import connections_by_name
from ledger.simulate.formats import JOINED_FAMILIES
from ledger.simulate.formats.base import FormatConnection
from ledger.simulate.formats.encode import EncodingStats, encode_plans
from ledger.simulate.formats.probe import check_connections
from ledger.simulate.steps import MessagePlan

__all__ = ["FormatsMode"]


@dataclass
class FormatsMode:
    """A run whose carriers report receipts in their own formats.

    Attributes:
        seed: Seed of the plan; the payload variations follow from it.
        connections: The simulated format connections by name.
        stats: What the plan rewrite did, once :meth:`rewrite` ran.
    """

    seed: int
    connections: dict[str, FormatConnection] = field(default_factory=connections_by_name)
    stats: EncodingStats | None = None

    @property
    def carriers(self) -> list[SimCarrier]:
        """The simulated carriers, one per format connection."""
        return [connection.carrier for connection in self.connections.values()]

    @property
    def joined_report_connections(self) -> frozenset[str]:
        """Connections whose reports a batch joins into one payload (Infobip)."""
        return frozenset(c.name for c in self.connections.values() if c.family in JOINED_FAMILIES)

    def rewrite(self, plans: list[MessagePlan]) -> list[MessagePlan]:
        """Give the receipts of ``plans`` carrier-format payloads."""
        run = encode_plans(plans, self.connections, self.seed)
        self.stats = run.stats
        return run.plans

    async def check(self, target: str) -> None:
        """Refuse a server that reads the connections differently.

        Raises:
            UnknownConnectionsError: The server lacks or differs in some profile.
            ConnectionError: The server cannot be reached.
        """
        await check_connections(target, self.connections)

    def summary(self) -> str:
        """Describe the rewrite in one paragraph for the console."""
        if self.stats is None:
            return "receipts not rewritten yet"
        stats = self.stats
        raw = sum(stats.raw.values())
        per_connection = ", ".join(f"{name} {count}" for name, count in stats.raw.most_common())
        normalized = sum(stats.normalized.values())
        return (
            f"{raw} receipts as raw payloads ({per_connection}); {stats.by_reference} of them "
            f"name their message through metadata; {normalized} sent normalized because their "
            f"format has no such status or cannot name the target; added "
            f"{stats.acceptances_added} ACCEPTD receipts before deliveries and "
            f"{stats.resends_added} byte-identical resends"
        )
