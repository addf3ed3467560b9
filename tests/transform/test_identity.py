"""Identity resolution (models/intermediate/identity) against the sandbox world's ground truth.

The truth (`truth/identities.csv.gz`) names the person behind every identifier. Both sides are
compared as node keys (`<type>:<normalised value>`, normalised here independently of the models)
restricted to identifiers that appear in the warehouse (`int_identity__identifiers`), and scored
by pairwise precision and recall: of the pairs of identifiers put in one component, how many are
one true person, and of the pairs that are one true person, how many share a component.

Two element sets are scored:

* linkable identifiers: every warehouse identifier except those no source links to anything —
  a GA4 cookie with no user_id, no purchase and no checkout page, and an order with no customer,
  email or phone (a walk-in sale). No deterministic resolver can place those; they are decided
  here from staging and raw tables, not from the graph. The thresholds apply to this set.
* all identifiers: the same with the evidence-free ones; its recall is bounded by their share.

The baseline is the exact-email join: a Shopify customer and a Klaviyo profile are one person
only when their raw emails are byte-for-byte equal; every other identifier stands alone. Both are
also printed for customer records and profiles alone, the baseline's home ground.

Truth identifiers the truth gives to more than one person (after normalisation: accidental
shared phones in big worlds) are not scored as elements; the guard's job is to cut them.
`prepare_scoring`, `report` and `true_person_count` take any built warehouse, so a bigger world
built by hand (`shop360 sandbox generate`, `shop360 run`) is scored the same way.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from orchestration.nightly import NightlyReport

MIN_PRECISION = 0.995
MIN_RECALL = 0.97
# all identifiers: anonymous cookies cap recall (see the module doc); a floor against regressions
MIN_RECALL_ALL = 0.85
PERSON_COUNT_TOLERANCE = 0.01
# the element set where the exact-email baseline is at home (printed, not asserted)
RECORDS = "split_part(node_key, ':', 1) in ('shopify_customer', 'klaviyo_profile')"

# identities.csv.gz id_type -> node type of the identity graph
NODE_TYPES = {
    "customer_id": "shopify_customer",
    "user_id": "shopify_customer",  # GA4 user_id is the Shopify customer id
    "order_id": "shopify_order",
    "checkout_id": "shopify_checkout",
    "profile_id": "klaviyo_profile",
    "user_pseudo_id": "ga4_cookie",
    "email": "email",
    "phone": "phone",
}


@pytest.fixture(scope="module")
def warehouse(nightly: NightlyReport, world: Path):
    """The warehouse, with the truth and the scored element sets as temporary tables."""
    assert nightly.success, nightly.render()
    with duckdb.connect(str(nightly.warehouse), read_only=True) as connection:
        prepare_scoring(connection, world)
        yield connection


def prepare_scoring(connection: duckdb.DuckDBPyConnection, world: Path) -> None:
    """Temporary tables: truth_nodes, evidence_free and elements (what is scored, with both labels)."""
    truth = world / "truth"
    node_type = "case id_type " + " ".join(f"when '{k}' then '{v}'" for k, v in NODE_TYPES.items()) + " end"
    connection.execute(
        f"""
        create temp table truth_nodes as
        with identities as (
            select * from read_csv('{truth / "identities.csv.gz"}', all_varchar = true)
        ),
        people as (
            select person_id, is_test = '1' as is_test
            from read_csv('{truth / "people.csv.gz"}', all_varchar = true)
        )
        select distinct
            {node_type} || ':' || case id_type
                when 'email' then lower(trim(identifier))
                when 'phone' then regexp_replace(identifier, '[^0-9+]', '', 'g')
                else trim(identifier)
            end as node_key,
            identities.id_type,
            identities.person_id,
            people.is_test
        from identities
        inner join people using (person_id)
        where nullif(trim(identifier), '') is not null
        """
    )
    # identifiers no source links to anything (decided from the sources, not from the graph)
    connection.execute(
        """
        create temp table evidence_free as
        select 'ga4_cookie:' || user_pseudo_id as node_key
        from staging.stg_ga4__events
        group by user_pseudo_id
        having count(user_id) = 0
            and count(transaction_id) = 0
            and count(*) filter (where contains(page_location, '/checkouts/')) = 0
        union
        select 'shopify_order:' || id
        from raw_shopify.orders
        where customer__id is null
            and nullif(trim(email), '') is null
            and nullif(trim(phone), '') is null
        """
    )
    connection.execute(
        """
        create temp table elements as
        with single_person_nodes as (
            select node_key
            from truth_nodes
            group by node_key
            having count(distinct person_id) = 1
        ),
        baseline_emails as (
            select 'shopify_customer:' || id as node_key, email as raw_email from raw_shopify.customers
            union all
            select 'klaviyo_profile:' || id, email from raw_klaviyo.profiles
        )
        select distinct
            truth_nodes.node_key,
            truth_nodes.person_id,
            components.component_id,
            coalesce('email:' || baseline_emails.raw_email, truth_nodes.node_key) as baseline_label,
            truth_nodes.node_key not in (select node_key from evidence_free) as is_linkable
        from truth_nodes
        inner join single_person_nodes using (node_key)
        inner join intermediate.int_identity__components as components using (node_key)
        left join baseline_emails using (node_key)
        where not truth_nodes.is_test
        """
    )


def pairwise(connection: duckdb.DuckDBPyConnection, label: str, where: str = "true") -> tuple[float, float]:
    """Pairwise precision and recall of the clustering `label` against the true persons."""
    true_positives, predicted, actual = connection.execute(
        f"""
        with scored as (select * from elements where {where})
        select
            (select sum(n * (n - 1) / 2) from (select count(*) as n from scored group by {label}, person_id)),
            (select sum(n * (n - 1) / 2) from (select count(*) as n from scored group by {label})),
            (select sum(n * (n - 1) / 2) from (select count(*) as n from scored group by person_id))
        """
    ).fetchone()
    return (true_positives / predicted if predicted else 1.0), true_positives / actual


def test_the_identity_models_are_built(nightly: NightlyReport) -> None:
    models = ("identifiers", "edges", "first_pass_components", "cut_identifiers", "components", "persons")
    for model in models:
        assert f"intermediate/int_identity__{model}" in nightly.assets_materialized
    assert nightly.failed_checks == []


def scores(connection: duckdb.DuckDBPyConnection) -> dict[str, tuple[float, float]]:
    """Pairwise (precision, recall) of the graph and of the exact-email baseline."""
    return {
        "graph, linkable identifiers": pairwise(connection, "component_id", "is_linkable"),
        "graph, all identifiers": pairwise(connection, "component_id"),
        "exact-email baseline, linkable identifiers": pairwise(connection, "baseline_label", "is_linkable"),
        "exact-email baseline, all identifiers": pairwise(connection, "baseline_label"),
        "graph, customer records + profiles": pairwise(connection, "component_id", RECORDS),
        "exact-email baseline, customer records + profiles": pairwise(connection, "baseline_label", RECORDS),
    }


def report(connection: duckdb.DuckDBPyConnection) -> dict[str, tuple[float, float]]:
    """Print the scores (pytest -s shows them) and return them."""
    elements, linkable = connection.execute(
        "select count(*), count(*) filter (where is_linkable) from elements"
    ).fetchone()
    scored = scores(connection)
    print(f"\nidentity resolution on {elements} warehouse identifiers ({linkable} linkable):")
    for name, (precision, recall) in scored.items():
        print(f"  {name:<50} precision {precision:.4f}  recall {recall:.4f}")
    return scored


def test_pairwise_precision_and_recall_beat_the_exact_email_baseline(warehouse) -> None:
    scored = report(warehouse)
    precision, recall = scored["graph, linkable identifiers"]
    assert precision >= MIN_PRECISION
    assert recall >= MIN_RECALL
    precision_all, recall_all = scored["graph, all identifiers"]
    assert precision_all >= MIN_PRECISION
    assert recall_all >= MIN_RECALL_ALL
    assert recall_all > scored["exact-email baseline, all identifiers"][1]


def true_person_count(connection: duckdb.DuckDBPyConnection) -> int:
    """Real people with a Shopify customer record, order or Klaviyo profile in the warehouse.

    Counted in the truth: non-test people owning at least one such record that is in staging (a
    quarantined record never reaches the warehouse, so its owner cannot be found), not counting
    anonymous walk-in orders (no customer, email or phone: every one is a stranger to the shop).
    """
    return connection.execute(
        """
        with records_in_staging as (
            select 'shopify_customer:' || customer_id as node_key
            from staging.stg_shopify__customers
            where not is_test_customer
            union all
            select 'shopify_order:' || order_id from staging.stg_shopify__orders
            union all
            select 'klaviyo_profile:' || profile_id from staging.stg_klaviyo__profiles
        )
        select count(distinct person_id)
        from truth_nodes
        inner join records_in_staging using (node_key)
        where not is_test
            and id_type in ('customer_id', 'order_id', 'profile_id')
            and node_key not in (select node_key from evidence_free)
        """
    ).fetchone()[0]


def test_person_count_matches_the_truth(warehouse) -> None:
    expected = true_person_count(warehouse)
    persons = warehouse.execute("select count(*) from intermediate.int_identity__persons").fetchone()[0]
    print(f"\npersons: {persons} (truth: {expected} real people with a customer record, order or profile)")
    assert expected > 100
    assert abs(persons - expected) <= PERSON_COUNT_TOLERANCE * expected


def test_test_accounts_stay_out_of_the_graph(warehouse) -> None:
    """No identifier of a test person is in a person; none that a source links to is in the graph.

    A test person's cookie that never logged in or bought is an anonymous visitor like any other.
    """
    test_nodes = warehouse.execute(
        "select count(distinct node_key) from truth_nodes where is_test"
    ).fetchone()[0]
    in_persons = warehouse.execute(
        """
        select count(*)
        from truth_nodes
        inner join intermediate.int_identity__components as components using (node_key)
        inner join intermediate.int_identity__persons as persons
            on components.component_id = persons.person_component_id
        where truth_nodes.is_test
        """
    ).fetchone()[0]
    in_graph = warehouse.execute(
        """
        select list(distinct split_part(node_key, ':', 1))
        from truth_nodes
        inner join intermediate.int_identity__components using (node_key)
        where truth_nodes.is_test
            and node_key not in (select node_key from evidence_free)
        """
    ).fetchone()[0]
    recorded = warehouse.execute(
        """
        select count(*)
        from truth_nodes
        inner join intermediate.int_identity__cut_identifiers as cut
            on md5(truth_nodes.node_key) = cut.node_key_hash
        where truth_nodes.is_test and cut.reason = 'test_account'
        """
    ).fetchone()[0]
    assert test_nodes > 0, "the world plants test accounts"
    assert in_persons == 0
    assert not in_graph, f"test-account identifiers in the graph: {in_graph}"
    assert recorded > 0


def test_cut_list_holds_no_personal_data(warehouse) -> None:
    columns = [
        row[0] for row in warehouse.execute("describe intermediate.int_identity__cut_identifiers").fetchall()
    ]
    assert columns == ["identifier_type", "node_key_hash", "reason", "degree", "component_size"]
    leaked = warehouse.execute(
        "select count(*) from intermediate.int_identity__cut_identifiers "
        "where contains(node_key_hash, '@') or not regexp_full_match(node_key_hash, '[0-9a-f]{32}')"
    ).fetchone()[0]
    assert leaked == 0
