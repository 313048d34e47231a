"""Carrier profiles: from a TOML file, and from the ``context`` of test vectors.

A profiles file has one table per connection::

    [connections.uk-smpp-a]
    format = "smpp-text"
    timezone = "+03:00"
    error_table = "gsm-map"
    submit_id_base = "hex"
    receipt_id_base = "decimal"
    confirms_delivery = true
    status_synonyms = { ACKED = "accepted" }
    permanent_codes = ["013"]
    transient_codes = ["034"]
    stuck_after_seconds = 3600
    retry_max_attempts = 5

    [connections.uk-smpp-a.webhook]     # only where receipts arrive over HTTP
    provider = "twilio"
    tenant = "acme"
    secrets = ["new-auth-token", "old-auth-token"]
    public_base_url = "https://hooks.example.com"

Every key is optional except the table itself (and, in a ``webhook`` table,
``provider`` and ``tenant``), and any other key is an error.

The dlr-level requested from Jasmin belongs to each message rather than to the
connection, so it travels in the ``metadata`` argument of
:func:`ledger.receipts.parse.parse_receipt` (key ``jasmin_requested_level``),
and :func:`metadata_from_context` puts it there.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ledger.domain.identity import check_tenant
from ledger.receipts.dates import resolve_zone
from ledger.receipts.error_tables import ERROR_TABLES
from ledger.receipts.model import CarrierProfile, IdBase, ReceiptStatus, WebhookProfile
from ledger.receipts.parse import FORMATS

__all__ = [
    "WEBHOOK_PROVIDERS",
    "ProfileConfigError",
    "load_profiles",
    "metadata_from_context",
    "profile_from_context",
    "profile_from_mapping",
    "profiles_digest",
    "profiles_from_toml",
]

_KEYS = frozenset(
    {
        "format",
        "timezone",
        "error_table",
        "submit_id_base",
        "receipt_id_base",
        "confirms_delivery",
        "status_synonyms",
        "permanent_codes",
        "transient_codes",
        "stuck_after_seconds",
        "retry_max_attempts",
        "webhook",
    }
)

WEBHOOK_PROVIDERS: Mapping[str, str] = {
    "twilio": "twilio",
    "vonage-sms": "vonage",
    "vonage-messages": "vonage",
    "plivo": "plivo",
    "sinch": "sinch",
    "sns": "sns",
    "messagebird": "messagebird",
    "bird": "messagebird",
    "kannel": "kannel",
    "jasmin": "jasmin",
    "infobip": "infobip",
}
"""Webhook providers and the receipt format their callbacks are parsed with by default."""

_WEBHOOK_KEYS = frozenset(
    {
        "provider",
        "tenant",
        "format",
        "secrets",
        "public_base_url",
        "signature_method",
        "topic_arns",
        "max_age_seconds",
        "message_id_param",
        "metadata",
    }
)
_VONAGE_SIGNATURE_METHODS = ("md5hash", "md5", "sha1", "sha256", "sha512")

# Context keys that are per message; they go to metadata, not to the profile.
_METADATA_KEYS = ("jasmin_requested_level",)


class ProfileConfigError(ValueError):
    """A carrier profile setting is invalid.

    Attributes:
        connection: The connection whose table contains the setting ("" for the
            file as a whole).
        field: The setting's key.
    """

    def __init__(self, connection: str, field: str, reason: str) -> None:
        self.connection = connection
        self.field = field
        self.reason = reason
        where = f"connection {connection!r}, " if connection else ""
        super().__init__(f"invalid carrier profile: {where}field {field!r}: {reason}")


def _text(name: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ProfileConfigError(name, key, f"expected a non-empty string, got {value!r}")
    return value.strip()


def _id_base(name: str, key: str, value: Any) -> IdBase:
    text = _text(name, key, value).lower()
    try:
        return IdBase(text)
    except ValueError:
        choices = ", ".join(base.value for base in IdBase)
        raise ProfileConfigError(name, key, f"{value!r} is not one of {choices}") from None


def _codes(name: str, key: str, value: Any) -> frozenset[str]:
    if not isinstance(value, list):
        raise ProfileConfigError(name, key, f"expected a list of codes, got {value!r}")
    codes: set[str] = set()
    for code in value:
        if isinstance(code, bool) or not isinstance(code, (str, int)) or str(code).strip() == "":
            raise ProfileConfigError(name, key, f"code {code!r} must be a non-empty string")
        codes.add(str(code).strip())
    return frozenset(codes)


def _synonyms(name: str, value: Any) -> dict[str, str]:
    key = "status_synonyms"
    if not isinstance(value, dict):
        raise ProfileConfigError(name, key, f"expected a table of word = status, got {value!r}")
    synonyms: dict[str, str] = {}
    statuses = ", ".join(status.value for status in ReceiptStatus)
    for word, status in value.items():
        target = _text(name, f"{key}.{word}", status).lower()
        if target not in {status.value for status in ReceiptStatus}:
            raise ProfileConfigError(name, f"{key}.{word}", f"{status!r} is not one of {statuses}")
        synonyms[word.strip().upper()] = target
    return synonyms


def _strings(name: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ProfileConfigError(name, key, "expected a non-empty list of strings")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            # The value may be a secret, so it is not shown.
            raise ProfileConfigError(name, key, "every entry must be a non-empty string")
    return tuple(item.strip() for item in value)


def _positive_int(name: str, key: str, value: Any, unit: str = " of seconds") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ProfileConfigError(name, key, f"expected a whole number{unit} above 0, got {value!r}")
    return value


def _base_url(name: str, key: str, value: Any) -> str:
    url = _text(name, key, value).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ProfileConfigError(
            name, key, f"{url!r} is not a base URL: use scheme://host[:port][/prefix]"
        )
    return url


def _webhook(name: str, value: Any, connection_format: str | None) -> WebhookProfile:
    """Build and validate a connection's ``webhook`` table."""
    key = "webhook"
    if not isinstance(value, dict):
        raise ProfileConfigError(name, key, "expected a table [connections.<name>.webhook]")
    unknown = sorted(set(value) - _WEBHOOK_KEYS)
    if unknown:
        raise ProfileConfigError(
            name,
            f"{key}.{unknown[0]}",
            f"unknown setting; expected one of {', '.join(sorted(_WEBHOOK_KEYS))}",
        )
    for required in ("provider", "tenant"):
        if required not in value:
            raise ProfileConfigError(name, f"{key}.{required}", "is required")

    provider = _text(name, f"{key}.provider", value["provider"]).lower()
    if provider not in WEBHOOK_PROVIDERS:
        raise ProfileConfigError(
            name, f"{key}.provider", f"{provider!r} is not one of {', '.join(WEBHOOK_PROVIDERS)}"
        )

    tenant = _text(name, f"{key}.tenant", value["tenant"])
    violation = check_tenant(tenant)
    if violation is not None:
        raise ProfileConfigError(name, f"{key}.tenant", violation.description)

    fmt = connection_format or WEBHOOK_PROVIDERS[provider]
    if "format" in value:
        fmt = _text(name, f"{key}.format", value["format"]).lower()
        if fmt not in FORMATS:
            raise ProfileConfigError(
                name, f"{key}.format", f"{fmt!r} is not one of {', '.join(FORMATS)}"
            )

    settings: dict[str, Any] = {}
    if "secrets" in value:
        settings["secrets"] = _strings(name, f"{key}.secrets", value["secrets"])
    elif provider != "sns":
        # SNS signs with Amazon's certificates; every other provider needs a
        # shared secret or a URL token.
        raise ProfileConfigError(name, f"{key}.secrets", f"is required for provider {provider!r}")
    if "public_base_url" in value:
        settings["public_base_url"] = _base_url(
            name, f"{key}.public_base_url", value["public_base_url"]
        )

    if provider == "vonage-sms":
        method = str(value.get("signature_method", "md5hash")).strip().lower()
        if method not in _VONAGE_SIGNATURE_METHODS:
            raise ProfileConfigError(
                name,
                f"{key}.signature_method",
                f"{method!r} is not one of {', '.join(_VONAGE_SIGNATURE_METHODS)}",
            )
        settings["signature_method"] = method
    elif "signature_method" in value:
        raise ProfileConfigError(name, f"{key}.signature_method", "applies to vonage-sms only")

    if provider == "sns":
        if "topic_arns" not in value:
            raise ProfileConfigError(name, f"{key}.topic_arns", "is required for provider 'sns'")
        settings["topic_arns"] = _strings(name, f"{key}.topic_arns", value["topic_arns"])
    elif "topic_arns" in value:
        raise ProfileConfigError(name, f"{key}.topic_arns", "applies to sns only")

    if "max_age_seconds" in value:
        settings["max_age_seconds"] = _positive_int(
            name, f"{key}.max_age_seconds", value["max_age_seconds"]
        )
    if "message_id_param" in value:
        settings["message_id_param"] = _text(
            name, f"{key}.message_id_param", value["message_id_param"]
        )
    if "metadata" in value:
        metadata = value["metadata"]
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise ProfileConfigError(name, f"{key}.metadata", "expected a table of text values")
        settings["metadata"] = dict(metadata)

    return WebhookProfile(provider=provider, tenant=tenant, format=fmt, **settings)


def profile_from_mapping(name: str, table: Mapping[str, Any]) -> CarrierProfile:
    """Build and validate one connection's profile from its settings table.

    Raises:
        ProfileConfigError: A key is unknown or a value is invalid.
    """
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ProfileConfigError(
            name, unknown[0], f"unknown setting; expected one of {', '.join(sorted(_KEYS))}"
        )
    settings: dict[str, Any] = {}
    if "format" in table:
        fmt = _text(name, "format", table["format"]).lower()
        if fmt not in FORMATS:
            raise ProfileConfigError(name, "format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
        settings["format"] = fmt
    if "timezone" in table:
        zone = _text(name, "timezone", table["timezone"])
        try:
            resolve_zone(zone)
        except ValueError as exc:
            raise ProfileConfigError(name, "timezone", str(exc)) from None
        settings["timezone"] = zone
    if "error_table" in table:
        error_table = _text(name, "error_table", table["error_table"]).lower()
        if error_table not in ERROR_TABLES:
            raise ProfileConfigError(
                name,
                "error_table",
                f"{error_table!r} is not one of {', '.join(sorted(ERROR_TABLES))}",
            )
        settings["error_table"] = error_table
    for key in ("submit_id_base", "receipt_id_base"):
        if key in table:
            settings[key] = _id_base(name, key, table[key])
    if "confirms_delivery" in table:
        if not isinstance(table["confirms_delivery"], bool):
            raise ProfileConfigError(name, "confirms_delivery", "expected true or false")
        settings["confirms_delivery"] = table["confirms_delivery"]
    if "status_synonyms" in table:
        settings["status_synonyms"] = _synonyms(name, table["status_synonyms"])
    for key in ("permanent_codes", "transient_codes"):
        if key in table:
            settings[key] = _codes(name, key, table[key])
    if "stuck_after_seconds" in table:
        settings["stuck_after_seconds"] = _positive_int(
            name, "stuck_after_seconds", table["stuck_after_seconds"]
        )
    if "retry_max_attempts" in table:
        settings["retry_max_attempts"] = _positive_int(
            name, "retry_max_attempts", table["retry_max_attempts"], unit=""
        )
    if "webhook" in table:
        settings["webhook"] = _webhook(name, table["webhook"], settings.get("format"))
    both = settings.get("permanent_codes", frozenset()) & settings.get(
        "transient_codes", frozenset()
    )
    if both:
        raise ProfileConfigError(
            name, "transient_codes", f"codes {sorted(both)} are also listed as permanent"
        )
    return CarrierProfile(name=name, **settings)


def profiles_from_toml(text: str) -> dict[str, CarrierProfile]:
    """Parse profiles from TOML text.

    Returns:
        Profiles by connection name.

    Raises:
        ProfileConfigError: The text is not TOML, has keys other than
            ``connections``, or a connection's settings are invalid.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileConfigError("", "connections", f"invalid TOML: {exc}") from exc
    extra = sorted(set(document) - {"connections"})
    if extra:
        raise ProfileConfigError(
            "", extra[0], "unknown top-level key; expected [connections.<name>]"
        )
    connections = document.get("connections", {})
    if not isinstance(connections, dict):
        raise ProfileConfigError("", "connections", "expected tables [connections.<name>]")
    profiles: dict[str, CarrierProfile] = {}
    for name, table in connections.items():
        if not isinstance(table, dict):
            raise ProfileConfigError(name, "connections", "expected a table of settings")
        profiles[name] = profile_from_mapping(name, table)
    return profiles


def profiles_digest(text: str) -> str:
    """Return the SHA-256 (hex) of a profiles file's canonical content.

    The canonical content is the parsed TOML as JSON with sorted keys, so
    comments, blank lines, key order and quoting do not change the digest.

    Raises:
        ProfileConfigError: The text is not TOML.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileConfigError("", "connections", f"invalid TOML: {exc}") from exc
    canonical = json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def load_profiles(path: str | Path) -> dict[str, CarrierProfile]:
    """Read and validate a profiles TOML file.

    Raises:
        OSError: The file cannot be read.
        ProfileConfigError: The file's content is invalid.
    """
    return profiles_from_toml(Path(path).read_text(encoding="utf-8"))


def _relation_base(context: Mapping[str, Any]) -> IdBase:
    # "same-hex-case-insensitive" and similar hints mean both sides write hex.
    relation = str(context.get("id_relation", "")).lower()
    if "hex" in relation:
        return IdBase.HEX
    if "decimal" in relation:
        return IdBase.DECIMAL
    return IdBase.TEXT


def profile_from_context(
    name: str, context: Mapping[str, Any] | None, *, format: str = "smpp-text"
) -> CarrierProfile:
    """Build the profile that a test vector's ``context`` describes.

    ``smsc_tz`` becomes ``timezone`` and ``err_profile`` becomes
    ``error_table``. ``submit_id_base`` and ``receipt_id_base`` are taken as
    given; without them, an ``id_relation`` hint that names hex or decimal
    sets both. Keys about the ledger's state are ignored here.

    Args:
        name: Connection name for the profile.
        context: The vector's ``context`` object, or None.
        format: Receipt format of the connection.

    Raises:
        ProfileConfigError: A context value is invalid.
    """
    context = context or {}
    table: dict[str, Any] = {"format": format}
    if "smsc_tz" in context:
        table["timezone"] = context["smsc_tz"]
    if "err_profile" in context:
        table["error_table"] = context["err_profile"]
    base = _relation_base(context)
    table["submit_id_base"] = context.get("submit_id_base", base.value)
    table["receipt_id_base"] = context.get("receipt_id_base", base.value)
    return profile_from_mapping(name, table)


def metadata_from_context(context: Mapping[str, Any] | None) -> dict[str, str]:
    """Return the per-message metadata that a test vector's ``context`` holds."""
    context = context or {}
    return {key: str(context[key]) for key in _METADATA_KEYS if key in context}
