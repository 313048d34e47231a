"""The ground-truth model against the product's lifecycle rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.simulate.steps import Accept, Receipt, Replay, Step, Submit, WaitForExpiry
from ledger.simulate.truth import ExpectedState, canonical_id, expected_outcome, region_of

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def submit(
    attempt: int = 1, carrier: str = "c1", segments: int = 1, expires: bool = False
) -> Submit:
    return Submit(attempt, carrier, "+447700900123", segments, 86_400, at(attempt), expires)


def accept(ids: dict[int, str] | None = None, attempt: int = 1) -> Accept:
    return Accept(attempt, tuple(sorted((ids or {0: "ID1"}).items())), at(attempt + 0.5))


def by_message(status: str, seconds: float, **fields: object) -> Receipt:
    return Receipt(status, at(seconds), **fields)  # type: ignore[arg-type]


def by_carrier(status: str, seconds: float, carrier_id: str = "ID1", **fields: object) -> Receipt:
    return Receipt(
        status,  # type: ignore[arg-type]
        at(seconds),
        connection=str(fields.pop("connection", "c1")),
        carrier_message_id=carrier_id,
        **fields,  # type: ignore[arg-type]
    )


FAILED_TRANSIENT = {"permanent": False, "error_code": "27"}
FAILED_PERMANENT = {"permanent": True, "error_code": "1"}


def test_truth_plain_delivery() -> None:
    state, answers = expected_outcome(
        [submit(), accept(), by_carrier("ENROUTE", 5), by_carrier("DELIVERED", 9)]
    )

    assert state.status == "DELIVERED"
    assert state.final
    assert state.attempt_count == 1
    assert not state.conflict
    assert state.duplicate_count == 0
    assert state.error_code == ""
    assert state.carrier == "c1"
    assert answers == ["ok", "ok", "recorded", "recorded"]


def test_truth_intermediates_never_move_back() -> None:
    after_final, _ = expected_outcome(
        [submit(), accept(), by_message("DELIVERED", 9), by_message("ENROUTE", 5)]
    )
    among_intermediates, _ = expected_outcome(
        [submit(), accept(), by_message("ENROUTE", 5), by_message("ACCEPTED", 4)]
    )

    assert after_final.status == "DELIVERED"
    assert not after_final.conflict
    assert among_intermediates.status == "ENROUTE"
    assert not among_intermediates.final


@pytest.mark.parametrize(
    ("first", "second", "status", "error_code"),
    [
        (("FAILED", FAILED_TRANSIENT), ("DELIVERED", {}), "DELIVERED", ""),
        (("DELIVERED", {}), ("FAILED", FAILED_PERMANENT), "DELIVERED", ""),
        (("FAILED", FAILED_TRANSIENT), ("EXPIRED", {}), "FAILED", "27"),
        (("REJECTED", {"error_code": "5"}), ("FAILED", FAILED_TRANSIENT), "REJECTED", "5"),
        (("UNKNOWN", {"final": True}), ("DELIVERED", {}), "DELIVERED", ""),
    ],
)
def test_truth_conflicting_finals(
    first: tuple[str, dict[str, object]],
    second: tuple[str, dict[str, object]],
    status: str,
    error_code: str,
) -> None:
    state, _ = expected_outcome(
        [
            submit(),
            accept(),
            by_message(first[0], 5, **first[1]),
            by_message(second[0], 9, **second[1]),
        ]
    )

    assert state.status == status
    assert state.conflict
    assert state.error_code == error_code


def test_truth_agreeing_finals_no_conflict() -> None:
    state, answers = expected_outcome(
        [submit(), accept(), by_message("DELIVERED", 5), by_carrier("DELIVERED", 7)]
    )

    assert state.status == "DELIVERED"
    assert not state.conflict
    assert answers[-1] == "recorded"


def test_truth_inferred_expiry_without_final() -> None:
    state, _ = expected_outcome([submit(expires=True), accept(), by_message("ENROUTE", 5)])

    assert state.status == "EXPIRED"
    assert state.final
    assert state.expiry_inferred
    assert not state.conflict


def test_truth_carrier_final_beats_inferred_expiry() -> None:
    state, _ = expected_outcome(
        [submit(expires=True), accept(), WaitForExpiry(), by_carrier("DELIVERED", 900)]
    )

    assert state.status == "DELIVERED"
    assert not state.expiry_inferred
    assert not state.conflict


def test_truth_accepted_final_never_expires() -> None:
    state, _ = expected_outcome(
        [
            submit(expires=True),
            accept(),
            by_message("ACCEPTED", 5, final=True),
            by_message("ENROUTE", 4),
        ]
    )

    assert state.status == "ACCEPTED"
    assert state.final
    assert not state.expiry_inferred


def test_truth_delivery_on_earlier_attempt_wins() -> None:
    state, _ = expected_outcome(
        [
            submit(),
            accept({0: "A1"}),
            by_message("EXPIRED", 5),
            submit(attempt=2, carrier="c2"),
            accept({0: "A2"}, attempt=2),
            by_carrier("DELIVERED", 30, carrier_id="A1"),
        ]
    )

    assert state.status == "DELIVERED"
    assert state.attempt_count == 2
    assert state.carrier == "c1"
    assert state.conflict


def test_truth_transient_failure_then_retry_failure() -> None:
    state, _ = expected_outcome(
        [
            submit(),
            accept(),
            by_message("FAILED", 5, **FAILED_TRANSIENT),
            submit(attempt=2, carrier="c2"),
            accept({0: "A2"}, attempt=2),
            by_message("FAILED", 40, permanent=True, error_code="11"),
        ]
    )

    assert state.status == "FAILED"
    assert state.permanent is True
    assert state.error_code == "11"
    assert state.carrier == "c2"
    assert not state.conflict


@pytest.mark.parametrize(
    ("finals", "status", "permanent", "error_code"),
    [
        ({1: ("DELIVERED", {}), 2: ("DELIVERED", {}), 3: ("DELIVERED", {})}, "DELIVERED", None, ""),
        (
            {1: ("DELIVERED", {}), 2: ("FAILED", FAILED_PERMANENT), 3: ("ENROUTE", {})},
            "FAILED",
            True,
            "1",
        ),
        (
            {1: ("DELIVERED", {}), 2: ("EXPIRED", {}), 3: ("FAILED", FAILED_TRANSIENT)},
            "EXPIRED",
            False,
            "",
        ),
        (
            {1: ("FAILED", FAILED_TRANSIENT), 2: ("EXPIRED", {}), 3: ("DELIVERED", {})},
            "FAILED",
            False,
            "27",
        ),
        ({1: ("DELIVERED", {}), 2: ("ENROUTE", {}), 3: ("DELIVERED", {})}, "ENROUTE", None, ""),
    ],
)
def test_truth_multipart_outcome(
    finals: dict[int, tuple[str, dict[str, object]]],
    status: str,
    permanent: bool | None,
    error_code: str,
) -> None:
    ids = {n: f"S{n}" for n in finals}
    steps: list[Step] = [submit(segments=3), accept(ids)]
    steps += [by_carrier(s, 10 + n, carrier_id=ids[n], **f) for n, (s, f) in finals.items()]

    state, _ = expected_outcome(steps)

    assert state.status == status
    if status == "FAILED":
        assert state.permanent is permanent
    assert state.error_code == error_code


def test_truth_multipart_whole_message_id() -> None:
    state, _ = expected_outcome(
        [submit(segments=3), accept({0: "W1"}), by_carrier("DELIVERED", 9, carrier_id="W1")]
    )

    assert state.status == "DELIVERED"
    assert state.final


def test_truth_parked_receipt_applied_on_acceptance() -> None:
    state, answers = expected_outcome(
        [submit(), by_carrier("DELIVERED", 9, carrier_id="P1"), accept({1: "P1"})]
    )

    assert answers == ["ok", "parked", "ok"]
    assert state.status == "DELIVERED"


def test_truth_parked_final_counts_from_arrival() -> None:
    state, answers = expected_outcome(
        [
            submit(),
            by_carrier("FAILED", 9, carrier_id="P1", **FAILED_PERMANENT),
            by_message("EXPIRED", 10),
            accept({0: "P1"}),
        ]
    )

    assert answers == ["ok", "parked", "recorded", "ok"]
    assert state.status == "FAILED"
    assert state.conflict


def test_truth_exact_resend_is_duplicate() -> None:
    delivered = by_carrier("DELIVERED", 9)
    state, answers = expected_outcome(
        [submit(), accept(), delivered, delivered, by_message("DELIVERED", 9)]
    )

    assert answers[2:] == ["recorded", "duplicate", "recorded"]
    assert state.duplicate_count == 1
    assert not state.conflict


def test_truth_resend_of_parked_receipt_is_duplicate() -> None:
    early = by_carrier("DELIVERED", 9, carrier_id="P1")
    before, before_answers = expected_outcome([submit(), early, early, accept({1: "P1"})])
    after, after_answers = expected_outcome([submit(), early, accept({1: "P1"}), early])

    assert before_answers == ["ok", "parked", "duplicate", "ok"]
    assert before.duplicate_count == 1
    assert after_answers == ["ok", "parked", "ok", "duplicate"]
    assert after.duplicate_count == 1


def test_truth_replay_changes_nothing() -> None:
    steps: list[Step] = [
        submit(),
        accept(),
        by_message("DELIVERED", 9, request_id="r3"),
        Replay(2),
        Replay(0),
    ]

    state, answers = expected_outcome(steps)

    assert answers[3:] == ["replayed", "replayed"]
    assert state.duplicate_count == 0
    assert state.attempt_count == 1


def test_truth_carrier_id_variants_match() -> None:
    state, answers = expected_outcome(
        [
            submit(),
            accept({0: "00AB12CD"}),
            by_carrier("DELIVERED", 9, carrier_id="ab12cd"),
        ]
    )

    assert canonical_id("000ab12Cd") == canonical_id("AB12CD")
    assert answers[-1] == "recorded"
    assert state.status == "DELIVERED"


def test_truth_rejects_inconsistent_script() -> None:
    with pytest.raises(ValueError, match="attempt 3"):
        expected_outcome([submit(), submit(attempt=3)])


# ------------------------------------------------------------------ properties

NON_DELIVERED_FINALS = st.sampled_from(
    [
        ("FAILED", FAILED_TRANSIENT),
        ("FAILED", FAILED_PERMANENT),
        ("EXPIRED", {}),
        ("REJECTED", {"error_code": "5"}),
        ("UNKNOWN", {"final": True, "error_code": "0"}),
    ]
)


@given(
    others=st.lists(NON_DELIVERED_FINALS, min_size=0, max_size=4),
    order=st.randoms(use_true_random=False),
)
def test_truth_delivery_wins_any_order(
    others: list[tuple[str, dict[str, object]]], order: object
) -> None:
    finals = [("DELIVERED", {}), *others]
    order.shuffle(finals)  # type: ignore[attr-defined]
    steps: list[Step] = [submit(), accept()]
    steps += [by_message(s, 10 + i, **f) for i, (s, f) in enumerate(finals)]

    state, _ = expected_outcome(steps)

    assert state.status == "DELIVERED"
    assert state.error_code == ""
    assert state.conflict == bool(others)


@given(
    intermediates=st.lists(st.sampled_from(["ENROUTE", "ACCEPTED"]), min_size=1, max_size=5),
    order=st.randoms(use_true_random=False),
)
def test_truth_intermediates_order_insensitive(intermediates: list[str], order: object) -> None:
    shuffled = list(intermediates)
    order.shuffle(shuffled)  # type: ignore[attr-defined]

    def run(statuses: list[str]) -> object:
        steps: list[Step] = [submit(), by_message(statuses[0], 3)]
        steps += [by_message(s, 4 + i) for i, s in enumerate(statuses[1:])]
        return expected_outcome(steps)[0]

    assert run(intermediates) == run(shuffled)


@given(
    finals=st.lists(
        st.sampled_from(
            [
                ("DELIVERED", {}),
                ("FAILED", FAILED_TRANSIENT),
                ("FAILED", FAILED_PERMANENT),
                ("EXPIRED", {}),
                ("ACCEPTED", {"final": True}),
            ]
        ),
        min_size=2,
        max_size=4,
    ),
    order=st.randoms(use_true_random=False),
)
def test_truth_segment_interleaving_order_insensitive(
    finals: list[tuple[str, dict[str, object]]], order: object
) -> None:
    ids = {n: f"S{n}" for n in range(1, len(finals) + 1)}
    receipts = [
        by_carrier(status, 10 + n, carrier_id=ids[n], **fields)
        for n, (status, fields) in enumerate(finals, start=1)
    ]
    shuffled = list(receipts)
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    head: list[Step] = [submit(segments=len(finals)), accept(ids)]

    in_order, _ = expected_outcome([*head, *receipts])
    interleaved, _ = expected_outcome([*head, *shuffled])
    all_parked, _ = expected_outcome([head[0], *shuffled, head[1]])

    assert interleaved == in_order
    assert all_parked == in_order


# ------------------------------------------------- what the read models count


def samples(state: ExpectedState) -> dict[tuple[str, str], float | None]:
    return {(s.carrier, s.metric): s.milliseconds for s in state.latencies}


def test_truth_latencies_from_the_scripts_times() -> None:
    state, _ = expected_outcome(
        [submit(), accept(), by_message("ENROUTE", 3), by_message("DELIVERED", 4.25)]
    )
    assert samples(state) == {
        ("c1", "submit_to_accepted"): 500.0,
        ("c1", "submit_to_delivered"): 3250.0,
        ("c1", "accepted_to_delivered"): 2750.0,
    }
    assert state.accepted
    assert state.country == "GB"
    assert state.cohort_hour == int(T0.timestamp())
    assert state.credited_carrier == "c1"
    assert state.attempt_carriers == ("c1",)


def test_truth_multipart_latency_endpoints() -> None:
    state, _ = expected_outcome(
        [
            submit(segments=2),
            accept({1: "A"}),
            Accept(1, ((2, "B"),), at(9)),
            by_carrier("DELIVERED", 5, "A"),
            by_carrier("DELIVERED", 7, "B"),
            by_carrier("DELIVERED", 8, "B", error_code="x"),
        ]
    )
    # The attempt is delivered when its last segment is; a later report of
    # the same delivery changes nothing.
    assert samples(state) == {
        ("c1", "submit_to_accepted"): 500.0,
        ("c1", "submit_to_delivered"): 6000.0,
        ("c1", "accepted_to_delivered"): 5500.0,
    }


def test_truth_retry_credits_the_new_attempt() -> None:
    state, _ = expected_outcome(
        [
            submit(),
            by_message("FAILED", 2, permanent=False, error_code="E1"),
            submit(2, "c2"),
            accept(attempt=2),
            by_message("FAILED", 4, permanent=True, error_code="E2"),
        ]
    )
    assert state.credited_carrier == "c2"
    assert state.accepted
    assert state.attempt_carriers == ("c1", "c2")
    assert samples(state) == {("c2", "submit_to_accepted"): 500.0}


def test_truth_unaccepted_failure_is_not_accepted() -> None:
    state, _ = expected_outcome([submit(), by_message("REJECTED", 2, error_code="R1")])
    assert not state.accepted
    assert state.latencies == ()


def test_truth_earlier_delivery_credited() -> None:
    state, _ = expected_outcome([submit(), submit(2, "c2"), by_message("DELIVERED", 5, attempt=1)])
    assert state.credited_carrier == "c1"
    assert state.accepted


def test_truth_unstated_delivery_time_unknown() -> None:
    state, _ = expected_outcome([submit(), accept(), by_message("DELIVERED", 4, time_stated=False)])
    assert samples(state)[("c1", "submit_to_delivered")] is None
    assert samples(state)[("c1", "submit_to_accepted")] == 500.0


def test_region_of_simulated_ranges() -> None:
    assert region_of("+447700900123") == "GB"
    assert region_of("+12025550142") == "US"
    assert region_of("+61491570006") == "AU"
    assert region_of("+33639980012") == "FR"
    assert region_of("+4915112345678") == ""
