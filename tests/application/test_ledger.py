"""The ledger's write path on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledger.application.commands import (
    InferExpiry,
    RawInput,
    RecordAcceptance,
    RecordRawReceipt,
    RecordReceipt,
    SubmitMessage,
)
from ledger.application.results import CommandResult, Disposition
from ledger.domain.outcomes import Status
from ledger.errors import (
    InvalidArgumentError,
    LifecycleError,
    NotFoundError,
    RequestIdReusedError,
)
from ledger.runtime import Runtime, build_runtime
from ledger.server.history import history_events
from tests.conftest import make_settings

NUMBER = "+447700900123"


def submit(message_id: str = "m1", **changes: object) -> SubmitMessage:
    fields: dict[str, object] = {
        "tenant": "acme",
        "message_id": message_id,
        "destination": NUMBER,
        "sender": "ACME",
        "carrier": "carrier-a",
    }
    fields.update(changes)
    return SubmitMessage(**fields)  # type: ignore[arg-type]


def accept(message_id: str = "m1", *ids: str, **changes: object) -> RecordAcceptance:
    segments = tuple((n, i) for n, i in enumerate(ids or ("00AB12",), 1))
    return RecordAcceptance(tenant="acme", message_id=message_id, segments=segments, **changes)  # type: ignore[arg-type]


def by_carrier(carrier_id: str, status: Status, **changes: object) -> RecordReceipt:
    return RecordReceipt(
        tenant="acme",
        status=status,
        connection=str(changes.pop("connection", "carrier-a")),
        carrier_message_id=carrier_id,
        **changes,  # type: ignore[arg-type]
    )


def ok(outcome: object) -> CommandResult:
    assert isinstance(outcome, CommandResult), outcome
    return outcome


def test_submit_accept_deliver_by_carrier_id(runtime: Runtime) -> None:
    ledger = runtime.ledger
    first, accepted, delivered = ledger.execute(
        [submit(), accept(), by_carrier("ab12", Status.DELIVERED)]
    )
    assert ok(first).version == 1
    assert ok(accepted).events[0].type == "CarrierAccepted"
    assert ok(delivered).status is Status.DELIVERED
    message, duplicates = ledger.get_message("acme", "m1")
    assert message.outcome.status is Status.DELIVERED
    assert duplicates == 0


def test_request_id_replay_returns_first_result(runtime: Runtime) -> None:
    ledger = runtime.ledger
    first = ok(ledger.execute([submit(request_id="r1")])[0])
    again = ok(ledger.execute([submit(request_id="r1")])[0])
    assert again.replayed
    assert again.events == first.events
    assert ledger.get_message("acme", "m1")[0].version == 1


def test_request_id_reused_for_other_command_is_refused(runtime: Runtime) -> None:
    ledger = runtime.ledger
    ledger.execute([submit(request_id="r1")])
    outcome = ledger.execute([submit("m2", request_id="r1")])[0]
    assert isinstance(outcome, RequestIdReusedError)
    with pytest.raises(NotFoundError):
        ledger.get_message("acme", "m2")


def test_request_id_replay_within_one_batch(runtime: Runtime) -> None:
    outcomes = runtime.ledger.execute([submit(request_id="r1"), submit(request_id="r1")])
    assert not ok(outcomes[0]).replayed
    assert ok(outcomes[1]).replayed


def test_invalid_command_records_nothing_and_retry_is_processed(runtime: Runtime) -> None:
    ledger = runtime.ledger
    bad = ledger.execute([submit(destination="447700900123", request_id="r1")])[0]
    assert isinstance(bad, InvalidArgumentError)
    assert "447700900123" not in bad.message
    assert ok(ledger.execute([submit(request_id="r1")])[0]).version == 1


def test_one_bad_command_never_fails_the_others(runtime: Runtime) -> None:
    outcomes = runtime.ledger.execute(
        [submit("m1"), submit("m2", tenant="Bad Tenant"), accept("m3"), submit("m4")]
    )
    assert ok(outcomes[0]).version == 1
    assert isinstance(outcomes[1], InvalidArgumentError)
    assert isinstance(outcomes[2], NotFoundError)
    assert ok(outcomes[3]).version == 1


def test_repeated_submit_is_a_duplicate(runtime: Runtime) -> None:
    ledger = runtime.ledger
    ledger.execute([submit()])
    assert ok(ledger.execute([submit()])[0]).duplicate
    changed = ledger.execute([submit(carrier="carrier-b")])[0]
    assert isinstance(changed, LifecycleError)


def test_duplicate_receipts_append_nothing_and_count(runtime: Runtime) -> None:
    ledger = runtime.ledger
    at = datetime(2026, 3, 14, 9, 26, tzinfo=UTC)
    receipt = by_carrier("00ab12", Status.DELIVERED, occurred_at=at)
    outcomes = ledger.execute([submit(), accept(), receipt, receipt])
    assert ok(outcomes[3]).disposition is Disposition.DUPLICATE
    assert ok(ledger.execute([receipt])[0]).duplicate
    message, duplicates = ledger.get_message("acme", "m1")
    assert message.version == 3
    assert duplicates == 2


def test_early_receipt_is_parked_then_applied(runtime: Runtime) -> None:
    ledger = runtime.ledger
    ledger.execute([submit()])
    parked = ok(ledger.execute([by_carrier("AB12", Status.DELIVERED)])[0])
    assert parked.disposition is Disposition.PARKED
    assert ok(ledger.execute([by_carrier("AB12", Status.DELIVERED)])[0]).duplicate
    accepted = ok(ledger.execute([accept()])[0])
    assert [e.type for e in accepted.events] == ["CarrierAccepted", "Delivered"]
    message, _ = ledger.get_message("acme", "m1")
    assert message.outcome.status is Status.DELIVERED
    event = runtime.store.history(message.id)[-1].event
    assert event.parked  # type: ignore[union-attr]


def test_parked_receipt_in_same_batch_is_applied(runtime: Runtime) -> None:
    outcomes = runtime.ledger.execute([submit(), by_carrier("AB12", Status.FAILED), accept()])
    assert ok(outcomes[1]).disposition is Disposition.PARKED
    assert ok(outcomes[2]).status is Status.FAILED
    assert runtime.store.find_parked(["AB12"]) == []


def test_orphan_receipt_stays_parked(runtime: Runtime) -> None:
    outcome = ok(runtime.ledger.execute([by_carrier("999", Status.DELIVERED)])[0])
    assert outcome.disposition is Disposition.PARKED
    assert len(runtime.store.find_parked(["999"])) == 1


def test_carrier_id_match_ignores_case_and_leading_zeros(runtime: Runtime) -> None:
    outcomes = runtime.ledger.execute(
        [submit(), accept("m1", "000aBc"), by_carrier("ABC", Status.ENROUTE)]
    )
    assert ok(outcomes[2]).disposition is Disposition.RECORDED
    assert runtime.ledger.lookup_carrier_id("acme", "carrier-a", "abc")[0].message_id == "m1"


def test_carrier_ids_scoped_to_tenant_and_connection(runtime: Runtime) -> None:
    ledger = runtime.ledger
    ledger.execute([submit(), accept()])
    other_connection = ok(
        ledger.execute([by_carrier("AB12", Status.DELIVERED, connection="c2")])[0]
    )
    assert other_connection.disposition is Disposition.PARKED
    other_tenant = RecordReceipt(
        tenant="other", status=Status.DELIVERED, connection="carrier-a", carrier_message_id="AB12"
    )
    assert ok(ledger.execute([other_tenant])[0]).disposition is Disposition.PARKED


def test_carrier_id_shared_by_segments_is_invalid(runtime: Runtime) -> None:
    ledger = runtime.ledger
    ledger.execute([submit(segment_count=2)])
    outcome = ledger.execute([accept("m1", "900001", "900001")])[0]
    assert isinstance(outcome, InvalidArgumentError)
    assert [v.field for v in outcome.violations] == ["segments[1].carrier_message_id"]
    assert ledger.get_message("acme", "m1")[0].outcome.status is Status.SUBMITTED


def test_reused_carrier_id_matches_latest_acceptance(runtime: Runtime) -> None:
    ledger = runtime.ledger
    ledger.execute([submit("m1"), accept("m1", "77"), submit("m2"), accept("m2", "77")])
    ok(ledger.execute([by_carrier("77", Status.DELIVERED)])[0])
    assert ledger.get_message("acme", "m2")[0].outcome.status is Status.DELIVERED
    assert ledger.get_message("acme", "m1")[0].outcome.status is Status.ACCEPTED


def test_retry_on_other_carrier_then_delivered(runtime: Runtime) -> None:
    ledger = runtime.ledger
    ledger.execute([submit(), accept(), by_carrier("AB12", Status.FAILED, permanent=False)])
    retry = submit(attempt=2, carrier="carrier-b", request_id="retry-2")
    outcomes = ledger.execute(
        [retry, accept("m1", "B-1"), by_carrier("b-1", Status.DELIVERED, connection="carrier-b")]
    )
    assert ok(outcomes[2]).status is Status.DELIVERED
    message, _ = ledger.get_message("acme", "m1")
    assert len(message.attempts) == 2
    assert message.outcome_attempt.carrier == "carrier-b"


def test_multipart_with_message_level_id(runtime: Runtime) -> None:
    whole = RecordAcceptance(tenant="acme", message_id="m1", segments=((0, "W1"),))
    outcomes = runtime.ledger.execute(
        [submit(segment_count=3), whole, by_carrier("w1", Status.DELIVERED)]
    )
    assert ok(outcomes[2]).status is Status.DELIVERED


def test_receipt_by_message_reference(runtime: Runtime) -> None:
    receipt = RecordReceipt(
        tenant="acme", status=Status.REJECTED, message_id="m1", error_code="0x0000000B"
    )
    outcome = ok(runtime.ledger.execute([submit(), receipt])[1])
    assert outcome.status is Status.REJECTED


def test_raw_payload_is_encrypted_and_returned_to_auditors(runtime: Runtime) -> None:
    body = b"id:AB12 sub:001 dlvrd:001 stat:DELIVRD err:000"
    raw = RawInput(body=body, content_type="text/plain", format="smpp-text", source="smpp:bind-1")
    runtime.ledger.execute([submit(), accept(), by_carrier("AB12", Status.DELIVERED, raw=raw)])
    message, _ = runtime.ledger.get_message("acme", "m1")
    stored = runtime.store.history(message.id)[-1].event
    assert body not in bytes(stored.raw_ciphertext or b"")  # type: ignore[union-attr]
    history = history_events(runtime.ledger, "acme", "m1")
    assert history[-1].raw.body == body
    assert history[0].destination == NUMBER
    assert history[0].event.submission.destination_masked == "+44 7700 9xxx23"


def test_raw_payload_over_limit_is_invalid(runtime: Runtime) -> None:
    raw = RawInput(body=b"x" * 70_000, content_type="text/plain", format="smpp-text")
    outcome = runtime.ledger.execute([by_carrier("AB12", Status.DELIVERED, raw=raw)])[0]
    assert isinstance(outcome, InvalidArgumentError)
    assert outcome.violations[0].field == "raw.body"


def test_parked_raw_payload_follows_the_message(runtime: Runtime) -> None:
    raw = RawInput(body=b"early", content_type="text/plain", format="smpp-text")
    runtime.ledger.execute([submit(), by_carrier("AB12", Status.DELIVERED, raw=raw)])
    runtime.ledger.execute([accept()])
    assert history_events(runtime.ledger, "acme", "m1")[-1].raw.body == b"early"


def test_inferred_expiry_happens_once_then_carrier_final_wins(runtime: Runtime) -> None:
    ledger = runtime.ledger
    past = datetime.now(UTC) - timedelta(hours=2)
    ledger.execute([submit(submitted_at=past, validity=timedelta(minutes=1)), accept()])
    assert ledger.expire_due() == 1
    assert ledger.expire_due() == 0
    message, _ = ledger.get_message("acme", "m1")
    assert message.outcome.status is Status.EXPIRED and message.outcome.inferred
    ok(ledger.execute([by_carrier("AB12", Status.DELIVERED)])[0])
    message, _ = ledger.get_message("acme", "m1")
    assert message.outcome.status is Status.DELIVERED
    assert not message.conflict


def test_concurrent_expiry_appends_one_event(runtime: Runtime) -> None:
    ledger = runtime.ledger
    past = datetime.now(UTC) - timedelta(hours=2)
    ledger.execute([submit(submitted_at=past, validity=timedelta(minutes=1))])
    message, _ = ledger.get_message("acme", "m1")
    command = InferExpiry(message.id, 1, past)
    outcomes = ledger.execute([command, command])
    assert [e.type for e in ok(outcomes[0]).events] == ["Expired", "RetryAdvised"]
    assert ok(outcomes[0]).retry is not None
    assert ok(outcomes[1]).events == ()


def test_accepted_final_message_is_not_expired(runtime: Runtime) -> None:
    ledger = runtime.ledger
    past = datetime.now(UTC) - timedelta(hours=2)
    ledger.execute(
        [
            submit(submitted_at=past, validity=timedelta(minutes=1)),
            accept(),
            by_carrier("AB12", Status.ACCEPTED, final=True),
        ]
    )
    assert ledger.expire_due() == 0


def test_unknown_connection_rejected_when_profiles_configured(tmp_path: Path) -> None:
    from ledger.receipts.model import CarrierProfile

    built = build_runtime(make_settings(f"sqlite:///{tmp_path / 'l.db'}", tmp_path))
    try:
        built.ledger.config = type(built.ledger.config)(
            connections={"carrier-a": CarrierProfile(name="carrier-a")}
        )
        outcome = built.ledger.execute([submit(carrier="nope")])[0]
        assert isinstance(outcome, InvalidArgumentError)
        assert "carrier-a" in outcome.message
    finally:
        built.close()


def test_state_survives_restart(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path)
    first = build_runtime(settings)
    try:
        first.ledger.execute([submit(request_id="r1"), by_carrier("AB12", Status.DELIVERED)])
    finally:
        first.close()
    second = build_runtime(settings)
    try:
        assert ok(second.ledger.execute([submit(request_id="r1")])[0]).replayed
        applied = ok(second.ledger.execute([accept()])[0])
        assert [e.type for e in applied.events] == ["CarrierAccepted", "Delivered"]
    finally:
        second.close()


def test_implausible_times_are_invalid(runtime: Runtime) -> None:
    far = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    old = datetime(1, 1, 1, tzinfo=UTC)
    outcomes = runtime.ledger.execute(
        [
            submit(submitted_at=far),
            submit("m2", submitted_at=old),
            submit("m3"),
            accept("m3", accepted_at=far),
            RecordReceipt(tenant="acme", status=Status.DELIVERED, message_id="m3", occurred_at=far),
        ]
    )
    for index in (0, 1, 3, 4):
        assert isinstance(outcomes[index], InvalidArgumentError), outcomes[index]
    assert ok(outcomes[2]).version == 1


def test_impossible_done_date_uses_arrival(runtime: Runtime) -> None:
    body = (
        b"id:AB12 sub:001 dlvrd:001 submit date:9912312359 done date:9912312359 "
        b"stat:DELIVRD err:000"
    )
    raw = RecordRawReceipt(tenant="acme", connection="carrier-a", body=body, format="smpp-text")
    outcome = ok(runtime.ledger.execute([submit(), accept(), raw])[2])
    assert outcome.status is Status.DELIVERED
    assert any("arrival time is used" in warning for warning in outcome.warnings)
    message, _ = runtime.ledger.get_message("acme", "m1")
    assert message.outcome.at is not None and message.outcome.at.year < 2099
