"""Infobip SMS delivery reports: ``{"results": [...]}`` with one report or many.

The status is keyed on ``status.id``. ``error.permanent`` is Infobip's own
flag, which the connection's ``permanent_codes`` may overrule: Infobip calls
a barred subscriber (13) temporary, the simulated profile calls it permanent.
Each report is encoded on its own; :func:`merge_reports` joins several into
one POST the way Infobip buckets them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import datetime

from ledger.simulate.formats.base import (
    CONTENT_JSON,
    Encoded,
    FormatConnection,
    ReceiptFacts,
    derived_uuid,
    floor_time,
)
from ledger.simulate.steps import RawPayload

__all__ = ["InfobipEncoder", "merge_reports"]

# (status id, name, group id, group name) per normalized status.
_STATUSES: dict[str, tuple[tuple[int, str, int, str], ...]] = {
    "ENROUTE": (
        (7, "PENDING_ENROUTE", 1, "PENDING"),
        (3, "PENDING_WAITING_DELIVERY", 1, "PENDING"),
        (26, "PENDING_ACCEPTED", 1, "PENDING"),
    ),
    "ACCEPTED": ((2, "DELIVERED_TO_OPERATOR", 3, "DELIVERED"),),
    "DELIVERED": ((5, "DELIVERED_TO_HANDSET", 3, "DELIVERED"),),
    "FAILED": ((9, "UNDELIVERABLE_NOT_DELIVERED", 2, "UNDELIVERABLE"),),
    "EXPIRED": ((15, "EXPIRED_EXPIRED", 4, "EXPIRED"),),
    "REJECTED": (
        (4, "UNDELIVERABLE_REJECTED_OPERATOR", 2, "UNDELIVERABLE"),
        (6, "REJECTED_NETWORK", 5, "REJECTED"),
    ),
    "UNKNOWN": ((29, "EXPIRED_DLR_UNKNOWN", 4, "EXPIRED"),),
}

# Infobip's own permanence flag per error id (GSM MAP numbering).
_FLAGS = {
    0: False,
    1: True,
    6: False,
    9: True,
    11: True,
    13: False,
    27: False,
    31: False,
    34: False,
}


def _done_at(value: datetime) -> str:
    """Write a UTC time as Infobip does: milliseconds and a ``+0000`` offset."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


class InfobipEncoder:
    """Infobip delivery reports; done times to the millisecond."""

    def supports(self, facts: ReceiptFacts) -> bool:
        """Tell whether an Infobip report can state ``facts``.

        DELIVERED_TO_OPERATOR is intermediate, so an acceptance cannot be final.
        """
        return not (facts.status == "ACCEPTED" and facts.final)

    def acceptance_id(self, written: str) -> str:
        """Return Infobip's message id, a UUID."""
        return derived_uuid(written)

    def encode(
        self, facts: ReceiptFacts, connection: FormatConnection, rng: random.Random
    ) -> Encoded:
        """Write ``facts`` as a POST of one report."""
        stated = floor_time(facts.occurred_at, "millisecond")
        metadata: tuple[tuple[str, str], ...] = ()
        if facts.carrier_id is None:
            message_id = derived_uuid(f"{facts.message_id}:{facts.attempt}")
            metadata = (("message_id", facts.message_id),)
        else:
            message_id = self.acceptance_id(facts.carrier_id)
        status_id, name, group_id, group_name = rng.choice(_STATUSES[facts.status])
        error_id = int(facts.error_code) if facts.error_code else 0
        status: dict[str, object] = {
            "groupId": group_id,
            "groupName": group_name,
            "id": status_id,
            "name": name,
            "description": name.replace("_", " ").title(),
        }
        error = {
            "groupId": 0 if error_id == 0 else 1,
            "groupName": "OK" if error_id == 0 else "HANDSET_ERRORS",
            "id": error_id,
            "name": "NO_ERROR" if error_id == 0 else f"EC_{error_id}",
            "description": "No Error" if error_id == 0 else "Handset error",
            "permanent": _FLAGS.get(error_id, False),
        }
        report = {
            "bulkId": f"sim-{facts.message_id}",
            "price": {"pricePerMessage": 0.01, "currency": "EUR"},
            "status": status,
            "error": error,
            "messageId": message_id,
            "doneAt": _done_at(stated),
            "smsCount": 1,
            "sentAt": _done_at(floor_time(facts.submitted_at, "millisecond")),
            "to": facts.destination.lstrip("+"),
            "mccMnc": "23410",
            "callbackData": facts.message_id,
        }
        if rng.random() < 0.2:
            # The name alone also identifies the status; the parser keys on the id.
            del status["description"]
        body = json.dumps({"results": [report]}, separators=(",", ":")).encode()
        return Encoded(
            payload=RawPayload(CONTENT_JSON, body, metadata),
            stated_time=stated,
            report_time=stated,
            error_code=facts.error_code,
            permanent=connection.permanence(facts.status, facts.error_code),
            carrier_id=None if facts.carrier_id is None else message_id,
        )


def merge_reports(bodies: Sequence[bytes]) -> bytes:
    """Join single-report POST bodies into one, in order, as Infobip batches them."""
    results = [report for body in bodies for report in json.loads(body)["results"]]
    return json.dumps({"results": results}, separators=(",", ":")).encode()
