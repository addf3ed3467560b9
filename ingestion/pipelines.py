"""The pipeline factory: one dlt pipeline per source system, all writing to the one DuckDB warehouse.

``configure_sources()`` decides where data comes from. Credentials come from dlt config and secrets
(``.dlt/config.toml``, ``.dlt/secrets.toml`` or env vars such as ``SOURCES__SHOPIFY__ACCESS_TOKEN``).
With none configured, shop360 starts the sandbox's fake APIs on a free loopback port and points the
sources at them. A half-configured setup is an error: real and fake data must never mix.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import dlt
from dlt.common.destination import Destination
from dlt.extract.source import DltSource
from dlt.pipeline.helpers import pipeline_drop

from ingestion import paths, settings, warehouse
from ingestion.ga4 import ga4_source
from ingestion.klaviyo import klaviyo_source
from ingestion.pii import HASH_KEY_SETTING
from ingestion.secrets import register_secret
from ingestion.shopify import shopify_source
from ingestion.suppression import Suppression, load_suppression

SOURCES = ("shopify", "klaviyo", "ga4")

# The settings a real account needs, per source (dlt config key -> is it a secret).
REQUIRED_SETTINGS = {
    "shopify": {"sources.shopify.shop_url": False, "sources.shopify.access_token": True},
    "klaviyo": {"sources.klaviyo.api_key": True},
    "ga4": {"sources.ga4.bucket_url": False},
}


class _ExpectedUntypedColumns(logging.Filter):
    """Hides dlt's warning about columns that got only nulls in a load: that is expected here.

    Staging declares every raw column it reads and reads a missing one as a typed null
    (transform/macros/source_columns.sql), so the warning would only bury the run summary.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "did not receive any data during this load" not in record.getMessage()


logging.getLogger("dlt").addFilter(_ExpectedUntypedColumns())

# The URL of sandbox APIs served by another process (`shop360 sandbox serve`; the benchmark): used
# instead of starting them in this one, so they do not share its interpreter.
SANDBOX_URL_ENV = "SHOP360_SANDBOX_URL"

_sandbox_lock = threading.Lock()
_sandbox_server = None  # the fake APIs, started at most once per process
_sandbox_settings: dict[str, str] = {}  # the env vars pointing the sources at them


class SourceConfigError(RuntimeError):
    """The sources are neither all configured nor all left to the sandbox."""


def _is_set(key: str, secret: bool) -> bool:
    provider = dlt.secrets if secret else dlt.config
    return provider.get(key) not in (None, "")


def source_mode() -> str:
    """``configured`` when every source has its settings, ``sandbox`` when none has, else an error."""
    if _sandbox_server is not None:
        return "sandbox"
    missing = [
        key
        for settings_ in REQUIRED_SETTINGS.values()
        for key, secret in settings_.items()
        if not _is_set(key, secret)
    ]
    total = sum(len(settings_) for settings_ in REQUIRED_SETTINGS.values())
    if not missing:
        return "configured"
    if len(missing) < total:
        raise SourceConfigError(
            "some sources are configured and others are not; set these too (or none, for the sandbox): "
            + ", ".join(missing)
        )
    return "sandbox"


def configure_sources() -> str:
    """Point every source at its real account, or all of them at the sandbox. Returns the mode."""
    mode = source_mode()
    if mode == "sandbox":
        _start_sandbox()
    else:
        register_secret(*(dlt.secrets[key] for key in _secret_settings()))
        hash_key()  # a real shop's run needs its own key: say so before anything loads
    return mode


def _secret_settings() -> list[str]:
    return [key for settings_ in REQUIRED_SETTINGS.values() for key, secret in settings_.items() if secret]


def hash_key() -> str:
    """The secret of the keyed hash (``shop360.hash_key``): from dlt secrets or ``SHOP360__HASH_KEY``;
    against the sandbox, the sandbox world's own key."""
    key = None
    if _is_set(HASH_KEY_SETTING, secret=True):
        key = str(dlt.secrets[HASH_KEY_SETTING])
    elif source_mode() == "sandbox" and (meta_file := paths.sandbox_dir() / "world" / "meta.json").exists():
        key = json.loads(meta_file.read_text())["hash_key"]
    if key:
        register_secret(key)
        return key
    raise SourceConfigError(
        f"no hash key: set {HASH_KEY_SETTING} in .dlt/secrets.toml (or the env var SHOP360__HASH_KEY) "
        "to a long random secret; it pseudonymises emails in the BI snapshot and the erasure log"
    )


def sandbox_as_of() -> str | None:
    """The end of the sandbox world (UTC, ISO) when the sources are the sandbox, else None.

    The dbt models take it (var ``as_of``) as "now", so the marts of a simulated world
    read as they would have on its last day.
    """
    meta_file = paths.sandbox_dir() / "world" / "meta.json"
    if source_mode() != "sandbox" or not meta_file.exists():
        return None
    meta = json.loads(meta_file.read_text())
    local_end = datetime.combine(date.fromisoformat(meta["as_of"]), time(), ZoneInfo(meta["timezone"]))
    return local_end.astimezone(UTC).replace(tzinfo=None).isoformat()


def _start_sandbox() -> None:
    """Start the fake APIs once per process and export their endpoints as dlt config."""
    global _sandbox_server
    from ingestion.sandbox.server import SandboxServer

    with _sandbox_lock:
        if _sandbox_server is not None:
            return
        world = paths.sandbox_dir()
        if not (world / "world" / "meta.json").exists():
            raise SourceConfigError(
                f"no source is configured and there is no sandbox world in {world}: "
                "run `shop360 sandbox generate` (or `make demo`), or configure the real accounts"
            )
        tokens = json.loads((world / "world" / "meta.json").read_text())["api_tokens"]
        register_secret(*tokens.values())
        if external := os.environ.get(SANDBOX_URL_ENV):
            server = _ExternalSandbox(external.rstrip("/"))
        else:
            server = SandboxServer(world).start()
        _sandbox_settings.update(
            {
                "SOURCES__SHOPIFY__SHOP_URL": server.base_url,
                "SOURCES__SHOPIFY__ACCESS_TOKEN": tokens["shopify"],
                "SOURCES__KLAVIYO__BASE_URL": server.klaviyo_base_url,
                "SOURCES__KLAVIYO__API_KEY": tokens["klaviyo"],
                "SOURCES__GA4__BUCKET_URL": str(world / "ga4"),
            }
        )
        os.environ.update(_sandbox_settings)
        _sandbox_server = server


class _ExternalSandbox:
    """Sandbox APIs another process serves (``SHOP360_SANDBOX_URL``): nothing to start or stop."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.klaviyo_base_url = f"{base_url}/api"

    def stop(self) -> None:
        pass


def stop_sandbox() -> None:
    """Stop the fake APIs this process started (tests switch worlds; a run needs no call)."""
    global _sandbox_server
    with _sandbox_lock:
        if _sandbox_server is not None:
            _sandbox_server.stop()
            _sandbox_server = None
            for key in _sandbox_settings:
                os.environ.pop(key, None)
            _sandbox_settings.clear()


_FACTORIES = {"shopify": shopify_source, "klaviyo": klaviyo_source, "ga4": ga4_source}

# Settings for a source built only to describe its resources (asset definitions); never run.
_DESCRIBE_ONLY = {
    "shopify": {"shop_url": "http://describe.invalid", "access_token": "unused"},
    "klaviyo": {"api_key": "unused"},
    "ga4": {"bucket_url": "file:///describe.invalid"},
}


def current_suppression() -> Suppression:
    """The warehouse's suppression list (erased people), with the hash key when it is not empty."""
    suppression = load_suppression()
    if suppression:
        suppression.key = hash_key()
    return suppression


def make_source(name: str, **options) -> DltSource:
    """The dlt source for ``name``, settings from dlt config (call ``configure_sources`` first);
    ``options`` are the source's own arguments (GA4's ``days``; ``suppression``, by default the
    warehouse's list, read now)."""
    options.setdefault("suppression", current_suppression())
    return _FACTORIES[name](**options)


def ga4_bucket_url() -> str:
    """Where the GA4 export files are: the configured bucket, or the sandbox's folder (no server started)."""
    if source_mode() == "sandbox":
        return str(paths.sandbox_dir() / "ga4")
    return dlt.config["sources.ga4.bucket_url"]


def describe_source(name: str) -> DltSource:
    """The dlt source for ``name`` with placeholder settings: for reading its resources, not for running."""
    return _FACTORIES[name](**_DESCRIBE_ONLY[name])


def duckdb_load_settings(name: str) -> dict[str, dict[str, object]]:
    """DuckDB's settings for source ``name``'s loads (dlt's ``local_config`` and ``global_config``):
    shop360's resource limits (ingestion/warehouse.py), overridden by the source's own."""
    load_settings = settings.DUCKDB_LOAD_SETTINGS.get(name, {})
    return {
        **load_settings,
        "global_config": {**warehouse.resource_limits(), **load_settings.get("global_config", {})},
    }


def warehouse_destination(name: str, database: str | os.PathLike[str] | None = None) -> Destination:
    """The warehouse (or ``database``) as dlt's DuckDB destination, with source ``name``'s load
    settings (``duckdb_load_settings``)."""
    return dlt.destinations.duckdb(
        credentials={"database": str(database or paths.warehouse_path()), **duckdb_load_settings(name)}
    )


# dlt keeps copies of loaded records outside the raw tables unless told not to: the files of every
# load package (under the pipeline's working dir) and the last batch in the staging datasets
# (raw_*_staging) that merges go through. Data minimisation: delete and truncate them after each
# load. A shop can still switch either off in dlt config (e.g. to debug a load).
MINIMISED_LOAD_SETTINGS = {"load.delete_completed_jobs": True, "load.truncate_staging_dataset": True}
# dlt gzips the files it hands from extract to normalize to load; they live for one run on local disk
# and are deleted after the load, so compressing them only costs CPU (a tenth of the API sources' time).
# The normalizer turns the API sources' JSON into table rows in Python, one core per worker process:
# two workers use both cores of a small server, given files of at most 250,000 rows to share (one
# file per table otherwise). At size M, extract + normalize + load: Klaviyo 134.5 s -> 114.3 s
# (normalize 54.3 -> 32.9), Shopify 92.6 s -> 64.9 s (normalize 54.0 -> 29.5).
FAST_LOAD_SETTINGS = {
    "data_writer.disable_compression": True,
    "normalize.workers": 2,
    "data_writer.file_max_items": 250_000,
}
# ...but only a source's first load has rows enough to share: under Dagster, dlt spawns its workers
# (it does not fork there), 1-2 s a source before they normalise a row. A night's increment is
# normalised in the run's own process (XS nights: the three sources 5.2 s -> 2.4-3.1 s).
INCREMENT_NORMALIZE_WORKERS = 1

# the dlt settings holding shop360's defaults rather than the shop's own configuration
_defaults_set: set[str] = set()


def _set_default(key: str, value: object) -> None:
    """Set dlt setting ``key`` to ``value`` unless the shop configured it (in config.toml or the
    environment)."""
    if key in _defaults_set or dlt.config.get(key) is None:
        dlt.config[key] = value
        _defaults_set.add(key)


def minimise_load_copies() -> None:
    """Make dlt delete completed load jobs and truncate staging datasets, not gzip its intermediate
    files and normalize on two cores, unless configured otherwise."""
    for key, value in {**MINIMISED_LOAD_SETTINGS, **FAST_LOAD_SETTINGS}.items():
        _set_default(key, value)


def make_pipeline(name: str) -> dlt.Pipeline:
    """The dlt pipeline loading ``name`` into its raw schema of the warehouse (keeping no copies of
    the records it loaded: ``minimise_load_copies``; normalising in worker processes only for its
    first load, unless the shop configured the workers)."""
    minimise_load_copies()
    pipeline = dlt.pipeline(
        pipeline_name=f"shop360_{name}",
        destination=warehouse_destination(name),
        dataset_name=settings.DATASETS[name],
        pipelines_dir=str(paths.data_dir() / "dlt_pipelines"),
    )
    if "normalize.workers" in _defaults_set:
        workers = (
            FAST_LOAD_SETTINGS["normalize.workers"] if pipeline.first_run else INCREMENT_NORMALIZE_WORKERS
        )
        _set_default(f"{pipeline.pipeline_name}.normalize.workers", workers)
    return pipeline


def drop_retired_resources(pipeline: dlt.Pipeline, source_name: str) -> list[str]:
    """Drop the tables of ``source_name``'s retired resources (``settings.RETIRED_RESOURCES``) from
    the warehouse and from the pipeline's schema and state; the tables dropped (none once done)."""
    retired = settings.RETIRED_RESOURCES.get(source_name, ())
    if not retired or pipeline.default_schema_name is None:  # never ran: nothing was loaded
        return []
    drop = pipeline_drop(pipeline, resources=list(retired))
    if drop.is_empty:
        return []
    drop()
    return list(drop.info["tables"])
