"""Every order of a message's receipts ends in the state the lifecycle rules define.

The oracle below restates the rules independently of the implementation:
per segment, a delivery among the carrier finals wins; otherwise the first
carrier final to arrive stays; with no carrier final, an expiry the ledger
inferred while the message was unfinished holds; otherwise the most advanced
intermediate (with its error code). Segments combine into the message: all delivered -> delivered;
any permanent failure -> the lowest such segment; all final -> the lowest
segment that did not succeed; else the least advanced unfinished segment.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.outcomes import Status
from tests.domain.helpers import T0, new_message, report

PROGRESS = [Status.ACCEPTED, Status.ENROUTE, Status.UNKNOWN]


@dataclass(frozen=True)
class Report:
    segment: int
    status: Status
    final: bool
    permanent: bool | None
    code: str | None
    key: int

    @property
    def identity(self) -> tuple[object, ...]:
        if self.status is Status.DELIVERED:
            return (self.status, self.final, None, None)
        return (self.status, self.final, self.code, self.permanent)


EXPIRE = "expire"

reports = st.builds(
    Report,
    segment=st.integers(1, 3),
    status=st.sampled_from(
        [
            Status.ENROUTE,
            Status.ACCEPTED,
            Status.UNKNOWN,
            Status.DELIVERED,
            Status.FAILED,
            Status.REJECTED,
            Status.EXPIRED,
        ]
    ),
    final=st.booleans(),
    permanent=st.sampled_from([True, False, None]),
    code=st.sampled_from([None, "1", "6"]),
    key=st.integers(0, 3),
)


def _normalized(r: Report) -> Report:
    always = r.status in (Status.DELIVERED, Status.FAILED, Status.REJECTED, Status.EXPIRED)
    final = True if always else (False if r.status is Status.ENROUTE else r.final)
    permanent = r.permanent if r.status in (Status.FAILED, Status.REJECTED) else None
    if r.status is Status.EXPIRED:
        permanent = False
    code = None if r.status is Status.DELIVERED else r.code
    return Report(r.segment, r.status, final, permanent, code, r.key)


def _segment_state(
    arrivals: list[object], segment: int
) -> tuple[Status, bool, bool | None, str | None, bool]:
    """Return status, final, permanent, code and inferred of one segment."""
    finals = [a for a in arrivals if isinstance(a, Report) and a.segment == segment and a.final]
    if finals:
        delivered = [f for f in finals if f.status is Status.DELIVERED]
        chosen = delivered[0] if delivered else finals[0]
        return chosen.status, True, chosen.permanent, chosen.code, False
    if any(a == ("inferred", segment) for a in arrivals):
        return Status.EXPIRED, True, False, None, True
    best, code = Status.ACCEPTED, None
    for a in arrivals:
        if (
            isinstance(a, Report)
            and a.segment == segment
            and not a.final
            and PROGRESS.index(a.status) > PROGRESS.index(best)
        ):
            best, code = a.status, a.code
    return best, False, None, code, False


def _combine(
    states: list[tuple[Status, bool, bool | None, str | None, bool]],
) -> tuple[Status, bool, str | None]:
    if all(s[0] is Status.DELIVERED for s in states):
        return Status.DELIVERED, True, None
    for s in states:
        if s[0] is Status.FAILED and s[2] is True:
            return s[0], True, s[3]
    if all(s[1] for s in states):
        for s in states:
            if s[0] not in (Status.DELIVERED, Status.ACCEPTED):
                return s[0], True, s[3]
        return Status.ACCEPTED, True, next(s[3] for s in states if s[0] is Status.ACCEPTED)
    unfinished = [s for s in states if not s[1]]
    least = min(unfinished, key=lambda s: PROGRESS.index(s[0]))
    return least[0], False, least[3]


def oracle(segments: int, sequence: list[object]) -> tuple[Status, bool, str | None, bool]:
    """Expected (status, final, error code, conflict) after ``sequence``."""
    arrivals: list[object] = []
    seen: set[tuple[int, int, object]] = set()
    for item in sequence:
        if item == EXPIRE:
            states = [_segment_state(arrivals, n) for n in range(1, segments + 1)]
            if not _combine(states)[1]:
                arrivals.extend(("inferred", n) for n, s in enumerate(states, 1) if not s[1])
            continue
        assert isinstance(item, Report)
        fingerprint = (item.segment, item.key, item.identity)
        if fingerprint in seen:
            continue
        seen.add(fingerprint)
        arrivals.append(item)
    states = [_segment_state(arrivals, n) for n in range(1, segments + 1)]
    status, final, code = _combine(states)
    conflict = any(
        len({a.identity for a in arrivals if isinstance(a, Report) and a.segment == n and a.final})
        > 1
        for n in range(1, segments + 1)
    )
    return status, final, code, conflict


def run(segments: int, sequence: list[object]) -> tuple[Status, bool, str | None, bool]:
    message = new_message(segments=segments)
    for minute, item in enumerate(sequence, 1):
        if item == EXPIRE:
            message.infer_expiry(attempt=1, deadline=T0, reason="test", recorded_at=T0)
            continue
        assert isinstance(item, Report)
        message.record_receipt(
            report(
                item.status,
                final=item.final,
                permanent=item.permanent,
                code=item.code,
                segment=item.segment,
                fingerprint=f"{item.segment}:{item.key}:{item.identity}",
                minute=minute,
            ),
            T0,
        )
    outcome = message.outcome
    return outcome.status, outcome.final, outcome.error_code, message.conflict


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, list[object], list[object]]:
    segments = draw(st.integers(1, 3))
    items: list[object] = [
        _normalized(r)
        for r in draw(st.lists(reports, min_size=1, max_size=7))
        if r.segment <= segments
    ]
    if draw(st.booleans()):
        items.append(EXPIRE)
    permuted = draw(st.permutations(items))
    return segments, items, list(permuted)


@settings(max_examples=1500, deadline=None)
@given(scenarios())
def test_every_receipt_order_ends_in_defined_state(
    scenario: tuple[int, list[object], list[object]],
) -> None:
    segments, _, permuted = scenario
    assert run(segments, permuted) == oracle(segments, permuted)


@settings(max_examples=500, deadline=None)
@given(scenarios())
def test_final_status_independent_of_order_without_conflicts(
    scenario: tuple[int, list[object], list[object]],
) -> None:
    segments, original, permuted = scenario
    expected = oracle(segments, original)
    if expected[3] or EXPIRE in original:
        return  # first-arrival rules and expiry timing legitimately depend on order
    assert run(segments, permuted)[:2] == expected[:2]
