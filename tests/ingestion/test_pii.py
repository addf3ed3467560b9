"""The keyed hash: standard HMAC-SHA256, the same in Python and in DuckDB SQL."""

from __future__ import annotations

import duckdb
import pytest

from ingestion.pii import keyed_hash, keyed_hash_pads, keyed_hash_sql, register_keyed_hash

# RFC 4231, test case 2: HMAC-SHA256 with key "Jefe"
RFC_4231_KEY = "Jefe"
RFC_4231_DATA = "what do ya want for nothing?"
RFC_4231_HMAC = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_the_keyed_hash_is_hmac_sha256() -> None:
    assert keyed_hash(RFC_4231_DATA, RFC_4231_KEY) == RFC_4231_HMAC


def test_the_sql_function_hashes_every_value_under_its_key_and_keeps_nulls() -> None:
    connection = duckdb.connect()
    register_keyed_hash(connection, RFC_4231_KEY)
    # more rows than one Arrow batch, so the function is called more than once with the same key
    rows = connection.execute(
        "select i, keyed_hash(value) from (select i, case when i = 3 then null when i % 2 = 0 "
        f"then '{RFC_4231_DATA}' else 'value ' || i end as value from range(5000) as t(i)) order by i"
    ).fetchall()
    hashes = [value for (_, value) in rows]
    assert hashes[0] == RFC_4231_HMAC
    assert hashes[3] is None
    assert hashes[4999] == keyed_hash("value 4999", RFC_4231_KEY)
    assert len({hashes[i] for i in range(0, 5000, 2)}) == 1
    assert len(set(hashes)) == 2500 + 1  # the one hash of the even rows, 2,499 odd values and null


@pytest.mark.parametrize(
    "key",
    [RFC_4231_KEY, "k" * 64, "a key longer than SHA-256's 64-byte block, which HMAC hashes first"],
)
def test_the_sql_expression_is_the_same_hmac_for_any_text(key: str) -> None:
    # escapes DuckDB would read in a cast to BLOB, non-ASCII letters, an emoji, the empty string
    values = [RFC_4231_DATA, r"\x41\\", "Zoë Ångström", "🛒 cart", "", "x" * 200, None]
    connection = duckdb.connect()
    rows = connection.execute(
        f"select value, {keyed_hash_sql('value')} from unnest($values) as t(value)",
        {"values": values, **keyed_hash_pads(key)},
    ).fetchall()
    assert len(rows) == len(values)
    assert all(hashed == (None if value is None else keyed_hash(value, key)) for value, hashed in rows)
    if key == RFC_4231_KEY:
        assert rows[0][1] == RFC_4231_HMAC
