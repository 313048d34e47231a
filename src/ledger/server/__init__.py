"""The gRPC server of the ledger."""
