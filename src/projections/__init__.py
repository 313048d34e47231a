"""Read models of the ledger: current state, latency and carrier performance.

Three projections follow the ledger's event log and keep tables beside it in
the same database. Each stores its log position in the transaction that writes
its rows, so every event takes effect exactly once, and each can be rebuilt
from the log into shadow tables that are swapped in atomically.
See ``docs/projections.md`` for the tables and the counting rules.
"""

from __future__ import annotations
