"""Right to erasure and right of access, end to end, on a world of its own.

A sandbox person with orders, Klaviyo email events and GA4 sessions is looked up, exported and
forgotten (``shop360 forget --email``); then every table and column of the warehouse (dlt's staging
datasets and decompressed pipeline state included), the BI snapshot when there is one, and dlt's
local pipeline directories are searched for every identifier the ground truth gives that person.
The world is then advanced a day and loaded again: the person must not come back while everyone
else's new data loads. A second person is forgotten from a Shopify ``customers/redact`` payload.
The tests run in file order on one warehouse and one Dagster instance.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dlt.common.versioned_state import decompress_state

from ingestion.pii import keyed_hash, normalise_email, normalise_phone
from ingestion.pipelines import stop_sandbox
from ingestion.sandbox.world import advance_world
from orchestration.access import export_person
from orchestration.cli import DAGSTER_YAML, main
from orchestration.erasure import (
    REQUEST_TAG,
    ErasureReport,
    WarehouseBusy,
    email_request,
    forget,
    record_digests,
    scrub_state,
)
from orchestration.nightly import NightlyReport, run_nightly
from orchestration.person import bi_snapshot_path
from tests.conftest import order_net_revenue, own_world, read_jsonl, write_jsonl

ERASURE_RECORDS = ("audit.erasure_log.", "audit.erasure_suppressions.")
# truth (source, id_type) -> identity resolution's identifier type
TRUTH_TYPES = {
    ("shopify", "email"): "email",
    ("klaviyo", "email"): "email",
    ("shopify", "phone"): "phone",
    ("klaviyo", "phone"): "phone",
    ("shopify", "customer_id"): "shopify_customer",
    ("ga4", "user_id"): "shopify_customer",
    ("shopify", "order_id"): "shopify_order",
    ("shopify", "checkout_id"): "shopify_checkout",
    ("klaviyo", "profile_id"): "klaviyo_profile",
    ("ga4", "user_pseudo_id"): "ga4_cookie",
}


def truth_identities(sandbox: Path) -> dict[str, list[dict]]:
    """person_id -> every identifier the ground truth gives the person."""
    people = defaultdict(list)
    with gzip.open(sandbox / "truth" / "identities.csv.gz", "rt") as handle:
        for row in csv.DictReader(handle):
            people[row["person_id"]].append(row)
    return people


def normalised(row: dict) -> str | None:
    """A truth identifier as identity resolution keys it."""
    kind = TRUTH_TYPES[(row["source"], row["id_type"])]
    if kind == "email":
        return normalise_email(row["identifier"])
    if kind == "phone":
        return normalise_phone(row["identifier"])
    return row["identifier"].strip()


def search_terms(identities: list[dict]) -> list[str]:
    """What to search for: each identifier as the source typed it and as normalised, lower-case."""
    terms = {row["identifier"].strip().lower() for row in identities}
    terms |= {value.lower() for row in identities if (value := normalised(row))}
    return sorted(term for term in terms if term)


def _cell_text(schema: str, table: str, column: str, value: object) -> str:
    if table == "_dlt_pipeline_state" and column == "state":
        return json.dumps(decompress_state(value), default=str).lower()
    return str(value).lower()


def find_in_database(database: Path, terms: list[str]) -> list[str]:
    """``schema.table.column: term`` for every cell of every table that contains a term
    (substring, case-insensitive; dlt's compressed pipeline state decompressed first)."""
    pattern = re.compile("|".join(re.escape(term) for term in terms))
    found = set()
    with duckdb.connect(str(database), read_only=True) as connection:
        tables = connection.execute(
            "select schema_name, table_name from duckdb_tables() where not internal order by 1, 2"
        ).fetchall()
        assert len(tables) > 10
        for schema, table in tables:
            cursor = connection.execute(f'select * from "{schema}"."{table}"')
            columns = [column[0] for column in cursor.description]
            for row in cursor.fetchall():
                for column, value in zip(columns, row, strict=True):
                    if value is not None and (
                        hit := pattern.search(_cell_text(schema, table, column, value))
                    ):
                        found.add(f"{schema}.{table}.{column}: {hit.group()}")
    return sorted(found)


def find_in_files(directory: Path, terms: list[str]) -> list[str]:
    """Files under ``directory`` (gzip and Parquet read as text) that contain a term."""
    pattern = re.compile("|".join(re.escape(term) for term in terms))
    found = []
    for path in sorted(directory.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            with duckdb.connect() as connection:
                text = str(connection.execute("select * from read_parquet(?)", [str(path)]).fetchall())
        else:
            data = path.read_bytes()
            text = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode("latin-1")
        if hit := pattern.search(text.lower()):
            found.append(f"{path.relative_to(directory)}: {hit.group()}")
    return found


def fingerprint(database: Path, skip: tuple[str, ...] = ("audit.erasure_log",)) -> dict[str, tuple]:
    """Rows and a hash of the contents of every table (to prove nothing changed)."""
    with duckdb.connect(str(database), read_only=True) as connection:
        tables = connection.execute(
            "select schema_name, table_name from duckdb_tables() where not internal"
        ).fetchall()
        return {
            f"{schema}.{table}": connection.execute(
                f'select count(*), bit_xor(hash(t)) from "{schema}"."{table}" as t'
            ).fetchone()
            for schema, table in tables
            if f"{schema}.{table}" not in skip
        }


def ga4_events(sandbox: Path) -> list[dict]:
    """Every event of every export file, with the file it came from."""
    events = []
    for path in sorted((sandbox / "ga4").glob("events_*.json.gz")):
        with gzip.open(path, "rt") as handle:
            events += [{**json.loads(line), "_file": path.name} for line in handle]
    return events


@dataclass
class Privacy:
    """The module's world, instance and what the tests found out along the way."""

    directory: Path
    instance: dg.DagsterInstance
    first: NightlyReport
    subject: str = ""  # person_id of the person forgotten by email
    keys: dict[str, str] = field(default_factory=dict)  # person_id -> customer_key before forget
    dry_run: ErasureReport | None = None
    erased: ErasureReport | None = None
    notes: dict = field(default_factory=dict)

    @property
    def sandbox(self) -> Path:
        return self.directory / "sandbox"

    @property
    def warehouse(self) -> Path:
        return self.directory / "warehouse.duckdb"

    def sql(self, statement: str, parameters: list | None = None) -> list[tuple]:
        with duckdb.connect(str(self.warehouse), read_only=True) as connection:
            return connection.execute(statement, parameters or []).fetchall()

    def identities(self, person_id: str) -> list[dict]:
        return truth_identities(self.sandbox)[person_id]

    def terms(self, person_id: str) -> list[str]:
        """What to search for a person: their identifiers as typed and normalised, the keyed hashes
        the BI snapshot holds instead of ids and emails, and their customer key (looked up before
        they were forgotten)."""
        identities = self.identities(person_id)
        key = json.loads((self.sandbox / "world" / "meta.json").read_text())["hash_key"]
        hashed = {keyed_hash(value, key) for row in identities if (value := normalised(row))}
        if person_id not in self.keys:
            self.keys[person_id] = _linked_key(self, identities)
        return sorted({*search_terms(identities), *hashed, self.keys[person_id]})

    def traces(self, terms: list[str]) -> list[str]:
        """Every place the warehouse, the BI snapshot (DuckDB file and Parquet files) and dlt's local
        files still hold a term."""
        found = [
            hit
            for hit in find_in_database(self.warehouse, terms)
            # the erasure's own records hold keyed hashes by design (and nothing else: tested below)
            if not (hit.startswith(ERASURE_RECORDS) and re.fullmatch("[0-9a-f]{64}", hit.rsplit(": ", 1)[1]))
        ]
        if bi_snapshot_path().exists():
            found += [f"bi:{hit}" for hit in find_in_database(bi_snapshot_path(), terms)]
            found += [
                f"bi:{hit}" for hit in find_in_files(bi_snapshot_path().parent, terms) if ".duckdb" not in hit
            ]
        found += [f"dlt:{hit}" for hit in find_in_files(self.directory / "dlt_pipelines", terms)]
        return found


@pytest.fixture(scope="module")
def privacy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Privacy]:
    for directory in own_world(tmp_path_factory.mktemp("privacy")):
        home = directory / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text(DAGSTER_YAML)
        with (
            dg.DagsterInstance.from_config(str(home)) as instance,
            pytest.MonkeyPatch.context() as patch,
        ):
            patch.setenv("DAGSTER_HOME", str(home))
            first = run_nightly(instance)
            assert first.success, first.render()
            yield Privacy(directory, instance, first)


def _linked_key(privacy: Privacy, identities: list[dict]) -> str | None:
    """The one customer key all of a person's identifiers resolve to, if there is one."""
    keys = set()
    for row in identities:
        rows = privacy.sql(
            "select distinct customer_key from intermediate.int_identity__person_identifiers "
            "where identifier_type = ? and identifier_value = ?",
            [TRUTH_TYPES[(row["source"], row["id_type"])], normalised(row)],
        )
        if len(rows) != 1:
            return None
        keys.add(rows[0][0])
    return keys.pop() if len(keys) == 1 else None


def pick_people(privacy: Privacy) -> list[str]:
    """Real people with orders, Klaviyo email events and GA4 sessions, none of whose identifiers is
    malformed or left unlinked by identity resolution (an anonymous cookie that never logs in or
    buys cannot be attributed to anyone), most identifiers first."""
    identities = truth_identities(privacy.sandbox)
    with gzip.open(privacy.sandbox / "truth" / "people.csv.gz", "rt") as handle:
        people = {row["person_id"]: row for row in csv.DictReader(handle)}
    summary = json.loads((privacy.sandbox / "truth" / "summary.json").read_text())
    malformed = {str(record["id"]) for record in summary["malformed"]}
    events = read_jsonl(privacy.sandbox / "world" / "klaviyo" / "events.jsonl")
    with_email_events = {event["relationships"]["profile"]["data"]["id"] for event in events}
    with_sessions = {event["user_pseudo_id"] for event in ga4_events(privacy.sandbox)}
    chosen = []
    for person_id, rows in sorted(identities.items(), key=lambda item: (-len(item[1]), item[0])):
        values = {(row["id_type"], row["identifier"]) for row in rows}
        if (
            people[person_id]["is_test"] == "0"
            and int(people[person_id]["orders"]) >= 1
            and any(kind == "profile_id" and value in with_email_events for kind, value in values)
            and any(kind == "user_pseudo_id" and value in with_sessions for kind, value in values)
            and not any(value in malformed for _, value in values)
            and _linked_key(privacy, rows)
        ):
            chosen.append(person_id)
    assert len(chosen) >= 2, "the world has people with orders, email events and sessions"
    return chosen


def test_phones_are_normalised_as_identity_resolution_does(privacy: Privacy) -> None:
    """The suppression list hashes phones with normalise_phone: it must agree with the dbt macro."""
    pairs = privacy.sql(
        """
        select customers.phone, observations.linked_value
        from raw_shopify.customers
        inner join intermediate.int_identity__observations as observations
            on observations.node_value = customers.id::varchar
            and observations.evidence = 'shopify_customer_phone'
        union all
        select profiles.phone_number, observations.linked_value
        from raw_klaviyo.profiles
        inner join intermediate.int_identity__observations as observations
            on observations.node_value = profiles.id
            and observations.evidence = 'klaviyo_profile_phone'
        """
    )
    assert len(pairs) > 50
    assert [(typed, normalise_phone(typed)) for typed, _ in pairs] == pairs


def test_dlt_state_digests_of_a_record_are_scrubbed(privacy: Privacy) -> None:
    """unique_hashes hold digests of the records at the last cursor value; scrub_state removes them."""
    (blob,) = privacy.sql(
        "select state from raw_shopify._dlt_pipeline_state order by created_at desc limit 1"
    )[0]
    state = decompress_state(blob)
    cursor = state["sources"]["shopify"]["resources"]["orders"]["incremental"]["updated_at"]
    (last,) = privacy.sql(
        "select id from raw_shopify.orders "
        "where updated_at = (select max(updated_at) from raw_shopify.orders)"
    )[0]
    assert record_digests([last]) & set(cursor["unique_hashes"])
    assert scrub_state(state, record_digests([last])) >= 1
    assert not record_digests([last]) & set(cursor["unique_hashes"])


def test_forgetting_someone_unknown_changes_nothing(privacy: Privacy, capsys: pytest.CaptureFixture) -> None:
    before = fingerprint(privacy.warehouse, skip=())
    assert main(["forget", "--email", "Nobody.Here@Example.invalid"]) == 1
    error = capsys.readouterr().err
    assert "no row of the warehouse names the identifiers given" in error
    assert "nothing was changed" in error
    assert "nobody.here" not in error.lower()
    assert fingerprint(privacy.warehouse, skip=()) == before


def test_a_locked_warehouse_is_reported_and_left_alone(privacy: Privacy) -> None:
    """Another process holding the warehouse (a running job) stops the erasure before it changes anything."""
    (person_id,) = pick_people(privacy)[:1]
    email = next(row["identifier"] for row in privacy.identities(person_id) if row["id_type"] == "email")
    before = fingerprint(privacy.warehouse, skip=())
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
            "print('locked', flush=True); time.sleep(120)",
            str(privacy.warehouse),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(WarehouseBusy) as error:
            forget(email_request([email]), instance=privacy.instance, wait_seconds=2)
    finally:
        holder.kill()
        holder.wait()
    assert "is in use by another process" in str(error.value)
    assert "--wait SECONDS" in str(error.value)
    assert email.lower() not in str(error.value).lower()
    assert fingerprint(privacy.warehouse, skip=()) == before


def test_dry_run_changes_nothing(privacy: Privacy, capsys: pytest.CaptureFixture) -> None:
    privacy.subject = pick_people(privacy)[0]
    email = next(
        row["identifier"] for row in privacy.identities(privacy.subject) if row["id_type"] == "email"
    )
    before = fingerprint(privacy.warehouse)
    local = sorted(path for path in (privacy.directory / "dlt_pipelines").rglob("*"))
    privacy.dry_run = forget(email_request([email]), dry_run=True, instance=privacy.instance)
    assert fingerprint(privacy.warehouse) == before
    assert sorted(path for path in (privacy.directory / "dlt_pipelines").rglob("*")) == local
    assert privacy.sql("select count(*) from duckdb_tables() where table_name = 'erasure_suppressions'") == [
        (0,)
    ]
    assert privacy.sql("select dry_run, status from audit.erasure_log") == [(True, "dry_run")]
    report = privacy.dry_run
    assert report.rows["raw_shopify.customers"] >= 1
    assert report.rows["raw_shopify.orders"] >= 1
    assert report.rows["raw_klaviyo.events"] >= 1
    assert report.rows["raw_ga4.events"] >= 1
    assert report.rows["marts.customer_360"] == 1
    rendered = report.render()
    assert "nothing was changed (dry run)" in rendered
    assert email.lower() not in rendered.lower()


def test_export_holds_the_persons_rows_and_no_one_elses(privacy: Privacy, tmp_path: Path) -> None:
    identities = privacy.identities(privacy.subject)
    email = next(row["identifier"] for row in identities if row["id_type"] == "email")
    output = tmp_path / "person.json"
    report = export_person(email_request([email]), output)
    document = json.loads(output.read_text())
    assert "@" not in report.render()
    # the rows, counted against the warehouse and the world
    tables = document["tables"]
    orders = {row["identifier"] for row in identities if row["id_type"] == "order_id"}
    assert sorted(str(row["id"]) for row in tables["raw_shopify.orders"]) == sorted(orders)
    lines = sum(
        len(row.get("_nested", {}).get("orders__line_items", [])) for row in tables["raw_shopify.orders"]
    )
    assert (
        lines
        == privacy.sql(
            "select count(*) from raw_shopify.orders__line_items as line_items "
            "inner join raw_shopify.orders on line_items._dlt_root_id = orders._dlt_id "
            "where list_contains(?, orders.id::varchar)",
            [sorted(orders)],
        )[0][0]
    )
    profiles = {row["identifier"] for row in identities if row["id_type"] == "profile_id"}
    events = read_jsonl(privacy.sandbox / "world" / "klaviyo" / "events.jsonl")
    assert len(tables["raw_klaviyo.events"]) == sum(
        event["relationships"]["profile"]["data"]["id"] in profiles for event in events
    )
    cookies = {row["identifier"] for row in identities if row["id_type"] == "user_pseudo_id"}
    assert len(tables["raw_ga4.events"]) == sum(
        event["user_pseudo_id"] in cookies for event in ga4_events(privacy.sandbox)
    )
    assert len(tables["marts.customer_360"]) == 1
    assert document["row_counts"] == privacy.dry_run.rows
    # every identifier of theirs the warehouse holds (an address phone never reaches it), and nobody else's
    text = output.read_text().lower()
    held = {hit.rsplit(": ", 1)[1] for hit in find_in_database(privacy.warehouse, search_terms(identities))}
    assert len(held) >= 5
    assert [term for term in held if term not in text] == []
    others = [
        term
        for person_id, rows in truth_identities(privacy.sandbox).items()
        if person_id != privacy.subject
        for term in search_terms(rows)
        if term not in search_terms(identities)
    ]
    assert [term for term in others if term in text] == []


def test_forget_removes_the_person_from_every_layer(privacy: Privacy) -> None:
    identities = privacy.identities(privacy.subject)
    email = next(row["identifier"] for row in identities if row["id_type"] == "email")
    terms = privacy.terms(privacy.subject)
    before = privacy.traces(terms)
    assert any(hit.startswith("bi:marts.") for hit in before), "the person is in the BI snapshot before"
    assert any(hit.startswith("raw_") for hit in before), "and in the warehouse"
    orders_before = privacy.sql("select count(*), sum(net_revenue) from marts.fct_orders")[0]
    people_before = privacy.sql("select count(*) from marts.customer_360")[0][0]
    sessions_before = privacy.sql("select sum(sessions) from marts.fct_funnel_daily")[0][0]

    report = privacy.erased = forget(email_request([email]), instance=privacy.instance)
    assert report.succeeded, report.render()
    privacy.notes["forget_seconds"] = report.seconds
    # what the dry run said would go is what went
    assert report.rows == privacy.dry_run.rows
    assert report.rows_left == {}
    assert report.rows["bi:marts.customer_360"] == 1
    assert privacy.traces(terms) == []
    # republished, and the Parquet version before it (which held the person) deleted
    assert report.bi_republished
    assert [path.name for path in bi_snapshot_path().parent.glob("parquet-*")] == [
        (bi_snapshot_path().parent / "parquet").readlink().name
    ]

    # everyone else's totals are unchanged: only the person's orders, key and sessions are gone
    order_ids = {row["identifier"] for row in identities if row["id_type"] == "order_id"}
    world_orders = [
        order
        for order in read_jsonl(privacy.sandbox / "world" / "shopify" / "orders.jsonl")
        if str(order["id"]) in order_ids and not order["test"]
    ]
    orders_after = privacy.sql("select count(*), sum(net_revenue) from marts.fct_orders")[0]
    assert orders_after[0] == orders_before[0] - len(world_orders)
    assert orders_after[1] == orders_before[1] - sum((order_net_revenue(o) for o in world_orders), Decimal(0))
    assert privacy.sql("select count(*) from marts.customer_360")[0][0] == people_before - 1
    cookies = {row["identifier"] for row in identities if row["id_type"] == "user_pseudo_id"}
    sessions = {
        (event["user_pseudo_id"], param["value"]["int_value"])
        for event in ga4_events(privacy.sandbox)
        if event["user_pseudo_id"] in cookies
        for param in event["event_params"]
        if param["key"] == "ga_session_id"
    }
    assert sessions
    assert privacy.sql("select sum(sessions) from marts.fct_funnel_daily")[0][0] == sessions_before - len(
        sessions
    )

    # the log and the suppression list hold keyed hashes and counts, no email or identifier
    log_text = str(privacy.sql("select * from audit.erasure_log")) + str(
        privacy.sql("select * from audit.erasure_suppressions")
    )
    plain = [term for term in terms if not re.fullmatch("[0-9a-f]{64}", term)]  # keyed hashes may be there
    assert "@" not in log_text
    assert not any(term in log_text.lower() for term in plain)
    assert privacy.sql("select count(*) from audit.erasure_suppressions")[0][0] == sum(
        report.identifiers.values()
    )
    assert privacy.sql("select status from audit.erasure_log where not dry_run") == [("completed",)]
    # the rebuild ran through Dagster, tagged with the request id only
    (run,) = privacy.instance.get_runs(filters=dg.RunsFilter(job_name="erasure_rebuild"))
    assert run.tags[REQUEST_TAG] == report.request.request_id
    assert run.run_id == report.rebuild.run_id
    assert not any(term in json.dumps([run.tags, run.run_config]).lower() for term in terms)
    rendered = report.render()
    assert not any(term in rendered.lower() for term in terms)
    assert "@" not in rendered


def _materializations(privacy: Privacy, run_id: str) -> dict[str, dict]:
    entries = privacy.instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    return {
        entry.dagster_event.asset_key.to_user_string(): {
            name: value.value
            for name, value in entry.dagster_event.step_materialization_data.materialization.metadata.items()
        }
        for entry in entries
    }


def klaviyo_updates_profiles(sandbox: Path, profile_ids: set[str]) -> None:
    """Klaviyo still holds these profiles and they change: the fake serves them again to the next
    incremental profile load (updated at the world's newest update time)."""
    profiles_file = sandbox / "world" / "klaviyo" / "profiles.jsonl"
    profiles = read_jsonl(profiles_file)
    newest = max(profile["attributes"]["updated"] for profile in profiles)
    for profile in profiles:
        if profile["id"] in profile_ids:
            profile["attributes"]["updated"] = newest
    write_jsonl(profiles_file, profiles)


def test_the_person_does_not_come_back_but_everyone_else_does(privacy: Privacy) -> None:
    advance_world(privacy.sandbox, 1)
    # the shop's Klaviyo still holds the erased person's profile, and it changed: the load gets it
    profiles = {
        row["identifier"] for row in privacy.identities(privacy.subject) if row["id_type"] == "profile_id"
    }
    klaviyo_updates_profiles(privacy.sandbox, profiles)
    stop_sandbox()  # the fake APIs hold the world in memory: the next run serves the advanced one
    report = run_nightly(privacy.instance)
    assert report.success, report.render()
    identities = privacy.identities(privacy.subject)
    erased = {(TRUTH_TYPES[(row["source"], row["id_type"])], normalised(row)) for row in identities}
    assert privacy.traces(privacy.terms(privacy.subject)) == []

    metadata = _materializations(privacy, report.run_id)
    suppressed = {
        key: values["rows_suppressed"] for key, values in metadata.items() if "rows_suppressed" in values
    }
    privacy.notes["rows_suppressed"] = suppressed
    assert suppressed["raw_klaviyo/profiles"] >= len(profiles) > 0

    # everyone else's records of the advanced world are in the raw tables
    def owned(*pairs: tuple[str, object]) -> bool:
        return any(
            (kind, normalise_email(str(value)) if kind == "email" else str(value)) in erased
            for kind, value in pairs
            if value is not None
        )

    quarantined = {
        record_id for (record_id,) in privacy.sql("select record_id from audit.quarantined_records")
    }
    world = privacy.sandbox / "world"
    for table, record_type in (
        ("customers", "shopify_customer"),
        ("orders", "shopify_order"),
        ("checkouts", "shopify_checkout"),
    ):
        expected = {
            str(record["id"])
            for record in read_jsonl(world / "shopify" / f"{table}.jsonl")
            if not owned(
                (record_type, record["id"]),
                ("shopify_customer", (record.get("customer") or {}).get("id")),
                ("email", record.get("email")),
            )
        }
        loaded = {str(value) for (value,) in privacy.sql(f"select id from raw_shopify.{table}")}
        assert expected - loaded <= quarantined, table
        assert loaded <= expected, table
    profiles = {value for kind, value in erased if kind == "klaviyo_profile"}
    expected = {
        event["id"]
        for event in read_jsonl(world / "klaviyo" / "events.jsonl")
        if event["relationships"]["profile"]["data"]["id"] not in profiles
    }
    assert {value for (value,) in privacy.sql("select id from raw_klaviyo.events")} == expected
    # GA4: the new day's events, but none of a cookie that is theirs or logs in or buys as them
    newest = max(path.name for path in (privacy.sandbox / "ga4").glob("events_*.json.gz"))
    new_day = [event for event in ga4_events(privacy.sandbox) if event["_file"] == newest]
    theirs = {
        event["user_pseudo_id"]
        for event in new_day
        if owned(
            ("ga4_cookie", event["user_pseudo_id"]),
            ("shopify_customer", event["user_id"]),
            ("shopify_order", (event.get("ecommerce") or {}).get("transaction_id")),
        )
    }
    loaded = privacy.sql("select count(*) from raw_ga4.events where event_date = ?", [newest[7:15]])[0][0]
    assert loaded == sum(event["user_pseudo_id"] not in theirs for event in new_day) > 0


def test_a_shopify_redact_payload_forgets_the_customer(
    privacy: Privacy, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    person_id = next(person for person in pick_people(privacy) if person != privacy.subject)
    identities = privacy.identities(person_id)
    first = {row["id_type"]: row["identifier"] for row in identities if row["source"] == "shopify"}
    payload = tmp_path / "customers_redact.json"
    payload.write_text(
        json.dumps(
            {
                "shop_id": 954889,
                "shop_domain": "shop360-sandbox.myshopify.com",
                "customer": {
                    "id": int(first["customer_id"]),
                    "email": first["email"],
                    "phone": first.get("phone"),
                },
                "orders_to_redact": [
                    int(row["identifier"]) for row in identities if row["id_type"] == "order_id"
                ],
            }
        )
    )
    terms = privacy.terms(person_id)
    assert privacy.traces(terms)
    assert main(["forget", "--shopify-redact", str(payload)]) == 0
    output = capsys.readouterr().out
    assert "shopify_redact" in output and "rebuild (Dagster job erasure_rebuild" in output
    assert not any(term in output.lower() for term in terms)
    assert privacy.traces(terms) == []
    assert privacy.sql("select count(*) from audit.erasure_log where request_type = 'shopify_redact'") == [
        (1,)
    ]
