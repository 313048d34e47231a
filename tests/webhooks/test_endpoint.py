"""Every provider's callbacks through the HTTP endpoint into the ledger."""

from __future__ import annotations

from dataclasses import replace

import pytest
from yarl import URL

from ledger.domain.outcomes import Status
from tests.webhooks.calls import PROVIDERS, Call, make
from tests.webhooks.conftest import Endpoint, prepare, receipt_events, status_of, unparsed_count

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
        "/hooks/jasmin-a/jasmin-token?ref=no-such-message",
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
