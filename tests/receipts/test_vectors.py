"""Every shared test vector: parse, normalize and compare each expected field."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ledger.receipts.ids import canonical_carrier_id
from ledger.receipts.model import CarrierProfile
from ledger.receipts.parse import parse_receipt
from ledger.receipts.profiles import metadata_from_context, profile_from_context

CASES_PATH = Path(__file__).parent / "data" / "cases.jsonl"
CASES: list[dict[str, Any]] = [
    json.loads(line) for line in CASES_PATH.read_text(encoding="utf-8").splitlines() if line
]


def body_of(case: dict[str, Any]) -> bytes:
    raw: str = case["raw"]
    return bytes.fromhex(raw) if case["format"] == "smpp-tlv" else raw.encode("utf-8")


def test_vector_file_has_all_cases() -> None:
    assert len(CASES) == 78


@pytest.mark.parametrize("case", CASES, ids=[case["case"] for case in CASES])
def test_vector_normalizes_as_expected(case: dict[str, Any]) -> None:
    context = case.get("context")
    profile = profile_from_context("vector", context, format=case["format"])
    parsed = parse_receipt(
        case["format"], body_of(case), case["content_type"], profile, metadata_from_context(context)
    )
    expected = case["expected"]

    assert len(parsed.receipts) == 1
    receipt = parsed.receipts[0]
    assert receipt.status.value == expected["status"]
    assert receipt.final is expected["final"]
    assert receipt.permanent is expected["permanent"]
    assert receipt.carrier_message_id == expected["carrier_message_id"]
    assert receipt.error_code == expected["error_code"]
    if expected["done_at"] is None:
        assert receipt.done_at is None
    else:
        assert receipt.done_at is not None
        assert receipt.done_at.utcoffset() is not None
        assert receipt.done_at == datetime.fromisoformat(expected["done_at"])
    assert isinstance(parsed.redacted_body, bytes)


CORRELATION_CASES = [case for case in CASES if "submit_resp_id" in case.get("context", {})]


@pytest.mark.parametrize("case", CORRELATION_CASES, ids=[c["case"] for c in CORRELATION_CASES])
def test_vector_correlates_with_submit_id(case: dict[str, Any]) -> None:
    context = case["context"]
    profile = profile_from_context("vector", context, format=case["format"])
    parsed = parse_receipt(case["format"], body_of(case), case["content_type"], profile)
    receipt_id = parsed.receipts[0].carrier_message_id
    assert receipt_id is not None

    receipt_key = canonical_carrier_id(receipt_id, profile.receipt_id_base)
    submit_key = canonical_carrier_id(context["submit_resp_id"], profile.submit_id_base)
    assert (receipt_key == submit_key) is context["should_correlate"]


def test_hex_case_matches_under_text_profile() -> None:
    case = next(c for c in CASES if c["case"] == "smpp-text-hex-id-lowercase")
    profile = CarrierProfile(name="vector")
    receipt = parse_receipt("smpp-text", body_of(case), "", profile).receipts[0]
    assert receipt.carrier_message_id == "1a2b3c4d"
    receipt_key = canonical_carrier_id("1a2b3c4d", profile.receipt_id_base)
    assert receipt_key == canonical_carrier_id("1A2B3C4D", profile.submit_id_base)


def test_part_receipts_match_own_part_ids() -> None:
    # Multipart messages have one submit id per part, and each part's receipt
    # must match its own id only.
    profile = profile_from_context("vector", {"id_relation": "same-decimal"})
    part_ids = ["0000436949", "0000436950"]
    for index, part_id in enumerate(part_ids):
        text = f"id:{int(part_id)} stat:DELIVRD done date:2603140926".encode()
        receipt = parse_receipt("smpp-text", text, "", profile).receipts[0]
        assert receipt.carrier_message_id is not None
        keys = [canonical_carrier_id(pid, profile.submit_id_base) for pid in part_ids]
        assert (
            canonical_carrier_id(receipt.carrier_message_id, profile.receipt_id_base) == keys[index]
        )
        assert keys[0] != keys[1]
