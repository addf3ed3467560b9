"""The sandbox's fault injection: errors, slow and dropped responses, schema drift and records without id.

Driven over real HTTP with ``requests`` against a small generated world.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from ingestion.sandbox.server import (
    DROP_MIN_BODY_BYTES,
    FAULTS_ENV_VAR,
    MAX_CONSECUTIVE_FAILURES,
    SHOPIFY_API_VERSION,
    Faults,
    SandboxServer,
    main,
)
from ingestion.sandbox.world import generate_world

SHOPIFY_THROTTLED = (
    "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."
)
REVISION = "2025-10-15"
EXAMPLE = (
    "error_rate=0.1,slow_rate=0.05,slow_seconds=0.5,drop_connections=1,drift_rate=0.05,"
    "missing_id_rate=0.01,seed=7"
)
RETRIES = 5  # what a production client would allow per request


# --- fixtures and helpers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("faults")
    generate_world(path, seed=3, customers=200, days=20, as_of=dt.date(2026, 6, 1))
    return path


@pytest.fixture(scope="module")
def tokens(root: Path) -> dict[str, str]:
    return json.loads((root / "world/meta.json").read_text())["api_tokens"]


@pytest.fixture(autouse=True)
def no_faults_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FAULTS_ENV_VAR, raising=False)


def serve(root: Path, faults: Faults | str) -> SandboxServer:
    """A server under ``faults`` whose rate limits never get in the way."""
    if isinstance(faults, str):
        faults = Faults.parse(faults)
    return SandboxServer(root, shopify_bucket_size=100_000, shopify_leak_per_second=10_000.0, faults=faults)


@pytest.fixture
def shopify(tokens: dict[str, str]) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers["X-Shopify-Access-Token"] = tokens["shopify"]
        yield session


@pytest.fixture
def klaviyo(tokens: dict[str, str]) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers.update(
            {"Authorization": f"Klaviyo-API-Key {tokens['klaviyo']}", "revision": REVISION}
        )
        yield session


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def get_with_retries(session: requests.Session, url: str, **kwargs: Any) -> tuple[requests.Response, int]:
    """GET, retrying (without waiting) on 429/5xx and broken connections; the response and the failures."""
    failures = 0
    while True:
        try:
            response = session.get(url, **kwargs)
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError):
            response = None
        if response is not None and response.status_code not in (429, 500, 502, 503, 504):
            return response, failures
        failures += 1
        assert failures <= RETRIES, f"{url} still failing after {RETRIES} retries"


def walk_shopify(session: requests.Session, url: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every record of a Shopify list, following rel="next" links and retrying each page."""
    records: list[dict[str, Any]] = []
    response, _ = get_with_retries(session, url, params=params)
    while True:
        assert response.status_code == 200, response.text
        records += next(iter(response.json().values()))
        if "next" not in response.links:
            return records
        response, _ = get_with_retries(session, response.links["next"]["url"])


def walk_klaviyo(session: requests.Session, url: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every resource object of a Klaviyo collection, following links.next and retrying each page."""
    data: list[dict[str, Any]] = []
    response, _ = get_with_retries(session, url, params=params)
    while True:
        assert response.status_code == 200, response.text
        document = response.json()
        data += document["data"]
        if document["links"]["next"] is None:
            return data
        response, _ = get_with_retries(session, document["links"]["next"])


def is_failure(session: requests.Session, url: str) -> bool:
    try:
        return session.get(url).status_code != 200
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError):
        return True


# --- settings ----------------------------------------------------------------------------------------------


def test_faults_parse_the_documented_form() -> None:
    faults = Faults.parse(EXAMPLE)
    assert faults == Faults(
        error_rate=0.1,
        slow_rate=0.05,
        slow_seconds=0.5,
        drop_connections=1,
        drift_rate=0.05,
        missing_id_rate=0.01,
        seed=7,
    )
    assert Faults.parse(faults.spec()) == faults
    assert Faults.parse(" error_rate = 0.5 , seed=3 ,") == Faults(error_rate=0.5, seed=3)
    assert Faults.parse("") == Faults() and Faults().spec() == "" and not Faults().active
    assert faults.active


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("error_rate=1.5", "between 0 and 1"),
        ("typo_rate=0.1", "typo_rate"),
        ("error_rate", "name=value"),
        ("drop_connections=1.5", "integer"),
        ("slow_seconds=-1", "0 or more"),
        ("seed=1,seed=2", "twice"),
    ],
)
def test_faults_reject_bad_settings(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Faults.parse(text)


def test_faults_come_from_the_environment_unless_given(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert SandboxServer(root).faults == Faults()
    monkeypatch.setenv(FAULTS_ENV_VAR, EXAMPLE)
    assert SandboxServer(root).faults == Faults.parse(EXAMPLE)
    assert SandboxServer(root, faults=Faults()).faults == Faults()  # an explicit setting wins
    monkeypatch.setenv(FAULTS_ENV_VAR, "error_rate=lots")
    with pytest.raises(ValueError, match=FAULTS_ENV_VAR):
        SandboxServer(root)


def test_cli_rejects_bad_faults(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--faults", "error_rate=2"])
    assert exit_info.value.code == 2
    assert "error_rate" in capsys.readouterr().err
    monkeypatch.setenv(FAULTS_ENV_VAR, "seed=x")
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert FAULTS_ENV_VAR in capsys.readouterr().err


def test_no_faults_by_default(root: Path, shopify: requests.Session) -> None:
    with serve(root, Faults()) as server:
        statuses = {
            shopify.get(f"{server.shopify_base_url}/orders.json?status=any").status_code for _ in range(20)
        }
        assert statuses == {200}
        assert server.fault_counts == {
            "errors_429": 0,
            "errors_5xx": 0,
            "slowed": 0,
            "dropped": 0,
            "drifted_records": 0,
            "missing_id_records": {"customers": 0, "orders": 0},
        }


# --- errors ------------------------------------------------------------------------------------------------


def test_shopify_errors_look_like_shopify(root: Path, shopify: requests.Session) -> None:
    with serve(root, "error_rate=1,seed=1") as server:
        responses = [
            shopify.get(f"{server.shopify_base_url}/customers.json", params={"limit": n})
            for n in range(1, 41)
        ]
        counts = server.fault_counts
    by_status: dict[int, list[requests.Response]] = {}
    for response in responses:
        by_status.setdefault(response.status_code, []).append(response)
    assert set(by_status) == {429, 500, 503}
    assert counts["errors_429"] == len(by_status[429]) and 10 <= len(by_status[429]) <= 30
    assert counts["errors_5xx"] == len(by_status[500]) + len(by_status[503])
    for response in by_status[429]:
        assert response.headers["Retry-After"] == "2.0"
        assert response.json() == {"errors": SHOPIFY_THROTTLED}
    assert all(r.json() == {"errors": "Internal Server Error"} for r in by_status[500])
    assert all(r.json() == {"errors": "Service Unavailable"} for r in by_status[503])
    for response in responses:
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.headers["X-Shopify-Shop-Api-Call-Limit"].endswith("/100000")


def test_klaviyo_errors_look_like_klaviyo(root: Path, klaviyo: requests.Session) -> None:
    with serve(root, "error_rate=1,seed=2") as server:
        responses = [
            klaviyo.get(f"{server.klaviyo_base_url}/profiles", params={"page[size]": n}) for n in range(1, 41)
        ]
    statuses = {response.status_code for response in responses}
    assert statuses == {429, 500, 503}
    for response in responses:
        assert response.headers["Content-Type"] == "application/vnd.api+json"
        (error,) = response.json()["errors"]
        assert error["status"] == response.status_code
        assert error["id"] and error["code"] and error["title"] and error["detail"]
        if response.status_code == 429:
            assert response.headers["Retry-After"].isdigit() and int(response.headers["Retry-After"]) >= 1
            assert (error["code"], error["title"]) == ("throttled", "Request was throttled.")
            assert error["detail"].startswith("Request was throttled. Expected available in")
        else:
            assert "Retry-After" not in response.headers


def test_no_url_fails_more_than_three_times_in_a_row(
    root: Path, shopify: requests.Session, klaviyo: requests.Session
) -> None:
    assert MAX_CONSECUTIVE_FAILURES == 3
    with serve(root, "error_rate=1,seed=3") as server:
        url = f"{server.shopify_base_url}/orders.json?status=any&limit=5"
        statuses = [shopify.get(url).status_code for _ in range(8)]
        assert [status == 200 for status in statuses] == [False, False, False, True] * 2
    with serve(root, "error_rate=0.7,drop_connections=40,seed=4") as server:
        sessions = {f"{server.shopify_base_url}/orders.json?status=any&limit={n}": shopify for n in (50, 250)}
        sessions |= {f"{server.klaviyo_base_url}/profiles?page[size]={n}": klaviyo for n in (50, 100)}
        streaks = dict.fromkeys(sessions, 0)
        longest = 0
        for _ in range(30):
            for url, session in sessions.items():  # interleaved, as concurrent clients would
                streaks[url] = streaks[url] + 1 if is_failure(session, url) else 0
                longest = max(longest, streaks[url])
        assert longest == MAX_CONSECUTIVE_FAILURES  # reached, never exceeded
        assert server.fault_counts["dropped"] > 0  # cut connections count as failures too


def test_counts_and_single_records_never_fail(
    root: Path, shopify: requests.Session, klaviyo: requests.Session
) -> None:
    order_id = read_jsonl(root / "world/shopify/orders.jsonl")[0]["id"]
    profile_id = read_jsonl(root / "world/klaviyo/profiles.jsonl")[0]["id"]
    with serve(root, "error_rate=1,seed=5") as server:
        for _ in range(5):
            assert shopify.get(f"{server.shopify_base_url}/orders/count.json").status_code == 200
            assert shopify.get(f"{server.shopify_base_url}/orders/{order_id}.json").status_code == 200
            assert klaviyo.get(f"{server.klaviyo_base_url}/profiles/{profile_id}").status_code == 200


def test_the_same_seed_gives_the_same_faults(root: Path, shopify: requests.Session) -> None:
    def statuses(seed: int) -> list[int]:
        with serve(root, f"error_rate=0.5,seed={seed}") as server:
            return [
                shopify.get(f"{server.shopify_base_url}/products.json", params={"limit": n}).status_code
                for n in range(1, 31)
            ]

    assert statuses(8) == statuses(8)
    assert statuses(8) != statuses(9)


# --- slow and dropped responses ----------------------------------------------------------------------------


def test_slow_responses_are_held_back(root: Path, shopify: requests.Session) -> None:
    with serve(root, "slow_rate=1,slow_seconds=0.3") as server:
        started = time.perf_counter()
        assert shopify.get(f"{server.shopify_base_url}/products/count.json").status_code == 200
        assert time.perf_counter() - started >= 0.3
        assert server.fault_counts["slowed"] == 1


def test_dropped_connections_cut_big_pages(root: Path, shopify: requests.Session) -> None:
    with serve(root, "drop_connections=2") as server:
        small = shopify.get(
            f"{server.shopify_base_url}/orders.json", params={"status": "any", "fields": "id", "limit": 1}
        )
        assert small.status_code == 200 and len(small.content) < DROP_MIN_BODY_BYTES  # too small to cut
        url = f"{server.shopify_base_url}/orders.json?status=any&limit=250"
        for _ in range(2):
            with pytest.raises(
                (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)
            ):
                shopify.get(url)
        response = shopify.get(url)  # only the first N are cut
        assert response.status_code == 200
        assert len(response.content) == int(response.headers["Content-Length"]) > DROP_MIN_BODY_BYTES
        assert server.fault_counts["dropped"] == 2


def test_a_cut_response_promises_the_whole_body(root: Path, tokens: dict[str, str]) -> None:
    with serve(root, "drop_connections=1") as server:
        host, port = server.base_url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            connection.request(
                "GET",
                f"/admin/api/{SHOPIFY_API_VERSION}/orders.json?status=any&limit=250",
                headers={"X-Shopify-Access-Token": tokens["shopify"]},
            )
            response = connection.getresponse()
            promised = int(response.headers["Content-Length"])
            with pytest.raises(http.client.IncompleteRead) as cut:
                response.read()
        finally:
            connection.close()
    assert response.status == 200
    assert len(cut.value.partial) == promised // 2 and cut.value.expected == promised - promised // 2


# --- drift and records without id --------------------------------------------------------------------------


def drifted_ids(session: requests.Session, server: SandboxServer, table: str) -> dict[int, str]:
    params = {"limit": 50, **({"status": "any"} if table == "orders" else {})}
    records = walk_shopify(session, f"{server.shopify_base_url}/{table}.json", params)
    return {r["id"]: r["merchant_business_entity_id"] for r in records if "merchant_business_entity_id" in r}


def test_drift_adds_one_unknown_field_to_the_same_records(
    root: Path, shopify: requests.Session, klaviyo: requests.Session
) -> None:
    with serve(root, "drift_rate=0.3,seed=7") as server:
        orders = drifted_ids(shopify, server, "orders")
        customers = drifted_ids(shopify, server, "customers")
        assert drifted_ids(shopify, server, "orders") == orders  # the same records, the same values
        profiles = walk_klaviyo(klaviyo, f"{server.klaviyo_base_url}/profiles", {"page[size]": 100})
        flagged = {p["id"] for p in profiles if "predictive_flag" in p["attributes"]}
        assert all(p["attributes"]["predictive_flag"] is True for p in profiles if p["id"] in flagged)
        one_id = next(iter(orders))
        one = shopify.get(f"{server.shopify_base_url}/orders/{one_id}.json").json()["order"]
        assert one["merchant_business_entity_id"] == orders[one_id]
        sparse = shopify.get(
            f"{server.shopify_base_url}/orders.json",
            params={"status": "any", "ids": one_id, "fields": "id,name"},
        ).json()["orders"]
        assert set(sparse[0]) == {"id", "name"}  # a projection leaves the unknown field out
        counts = server.fault_counts
    all_orders = read_jsonl(root / "world/shopify/orders.jsonl")
    stored = {o["id"]: o for o in all_orders}
    for order_id in orders:
        assert orders[order_id].startswith("MBE-") and "merchant_business_entity_id" not in stored[order_id]
    assert 0.15 < len(orders) / len(all_orders) < 0.45
    assert 0.15 < len(flagged) / len(profiles) < 0.45
    assert counts["drifted_records"] == len(orders) + len(customers) + len(flagged)
    with serve(root, "drift_rate=0.3,seed=7") as again:
        assert drifted_ids(shopify, again, "orders") == orders  # and on the next run
    with serve(root, "drift_rate=0.3,seed=8") as other:
        assert drifted_ids(shopify, other, "orders").keys() != orders.keys()


def _identify(records: list[dict[str, Any]], stored: list[dict[str, Any]]) -> tuple[list[int], set[int]]:
    """The true id of every served record (matched on content when it came without id), and those without."""
    by_content = {
        json.dumps({k: v for k, v in r.items() if k != "id"}, sort_keys=True): r["id"] for r in stored
    }
    ids, without = [], set()
    for record in records:
        record = {k: v for k, v in record.items() if k != "merchant_business_entity_id"}
        if "id" in record:
            ids.append(record["id"])
        else:
            true_id = by_content[json.dumps(record, sort_keys=True)]
            ids.append(true_id)
            without.add(true_id)
    return ids, without


def test_paging_under_every_fault_visits_every_record_once(root: Path, shopify: requests.Session) -> None:
    faults = (
        "error_rate=0.3,drop_connections=3,slow_rate=0.05,slow_seconds=0.01,drift_rate=0.1,"
        "missing_id_rate=0.1,seed=11"
    )
    with serve(root, faults) as server:
        served = {
            table: walk_shopify(
                shopify,
                f"{server.shopify_base_url}/{table}.json",
                {"limit": 20, **({"status": "any"} if table == "orders" else {})},
            )
            for table in ("orders", "customers")
        }
        counts = server.fault_counts
        missing = {table: server.missing_id_ids(table) for table in served}
    assert counts["errors_429"] and counts["errors_5xx"] and counts["dropped"] == 3
    for table, records in served.items():
        stored = read_jsonl(root / f"world/shopify/{table}.jsonl")
        ids, without = _identify(records, stored)
        assert ids == [r["id"] for r in stored]  # every record once, in id order
        assert without and without == missing[table]
        assert counts["missing_id_records"][table] == len(without)
        share = len(without) / len(stored)
        assert 0.03 < share < 0.2, share


# --- list memberships ------------------------------------------------------------------------------------


def test_list_memberships_page_over_exactly_the_worlds_memberships(
    root: Path, klaviyo: requests.Session
) -> None:
    memberships = read_jsonl(root / "world/klaviyo/list_memberships.jsonl")
    lists = {x["id"]: x["attributes"]["name"] for x in read_jsonl(root / "world/klaviyo/lists.jsonl")}
    summary = json.loads((root / "truth/summary.json").read_text())
    with serve(root, "error_rate=0.5,seed=12") as server:  # the same fault rules as every list endpoint
        for list_id, name in lists.items():
            url = f"{server.klaviyo_base_url}/lists/{list_id}/relationships/profiles"
            data = walk_klaviyo(klaviyo, url, {})
            expected = [m["profile_id"] for m in memberships if m["list_id"] == list_id]
            assert [item["id"] for item in data] == expected
            assert all(item == {"type": "profile", "id": item["id"]} for item in data)
            assert len(expected) == summary["klaviyo"]["list_memberships"][name] > 20
        assert server.fault_counts["errors_429"] + server.fault_counts["errors_5xx"] > 0
