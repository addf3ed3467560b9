"""Personal data helpers: drop fields no mart uses, normalise emails, and the keyed hash.

The keyed hash (HMAC-SHA256 with the secret ``shop360.hash_key``) is the one pseudonym shop360 hands
out for a direct identifier: the BI snapshot's ``email_hash``, the erasure log and the suppression
list hold it instead of the email. Without the key nobody can test a guessed email against it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from typing import Any

import duckdb
import pyarrow as pa

# The dlt secret holding the hash key (env var SHOP360__HASH_KEY).
HASH_KEY_SETTING = "shop360.hash_key"
# The DuckDB function that computes the keyed hash in SQL for dbt models (the BI snapshot uses
# keyed_hash_sql).
KEYED_HASH_FUNCTION = "keyed_hash"

_SURROUNDING_SPACE = re.compile(r"^[\s\u00a0]+|[\s\u00a0]+$")
# The phone rules of the dbt macro identity_phone (RE2's \s is [\t\n\f\r ], not Unicode spaces)
_PHONE_EXTENSION = re.compile(r"[\t\n\f\r ]*(ext\.?|x)[\t\n\f\r ]*[0-9]+$", re.IGNORECASE)
_PHONE_TRUNK_ZERO = re.compile(r"\(0\)")
_PHONE_PUNCTUATION = re.compile(r"[\t\n\f\r \u00a0().\-/]")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_INTERNATIONAL_00 = re.compile(r"00[1-9][0-9]{6,14}")
_NATIONAL = re.compile(r"[0-9]{7,15}")


def without(record: dict[str, Any] | None, fields: Iterable[str]) -> dict[str, Any] | None:
    """A copy of ``record`` without ``fields`` (``None`` stays ``None``)."""
    if record is None:
        return None
    dropped = set(fields)
    return {key: value for key, value in record.items() if key not in dropped}


def normalise_email(email: str | None) -> str | None:
    """An email as identity resolution keys it (dbt macro ``identity_email``): surrounding whitespace,
    no-break spaces too, removed and lower-cased; ``None`` when nothing is left."""
    if email is None:
        return None
    cleaned = _SURROUNDING_SPACE.sub("", email).lower()
    return cleaned or None


def normalise_phone(phone: str | None, default_calling_code: str | None = None) -> str | None:
    """A phone as identity resolution keys it (dbt macro ``identity_phone``): E.164 when it carries a
    country code (``+`` or ``00``), else its bare digits (or ``+<default_calling_code>`` without the
    trunk 0); ``None`` when it is no phone number."""
    if phone is None:
        return None
    digits = _PHONE_EXTENSION.sub("", phone.strip(" "), count=1)
    digits = _PHONE_PUNCTUATION.sub("", _PHONE_TRUNK_ZERO.sub("", digits))
    if _E164.fullmatch(digits):
        return digits
    if _INTERNATIONAL_00.fullmatch(digits):
        return "+" + digits[2:]
    if _NATIONAL.fullmatch(digits):
        return (
            digits if default_calling_code is None else f"+{default_calling_code}{digits.removeprefix('0')}"
        )
    return None


def keyed_hasher(key: str) -> Callable[[str], str]:
    """``keyed_hash`` under one key, for many values: the HMAC's keyed state is built once and
    copied per value (1.4 µs a value instead of 2.6 µs)."""
    keyed = hmac.new(key.encode(), digestmod=hashlib.sha256)

    def hash_value(value: str) -> str:
        digest = keyed.copy()
        digest.update(value.encode())
        return digest.hexdigest()

    return hash_value


def keyed_hash(value: str, key: str) -> str:
    """HMAC-SHA256 of ``value`` under ``key``, as 64 hex digits."""
    return keyed_hasher(key)(value)


# SHA-256's block: an HMAC key is padded (or first hashed) to it (RFC 2104)
_SHA256_BLOCK_BYTES = 64


def keyed_hash_pads(key: str) -> dict[str, bytes]:
    """The parameters of ``keyed_hash_sql``: the HMAC-SHA256 inner and outer pads of ``key``."""
    block = key.encode()
    if len(block) > _SHA256_BLOCK_BYTES:
        block = hashlib.sha256(block).digest()
    block = block.ljust(_SHA256_BLOCK_BYTES, b"\0")
    return {
        "keyed_hash_inner_pad": bytes(byte ^ 0x36 for byte in block),
        "keyed_hash_outer_pad": bytes(byte ^ 0x5C for byte in block),
    }


def keyed_hash_sql(text: str) -> str:
    """DuckDB SQL computing ``keyed_hash`` of the SQL expression ``text`` (a VARCHAR; null stays
    null) with DuckDB's own sha256: 0.6 s for the BI snapshot's 1.2 million session ids at size M,
    against 1.5-1.8 s through the Python function of ``register_keyed_hash``.

    The key is not in the SQL: run the statement with ``keyed_hash_pads(key)`` as its named
    parameters, so it reaches no SQL text, log or catalog. ``encode`` takes the text's UTF-8 bytes
    as they are (a cast to BLOB would read backslash escapes).
    """
    inner = f"sha256($keyed_hash_inner_pad || encode({text}))"
    return f"sha256($keyed_hash_outer_pad || unhex({inner}))"


def register_keyed_hash(connection: duckdb.DuckDBPyConnection, key: str) -> None:
    """Make ``keyed_hash(varchar) -> varchar`` callable in SQL on ``connection`` (null stays null).

    The key lives in the function, never in SQL text, so it cannot reach dbt's compiled SQL or logs.
    """

    hash_value = keyed_hasher(key)

    def hash_column(values: pa.Array) -> pa.Array:
        return pa.array(
            [None if value is None else hash_value(value) for value in values.to_pylist()], pa.string()
        )

    connection.create_function(
        KEYED_HASH_FUNCTION,
        hash_column,
        [duckdb.sqltype("VARCHAR")],
        duckdb.sqltype("VARCHAR"),
        type="arrow",
        null_handling="special",
        side_effects=False,
    )
