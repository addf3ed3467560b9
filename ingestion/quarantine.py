"""Records an API returned that cannot be loaded as they are (no id, no usable cursor timestamp).

They go to the raw schema's ``quarantined_records`` table instead of failing the load or vanishing;
``audit.quarantined_records`` (dbt) lists them beside the records staging rejects. Only ids and the
reason are kept, never the record's personal data.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dlt
from dlt.extract.items import DataItemWithMeta

QUARANTINE_TABLE = "quarantined_records"


def split_quarantined(rows: list[Any]) -> Iterator[Any]:
    """The loadable rows of a page as one list, then each quarantine row on its own.

    dlt reads table hints only from an item yielded by itself, not from inside a list.
    """
    loadable = [row for row in rows if not isinstance(row, DataItemWithMeta)]
    if loadable:
        yield loadable
    yield from (row for row in rows if isinstance(row, DataItemWithMeta))


def quarantined(source_table: str, record: dict[str, Any], reason: str) -> Any:
    """A quarantine row for ``record``, marked for the quarantine table (append, no merge key)."""
    row = {
        "source_table": source_table,
        # Shopify records also carry their GraphQL id, which names them when "id" is missing
        "record_id": str(record.get("id") or record.get("admin_graphql_api_id") or "unknown"),
        "reason": reason,
    }
    return dlt.mark.with_hints(
        row,
        dlt.mark.make_hints(table_name=QUARANTINE_TABLE, write_disposition="append", primary_key=()),
    )
