"""The suppression list at ingestion: erased people's records are dropped, their phones removed.

Unit tests on records shaped like the APIs' (the end-to-end erasure test in tests/test_erasure.py
runs the sources against the sandbox after a real ``shop360 forget``).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import pytest
from dlt.sources.filesystem import filesystem

from ingestion.ga4 import write_export_parquet
from ingestion.klaviyo import _kept
from ingestion.pii import keyed_hash, normalise_phone
from ingestion.shopify import _prepare
from ingestion.suppression import (
    CREATE_TABLE,
    EMAIL,
    GA4_COOKIE,
    KLAVIYO_PROFILE,
    PHONE,
    SHOPIFY_CUSTOMER,
    SHOPIFY_ORDER,
    Suppression,
    load_suppression,
)

KEY = "test-hash-key"


def _suppression(**values: list[str]) -> Suppression:
    """A suppression list of the given (already normalised) values per identifier type."""
    return Suppression(
        key=KEY,
        hashes={kind: frozenset(keyed_hash(value, KEY) for value in items) for kind, items in values.items()},
    )


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("+49 156 68 162560", "+4915668162560"),
        ("0047 979 01 233", "+4797901233"),
        ("+47 (0) 979-01-233 ext. 12", "+4797901233"),
        ("(0)22 33 44 55", "22334455"),
        ("22.33.44.55 x7", "22334455"),
        ("12345", None),
        ("call me", None),
    ],
)
def test_phones_normalise_like_the_identity_macro(typed: str, expected: str | None) -> None:
    assert normalise_phone(typed) == expected


def test_phone_without_country_code_takes_the_default_calling_code() -> None:
    assert normalise_phone("(0)22 33 44 55", "47") == "+4722334455"


def test_shopify_records_of_erased_people_are_dropped_and_counted() -> None:
    suppression = _suppression(
        **{
            EMAIL: ["anna@example.com"],
            SHOPIFY_CUSTOMER: ["11"],
            SHOPIFY_ORDER: ["99"],
            PHONE: ["+4712345678"],
        }
    )
    customer = {"id": 12, "email": "  Anna@Example.COM ", "updated_at": "2026-05-01T10:00:00+02:00"}
    order_of_customer = {"id": 50, "customer": {"id": 11}, "updated_at": "2026-05-01T10:00:00+02:00"}
    named_order = {"id": 99, "customer": None, "updated_at": "2026-05-01T10:00:00+02:00"}
    someone_else = {
        "id": 51,
        "email": "bo@example.com",
        "phone": "+47 123 45 678",
        "customer": {"id": 13, "email": "bo@example.com"},
        "updated_at": "2026-05-01T10:00:00+02:00",
    }
    assert _prepare("customers", customer, suppression) is None
    assert _prepare("orders", order_of_customer, suppression) is None
    assert _prepare("orders", named_order, suppression) is None
    kept = _prepare("orders", someone_else, suppression)
    assert kept["id"] == 51 and kept["phone"] is None
    assert suppression.dropped == {"customers": 1, "orders": 2}
    assert suppression.phones_removed == {"orders": 1}
    # products name nobody
    assert _prepare("products", {"id": 5, "updated_at": "2026-05-01T10:00:00+02:00"}, suppression)["id"] == 5


def test_klaviyo_profiles_events_and_memberships_of_erased_people_are_dropped() -> None:
    suppression = _suppression(**{KLAVIYO_PROFILE: ["P1"], EMAIL: ["cy@example.com"], PHONE: ["+4798765432"]})
    profiles = [
        {"id": "P1", "email": "x@example.com"},
        {"id": "P2", "email": "CY@example.com"},
        {"id": "P3", "email": "dee@example.com", "phone_number": "+4798765432"},
    ]
    kept = _kept("profiles", profiles, suppression)
    assert [row["id"] for row in kept] == ["P3"]
    assert kept[0]["phone_number"] is None
    events = [{"id": "E1", "profile_id": "P1"}, {"id": "E2", "profile_id": "P3"}]
    assert [row["id"] for row in _kept("events", events, suppression)] == ["E2"]
    assert suppression.dropped == {"profiles": 2, "events": 1}


def _event(cookie: str, name: str, user_id: str | None = None, transaction_id: str | None = None) -> dict:
    return {
        "event_date": "20260520",
        "event_timestamp": 1,
        "event_name": name,
        "user_pseudo_id": cookie,
        "user_id": user_id,
        "ecommerce": {"transaction_id": transaction_id} if transaction_id else None,
    }


def test_ga4_drops_every_event_of_a_cookie_that_logs_in_as_an_erased_customer(tmp_path: Path) -> None:
    events = [
        _event("c1", "page_view"),  # anonymous, before the login below
        _event("c1", "login", user_id="11"),
        _event("c2", "page_view"),
        _event("c3", "purchase", transaction_id="99"),  # buys an erased order
        _event("c4", "page_view"),  # a suppressed cookie
        _event("c5", "purchase", user_id="12", transaction_id="100"),
    ]
    folder = tmp_path / "ga4"
    folder.mkdir()
    with gzip.open(folder / "events_20260520.json.gz", "wt") as handle:
        handle.writelines(json.dumps(event) + "\n" for event in events)
    (file,) = list(filesystem(bucket_url=str(folder), file_glob="events_*.json.gz"))
    suppression = _suppression(**{SHOPIFY_CUSTOMER: ["11"], SHOPIFY_ORDER: ["99"], GA4_COOKIE: ["c4"]})
    target = tmp_path / "events.parquet"
    assert write_export_parquet([file], target, "1780000000.5", suppression) == 2
    with duckdb.connect() as connection:
        kept = connection.execute(
            "select user_pseudo_id, _dlt_load_id from read_parquet(?) order by 1", [str(target)]
        ).fetchall()
    # the rows kept still carry the load's id (the incremental GA4 models read it)
    assert kept == [("c2", "1780000000.5"), ("c5", "1780000000.5")]
    assert suppression.dropped == {"events": 4}
    # without a suppression list every event stays
    assert write_export_parquet([file], target, "1780000000.5") == len(events)


def test_the_suppression_list_is_read_from_the_warehouse(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    assert not load_suppression(KEY, warehouse)  # no warehouse yet
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute("create schema audit")
        connection.execute(CREATE_TABLE)
    assert not load_suppression(KEY, warehouse)  # no entries yet
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute(
            "insert into audit.erasure_suppressions values (?, ?, 'r1', now())",
            [EMAIL, keyed_hash("anna@example.com", KEY)],
        )
    suppression = load_suppression(KEY, warehouse)
    assert suppression.entries == 1
    assert suppression.matches(EMAIL, " ANNA@example.com")
    assert not suppression.matches(EMAIL, "bo@example.com")
    assert not suppression.matches(PHONE, "+4712345678")
