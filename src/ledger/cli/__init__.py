"""The ``smsledger`` command line."""

from __future__ import annotations

import click

from ledger.cli.audit import history_command, verify_command
from ledger.cli.checkpoint import checkpoint_group
from ledger.cli.common import LedgerGroup
from ledger.cli.erase import erase_command
from ledger.cli.keys import keys_group, tokens_group
from ledger.cli.migrate import migrate_command
from ledger.cli.projections import project_command, projections_group, report_command
from ledger.cli.receipts import receipts_group
from ledger.cli.relay import relay_command
from ledger.cli.serve import serve_command
from ledger.cli.simulate import simulate_command
from ledger.cli.webhooks import webhooks_group

__all__ = ["main"]


@click.group(cls=LedgerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sms-delivery-ledger")
def main() -> None:
    """SMS Delivery Ledger: an event-sourced record of what happened to every SMS."""


main.add_command(serve_command)
main.add_command(migrate_command)
main.add_command(history_command)
main.add_command(verify_command)
main.add_command(checkpoint_group)
main.add_command(simulate_command)
main.add_command(receipts_group)
main.add_command(relay_command)
main.add_command(project_command)
main.add_command(projections_group)
main.add_command(report_command)
main.add_command(webhooks_group)
main.add_command(erase_command)
main.add_command(keys_group)
main.add_command(tokens_group)
