"""The incremental dbt models give exactly what a full rebuild gives.

A world of its own is loaded by a nightly run, a day of GA4 export is expired by the retention
code, two Klaviyo profiles are edited in raw (one moves to another person, one to a test account,
leaving every person), the world is advanced a day (new events, orders and edits; GA4's newest days
are exported again, one of them without a session it had) and a second nightly run builds the
incremental models incrementally. A copy of that
warehouse is then rebuilt with `dbt run --full-refresh` of the same models, and every incremental
model must hold the same rows in both, compared both ways with EXCEPT ALL.
"""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ingestion import pipelines
from ingestion.sandbox.world import advance_world
from orchestration.dbt_assets import RUN_TARGETS_DIR
from orchestration.dbt_manifest import MANIFEST_FILE, TARGET_DIR
from orchestration.nightly import NightlyReport, run_nightly
from orchestration.retention import expire_ga4_events
from tests.conftest import own_world, run_dbt


def rebuilt_incremental_models() -> list[str]:
    """The incremental models a full refresh rebuilds (not the identity tables that keep keys)."""
    manifest = json.loads((TARGET_DIR / MANIFEST_FILE).read_text())
    return sorted(
        node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
        and node["config"]["materialized"] == "incremental"
        and node["config"].get("full_refresh") is not False
    )


def model_relations() -> dict[str, str]:
    manifest = json.loads((TARGET_DIR / MANIFEST_FILE).read_text())
    return {
        node["name"]: f'"{node["schema"]}"."{node["alias"]}"'
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
    }


def compiled_code(report: NightlyReport) -> dict[str, str]:
    """The SQL each model ran in the run's `dbt build` (from its run results)."""
    (results,) = report.warehouse.parent.glob(f"{RUN_TARGETS_DIR}/*-{report.run_id[:7]}-*/run_results.json")
    return {
        result["unique_id"].split(".")[-1]: result.get("compiled_code") or ""
        for result in json.loads(results.read_text())["results"]
    }


def full_refresh(data_dir: Path, models: list[str]) -> None:
    """`dbt run --full-refresh` of ``models`` on the warehouse in ``data_dir`` (the Dagster asset's way)."""
    done = run_dbt(data_dir, "run", "--full-refresh", "--select", *models)
    assert done.returncode == 0, done.stdout[-4000:]


def plant_identity_changes(connection: duckdb.DuckDBPyConnection) -> None:
    """Edits of Klaviyo profiles, as a night may load them: one profile takes the email of another
    person's profile (identity moves it), one the email of a test account (it leaves every person)."""
    recipients = connection.execute(
        "select profile_id, any_value(customer_key) from intermediate.int_email__events "
        "where metric_name = 'Received Email' group by profile_id order by profile_id"
    ).fetchall()
    moved, person = recipients[0]
    target = next(profile for profile, other in recipients if other != person)
    gone = next(profile for profile, other in recipients if profile not in (moved, target))
    (test_email,) = connection.execute(
        "select email from staging.stg_shopify__customers where is_test_customer and email is not null "
        "order by customer_id limit 1"
    ).fetchone()
    connection.execute(
        "update raw_klaviyo.profiles set email = (select email from raw_klaviyo.profiles where id = ?) "
        "where id = ?",
        [target, moved],
    )
    connection.execute("update raw_klaviyo.profiles set email = ? where id = ?", [test_email, gone])


def _session_keys(export_file: Path) -> list[str]:
    """The session_key (cookie:ga_session_id) of each event of a GA4 export file, in file order."""
    keys = []
    with gzip.open(export_file, "rt") as handle:
        for line in handle:
            event = json.loads(line)
            params = {param["key"]: param["value"] for param in event.get("event_params") or []}
            keys.append(f"{event['user_pseudo_id']}:{params['ga_session_id']['int_value']}")
    return keys


def export_a_day_again_without_a_session(sandbox: Path) -> str:
    """GA4 exports the first night's newest day again without one of its sessions (a session with
    no event on the days beside it), as a re-export may; the session_key of the session gone."""
    *_, before, day, after = sorted((sandbox / "ga4").glob("events_*.json.gz"))
    elsewhere = set(_session_keys(before)) | set(_session_keys(after))
    keys = _session_keys(day)
    gone = next(key for key in sorted(set(keys)) if key not in elsewhere)
    with gzip.open(day, "rt") as handle:
        lines = [line for line, key in zip(handle, keys, strict=True) if key != gone]
    with gzip.open(day, "wt") as handle:
        handle.writelines(lines)
    return gone


def profile_persons(connection: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The person (customer_key) identity resolution gives each Klaviyo profile."""
    return dict(
        connection.execute(
            "select identifier_value, customer_key from intermediate.int_identity__person_identifiers "
            "where identifier_type = 'klaviyo_profile'"
        ).fetchall()
    )


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The warehouse after an incremental nightly run, and a copy whose incremental models were rebuilt."""
    for directory in own_world(tmp_path_factory.mktemp("incremental")):
        with dg.DagsterInstance.ephemeral() as instance:
            first = run_nightly(instance)
            assert first.success, first.render()
            warehouse = directory / "warehouse.duckdb"
            with duckdb.connect(str(warehouse)) as connection:
                (first_day,) = connection.execute(
                    "select min(strptime(event_date, '%Y%m%d'))::date from raw_ga4.events"
                ).fetchone()
                # what retention does to an old export day, here to the first one
                expired = expire_ga4_events(connection, first_day + timedelta(days=1))
                (orders_before,) = connection.execute(
                    "select max(_dlt_load_id) from raw_shopify.orders"
                ).fetchone()
                persons_before = profile_persons(connection)
                with_events = {
                    profile
                    for (profile,) in connection.execute(
                        "select distinct profile_id from intermediate.int_email__events"
                    ).fetchall()
                }
                plant_identity_changes(connection)
            advance_world(directory / "sandbox", days=1)
            session_gone = export_a_day_again_without_a_session(directory / "sandbox")
            with duckdb.connect(str(warehouse), read_only=True) as connection:
                (session_built,) = connection.execute(
                    "select count(*) from intermediate.int_ga4__sessions where session_key = ?",
                    [session_gone],
                ).fetchone()
            pipelines.stop_sandbox()  # the fake APIs hold the world in memory: serve the advanced one
            second = run_nightly(instance)
            assert second.success, second.render()
        with duckdb.connect(str(warehouse), read_only=True) as connection:
            persons_after = profile_persons(connection)
            # the second run merged orders that existed before it (edited, refunded, cancelled)
            (updated_orders,) = connection.execute(
                "select count(*) from raw_shopify.orders where _dlt_load_id > ? and created_at < ?",
                [orders_before, pipelines.sandbox_as_of()[:10]],
            ).fetchone()
        copy_dir = directory / "full_refresh"
        copy_dir.mkdir()
        shutil.copy(warehouse, copy_dir / "warehouse.duckdb")
        models = rebuilt_incremental_models()
        full_refresh(copy_dir, models)
        return {
            "incremental": warehouse,
            "full": copy_dir / "warehouse.duckdb",
            "models": models,
            "expired": expired,
            "session_gone": session_gone,
            "session_built": session_built,
            "updated_orders": updated_orders,
            "compiled": compiled_code(second),
            "profiles_moved": {
                profile
                for profile, person in persons_before.items()
                if profile in with_events and persons_after.get(profile) not in (None, person)
            },
            "profiles_gone": with_events - set(persons_after),
        }


def test_the_scenario_exercises_what_incremental_models_must_handle(builds: dict) -> None:
    assert {"stg_ga4__events", "int_ga4__sessions", "int_email__events", "int_email__messages"} <= set(
        builds["models"]
    )
    assert builds["expired"] > 0, "retention expired a day"
    # a re-exported day dropped a session the first run built: the incremental run must delete it
    assert builds["session_built"] == 1
    with duckdb.connect(str(builds["incremental"]), read_only=True) as connection:
        assert connection.execute(
            "select count(*) from staging.stg_ga4__events where session_key = ?", [builds["session_gone"]]
        ).fetchone() == (0,)
    assert builds["updated_orders"] > 0, "the advanced world edited orders loaded before"
    # the email models must follow profiles whose person changed or went away
    assert builds["profiles_moved"], "a profile with email events changed its person"
    assert builds["profiles_gone"], "a profile with email events lost its person"
    # the second run built the models incrementally (their incremental branch is in the SQL it ran)
    for model in builds["models"]:
        assert "_dlt_load_id >" in builds["compiled"][model], model


def test_every_incremental_model_equals_its_full_refresh(builds: dict) -> None:
    relations = model_relations()
    with duckdb.connect(str(builds["incremental"]), read_only=True) as connection:
        connection.execute(f"attach '{builds['full']}' as full_refresh (read_only)")
        for model in builds["models"]:
            incremental = relations[model]
            full = f"full_refresh.{incremental}"
            (rows,) = connection.execute(f"select count(*) from {incremental}").fetchone()
            (full_rows,) = connection.execute(f"select count(*) from {full}").fetchone()
            assert rows == full_rows > 0, model
            for left, right in ((incremental, full), (full, incremental)):
                (differing,) = connection.execute(
                    f"select count(*) from (select * from {left} except all select * from {right})"
                ).fetchone()
                assert differing == 0, f"{model}: {differing} rows of {left} are not in {right}"
