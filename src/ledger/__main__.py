"""Run the command line with ``python -m ledger``."""

from ledger.cli import main

main()
