"""Parts of the erasure that need no world: the redact payload, compaction, the dlt state scrub.

(The whole erasure runs end to end in tests/test_erasure.py.)
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from orchestration.erasure import compact_warehouse, redact_request, scrub_state


def test_a_redact_payload_names_the_customer_email_phone_and_orders(tmp_path: Path) -> None:
    payload = tmp_path / "redact.json"
    payload.write_text(
        json.dumps(
            {
                "shop_id": 954889,
                "shop_domain": "example.myshopify.com",
                "customer": {"id": 191167, "email": " John@Example.com", "phone": "+47 555 12 345"},
                "orders_to_redact": [299938, 280263],
            }
        )
    )
    request = redact_request(payload)
    assert request.request_type == "shopify_redact"
    assert sorted((item.type, item.value) for item in request.identifiers) == [
        ("email", "john@example.com"),
        ("phone", "+4755512345"),
        ("shopify_customer", "191167"),
        ("shopify_order", "280263"),
        ("shopify_order", "299938"),
    ]


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ("not json", "not a readable JSON document"),
        ({"shop_id": 1}, "no 'customer' object"),
        ({"customer": {"id": "abc"}}, "customer.id is not a Shopify id"),
        ({"customer": {"id": 1, "email": "no-at-sign"}}, "customer.email is not a valid email"),
        (
            {"customer": {"id": 1}, "orders_to_redact": ["x"]},
            "orders_to_redact is not a list of Shopify order ids",
        ),
        ({"customer": {}}, "names no customer id, email, phone or order"),
    ],
)
def test_a_bad_redact_payload_is_an_error_naming_the_file_and_field(
    tmp_path: Path, payload: object, problem: str
) -> None:
    path = tmp_path / "redact.json"
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    with pytest.raises(ValueError) as error:
        redact_request(path)
    assert str(path) in str(error.value)
    assert problem in str(error.value)


def test_compaction_removes_deleted_rows_from_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB leaves a deleted row's bytes in the file; the compacted copy does not hold them."""
    monkeypatch.setenv("SHOP360_DATA_DIR", str(tmp_path))
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute("pragma force_compression = 'uncompressed'")  # so the bytes are findable
        connection.execute("create schema raw_shopify")
        connection.execute(
            "create table raw_shopify.customers as "
            "select i as id, 'person' || i || '@example.com' as email from range(20000) as r(i)"
        )
        connection.execute("create view raw_shopify.emails as select email from raw_shopify.customers")
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute("delete from raw_shopify.customers where id = 4242")
        connection.execute("checkpoint")
    assert b"person4242@example.com" in warehouse.read_bytes()
    with duckdb.connect(str(warehouse)) as connection:
        compact_warehouse(connection)
    assert b"person4242@example.com" not in warehouse.read_bytes()
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        assert connection.execute("select count(*) from raw_shopify.emails").fetchone()[0] == 19999


def test_the_state_scrub_removes_only_the_digests_given() -> None:
    state = {
        "sources": {
            "shopify": {
                "resources": {
                    "orders": {"incremental": {"updated_at": {"unique_hashes": ["a", "b"], "last_value": 1}}},
                    "products": {"incremental": {"updated_at": {"unique_hashes": ["c"]}}},
                }
            }
        }
    }
    assert scrub_state(state, {"a", "c", "z"}) == 2
    resources = state["sources"]["shopify"]["resources"]
    assert resources["orders"]["incremental"]["updated_at"] == {"unique_hashes": ["b"], "last_value": 1}
    assert resources["products"]["incremental"]["updated_at"]["unique_hashes"] == []
