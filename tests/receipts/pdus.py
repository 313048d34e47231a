"""Builders of SMPP PDUs for tests: deliver_sm and data_sm with optional TLVs."""

from __future__ import annotations

DELIVER_SM = 0x00000005
DATA_SM = 0x00000103


def c_string(value: bytes) -> bytes:
    return value + b"\x00"


def tlv(tag: int, value: bytes) -> bytes:
    return tag.to_bytes(2, "big") + len(value).to_bytes(2, "big") + value


def _pdu(command_id: int, body: bytes, sequence: int) -> bytes:
    header = (
        (16 + len(body)).to_bytes(4, "big")
        + command_id.to_bytes(4, "big")
        + (0).to_bytes(4, "big")
        + sequence.to_bytes(4, "big")
    )
    return header + body


def deliver_sm(
    short_message: bytes = b"",
    *,
    esm_class: int = 0x04,
    tlvs: bytes = b"",
    source_addr: bytes = b"447700900123",
    sequence: int = 1,
) -> bytes:
    body = (
        c_string(b"")  # service_type
        + bytes([1, 1])
        + c_string(source_addr)
        + bytes([5, 0])
        + c_string(b"LEDGERTEST")
        + bytes([esm_class, 0, 0])  # esm_class, protocol_id, priority_flag
        + c_string(b"")  # schedule_delivery_time
        + c_string(b"")  # validity_period
        + bytes([0, 0, 0, 0])  # registered_delivery .. sm_default_msg_id
        + bytes([len(short_message)])
        + short_message
        + tlvs
    )
    return _pdu(DELIVER_SM, body, sequence)


def data_sm(
    *, esm_class: int = 0x04, tlvs: bytes = b"", source_addr: bytes = b"447700900123"
) -> bytes:
    body = (
        c_string(b"")
        + bytes([1, 1])
        + c_string(source_addr)
        + bytes([5, 0])
        + c_string(b"LEDGERTEST")
        + bytes([esm_class, 0, 0])  # esm_class, registered_delivery, data_coding
        + tlvs
    )
    return _pdu(DATA_SM, body, 7)
