"""Property: a raw receipt is never silently lost on the ledger's raw-receipt path.

Each body sent with RecordRawReceipt ends up in exactly one place. It is
recorded on a message (or recognized as a repeat of a recorded report), parked
until a message has its carrier id, or kept as an unparsed receipt.
The one exception is a receipt that parses but names no carrier id (and no
message id came with it): the call is rejected with INVALID_ARGUMENT, so the
sender still has the body and learns why.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.application.commands import RecordRawReceipt
from ledger.application.results import CommandResult, Disposition
from ledger.errors import InvalidArgumentError, ReceiptParseError
from ledger.receipts.redaction import redact_unparsable
from ledger.receipts.smpp_text import STAT_WORDS
from ledger.runtime import Runtime, build_runtime
from ledger.storage.records import to_micros
from tests.application.test_ledger import accept, submit
from tests.conftest import make_settings

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FAR_FUTURE = to_micros(datetime(9999, 1, 1, tzinfo=UTC))

words = st.sampled_from([*STAT_WORDS, "delivrd", "WIBBLE", "", "DELIV RD"])
carrier_ids = st.sampled_from(["AB12", "ab12", "00AB12", "FF99", "", "AB12\x00"]) | st.text(
    "0123456789abcdef", max_size=8
)
fields = st.fixed_dictionaries(
    {"stat": words, "id": carrier_ids},
    optional={
        "sub": st.just("001"),
        "dlvrd": st.just("001"),
        "done date": st.sampled_from(["2603140926", "9912312359", "ND", "26031409"]),
        "err": st.sampled_from(["000", "006", "0x0000000b", "ND"]),
        "text": st.text(max_size=30),
    },
)


@st.composite
def near_valid(draw: st.DrawFn) -> bytes:
    """An smpp-text receipt, sometimes with a byte deleted, replaced or inserted."""
    parts = draw(fields)
    order = draw(st.permutations([k for k in parts if k != "text"]))
    text = " ".join(f"{k}:{parts[k]}" for k in order)
    if "text" in parts:
        text += f" text:{parts['text']}"
    body = bytearray(text.encode("utf-8"))
    for _ in range(draw(st.integers(0, 2))):
        if not body:
            break
        at = draw(st.integers(0, len(body) - 1))
        action = draw(st.sampled_from(["delete", "replace", "insert"]))
        byte = draw(st.integers(0, 255))
        if action == "delete":
            del body[at]
        elif action == "replace":
            body[at] = byte
        else:
            body.insert(at, byte)
    return bytes(body)


bodies = st.one_of(near_valid(), st.binary(min_size=1, max_size=120))


@pytest.fixture
def ledger_runtime(tmp_path: Path) -> Iterator[Runtime]:
    built = build_runtime(make_settings(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path))
    built.ledger.execute([submit(), accept("m1", "AB12")])
    try:
        yield built
    finally:
        built.close()


def _parked_count(runtime: Runtime) -> int:
    return len(runtime.store.list_parked("acme", FAR_FUTURE, 100_000))


def _unparsed_digests(runtime: Runtime) -> set[str]:
    return {r.body_sha256 for r in runtime.store.list_unparsed("acme", None, 100_000)}


@SETTINGS
@given(body=bodies, fmt=st.sampled_from(["smpp-text", "smpp-text", "smpp-pdu", "twilio"]))
def test_raw_input_is_never_lost(ledger_runtime: Runtime, body: bytes, fmt: str) -> None:
    runtime = ledger_runtime
    version = runtime.ledger.get_message("acme", "m1")[0].version
    parked = _parked_count(runtime)
    command = RecordRawReceipt(tenant="acme", connection="carrier-a", body=body, format=fmt)

    (outcome,) = runtime.ledger.execute([command])

    if isinstance(outcome, ReceiptParseError):
        assert outcome.kept
        redacted, _ = redact_unparsable(body, "")
        assert hashlib.sha256(redacted).hexdigest() in _unparsed_digests(runtime)
        return
    if isinstance(outcome, InvalidArgumentError):
        assert "names no carrier message id" in outcome.message, outcome
        return
    assert isinstance(outcome, CommandResult), outcome
    parts = [p for p in (outcome.receipts or (outcome,)) if isinstance(p, CommandResult)]
    assert parts
    for part in parts:
        if part.disposition is Disposition.RECORDED:
            assert runtime.ledger.get_message("acme", "m1")[0].version > version
        elif part.disposition is Disposition.PARKED:
            assert _parked_count(runtime) > parked
        else:
            # A repeat of a report already recorded or parked.
            assert part.disposition is Disposition.DUPLICATE
            assert part.duplicate
