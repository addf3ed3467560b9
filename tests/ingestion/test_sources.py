"""Each dlt source loads every record of the sandbox world, and a re-run duplicates nothing."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import dlt
import duckdb
import pytest

from ingestion import settings
from ingestion.pipelines import (
    SOURCES,
    SourceConfigError,
    configure_sources,
    drop_retired_resources,
    make_source,
)
from tests.conftest import gzip_lines, own_world, read_jsonl


def _pipeline(name: str, directory: Path) -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name=f"test_{name}",
        destination=dlt.destinations.duckdb(str(directory / "sources.duckdb")),
        dataset_name=settings.DATASETS[name],
        pipelines_dir=str(directory / "pipelines"),
    )


@pytest.fixture(scope="module")
def loaded(world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every source loaded once into a warehouse of this module's own."""
    assert configure_sources() == "sandbox"
    directory = tmp_path_factory.mktemp("sources")
    for name in SOURCES:
        _pipeline(name, directory).run(make_source(name))
    return directory


def _ids(directory: Path, table: str) -> list:
    with duckdb.connect(str(directory / "sources.duckdb"), read_only=True) as connection:
        return [row[0] for row in connection.execute(f"select id from {table} order by id").fetchall()]


@pytest.mark.parametrize("endpoint", ["customers", "orders", "products", "checkouts"])
def test_shopify_loads_every_record_once(loaded: Path, world: Path, endpoint: str) -> None:
    expected = sorted(
        record["id"] for record in read_jsonl(world / "world" / "shopify" / f"{endpoint}.jsonl")
    )
    assert _ids(loaded, f"raw_shopify.{endpoint}") == expected


@pytest.mark.parametrize("resource", ["profiles", "events", "metrics", "campaigns", "lists"])
def test_klaviyo_loads_every_record_once(loaded: Path, world: Path, resource: str) -> None:
    expected = sorted(
        record["id"] for record in read_jsonl(world / "world" / "klaviyo" / f"{resource}.jsonl")
    )
    assert _ids(loaded, f"raw_klaviyo.{resource}") == expected


def test_klaviyo_profiles_carry_consent(loaded: Path, world: Path) -> None:
    """Consent only comes back when asked for; the source must ask."""
    profiles = read_jsonl(world / "world" / "klaviyo" / "profiles.jsonl")
    subscribed = sum(
        p["attributes"]["subscriptions"]["email"]["marketing"]["consent"] == "SUBSCRIBED" for p in profiles
    )
    with duckdb.connect(str(loaded / "sources.duckdb"), read_only=True) as connection:
        loaded_subscribed = connection.execute(
            "select count(*) from raw_klaviyo.profiles "
            "where subscriptions__email__marketing__consent = 'SUBSCRIBED'"
        ).fetchone()[0]
    assert subscribed > 0
    assert loaded_subscribed == subscribed


def test_ga4_loads_every_exported_event(loaded: Path, truth: dict) -> None:
    with duckdb.connect(str(loaded / "sources.duckdb"), read_only=True) as connection:
        events, days = connection.execute(
            "select count(*), count(distinct event_date) from raw_ga4.events"
        ).fetchone()
    # duplicates GA4 sent are loaded as they are; staging removes them
    assert events == truth["ga4"]["events"]
    assert days == truth["ga4"]["files"]


def test_ga4_rows_carry_the_id_of_the_load_that_wrote_them(loaded: Path) -> None:
    """dlt does not normalise GA4's imported Parquet files, so the files carry `_dlt_load_id`
    themselves (the incremental GA4 models compare it): every row's id is a completed load's."""
    with duckdb.connect(str(loaded / "sources.duckdb"), read_only=True) as connection:
        unknown, missing = connection.execute(
            """
            select
                count(*) filter (where _dlt_load_id not in (
                    select load_id from raw_ga4._dlt_loads where status = 0 and schema_name = 'ga4'
                )),
                count(*) filter (where _dlt_load_id is null)
            from raw_ga4.events
            """
        ).fetchone()
    assert (unknown, missing) == (0, 0)


def _exported_fields(event: dict) -> tuple:
    """The fields marts use of one exported event, read from the export's JSON."""
    params = {param["key"]: param["value"] for param in event.get("event_params") or []}
    device, geo = event.get("device") or {}, event.get("geo") or {}
    source, ecommerce = event.get("traffic_source") or {}, event.get("ecommerce") or {}
    return (
        event["event_date"],
        event["event_timestamp"],
        event["event_name"],
        event.get("user_pseudo_id"),
        event.get("user_id"),
        params.get("ga_session_id", {}).get("int_value"),
        params.get("ga_session_number", {}).get("int_value"),
        params.get("page_location", {}).get("string_value"),
        device.get("category"),
        geo.get("country"),
        geo.get("city"),
        source.get("source"),
        source.get("medium"),
        source.get("name"),
        ecommerce.get("transaction_id"),
        ecommerce.get("purchase_revenue"),
    )


def test_ga4_raw_holds_each_field_marts_use_in_a_column_of_its_own(loaded: Path, world: Path) -> None:
    """Raw GA4 is flat: every exported event's fields that marts use, parameters included, are
    loaded into their columns with the export's values, and nothing else of the export is kept."""
    from collections import Counter

    exported: Counter = Counter()
    for file in sorted((world / "ga4").glob("events_*.json.gz")):
        with gzip.open(file, "rt") as handle:
            exported.update(_exported_fields(json.loads(line)) for line in handle)
    with duckdb.connect(str(loaded / "sources.duckdb"), read_only=True) as connection:
        columns = [
            row[0]
            for row in connection.execute(
                "select column_name from duckdb_columns() "
                "where schema_name = 'raw_ga4' and table_name = 'events' order by column_index"
            ).fetchall()
        ]
        exported_columns = ", ".join(column for column in columns if column != "_dlt_load_id")
        rows = connection.execute(f"select {exported_columns} from raw_ga4.events").fetchall()
    assert columns == [
        "event_date", "event_timestamp", "event_name", "user_pseudo_id", "user_id",
        "event_params__ga_session_id", "event_params__ga_session_number", "event_params__page_location",
        "device__category", "geo__country", "geo__city",
        "traffic_source__source", "traffic_source__medium", "traffic_source__name",
        "ecommerce__transaction_id", "ecommerce__purchase_revenue", "_dlt_load_id",
    ]  # fmt: skip
    assert Counter(rows) == exported
    assert sum(1 for fields in exported if fields[5] is not None and fields[14] is not None) > 0


def test_ga4_warehouse_of_an_older_raw_layout_loads_every_file_again(world: Path, tmp_path: Path) -> None:
    """A warehouse whose GA4 rows were loaded in another raw layout (nested fields as JSON, before
    layout 2) loads every export file again, which replaces each day's rows: none is left behind."""
    from ingestion.ga4 import ga4_source

    folder = tmp_path / "export"
    folder.mkdir()
    files = sorted((world / "ga4").glob("events_*.json.gz"))[:6]
    for file in files:
        (folder / file.name).write_bytes(file.read_bytes())
    pipeline = _pipeline("ga4", tmp_path)
    pipeline.run(ga4_source(bucket_url=str(folder), reload_days=1))
    with pipeline.managed_state() as state:  # as an older shop360 left it: no layout in the state
        del state["sources"]["ga4"]["resources"]["events"]["raw_layout"]
    pipeline.run(ga4_source(bucket_url=str(folder), reload_days=1))
    with duckdb.connect(str(tmp_path / "sources.duckdb"), read_only=True) as connection:
        events, loads = connection.execute(
            "select count(*), count(distinct _dlt_load_id) from raw_ga4.events"
        ).fetchone()
        last_load = connection.execute("select max(load_id) from raw_ga4._dlt_loads").fetchone()[0]
        from_last_load = connection.execute(
            "select count(*) from raw_ga4.events where _dlt_load_id = ?", [last_load]
        ).fetchone()[0]
    assert events == from_last_load == sum(gzip_lines(file) for file in files)
    assert loads == 1


def test_klaviyo_load_drops_the_list_memberships_an_older_version_loaded(world: Path, tmp_path: Path) -> None:
    """No mart reads list memberships: a warehouse that holds them from an earlier version loses their
    table and its place in the pipeline's schema, once, and the other tables load as before."""
    assert configure_sources() == "sandbox"
    pipeline = _pipeline("klaviyo", tmp_path)
    pipeline.run(make_source("klaviyo").with_resources("lists"))

    @dlt.resource(primary_key=("list_id", "profile_id"), write_disposition="replace")
    def list_memberships():
        yield [{"list_id": "L1", "profile_id": "P1"}, {"list_id": "L1", "profile_id": "P2"}]

    pipeline.run(list_memberships())
    tables = "select table_name from duckdb_tables() where schema_name = 'raw_klaviyo' order by 1"
    with duckdb.connect(str(tmp_path / "sources.duckdb"), read_only=True) as connection:
        assert "list_memberships" in [row[0] for row in connection.execute(tables).fetchall()]

    assert drop_retired_resources(pipeline, "klaviyo") == ["list_memberships"]
    assert drop_retired_resources(pipeline, "klaviyo") == []
    pipeline.run(make_source("klaviyo"))
    with duckdb.connect(str(tmp_path / "sources.duckdb"), read_only=True) as connection:
        loaded = [row[0] for row in connection.execute(tables).fetchall()]
    assert "list_memberships" not in loaded
    assert "list_memberships" not in pipeline.default_schema.tables
    assert {"profiles", "events", "lists"} <= set(loaded)
    assert _ids(tmp_path, "raw_klaviyo.lists") == sorted(
        record["id"] for record in read_jsonl(world / "world" / "klaviyo" / "lists.jsonl")
    )


def test_second_run_duplicates_nothing(loaded: Path, world: Path) -> None:
    for name in SOURCES:
        _pipeline(name, loaded).run(make_source(name))
    orders = read_jsonl(world / "world" / "shopify" / "orders.jsonl")
    assert _ids(loaded, "raw_shopify.orders") == sorted(order["id"] for order in orders)
    events = read_jsonl(world / "world" / "klaviyo" / "events.jsonl")
    assert _ids(loaded, "raw_klaviyo.events") == sorted(event["id"] for event in events)


def test_half_configured_sources_are_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import ingestion.pipelines as pipelines

    monkeypatch.setattr(pipelines, "_sandbox_server", None)
    for key in list(os.environ):
        if key.startswith("SOURCES__"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SOURCES__SHOPIFY__SHOP_URL", "https://example-shop.myshopify.com")
    monkeypatch.setenv("SOURCES__SHOPIFY__ACCESS_TOKEN", "shpat_not_a_real_token")
    with pytest.raises(SourceConfigError) as error:
        configure_sources()
    message = str(error.value)
    assert "sources.klaviyo.api_key" in message
    assert "sources.ga4.bucket_url" in message
    assert "shpat_not_a_real_token" not in message


@pytest.mark.parametrize(
    ("source_name", "arguments", "message"),
    [
        (
            "shopify",
            {"access_token": "shpat_wrong_secret_123"},
            "Shopify rejected the credential in "
            "sources.shopify.access_token (HTTP 401 on /admin/api/2025-10/",
        ),
        (
            "klaviyo",
            {"api_key": "pk_wrong_secret_123"},
            "Klaviyo rejected the credential in sources.klaviyo.api_key (HTTP 401 on /api/",
        ),
    ],
)
def test_rejected_credential_names_the_setting_never_the_secret(
    world: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    source_name: str,
    arguments: dict,
    message: str,
) -> None:
    from ingestion.klaviyo import klaviyo_source
    from ingestion.sandbox.server import SandboxServer
    from ingestion.shopify import shopify_source

    caplog.set_level("DEBUG")
    with SandboxServer(world) as server:
        source = (
            shopify_source(shop_url=server.base_url, **arguments)
            if source_name == "shopify"
            else klaviyo_source(base_url=server.klaviyo_base_url, **arguments)
        )
        with pytest.raises(Exception) as error:
            _pipeline(source_name, tmp_path).run(source)
    secret = next(iter(arguments.values()))
    assert message in str(error.value)
    assert secret not in str(error.value)
    assert secret not in caplog.text


def test_ga4_reads_any_fsspec_url(world: Path, tmp_path: Path) -> None:
    """A bucket URL (here fsspec's in-memory filesystem) loads the same rows as the local folder."""
    import fsspec

    from ingestion.ga4 import ga4_source

    files = sorted((world / "ga4").glob("events_*.json.gz"))[:5]
    memory = fsspec.filesystem("memory")
    for file in files:
        memory.pipe(f"/shop360-test-export/{file.name}", file.read_bytes())
    pipeline = _pipeline("ga4", tmp_path)
    pipeline.run(ga4_source(bucket_url="memory://shop360-test-export"))
    with duckdb.connect(str(tmp_path / "sources.duckdb"), read_only=True) as connection:
        loaded = connection.execute("select count(*) from raw_ga4.events").fetchone()[0]
    expected = 0
    for file in files:
        with gzip.open(file, "rt") as handle:
            expected += sum(1 for _ in handle)
    assert loaded == expected > 0


def test_ga4_empty_export_file_loads_nothing_and_fails_nothing(world: Path, tmp_path: Path) -> None:
    """A day with no events is exported as an empty gzip file."""
    from ingestion.ga4 import ga4_source

    folder = tmp_path / "export"
    folder.mkdir()
    day = sorted((world / "ga4").glob("events_*.json.gz"))[0]
    (folder / day.name).write_bytes(day.read_bytes())
    with gzip.open(folder / "events_20300101.json.gz", "wb"):
        pass
    _pipeline("ga4", tmp_path).run(ga4_source(bucket_url=str(folder)))
    with duckdb.connect(str(tmp_path / "sources.duckdb"), read_only=True) as connection:
        loaded = connection.execute("select count(*) from raw_ga4.events").fetchone()[0]
    with gzip.open(day, "rt") as handle:
        assert loaded == sum(1 for _ in handle) > 0


def test_loads_keep_no_copies_of_records_outside_the_raw_tables(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Data minimisation: dlt deletes the load package files it loaded and truncates the staging
    dataset merges go through (pipelines.minimise_load_copies)."""
    from ingestion.pipelines import make_pipeline

    assert configure_sources() == "sandbox"  # the session world's fake APIs, before moving the data dir
    monkeypatch.setenv("SHOP360_DATA_DIR", str(tmp_path))
    make_pipeline("shopify").run(make_source("shopify"))
    loaded_files = [
        path
        for path in (tmp_path / "dlt_pipelines").rglob("*")
        if path.is_file() and "completed_jobs" in path.parts
    ]
    assert loaded_files == []
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as connection:
        tables = connection.execute(
            "select schema_name, table_name from duckdb_tables() "
            "where schema_name in ('raw_shopify', 'raw_shopify_staging') "
            "and not starts_with(table_name, '_dlt')"
        ).fetchall()
        rows = {
            (schema, table): connection.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
            for schema, table in tables
        }
    staging = {key: count for key, count in rows.items() if key[0] == "raw_shopify_staging"}
    assert staging and set(staging.values()) == {0}, staging
    assert rows[("raw_shopify", "orders")] == len(read_jsonl(world / "world" / "shopify" / "orders.jsonl"))


def test_only_a_first_load_normalises_in_worker_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dlt's normaliser gets its two worker processes for a source's first load, and normalises the
    next day's changes in the run's own process (pipelines.make_pipeline)."""
    from dlt.common.runners import pool_runner
    from dlt.normalize.configuration import NormalizeConfiguration

    from ingestion.pipelines import make_pipeline, stop_sandbox
    from ingestion.sandbox.world import advance_world

    normalize_pools = []
    create_pool = pool_runner.create_pool

    def recording_create_pool(config):
        if isinstance(config, NormalizeConfiguration):
            normalize_pools.append((config.workers, config.pool_type))
        return create_pool(config)

    monkeypatch.setattr(pool_runner, "create_pool", recording_create_pool)
    for directory in own_world(tmp_path):
        for load in ("first", "next day"):
            if load == "next day":
                advance_world(directory / "sandbox", 1)
                stop_sandbox()  # the fake APIs serve the advanced world
            assert configure_sources() == "sandbox"
            pipeline = make_pipeline("shopify")
            assert pipeline.first_run == (load == "first")
            pipeline.run(make_source("shopify"))
            assert pipeline.last_trace.last_normalize_info.row_counts["orders"] > 0, load
    # "none": dlt's NullExecutor, which normalises in the calling process
    assert normalize_pools == [(2, "process"), (1, "none")]


def test_ga4_reads_a_batch_of_days_at_once_and_names_a_bad_file(world: Path, tmp_path: Path) -> None:
    """Local export files are parsed in batches (one read_json, one Parquet file); a batch holding a
    file that is not JSON lines, or an event without event_date, is an error naming that file."""
    from dlt.sources.filesystem import filesystem

    from ingestion.ga4 import export_batches, write_export_parquet

    folder = tmp_path / "export"
    folder.mkdir()
    days = sorted((world / "ga4").glob("events_*.json.gz"))[:3]
    for day in days:
        (folder / day.name).write_bytes(day.read_bytes())

    def listing() -> list:
        return sorted(
            filesystem(bucket_url=str(folder), file_glob="events_*.json.gz"), key=lambda f: f["file_name"]
        )

    (batch,) = list(export_batches(listing(), max_files=16))
    assert len(batch) == 3
    assert [len(b) for b in export_batches(listing(), max_files=2)] == [2, 1]
    target = tmp_path / "events.parquet"
    assert write_export_parquet(batch, target, "1780000000.5") == sum(gzip_lines(day) for day in days)
    with duckdb.connect() as connection:
        assert connection.execute(
            "select distinct _dlt_load_id from read_parquet(?)", [str(target)]
        ).fetchall() == [("1780000000.5",)]

    with gzip.open(folder / "events_20300102.json.gz", "wt") as handle:
        handle.write('{"event_date": "20300102", "event_name": "page_view"}\n{"event_name": "page_view"}\n')
    with pytest.raises(
        ValueError, match=r"^GA4 export file events_20300102.json.gz: 1 events have no event_date$"
    ):
        write_export_parquet(listing(), target, "1780000000.5")
    with gzip.open(folder / "events_20300101.json.gz", "wt") as handle:
        handle.write("this is not json\n")
    with pytest.raises(ValueError, match=r"^GA4 export file events_20300101.json.gz: .*JSON"):
        write_export_parquet(listing(), target, "1780000000.5")


def test_a_page_selector_is_compiled_once_not_per_page(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dlt compiles a JSONPath given as text for every page (about 0.5 ms each; 13,000 Klaviyo
    pages at size M): the client hands it a compiled one."""
    from dlt.common import jsonpath

    from ingestion import http
    from ingestion.klaviyo import klaviyo_source
    from ingestion.sandbox.server import SandboxServer

    parsed: list[str] = []
    parse = jsonpath._parse
    monkeypatch.setattr(jsonpath, "_parse", lambda text: parsed.append(text) or parse(text))
    http._compiled.cache_clear()
    api_key = json.loads((world / "world" / "meta.json").read_text())["api_tokens"]["klaviyo"]
    with SandboxServer(world) as server:
        source = klaviyo_source(base_url=server.klaviyo_base_url, api_key=api_key).with_resources("events")
        _pipeline("klaviyo", tmp_path).extract(source)
    events = len(read_jsonl(world / "world" / "klaviyo" / "events.jsonl"))
    assert events > 2 * settings.KLAVIYO_EVENT_PAGE_SIZE  # several pages
    assert parsed.count("data") == 1
