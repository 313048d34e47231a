"""Inputs, outputs and shared helpers of the receipt encoders.

An encoder writes one planned receipt in a carrier's own format. It returns
the payload together with what the ledger's parser must read back from it:
the error code as written, the permanence the connection's profile gives that
code, and the instant the payload states. The simulator's ground truth uses
those values, so a payload that the parser misreads shows up as a mismatch.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlencode

from ledger.simulate.carriers import SimCarrier
from ledger.simulate.steps import RawPayload

__all__ = [
    "CONTENT_FORM",
    "CONTENT_JSON",
    "Encoded",
    "FormatConnection",
    "ReceiptEncoder",
    "ReceiptFacts",
    "derived_hex",
    "derived_uuid",
    "floor_time",
    "form_body",
    "seeded_rng",
    "stand_in_time",
]

CONTENT_FORM = "application/x-www-form-urlencoded"
CONTENT_JSON = "application/json"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ReceiptFacts:
    """A planned receipt, as an encoder needs it.

    Attributes:
        message_id: The message's id.
        attempt: The attempt the receipt belongs to.
        status: Normalized status, such as ``DELIVERED``.
        final: Finality after the ledger's rule.
        error_code: The planned error code in the connection's vocabulary;
            empty for none.
        occurred_at: The planned time of the status, before the format's
            precision cuts it.
        carrier_id: The carrier id as the plan writes it; None for a receipt
            without one, which names its message through metadata.
        segment: Part number the receipt names; 0 for none.
        destination: E.164 number of the recipient.
        submitted_at: When the attempt was submitted.
    """

    message_id: str
    attempt: int
    status: str
    final: bool
    error_code: str
    occurred_at: datetime
    carrier_id: str | None
    segment: int
    destination: str
    submitted_at: datetime


@dataclass(frozen=True)
class Encoded:
    """A receipt written in a carrier format, with what the parser must read back.

    Attributes:
        payload: The bytes to send and their transport facts.
        stated_time: The completion time the payload states, at the format's
            precision, which the parser returns for a final status; None when
            the payload states none.
        report_time: The time the ground truth records for the receipt. The
            ledger recognizes a resend by the payload's own time text (a
            done date, a sequence number, a report time) or, without one, by
            the body's digest. So this time differs exactly where that text
            or digest does.
        error_code: The error code as the payload writes it; empty for none.
        permanent: The permanence the ledger must give the receipt.
        carrier_id: The id in a form the acceptance's id matches as text;
            None when the payload carries no id.
    """

    payload: RawPayload
    stated_time: datetime | None
    report_time: datetime
    error_code: str
    permanent: bool | None
    carrier_id: str | None


@dataclass(frozen=True)
class FormatConnection:
    """A simulated carrier connection that reports receipts in one format.

    Attributes:
        carrier: Traffic share, outcome rates and error codes of the connection.
        family: Name of the encoder that writes its receipts.
        profile: The connection's table in the server's connections file.
        extra_codes: Permanence of codes that some payload variants write
            instead of the planned ones, such as SMPP command status names.
    """

    carrier: SimCarrier
    family: str
    profile: Mapping[str, Any]
    extra_codes: Mapping[str, bool | None] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Connection name."""
        return self.carrier.name

    def permanence(self, status: str, code: str) -> bool | None:
        """Return the permanence the connection's profile gives ``code`` for ``status``.

        An expiry is always transient. Only failures and rejections are
        classified; every other status has none.
        """
        if status == "EXPIRED":
            return False
        if status not in ("FAILED", "REJECTED") or not code:
            return None
        if code in self.carrier.permanent_codes:
            return True
        if code in self.carrier.transient_codes:
            return False
        return self.extra_codes.get(code)


class ReceiptEncoder(Protocol):
    """Writes receipts of one format family."""

    def supports(self, facts: ReceiptFacts) -> bool:
        """Tell whether the format can state ``facts`` exactly."""
        ...

    def acceptance_id(self, written: str) -> str:
        """Return the id that the carrier's acceptance writes for a planned id."""
        ...

    def encode(
        self, facts: ReceiptFacts, connection: FormatConnection, rng: random.Random
    ) -> Encoded:
        """Write ``facts`` as a payload of this format."""
        ...


def seeded_rng(*parts: object) -> random.Random:
    """Return a generator seeded by ``parts``, the same in every process.

    Python's ``hash`` of a string changes between processes, so the seed is
    a SHA-256 digest of the parts' text.
    """
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def derived_hex(written_id: str, length: int) -> str:
    """Return ``length`` lower-case hex digits derived from a planned carrier id.

    Providers that assign ids of their own shape (UUIDs, SIDs) get them from
    this, so that an acceptance and a receipt for the same planned id agree.
    The id's canonical form (upper case, leading zeros removed) is used, so
    the plan's spelling variants of one id give the same digits.
    """
    canonical = written_id.strip().upper().lstrip("0") or "0"
    digits = hashlib.blake2b(canonical.encode(), digest_size=32).hexdigest()
    return digits[:length]


def derived_uuid(written_id: str) -> str:
    """Return a UUID-shaped id derived from a planned carrier id."""
    digits = derived_hex(written_id, 32)
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def floor_time(value: datetime, unit: str) -> datetime:
    """Cut ``value`` down to a ``minute``, ``second`` or ``millisecond``."""
    if unit == "minute":
        return value.replace(second=0, microsecond=0)
    if unit == "second":
        return value.replace(microsecond=0)
    if unit == "millisecond":
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    raise ValueError(f"unknown time unit {unit!r}; use minute, second or millisecond")


def stand_in_time(body: bytes) -> datetime:
    """Return the time that stands for a payload that states no time.

    The ledger recognizes a resend of such a payload by the body's SHA-256
    digest, so the ground truth uses a time derived from the same digest. Two
    receipts get the same time exactly when their bodies are equal.
    """
    digest = hashlib.sha256(body).digest()
    return _EPOCH + timedelta(microseconds=int.from_bytes(digest[:6], "big"))


def form_body(pairs: Sequence[tuple[str, str]], rng: random.Random, shuffle: float) -> bytes:
    """URL-encode ``pairs``, in random order with probability ``shuffle``."""
    ordered = list(pairs)
    if rng.random() < shuffle:
        rng.shuffle(ordered)
    return urlencode(ordered).encode("ascii")
