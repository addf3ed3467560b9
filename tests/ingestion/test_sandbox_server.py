"""The sandbox's fake Shopify and Klaviyo APIs, driven over real HTTP against a small hand-made world."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from ingestion.sandbox.server import SandboxServer

SHOPIFY_TOKEN = "shpat_sandbox_test"
KLAVIYO_KEY = "pk_sandbox_test"
REVISION = "2025-10-15"
SHOPIFY_THROTTLED = (
    "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."
)

OPEN_ORDERS = {5001, 5002, 5004, 5006, 5008, 5011}
CLOSED_ORDERS = {5003, 5005, 5009, 5012}
CANCELLED_ORDERS = {5007, 5010}  # cancelled orders are closed too
ALL_ORDERS = OPEN_ORDERS | CLOSED_ORDERS | CANCELLED_ORDERS
CUSTOMER_IDS = set(range(1001, 1008))
PROFILE_IDS = [f"01JPROFILE{n:016d}" for n in range(1, 6)]
METRIC_IDS = ["MtrClicked", "MtrOpened", "MtrReceived"]
NEWS_MEMBERS = {  # profile -> joined (not in id order)
    PROFILE_IDS[0]: "2026-02-03T10:00:00+00:00",
    PROFILE_IDS[2]: "2026-02-01T10:00:00+00:00",
    PROFILE_IDS[3]: "2026-02-02T10:00:00+00:00",
}
EVENT_IDS = [f"EVT{n:03d}" for n in range(1, 10)]
LISTS = [("LST001", "News"), ("LST002", "Nobody")]


# --- the world -----------------------------------------------------------------------------------------


def _customer(customer_id: int, updated_at: str) -> dict[str, Any]:
    return {
        "id": customer_id,
        "email": f"person{customer_id}@example.com",
        "created_at": "2026-01-05T10:00:00+01:00",
        "updated_at": updated_at,
        "state": "enabled",
        "tags": "test" if customer_id == 1002 else "",
        "currency": "EUR",
    }


def _order(order_id: int) -> dict[str, Any]:
    cancelled = order_id in CANCELLED_ORDERS
    closed = order_id in CLOSED_ORDERS or cancelled
    return {
        "id": order_id,
        "name": f"#{order_id}",
        "created_at": f"2026-02-{order_id - 5000:02d}T12:00:00+01:00",
        "updated_at": f"2026-02-{order_id - 5000:02d}T13:00:00+01:00",
        "cancelled_at": "2026-02-20T09:00:00+01:00" if cancelled else None,
        "cancel_reason": "customer" if cancelled else None,
        "closed_at": "2026-02-21T09:00:00+01:00" if closed else None,
        "total_price": "199.00",
        "currency": "EUR",
        "customer": {"id": 1001 + order_id % 7},
        "line_items": [{"id": order_id * 10, "product_id": 701, "quantity": 1, "price": "199.00"}],
        "refunds": [],
    }


def _profile(number: int) -> dict[str, Any]:
    return {
        "type": "profile",
        "id": PROFILE_IDS[number - 1],
        "attributes": {
            "email": f"person{number}@example.com",
            "created": "2026-01-01T00:00:00+00:00",
            "updated": f"2026-03-0{number}T12:00:00+00:00",
            "properties": {"interests": ["skin care"]},
            "subscriptions": {"email": {"marketing": {"can_receive_email_marketing": number % 2 == 1}}},
        },
    }


def _event(number: int) -> dict[str, Any]:
    hour = (number * 5) % 9  # datetimes are not in id order
    return {
        "type": "event",
        "id": EVENT_IDS[number - 1],
        "attributes": {
            "timestamp": 1772366400 + hour * 3600,
            "datetime": f"2026-03-01T{hour:02d}:00:00+00:00",
            "event_properties": {"$message": "CMP001"},
        },
        "relationships": {
            "profile": {"data": {"type": "profile", "id": PROFILE_IDS[number % 5]}},
            "metric": {"data": {"type": "metric", "id": METRIC_IDS[number % 2]}},  # never MtrReceived
        },
    }


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")


def write_world(root: Path) -> None:
    """A tiny world in the layout of ingestion/sandbox/README.md."""
    world = root / "world"
    world.mkdir(parents=True)
    meta = {
        "seed": 1,
        "customers": 7,
        "days": 60,
        "start_date": "2026-01-01",
        "as_of": "2026-03-02",
        "currency": "EUR",
        "timezone": "Europe/Oslo",
        "api_tokens": {"shopify": SHOPIFY_TOKEN, "klaviyo": KLAVIYO_KEY},
    }
    (world / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    customers = [_customer(i, f"2026-02-{i - 1000:02d}T10:00:00+01:00") for i in range(1001, 1006)]
    customers.append(_customer(1006, "2026-03-01T10:00:00+01:00"))  # 09:00 UTC
    customers.append(
        _customer(1007, "2026-03-01T10:30:00+02:00")
    )  # 08:30 UTC: later wall clock, earlier instant
    _write_jsonl(world / "shopify" / "customers.jsonl", customers)
    _write_jsonl(world / "shopify" / "orders.jsonl", [_order(i) for i in sorted(ALL_ORDERS)])
    stamps = {"created_at": "2026-01-02T00:00:00+01:00", "updated_at": "2026-02-03T10:00:00+01:00"}
    products = [{"id": i, "title": f"Product {i}", **stamps} for i in (701, 702, 703)]
    _write_jsonl(world / "shopify" / "products.jsonl", products)
    checkouts = [{"id": i, **stamps, "closed_at": None, "completed_at": None} for i in (9001, 9002)]
    _write_jsonl(world / "shopify" / "checkouts.jsonl", checkouts)
    _write_jsonl(world / "klaviyo" / "profiles.jsonl", [_profile(n) for n in range(1, 6)])
    metrics = [
        {"type": "metric", "id": metric_id, "attributes": {"name": name}}
        for metric_id, name in zip(
            METRIC_IDS, ["Clicked Email", "Opened Email", "Received Email"], strict=True
        )
    ]
    _write_jsonl(world / "klaviyo" / "metrics.jsonl", metrics)
    _write_jsonl(world / "klaviyo" / "events.jsonl", [_event(n) for n in range(1, 10)])
    campaign = {"type": "campaign", "id": "CMP001", "attributes": {"name": "Spring", "status": "Sent"}}
    _write_jsonl(world / "klaviyo" / "campaigns.jsonl", [campaign])
    lists = [{"type": "list", "id": list_id, "attributes": {"name": name}} for list_id, name in LISTS]
    _write_jsonl(world / "klaviyo" / "lists.jsonl", lists)
    memberships = [
        {"list_id": "LST001", "profile_id": profile_id, "joined": joined}
        for profile_id, joined in NEWS_MEMBERS.items()
    ]
    memberships += [
        {"list_id": "LST404", "profile_id": PROFILE_IDS[1], "joined": "2026-02-01T10:00:00+00:00"},  # no list
        {"list_id": "LST001", "joined": "2026-02-01T10:00:00+00:00"},  # no profile
        {"list_id": "LST001", "profile_id": PROFILE_IDS[0], "joined": "2026-02-05T10:00:00+00:00"},  # again
    ]
    _write_jsonl(world / "klaviyo" / "list_memberships.jsonl", memberships)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sandbox")
    write_world(path)
    return path


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[SandboxServer]:
    with SandboxServer(root, shopify_bucket_size=10_000) as running:
        yield running


@pytest.fixture(scope="module")
def shopify(server: SandboxServer) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers["X-Shopify-Access-Token"] = SHOPIFY_TOKEN
        yield session


@pytest.fixture(scope="module")
def klaviyo(server: SandboxServer) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers.update({"Authorization": f"Klaviyo-API-Key {KLAVIYO_KEY}", "revision": REVISION})
        yield session


def walk_shopify(session: requests.Session, url: str, params: dict[str, Any]) -> tuple[list[int], int]:
    """Follow rel="next" Link headers; return every id seen and the number of pages."""
    ids: list[int] = []
    pages = 0
    response = session.get(url, params=params)
    while True:
        assert response.status_code == 200, response.text
        ids += [record["id"] for record in next(iter(response.json().values()))]
        pages += 1
        if "next" not in response.links:
            return ids, pages
        response = session.get(response.links["next"]["url"])


def walk_klaviyo(session: requests.Session, url: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Follow links.next; return every resource object seen."""
    data: list[dict[str, Any]] = []
    response = session.get(url, params=params)
    while True:
        assert response.status_code == 200, response.text
        document = response.json()
        data += document["data"]
        if document["links"]["next"] is None:
            return data
        response = session.get(document["links"]["next"])


# --- authentication and parameter errors ---------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"X-Shopify-Access-Token": "shpat_wrong"}])
def test_shopify_rejects_missing_or_wrong_token(server: SandboxServer, headers: dict[str, str]) -> None:
    response = requests.get(f"{server.shopify_base_url}/orders.json", headers=headers)
    assert response.status_code == 401
    assert response.json() == {
        "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
    }


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Klaviyo-API-Key pk_wrong"}])
def test_klaviyo_rejects_missing_or_wrong_key(server: SandboxServer, headers: dict[str, str]) -> None:
    response = requests.get(f"{server.klaviyo_base_url}/profiles", headers={**headers, "revision": REVISION})
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/vnd.api+json"
    (error,) = response.json()["errors"]
    assert error.pop("id")
    assert error == {
        "status": 401,
        "code": "not_authenticated",
        "title": "Authentication credentials were not provided.",
        "detail": "Missing or invalid private key.",
        "source": {"pointer": "/data/"},
    }


def test_klaviyo_requires_revision_header(server: SandboxServer) -> None:
    auth = {"Authorization": f"Klaviyo-API-Key {KLAVIYO_KEY}"}
    missing = requests.get(f"{server.klaviyo_base_url}/profiles", headers=auth)
    assert missing.status_code == 400
    (error,) = missing.json()["errors"]
    assert error["source"] == {"header": "revision"}
    assert "revision" in error["detail"] and "missing" in error["detail"]
    malformed = requests.get(f"{server.klaviyo_base_url}/profiles", headers={**auth, "revision": "latest"})
    assert malformed.status_code == 400
    assert "'latest'" in malformed.json()["errors"][0]["detail"]


def test_shopify_limit_above_250_is_rejected(shopify: requests.Session, server: SandboxServer) -> None:
    response = shopify.get(f"{server.shopify_base_url}/orders.json", params={"limit": 251})
    assert response.status_code == 400
    assert "250" in response.json()["errors"]["limit"]


def test_shopify_page_info_cannot_carry_filters(shopify: requests.Session, server: SandboxServer) -> None:
    first = shopify.get(f"{server.shopify_base_url}/orders.json", params={"status": "any", "limit": 2})
    next_url = first.links["next"]["url"]
    response = shopify.get(next_url, params={"updated_at_min": "2026-01-01T00:00:00+01:00"})
    assert response.status_code == 400
    assert "updated_at_min" in response.json()["errors"]["page_info"]
    assert shopify.get(next_url, params={"fields": "id"}).status_code == 200  # limit and fields are allowed


def test_shopify_unknown_path_is_404(shopify: requests.Session, server: SandboxServer) -> None:
    response = shopify.get(f"{server.shopify_base_url}/gift_cards.json")
    assert response.status_code == 404
    assert response.json() == {"errors": "Not Found"}


# --- Shopify pagination and filters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "params", "expected"),
    [("customers", {}, CUSTOMER_IDS), ("orders", {"status": "any"}, ALL_ORDERS)],
)
def test_shopify_link_pagination_visits_every_record_once(
    shopify: requests.Session,
    server: SandboxServer,
    resource: str,
    params: dict[str, Any],
    expected: set[int],
) -> None:
    ids, pages = walk_shopify(shopify, f"{server.shopify_base_url}/{resource}.json", {**params, "limit": 3})
    assert sorted(ids) == ids  # ordered by id
    assert len(ids) == len(set(ids)) and set(ids) == expected
    assert pages == -(-len(expected) // 3)


def test_shopify_previous_link_returns_the_page_before(
    shopify: requests.Session, server: SandboxServer
) -> None:
    first = shopify.get(f"{server.shopify_base_url}/orders.json", params={"status": "any", "limit": 4})
    assert "previous" not in first.links
    second = shopify.get(first.links["next"]["url"])
    assert 'rel="previous"' in second.headers["Link"] and 'rel="next"' in second.headers["Link"]
    back = shopify.get(second.links["previous"]["url"])
    assert [o["id"] for o in back.json()["orders"]] == [o["id"] for o in first.json()["orders"]]


def test_shopify_orders_default_to_open(shopify: requests.Session, server: SandboxServer) -> None:
    def order_ids(**params: Any) -> set[int]:
        return set(
            walk_shopify(shopify, f"{server.shopify_base_url}/orders.json", {**params, "limit": 250})[0]
        )

    assert order_ids() == OPEN_ORDERS
    assert order_ids(status="closed") == CLOSED_ORDERS | CANCELLED_ORDERS
    assert order_ids(status="cancelled") == CANCELLED_ORDERS
    assert shopify.get(f"{server.shopify_base_url}/orders.json", params={"status": "paid"}).status_code == 400


@pytest.mark.parametrize(
    "updated_at_min", ["2026-03-01T09:00:00+00:00", "2026-03-01T11:00:00+02:00", "2026-03-01T10:00:00"]
)
def test_shopify_updated_at_min_compares_instants(
    shopify: requests.Session, server: SandboxServer, updated_at_min: str
) -> None:
    response = shopify.get(
        f"{server.shopify_base_url}/customers.json", params={"updated_at_min": updated_at_min}
    )
    assert [c["id"] for c in response.json()["customers"]] == [1006]  # naive = shop time (Oslo, +01:00)


def test_shopify_filters_survive_pagination(shopify: requests.Session, server: SandboxServer) -> None:
    params = {"status": "any", "updated_at_max": "2026-02-08T23:59:59+01:00", "since_id": 5002, "limit": 2}
    ids, _ = walk_shopify(shopify, f"{server.shopify_base_url}/orders.json", params)
    assert ids == [5003, 5004, 5005, 5006, 5007, 5008]


def test_shopify_ids_and_fields(shopify: requests.Session, server: SandboxServer) -> None:
    response = shopify.get(
        f"{server.shopify_base_url}/orders.json",
        params={"ids": "5003,5007", "status": "any", "fields": "id,name"},
    )
    assert response.json() == {"orders": [{"id": 5003, "name": "#5003"}, {"id": 5007, "name": "#5007"}]}


def test_shopify_count_endpoints(shopify: requests.Session, server: SandboxServer) -> None:
    def count(resource: str, **params: Any) -> int:
        response = shopify.get(f"{server.shopify_base_url}/{resource}/count.json", params=params)
        assert response.status_code == 200, response.text
        return response.json()["count"]

    assert count("customers") == 7
    assert count("customers", updated_at_min="2026-03-01T09:00:00Z") == 1
    assert count("orders") == len(OPEN_ORDERS)
    assert count("orders", status="any") == 12
    assert count("products") == 3
    assert count("checkouts") == 2


def test_shopify_call_limit_header_and_single_record(
    shopify: requests.Session, server: SandboxServer
) -> None:
    response = shopify.get(f"{server.shopify_base_url}/products/702.json")
    assert response.json()["product"]["id"] == 702
    used, size = response.headers["X-Shopify-Shop-Api-Call-Limit"].split("/")
    assert int(used) >= 1 and size == "10000"


def test_shopify_throttles_with_a_full_bucket(root: Path) -> None:
    with SandboxServer(root, shopify_bucket_size=2, shopify_leak_per_second=0.5) as tiny:
        headers = {"X-Shopify-Access-Token": SHOPIFY_TOKEN}
        url = f"{tiny.shopify_base_url}/products.json"
        first, second, third = (requests.get(url, headers=headers) for _ in range(3))
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.headers["X-Shopify-Shop-Api-Call-Limit"] == "2/2"
    assert third.status_code == 429
    assert third.headers["Retry-After"] == "2.0"  # a float string, as Shopify sends it
    assert third.json() == {"errors": SHOPIFY_THROTTLED}


def test_shopify_bucket_defaults_to_the_standard_plan(root: Path) -> None:
    """40 calls, draining 2 per second: a burst of 40 fits, the bucket then refuses within a second."""
    with SandboxServer(root) as server, requests.Session() as session:
        session.headers["X-Shopify-Access-Token"] = SHOPIFY_TOKEN
        responses = []
        while len(responses) < 80 and (not responses or responses[-1].status_code == 200):
            responses.append(session.get(f"{server.shopify_base_url}/products/count.json"))
    assert all(r.status_code == 200 for r in responses[:40])
    assert [r.headers["X-Shopify-Shop-Api-Call-Limit"] for r in responses[:3]] == ["1/40", "2/40", "3/40"]
    throttled = responses[-1]
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "2.0"
    assert throttled.headers["X-Shopify-Shop-Api-Call-Limit"] == "40/40"
    assert throttled.json() == {"errors": SHOPIFY_THROTTLED}


# --- Klaviyo -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("resource", "expected"), [("profiles", PROFILE_IDS), ("events", EVENT_IDS)])
def test_klaviyo_links_next_visits_every_record_once(
    klaviyo: requests.Session, server: SandboxServer, resource: str, expected: list[str]
) -> None:
    data = walk_klaviyo(klaviyo, f"{server.klaviyo_base_url}/{resource}", {"page[size]": 2})
    assert [item["id"] for item in data] == expected


def test_klaviyo_sorted_pagination_with_prev(klaviyo: requests.Session, server: SandboxServer) -> None:
    url = f"{server.klaviyo_base_url}/events"
    data = walk_klaviyo(klaviyo, url, {"page[size]": 4, "sort": "-datetime"})
    stamps = [item["attributes"]["datetime"] for item in data]
    assert stamps == sorted(stamps, reverse=True) and len(data) == 9
    first = klaviyo.get(url, params={"page[size]": 4, "sort": "-datetime"}).json()
    assert first["links"]["prev"] is None
    second = klaviyo.get(first["links"]["next"]).json()
    assert klaviyo.get(second["links"]["prev"]).json()["data"] == first["data"]


def test_klaviyo_time_bound_on_the_sort_column(klaviyo: requests.Session, server: SandboxServer) -> None:
    """A lower bound on the time column a walk is sorted by starts the walk at the bound, as an
    index does (the nightly's incremental reads): the records at the bound or after it, in order,
    none before, across pages and back."""
    url = f"{server.klaviyo_base_url}/events"
    everything = walk_klaviyo(klaviyo, url, {"page[size]": 2, "sort": "datetime"})
    bound = everything[4]["attributes"]["datetime"]
    for operator, kept in (("greater-or-equal", everything[4:]), ("greater-than", everything[5:])):
        params = {"page[size]": 2, "sort": "datetime", "filter": f"{operator}(datetime,{bound})"}
        assert [item["id"] for item in walk_klaviyo(klaviyo, url, params)] == [item["id"] for item in kept]
    params = {"page[size]": 2, "sort": "datetime", "filter": f"greater-or-equal(datetime,{bound})"}
    first = klaviyo.get(url, params=params).json()
    assert first["links"]["prev"] is None
    second = klaviyo.get(first["links"]["next"]).json()
    assert klaviyo.get(second["links"]["prev"]).json()["data"] == first["data"]


def test_klaviyo_filters(klaviyo: requests.Session, server: SandboxServer) -> None:
    def ids(resource: str, filter_: str) -> list[str]:
        return [
            item["id"]
            for item in walk_klaviyo(klaviyo, f"{server.klaviyo_base_url}/{resource}", {"filter": filter_})
        ]

    assert ids("profiles", "greater-than(updated,2026-03-03T12:00:00+00:00)") == PROFILE_IDS[3:]
    assert ids("profiles", "greater-or-equal(updated,2026-03-03T12:00:00Z)") == PROFILE_IDS[2:]
    between = "greater-than(updated,2026-03-01T12:00:00+00:00),less-than(updated,2026-03-04T12:00:00+00:00)"
    assert ids("profiles", between) == PROFILE_IDS[1:3]
    assert ids("profiles", f"and({between})") == PROFILE_IDS[1:3]
    late = ids("events", "greater-or-equal(datetime,2026-03-01T06:00:00+00:00)")
    assert late == [e for n, e in enumerate(EVENT_IDS, start=1) if (n * 5) % 9 >= 6]
    assert ids("events", 'equals(metric_id,"MtrOpened")') == EVENT_IDS[::2]


@pytest.mark.parametrize(
    "bad_filter",
    ["greater-than(updated,yesterday)", "greater-than(updated", "greater-than(shoe_size,2026-01-01)"],
)
def test_klaviyo_malformed_filter_is_400(
    klaviyo: requests.Session, server: SandboxServer, bad_filter: str
) -> None:
    response = klaviyo.get(f"{server.klaviyo_base_url}/profiles", params={"filter": bad_filter})
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["source"] == {"parameter": "filter"} and error["detail"].startswith("filter:")


def test_klaviyo_subscriptions_only_when_asked(klaviyo: requests.Session, server: SandboxServer) -> None:
    url = f"{server.klaviyo_base_url}/profiles"
    plain = klaviyo.get(url).json()["data"]
    assert len(plain) == 5 and all("subscriptions" not in p["attributes"] for p in plain)
    assert all(p["attributes"]["email"] for p in plain)
    rich = klaviyo.get(url, params={"additional-fields[profile]": "subscriptions"}).json()["data"]
    consent = [
        p["attributes"]["subscriptions"]["email"]["marketing"]["can_receive_email_marketing"] for p in rich
    ]
    assert consent == [True, False, True, False, True]


def test_klaviyo_include_metric(klaviyo: requests.Session, server: SandboxServer) -> None:
    document = klaviyo.get(f"{server.klaviyo_base_url}/events", params={"include": "metric"}).json()
    assert sorted(m["id"] for m in document["included"]) == ["MtrClicked", "MtrOpened"]
    assert {m["attributes"]["name"] for m in document["included"]} == {"Clicked Email", "Opened Email"}
    assert "included" not in klaviyo.get(f"{server.klaviyo_base_url}/events").json()


def test_klaviyo_campaigns_need_a_channel_filter(klaviyo: requests.Session, server: SandboxServer) -> None:
    url = f"{server.klaviyo_base_url}/campaigns"
    missing = klaviyo.get(url)
    assert missing.status_code == 400 and "messages.channel" in missing.json()["errors"][0]["detail"]
    email = klaviyo.get(url, params={"filter": "equals(messages.channel,'email')"}).json()
    assert [c["id"] for c in email["data"]] == ["CMP001"]


def test_klaviyo_metrics_lists_and_single_resources(klaviyo: requests.Session, server: SandboxServer) -> None:
    assert [m["id"] for m in klaviyo.get(f"{server.klaviyo_base_url}/metrics").json()["data"]] == METRIC_IDS
    lists = klaviyo.get(f"{server.klaviyo_base_url}/lists").json()["data"]
    assert [x["id"] for x in lists] == ["LST001", "LST002"]
    one = klaviyo.get(f"{server.klaviyo_base_url}/profiles/{PROFILE_IDS[0]}/").json()
    assert one["data"]["id"] == PROFILE_IDS[0] and "subscriptions" not in one["data"]["attributes"]
    assert klaviyo.get(f"{server.klaviyo_base_url}/profiles/nobody").status_code == 404


def test_klaviyo_list_memberships(klaviyo: requests.Session, server: SandboxServer) -> None:
    url = f"{server.klaviyo_base_url}/lists/LST001/relationships/profiles"
    by_id = walk_klaviyo(klaviyo, url, {"page[size]": 2})
    assert by_id == [{"type": "profile", "id": p} for p in sorted(NEWS_MEMBERS)]  # bad lines skipped
    first = klaviyo.get(url, params={"page[size]": 2}).json()
    assert first["links"]["self"] and first["links"]["prev"] is None
    second = klaviyo.get(first["links"]["next"]).json()
    assert klaviyo.get(second["links"]["prev"]).json()["data"] == first["data"]
    by_joined = walk_klaviyo(klaviyo, url, {"sort": "-joined_group_at", "page[size]": 1})
    assert [item["id"] for item in by_joined] == sorted(NEWS_MEMBERS, key=NEWS_MEMBERS.__getitem__)[::-1]
    joined_after = {"filter": "greater-than(joined_group_at,2026-02-01T10:00:00Z)"}
    assert [item["id"] for item in walk_klaviyo(klaviyo, url, joined_after)] == [
        PROFILE_IDS[0],
        PROFILE_IDS[3],
    ]
    by_email = {"filter": 'equals(email,"person3@example.com")'}
    assert [item["id"] for item in walk_klaviyo(klaviyo, url, by_email)] == [PROFILE_IDS[2]]
    empty = klaviyo.get(f"{server.klaviyo_base_url}/lists/LST002/relationships/profiles").json()
    assert empty["data"] == [] and empty["links"]["next"] is None


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/lists/LST404/relationships/profiles", {}, 404),
        ("/lists/LST001/relationships/profiles", {"page[size]": 101}, 400),  # the real API's max is 100
        ("/lists/LST001/relationships/profiles", {"sort": "id"}, 400),  # only joined_group_at sorts
        ("/lists/LST001/relationships/profiles", {"filter": "greater-than(updated,2026-01-01)"}, 400),
    ],
)
def test_klaviyo_list_memberships_reject_what_the_real_api_rejects(
    klaviyo: requests.Session, server: SandboxServer, path: str, params: dict[str, Any], status: int
) -> None:
    response = klaviyo.get(f"{server.klaviyo_base_url}{path}", params=params)
    assert response.status_code == status
    assert response.json()["errors"][0]["status"] == status


def test_klaviyo_throttles_bursts(root: Path) -> None:
    with SandboxServer(root, klaviyo_burst_per_second=2) as tiny:
        headers = {"Authorization": f"Klaviyo-API-Key {KLAVIYO_KEY}", "revision": REVISION}
        responses = [requests.get(f"{tiny.klaviyo_base_url}/metrics", headers=headers) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    throttled = responses[2]
    assert throttled.headers["Retry-After"] == "1"
    (error,) = throttled.json()["errors"]
    assert (error["status"], error["code"], error["title"]) == (429, "throttled", "Request was throttled.")
