"""Log lines: JSON fields, trace ids, and masking of phone numbers."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from ledger.logs import configure_logging, mask_phone_numbers


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    handler = configure_logging("json", "INFO", buffer)
    try:
        yield buffer
    finally:
        logging.getLogger().removeHandler(handler)


def lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_json_line_has_fields_and_extras(stream: io.StringIO) -> None:
    logging.getLogger("ledger.test").info(
        "batch of %d failed", 3, extra={"message_id": "m1", "carrier": "carrier-a"}
    )

    (line,) = lines(stream)
    assert line["message"] == "batch of 3 failed"
    assert line["level"] == "INFO"
    assert line["logger"] == "ledger.test"
    assert line["message_id"] == "m1"
    assert line["carrier"] == "carrier-a"
    assert "time" in line
    assert "trace_id" not in line


def test_json_line_carries_trace_ids(stream: io.StringIO) -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        logging.getLogger("ledger.test").warning("retrying")
        context = span.get_span_context()

    (line,) = lines(stream)
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")


def test_phone_numbers_masked_everywhere(stream: io.StringIO) -> None:
    logger = logging.getLogger("ledger.test")
    logger.info("sent to +44 7700 900123", extra={"to": "+447700900123"})
    logger.info("number %s", "14155550123")
    try:
        raise ValueError("bad destination +14155550123")
    except ValueError:
        logger.exception("caught")

    text = stream.getvalue()
    assert "7700" not in text
    assert "4155550" not in text
    first, second, third = lines(stream)
    assert first["message"] == "sent to +xxxxxxxxxx23"
    assert first["to"] == "+xxxxxxxxxx23"
    assert second["message"] == "number xxxxxxxxx23"
    assert "+xxxxxxxxx23" in str(third["exc_info"])


@pytest.mark.parametrize(
    "text",
    [
        "position 12345",
        "epoch 1733350000000000",
        "id 0af76519-16cd-43dd-8448-eb211c80319c",
        "took 0.0123456789012 s",
    ],
)
def test_mask_leaves_other_numbers(text: str) -> None:
    assert mask_phone_numbers(text) == text


def test_text_format_appends_extras() -> None:
    buffer = io.StringIO()
    handler = configure_logging("text", "INFO", buffer)
    try:
        logging.getLogger("ledger.test").info("stopped", extra={"stream": "LEDGER EVENTS"})
    finally:
        logging.getLogger().removeHandler(handler)

    line = buffer.getvalue().strip()
    assert line.endswith("INFO ledger.test stopped stream='LEDGER EVENTS'")


def test_configure_logging_replaces_own_handler() -> None:
    first = configure_logging("json", "INFO", io.StringIO())
    second = configure_logging("text", "DEBUG", io.StringIO())
    try:
        root = logging.getLogger()
        assert first not in root.handlers
        assert second in root.handlers
        assert root.level == logging.DEBUG
    finally:
        logging.getLogger().removeHandler(second)
        logging.getLogger().setLevel(logging.WARNING)
