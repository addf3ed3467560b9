"""dlt source for GA4's BigQuery export files (``events_YYYYMMDD``, gzip NDJSON) in a folder or bucket.

Files are listed with dlt's filesystem source (a local folder, or any fsspec URL such as ``gs://``
or ``s3://``) and read into Arrow tables, one per file: bulk data never passes through one Python
dict a row. The nested ``event_params`` and ``items`` are kept as they are; dbt staging unnests them.
A day's rows are replaced as a whole (delete-insert on ``event_date``), because GA4 rewrites a
daily table while late events arrive.
"""

from __future__ import annotations

from collections.abc import Iterator

import dlt
import pyarrow as pa
import pyarrow.json as pa_json
from dlt.sources.filesystem import FileItemDict, filesystem

from ingestion import settings

_PARAM_VALUE = pa.struct(
    [
        ("string_value", pa.string()),
        ("int_value", pa.int64()),
        ("float_value", pa.float64()),
        ("double_value", pa.float64()),
    ]
)

# The export columns shop360 uses; other export columns are ignored (collect only what marts use).
EVENT_SCHEMA = pa.schema(
    [
        ("event_date", pa.string()),
        ("event_timestamp", pa.int64()),
        ("event_name", pa.string()),
        ("event_params", pa.list_(pa.struct([("key", pa.string()), ("value", _PARAM_VALUE)]))),
        ("user_pseudo_id", pa.string()),
        ("user_id", pa.string()),
        (
            "device",
            pa.struct(
                [("category", pa.string()), ("operating_system", pa.string()), ("browser", pa.string())]
            ),
        ),
        ("geo", pa.struct([("country", pa.string()), ("city", pa.string())])),
        (
            "traffic_source",
            pa.struct([("source", pa.string()), ("medium", pa.string()), ("name", pa.string())]),
        ),
        (
            "ecommerce",
            pa.struct(
                [
                    ("transaction_id", pa.string()),
                    ("purchase_revenue", pa.float64()),
                    ("total_item_quantity", pa.int64()),
                ]
            ),
        ),
        (
            "items",
            pa.list_(
                pa.struct(
                    [
                        ("item_id", pa.string()),
                        ("item_name", pa.string()),
                        ("item_category", pa.string()),
                        ("price", pa.float64()),
                        ("quantity", pa.int64()),
                    ]
                )
            ),
        ),
    ]
)


def read_export_file(file: FileItemDict) -> pa.Table:
    """One daily export file as an Arrow table with ``EVENT_SCHEMA``, or an error naming the file."""
    options = pa_json.ParseOptions(explicit_schema=EVENT_SCHEMA, unexpected_field_behavior="ignore")
    try:
        with file.open(mode="rb") as handle:
            return pa_json.read_json(handle, parse_options=options)
    except pa.ArrowInvalid as error:
        raise ValueError(f"GA4 export file {file['file_name']}: {error}") from error


@dlt.transformer(
    name="events",
    write_disposition={"disposition": "merge", "strategy": "delete-insert"},
    merge_key="event_date",
)
def events(files: list[FileItemDict]) -> Iterator[pa.Table]:
    """GA4 events, one Arrow table per daily export file; a re-exported day replaces its rows."""
    for file in files:
        yield read_export_file(file)


@dlt.source(name="ga4")
def ga4_source(bucket_url: str = dlt.config.value, file_glob: str = settings.GA4_FILE_GLOB):
    """GA4 export files under ``bucket_url``; only new or re-exported files are read on each run."""
    files = filesystem(bucket_url=bucket_url, file_glob=file_glob)
    files.apply_hints(incremental=dlt.sources.incremental("modification_date"))
    return files | events
