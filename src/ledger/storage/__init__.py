"""Persistence of the ledger: the event log (eventsourcing) and its side tables."""
