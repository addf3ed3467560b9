"""Where shop360 keeps its files: everything under one data directory (``SHOP360_DATA_DIR``)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The data directory: ``$SHOP360_DATA_DIR`` or ``data/`` in the project root."""
    return Path(os.environ.get("SHOP360_DATA_DIR") or PROJECT_ROOT / "data").resolve()


def sandbox_dir() -> Path:
    """Root of the sandbox: ``world/`` (what the fake APIs serve), ``ga4/`` and ``truth/``."""
    return data_dir() / "sandbox"


def warehouse_path() -> Path:
    """The writer's DuckDB warehouse. BI tools never open this file."""
    return data_dir() / "warehouse.duckdb"


def bi_dir() -> Path:
    """Where the published BI snapshot lives: ``shop360.duckdb`` and the Parquet files (``parquet/``)."""
    return data_dir() / "bi"


def dbt_metadata_dir() -> Path:
    """Where dbt writes each table's row count and each mart's first rows while it builds
    (``transform/macros/build_metadata.sql``); the Dagster asset empties it before each build."""
    return data_dir() / "dbt_build_metadata"
