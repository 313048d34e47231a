"""Parsing and normalization of carrier delivery receipts."""
