"""The churn marts against the sandbox world's own files.

Expected figures are recomputed here from `world/shopify/orders.jsonl` and `truth/`, never from the
warehouse: a person's counted orders are the orders the truth gives them that are not test,
cancelled or malformed and that a source can link to anyone (an anonymous walk-in sale belongs to
nobody the shop knows, see test_customer_360), dated and bucketed by month in Europe/Oslo. Churn is
the truth's definition (`ingestion/sandbox/world.py`): more than T days since the last counted
order, T = 3 × the mean gap clamped to [30, 180], 180 after one order; a person churns on the day
last order + T (rounded down) unless they order again first, and the next order brings them back.
RFM scores and segments are the rules of `transform/macros/rfm.sql`, written again in Python.

Every test runs twice: on the session's small world (two months: hardly anyone churns yet) and on a
world of its own that covers well over a year, where people churn, come back and churn again.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest

from tests.conftest import LONG_WORLD, WORLD, is_linkable, order_net_revenue, read_jsonl

SHOP_TIME = ZoneInfo("Europe/Oslo")
SEGMENTS = ["Champions", "Loyal", "Potential loyalist", "New", "Can't lose", "At risk", "Hibernating", "Lost"]


@dataclass
class Order:
    day: date  # shop-local
    net_revenue: Decimal


@dataclass
class Built:
    """A world and the warehouse the nightly job built from it."""

    warehouse: duckdb.DuckDBPyConnection
    world: Path
    truth: dict
    as_of: date  # the world's last day: midnight local on it is the marts' as_of


@pytest.fixture(scope="module", params=["small", pytest.param("long", marks=pytest.mark.e2e)])
def built(request: pytest.FixtureRequest):
    if request.param == "small":
        nightly = request.getfixturevalue("nightly")
        assert nightly.success, nightly.render()
        world, as_of, warehouse = request.getfixturevalue("world"), WORLD["as_of"], nightly.warehouse
    else:
        world, warehouse = request.getfixturevalue("long_world_run")
        as_of = LONG_WORLD["as_of"]
    truth = json.loads((world / "truth" / "summary.json").read_text())
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        yield Built(connection, world, truth, as_of)


def counted_orders(world: Path, truth: dict) -> dict[str, list[Order]]:
    """True person → their linkable counted orders, in time order."""
    with gzip.open(world / "truth" / "identities.csv.gz", "rt") as handle:
        order_person = {
            row["identifier"]: row["person_id"]
            for row in csv.DictReader(handle)
            if row["id_type"] == "order_id"
        }
    malformed = {str(record["id"]) for record in truth["malformed"] if record["table"] == "orders"}
    placed: dict[str, list[tuple[datetime, int, Decimal]]] = defaultdict(list)
    for order in read_jsonl(world / "world" / "shopify" / "orders.jsonl"):
        order_id = str(order["id"])
        if order["test"] or order["cancelled_at"] or order_id in malformed or not is_linkable(order):
            continue
        at = datetime.fromisoformat(order["created_at"])
        placed[order_person[order_id]].append((at, order["id"], order_net_revenue(order)))
    return {
        person: [Order(at.astimezone(SHOP_TIME).date(), revenue) for at, _, revenue in sorted(orders)]
        for person, orders in placed.items()
    }


def unknowable(world: Path) -> set[str]:
    """True persons with an order no source links to them: the shop cannot know their whole history."""
    orders = {order["id"]: order for order in read_jsonl(world / "world" / "shopify" / "orders.jsonl")}
    with gzip.open(world / "truth" / "identities.csv.gz", "rt") as handle:
        return {
            row["person_id"]
            for row in csv.DictReader(handle)
            if row["id_type"] == "order_id"
            and int(row["identifier"]) in orders
            and not orders[int(row["identifier"])]["test"]
            and not is_linkable(orders[int(row["identifier"])])
        }


def true_people(world: Path) -> dict[str, dict]:
    with gzip.open(world / "truth" / "people.csv.gz", "rt") as handle:
        return {row["person_id"]: row for row in csv.DictReader(handle)}


def month_of(day: date) -> date:
    return day.replace(day=1)


def months_between(first: date, last: date) -> list[date]:
    months, month = [], month_of(first)
    while month <= last:
        months.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return months


def threshold(orders: list[Order]) -> float:
    if len(orders) == 1:
        return 180.0
    return min(180.0, max(30.0, 3 * (orders[-1].day - orders[0].day).days / (len(orders) - 1)))


def churn_days(orders: list[Order], as_of: date) -> tuple[list[date], list[date]]:
    """The days a person churned (before `as_of`) and the days of the orders that brought them back."""
    churned, reactivated = [], []
    for k, order in enumerate(orders):
        crossing = order.day + timedelta(days=math.floor(threshold(orders[: k + 1])))
        following = orders[k + 1].day if k + 1 < len(orders) else None
        if following is None and crossing < as_of:
            churned.append(crossing)
        elif following is not None and following > crossing:
            churned.append(crossing)
            reactivated.append(following)
    return churned, reactivated


def score_up(value: float, limits: list[float]) -> int:
    """1 below the first limit, …, 5 from the last (frequency, monetary)."""
    return 1 + sum(1 for limit in limits if value >= limit)


def segment(orders: list[Order], on: date) -> str:
    """The RFM segment of a person with these orders, as of the start of day `on`."""
    days = (on - orders[-1].day).days
    r = 5 - sum(1 for limit in (30, 60, 120, 240) if days > limit)
    f = score_up(len(orders), [2, 3, 4, 6])
    m = score_up(sum(o.net_revenue for o in orders), [50, 100, 200, 400])
    if r >= 4 and f >= 4 and m >= 4:
        return "Champions"
    if r >= 3 and f >= 3:
        return "Loyal"
    if r >= 3 and f == 2:
        return "Potential loyalist"
    if r >= 4 and f == 1:
        return "New"
    if f >= 4 or m >= 4:
        return "Can't lose"
    if f >= 2:
        return "At risk"
    return "Hibernating" if r >= 2 else "Lost"


def expected_monthly(persons: dict[str, list[Order]], as_of: date) -> dict[tuple[date, str], Counter]:
    """(month, segment at its start) → counts, every person in every month since their first order."""
    table: dict[tuple[date, str], Counter] = defaultdict(Counter)
    for orders in persons.values():
        churned, reactivated = churn_days(orders, as_of)
        for month in months_between(orders[0].day, as_of):
            before = [o for o in orders if o.day < month]
            counts = table[(month, segment(before, month) if before else "New")]
            if before:
                counts["customers_at_start"] += 1
                counts["churned_at_start"] += (month - before[-1].day).days > threshold(before)
            counts["active"] += any(month_of(o.day) == month for o in orders)
            counts["new"] += month_of(orders[0].day) == month
            counts["churned"] += any(month_of(day) == month for day in churned)
            counts["reactivated"] += any(month_of(day) == month for day in reactivated)
    return table


def test_cohorts_are_the_first_order_months_and_start_at_full_retention(built: Built) -> None:
    persons = counted_orders(built.world, built.truth)
    expected = Counter(month_of(orders[0].day) for orders in persons.values())
    rows = built.warehouse.execute(
        """
        select cohort_month, months_since_first_order, cohort_customers, active_customers, retention_rate
        from marts.churn_cohort_retention
        """
    ).fetchall()
    first_months = {cohort: customers for cohort, since, customers, _, _ in rows if since == 0}
    print(f"\ncohort sizes: { {str(cohort): size for cohort, size in sorted(first_months.items())} }")
    assert first_months == dict(expected)
    assert all(
        active == customers and rate == 1.0 for _, since, customers, active, rate in rows if since == 0
    )
    # the triangle is complete: every cohort has every month up to the as-of month, once
    as_of_month = month_of(built.as_of)
    assert sorted((cohort, since) for cohort, since, *_ in rows) == sorted(
        (cohort, since) for cohort in expected for since in range(len(months_between(cohort, as_of_month)))
    )
    assert all(customers == first_months[cohort] for cohort, _, customers, _, _ in rows)


def test_every_fully_known_buyer_is_in_the_cohort_of_their_true_first_order(built: Built) -> None:
    """Against truth/people.csv's first_order_at, for people whose every order a source links to them."""
    linked = built.warehouse.execute(
        f"""
        with truth_orders as (
            select identifier, person_id
            from read_csv('{built.world / "truth" / "identities.csv.gz"}', all_varchar = true)
            where id_type = 'order_id'
        ),
        key_person as (
            select distinct orders.customer_key, truth_orders.person_id
            from marts.fct_orders as orders
            inner join truth_orders on orders.order_id::varchar = truth_orders.identifier
            where orders.customer_key is not null
        )
        select key_person.person_id, months.first_order_month
        from intermediate.int_customer__months as months
        inner join key_person using (customer_key)
        where months.is_new
        """
    ).fetchall()
    people, hidden = true_people(built.world), unknowable(built.world)
    compared = {
        person: (
            month,
            month_of(datetime.fromisoformat(people[person]["first_order_at"]).astimezone(SHOP_TIME).date()),
        )
        for person, month in linked
        if person not in hidden
    }
    assert len(compared) > 100
    assert {person: ours for person, (ours, _) in compared.items()} == {
        person: theirs for person, (_, theirs) in compared.items()
    }


def test_active_person_months_and_revenue_equal_the_orders(built: Built) -> None:
    persons = counted_orders(built.world, built.truth)
    person_months = {(person, month_of(o.day)) for person, orders in persons.items() for o in orders}
    revenue = Counter()
    for orders in persons.values():
        for order in orders:
            revenue[month_of(order.day)] += order.net_revenue
    by_month = dict(
        built.warehouse.execute(
            "select month, sum(net_revenue) from marts.churn_cohort_retention"
            " group by month having sum(net_revenue) <> 0"
        ).fetchall()
    )
    active = built.warehouse.execute(
        "select sum(active_customers) from marts.churn_cohort_retention"
    ).fetchone()[0]
    print(f"\nactive person-months: {active} (orders: {len(person_months)})")
    assert active == len(person_months)
    assert by_month == {month: value for month, value in revenue.items() if value}
    monthly_active = built.warehouse.execute(
        "select sum(active_customers) from marts.churn_monthly"
    ).fetchone()[0]
    assert monthly_active == len(person_months)


def test_cumulative_revenue_per_cohort_customer_equals_the_orders(built: Built) -> None:
    """What a cohort's people have spent by the as-of month, on average, from their own orders."""
    spent: dict[date, list[Decimal]] = defaultdict(list)
    for orders in counted_orders(built.world, built.truth).values():
        spent[month_of(orders[0].day)].append(sum((o.net_revenue for o in orders), Decimal("0")))
    latest = built.warehouse.execute(
        """
        select cohort_month, cumulative_net_revenue, cumulative_net_revenue_per_customer
        from marts.churn_cohort_retention
        where is_partial_month
        """
    ).fetchall()
    assert {cohort: total for cohort, total, _ in latest} == {cohort: sum(v) for cohort, v in spent.items()}
    assert {cohort: per_customer for cohort, _, per_customer in latest} == {
        cohort: (sum(v) / len(v)).quantize(Decimal("0.01")) for cohort, v in spent.items()
    }


def test_monthly_counts_by_segment_equal_the_orders(built: Built) -> None:
    expected = expected_monthly(counted_orders(built.world, built.truth), built.as_of)
    rows = built.warehouse.execute(
        """
        select month, rfm_segment, customers_at_start, churned_at_start, active_customers, new_customers,
            churned_customers, reactivated_customers
        from marts.churn_monthly
        """
    ).fetchall()
    columns = ["customers_at_start", "churned_at_start", "active", "new", "churned", "reactivated"]
    actual = {(month, name): dict(zip(columns, values, strict=True)) for month, name, *values in rows}
    months = months_between(min(month for month, _ in expected), built.as_of)
    # every month × segment has a row, zeros included
    assert sorted(actual) == sorted((month, name) for month in months for name in SEGMENTS)
    assert {key: {c: v for c, v in counts.items() if v} for key, counts in actual.items()} == {
        key: {c: v for c, v in expected.get(key, Counter()).items() if v} for key in actual
    }
    churned = sum(c["churned"] for c in expected.values())
    reactivated = sum(c["reactivated"] for c in expected.values())
    print(f"\nchurn_monthly: {len(rows)} rows, {churned} churned, {reactivated} reactivated")
    assert churned > 0


def test_churn_rate_is_churned_over_those_not_churned_at_the_start(built: Built) -> None:
    rows = built.warehouse.execute(
        "select customers_at_start, churned_at_start, churned_customers, churn_rate from marts.churn_monthly"
    ).fetchall()
    for at_start, churned_at_start, churned, rate in rows:
        base = at_start - churned_at_start
        assert rate == (churned / base if base else None)


def test_churned_minus_reactivated_is_customer_360s_churned(built: Built) -> None:
    churned, reactivated = built.warehouse.execute(
        "select sum(churned_customers), sum(reactivated_customers) from marts.churn_monthly"
    ).fetchone()
    stage_churned = built.warehouse.execute(
        "select count(*) from marts.customer_360 where lifecycle_stage = 'churned'"
    ).fetchone()[0]
    assert churned - reactivated == stage_churned
    # the churn days recomputed here give every fully known buyer the truth's churned flag
    people, hidden = true_people(built.world), unknowable(built.world)
    ours = {}
    for person, orders in counted_orders(built.world, built.truth).items():
        churned_on, back_on = churn_days(orders, built.as_of)
        ours[person] = len(churned_on) > len(back_on)
    compared = {person: flag for person, flag in ours.items() if person not in hidden}
    print(
        f"\nchurned: {stage_churned} in customer_360,"
        f" {sum(compared.values())} of the fully known in the truth"
    )
    assert sum(compared.values()) > 0
    assert compared == {person: people[person]["churned"] == "1" for person in compared}
    assert sum(ours.values()) == stage_churned


def test_the_as_of_month_starts_where_customer_360_stands(built: Built) -> None:
    """The sandbox's as-of time is midnight local on the 1st: the start of its month is customer_360."""
    month = month_of(built.as_of)
    assert built.as_of == month
    at_start = built.warehouse.execute(
        "select rfm_segment, customers_at_start, churned_at_start from marts.churn_monthly where month = ?",
        [month],
    ).fetchall()
    in_360 = built.warehouse.execute(
        """
        select rfm_segment, count(*), count(*) filter (where lifecycle_stage = 'churned')
        from marts.customer_360 where orders > 0 group by rfm_segment
        """
    ).fetchall()
    assert {name: (n, c) for name, n, c in at_start if n} == {name: (n, c) for name, n, c in in_360}
    partial = built.warehouse.execute(
        "select distinct month, is_partial_month from marts.churn_monthly order by month"
    ).fetchall()
    assert [is_partial for _, is_partial in partial] == [False] * (len(partial) - 1) + [True]
