"""marts.customer_360 against the sandbox world's ground truth: one row per person, their orders
and net revenue, and the top 10 customers.

The expected figures are computed here from the world's own files (`world/shopify/orders.jsonl`
and `truth/`), not from the warehouse: an order's net revenue is the README definition (0 when
cancelled, else `total_price` minus successful refund transactions), it belongs to the person the
truth names, and it counts for that person only if a source can link it to anyone (a customer, an
email or a phone; an anonymous walk-in sale belongs to nobody the shop knows). A warehouse person is
matched to a true person through the Shopify customers, orders and Klaviyo profiles it holds.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from orchestration.nightly import NightlyReport
from tests.conftest import is_linkable, order_net_revenue, read_jsonl
from tests.transform.test_identity import PERSON_COUNT_TOLERANCE, prepare_scoring, true_person_count

TOP = 10


def persons_with_anonymous_orders(world: Path, connection: duckdb.DuckDBPyConnection) -> set[str]:
    """True persons with an order no source links to them (their history is partly unknowable)."""
    order_person = dict(
        connection.execute(
            "select identifier, person_id from truth_nodes_raw where id_type = 'order_id'"
        ).fetchall()
    )
    return {
        order_person[str(order["id"])]
        for order in read_jsonl(world / "world" / "shopify" / "orders.jsonl")
        if not order["test"] and not is_linkable(order) and str(order["id"]) in order_person
    }


def expected_persons(world: Path, truth: dict, connection: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
    """Per true person with a linkable order: (net revenue, orders not cancelled)."""
    order_person = dict(
        connection.execute(
            "select identifier, person_id from truth_nodes_raw where id_type = 'order_id'"
        ).fetchall()
    )
    malformed = {str(record["id"]) for record in truth["malformed"] if record["table"] == "orders"}
    expected: dict[str, tuple[Decimal, int]] = {}
    for order in read_jsonl(world / "world" / "shopify" / "orders.jsonl"):
        order_id = str(order["id"])
        if order["test"] or order_id in malformed or not is_linkable(order):
            continue
        person = order_person[order_id]
        revenue, orders = expected.get(person, (Decimal("0"), 0))
        expected[person] = (revenue + order_net_revenue(order), orders + (0 if order["cancelled_at"] else 1))
    return expected


@pytest.fixture(scope="module")
def warehouse(nightly: NightlyReport, world: Path):
    assert nightly.success, nightly.render()
    with duckdb.connect(str(nightly.warehouse), read_only=True) as connection:
        prepare_scoring(connection, world)
        connection.execute(
            f"""
            create temp table truth_nodes_raw as
            select * from read_csv('{world / "truth" / "identities.csv.gz"}', all_varchar = true)
            """
        )
        # the true person behind each warehouse person, through its records
        connection.execute(
            """
            create temp table key_person as
            select distinct identifiers.customer_key, truth_nodes_raw.person_id
            from intermediate.int_identity__person_identifiers as identifiers
            inner join truth_nodes_raw
                on identifiers.identifier_value = truth_nodes_raw.identifier
                and (identifiers.identifier_type, truth_nodes_raw.id_type) in (
                    ('shopify_customer', 'customer_id'),
                    ('shopify_order', 'order_id'),
                    ('klaviyo_profile', 'profile_id')
                )
            """
        )
        yield connection


def test_one_row_per_person_within_one_percent_of_the_truth(warehouse) -> None:
    rows, keys = warehouse.execute(
        "select count(*), count(distinct customer_key) from marts.customer_360"
    ).fetchone()
    expected = true_person_count(warehouse)
    print(f"\ncustomer_360: {rows} rows (truth: {expected} people)")
    assert rows == keys
    assert abs(rows - expected) <= PERSON_COUNT_TOLERANCE * expected
    # every row is one true person, and no true person has two rows
    split_or_merged = warehouse.execute(
        """
        select
            (select count(*) from (select customer_key from key_person group by 1 having count(*) > 1)),
            (select count(*) from (select person_id from key_person group by 1 having count(*) > 1))
        """
    ).fetchone()
    assert split_or_merged == (0, 0)


def test_net_revenue_and_orders_equal_the_truth(warehouse, world: Path, truth: dict) -> None:
    expected = expected_persons(world, truth, warehouse)
    revenue, orders = warehouse.execute(
        "select sum(net_revenue), sum(orders) from marts.customer_360"
    ).fetchone()
    assert revenue == sum(value[0] for value in expected.values())
    assert orders == sum(value[1] for value in expected.values())
    assert (
        orders
        == truth["shopify"]["orders"]["counted"]
        - warehouse.execute(
            "select count(*) from marts.fct_orders where customer_key is null and not is_cancelled"
        ).fetchone()[0]
    )


def test_every_person_has_their_true_revenue_and_top_10_equal_the_truth(warehouse, world, truth) -> None:
    expected = expected_persons(world, truth, warehouse)
    actual = {
        person: (revenue, orders)
        for person, revenue, orders in warehouse.execute(
            """
            select key_person.person_id, customer_360.net_revenue, customer_360.orders
            from marts.customer_360
            inner join key_person using (customer_key)
            where customer_360.orders > 0 or customer_360.net_revenue <> 0
            """
        ).fetchall()
    }
    # a person whose only orders were cancelled has no revenue and no orders on either side
    assert actual == {person: value for person, value in expected.items() if value != (0, 0)}

    def top(values: dict) -> list:
        return sorted(values.items(), key=lambda item: (-item[1][0], item[0]))[:TOP]

    print("\ntop 10 by net revenue (person, net revenue, orders):")
    for person, (revenue, orders) in top(actual):
        print(f"  {person}  {revenue:>9}  {orders}")
    assert top(actual) == top(expected)
    assert len(top(actual)) == TOP


CONSENT = {"SUBSCRIBED": "subscribed", "UNSUBSCRIBED": "unsubscribed", "NEVER_SUBSCRIBED": "not_subscribed"}


def test_email_consent_equals_the_truth_for_every_person_with_a_profile(warehouse, world: Path) -> None:
    rows = warehouse.execute(
        f"""
        select people.person_id, people.email_consent, customer_360.email_marketing_consent
        from marts.customer_360
        inner join key_person using (customer_key)
        inner join read_csv('{world / "truth" / "people.csv.gz"}', all_varchar = true) as people
            using (person_id)
        where people.profile_id is not null
        """
    ).fetchall()
    assert len(rows) > 100
    wrong = [(person, truth, ours) for person, truth, ours in rows if CONSENT[truth] != ours]
    assert wrong == []
    # nobody may be emailed without a subscribed statement
    assert (
        warehouse.execute(
            "select count(*) from marts.customer_360 "
            "where may_email and email_marketing_consent <> 'subscribed'"
        ).fetchone()[0]
        == 0
    )


def test_churned_equals_the_truth_for_every_buyer_whose_orders_are_all_known(warehouse, world: Path) -> None:
    unknowable = persons_with_anonymous_orders(world, warehouse)
    rows = warehouse.execute(
        f"""
        select people.person_id, people.churned = '1', customer_360.lifecycle_stage = 'churned'
        from marts.customer_360
        inner join key_person using (customer_key)
        inner join read_csv('{world / "truth" / "people.csv.gz"}', all_varchar = true) as people
            using (person_id)
        where customer_360.orders > 0
        """
    ).fetchall()
    compared = [(person, truth, ours) for person, truth, ours in rows if person not in unknowable]
    churned = sum(1 for _, truth, _ in compared if truth)
    # over every buyer, also those with sales no source links to them (their last order may be unknowable)
    hits = sum(1 for _, truth, ours in rows if truth and ours)
    flagged, actual = sum(1 for row in rows if row[2]), sum(1 for row in rows if row[1])
    print(
        f"\nchurn: {len(compared)} fully known buyers compared, {churned} churned in the truth; over all "
        f"{len(rows)} buyers precision {hits / max(flagged, 1):.4f} recall {hits / max(actual, 1):.4f}"
    )
    assert len(compared) > 100 and churned > 0
    assert [row for row in compared if row[1] != row[2]] == []
