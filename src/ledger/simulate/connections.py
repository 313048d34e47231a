"""Simulated carrier connections that report receipts in their own formats.

Each connection pairs a simulated carrier (traffic share, outcome rates,
error codes in the format's own vocabulary) with the receipt format it
reports in and the profile the server must hold for it. The profiles differ
from the server's defaults on purpose (receipt format, zone, id bases or a
code override), so a server started without them reads the receipts
differently, which the start-up check detects.

``smsledger simulate --receipt-formats --write-connections FILE`` writes the
profiles as the TOML that ``SMSLEDGER_CONNECTIONS_FILE`` names.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from ledger.receipts.model import CarrierProfile
from ledger.receipts.profiles import profile_from_mapping
from ledger.simulate.carriers import SimCarrier
from ledger.simulate.formats.aws import AWS_CODES
from ledger.simulate.formats.base import FormatConnection
from ledger.simulate.formats.jasmin import ESME_CODES
from ledger.simulate.formats.kannel import NACK_CODES

__all__ = [
    "FORMAT_CONNECTIONS",
    "connections_by_name",
    "connections_toml",
    "format_carriers",
    "server_profiles",
    "write_connections",
]

# GSM MAP error values: 1 unknown subscriber, 9 illegal subscriber, 11
# teleservice not provisioned, 13 call barred (permanent); 27 absent
# subscriber, 31 busy, 34 system failure, 36 unexpected data (transient).
# SMPP receipt texts write them with three digits, TLVs and JSON as numbers.
_MAP_PERMANENT = ("1", "9", "11", "13")
_MAP_TRANSIENT = ("27", "31", "34", "36")
_MAP_TEXT_PERMANENT = tuple(code.zfill(3) for code in _MAP_PERMANENT)
_MAP_TEXT_TRANSIENT = tuple(code.zfill(3) for code in _MAP_TRANSIENT)


def _carrier(
    name: str,
    share: float,
    delivery_rate: float,
    codes: tuple[tuple[str, ...], tuple[str, ...]],
    error_table: str,
    accept: tuple[float, float] = (0.05, 1.0),
    final: tuple[float, float] = (2, 300),
) -> SimCarrier:
    return SimCarrier(
        name=name,
        traffic_share=share,
        delivery_rate=delivery_rate,
        permanent_share=0.45,
        permanent_codes=codes[0],
        transient_codes=codes[1],
        error_table=error_table,
        accept_latency_seconds=accept,
        delivery_latency_seconds=final,
    )


FORMAT_CONNECTIONS: tuple[FormatConnection, ...] = (
    FormatConnection(
        _carrier(
            "sim-smpp-text",
            4.0,
            0.93,
            (_MAP_TEXT_PERMANENT, _MAP_TEXT_TRANSIENT),
            "gsm-map",
            (0.02, 0.3),
            (1, 60),
        ),
        "smpp-text",
        {"format": "smpp-text", "timezone": "+03:00", "error_table": "gsm-map"},
    ),
    FormatConnection(
        _carrier("sim-smpp-pdu", 2.5, 0.88, (_MAP_PERMANENT, _MAP_TRANSIENT), "gsm-map"),
        "smpp-pdu",
        {
            "format": "smpp-pdu",
            "timezone": "UTC",
            "error_table": "gsm-map",
            "submit_id_base": "decimal",
            "receipt_id_base": "hex",
        },
    ),
    FormatConnection(
        _carrier("sim-kannel", 1.5, 0.85, (_MAP_TEXT_PERMANENT, _MAP_TEXT_TRANSIENT), "gsm-map"),
        "kannel",
        {"format": "kannel", "timezone": "-05:00", "error_table": "gsm-map"},
        NACK_CODES,
    ),
    FormatConnection(
        # Twilio's SMPP err table: 001 absent subscriber is transient, 005
        # unknown subscriber permanent, the reverse of the MAP values.
        _carrier(
            "sim-jasmin", 1.0, 0.82, (("005", "007", "009"), ("001", "011", "012")), "twilio-smpp"
        ),
        "jasmin",
        {"format": "jasmin", "timezone": "+02:00", "error_table": "twilio-smpp"},
        ESME_CODES,
    ),
    FormatConnection(
        _carrier(
            "sim-twilio",
            1.0,
            0.9,
            (("30004", "30005", "30006", "30007"), ("30001", "30003", "30008", "30009")),
            "twilio",
        ),
        "twilio",
        # 30008 "unknown error" has no permanence in Twilio's table; this
        # route retries it.
        {"format": "twilio", "timezone": "+01:00", "transient_codes": ["30008"]},
    ),
    FormatConnection(
        _carrier("sim-vonage", 0.8, 0.87, (("3", "4", "9", "12"), ("2", "7", "8", "16")), "vonage"),
        "vonage",
        {"format": "vonage", "timezone": "+08:00"},
    ),
    FormatConnection(
        _carrier("sim-plivo", 0.8, 0.9, (("10", "50", "70", "90"), ("20", "80")), "plivo"),
        "plivo",
        {"format": "plivo", "timezone": "+05:30"},
    ),
    FormatConnection(
        _carrier("sim-sinch", 0.7, 0.9, (("402", "405", "408"), ("403", "404")), "sinch"),
        "sinch",
        # 403 "internal error" has no permanence in Sinch's table; this route retries it.
        {"format": "sinch", "transient_codes": ["403"]},
    ),
    FormatConnection(
        _carrier(
            "sim-infobip", 1.0, 0.91, (("1", "9", "11", "13"), ("6", "27", "31", "34")), "infobip"
        ),
        "infobip",
        # Infobip flags a barred subscriber (13) as temporary; like the MAP
        # table, this route treats it as permanent.
        {"format": "infobip", "permanent_codes": ["13"]},
    ),
    FormatConnection(
        _carrier(
            "sim-aws",
            0.7,
            0.89,
            (
                ("BLOCKED", "CARRIER_BLOCKED", "INVALID", "SPAM"),
                ("CARRIER_UNREACHABLE", "UNREACHABLE"),
            ),
            "aws",
        ),
        "aws",
        {"format": "aws"},
        AWS_CODES,
    ),
    FormatConnection(
        _carrier("sim-messagebird", 0.5, 0.86, (("1", "9", "11"), ("27", "34", "36")), "bird"),
        "messagebird",
        {"format": "messagebird"},
    ),
)
"""Every simulated format connection; SMPP families carry most of the traffic."""


def format_carriers() -> list[SimCarrier]:
    """Return the simulated carriers of the format connections."""
    return [connection.carrier for connection in FORMAT_CONNECTIONS]


def connections_by_name() -> dict[str, FormatConnection]:
    """Return the format connections by connection name."""
    return {connection.name: connection for connection in FORMAT_CONNECTIONS}


def connections_toml() -> str:
    """Return the connection profiles as the TOML the server reads."""
    document: dict[str, Any] = {
        "connections": {c.name: dict(c.profile) for c in FORMAT_CONNECTIONS}
    }
    header = (
        "# Connection profiles of `smsledger simulate --receipt-formats`.\n"
        "# Start the server with SMSLEDGER_CONNECTIONS_FILE naming this file.\n\n"
    )
    return header + tomli_w.dumps(document)


def write_connections(path: Path) -> None:
    """Write :func:`connections_toml` to ``path``.

    Raises:
        OSError: The file cannot be written.
    """
    path.write_text(connections_toml(), encoding="utf-8")


def server_profiles(
    connections: Mapping[str, FormatConnection] | None = None,
) -> dict[str, CarrierProfile]:
    """Return the profiles the server builds from the written TOML, by connection name."""
    chosen = connections if connections is not None else connections_by_name()
    return {name: profile_from_mapping(name, c.profile) for name, c in chosen.items()}
