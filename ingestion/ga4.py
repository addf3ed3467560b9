"""dlt source for GA4's BigQuery export files (``events_YYYYMMDD``, gzip NDJSON) in a folder or bucket.

Files are listed with dlt's filesystem source (a local folder, or any fsspec URL such as ``gs://``
or ``s3://``) and streamed into Arrow tables of DuckDB's row-group size: bulk data never passes
through one Python dict a row. The nested ``event_params`` and ``items`` are kept as they are; dbt
staging unnests them.
A day's rows are replaced as a whole (delete-insert on ``event_date``), because GA4 rewrites a
daily table while late events arrive.

Which files load: new files, files whose modification time changed (a re-export), and always the
newest ``reload_days`` days already loaded, since GA4 keeps rewriting a day for up to three days. The
files loaded and their modification times are kept in the resource's dlt state, which dlt stores in
the warehouse, so a run that starts with no local state still knows them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

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


# DuckDB's row group size: each Arrow table becomes one Parquet row group that DuckDB loads in parallel
ROW_GROUP_ROWS = 122_880
_READ_OPTIONS = pa_json.ReadOptions(block_size=1 << 20)
_PARSE_OPTIONS = pa_json.ParseOptions(explicit_schema=EVENT_SCHEMA, unexpected_field_behavior="ignore")


def read_export_file(file: FileItemDict) -> Iterator[pa.Table]:
    """One daily export file as Arrow tables of ``ROW_GROUP_ROWS`` events, or an error naming the file.

    The file is streamed (gunzipped by Arrow, not Python) so memory stays bounded by the batch size.
    """
    gzipped = file.get("encoding") == "gzip" or file["file_name"].endswith(".gz")
    try:
        with file.open(mode="rb", compression="disable") as raw:
            stream = pa.PythonFile(raw, mode="r")
            if gzipped:
                stream = pa.CompressedInputStream(stream, "gzip")
            pending: list[pa.RecordBatch] = []
            pending_rows = 0
            for batch in pa_json.open_json(stream, read_options=_READ_OPTIONS, parse_options=_PARSE_OPTIONS):
                pending.append(batch)
                pending_rows += batch.num_rows
                while pending_rows >= ROW_GROUP_ROWS:
                    table = pa.Table.from_batches(pending)
                    yield table.slice(0, ROW_GROUP_ROWS)
                    rest = table.slice(ROW_GROUP_ROWS)
                    pending, pending_rows = rest.to_batches(), rest.num_rows
            if pending_rows:
                yield pa.Table.from_batches(pending)
    except pa.ArrowInvalid as error:
        if "Empty JSON" in str(error):  # a gzip file of no events
            return
        raise ValueError(f"GA4 export file {file['file_name']}: {error}") from error


def export_date(file_name: str) -> date:
    """The day an export file holds, from its name ``events_YYYYMMDD…``."""
    stem = file_name.rsplit("/", 1)[-1]
    try:
        return date(int(stem[7:11]), int(stem[11:13]), int(stem[13:15]))
    except ValueError:
        raise ValueError(f"GA4 export file {file_name}: name is not events_YYYYMMDD") from None


def files_to_load(files: list[FileItemDict], loaded: dict[str, str], reload_days: int) -> list[FileItemDict]:
    """New or re-exported files, and every file of the newest ``reload_days`` days already loaded."""
    newest_loaded = max((export_date(name) for name in loaded), default=None)
    reload_from = newest_loaded - timedelta(days=reload_days - 1) if newest_loaded else None
    return [
        file
        for file in files
        if loaded.get(file["file_name"]) != str(file["modification_date"])
        or (reload_from is not None and export_date(file["file_name"]) >= reload_from)
    ]


def make_events_transformer(reload_days: int):
    """The ``events`` transformer: reads the export files the listing resource passes to it."""

    @dlt.transformer(
        name="events",
        write_disposition={"disposition": "merge", "strategy": "delete-insert"},
        merge_key="event_date",
    )
    def events(files: list[FileItemDict]) -> Iterator[pa.Table]:
        """GA4 events, one Arrow table per daily export file; a re-exported day replaces its rows."""
        loaded: dict[str, str] = dlt.current.resource_state().setdefault("loaded_files", {})
        for file in files_to_load(files, loaded, reload_days):
            yield from read_export_file(file)
            loaded[file["file_name"]] = str(file["modification_date"])

    return events


@dlt.source(name="ga4")
def ga4_source(
    bucket_url: str = dlt.config.value,
    file_glob: str = settings.GA4_FILE_GLOB,
    reload_days: int = settings.GA4_RELOAD_DAYS,
):
    """GA4 export files under ``bucket_url`` (a folder or an fsspec URL such as gs:// or s3://)."""
    files = filesystem(bucket_url=bucket_url, file_glob=file_glob)
    return files | make_events_transformer(reload_days)
