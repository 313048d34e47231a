"""The read-model check's ground truth: counts, causes and latencies per group."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

from ledger.simulate.carriers import build_carriers
from ledger.simulate.plan import PlanConfig
from ledger.simulate.readmodel_check import (
    compare_causes,
    expected_causes,
    expected_counts,
    expected_latencies,
)
from ledger.simulate.runner import prepare
from ledger.simulate.truth import ExpectedState, LatencySample
from ledger.v1 import readmodels_pb2

HOUR = 1_740_830_400


def state(status: str, carrier: str, **fields: object) -> ExpectedState:
    values: dict[str, object] = {
        "status": status,
        "final": status not in ("SUBMITTED", "ACCEPTED", "ENROUTE"),
        "attempt_count": 1,
        "conflict": False,
        "duplicate_count": 0,
        "expiry_inferred": False,
        "permanent": None,
        "error_code": "",
        "carrier": carrier,
        "credited_carrier": carrier,
        "country": "GB",
        "cohort_hour": HOUR,
        "attempt_carriers": (carrier,),
    }
    values.update(fields)
    return ExpectedState(**values)  # type: ignore[arg-type]


def test_counts_per_carrier_country_and_hour() -> None:
    counts = expected_counts(
        {
            "a": state("DELIVERED", "x", accepted=True),
            "b": state("FAILED", "x", permanent=True, country="FR"),
            "c": state("FAILED", "y", permanent=False, attempt_carriers=("x", "y")),
            "d": state("ENROUTE", "y", accepted=True, cohort_hour=HOUR + 3600),
            "e": state("ACCEPTED", "y", final=True, accepted=True),
        }
    )
    assert counts[("x", "GB", HOUR)]["submitted"] == 1
    assert counts[("x", "GB", HOUR)]["accepted"] == 1
    assert counts[("x", "GB", HOUR)]["attempts"] == 2
    assert counts[("x", "GB", HOUR)]["retried"] == 1
    assert counts[("x", "FR", HOUR)]["failed_permanent"] == 1
    assert counts[("y", "GB", HOUR)]["failed_transient"] == 1
    assert counts[("y", "GB", HOUR)]["accepted_final"] == 1
    assert counts[("y", "GB", HOUR)]["accepted"] == 1
    assert counts[("y", "GB", HOUR)]["attempts"] == 2
    assert counts[("y", "GB", HOUR + 3600)]["pending"] == 1
    assert sum(row["submitted"] for row in counts.values()) == 5


def test_causes_by_error_code() -> None:
    causes = expected_causes(
        {
            "a": state("FAILED", "x", permanent=True, error_code="E1"),
            "b": state("FAILED", "x", permanent=True, error_code="E1"),
            "c": state("REJECTED", "x", permanent=False, error_code="R9"),
            "d": state("EXPIRED", "x", expiry_inferred=True, permanent=False),
            "e": state("DELIVERED", "x"),
            "f": state("FAILED", "x", permanent=True, error_code=None),
        }
    )
    assert causes == {
        ("x", "GB", HOUR): Counter(
            {
                ("FAILED", "E1", True): 2,
                ("REJECTED", "R9", False): 1,
                ("EXPIRED", "", False): 1,
                ("FAILED", None, True): 1,
            }
        )
    }


def test_cause_comparison_with_open_codes() -> None:
    key = ("x", "GB", HOUR)
    want = Counter({("FAILED", "E1", True): 2, ("FAILED", None, True): 1})
    assert (
        compare_causes(key, want, Counter({("FAILED", "E1", True): 2, ("FAILED", "E7", True): 1}))
        == []
    )
    assert compare_causes(key, want, Counter({("FAILED", "E1", True): 3})) == []
    wrong = compare_causes(
        key, want, Counter({("FAILED", "E1", True): 1, ("FAILED", "E2", True): 1})
    )
    assert any("E1" in problem for problem in wrong)
    exact = Counter({("REJECTED", "R1", False): 1})
    assert compare_causes(key, exact, Counter({("REJECTED", "R2", False): 1}))
    assert compare_causes(key, exact, Counter({("REJECTED", "R1", True): 1}))


def test_latencies_grouped_as_asked() -> None:
    sample = LatencySample("x", "submit_to_accepted", 120.0)
    expected = {
        "a": state("DELIVERED", "x", latencies=(sample,)),
        "b": state("DELIVERED", "x", latencies=(sample,), country="FR"),
        "c": state("DELIVERED", "x", latencies=(replace(sample, milliseconds=None),)),
    }
    by_carrier = expected_latencies(expected, (readmodels_pb2.GROUPING_CARRIER,))
    assert by_carrier == {(("x", "", 0), "submit_to_accepted"): [120.0, 120.0, None]}
    fine = expected_latencies(expected)
    assert fine[(("x", "FR", HOUR), "submit_to_accepted")] == [120.0]


def test_every_simulated_destination_has_a_region() -> None:
    prepared = prepare(
        PlanConfig(
            messages=400,
            seed=5,
            run_id="regions",
            now=datetime(2025, 3, 1, 12, tzinfo=UTC),
            carriers=tuple(build_carriers(4)),
        )
    )
    regions = Counter(s.country for s in prepared.expected.values())
    assert set(regions) == {"AU", "FR", "GB", "US"}
    accepted = sum(s.accepted for s in prepared.expected.values())
    assert 0 < accepted < 400
    assert all(s.latencies for s in prepared.expected.values() if s.status == "DELIVERED")
