"""Simulated carrier connections: traffic share, delivery rate, error mix and latency."""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["SimCarrier", "build_carriers"]


@dataclass(frozen=True)
class SimCarrier:
    """Behaviour of one simulated carrier connection.

    Attributes:
        name: Connection name sent to the ledger.
        traffic_share: Relative share of first attempts routed to it.
        delivery_rate: Chance that a message which reaches a final outcome
            on this connection is delivered.
        permanent_share: Chance that a failure is permanent.
        permanent_codes: Error codes of permanent failures.
        transient_codes: Error codes of transient failures.
        error_table: Name of the table the codes belong to.
        accept_latency_seconds: Range of the submit-to-acceptance delay.
        delivery_latency_seconds: Range of the acceptance-to-final delay.
    """

    name: str
    traffic_share: float
    delivery_rate: float
    permanent_share: float
    permanent_codes: tuple[str, ...]
    transient_codes: tuple[str, ...]
    error_table: str
    accept_latency_seconds: tuple[float, float]
    delivery_latency_seconds: tuple[float, float]


# GSM MAP codes: 1 unknown subscriber, 9 illegal subscriber, 11 teleservice not
# provisioned, 13 call barred (permanent); 27 absent subscriber, 31 subscriber
# busy, 34 system failure, 36 unexpected data (transient).
_GSM_PERMANENT = ("1", "9", "11", "13")
_GSM_TRANSIENT = ("27", "31", "34", "36")

# SMPP command status codes: 0x0B invalid destination, 0x0A invalid source
# (permanent); 0x14 queue full, 0x58 throttled, 0x08 system error (transient).
_SMPP_PERMANENT = ("0x0000000B", "0x0000000A")
_SMPP_TRANSIENT = ("0x00000014", "0x00000058", "0x00000008")

_TEMPLATES = (
    SimCarrier(
        "sim-tier1", 4.0, 0.96, 0.6, _GSM_PERMANENT, _GSM_TRANSIENT, "gsm-map", (0.05, 0.3), (2, 40)
    ),
    SimCarrier(
        "sim-budget",
        3.0,
        0.78,
        0.3,
        _SMPP_PERMANENT,
        _SMPP_TRANSIENT,
        "smpp",
        (0.2, 2.5),
        (10, 600),
    ),
    SimCarrier(
        "sim-aggregator",
        2.0,
        0.88,
        0.45,
        _GSM_PERMANENT,
        _GSM_TRANSIENT,
        "gsm-map",
        (0.1, 1),
        (5, 180),
    ),
    SimCarrier(
        "sim-local", 1.5, 0.93, 0.5, _SMPP_PERMANENT, _SMPP_TRANSIENT, "smpp", (0.02, 0.2), (1, 20)
    ),
    SimCarrier(
        "sim-backup",
        1.0,
        0.70,
        0.25,
        _GSM_PERMANENT,
        _GSM_TRANSIENT,
        "gsm-map",
        (0.5, 4),
        (30, 600),
    ),
    SimCarrier(
        "sim-intl", 1.0, 0.84, 0.4, _SMPP_PERMANENT, _SMPP_TRANSIENT, "smpp", (0.3, 3), (20, 400)
    ),
)


def build_carriers(count: int) -> list[SimCarrier]:
    """Return ``count`` carriers, cycling through the built-in profiles.

    Beyond the built-in profiles, names get a numeric suffix (``sim-tier1-2``).

    Raises:
        ValueError: ``count`` is less than 1.
    """
    if count < 1:
        raise ValueError(f"carrier count is {count}; simulate at least 1 carrier")
    carriers = []
    for index in range(count):
        template = _TEMPLATES[index % len(_TEMPLATES)]
        round_number = index // len(_TEMPLATES)
        name = template.name if round_number == 0 else f"{template.name}-{round_number + 1}"
        carriers.append(replace(template, name=name))
    return carriers
