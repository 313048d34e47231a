"""A cached message may lag behind another node's writes, so no rejection is based on it."""

from __future__ import annotations

from pathlib import Path

from ledger.application.commands import RecordReceipt
from ledger.application.results import CommandResult
from ledger.domain.outcomes import Status
from ledger.runtime import build_runtime
from tests.application.test_ledger import accept, submit
from tests.conftest import make_settings


def test_retry_allowed_after_failure_on_other_node(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path)
    first, second = build_runtime(settings), build_runtime(settings)
    try:
        # The first node caches the message as accepted.
        first.ledger.execute([submit(attempt=1), accept("m1", "C1")])
        failed = RecordReceipt(
            tenant="acme",
            status=Status.FAILED,
            connection="carrier-a",
            carrier_message_id="C1",
            final=True,
            permanent=False,
        )
        second.ledger.execute([failed])

        # The first node's copy still shows accepted, which would reject a new attempt.
        outcome = first.ledger.execute([submit(attempt=2)])[0]
        assert isinstance(outcome, CommandResult), outcome
        assert outcome.events[0].type == "Resubmitted"
    finally:
        first.close()
        second.close()
