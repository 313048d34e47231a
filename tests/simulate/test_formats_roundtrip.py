"""Round trip of every generated carrier-format payload through the ledger's parser.

Each receipt the real-format mode sends is parsed with ``parse_receipt``
under the profile the server reads from the written connections file, and
must give back exactly what the rewritten plan states: status, finality,
permanence, error code, completion time and carrier id.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from ledger.receipts.ids import canonical_carrier_id
from ledger.receipts.model import CarrierProfile, NormalizedReceipt
from ledger.receipts.parse import parse_receipt
from ledger.receipts.profiles import profiles_from_toml
from ledger.simulate.connections import (
    FORMAT_CONNECTIONS,
    connections_by_name,
    connections_toml,
    format_carriers,
)
from ledger.simulate.formats.batching import join_reports
from ledger.simulate.formats.encode import EncodedReceipt, EncodedRun, encode_plans
from ledger.simulate.formats.infobip import merge_reports
from ledger.simulate.plan import PlanConfig, generate_plan
from ledger.simulate.requests import to_command
from ledger.simulate.steps import Accept, Receipt, Submit
from ledger.simulate.truth import expected_outcome

NAMES = [c.name for c in FORMAT_CONNECTIONS]
PROFILES: dict[str, CarrierProfile] = profiles_from_toml(connections_toml())

# Statuses each connection's format can state; the rest travel normalized.
EXPECTED_STATUSES = {
    "sim-twilio": {"ENROUTE", "ACCEPTED", "DELIVERED", "FAILED"},
    "sim-plivo": {"ENROUTE", "ACCEPTED", "DELIVERED", "FAILED", "REJECTED"},
    "sim-messagebird": {"ENROUTE", "ACCEPTED", "DELIVERED", "FAILED", "EXPIRED"},
    "sim-vonage": {"ENROUTE", "ACCEPTED", "DELIVERED", "FAILED", "EXPIRED", "REJECTED"},
}
ALL_STATUSES = {"ENROUTE", "ACCEPTED", "DELIVERED", "FAILED", "EXPIRED", "REJECTED"}


@pytest.fixture(scope="module")
def run() -> EncodedRun:
    plans = generate_plan(
        PlanConfig(
            messages=4000,
            seed=11,
            run_id="rt11",
            now=datetime(2026, 6, 1, 12, 0, tzinfo=UTC),
            carriers=tuple(format_carriers()),
            expiry_grace_seconds=0,
        )
    )
    return encode_plans(plans, connections_by_name(), seed=11)


def _parse(record: EncodedReceipt) -> NormalizedReceipt:
    raw = record.receipt.raw
    assert raw is not None
    profile = PROFILES[record.connection]
    parsed = parse_receipt(
        raw.format or profile.format, raw.body, raw.content_type, profile, dict(raw.metadata)
    )
    assert len(parsed.receipts) == 1
    return parsed.receipts[0]


def _differences(record: EncodedReceipt, read: NormalizedReceipt) -> list[str]:
    planned = record.receipt
    profile = PROFILES[record.connection]
    expected_permanent = (
        planned.permanent if planned.status in ("FAILED", "REJECTED", "EXPIRED") else None
    )
    pairs: dict[str, tuple[object, object]] = {
        "status": (planned.status, read.status.name),
        "final": (planned.is_final, read.final),
        "permanent": (expected_permanent, read.permanent),
        "error_code": (planned.error_code, read.error_code or ""),
        "done_at": (record.stated_time if planned.is_final else None, read.done_at),
        "warnings": ((), read.warnings),
    }
    if planned.by_carrier_id:
        # The truth matches ids as text; the ledger in the connection's bases.
        assert read.carrier_message_id is not None
        read_id = canonical_carrier_id(read.carrier_message_id, profile.receipt_id_base)
        planned_id = canonical_carrier_id(planned.carrier_message_id, profile.submit_id_base)
        pairs["carrier_id"] = (planned_id, read_id)
    else:
        pairs["segment"] = (planned.segment or None, read.segment)
    return [
        f"{name}: plan {want!r}, parsed {got!r}"
        for name, (want, got) in pairs.items()
        if want != got
    ]


@pytest.mark.parametrize("connection", NAMES)
def test_formats_roundtrip_matches_plan(run: EncodedRun, connection: str) -> None:
    records = [r for r in run.receipts if r.connection == connection]
    assert len(records) >= 150

    failures = []
    for record in records:
        found = _differences(record, _parse(record))
        if found:
            body = record.receipt.raw.body if record.receipt.raw else b""
            failures.append(f"{body[:200]!r}: {'; '.join(found)}")

    assert failures == []


@pytest.mark.parametrize("connection", NAMES)
def test_formats_roundtrip_covers_statuses(run: EncodedRun, connection: str) -> None:
    statuses = Counter(r.receipt.status for r in run.receipts if r.connection == connection)

    expected = EXPECTED_STATUSES.get(connection, ALL_STATUSES)
    assert expected <= set(statuses)


def test_formats_acceptance_ids_match_receipts(run: EncodedRun) -> None:
    accepted: set[tuple[str, str]] = set()
    for plan in run.plans:
        carrier = ""
        for step in plan.steps:
            if isinstance(step, Submit):
                carrier = step.carrier
            elif isinstance(step, Accept):
                base = PROFILES[carrier].submit_id_base
                accepted.update((carrier, canonical_carrier_id(i, base)) for _, i in step.segments)
    unmatched = []
    for record in run.receipts:
        if not record.receipt.by_carrier_id:
            continue
        read = _parse(record)
        base = PROFILES[record.connection].receipt_id_base
        key = (record.connection, canonical_carrier_id(read.carrier_message_id or "", base))
        if key not in accepted:
            unmatched.append(key)

    assert unmatched == []


def test_formats_resends_are_byte_identical(run: EncodedRun) -> None:
    identical = 0
    for plan in run.plans:
        for before, after in zip(plan.steps, plan.steps[1:], strict=False):
            if (
                isinstance(before, Receipt)
                and before.raw is not None
                and after == replace(before, request_id="")
            ):
                identical += 1

    assert identical >= run.stats.resends_added > 50


def test_formats_equal_receipts_read_as_one_report(run: EncodedRun) -> None:
    # The ledger recognizes a resend by the payload's time text, or by its
    # bytes where it states no time. Receipts that the ground truth
    # counts as one report must look like one report to the ledger too.
    groups: dict[tuple[str, str, Receipt], list[Receipt]] = {}
    for plan in run.plans:
        for step in plan.steps:
            if isinstance(step, Receipt) and step.raw is not None:
                key = (plan.message_id, step.connection, replace(step, request_id="", raw=None))
                groups.setdefault(key, []).append(step)
    differing = []
    for (_, connection, _), steps in groups.items():
        bodies = {s.raw.body for s in steps if s.raw is not None}
        if len(bodies) == 1:
            continue
        profile = PROFILES[connection]
        times = {
            parse_receipt(profile.format, body, s.raw.content_type, profile, dict(s.raw.metadata))
            .receipts[0]
            .source_time
            for s in steps
            if s.raw is not None
            for body in [s.raw.body]
        }
        if len(times) != 1 or None in times:
            differing.append((connection, times))

    assert differing == []
    assert any(len(steps) > 1 for steps in groups.values())


def test_formats_quirks_present(run: EncodedRun) -> None:
    by_connection: dict[str, list[bytes]] = {}
    for record in run.receipts:
        assert record.receipt.raw is not None
        by_connection.setdefault(record.connection, []).append(record.receipt.raw.body)
    text = b"\n".join(by_connection["sim-smpp-text"])
    pdus = by_connection["sim-smpp-pdu"]
    kannel = b"\n".join(by_connection["sim-kannel"])
    jasmin = b"\n".join(by_connection["sim-jasmin"])

    assert b"stat:delivrd" in text
    assert b" Text:" in text
    assert b"text:Reply stat:DELIVRD" in text
    assert b"mccmnc:" in text
    reordered = [b for b in by_connection["sim-smpp-text"] if b"id:" in b and b[:3] != b"id:"]
    assert reordered
    binary = [body for body in pdus if body[:2] == b"\x00\x00"]
    assert binary
    assert any(body[:4] == b"0000" for body in pdus)
    assert any(b"\x00\x1e" in body for body in binary)
    assert any(b"\x04\x24" in body for body in binary)
    assert any(b"\x04\x23\x00\x03\x03" in body for body in binary)
    assert b"NACK%2F0x" in kannel
    assert b"ACK%2F" in kannel
    assert b"level=1" in jasmin
    assert b"ND" in jasmin
    assert run.stats.acceptances_added > 100
    assert run.stats.by_reference > 50


def test_formats_infobip_joined_payload() -> None:
    plans = generate_plan(
        PlanConfig(
            messages=600,
            seed=3,
            run_id="ib3",
            now=datetime(2026, 6, 1, 12, 0, tzinfo=UTC),
            carriers=tuple(c.carrier for c in FORMAT_CONNECTIONS if c.family == "infobip"),
            expiry_grace_seconds=0,
        )
    )
    run = encode_plans(plans, connections_by_name(), seed=3)
    single = [r for r in run.receipts if not r.receipt.raw or not r.receipt.raw.metadata]
    commands = [to_command("t", "m", r.receipt) for r in single if not r.receipt.request_id][:150]

    sent, slots = join_reports(commands, frozenset({"sim-infobip"}))
    joined = json.loads(sent[0].raw_receipt.body)
    parsed = parse_receipt(
        "infobip", sent[0].raw_receipt.body, "application/json", PROFILES["sim-infobip"]
    )

    assert len(sent) == 2
    assert len(joined["results"]) == 100
    assert [slot[1] for slot in slots[:3]] == [0, 1, 2]
    assert len(parsed.receipts) == 100
    assert len(parsed.parts) == 100
    separately = [
        parse_receipt("infobip", c.raw_receipt.body, "", PROFILES["sim-infobip"]).receipts[0]
        for c in commands[:100]
    ]
    assert list(parsed.receipts) == separately
    assert merge_reports([commands[0].raw_receipt.body]) == commands[0].raw_receipt.body


def test_formats_truth_runs_on_rewritten_plan(run: EncodedRun) -> None:
    for plan in run.plans[:500]:
        expected_outcome(plan.steps)


def test_formats_profiles_load_from_toml() -> None:
    assert set(PROFILES) == set(NAMES)
    assert PROFILES["sim-smpp-text"].timezone == "+03:00"
    assert PROFILES["sim-smpp-pdu"].receipt_id_base.value == "hex"
