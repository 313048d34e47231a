"""AWS End User Messaging SMS events, bare or inside an SNS notification, and SNS logs.

The event's ``messageStatus`` is its error code for every outcome but
success, so an expiry always reads ``TTL_EXPIRED``, a rejection
``PROTECT_BLOCKED`` and an unknown outcome ``UNKNOWN``. ``isFinal`` decides
finality, which lets an acceptance (``TEXT_SUCCESSFUL``) be final. A final
acceptance may also arrive as an SNS delivery status log, whose completion
time is its notification timestamp plus the device acknowledgement delay.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

from ledger.simulate.formats.base import (
    CONTENT_JSON,
    Encoded,
    FormatConnection,
    ReceiptFacts,
    derived_uuid,
    floor_time,
    seeded_rng,
)
from ledger.simulate.steps import RawPayload

__all__ = ["AWS_CODES", "AwsEncoder"]

# Codes that the status itself fixes, and whether a retry fails again.
AWS_CODES: dict[str, bool | None] = {
    "TTL_EXPIRED": False,
    "PROTECT_BLOCKED": True,
    "UNKNOWN": None,
}
_FIXED_CODES = {"EXPIRED": "TTL_EXPIRED", "REJECTED": "PROTECT_BLOCKED", "UNKNOWN": "UNKNOWN"}
_TOPIC = "arn:aws:sns:eu-west-1:111122223333:sms-events"


def _millis(value: datetime) -> int:
    return int(value.timestamp() * 1000)


class AwsEncoder:
    """AWS SMS events and SNS delivery logs; times to the millisecond."""

    def supports(self, facts: ReceiptFacts) -> bool:
        """Tell whether an AWS event can state ``facts``: every status has one."""
        return True

    def acceptance_id(self, written: str) -> str:
        """Return the message id AWS assigns, a UUID."""
        return derived_uuid(written)

    def encode(
        self, facts: ReceiptFacts, connection: FormatConnection, rng: random.Random
    ) -> Encoded:
        """Write ``facts`` as an event, an SNS notification of one, or an SNS log."""
        stated = floor_time(facts.occurred_at, "millisecond")
        metadata: tuple[tuple[str, str], ...] = ()
        if facts.carrier_id is None:
            message_id = derived_uuid(f"{facts.message_id}:{facts.attempt}")
            metadata = (("message_id", facts.message_id),)
        else:
            message_id = self.acceptance_id(facts.carrier_id)
        code = _FIXED_CODES.get(facts.status, facts.error_code)
        # The shape is chosen per message and status, so that a resend and
        # the report it repeats state their time the same way.
        shape = seeded_rng(facts.message_id, facts.attempt, facts.status, "aws")
        if facts.status == "ACCEPTED" and facts.final and shape.random() < 0.5:
            body = self._sns_log(facts, message_id, stated, shape)
            code = ""
        else:
            body = self._event(facts, message_id, code, stated, rng)
        return Encoded(
            payload=RawPayload(CONTENT_JSON, body, metadata),
            stated_time=stated,
            report_time=stated,
            error_code=code,
            permanent=connection.permanence(facts.status, code),
            carrier_id=None if facts.carrier_id is None else message_id,
        )

    @staticmethod
    def _event(
        facts: ReceiptFacts, message_id: str, code: str, stated: datetime, rng: random.Random
    ) -> bytes:
        if facts.status == "ENROUTE":
            word = rng.choice(("QUEUED", "PENDING"))
        elif facts.status == "ACCEPTED":
            word = "SUCCESSFUL"
        elif facts.status == "DELIVERED":
            word = "DELIVERED"
        else:
            word = code
        event = {
            "eventType": f"TEXT_{word}",
            "eventVersion": "1.0",
            "eventTimestamp": _millis(stated),
            "isFinal": facts.final,
            "originationPhoneNumber": "+12025550100",
            "destinationPhoneNumber": facts.destination,
            "isoCountryCode": "GB",
            "isInternationalSend": True,
            "messageId": message_id,
            "messageRequestTimestamp": _millis(facts.submitted_at),
            "messageEncoding": "GSM",
            "messageType": "TRANSACTIONAL",
            "messageStatus": word,
            "messageStatusDescription": f"Message is {word.lower().replace('_', ' ')}",
            "totalMessageParts": 1,
            "totalMessagePrice": 0.00581,
            "totalCarrierFee": 0.0,
        }
        text = json.dumps(event, separators=(",", ":"))
        if rng.random() >= 0.4:
            return text.encode()
        notification = {
            "Type": "Notification",
            "MessageId": derived_uuid(f"sns:{message_id}:{word}:{_millis(stated)}"),
            "TopicArn": _TOPIC,
            "Message": text,
            "Timestamp": stated.isoformat().replace("+00:00", "Z"),
            "SignatureVersion": "1",
            "Signature": "c2ltdWxhdGVk",
            "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService.pem",
        }
        return json.dumps(notification, separators=(",", ":")).encode()

    @staticmethod
    def _sns_log(
        facts: ReceiptFacts, message_id: str, stated: datetime, shape: random.Random
    ) -> bytes:
        dwell = shape.randint(200, 4000)
        sent = stated - timedelta(milliseconds=dwell)
        millis = f"{sent.microsecond // 1000:03d}"
        log = {
            "notification": {
                "messageId": message_id,
                "timestamp": sent.strftime("%Y-%m-%d %H:%M:%S.") + millis,
            },
            "delivery": {
                "phoneCarrier": "Simulated Mobile",
                "mnc": 10,
                "mcc": 234,
                "destination": facts.destination,
                "priceInUSD": 0.00645,
                "smsType": "Transactional",
                "providerResponse": "Message has been accepted by phone carrier",
                "dwellTimeMs": dwell // 2,
                "dwellTimeMsUntilDeviceAck": dwell,
            },
            "status": "SUCCESS",
        }
        return json.dumps(log, separators=(",", ":")).encode()
