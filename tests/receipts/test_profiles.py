"""Carrier profiles from TOML files and from test-vector context."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.receipts.model import IdBase
from ledger.receipts.profiles import (
    ProfileConfigError,
    load_profiles,
    metadata_from_context,
    profile_from_context,
    profiles_from_toml,
)

FULL = """
[connections.uk-smpp-a]
format = "smpp-text"
timezone = "+03:00"
error_table = "gsm-map"
submit_id_base = "hex"
receipt_id_base = "decimal"
confirms_delivery = false
status_synonyms = { acked = "Accepted" }
permanent_codes = ["013", 9]
transient_codes = ["034"]

[connections.twilio-main]
format = "twilio"
"""


def test_load_full_file(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text(FULL, encoding="utf-8")
    profiles = load_profiles(path)

    smpp = profiles["uk-smpp-a"]
    assert smpp.name == "uk-smpp-a"
    assert smpp.timezone == "+03:00"
    assert smpp.error_table == "gsm-map"
    assert smpp.submit_id_base is IdBase.HEX
    assert smpp.receipt_id_base is IdBase.DECIMAL
    assert smpp.confirms_delivery is False
    assert smpp.status_synonyms == {"ACKED": "accepted"}
    assert smpp.permanent_codes == frozenset({"013", "9"})
    assert smpp.transient_codes == frozenset({"034"})

    twilio = profiles["twilio-main"]
    assert twilio.format == "twilio"
    assert twilio.timezone == "UTC"


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ('colour = "blue"', "colour"),
        ('format = "fax"', "format"),
        ('timezone = "Mars/Base"', "timezone"),
        ('error_table = "itu"', "error_table"),
        ('submit_id_base = "octal"', "submit_id_base"),
        ('confirms_delivery = "no"', "confirms_delivery"),
        ('status_synonyms = { OK = "great" }', "status_synonyms.OK"),
        ("status_synonyms = 3", "status_synonyms"),
        ('permanent_codes = "001"', "permanent_codes"),
        ("permanent_codes = [true]", "permanent_codes"),
        ('permanent_codes = ["1"]\ntransient_codes = ["1"]', "transient_codes"),
    ],
)
def test_invalid_setting_names_connection_and_field(settings: str, field: str) -> None:
    with pytest.raises(ProfileConfigError) as info:
        profiles_from_toml(f"[connections.edge]\n{settings}\n")
    assert info.value.connection == "edge"
    assert info.value.field == field
    assert "edge" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_unknown_top_level_key_rejected() -> None:
    with pytest.raises(ProfileConfigError) as info:
        profiles_from_toml('version = 2\n[connections.a]\nformat = "kannel"\n')
    assert info.value.field == "version"


def test_invalid_toml_rejected() -> None:
    with pytest.raises(ProfileConfigError):
        profiles_from_toml("[connections.a\n")


def test_empty_file_gives_no_profiles() -> None:
    assert profiles_from_toml("") == {}


def test_context_maps_zone_and_table() -> None:
    profile = profile_from_context("c", {"smsc_tz": "+03:00", "err_profile": "twilio-smpp"})
    assert profile.timezone == "+03:00"
    assert profile.error_table == "twilio-smpp"
    assert profile.format == "smpp-text"


def test_context_id_relation_sets_bases() -> None:
    profile = profile_from_context("c", {"id_relation": "same-hex-case-insensitive"})
    assert profile.submit_id_base is IdBase.HEX
    assert profile.receipt_id_base is IdBase.HEX
    assert profile_from_context("c", None).receipt_id_base is IdBase.TEXT


def test_context_explicit_bases_win() -> None:
    context = {"id_relation": "hex", "submit_id_base": "decimal", "receipt_id_base": "hex"}
    profile = profile_from_context("c", context)
    assert profile.submit_id_base is IdBase.DECIMAL
    assert profile.receipt_id_base is IdBase.HEX


def test_context_jasmin_level_goes_to_metadata() -> None:
    assert metadata_from_context({"jasmin_requested_level": 3, "smsc_tz": "UTC"}) == {
        "jasmin_requested_level": "3"
    }
    assert metadata_from_context(None) == {}
