"""The funnel marts against the GA4 export files themselves.

The expected figures are recomputed here in Python from the world's daily export files
(`ga4/events_*.json.gz`): exact duplicate rows dropped, sessions keyed by `user_pseudo_id` and
`ga_session_id`, the closed funnel walked event by event in timestamp order, the open funnel
counted per event name. Step counts per day are also checked against the world's truth in
tests/test_end_to_end.py.
"""

from __future__ import annotations

import gzip
import itertools
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import read_jsonl

STEPS = ("view_item", "add_to_cart", "begin_checkout", "add_shipping_info", "add_payment_info", "purchase")
CHANNELS = {
    "organic": "organic_search",
    "cpc": "paid_search",
    "email": "email",
    "social": "social",
    "(none)": "direct",
}


@dataclass
class Session:
    date: str
    device: str
    channel: str
    started: int  # µs
    closed: dict[str, int] = field(default_factory=dict)  # step → µs it was reached, in order
    open: set[str] = field(default_factory=set)  # steps with an event, in any order
    transaction_id: str | None = None


def export_sessions(world: Path) -> dict[tuple[str, int], Session]:
    """Every GA4 session of the export files, its closed and open funnel."""
    rows: set[str] = set()
    for path in sorted((world / "ga4").glob("events_*.json.gz")):
        with gzip.open(path, "rt") as handle:
            rows.update(handle)  # an exact duplicate row is the same event
    events = sorted((json.loads(row) for row in rows), key=lambda event: event["event_timestamp"])
    sessions: dict[tuple[str, int], Session] = {}
    for event in events:
        params = {param["key"]: param["value"] for param in event["event_params"]}
        key = (event["user_pseudo_id"], params["ga_session_id"]["int_value"])
        session = sessions.setdefault(
            key,
            Session(
                event["event_date"],
                event["device"]["category"],
                CHANNELS[event["traffic_source"]["medium"]],
                event["event_timestamp"],
            ),
        )
        name = event["event_name"]
        if name in STEPS:
            session.open.add(name)
            following = STEPS[len(session.closed)] if len(session.closed) < len(STEPS) else None
            if name == following:
                session.closed[name] = event["event_timestamp"]
                if name == "purchase":
                    session.transaction_id = event["ecommerce"]["transaction_id"]
    return sessions


@pytest.fixture(scope="module")
def sessions(world: Path) -> dict[tuple[str, int], Session]:
    return export_sessions(world)


def _day(date: str) -> str:
    return f"{date[:4]}-{date[4:6]}-{date[6:]}"


def test_the_planted_drop_off_is_the_largest(warehouse, truth: dict) -> None:
    sums = ", ".join(f"sum({step}_sessions)" for step in STEPS)
    totals = dict(
        zip(STEPS, warehouse.execute(f"select {sums} from marts.fct_funnel_daily").fetchone(), strict=True)
    )
    drop_offs = {
        f"{before}→{step}": 1 - totals[step] / totals[before] for before, step in itertools.pairwise(STEPS)
    }
    print(
        "\nfunnel drop-off over the whole period: " + ", ".join(f"{k} {v:.3f}" for k, v in drop_offs.items())
    )
    assert max(drop_offs, key=drop_offs.get) == truth["planted"]["largest_funnel_drop"]
    # row by row, the planted step is also the one named most often (weighted by sessions)
    named = warehouse.execute(
        """
        select largest_drop_off_step from marts.fct_funnel_daily
        where largest_drop_off_step is not null
        group by 1 order by sum(sessions) desc limit 1
        """
    ).fetchone()[0]
    assert named == truth["planted"]["largest_funnel_drop"].split("→")[1]


def test_open_funnel_counts_equal_the_export_files(warehouse, sessions) -> None:
    expected = Counter(step for session in sessions.values() for step in session.open)
    sums = ", ".join(f"sum({step}_sessions_open)" for step in STEPS)
    totals = warehouse.execute(f"select {sums} from marts.fct_funnel_daily").fetchone()
    assert dict(zip(STEPS, totals, strict=True)) == {step: expected[step] for step in STEPS}
    # the open count overstates conversion: some purchases come without the steps before them
    assert expected["purchase"] > sum(1 for session in sessions.values() if "purchase" in session.closed)


def test_time_to_step_median_and_p90_equal_the_export_files(warehouse, sessions) -> None:
    seconds: dict[tuple, list[float]] = defaultdict(list)
    for session in sessions.values():
        for step, reached in session.closed.items():
            seconds[(_day(session.date), session.device, session.channel, step)].append(
                (reached - session.started) / 1e6
            )
    columns = ", ".join(f"('{step}', {step}_seconds_median, {step}_seconds_p90)" for step in STEPS)
    rows = warehouse.execute(
        f"""
        select session_date::varchar, device_category, channel, step, median, p90
        from marts.fct_funnel_daily,
            lateral (select * from (values {columns}) as steps(step, median, p90))
        where median is not null
        """
    ).fetchall()
    assert len(rows) == len(seconds) > 300
    for day, device, channel, step, median, p90 in rows:
        values = seconds[(day, device, channel, step)]
        assert median == pytest.approx(round(float(np.percentile(values, 50)), 1), abs=0.051), (day, step)
        assert p90 == pytest.approx(round(float(np.percentile(values, 90)), 1), abs=0.051), (day, step)


def test_one_session_row_per_export_session_with_its_steps(warehouse, sessions) -> None:
    count, *reached = warehouse.execute(
        "select count(*), "
        + ", ".join(f"count(*) filter (where reached_{step})" for step in STEPS)
        + " from marts.fct_funnel_sessions"
    ).fetchone()
    assert count == len(sessions)
    expected = [sum(1 for session in sessions.values() if step in session.closed) for step in STEPS]
    assert reached == expected
    furthest = dict(
        warehouse.execute(
            "select furthest_step, count(*) from marts.fct_funnel_sessions group by 1"
        ).fetchall()
    )
    expected_furthest = Counter(STEPS[len(s.closed) - 1] if s.closed else "none" for s in sessions.values())
    assert furthest == dict(expected_furthest)


def test_converted_sessions_name_their_shopify_order(warehouse, sessions, world: Path, truth: dict) -> None:
    malformed = {str(record["id"]) for record in truth["malformed"] if record["table"] == "orders"}
    real_orders = {
        str(order["id"])
        for order in read_jsonl(world / "world" / "shopify" / "orders.jsonl")
        if not order["test"] and str(order["id"]) not in malformed
    }
    expected = sorted(
        int(session.transaction_id) for session in sessions.values() if session.transaction_id in real_orders
    )
    converted = [
        row[0]
        for row in warehouse.execute(
            "select converted_order_id from marts.fct_funnel_sessions"
            " where converted_order_id is not null order by 1"
        ).fetchall()
    ]
    assert len(expected) > 100
    assert converted == expected


def test_no_cookie_id_reaches_the_sessions_mart(warehouse, sessions) -> None:
    cookies = {pseudo_id for pseudo_id, _ in sessions}
    text_columns = [
        name
        for name, data_type, *_ in warehouse.execute("describe marts.fct_funnel_sessions").fetchall()
        if data_type == "VARCHAR"
    ]
    for column in text_columns:
        values = {
            row[0]
            for row in warehouse.execute(
                f"select distinct {column} from marts.fct_funnel_sessions"
            ).fetchall()
        }
        assert not values & cookies, column
