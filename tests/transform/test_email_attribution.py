"""Email attribution on fct_orders and the campaign mart, recomputed from the world's own files.

Who clicked and who ordered come from the truth's identities (a Klaviyo profile and an order
belong to one true person); clicks, opens and campaigns from `world/klaviyo/`; orders from
`world/shopify/orders.jsonl`. Last touch: an online order goes to the latest campaign its buyer
clicked in the 5 days before it, and separately to the latest opened in the day before it.
"""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from tests.conftest import read_jsonl

CLICK_WINDOW = timedelta(days=5)
OPEN_WINDOW = timedelta(days=1)


def expected_attribution(world: Path, truth: dict) -> dict[str, dict[str, str | None]]:
    """order id → {"click": campaign or None, "open": campaign or None}, for every online order."""
    with gzip.open(world / "truth" / "identities.csv.gz", "rt") as handle:
        person = {(row["id_type"], row["identifier"]): row["person_id"] for row in csv.DictReader(handle)}
    metric = {
        m["id"]: m["attributes"]["name"] for m in read_jsonl(world / "world" / "klaviyo" / "metrics.jsonl")
    }
    touches: dict[str, list[tuple[str, datetime, str]]] = {}
    for event in read_jsonl(world / "world" / "klaviyo" / "events.jsonl"):
        name = metric[event["relationships"]["metric"]["data"]["id"]]
        campaign = event["attributes"]["event_properties"].get("$message")
        if name in ("Clicked Email", "Opened Email") and campaign:
            who = person[("profile_id", event["relationships"]["profile"]["data"]["id"])]
            at = datetime.fromisoformat(event["attributes"]["datetime"])
            touches.setdefault(who, []).append((name, at, campaign))
    malformed = {str(record["id"]) for record in truth["malformed"] if record["table"] == "orders"}
    expected = {}
    for order in read_jsonl(world / "world" / "shopify" / "orders.jsonl"):
        if order["test"] or order["source_name"] == "pos" or str(order["id"]) in malformed:
            continue
        placed = datetime.fromisoformat(order["created_at"])
        mine = touches.get(person.get(("order_id", str(order["id"]))), [])

        def last(kind: str, window: timedelta, mine=mine, placed=placed) -> str | None:
            before = [(at, campaign) for name, at, campaign in mine if name == kind and at <= placed]
            at, campaign = max(before, default=(None, None))
            return campaign if at is not None and placed < at + window else None

        expected[str(order["id"])] = {
            "click": last("Clicked Email", CLICK_WINDOW),
            "open": last("Opened Email", OPEN_WINDOW),
        }
    return expected


def test_orders_are_attributed_to_the_last_click_and_open_within_the_windows(warehouse, world, truth) -> None:
    expected = expected_attribution(world, truth)
    rows = warehouse.execute(
        """
        select order_id::varchar, click_attributed_campaign_id, open_attributed_campaign_id
        from marts.fct_orders where sales_channel = 'online'
        """
    ).fetchall()
    actual = {order_id: {"click": click, "open": open_} for order_id, click, open_ in rows}
    clicked = sum(1 for a in expected.values() if a["click"])
    opened = sum(1 for a in expected.values() if a["open"])
    print(f"\nemail attribution: {len(expected)} online orders, {clicked} by click, {opened} by open")
    assert clicked >= 5 and opened >= 5
    assert actual == expected


def test_campaign_mart_sums_the_attributed_orders(warehouse, world, truth) -> None:
    expected = expected_attribution(world, truth)
    by_click = Counter(a["click"] for a in expected.values() if a["click"])
    by_open = Counter(a["open"] for a in expected.values() if a["open"])
    rows = warehouse.execute(
        "select campaign_id, click_attributed_orders, open_attributed_orders"
        " from marts.email_campaign_performance"
    ).fetchall()
    campaigns = {c["id"] for c in read_jsonl(world / "world" / "klaviyo" / "campaigns.jsonl")}
    assert {row[0] for row in rows} == campaigns
    assert {row[0]: row[1] for row in rows if row[1]} == dict(by_click)
    assert {row[0]: row[2] for row in rows if row[2]} == dict(by_open)
    # and customer_360 counts each person's click-attributed orders
    assert warehouse.execute("select sum(email_attributed_orders) from marts.customer_360").fetchone()[
        0
    ] == sum(by_click.values())


def test_campaign_recipients_opens_and_clicks_are_unique_per_profile(warehouse, world) -> None:
    metric = {
        m["id"]: m["attributes"]["name"] for m in read_jsonl(world / "world" / "klaviyo" / "metrics.jsonl")
    }
    seen: dict[str, set[tuple[str, str]]] = {
        "Received Email": set(),
        "Opened Email": set(),
        "Clicked Email": set(),
    }
    for event in read_jsonl(world / "world" / "klaviyo" / "events.jsonl"):
        name = metric[event["relationships"]["metric"]["data"]["id"]]
        campaign = event["attributes"]["event_properties"].get("$message")
        if name in seen and campaign:
            seen[name].add((campaign, event["relationships"]["profile"]["data"]["id"]))
    received = seen["Received Email"]
    opened = (seen["Opened Email"] | seen["Clicked Email"]) & received  # a click proves the open
    clicked = seen["Clicked Email"] & received
    rows = warehouse.execute(
        "select campaign_id, recipients, opened, clicked from marts.email_campaign_performance"
    ).fetchall()
    for campaign, recipients, opens, clicks in rows:
        assert recipients == sum(1 for c, _ in received if c == campaign), campaign
        assert opens == sum(1 for c, _ in opened if c == campaign), campaign
        assert clicks == sum(1 for c, _ in clicked if c == campaign), campaign
