from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.audit import GENESIS_HASH, canonical_json, chain_hash, event_id, event_id_text


def test_canonical_json_sorts_keys_and_encodes_types() -> None:
    record = {
        "b": b"\x00\xff",
        "a": datetime(2026, 3, 14, 9, 26, tzinfo=UTC),
        "c": [1, "é", None, True],
        "d": uuid.UUID(int=1),
    }
    assert (
        canonical_json(record)
        == (
            '{"a":"2026-03-14T09:26:00.000000Z","b":"AP8=","c":[1,"é",null,true],'
            '"d":"00000000-0000-0000-0000-000000000001"}'
        ).encode()
    )


def test_canonical_json_converts_offsets_to_utc() -> None:
    local = datetime(2026, 3, 14, 12, 26, tzinfo=UTC) + timedelta(hours=0)
    shifted = local.astimezone(datetime.now().astimezone().tzinfo)
    assert canonical_json({"t": local}) == canonical_json({"t": shifted})


def test_chain_hash_links_previous_digest() -> None:
    first = chain_hash(GENESIS_HASH, {"x": 1})
    expected = hashlib.sha256(bytes(32) + b'{"x":1}').hexdigest()
    assert first == expected
    assert chain_hash(first, {"x": 1}) != first


def test_event_id_is_deterministic_uuid5() -> None:
    aggregate = uuid.uuid4()
    assert event_id(aggregate, 3) == uuid.uuid5(aggregate, "3")
    assert event_id(aggregate, 3) != event_id(aggregate, 4)


_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**62), 2**62) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=12), _values, max_size=8))
def test_canonical_json_equals_sorted_compact_json(record: dict[str, object]) -> None:
    import json

    expected = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(record) == expected.encode("utf-8")


def test_event_id_text_equals_uuid5_text() -> None:
    for version in (1, 2, 10, 12345):
        aggregate = uuid.uuid4()
        assert event_id_text(aggregate, version) == str(event_id(aggregate, version))
