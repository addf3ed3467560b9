"""dlt source for GA4's BigQuery export files (``events_YYYYMMDD``, gzip NDJSON) in a folder or bucket.

Files are listed with dlt's filesystem source (a local folder, or any fsspec URL such as ``gs://``
or ``s3://``). DuckDB parses each file (``read_json`` of ``EXPORT_FIELDS``, every other field
skipped) into a Parquet file of the flat ``RAW_COLUMNS``, which dlt imports as it is
(``dlt.mark.with_file_import``): bulk data never passes through Python, neither as a dict a row nor
as Arrow tables to normalize. Only the fields marts use are kept, each in a column of its own (the
three event parameters they read included; ``items`` is not kept): no nested data is turned into
JSON to load and parsed again in dbt staging (decision 31).
A day's rows are replaced as a whole (delete-insert on ``event_date``), because GA4 rewrites a
daily table while late events arrive. dlt does not normalise an imported file, so the file itself
carries dlt's ``_dlt_load_id`` (the load package's id), as every other raw table does: the
incremental GA4 models rebuild exactly the days loaded since their last build (decision 29).

Which files load: given ``days`` (first, last), exactly the files of those days, whatever was loaded
before: that is how Dagster's daily partitions load, backfill and re-run a day. Without, new files,
files whose modification time changed (a re-export), and always the newest ``reload_days`` days
already loaded, since GA4 keeps rewriting a day for up to three days. The files loaded and their
modification times are kept in the resource's dlt state, which dlt stores in the warehouse, so a run
that starts with no local state still knows them.

Erased people (the suppression list) are kept out in the same step: the file's distinct cookie ids,
user ids and transaction ids are hashed, and when one is suppressed the Parquet file is written again
without every event of the cookies that carry it (also their anonymous events before a login).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from datetime import date, timedelta
from functools import cache
from pathlib import Path

import dlt
import duckdb
import pyarrow as pa
from dlt.extract.items import DataItemWithMeta
from dlt.sources.filesystem import FileItemDict, filesystem

from ingestion import settings
from ingestion.suppression import GA4_COOKIE, SHOPIFY_CUSTOMER, SHOPIFY_ORDER, Suppression

# The export fields shop360 reads, as DuckDB types for ``read_json``: a nested field lists only the
# sub-fields a mart uses, and every other field of the export is skipped while parsing.
EXPORT_FIELDS = {
    "event_date": "VARCHAR",
    "event_timestamp": "BIGINT",
    "event_name": "VARCHAR",
    "event_params": 'STRUCT("key" VARCHAR, "value" STRUCT(string_value VARCHAR, int_value BIGINT))[]',
    "user_pseudo_id": "VARCHAR",
    "user_id": "VARCHAR",
    "device": "STRUCT(category VARCHAR)",
    "geo": "STRUCT(country VARCHAR, city VARCHAR)",
    "traffic_source": 'STRUCT("source" VARCHAR, medium VARCHAR, "name" VARCHAR)',
    "ecommerce": "STRUCT(transaction_id VARCHAR, purchase_revenue DOUBLE)",
}


def _param(key: str, value_field: str) -> str:
    """The value of the event parameter ``key`` (null when the event has none)."""
    return f"list_filter(event_params, lambda param: param.key = '{key}')[1].value.{value_field}"


# The raw table's columns (SQL over EXPORT_FIELDS): flat, so the load and staging never convert
# nested data to and from JSON. A nested field is named by its path joined by "__", as dlt names
# the fields it flattens; an event parameter by "event_params__" and its key.
RAW_COLUMNS = {
    "event_date": "event_date",
    "event_timestamp": "event_timestamp",
    "event_name": "event_name",
    "user_pseudo_id": "user_pseudo_id",
    "user_id": "user_id",
    "event_params__ga_session_id": _param("ga_session_id", "int_value"),
    "event_params__ga_session_number": _param("ga_session_number", "int_value"),
    "event_params__page_location": _param("page_location", "string_value"),
    "device__category": "device.category",
    "geo__country": "geo.country",
    "geo__city": "geo.city",
    "traffic_source__source": "traffic_source.source",
    "traffic_source__medium": "traffic_source.medium",
    "traffic_source__name": "traffic_source.name",
    "ecommerce__transaction_id": "ecommerce.transaction_id",
    "ecommerce__purchase_revenue": "ecommerce.purchase_revenue",
}
# The raw columns' version: a warehouse loaded with another (before 2: nested fields as JSON) loads
# every export file again, which replaces each day's rows in the current layout.
RAW_LAYOUT = 2
# dlt's column for the load that wrote a row, which an imported file must carry itself
LOAD_ID_COLUMN = "_dlt_load_id"

# DuckDB for parsing one file: bounded memory; any row order (raw has none), so Parquet is written in parallel
_DUCKDB_SETTINGS = {"memory_limit": "1GB", "preserve_insertion_order": False}


def raw_events(export: duckdb.DuckDBPyRelation, load_id: str) -> duckdb.DuckDBPyRelation:
    """The raw table's rows (``RAW_COLUMNS`` and ``load_id``) of the events ``export`` parsed."""
    return export.project(
        *(duckdb.SQLExpression(expression).alias(name) for name, expression in RAW_COLUMNS.items()),
        duckdb.ConstantExpression(load_id).alias(LOAD_ID_COLUMN),
    )


@cache
def raw_table() -> pa.Table:
    """The raw table's columns and types as an empty Arrow table (dlt takes the table's columns from
    it), typed by DuckDB itself from ``RAW_COLUMNS`` over ``EXPORT_FIELDS``."""
    typed_nulls = ", ".join(f'null::{type_} as "{name}"' for name, type_ in EXPORT_FIELDS.items())
    with duckdb.connect() as connection:
        empty = raw_events(connection.sql(f"select {typed_nulls} limit 0"), "").to_arrow_table()
    # DuckDB writes every Parquet column as optional; dlt's load id is never null
    return empty.set_column(
        empty.schema.get_field_index(LOAD_ID_COLUMN),
        pa.field(LOAD_ID_COLUMN, pa.string(), nullable=False),
        pa.array([], pa.string()),
    )


def _is_gzipped(file: FileItemDict) -> bool:
    return file.get("encoding") == "gzip" or file["file_name"].endswith(".gz")


def _is_local(file: FileItemDict) -> bool:
    return "file" in file.fsspec.protocol


def export_batches(files: list[FileItemDict], max_files: int = settings.GA4_FILES_PER_BATCH):
    """``files`` in batches DuckDB parses in one ``read_json``: up to ``max_files`` local files of
    the same compression (DuckDB reads several files in parallel, and dlt imports one Parquet file
    per batch instead of one per day); a file in a bucket is a batch of its own (it is read through
    its fsspec file object, one at a time)."""
    batch: list[FileItemDict] = []
    for file in files:
        if batch and (
            len(batch) == max_files
            or not _is_local(file)
            or not _is_local(batch[0])
            or _is_gzipped(file) != _is_gzipped(batch[0])
        ):
            yield batch
            batch = []
        batch.append(file)
    if batch:
        yield batch


def write_export_parquet(
    files: list[FileItemDict], target: Path, load_id: str, suppression: Suppression | None = None
) -> int:
    """Daily export files (one batch of ``export_batches``) as one Parquet file of ``EVENT_SCHEMA``'s
    columns and ``load_id`` (dlt's ``_dlt_load_id``); its number of events.

    DuckDB's ``read_json`` gunzips and parses the files with the columns and types given (other
    export columns and fields are skipped) and ``COPY`` writes the Parquet file. Local files are
    read by their paths, a file in a bucket through its fsspec file object. A file that is not JSON
    lines of that shape, or holds an event without ``event_date``, is an error naming the file (a
    batch that fails is read again file by file to find it). Events of people on the
    ``suppression`` list are left out (and counted in it).
    """
    try:
        return _write_parquet(files, target, load_id, suppression)
    except (duckdb.Error, _UndatedEvents) as error:
        if len(files) > 1:
            for file in files:  # raises, naming the file, unless the batch as a whole was the problem
                write_export_parquet([file], target, load_id)
        names = ", ".join(file["file_name"] for file in files)
        raise ValueError(f"GA4 export file {names}: {error}") from error


class _UndatedEvents(ValueError):
    pass


def _write_parquet(
    files: list[FileItemDict], target: Path, load_id: str, suppression: Suppression | None
) -> int:
    with duckdb.connect(config=_DUCKDB_SETTINGS) as connection, contextlib.ExitStack() as stack:
        if _is_local(files[0]):
            source: object = [file.local_file_path for file in files]
        else:
            (file,) = files
            source = stack.enter_context(file.open(mode="rb", compression="disable"))
        events = connection.read_json(
            source,
            columns=EXPORT_FIELDS,
            format="newline_delimited",
            compression="gzip" if _is_gzipped(files[0]) else "none",
        )
        raw_events(events, load_id).to_parquet(str(target))
        if suppression:
            suppression.dropped["events"] += drop_suppressed_events(connection, target, suppression)
        written, undated = connection.execute(
            "select count(*), count(*) - count(event_date) from read_parquet(?)", [str(target)]
        ).fetchone()
    if undated:
        raise _UndatedEvents(f"{undated} events have no event_date")
    return written


def suppressed_cookies(
    ids: list[tuple[str | None, str | None, str | None]], suppression: Suppression
) -> list[str]:
    """The cookies among ``ids`` (user_pseudo_id, user_id, transaction_id of a file's events) that are
    suppressed, logged in as a suppressed customer or bought a suppressed order."""
    return sorted(
        {
            cookie
            for cookie, user_id, transaction_id in ids
            if suppression.matches(GA4_COOKIE, cookie)
            or suppression.matches(SHOPIFY_CUSTOMER, user_id)
            or suppression.matches(SHOPIFY_ORDER, transaction_id)
        }
        - {None}
    )


def drop_suppressed_events(
    connection: duckdb.DuckDBPyConnection, parquet: Path, suppression: Suppression
) -> int:
    """Rewrite ``parquet`` without the events of suppressed people; the number of events dropped.

    Only the file's distinct ids are hashed (in Python, with the keyed hash); the events are
    filtered in SQL, and the file is rewritten only when it holds someone suppressed.
    """
    ids = connection.execute(
        "select distinct user_pseudo_id, user_id, ecommerce__transaction_id from read_parquet(?)",
        [str(parquet)],
    ).fetchall()
    cookies = suppressed_cookies(ids, suppression)
    user_ids = sorted({user_id for _, user_id, _ in ids if suppression.matches(SHOPIFY_CUSTOMER, user_id)})
    orders = sorted({order for _, _, order in ids if suppression.matches(SHOPIFY_ORDER, order)})
    if not (cookies or user_ids or orders):
        return 0
    kept = parquet.with_name(f"kept_{parquet.name}")
    connection.execute(
        f"""
        copy (
            select *
            from read_parquet('{parquet}')
            where not coalesce(list_contains($cookies, user_pseudo_id), false)
                and not coalesce(list_contains($user_ids, user_id), false)
                and not coalesce(list_contains($orders, ecommerce__transaction_id), false)
        ) to '{kept}' (format parquet)
        """,
        {"cookies": cookies, "user_ids": user_ids, "orders": orders},
    )
    before, after = (
        connection.execute("select count(*) from read_parquet(?)", [str(path)]).fetchone()[0]
        for path in (parquet, kept)
    )
    kept.replace(parquet)
    return before - after


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


def files_of_days(files: list[FileItemDict], first: date, last: date) -> list[FileItemDict]:
    """The export files of the days ``first`` to ``last`` (both included)."""
    return [file for file in files if first <= export_date(file["file_name"]) <= last]


def make_events_transformer(
    reload_days: int, days: tuple[date, date] | None = None, suppression: Suppression | None = None
):
    """The ``events`` transformer: reads the export files the listing resource passes to it."""

    @dlt.transformer(
        name="events",
        write_disposition={"disposition": "merge", "strategy": "delete-insert"},
        merge_key="event_date",
        # DuckDB writes every Parquet column as optional, and dlt would rewrite a file that does not
        # match a NOT NULL column: the merge key stays nullable, write_export_parquet checks it
        columns={"event_date": {"nullable": True}},
    )
    def events(files: list[FileItemDict]) -> Iterator[DataItemWithMeta]:
        """GA4 events, one Parquet file per batch of export files; a re-exported day replaces its rows."""
        state = dlt.current.resource_state()
        if state.get("raw_layout") != RAW_LAYOUT:
            state.update({"raw_layout": RAW_LAYOUT, "loaded_files": {}})
        loaded: dict[str, str] = state["loaded_files"]
        chosen = files_of_days(files, *days) if days else files_to_load(files, loaded, reload_days)
        load_id = dlt.current.load_package_state()["load_id"]
        for batch in export_batches(chosen):
            # beside the load packages, so dlt imports the file by a hard link, not a copy
            with tempfile.TemporaryDirectory(dir=dlt.current.pipeline().working_dir) as scratch:
                target = Path(scratch) / "events.parquet"
                if events_in_batch := write_export_parquet(batch, target, load_id, suppression):
                    yield dlt.mark.with_file_import(
                        str(target), "parquet", items_count=events_in_batch, hints=raw_table()
                    )
            loaded.update({file["file_name"]: str(file["modification_date"]) for file in batch})

    return events


@dlt.source(name="ga4")
def ga4_source(
    bucket_url: str = dlt.config.value,
    file_glob: str = settings.GA4_FILE_GLOB,
    reload_days: int = settings.GA4_RELOAD_DAYS,
    days: tuple[date, date] | None = None,
    suppression: Suppression | None = None,
):
    """GA4 export files under ``bucket_url`` (a folder or an fsspec URL such as gs:// or s3://);
    with ``days`` (first, last), the files of those days only; without the events of the people on
    the ``suppression`` list."""
    files = filesystem(bucket_url=bucket_url, file_glob=file_glob)
    return files | make_events_transformer(reload_days, days, suppression)


def export_days(bucket_url: str, file_glob: str = settings.GA4_FILE_GLOB) -> list[date]:
    """The days that have an export file under ``bucket_url``, oldest first (a listing, no reading)."""
    listing = filesystem(bucket_url=bucket_url, file_glob=file_glob)
    return sorted({export_date(file["file_name"]) for file in listing})
