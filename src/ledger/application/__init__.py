"""Application layer: commands, the ledger that applies them, and group commit."""
