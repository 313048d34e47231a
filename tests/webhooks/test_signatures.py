"""Signature schemes against the providers' published test vectors and SDKs."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

import jwt
import plivo.utils  # type: ignore[import-untyped]
import pytest
from multidict import CIMultiDict
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from ledger.receipts.model import WebhookProfile
from ledger.webhooks.messagebird import bird_signature, verify_bird, verify_messagebird
from ledger.webhooks.plivo import plivo_v2_signature, plivo_v3_signature, verify_plivo
from ledger.webhooks.request import Rejection, Verified, WebhookRequest
from ledger.webhooks.signing import matches_any, url_port_variants
from ledger.webhooks.sinch import sinch_signature, verify_sinch
from ledger.webhooks.tokens import verify_token
from ledger.webhooks.twilio import signature_algorithm, twilio_signature, verify_twilio
from ledger.webhooks.vonage import sms_signature, verify_vonage_messages, verify_vonage_sms

FORM = "application/x-www-form-urlencoded"


def profile(provider: str, *secrets: str, **extra: object) -> WebhookProfile:
    return WebhookProfile(provider=provider, tenant="acme", format="x", secrets=secrets, **extra)  # type: ignore[arg-type]


def request(
    url: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    *,
    method: str = "POST",
    content_type: str = FORM,
    now: float | None = None,
) -> WebhookRequest:
    from urllib.parse import parse_qsl

    return WebhookRequest(
        method=method,
        url=url,
        query=parse_qsl(urlsplit(url).query, keep_blank_values=True),
        headers=CIMultiDict(headers or {}),
        body=body,
        content_type=content_type,
        now=time.time() if now is None else now,
    )


# Twilio: vectors of twilio-python tests/unit/test_request_validator.py.

TWILIO_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TWILIO_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}


def test_twilio_published_vector() -> None:
    signature = twilio_signature("12345", TWILIO_URL, list(TWILIO_PARAMS.items()))
    assert signature == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_twilio_repeated_names_vector() -> None:
    params = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert twilio_signature("12345", TWILIO_URL, params) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        (TWILIO_URL.replace(".com", ".com:1234"), "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        (TWILIO_URL, "kvajT1Ptam85bY51eRf/AJRuM3w="),
        (TWILIO_URL.replace("https", "http"), "0ZXoZLH/DfblKGATFgpif+LLRf4="),
        (
            TWILIO_URL.replace(".com", ".com:1234").replace("https", "http"),
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
        ),
    ],
)
def test_twilio_port_variants_vectors(url: str, signature: str) -> None:
    body = urlencode(TWILIO_PARAMS).encode()
    verdict = verify_twilio(
        request(url, body, {"X-Twilio-Signature": signature}), profile("twilio", "12345")
    )
    assert isinstance(verdict, Verified)


def test_twilio_json_body_vector() -> None:
    body = b'{"property": "value", "boolean": true}'
    body_hash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    assert hashlib.sha256(body).hexdigest() == body_hash
    url = f"{TWILIO_URL}&bodySHA256={body_hash}"
    headers = {"X-Twilio-Signature": "a9nBmqA0ju/hNViExpshrM61xv4="}
    verdict = verify_twilio(
        request(url, body, headers, content_type="application/json"), profile("twilio", "12345")
    )
    assert isinstance(verdict, Verified)
    tampered = request(url, body + b" ", headers, content_type="application/json")
    assert verify_twilio(tampered, profile("twilio", "12345")) is Rejection.BAD_SIGNATURE


@pytest.mark.parametrize("algorithm", ["HMAC_SHA1", "HMAC_SHA256"])
def test_twilio_matches_sdk(algorithm: str) -> None:
    params = [("MessageSid", "SM1"), ("MessageStatus", "delivered"), ("Body", "a & b = c")]
    url = "https://hooks.example.com/hooks/twilio-a?x=1"
    ours = twilio_signature("shared-key", url, params, algorithm)
    sdk = RequestValidator("shared-key").compute_signature(url, dict(params), algorithm)
    assert ours == sdk
    assert RequestValidator("shared-key").validate(url, dict(params), ours, algorithm=algorithm)


def test_twilio_sha256_header() -> None:
    header = "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"
    assert signature_algorithm(header) == "HMAC_SHA256"
    assert signature_algorithm(None) == "HMAC_SHA1"
    assert signature_algorithm("key=only") == "HMAC_SHA1"


def test_twilio_unknown_algorithm_rejected() -> None:
    headers = {
        "X-Twilio-Signature": "x",
        "X-Twilio-Webhooks-Signature-Settings": "algorithm=HMAC_SHA512",
    }
    verdict = verify_twilio(request(TWILIO_URL, b"a=1", headers), profile("twilio", "12345"))
    assert verdict is Rejection.BAD_SIGNATURE


# Vonage SMS API: vectors of vonage-php-sdk-core test/Client/SignatureTest.php and
# vonage-python-sdk http_client/tests/test_auth.py.

VONAGE_INBOUND = {
    "message-timestamp": "2013-11-21 15:27:30",
    "messageId": "020000001B0FE827",
    "msisdn": "14843472194",
    "text": "Test again",
    "timestamp": "1385047698",
    "to": "13239877404",
    "type": "text",
}


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("md5hash", "d2e7b1dc968737c5998ad624e02f90b7"),
        ("md5", "DDEBD46008C2D4E93CCE578A332A52D5"),
        ("sha1", "27D0D05C2876C7CB1720DBCDBA4D492E1E55C09A"),
        ("sha256", "DDB8397C2B90AAC7F3882D306475C9A5058C92322EEF43C92B298B6E0FC0D330"),
        (
            "sha512",
            "E0D3C650F8C9D1A5C174D10DDDBFB003E561F59B265616208B0487C5D819481CD3C311D59CF6165E"
            "CD1139622D5BA3A256C0D763AC4A9AD9144B5A426B94FE82",
        ),
    ],
)
def test_vonage_sms_published_vectors(method: str, expected: str) -> None:
    params = list(VONAGE_INBOUND.items())
    assert sms_signature(params, "my_secret_key_for_testing", method) == expected.lower()


def test_vonage_sms_special_characters_vector() -> None:
    params = {
        "keyword": "TEST",
        "message-timestamp": "2017-04-04 22:57:47",
        "messageId": "0B00000042AC53BD",
        "msisdn": "14843472194",
        "nonce": "929d6744-bd28-42c8-b6cf-31d5b4f43732",
        "sig": "e06d9763e3fd0b9c31beb5fc2fcb011c",
        "text": "Test with & and =",
        "timestamp": "1491346667",
        "to": "12192259404",
        "type": "text",
    }
    expected = "e06d9763e3fd0b9c31beb5fc2fcb011c"
    assert sms_signature(params.items(), "my_secret_key_for_testing", "md5hash") == expected


def test_vonage_sms_python_sdk_vectors() -> None:
    params = [("param1", "value1"), ("param2", "value2"), ("timestamp", "1234567890")]
    sha256 = "280c4320703dbc98bfa22db676655ed2acfbfe8792b062ff7622e67f1183c287"
    assert sms_signature(params, "signature_secret", "sha256") == sha256
    assert sms_signature(params, "signature_secret", "md5") == "724c2bf6ca423c36e20631b11d1c5753"


def test_vonage_sms_request_checks() -> None:
    now = 1385047698.0 + 10
    query = urlencode({**VONAGE_INBOUND, "sig": "d2e7b1dc968737c5998ad624e02f90b7"})
    url = f"https://hooks.example.com/hooks/v?{query}"
    good = profile("vonage-sms", "other", "my_secret_key_for_testing", signature_method="md5hash")
    verdict = verify_vonage_sms(request(url, method="GET", now=now), good)
    assert isinstance(verdict, Verified)
    assert verdict.replay_key == "vonage-sms:d2e7b1dc968737c5998ad624e02f90b7"
    stale = verify_vonage_sms(request(url, method="GET", now=now + 3600), good)
    assert stale is Rejection.STALE
    tampered = url.replace("Test+again", "Test+gain")
    assert (
        verify_vonage_sms(request(tampered, method="GET", now=now), good) is Rejection.BAD_SIGNATURE
    )


# Plivo: the V2 vector of plivo-python tests/resources/test_signature.py; V3 against the SDK.


def test_plivo_v2_published_vector() -> None:
    expected = "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc="
    assert plivo_v2_signature("my_auth_token", "https://answer.url", "12345") == expected
    assert plivo.utils.validate_signature("https://answer.url", "12345", expected, "my_auth_token")


@pytest.mark.parametrize(
    ("method", "url", "params"),
    [
        ("POST", "https://hooks.example.com/hooks/p", [("Status", "delivered"), ("To", "1")]),
        ("POST", "https://hooks.example.com/hooks/p?b=2&a=1", [("Status", "sent")]),
        ("POST", "https://hooks.example.com/hooks/p?b=2&a=1", []),
        ("GET", "https://hooks.example.com/hooks/p?Status=queued&MessageUUID=u1", []),
        ("GET", "https://hooks.example.com/hooks/p", []),
    ],
)
def test_plivo_v3_matches_sdk(method: str, url: str, params: list[tuple[str, str]]) -> None:
    ours = plivo_v3_signature("token-1", method, url, "nonce-9", params)
    sdk_params = dict(params) if method == "POST" else {}
    assert plivo.utils.validate_v3_signature(
        method, url, "nonce-9", "token-1", f"other,{ours}", sdk_params
    )


def test_plivo_v2_request_binds_nonce() -> None:
    url = "https://hooks.example.com/hooks/plivo-a"
    signature = plivo_v2_signature("old", url, "n-1")
    headers = {"X-Plivo-Signature-V2": signature, "X-Plivo-Signature-V2-Nonce": "n-1"}
    verdict = verify_plivo(
        request(url + "?q=1", b"Status=sent", headers), profile("plivo", "new", "old")
    )
    assert isinstance(verdict, Verified)
    assert verdict.replay_key == "plivo-v2:n-1"
    main_only = {"X-Plivo-Signature-Ma-V2": signature, "X-Plivo-Signature-V2-Nonce": "n-1"}
    assert isinstance(verify_plivo(request(url, b"", main_only), profile("plivo", "old")), Verified)
    wrong = verify_plivo(request(url, b"", headers), profile("plivo", "new"))
    assert wrong is Rejection.BAD_SIGNATURE
    assert verify_plivo(request(url), profile("plivo", "new")) is Rejection.MISSING_SIGNATURE


# Sinch: the vector of sinch-sdk-dotnet tests (Conversation webhooks).

SINCH_BODY = (
    b'{"app_id":"","accepted_time":"2021-10-18T17:49:13.813615Z","project_id":'
    b'"e2df3a34-a71b-4448-9db5-a8d2baad28e4","contact_create_notification":{"contact":{"id":'
    b'"01FJA8B466Y0R2GNXD78MD9SM1","channel_identities":[{"channel":"SMS","identity":'
    b'"48123456789","app_id":""}],"display_name":"New Test Contact","email":'
    b'"new.contact@email.com","external_id":"","metadata":"","language":"EN_US"}},'
    b'"message_metadata":""}'
)


def test_sinch_published_vector() -> None:
    signature = sinch_signature(
        "foo_secret1234", SINCH_BODY, "01FJA8B4A7BM43YGWSG9GBV067", "1634579353"
    )
    assert signature == "6bpJoRmFoXVjfJIVglMoJzYXxnoxRujzR4k2GOXewOE="
    headers = {
        "x-sinch-webhook-signature": signature,
        "x-sinch-webhook-signature-nonce": "01FJA8B4A7BM43YGWSG9GBV067",
        "x-sinch-webhook-signature-timestamp": "1634579353",
    }
    sinch = profile("sinch", "foo_secret1234")
    fresh = request("https://h/x", SINCH_BODY, headers, now=1634579353 + 5)
    assert isinstance(verify_sinch(fresh, sinch), Verified)
    late = request("https://h/x", SINCH_BODY, headers, now=1634579353 + 301)
    assert verify_sinch(late, sinch) is Rejection.STALE
    early = request("https://h/x", SINCH_BODY, headers, now=1634579353 - 120)
    assert verify_sinch(early, sinch) is Rejection.STALE


# MessageBird: vectors of messagebird/python-rest-api
# tests/test_request_validator/webhook_signature_test_data.json (checked at 2021-07-05T10:00:00Z).

MB_SECRET = "36efdd1aace2e26cd490f0d951138253bef2f7c6d34d18981da781555cc4cebb"
MB_NOW = 1625479200.0
MB_PLAIN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhw"
    "IjoxNjI1NDc5MjYwLCJqdGkiOiI1OWEyNDRkYy1lOWFkLTRlMjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6Ij"
    "BmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.6Fp0r"
    "VOsRr1fj9S2GidXAfkmPVofKr8_RTffC6G6r2E"
)
MB_WITH_PAYLOAD = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhw"
    "IjoxNjI1NDc5MjYwLCJqdGkiOiI5M2U1NTAwNi1hMGU4LTQ1MjYtYTE5MC1mYTVmZjAwZWExMTYiLCJ1cmxfaGFzaCI6Ij"
    "QxZjA1ZjBkZGQwYTIyYWIyMDlhYzQ2ZjQ3YzQ1NzJkOWNlZmEyNTdlZDc0YjI0MDA0YmFlNzUzZWNlNmMyNjAiLCJwYXls"
    "b2FkX2hhc2giOiJkZmZkNjAyMWJiMmJkNWIwYWY2NzYyOTA4MDllYzNhNTMxOTFkZDgxYzdmNzBhNGIyODY4OGEzNjIxOD"
    "I5ODZmIn0._H--TOuYFLpeEH39-rg5E3IHVkjHozBcaKVWPRC5m9I"
)
MB_EXPIRED = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3NTYwMCwiZXhw"
    "IjoxNjI1NDc1NjYwLCJqdGkiOiI1ZjAyZjUyMi02MDMwLTQ2YzgtYjVhMy0wMTI0NjQ3OGQ4YmMiLCJ1cmxfaGFzaCI6Ij"
    "BmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.45MSS"
    "T3B_2PsjNUeiuW54_vUQgVw4rBXrdWrOUEz3lM"
)
MB_OTHER_SECRET = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhw"
    "IjoxNjI1NDc5MjYwLCJqdGkiOiIyNDNjMjdhZS0yZjAyLTQ2YTAtODg1Mi1jNjZmMzdlYTlmNDYiLCJ1cmxfaGFzaCI6Ij"
    "BmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.JgSeY"
    "yOtlEKAXk8bz30iJI4tXgf4lxknoiezawuVhb4"
)
MB_NONE_ALG = (
    "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpc3MiOiJNZXNzYWdlQmlyZCIsImlhdCI6MTYyNTQ3OTIwMCwiZXhwIjo"
    "xNjI1NDc5MjYwLCJqdGkiOiI1OWEyNDRkYy1lOWFkLTRlMjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6IjBmM"
    "TE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ."
)


@pytest.mark.parametrize(
    ("token", "url", "body", "expected"),
    [
        (MB_PLAIN, "https://example.com/", b"", Verified),
        (MB_WITH_PAYLOAD, "https://example.com/path?bar=1&foo=2", b"Hello, World!", Verified),
        (MB_EXPIRED, "https://example.com/", b"", Rejection.STALE),
        (MB_PLAIN, "https://example.com/path?foo=1&bar=2", b"", Rejection.BAD_SIGNATURE),
        (MB_PLAIN, "https://example.com/", b"Hello, World!", Rejection.BAD_SIGNATURE),
        (MB_WITH_PAYLOAD, "https://example.com/path?bar=1&foo=2", b"", Rejection.BAD_SIGNATURE),
        (
            MB_WITH_PAYLOAD,
            "https://example.com/path?bar=1&foo=2",
            b"Hello!",
            Rejection.BAD_SIGNATURE,
        ),
        (MB_OTHER_SECRET, "https://example.com/", b"", Rejection.BAD_SIGNATURE),
        (MB_NONE_ALG, "https://example.com/", b"", Rejection.MALFORMED),
    ],
)
def test_messagebird_published_vectors(token: str, url: str, body: bytes, expected: object) -> None:
    headers = {"MessageBird-Signature-JWT": token}
    verdict = verify_messagebird(
        request(url, body, headers, method="GET", now=MB_NOW), profile("messagebird", MB_SECRET)
    )
    if expected is Verified:
        assert isinstance(verdict, Verified)
    else:
        assert verdict is expected


def test_bird_signature_checks() -> None:
    url = "https://hooks.example.com/hooks/bird-a"
    body = b'{"id":"m1","status":"delivered"}'
    stamp = str(int(time.time()))
    headers = {
        "messagebird-signature": bird_signature("old-key", stamp, url, body),
        "messagebird-request-timestamp": stamp,
    }
    keys = profile("bird", "new-key", "old-key")
    assert isinstance(verify_bird(request(url, body, headers), keys), Verified)
    assert verify_bird(request(url, body + b" ", headers), keys) is Rejection.BAD_SIGNATURE
    assert verify_bird(request(url + "?x=1", body, headers), keys) is Rejection.BAD_SIGNATURE
    late = request(url, body, headers, now=time.time() + 600)
    assert verify_bird(late, keys) is Rejection.STALE


# Vonage Messages API: tokens made with PyJWT as Vonage makes them.


def vonage_token(secret: str, body: bytes, issued: float, **claims: object) -> str:
    payload = {
        "iat": int(issued),
        "jti": "d7a4f6c2",
        "iss": "Vonage",
        "payload_hash": hashlib.sha256(body).hexdigest(),
        "api_key": "abc123",
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


NEW_KEY = "vonage-signature-secret-new-0123456789"
OLD_KEY = "vonage-signature-secret-old-0123456789"
OTHER_KEY = "vonage-signature-secret-other-012345678"


def test_vonage_messages_checks() -> None:
    body = b'{"message_uuid":"u1","status":"delivered"}'
    now = time.time()
    keys = profile("vonage-messages", NEW_KEY, OLD_KEY)

    def verify(token: str, data: bytes = body, at: float = now) -> object:
        headers = {"Authorization": f"Bearer {token}"}
        return verify_vonage_messages(request("https://h/x", data, headers, now=at), keys)

    assert isinstance(verify(vonage_token(OLD_KEY, body, now)), Verified)
    assert verify(vonage_token(OTHER_KEY, body, now)) is Rejection.BAD_SIGNATURE
    assert verify(vonage_token(NEW_KEY, body, now), body + b" ") is Rejection.BAD_SIGNATURE
    assert verify(vonage_token(NEW_KEY, body, now - 900)) is Rejection.STALE
    assert verify(vonage_token(NEW_KEY, body, now, exp=int(now) - 1)) is Rejection.STALE
    no_hash = jwt.encode({"iat": int(now)}, NEW_KEY, algorithm="HS256")
    assert verify(no_hash) is Rejection.BAD_SIGNATURE
    unsigned = verify_vonage_messages(request("https://h/x", body), keys)
    assert unsigned is Rejection.MISSING_SIGNATURE


# Tokens and helpers.


def test_token_rotation() -> None:
    keys = profile("kannel", "token-new", "token-old")
    assert isinstance(verify_token("token-old", keys), Verified)
    assert isinstance(verify_token("token-new", keys), Verified)
    assert verify_token("token-other", keys) is Rejection.BAD_SIGNATURE
    assert verify_token(None, keys) is Rejection.MISSING_SIGNATURE


def test_matches_any_compares_every_pair() -> None:
    assert matches_any(["a", "b"], ["c", "b"])
    assert not matches_any(["a"], ["A", "ab", ""])


def test_url_port_variants() -> None:
    assert url_port_variants("https://h.example/x?y=1") == [
        "https://h.example/x?y=1",
        "https://h.example:443/x?y=1",
    ]
    assert url_port_variants("http://h.example:8080/x") == [
        "http://h.example/x",
        "http://h.example:8080/x",
    ]
