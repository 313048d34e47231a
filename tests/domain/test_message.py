from __future__ import annotations

from datetime import timedelta

import pytest
from eventsourcing.application import project_aggregate

from ledger.domain.audit import GENESIS_HASH, chain_hash
from ledger.domain.message import Acceptance, Message, hashed_record
from ledger.domain.outcomes import Effect, Status
from ledger.errors import InvalidArgumentError, LifecycleError, NotFoundError
from tests.domain.helpers import NUMBER, T0, new_message, report


def _resubmit(message: Message, attempt: int, carrier: str = "carrier-b") -> None:
    message.resubmit(
        attempt=attempt,
        destination_digest=NUMBER.digest,
        sender="ACME",
        carrier=carrier,
        segment_count=1,
        validity=timedelta(hours=1),
        request_id=None,
        occurred_at=T0,
        recorded_at=T0,
    )


def test_delivery_after_failure_wins_and_flags_conflict() -> None:
    message = new_message()
    message.record_receipt(report(Status.FAILED, permanent=False, code="6"), T0)
    result = message.record_receipt(report(Status.DELIVERED, minute=2), T0)
    assert result.effect is Effect.OVERRODE_FINAL
    assert message.outcome.status is Status.DELIVERED
    assert message.outcome.error_code is None
    assert message.conflict


def test_first_non_delivery_final_stays() -> None:
    message = new_message()
    message.record_receipt(report(Status.FAILED, permanent=False, code="6"), T0)
    message.record_receipt(report(Status.EXPIRED, minute=2), T0)
    assert message.outcome.status is Status.FAILED
    assert message.outcome.error_code == "6"
    assert message.conflict


def test_intermediate_after_final_is_recorded_without_moving_back() -> None:
    message = new_message()
    message.record_receipt(report(Status.DELIVERED), T0)
    result = message.record_receipt(report(Status.ENROUTE, minute=2), T0)
    assert result.effect is Effect.OUT_OF_ORDER
    assert message.outcome.status is Status.DELIVERED
    assert message.version == 4


def test_duplicate_fingerprint_appends_nothing() -> None:
    message = new_message()
    message.record_receipt(report(Status.DELIVERED, fingerprint="f"), T0)
    version = message.version
    assert message.record_receipt(report(Status.DELIVERED, fingerprint="f"), T0).duplicate
    assert message.version == version


def test_carrier_final_supersedes_inferred_expiry() -> None:
    message = new_message()
    assert message.infer_expiry(attempt=1, deadline=T0, reason="r", recorded_at=T0)
    assert message.outcome.status is Status.EXPIRED and message.outcome.inferred
    assert not message.infer_expiry(attempt=1, deadline=T0, reason="r", recorded_at=T0)
    result = message.record_receipt(report(Status.DELIVERED), T0)
    assert result.effect is Effect.SUPERSEDED_INFERRED
    assert message.outcome.status is Status.DELIVERED
    assert not message.conflict


def test_accepted_final_is_never_inferred_expired() -> None:
    message = new_message()
    message.record_receipt(report(Status.ACCEPTED, final=True), T0)
    assert message.outcome.final and message.outcome.status is Status.ACCEPTED
    assert not message.infer_expiry(attempt=1, deadline=T0, reason="r", recorded_at=T0)


def test_new_attempt_after_transient_failure_then_delivery() -> None:
    message = new_message()
    message.record_receipt(report(Status.FAILED, permanent=False, code="6"), T0)
    _resubmit(message, 2)
    assert message.outcome.status is Status.SUBMITTED
    message.accept(
        attempt=2,
        acceptances=[Acceptance(1, "b1", "B1")],
        request_id=None,
        occurred_at=T0,
        recorded_at=T0,
    )
    message.record_receipt(report(Status.DELIVERED, attempt=2), T0)
    assert message.outcome.status is Status.DELIVERED
    assert message.outcome_attempt.carrier == "carrier-b"


def test_delivery_on_older_attempt_makes_message_delivered() -> None:
    message = new_message()
    message.record_receipt(report(Status.REJECTED, code="x"), T0)
    _resubmit(message, 2)
    message.record_receipt(report(Status.DELIVERED, attempt=1, minute=3), T0)
    assert message.outcome.status is Status.DELIVERED
    assert message.outcome_attempt.number == 1


def test_new_attempt_refused_after_permanent_failure() -> None:
    message = new_message()
    message.record_receipt(report(Status.FAILED, permanent=True, code="1"), T0)
    with pytest.raises(LifecycleError, match="failed permanently"):
        _resubmit(message, 2)


def test_new_attempt_refused_while_not_final() -> None:
    message = new_message()
    with pytest.raises(LifecycleError, match="not final"):
        _resubmit(message, 2)


def test_new_attempt_must_be_next_number() -> None:
    message = new_message()
    message.record_receipt(report(Status.REJECTED, code="x"), T0)
    with pytest.raises(LifecycleError, match="next attempt is 2"):
        _resubmit(message, 3)


def test_repeated_submission_with_other_values_is_refused() -> None:
    message = new_message()
    with pytest.raises(LifecycleError, match="carrier"):
        message.check_repeated_submission(
            attempt=1,
            destination_digest=NUMBER.digest,
            sender="ACME",
            carrier="other",
            segment_count=1,
            validity=timedelta(hours=1),
        )


def test_multipart_delivered_only_when_all_segments_delivered() -> None:
    message = new_message(segments=3)
    message.record_receipt(report(Status.DELIVERED, segment=1), T0)
    message.record_receipt(report(Status.DELIVERED, segment=3), T0)
    assert not message.outcome.final
    message.record_receipt(report(Status.DELIVERED, segment=2), T0)
    assert message.outcome.status is Status.DELIVERED


def test_multipart_fails_on_first_permanent_segment_failure() -> None:
    message = new_message(segments=3)
    message.record_receipt(report(Status.FAILED, permanent=True, code="1", segment=2), T0)
    assert message.outcome.status is Status.FAILED and message.outcome.final


def test_multipart_takes_first_unsuccessful_segment_outcome() -> None:
    message = new_message(segments=3)
    message.record_receipt(report(Status.DELIVERED, segment=1), T0)
    message.record_receipt(report(Status.EXPIRED, segment=3), T0)
    message.record_receipt(report(Status.FAILED, permanent=False, code="6", segment=2), T0)
    assert message.outcome.status is Status.FAILED
    assert message.outcome.error_code == "6"


def test_message_level_receipt_applies_to_every_segment() -> None:
    message = new_message(segments=2)
    message.record_receipt(report(Status.DELIVERED, segment=0), T0)
    assert message.outcome.status is Status.DELIVERED


def test_segment_out_of_range_is_invalid() -> None:
    message = new_message(segments=2)
    with pytest.raises(InvalidArgumentError):
        message.record_receipt(report(Status.DELIVERED, segment=3), T0)


def test_unknown_attempt_is_not_found() -> None:
    message = new_message()
    with pytest.raises(NotFoundError):
        message.record_receipt(report(Status.DELIVERED, attempt=2), T0)


def test_accept_with_other_carrier_id_is_refused() -> None:
    message = new_message()
    with pytest.raises(LifecycleError, match="another carrier message id"):
        message.accept(
            attempt=1,
            acceptances=[Acceptance(1, "other", "OTHER")],
            request_id=None,
            occurred_at=T0,
            recorded_at=T0,
        )
    assert not message.accept(
        attempt=1,
        acceptances=[Acceptance(1, "id1", "ID1")],
        request_id=None,
        occurred_at=T0,
        recorded_at=T0,
    )


def test_replayed_events_rebuild_same_state_and_chain() -> None:
    message = new_message(segments=2)
    message.record_receipt(report(Status.FAILED, permanent=False, code="6", segment=1), T0)
    message.record_receipt(report(Status.DELIVERED, segment=2), T0)
    events = message.collect_events()
    rebuilt = project_aggregate(None, events)
    assert isinstance(rebuilt, Message)
    assert rebuilt.outcome == message.outcome
    assert rebuilt.last_hash == message.last_hash
    previous = GENESIS_HASH
    for event in events:
        stored, record = hashed_record(event)
        assert chain_hash(previous, record) == stored
        previous = stored


def test_event_status_after_matches_replayed_state() -> None:
    message = new_message()
    message.record_receipt(report(Status.ENROUTE), T0)
    message.record_receipt(report(Status.DELIVERED, minute=2), T0)
    event = message.collect_events()[-1]
    assert event.status_after == "DELIVERED"  # type: ignore[attr-defined]
    assert event.final_after  # type: ignore[attr-defined]
