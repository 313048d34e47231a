"""Property tests: arbitrary and mutated payloads never raise anything but ReceiptParseError.

Every accepted payload also yields a redacted body, receipts that keep the
normalization invariants, and the same receipts when the redacted body is
parsed again.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.errors import ReceiptParseError
from ledger.receipts.model import CarrierProfile, ParsedReceipts, ReceiptStatus
from ledger.receipts.parse import FORMATS, parse_receipt

from .pdus import c_string, data_sm, deliver_sm, tlv

CASES_PATH = Path(__file__).parent / "data" / "cases.jsonl"
PROFILE = CarrierProfile(name="fuzz", timezone="+03:00", error_table="gsm-map")
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _seeds() -> dict[str, list[tuple[bytes, str]]]:
    seeds: dict[str, list[tuple[bytes, str]]] = defaultdict(list)
    for line in CASES_PATH.read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        fmt = "smpp-pdu" if case["format"] == "smpp-tlv" else case["format"]
        raw: str = case["raw"]
        body = bytes.fromhex(raw) if fmt == "smpp-pdu" else raw.encode("utf-8")
        seeds[fmt].append((body, case["content_type"]))
    text = b"id:1 sub:001 dlvrd:001 done date:2603140926 stat:DELIVRD err:000 text:Hi"
    seeds["smpp-pdu"] += [
        (deliver_sm(b"", tlvs=tlv(0x0424, text + b"\x00")), ""),
        (data_sm(tlvs=tlv(0x0424, text) + tlv(0x001E, c_string(b"AB"))), ""),
        (deliver_sm(text, esm_class=0x44, tlvs=tlv(0x0423, b"001")).hex().encode(), ""),
    ]
    event = json.loads(seeds["aws"][0][0])
    envelope = {"Type": "Notification", "Message": json.dumps({**event, "messageBody": "x"})}
    seeds["aws"].append((json.dumps(envelope).encode(), "application/json"))
    seeds["sns"] = list(seeds["aws"])
    seeds["smpp-tlv"] = list(seeds["smpp-pdu"])
    seeds["twilio"].append((seeds["twilio"][0][0] + b"&Body=secret+text", ""))
    return seeds


SEEDS = _seeds()


def check_accepted(parsed: ParsedReceipts) -> None:
    assert isinstance(parsed.redacted_body, bytes)
    assert parsed.receipts
    for receipt in parsed.receipts:
        assert isinstance(receipt.status, ReceiptStatus)
        if not receipt.final:
            assert receipt.done_at is None
        if receipt.done_at is not None:
            assert receipt.done_at.tzinfo is UTC
        if receipt.status is ReceiptStatus.EXPIRED:
            assert receipt.permanent is False
        elif receipt.status not in (ReceiptStatus.FAILED, ReceiptStatus.REJECTED):
            assert receipt.permanent is None
        if receipt.error_code is None:
            assert receipt.error_table is None


def parse_or_reject(fmt: str, body: bytes, content_type: str) -> ParsedReceipts | None:
    try:
        parsed = parse_receipt(fmt, body, content_type, PROFILE)
    except ReceiptParseError:
        return None
    check_accepted(parsed)
    again = parse_receipt(fmt, parsed.redacted_body, content_type, PROFILE)
    assert again.receipts == parsed.receipts
    assert again.redacted_body == parsed.redacted_body
    return parsed


@st.composite
def mutated(draw: st.DrawFn, fmt: str) -> tuple[bytes, str]:
    body, content_type = draw(st.sampled_from(SEEDS[fmt]))
    data = bytearray(body)
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["flip", "truncate", "delete", "insert", "drop_field"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if operation == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif operation == "truncate":
            del data[position:]
        elif operation == "delete":
            del data[position : position + draw(st.integers(1, 8))]
        elif operation == "insert":
            data[position:position] = draw(
                st.one_of(
                    st.binary(min_size=1, max_size=8),
                    st.sampled_from(
                        [b" text:", b"stat:", b"&", b"=", b"%", b"\x00", b"{", b'"', b"err:1"]
                    ),
                )
            )
        else:
            separator = b","
            if fmt == "smpp-text":
                separator = b" "
            elif b"&" in data:
                separator = b"&"
            pieces = bytes(data).split(separator)
            if len(pieces) > 1:
                del pieces[draw(st.integers(0, len(pieces) - 1))]
                data = bytearray(separator.join(pieces))
    if fmt in ("smpp-pdu", "smpp-tlv") and draw(st.booleans()) and len(data) >= 4:
        # Keep command_length consistent so the mutation reaches the body fields.
        data[0:4] = len(data).to_bytes(4, "big")
    return bytes(data), content_type


@st.composite
def json_mutated(draw: st.DrawFn, fmt: str) -> tuple[bytes, str]:
    seeds = [seed for seed in SEEDS[fmt] if seed[0].lstrip().startswith(b"{")]
    body, content_type = draw(st.sampled_from(seeds))
    document: Any = json.loads(body)
    node = document
    for _ in range(draw(st.integers(1, 3))):
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node)))
            action = draw(st.sampled_from(["delete", "replace", "descend"]))
            if action == "delete":
                del node[key]
            elif action == "replace":
                node[key] = draw(
                    st.one_of(
                        st.none(),
                        st.booleans(),
                        st.integers(-(2**70), 2**70),
                        st.floats(allow_nan=False),
                        st.text(max_size=12),
                        st.lists(st.integers(), max_size=2),
                        st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
                    )
                )
            else:
                node = node[key]
        elif isinstance(node, list) and node:
            node = node[draw(st.integers(0, len(node) - 1))]
    return json.dumps(document).encode("utf-8"), content_type


@pytest.mark.parametrize("fmt", FORMATS)
@SETTINGS
@given(body=st.binary(max_size=300), content_type=st.sampled_from(["", "application/json"]))
def test_random_bytes_only_raise_parse_error(fmt: str, body: bytes, content_type: str) -> None:
    parse_or_reject(fmt, body, content_type)


@pytest.mark.parametrize("fmt", FORMATS)
@SETTINGS
@given(data=st.data())
def test_mutated_receipts_only_raise_parse_error(fmt: str, data: st.DataObject) -> None:
    body, content_type = data.draw(mutated(fmt))
    parse_or_reject(fmt, body, content_type)


JSON_FORMATS = ["sinch", "infobip", "aws", "sns", "vonage"]


@pytest.mark.parametrize("fmt", JSON_FORMATS)
@SETTINGS
@given(data=st.data())
def test_mutated_json_only_raise_parse_error(fmt: str, data: st.DataObject) -> None:
    body, content_type = data.draw(json_mutated(fmt))
    parse_or_reject(fmt, body, content_type)


@SETTINGS
@given(
    text=st.text(
        alphabet=st.sampled_from(list("idsubtaeroncmp:0123456789 DELIVRDUNKtx")), max_size=120
    )
)
def test_receipt_like_text_only_raises_parse_error(text: str) -> None:
    parse_or_reject("smpp-text", text.encode("ascii"), "")


def test_valid_seeds_are_accepted() -> None:
    for fmt, seeds in SEEDS.items():
        for body, content_type in seeds:
            assert parse_or_reject(fmt, body, content_type) is not None, fmt
