"""customer_360's predictions in the nightly job: the BG/NBD and Gamma-Gamma fit, its 90-day holdout
and the expected next order date, on the small session world and on a long world.

The models themselves are checked against the published CDNOW estimates in tests/predictions/.
Here the inputs are recomputed in Python from fct_orders (purchase days in Europe/Oslo time, several
orders on one day one purchase), and churn is compared with the sandbox's ground truth.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

HOLDOUT_DAYS = 90


@pytest.fixture(scope="module")
def long_warehouse(long_world_run: tuple[Path, Path]):
    world, warehouse = long_world_run
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        yield world, connection


def purchase_days(connection: duckdb.DuckDBPyConnection) -> dict[str, list[date]]:
    """customer_key → sorted shop-local days with a counted order, from fct_orders."""
    rows = connection.execute(
        """
        select customer_key, (timezone('Europe/Oslo', timezone('UTC', ordered_at)))::date
        from marts.fct_orders
        where not is_cancelled and customer_key is not null
        """
    ).fetchall()
    days: dict[str, set[date]] = defaultdict(set)
    for key, day in rows:
        days[key].add(day)
    return {key: sorted(value) for key, value in days.items()}


def test_every_buyer_and_only_buyers_get_predictions(warehouse) -> None:
    problem, buyers, repeat_buyers = warehouse.execute(
        "select fit_problem, buyers, repeat_buyers from intermediate.int_customer__clv_fit"
    ).fetchone()
    assert problem is None
    days = purchase_days(warehouse)
    assert (buyers, repeat_buyers) == (len(days), sum(1 for d in days.values() if len(d) > 1))
    rows = warehouse.execute(
        """
        select customer_key, orders, probability_alive, churn_risk, expected_purchases_90d,
            expected_purchases_365d, predicted_clv_365d
        from marts.customer_360
        """
    ).fetchall()
    predicted = {row[0] for row in rows if row[2] is not None}
    assert predicted == set(days)
    for _, _, alive, risk, in_90, in_365, clv in (row for row in rows if row[2] is not None):
        assert 0 <= alive <= 1
        assert risk == ("high" if alive < 0.3 else "medium" if alive < 0.7 else "low")
        assert 0 <= in_90 <= in_365
        assert clv >= 0


def test_expected_next_order_date_is_the_last_purchase_plus_the_mean_gap(warehouse) -> None:
    days = purchase_days(warehouse)
    rows = warehouse.execute(
        "select customer_key, avg_days_between_orders, expected_next_order_date from marts.customer_360"
    ).fetchall()
    repeat = [(key, gap, due) for key, gap, due in rows if len(days.get(key, [])) > 1]
    assert len(repeat) > 20
    for key, gap, due in repeat:
        mine = days[key]
        mean_gap = (mine[-1] - mine[0]).days / (len(mine) - 1)
        assert abs(gap - mean_gap) <= 0.0501  # rounded to 0.1
        assert due == mine[-1] + timedelta(days=int(mean_gap + 0.5))  # half a day rounds up


@pytest.mark.e2e
def test_holdout_on_the_long_world_is_scored_on_the_actual_purchases(long_warehouse) -> None:
    _, connection = long_warehouse
    fit = connection.execute("select * from intermediate.int_customer__clv_fit").df().iloc[0]
    assert fit["fit_problem"] is None and fit["holdout_problem"] is None
    # the actual holdout purchase days, recomputed: buyers known before the holdout, days after it
    end = connection.execute(
        "select max(as_of_local_date) from intermediate.int_customer__purchase_days"
    ).fetchone()
    calibration_end = end[0] - timedelta(days=HOLDOUT_DAYS)
    days = purchase_days(connection)
    known = {key: mine for key, mine in days.items() if mine[0] <= calibration_end}
    actual = sum(1 for mine in known.values() for day in mine if calibration_end < day <= end[0])
    print(
        f"\nholdout {HOLDOUT_DAYS} days: {fit['holdout_customers']} buyers, "
        f"{fit['holdout_predicted_purchases']:.1f} purchase days predicted vs {actual} actual "
        f"({fit['holdout_aggregate_error']:+.1%}), MAE {fit['holdout_mae_per_customer']:.3f} per buyer; "
        f"BG/NBD r={fit['bgnbd_r']:.3f} alpha={fit['bgnbd_alpha']:.2f} "
        f"a={fit['bgnbd_a']:.3f} b={fit['bgnbd_b']:.3f}"
    )
    assert (fit["holdout_customers"], fit["holdout_actual_purchases"]) == (len(known), actual)
    # A sanity bound, not a target: with 250 customers the holdout holds ~75 purchase days, and a
    # degenerate fit (short history, eq. 10 in rounding noise) predicts thousands.
    assert abs(fit["holdout_predicted_purchases"] / actual - 1) < 0.5
    assert fit["holdout_mae_per_customer"] < 1.0


@pytest.mark.e2e
def test_churned_buyers_agree_with_the_truth_on_the_long_world(long_warehouse) -> None:
    world, connection = long_warehouse
    rows = connection.execute(
        f"""
        with truth_nodes as (
            select * from read_csv('{world / "truth" / "identities.csv.gz"}', all_varchar = true)
        ),
        key_person as (
            select distinct identifiers.customer_key, truth_nodes.person_id
            from intermediate.int_identity__person_identifiers as identifiers
            inner join truth_nodes
                on identifiers.identifier_value = truth_nodes.identifier
                and (identifiers.identifier_type, truth_nodes.id_type) in (
                    ('shopify_customer', 'customer_id'), ('shopify_order', 'order_id'),
                    ('klaviyo_profile', 'profile_id'))
        )
        select people.churned = '1', customer_360.lifecycle_stage = 'churned'
        from marts.customer_360
        inner join key_person using (customer_key)
        inner join read_csv('{world / "truth" / "people.csv.gz"}', all_varchar = true) as people
            using (person_id)
        where customer_360.orders > 0 or people.orders::integer > 0
        """
    ).fetchall()
    hits = sum(1 for truth, ours in rows if truth and ours)
    flagged, actual = sum(1 for _, ours in rows if ours), sum(1 for truth, _ in rows if truth)
    precision, recall = hits / flagged, hits / actual
    print(f"\nchurned on the long world: {len(rows)} buyers, precision {precision:.4f}, recall {recall:.4f}")
    assert actual > 50
    assert precision >= 0.99 and recall >= 0.95
