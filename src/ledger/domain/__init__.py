"""The message aggregate, its events and the lifecycle rules; no I/O."""
