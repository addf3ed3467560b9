"""A BI tool's stand-in: reads the published snapshot in a loop, in a process of its own, until told to
stop (tests/test_bi_snapshot_runs.py runs it during a nightly run).

    python -m tests.bi_reader BI_DIR OUT_FILE STOP_FILE

Each observation is one JSON line in OUT_FILE: the snapshot's own description (``bi.snapshot``) and
the rows actually counted in every mart table, read from the DuckDB file in one connection and from
the Parquet folder the ``parquet`` link points to, or the error met. After STOP_FILE appears it makes
one last pair of observations and exits. Only duckdb is imported: no shop360 code, no warehouse.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import duckdb

PAUSE_SECONDS = 0.1


def observe_duckdb(path: Path) -> dict:
    """The description and the row counts of every mart table, read in one read-only connection."""
    with duckdb.connect(str(path), read_only=True) as connection:
        described = connection.execute("select table_name, row_count, run_id from bi.snapshot").fetchall()
        tables = [
            f"{schema}.{table}"
            for schema, table in connection.execute(
                "select schema_name, table_name from duckdb_tables() where schema_name = 'marts' order by all"
            ).fetchall()
        ]
        counted = {
            table: connection.execute(f"select count(*) from {table}").fetchone()[0] for table in tables
        }
    return {
        "source": "duckdb",
        "run_ids": sorted({run_id for *_, run_id in described}),
        "described": {table: rows for table, rows, _ in described},
        "counted": counted,
    }


def observe_parquet(bi_dir: Path) -> dict:
    """The same from the Parquet version the link points to now (resolved once, then read)."""
    version = (bi_dir / "parquet").resolve(strict=True)
    description = version / "_snapshot.parquet"
    with duckdb.connect() as connection:
        described = connection.execute(
            f"select table_name, row_count, run_id, parquet_file from read_parquet('{description}')"
        ).fetchall()
        counted = {
            table: connection.execute(f"select count(*) from read_parquet('{version / file}')").fetchone()[0]
            for table, _, _, file in described
        }
        files = sorted(path.name for path in version.glob("*.parquet") if path.name != "_snapshot.parquet")
    return {
        "source": "parquet",
        "version": version.name,
        "run_ids": sorted({run_id for _, _, run_id, _ in described}),
        "described": {table: rows for table, rows, _, _ in described},
        "counted": counted,
        "files": files,
    }


def observe(bi_dir: Path) -> list[dict]:
    observations = []
    for source, read in (
        ("duckdb", lambda: observe_duckdb(bi_dir / "shop360.duckdb")),
        ("parquet", lambda: observe_parquet(bi_dir)),
    ):
        try:
            observations.append(read())
        except Exception as error:  # every error is what the test looks for
            observations.append({"source": source, "error": f"{type(error).__name__}: {error}"})
    return observations


def main(bi_dir: Path, out_file: Path, stop_file: Path) -> None:
    with out_file.open("a") as out:
        while True:
            stopping = stop_file.exists()
            for observation in observe(bi_dir):
                out.write(json.dumps({**observation, "after_stop": stopping}) + "\n")
            out.flush()
            if stopping:
                return
            time.sleep(PAUSE_SECONDS)


if __name__ == "__main__":
    main(*(Path(argument) for argument in sys.argv[1:4]))
