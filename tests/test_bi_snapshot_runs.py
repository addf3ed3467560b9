"""The audience and the BI snapshot across nightly runs, on a world of their own (120 days, so
customers have had time to slip away), recorded in a persistent Dagster instance.

The tests run in file order: the first run's audience against the truth; a person in it withdraws
consent in Klaviyo and the next run drops exactly them; then the world advances a day and a BI reader
in another process queries the snapshot in a loop all through the next run.
"""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ingestion.pii import keyed_hash, normalise_email
from ingestion.pipelines import stop_sandbox
from ingestion.sandbox.world import advance_world, generate_world
from orchestration.cli import DAGSTER_YAML
from orchestration.nightly import NightlyReport, run_nightly
from orchestration.publish import SNAPSHOT_FILE
from tests.conftest import read_jsonl, write_jsonl

SLIPPING_WORLD = {"seed": 11, "customers": 250, "days": 120, "as_of": date(2026, 6, 1)}
BI_SNAPSHOT = dg.AssetKey(["bi", "snapshot"])
# How long the reader may take to make its first observation, or to finish after being stopped
READER_START_TIMEOUT = 120
READER_STOP_TIMEOUT = 300


@dataclass
class Shop:
    directory: Path
    instance: dg.DagsterInstance
    first: NightlyReport

    @property
    def sandbox(self) -> Path:
        return self.directory / "sandbox"

    @property
    def snapshot(self) -> Path:
        return self.directory / "bi" / SNAPSHOT_FILE

    def run(self) -> NightlyReport:
        """A nightly run on the world as it is on disk now (the fake APIs reload it)."""
        stop_sandbox()
        report = run_nightly(self.instance)
        assert report.success, report.render()
        return report

    def audience(self) -> dict[str, dict]:
        """customer_key → row of marts.audience_reactivation in the published snapshot."""
        with duckdb.connect(str(self.snapshot), read_only=True) as connection:
            cursor = connection.execute("select * from marts.audience_reactivation")
            columns = [column[0] for column in cursor.description]
            return {row[0]: dict(zip(columns, row, strict=True)) for row in cursor.fetchall()}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    directory = tmp_path_factory.mktemp("bi_snapshot_runs")
    generate_world(directory / "sandbox", **SLIPPING_WORLD)
    home = directory / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHOP360_DATA_DIR", str(directory))
        stop_sandbox()
        try:
            with dg.DagsterInstance.from_config(str(home)) as instance:
                first = run_nightly(instance)
                assert first.success, first.render()
                yield Shop(directory, instance, first)
        finally:
            stop_sandbox()


def _truth_people_by_email_hash(sandbox: Path, key: str) -> dict[str, set[str]]:
    people = defaultdict(set)
    with gzip.open(sandbox / "truth" / "identities.csv.gz", "rt") as handle:
        for row in csv.DictReader(handle):
            if row["id_type"] == "email":
                people[keyed_hash(normalise_email(row["identifier"]), key)].add(row["person_id"])
    return people


def test_the_audience_is_the_subscribed_customers_slipping_away(shop: Shop) -> None:
    audience = shop.audience()
    assert len(audience) >= 5
    key = json.loads((shop.sandbox / "world" / "meta.json").read_text())["hash_key"]
    people_by_hash = _truth_people_by_email_hash(shop.sandbox, key)
    with gzip.open(shop.sandbox / "truth" / "people.csv.gz", "rt") as handle:
        truth = {row["person_id"]: row for row in csv.DictReader(handle)}
    for row in audience.values():
        # the hash is of one real person's email, and that person is subscribed
        (person,) = people_by_hash[row["email_hash"]]
        assert truth[person]["email_consent"] == "SUBSCRIBED"
        assert truth[person]["churned"] == ("1" if row["lifecycle_stage"] == "churned" else "0")
    assert sorted(row["win_back_rank"] for row in audience.values()) == list(range(1, len(audience) + 1))
    # exactly customer_360's at-risk and churned people who may be emailed
    with duckdb.connect(str(shop.first.warehouse), read_only=True) as connection:
        expected = {
            key
            for (key,) in connection.execute(
                "select customer_key from marts.customer_360 "
                "where lifecycle_stage in ('at risk', 'churned') and may_email"
            ).fetchall()
        }
        excluded = connection.execute(
            "select count(*) from marts.customer_360 where lifecycle_stage in ('at risk', 'churned') "
            "and not may_email"
        ).fetchone()[0]
    assert set(audience) == expected
    assert excluded > 0, "the world has customers slipping away who may not be emailed"


def test_the_snapshot_asset_records_what_it_published(shop: Shop) -> None:
    records = shop.instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=BI_SNAPSHOT), limit=1)
    record = records.records[0]
    assert record.run_id == shop.first.run_id
    metadata = {name: value.value for name, value in record.asset_materialization.metadata.items()}
    assert metadata["path"] == str(shop.snapshot)
    assert metadata["file_size_bytes"] == shop.snapshot.stat().st_size
    assert metadata["publish_seconds"] > 0
    with duckdb.connect(str(shop.snapshot), read_only=True) as connection:
        described = dict(connection.execute("select table_name, row_count from bi.snapshot").fetchall())
    assert {f"marts.{name}": rows for name, rows in metadata["rows_per_mart"].items()} == described
    assert metadata["dagster/row_count"] == sum(described.values())
    print(
        f"\nBI snapshot: {metadata['file_size_bytes']:,} bytes, Parquet {metadata['parquet_size_bytes']:,} "
        f"bytes, {len(described)} marts, {sum(described.values()):,} rows, "
        f"published in {metadata['publish_seconds']:.3f} s"
    )


def _withdraw_consent_in_klaviyo(sandbox: Path, profile_id: str) -> None:
    """The person unsubscribes on Klaviyo's preference page: their profile changes (a later
    ``updated``, so the incremental load fetches it) and they leave the Newsletter list."""
    profiles_file = sandbox / "world" / "klaviyo" / "profiles.jsonl"
    profiles = read_jsonl(profiles_file)
    latest = max(datetime.fromisoformat(profile["attributes"]["updated"]) for profile in profiles)
    now = (latest + timedelta(minutes=1)).isoformat()
    for profile in profiles:
        if profile["id"] == profile_id:
            attributes = profile["attributes"]
            attributes["updated"] = now
            marketing = attributes["subscriptions"]["email"]["marketing"]
            assert marketing["consent"] == "SUBSCRIBED"
            marketing.update(
                can_receive_email_marketing=False,
                consent="UNSUBSCRIBED",
                consent_timestamp=now,
                last_updated=now,
                method="PREFERENCE_PAGE",
                method_detail=None,
            )
    write_jsonl(profiles_file, profiles)
    lists = {
        item["attributes"]["name"]: item["id"]
        for item in read_jsonl(sandbox / "world" / "klaviyo" / "lists.jsonl")
    }
    memberships_file = sandbox / "world" / "klaviyo" / "list_memberships.jsonl"
    memberships = [
        membership
        for membership in read_jsonl(memberships_file)
        if not (membership["list_id"] == lists["Newsletter"] and membership["profile_id"] == profile_id)
    ]
    write_jsonl(memberships_file, memberships)


def test_withdrawn_consent_takes_exactly_that_person_out_on_the_next_run(shop: Shop) -> None:
    before = shop.audience()
    # the person at the top of the list, whose consent is their Klaviyo profile's
    leaving = min(
        (row for row in before.values() if row["email_consent_source"] == "klaviyo_profile"),
        key=lambda row: row["win_back_rank"],
    )
    with duckdb.connect(str(shop.first.warehouse), read_only=True) as connection:
        (profile_id,) = connection.execute(
            "select email_consent_record_id from intermediate.int_customer__consent where customer_key = ?",
            [leaving["customer_key"]],
        ).fetchone()
    _withdraw_consent_in_klaviyo(shop.sandbox, profile_id)

    report = shop.run()
    after = shop.audience()
    assert leaving["customer_key"] not in after
    assert set(after) == set(before) - {leaving["customer_key"]}
    # nobody else changed: the same rows, ranked in the same order one place up where they were below
    for key, row in after.items():
        previous = before[key]
        assert {**row, "win_back_rank": None} == {**previous, "win_back_rank": None}, key
        assert row["win_back_rank"] == previous["win_back_rank"] - (
            previous["win_back_rank"] > leaving["win_back_rank"]
        )
    with duckdb.connect(str(report.warehouse), read_only=True) as connection:
        consent = connection.execute(
            "select email_marketing_consent, may_email, is_unsubscribed, lifecycle_stage "
            "from marts.customer_360 where customer_key = ?",
            [leaving["customer_key"]],
        ).fetchone()
    assert consent == ("unsubscribed", False, True, leaving["lifecycle_stage"])


def _snapshot_state(snapshot: Path) -> tuple[str, dict[str, int]]:
    """(run id, rows per mart table) of the published snapshot now."""
    with duckdb.connect(str(snapshot), read_only=True) as connection:
        described = connection.execute("select run_id, table_name, row_count from bi.snapshot").fetchall()
    return described[0][0], {table: rows for _, table, rows in described}


def _wait_for_first_observation(reader: subprocess.Popen, out_file: Path) -> None:
    deadline = time.monotonic() + READER_START_TIMEOUT
    while not (out_file.exists() and out_file.read_text().count("\n") >= 2):
        assert reader.poll() is None, f"the reader exited early: {reader.stderr.read()}"
        assert time.monotonic() < deadline, "the reader made no observation"
        time.sleep(0.1)


def test_a_reader_during_a_nightly_run_sees_one_whole_snapshot_old_or_new(shop: Shop, tmp_path: Path) -> None:
    old_run, old_counts = _snapshot_state(shop.snapshot)
    advance_world(shop.sandbox, days=1)
    out_file, stop_file = tmp_path / "observations.jsonl", tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-m", "tests.bi_reader", str(shop.snapshot.parent), str(out_file), str(stop_file)],
        cwd=Path(__file__).resolve().parent.parent,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_first_observation(reader, out_file)
        report = shop.run()
    finally:
        stop_file.touch()
        reader.wait(timeout=READER_STOP_TIMEOUT)
    assert reader.returncode == 0, reader.stderr.read()
    new_run, new_counts = _snapshot_state(shop.snapshot)
    assert new_run == report.run_id != old_run
    assert new_counts != old_counts, "a day later the marts hold other rows"

    observations = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [observation for observation in observations if "error" in observation] == []
    snapshots = {old_run: old_counts, new_run: new_counts}
    for observation in observations:
        (run_id,) = observation["run_ids"]
        # one run's snapshot, whole: what it says it holds is what was counted, and is that run's
        assert observation["counted"] == observation["described"] == snapshots[run_id], observation
        if observation["source"] == "parquet":
            assert [f"marts.{name.removesuffix('.parquet')}" for name in observation["files"]] == sorted(
                observation["counted"]
            )
    for source in ("duckdb", "parquet"):
        seen = [observation["run_ids"][0] for observation in observations if observation["source"] == source]
        # old until the swap, new after it, never back
        assert seen[0] == old_run and seen[-1] == new_run, source
        assert seen == sorted(seen, key=[old_run, new_run].index), source
    during = [observation for observation in observations if not observation["after_stop"]]
    print(
        f"\nreader: {len(during) // 2} iterations during the run ({len(observations)} observations), "
        f"{sum(observation['run_ids'] == [old_run] for observation in during)} of the old snapshot, "
        f"{sum(observation['run_ids'] == [new_run] for observation in during)} of the new one"
    )
