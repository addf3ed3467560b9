"""Names shared across the Dagster definitions."""

from __future__ import annotations

import sys
from pathlib import Path

from ingestion.paths import PROJECT_ROOT

DBT_PROJECT_DIR = PROJECT_ROOT / "transform"
# dbt installed beside this Python, so it is found whether or not the virtualenv is activated
DBT_EXECUTABLE = Path(sys.executable).with_name("dbt")

# DuckDB allows one writer at a time: every asset that writes the warehouse runs in this pool,
# whose limit is 1 (see the instance's dagster.yaml written by `shop360 prepare-dagster-home`).
WAREHOUSE_WRITER_POOL = "duckdb_writer"

OWNER = "team:data-engineering"

# The job `shop360 forget` launches to rebuild every dbt model without the erased person
ERASURE_REBUILD_JOB = "erasure_rebuild"
