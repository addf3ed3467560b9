"""A dbt-duckdb plugin: shop360's SQL functions on every connection dbt opens (profiles.yml).

``keyed_hash(varchar)``: HMAC-SHA256 under the secret shop360 passes to dbt in the environment
(``SHOP360__HASH_KEY``, resolved from dlt secrets by the Dagster dbt asset). The key never appears
in SQL, so neither dbt's compiled files nor its logs can hold it.
"""

from __future__ import annotations

import os

import duckdb
from dbt.adapters.duckdb.plugins import BasePlugin

from ingestion.pii import KEYED_HASH_FUNCTION, register_keyed_hash

HASH_KEY_ENV = "SHOP360__HASH_KEY"


def _no_key(value: str) -> str:
    raise RuntimeError(
        f"{KEYED_HASH_FUNCTION}() has no key: shop360 sets {HASH_KEY_ENV} when it runs dbt; "
        f"export it (the value of shop360.hash_key) to run dbt by hand"
    )


class Plugin(BasePlugin):
    def configure_connection(self, conn: duckdb.DuckDBPyConnection) -> None:
        if key := os.environ.get(HASH_KEY_ENV):
            register_keyed_hash(conn, key)
        else:
            varchar = duckdb.sqltype("VARCHAR")
            conn.create_function(KEYED_HASH_FUNCTION, _no_key, [varchar], varchar, side_effects=True)
