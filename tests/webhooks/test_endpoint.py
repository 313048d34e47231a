"""Every provider's callbacks through the HTTP endpoint into the ledger."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from yarl import URL

from ledger.domain.outcomes import Status
from tests.webhooks.calls import (
    PROVIDERS,
    Call,
    make,
    messages_status,
    twilio_json,
    vonage_messages_call,
)
from tests.webhooks.conftest import (
    TENANT,
    Endpoint,
    prepare,
    receipt_events,
    status_of,
    unparsed_count,
)

SIGNED_BODY = [name for name, p in PROVIDERS.items() if p.signs_body]
TIMESTAMPED = [name for name, p in PROVIDERS.items() if p.timestamped]
ROTATED = [name for name, p in PROVIDERS.items() if p.old_secret != p.new_secret]


async def send(endpoint: Endpoint, call: Call) -> tuple[int, str]:
    # encoded=True sends the query string byte for byte, as the provider signed it.
    url = URL(endpoint.url + call.path, encoded=True)
    async with endpoint.session.request(
        call.method, url, data=call.body or None, headers=call.headers
    ) as response:
        return response.status, await response.text()


def expected_body(name: str) -> str:
    return "ACK/Jasmin" if name == "jasmin" else ""


def setup(endpoint: Endpoint, name: str) -> tuple[str, str]:
    message_id = f"m-{name}"
    carrier_id = f"C{abs(hash(name)) % 10**8}X"
    prepare(endpoint.runtime, message_id, PROVIDERS[name].connection, carrier_id)
    return message_id, carrier_id


def assert_nothing_recorded(endpoint: Endpoint, name: str, message_id: str) -> None:
    assert status_of(endpoint.runtime, message_id) is Status.ACCEPTED
    assert receipt_events(endpoint.runtime, message_id) == []
    assert unparsed_count(endpoint.runtime, PROVIDERS[name].connection) == 0


@pytest.mark.parametrize("name", sorted(PROVIDERS))
async def test_callback_recorded(endpoint: Endpoint, name: str) -> None:
    message_id, carrier_id = setup(endpoint, name)
    status, body = await send(endpoint, make(name, carrier_id))
    assert status == 200
    assert body == expected_body(name)
    assert status_of(endpoint.runtime, message_id) is Status.DELIVERED
    assert receipt_events(endpoint.runtime, message_id) == ["Delivered"]
    assert endpoint.metrics.total("recorded") == 1


@pytest.mark.parametrize("name", ROTATED)
async def test_callback_old_secret_accepted(endpoint: Endpoint, name: str) -> None:
    message_id, carrier_id = setup(endpoint, name)
    call = make(name, carrier_id, secret=PROVIDERS[name].old_secret)
    status, _ = await send(endpoint, call)
    assert status == 200
    assert status_of(endpoint.runtime, message_id) is Status.DELIVERED


def test_url_tokens_rotate() -> None:
    # Rotation is tested only for providers whose two secrets differ.
    assert {"kannel", "jasmin", "infobip"} <= set(ROTATED)


@pytest.mark.parametrize("name", ["jasmin", "infobip"])
async def test_token_rotation(endpoint: Endpoint, name: str) -> None:
    signed = PROVIDERS[name]
    for index, token in enumerate((signed.new_secret, signed.old_secret)):
        message_id, carrier_id = f"m-{name}-{index}", f"C-{name}-{index}"
        prepare(endpoint.runtime, message_id, signed.connection, carrier_id)
        status, body = await send(endpoint, make(name, carrier_id, secret=token))
        assert (status, body) == (200, expected_body(name))
        assert status_of(endpoint.runtime, message_id) is Status.DELIVERED
    message_id, carrier_id = setup(endpoint, name)
    status, _ = await send(endpoint, make(name, carrier_id, secret=f"{name}-token-retired"))
    assert status == 403
    assert_nothing_recorded(endpoint, name, message_id)


@pytest.mark.parametrize("name", sorted(PROVIDERS))
async def test_callback_wrong_secret_rejected(endpoint: Endpoint, name: str) -> None:
    message_id, carrier_id = setup(endpoint, name)
    status, body = await send(
        endpoint, make(name, carrier_id, secret="not-the-secret-at-all-0123456789abcdef")
    )
    assert status == 403
    assert body != "ACK/Jasmin"
    assert_nothing_recorded(endpoint, name, message_id)
    assert endpoint.metrics.total("rejected_signature") == 1


@pytest.mark.parametrize("name", SIGNED_BODY)
async def test_callback_tampered_rejected(endpoint: Endpoint, name: str) -> None:
    message_id, carrier_id = setup(endpoint, name)
    status, _ = await send(endpoint, make(name, carrier_id).tampered())
    assert status == 403
    assert_nothing_recorded(endpoint, name, message_id)


@pytest.mark.parametrize("name", TIMESTAMPED)
async def test_callback_stale_rejected(endpoint: Endpoint, name: str) -> None:
    message_id, carrier_id = setup(endpoint, name)
    status, _ = await send(endpoint, make(name, carrier_id, age=3600))
    assert status == 403
    assert_nothing_recorded(endpoint, name, message_id)


@pytest.mark.parametrize("name", sorted(PROVIDERS))
async def test_callback_unsigned_rejected(endpoint: Endpoint, name: str) -> None:
    message_id, carrier_id = setup(endpoint, name)
    call = make(name, carrier_id)
    content_type_only = {k: v for k, v in call.headers.items() if k.lower() == "content-type"}
    path = call.path
    if name in ("kannel", "jasmin", "infobip"):
        path = path.replace(f"/{PROVIDERS[name].new_secret}", "")
    if name == "vonage-sms":
        path = path.split("&sig=")[0]
    status, _ = await send(endpoint, replace(call, headers=content_type_only, path=path))
    assert status == (503 if name == "vonage-messages" else 401)
    assert_nothing_recorded(endpoint, name, message_id)


@pytest.mark.parametrize("name", sorted(PROVIDERS))
async def test_callback_repeated_appends_nothing(endpoint: Endpoint, name: str) -> None:
    message_id, carrier_id = setup(endpoint, name)
    call = make(name, carrier_id)
    first = await send(endpoint, call)
    second = await send(endpoint, call)
    assert first == (200, expected_body(name))
    assert second == (200, expected_body(name))
    assert receipt_events(endpoint.runtime, message_id) == ["Delivered"]
    assert endpoint.metrics.total("duplicate") == 1


@pytest.mark.parametrize(
    ("word", "expected", "code"),
    [("rejected", Status.REJECTED, 1320), ("undeliverable", Status.FAILED, 1330)],
)
async def test_vonage_messages_failure_recorded(
    endpoint: Endpoint, word: str, expected: Status, code: int
) -> None:
    message_id, carrier_id = setup(endpoint, "vonage-messages")
    body = messages_status(carrier_id, word, code)
    call = vonage_messages_call(PROVIDERS["vonage-messages"].new_secret, body, time.time(), "n1")
    status, _ = await send(endpoint, call)
    assert status == 200
    message, _ = endpoint.runtime.ledger.get_message(TENANT, message_id)
    assert message.outcome.status is expected
    assert message.outcome.final
    assert message.outcome.error_code == str(code)
    assert unparsed_count(endpoint.runtime, "vonage-msg-a") == 0
    assert endpoint.metrics.total("recorded") == 1


@pytest.mark.parametrize("algorithm", ["HMAC_SHA1", "HMAC_SHA256"])
async def test_twilio_json_body_recorded(endpoint: Endpoint, algorithm: str) -> None:
    message_id, carrier_id = setup(endpoint, "twilio")
    call = twilio_json("twilio-new-token", carrier_id, time.time(), "n1", algorithm)
    assert "bodySHA256=" in call.path
    status, _ = await send(endpoint, call)
    assert status == 200
    assert status_of(endpoint.runtime, message_id) is Status.DELIVERED
    assert receipt_events(endpoint.runtime, message_id) == ["Delivered"]
    assert unparsed_count(endpoint.runtime, "twilio-a") == 0
    tampered = await send(endpoint, call.tampered())
    assert tampered[0] == 403


async def test_plivo_nonce_replayed_with_other_body(endpoint: Endpoint) -> None:
    _, carrier_id = setup(endpoint, "plivo")
    other_id, other_carrier = "m-plivo-other", "P-OTHER-1"
    prepare(endpoint.runtime, other_id, "plivo-a", other_carrier)
    call = make("plivo", carrier_id, nonce="captured-nonce")
    assert (await send(endpoint, call))[0] == 200
    forged = replace(call, body=call.body.replace(carrier_id.encode(), other_carrier.encode()))
    status, _ = await send(endpoint, forged)
    assert status == 403
    assert status_of(endpoint.runtime, other_id) is Status.ACCEPTED
    assert endpoint.metrics.total("replayed") == 1


async def test_unparsable_callback_kept_and_acknowledged(endpoint: Endpoint) -> None:
    call = make("jasmin", "J-1")
    broken = replace(call, body=b"id=6a9c&level=2&message_status=")
    status, body = await send(endpoint, broken)
    assert (status, body) == (200, "ACK/Jasmin")
    assert unparsed_count(endpoint.runtime, "jasmin-a") == 1
    assert endpoint.metrics.total("unparsed") == 1


async def test_receipt_before_acceptance_parked(endpoint: Endpoint) -> None:
    status, _ = await send(endpoint, make("twilio", "SM-EARLY-1"))
    assert status == 200
    assert endpoint.metrics.total("parked") == 1
    prepare(endpoint.runtime, "m-early", "twilio-a", "SM-EARLY-1")
    assert status_of(endpoint.runtime, "m-early") is Status.DELIVERED


async def test_jasmin_unknown_message_retried_not_404(endpoint: Endpoint) -> None:
    fields = b"id=6a9c&message_status=ESME_ROK&level=1"
    call = Call(
        "POST",
        "/hooks/jasmin-a/jasmin-token-new?ref=no-such-message",
        fields,
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    status, body = await send(endpoint, call)
    assert status == 503
    assert body != "ACK/Jasmin"


async def test_unknown_connection_not_found(endpoint: Endpoint) -> None:
    status, _ = await send(endpoint, Call("POST", "/hooks/nobody", b"a=1"))
    assert status == 404


async def test_connection_without_webhook_not_found(endpoint: Endpoint) -> None:
    status, _ = await send(endpoint, Call("POST", "/hooks/smpp-a", b"a=1"))
    assert status == 404


async def test_health_endpoint(endpoint: Endpoint) -> None:
    async with endpoint.session.get(endpoint.url + "/healthz") as response:
        assert response.status == 200
