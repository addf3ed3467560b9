"""The product and timing marts (top_products, product_affinity, purchase_timing, repurchase_cycles)
against figures computed here, in plain Python, from the sandbox world's own order file
(`world/shopify/orders.jsonl`) and ground truth.

The marts count orders that are neither test, cancelled nor malformed (malformed orders are
quarantined by staging; the truth lists them), anonymous walk-in sales included. Line revenue is
price × quantity minus the line's discount, before refunds; an order's net revenue is its
total_price minus successful refund transactions. Weekday, hour and calendar day are the shop's
(Europe/Oslo). Repurchases follow the true person behind each order (`truth/identities.csv.gz`),
for orders a source can link to anyone (a customer, an email or a phone).
"""

from __future__ import annotations

import csv
import gzip
import math
from collections import Counter, defaultdict
from datetime import date, datetime
from decimal import Decimal
from itertools import combinations, pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import is_linkable, order_net_revenue, read_jsonl

SHOP_TIME = ZoneInfo("Europe/Oslo")
TOP = 5


@pytest.fixture(scope="module")
def counted_orders(world: Path, truth: dict) -> list[dict]:
    """The orders every product and timing mart counts."""
    malformed = {record["id"] for record in truth["malformed"] if record["table"] == "orders"}
    return [
        order
        for order in read_jsonl(world / "world" / "shopify" / "orders.jsonl")
        if not order["test"] and not order["cancelled_at"] and order["id"] not in malformed
    ]


def _shop_time(order: dict) -> datetime:
    return datetime.fromisoformat(order["created_at"]).astimezone(SHOP_TIME)


def _quantile(values: list[int], q: float) -> float:
    """Linear interpolation between closest ranks, as DuckDB's quantile_cont."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _round4(value: float) -> float:
    return round(value, 4)


def expected_products(orders: list[dict]) -> dict[int, tuple[Decimal, int, int]]:
    """Per product: (line revenue, units, orders)."""
    revenue: dict[int, Decimal] = defaultdict(Decimal)
    units: Counter[int] = Counter()
    product_orders: dict[int, set[int]] = defaultdict(set)
    for order in orders:
        for line in order["line_items"]:
            product = line["product_id"]
            revenue[product] += Decimal(line["price"]) * line["quantity"] - Decimal(line["total_discount"])
            units[product] += line["quantity"]
            product_orders[product].add(order["id"])
    return {product: (revenue[product], units[product], len(product_orders[product])) for product in revenue}


def test_top_products_by_revenue_and_units_equal_the_order_file(warehouse, counted_orders) -> None:
    expected = expected_products(counted_orders)
    rows = warehouse.execute(
        "select product_id, line_revenue, units, orders, revenue_rank, units_rank from marts.top_products"
    ).fetchall()
    assert {row[0]: row[1:4] for row in rows} == expected

    by_revenue = sorted(expected, key=lambda product: (-expected[product][0], product))[:TOP]
    by_units = sorted(expected, key=lambda product: (-expected[product][1], product))[:TOP]
    mart_by_revenue = [row[0] for row in sorted(rows, key=lambda row: (row[4], row[0]))[:TOP]]
    mart_by_units = [row[0] for row in sorted(rows, key=lambda row: (row[5], row[0]))[:TOP]]
    print(f"\ntop {TOP} by line revenue: " + ", ".join(f"{p} {expected[p][0]}" for p in by_revenue))
    print(f"top {TOP} by units: " + ", ".join(f"{p} {expected[p][1]}" for p in by_units))
    assert mart_by_revenue == by_revenue
    assert mart_by_units == by_units
    # rank 1 is the best seller on each measure
    assert {row[0] for row in rows if row[4] == 1} == {by_revenue[0]}
    assert {row[0] for row in rows if row[5] == 1} == {
        product for product in expected if expected[product][1] == expected[by_units[0]][1]
    }


def test_most_frequent_pair_has_its_true_orders_together_and_lift(warehouse, counted_orders, truth) -> None:
    baskets = [{line["product_id"] for line in order["line_items"]} for order in counted_orders]
    with_product = Counter(product for basket in baskets for product in basket)
    together = Counter(pair for basket in baskets for pair in combinations(sorted(basket), 2))
    (a, b), count = max(together.items(), key=lambda item: (item[1], -item[0][0], -item[0][1]))
    expected_lift = _round4(count * len(baskets) / (with_product[a] * with_product[b]))

    rows = warehouse.execute(
        """
        select product_a_id, product_b_id, orders_with_a, orders_with_b, orders_together,
            support, confidence_a_to_b, confidence_b_to_a, lift
        from marts.product_affinity
        """
    ).fetchall()
    pairs = {(row[0], row[1]): row[2:] for row in rows}
    print(f"\nmost frequent pair {a} + {b}: {count} orders together, lift {expected_lift}")
    assert pairs[(a, b)] == (
        with_product[a],
        with_product[b],
        count,
        _round4(count / len(baskets)),
        _round4(count / with_product[a]),
        _round4(count / with_product[b]),
        expected_lift,
    )
    # the same pair the other way round
    orders_with_a, orders_with_b, _, support, to_b, to_a, lift = pairs[(a, b)]
    assert pairs[(b, a)] == (orders_with_b, orders_with_a, count, support, to_a, to_b, lift)
    # every pair bought together, both ways, and nothing else (min orders together is 1)
    assert {pair: value[2] for pair, value in pairs.items()} == {
        **together,
        **{(second, first): n for (first, second), n in together.items()},
    }
    # the world's planted bundles stand out
    for first, second in truth["planted"]["bought_together"]:
        assert pairs[(int(first), int(second))][-1] > 2


def test_purchase_timing_totals_and_busiest_cell_equal_the_order_file(warehouse, counted_orders) -> None:
    cells = Counter((_shop_time(order).isoweekday(), _shop_time(order).hour) for order in counted_orders)
    (weekday, hour), busiest = max(cells.items(), key=lambda item: (item[1], -item[0][0], -item[0][1]))

    rows = warehouse.execute(
        "select order_weekday, order_weekday_name, order_hour, orders, net_revenue from marts.purchase_timing"
    ).fetchall()
    assert len(rows) == 7 * 24
    assert sum(row[3] for row in rows) == len(counted_orders)
    assert sum(row[4] for row in rows) == sum(order_net_revenue(order) for order in counted_orders)
    assert {(row[0], row[2]): row[3] for row in rows if row[3]} == cells
    mart_busiest = max(rows, key=lambda row: (row[3], -row[0], -row[2]))
    day_name = date(2026, 6, weekday).strftime("%A")  # 1 June 2026 is a Monday
    print(f"\nbusiest cell: {day_name} {hour}:00 Oslo time, {busiest} orders")
    assert mart_busiest[:4] == (weekday, day_name, hour, busiest)


def test_repurchase_days_per_product_equal_the_order_file(warehouse, world, counted_orders) -> None:
    with gzip.open(world / "truth" / "identities.csv.gz", "rt", newline="") as handle:
        order_person = {
            row["identifier"]: row["person_id"]
            for row in csv.DictReader(handle)
            if row["id_type"] == "order_id"
        }
    purchase_days: dict[tuple[int, str], set[date]] = defaultdict(set)
    for order in counted_orders:
        if not is_linkable(order):
            continue
        for line in order["line_items"]:
            purchase_days[(line["product_id"], order_person[str(order["id"])])].add(_shop_time(order).date())
    gaps: dict[int, list[int]] = defaultdict(list)
    buyers: Counter[int] = Counter()
    rebuyers: Counter[int] = Counter()
    for (product, _), days in purchase_days.items():
        ordered = sorted(days)
        buyers[product] += 1
        rebuyers[product] += len(ordered) > 1
        gaps[product] += [(later - earlier).days for earlier, later in pairwise(ordered)]

    def quartiles(values: list[int]) -> tuple:
        return tuple(_quantile(values, q) for q in (0.5, 0.25, 0.75)) if values else (None, None, None)

    expected = {
        product: (buyers[product], rebuyers[product], len(gaps[product]), *quartiles(gaps[product]))
        for product in buyers
    }
    actual = {
        row[0]: row[1:]
        for row in warehouse.execute(
            """
            select product_id, buyers, rebuyers, repurchases, median_days_between_purchases,
                p25_days_between_purchases, p75_days_between_purchases
            from marts.repurchase_cycles
            """
        ).fetchall()
    }
    most_rebought = max(expected, key=lambda product: (expected[product][2], -product))
    print(
        f"\nmost rebought product {most_rebought}: {expected[most_rebought][2]} repurchases, "
        f"median {expected[most_rebought][3]} days (p25 {expected[most_rebought][4]}, "
        f"p75 {expected[most_rebought][5]})"
    )
    assert expected[most_rebought][2] >= 3
    assert actual[most_rebought] == expected[most_rebought]
    assert actual == expected
