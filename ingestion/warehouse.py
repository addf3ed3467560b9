"""DuckDB's resources for every connection shop360 opens: one place, set by environment variables.

DuckDB defaults to 80% of the machine's memory and every core, per process. A nightly run opens the
warehouse from several places (dlt's loads, dbt, the checks, the BI snapshot publish, erasure), so
each is bounded by the same settings (README, "What a night costs"):

- ``SHOP360_DUCKDB_MEMORY_LIMIT`` (default ``2GB``): DuckDB's memory limit per process; what does not
  fit spills to the temp directory (joins, aggregates and sorts do; a few structures cannot);
- ``SHOP360_DUCKDB_THREADS`` (default: the cores this process may use);
- ``SHOP360_DUCKDB_TEMP_DIRECTORY`` (default ``<data dir>/warehouse.duckdb.tmp``, DuckDB's own
  default for the warehouse file).

dbt reads the same variables in ``transform/profiles.yml``; the Dagster dbt asset exports them
(``dbt_environment``) so both always agree.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from ingestion import paths

DEFAULT_MEMORY_LIMIT = "2GB"


def memory_limit() -> str:
    """DuckDB's memory limit (a size DuckDB reads, such as ``2GB`` or ``1500MB``)."""
    return os.environ.get("SHOP360_DUCKDB_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT


def threads() -> int:
    """Threads of one DuckDB query: the setting, else the cores this process may run on."""
    value = os.environ.get("SHOP360_DUCKDB_THREADS") or str(len(os.sched_getaffinity(0)))
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"SHOP360_DUCKDB_THREADS must be a whole number ≥ 1, not {value!r}")
    return int(value)


def temp_directory() -> Path:
    """Where DuckDB spills what does not fit in memory."""
    configured = os.environ.get("SHOP360_DUCKDB_TEMP_DIRECTORY")
    return Path(configured) if configured else paths.data_dir() / "warehouse.duckdb.tmp"


def resource_limits() -> dict[str, str]:
    """Memory limit and threads: settings DuckDB also takes after connecting (dlt's ``global_config``)."""
    return {"memory_limit": memory_limit(), "threads": str(threads())}


def duckdb_config() -> dict[str, str]:
    """The settings of a new DuckDB connection (``duckdb.connect(config=…)``); the temp directory can
    only be chosen before DuckDB first spills."""
    return {**resource_limits(), "temp_directory": str(temp_directory())}


def connect(database: str | os.PathLike[str], read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to ``database`` (the warehouse, the BI snapshot) with bounded resources."""
    return duckdb.connect(str(database), read_only=read_only, config=duckdb_config())


def dbt_environment() -> dict[str, str]:
    """The variables ``transform/profiles.yml`` reads, so dbt's DuckDB gets the same settings.

    The data directory is absolute for dbt's working directory. ``shop360 dbt-parse`` and the nightly
    dbt both use these, so the nightly finds a parse state made with its own profile."""
    return {
        "SHOP360_DATA_DIR": str(paths.data_dir()),
        "SHOP360_DUCKDB_MEMORY_LIMIT": memory_limit(),
        "SHOP360_DUCKDB_THREADS": str(threads()),
        "SHOP360_DUCKDB_TEMP_DIRECTORY": str(temp_directory()),
        "SHOP360_DBT_METADATA_DIR": str(paths.dbt_metadata_dir()),
    }
