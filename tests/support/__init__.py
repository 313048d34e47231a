"""Test support: real servers for the tests, and builders of ledger runtimes."""
