"""Conversions between the ledger's own types and the ledger.v1 protobuf messages."""
