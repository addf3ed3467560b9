"""customer_key stays with its person across nightly runs: the same world twice, then a day later.

A world of its own is loaded three times: the first run gives out the keys, the second (nothing
changed) must keep every one and record nothing, and after `sandbox advance --days 1` every node
seen before keeps its key unless its old key was recorded as merged or split in
`intermediate.int_identity__key_changes`.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ingestion.sandbox.world import advance_world
from orchestration.nightly import run_nightly
from tests.conftest import own_world


def _run_and_read_keys(directory: Path) -> dict:
    with dg.DagsterInstance.ephemeral() as instance:
        report = run_nightly(instance)
    assert report.success, report.render()
    with duckdb.connect(str(directory / "warehouse.duckdb"), read_only=True) as connection:
        latest = "where seen_at = (select max(seen_at) from intermediate.int_identity__person_keys)"
        return {
            "nodes": dict(
                connection.execute(
                    f"select node_key_hash, customer_key from intermediate.int_identity__person_keys {latest}"
                ).fetchall()
            ),
            "people": {
                row[0] for row in connection.execute("select customer_key from marts.customer_360").fetchall()
            },
            "changes": connection.execute(
                "select old_customer_key, new_customer_key, change_type "
                "from intermediate.int_identity__key_changes"
            ).fetchall(),
        }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """Keys after run 1, run 2 (same world) and run 3 (world advanced one day)."""
    for directory in own_world(tmp_path_factory.mktemp("customer_keys")):
        first = _run_and_read_keys(directory)
        second = _run_and_read_keys(directory)
        advance_world(directory / "sandbox", days=1)
        third = _run_and_read_keys(directory)
        return [first, second, third]


def test_a_rerun_keeps_every_key_and_records_nothing(runs: list[dict]) -> None:
    first, second, _ = runs
    assert len(first["people"]) > 100
    assert second["nodes"] == first["nodes"]
    assert second["people"] == first["people"]
    assert second["changes"] == []


def test_a_day_later_every_person_keeps_their_key_unless_a_change_is_recorded(runs: list[dict]) -> None:
    _, before, after = runs
    recorded = {(old, new) for old, new, _ in after["changes"]}
    kept = changed = 0
    for node, key in before["nodes"].items():
        if node not in after["nodes"]:
            continue
        if after["nodes"][node] == key:
            kept += 1
        else:
            assert (key, after["nodes"][node]) in recorded, f"node {node}: key {key} changed unrecorded"
            changed += 1
    merged = {old for old, _, change in after["changes"] if change == "merged"}
    new_people = after["people"] - before["people"]
    print(
        f"\nafter one day: {len(before['nodes'])} → {len(after['nodes'])} identifiers of people; "
        f"{kept} kept their key, {changed} changed (recorded); "
        f"{len(before['people'])} → {len(after['people'])} people, {len(new_people)} new keys, "
        f"{len(merged)} merged keys"
    )
    assert len(after["nodes"]) > len(before["nodes"]), "the day added orders, checkouts or people"
    assert kept > 0.95 * len(before["nodes"])
    # a person's key only disappears from customer_360 by a recorded merge
    assert before["people"] - after["people"] <= merged
    assert len(after["people"]) >= len(before["people"]) - len(merged)
