"""Right to erasure: ``shop360 forget`` removes one person from every layer and keeps them out.

Steps (``forget``), after ``orchestration.person`` has resolved the whole person and matched their
rows in every table:

1. In one warehouse transaction: delete their rows from the raw tables and dlt's nested tables, the
   dlt staging datasets (``raw_*_staging``) and the incremental dbt tables ``dbt build`` never
   rebuilds (customer keys, key changes); remove their phone from other people's raw rows; remove
   the digests of their record ids from dlt's incremental state (``unique_hashes`` in every
   ``_dlt_pipeline_state`` row); add their identifiers to the suppression list
   (``audit.erasure_suppressions``, keyed hashes only) and write the erasure log.
2. Scrub dlt's local pipeline directories: load packages, traces and the same state digests.
3. Rebuild everything dbt builds, and what is below it, through Dagster (job ``erasure_rebuild``:
   it shows in the UI and runs the checks), so no model or aggregate counts the person any more.
4. Check that no row matches the person any more, record the outcome in the log, and compact the
   warehouse file: DuckDB marks deleted rows and frees the blocks of replaced tables but does not
   overwrite them, so the file is copied into a fresh one and renamed into place.

``--dry-run`` stops after counting and logs the request as a dry run. Output and the log hold
counts and keyed hashes, never the person's data.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dlt.common.versioned_state import compress_state, decompress_state, generate_state_version_hash
from dlt.extract.utils import digest_dedup_value

from ingestion import paths
from ingestion import warehouse as warehouse_db
from ingestion.pipelines import hash_key
from ingestion.suppression import CREATE_TABLE as CREATE_SUPPRESSIONS
from ingestion.suppression import QUALIFIED_TABLE as SUPPRESSIONS
from orchestration.bi_assets import BI_SNAPSHOT
from orchestration.constants import ERASURE_REBUILD_JOB
from orchestration.nightly import NightlyReport
from orchestration.person import (
    CUSTOMER_KEY,
    Identifier,
    Person,
    PersonNotFound,
    RowCount,
    _in,
    attach_bi_snapshot,
    identifier,
    match_person,
    owned_rows,
    resolve_person,
)
from orchestration.publish import PARQUET_LINK, PARQUET_VERSION_PREFIX, remove_old_versions, remove_unfinished

log = logging.getLogger(__name__)

ERASURE_LOG = "audit.erasure_log"
CREATE_ERASURE_LOG = f"""
create table if not exists {ERASURE_LOG} (
    request_id varchar not null,
    requested_at timestamp with time zone not null,
    finished_at timestamp with time zone,
    request_type varchar not null,
    dry_run boolean not null,
    subject_hashes varchar[] not null,
    identifiers integer not null,
    customer_keys integer not null,
    rows_removed json not null,
    phones_removed json not null,
    dlt_state_hashes_removed integer,
    local_files_removed integer,
    rebuild_run_id varchar,
    bi_snapshot_republished boolean,
    bi_snapshot_versions_removed integer,
    rows_left json,
    status varchar not null
)
"""
REBUILD_JOB = ERASURE_REBUILD_JOB
REQUEST_TAG = "shop360/erasure_request"
# Dagster runs in these states may be loading or building: an erasure waits for them
BUSY_RUN_STATUSES = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
LOCAL_PACKAGE_FOLDERS = ("load/loaded", "load/normalized", "load/new", "normalize/extracted")


class WarehouseBusy(RuntimeError):
    """Another process holds the warehouse (a running job), and waiting did not help."""


@dataclass
class Request:
    """What an erasure or access request names: its type and the identifiers given."""

    request_type: str  # email, shopify_customer_id, shopify_redact
    identifiers: list[Identifier]
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def subject_hashes(self, key: str) -> list[str]:
        return sorted(item.hashed(key) for item in self.identifiers)


def email_request(emails: list[str]) -> Request:
    return Request("email", [identifier("email", email) for email in emails])


def customer_request(customer_ids: list[str]) -> Request:
    try:
        ids = [str(int(value)) for value in customer_ids]
    except ValueError:
        raise ValueError("--shopify-customer-id: a Shopify customer id is a whole number") from None
    return Request("shopify_customer_id", [identifier("shopify_customer", value) for value in ids])


def redact_request(payload_file: Path) -> Request:
    """The identifiers of a Shopify ``customers/redact`` webhook payload: the customer's id, email
    and phone and the orders to redact; errors name the file and the field."""
    try:
        payload = json.loads(Path(payload_file).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{payload_file}: not a readable JSON document ({error})") from None
    customer = payload.get("customer") if isinstance(payload, dict) else None
    if not isinstance(customer, dict):
        raise ValueError(f"{payload_file}: no 'customer' object (a customers/redact payload has one)")
    found: list[Identifier] = []
    if customer.get("id") is not None:
        if not str(customer["id"]).isdigit():
            raise ValueError(f"{payload_file}: customer.id is not a Shopify id")
        found.append(identifier("shopify_customer", customer["id"]))
    for name, kind in (("email", "email"), ("phone", "phone")):
        if customer.get(name):
            try:
                found.append(identifier(kind, customer[name]))
            except ValueError:
                raise ValueError(f"{payload_file}: customer.{name} is not a valid {kind}") from None
    orders = payload.get("orders_to_redact") or []
    if not isinstance(orders, list) or not all(str(order).isdigit() for order in orders):
        raise ValueError(f"{payload_file}: orders_to_redact is not a list of Shopify order ids")
    found += [identifier("shopify_order", order) for order in orders]
    if not found:
        raise ValueError(f"{payload_file}: names no customer id, email, phone or order")
    return Request("shopify_redact", found)


def _is_lock_error(error: duckdb.Error) -> bool:
    return "lock" in str(error).lower()


@contextlib.contextmanager
def open_warehouse(read_only: bool = False, wait_seconds: float = 0) -> Iterator[duckdb.DuckDBPyConnection]:
    """The warehouse, retried for up to ``wait_seconds`` while another process holds it."""
    warehouse = paths.warehouse_path()
    if not warehouse.exists():
        raise FileNotFoundError(f"no warehouse at {warehouse}: run `shop360 run` first")
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            connection = warehouse_db.connect(warehouse, read_only=read_only)
            break
        except duckdb.IOException as error:
            if not _is_lock_error(error):
                raise
            if time.monotonic() >= deadline:
                raise WarehouseBusy(
                    f"the warehouse {warehouse} is in use by another process (a running load or dbt "
                    f"build?); waited {wait_seconds:.0f} s. Run again when it has finished, or pass "
                    "--wait SECONDS"
                ) from None
            time.sleep(1)
    try:
        yield connection
    finally:
        connection.close()


def wait_for_idle_runs(instance: dg.DagsterInstance, wait_seconds: float) -> None:
    """Wait until no run of the instance is in progress (a load started before the suppression list
    changed could still bring the person back); WarehouseBusy after ``wait_seconds``."""
    deadline = time.monotonic() + wait_seconds
    while busy := instance.get_runs(filters=dg.RunsFilter(statuses=BUSY_RUN_STATUSES)):
        if time.monotonic() >= deadline:
            names = ", ".join(sorted({f"{run.job_name} ({run.run_id[:8]})" for run in busy}))
            raise WarehouseBusy(
                f"Dagster runs are in progress: {names}; run again when they have finished, or pass "
                "--wait SECONDS"
            )
        time.sleep(2)


def ensure_audit_tables(connection: duckdb.DuckDBPyConnection, suppressions: bool = True) -> None:
    """The Python-owned audit tables (dbt never builds or drops them): the erasure log, and unless
    told otherwise (a dry run suppresses nobody) the suppression list."""
    connection.execute("create schema if not exists audit")
    connection.execute(CREATE_ERASURE_LOG)
    if suppressions:
        connection.execute(CREATE_SUPPRESSIONS)


@dataclass
class ErasureReport:
    """What an erasure (or its dry run) did: counts and hashes only."""

    request: Request
    dry_run: bool
    subject_hashes: list[str]
    identifiers: dict[str, int]
    customer_keys: int
    rows: dict[str, int]
    phones: dict[str, int]
    actions: dict[str, str]
    state_hashes_removed: int = 0
    local_files_removed: int = 0
    bi_republished: bool = False
    bi_versions_removed: int = 0
    suppressed: int = 0
    rebuild: NightlyReport | None = None
    rows_left: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.dry_run or (self.rebuild is not None and self.rebuild.success and not self.rows_left)

    def render(self) -> str:
        verb = "that would go" if self.dry_run else "removed"
        kinds = ", ".join(f"{kind} {count}" for kind, count in self.identifiers.items())
        subject = ", ".join(hash_[:24] + "…" for hash_ in self.subject_hashes)
        lines = [
            f"forget{' (dry run)' if self.dry_run else ''}: request {self.request.request_id} "
            f"({self.request.request_type}; subject {subject})",
            f"  person: {sum(self.identifiers.values())} identifiers ({kinds}), "
            f"{self.customer_keys} customer key(s)",
            f"  rows {verb}: {sum(self.rows.values()):,} in {len(self.rows)} tables",
        ]
        lines += [
            f"    {table:<58} {rows:>8,}  ({self.actions[table]})"
            for table, rows in sorted(self.rows.items())
        ]
        if self.phones:
            lines.append(f"  phones {verb} (on other people's rows):")
            lines += [f"    {table:<58} {rows:>8,}" for table, rows in sorted(self.phones.items())]
        if self.dry_run:
            lines.append("  nothing was changed (dry run)")
            return "\n".join(lines)
        lines.append(f"  suppression list: {self.suppressed} keyed hashes added (audit.erasure_suppressions)")
        lines.append(
            f"  dlt state: {self.state_hashes_removed} record digests removed; "
            f"{self.local_files_removed} local load files deleted"
        )
        if self.rebuild is not None:
            outcome = "succeeded" if self.rebuild.success else "FAILED"
            lines.append(
                f"  rebuild (Dagster job {REBUILD_JOB}, run {self.rebuild.run_id}): {outcome}, "
                f"{self.rebuild.checks_passed} checks passed, {len(self.rebuild.failed_checks)} failed"
            )
            republished = "republished" if self.bi_republished else "not republished (none published yet?)"
            lines.append(
                f"  BI snapshot: {republished}; {self.bi_versions_removed} older Parquet versions deleted"
            )
        if self.rows_left:
            lines.append("  rows still matching the person after the rebuild:")
            lines += [f"    {table:<58} {rows:>8,}" for table, rows in sorted(self.rows_left.items())]
        lines.append(f"  done in {self.seconds:.1f} s; see {ERASURE_LOG}")
        return "\n".join(lines)


def _record_ids(connection: duckdb.DuckDBPyConnection, counts: list[RowCount]) -> list[Any]:
    """The primary keys (``id``, as stored) of the person's rows in dlt's root tables: what dlt's
    incremental state may hold digests of."""
    ids: list[Any] = []
    for count in counts:
        match = count.match
        root_table = match.layer in ("raw", "dlt_staging") and match.root is None
        if count.owned and root_table and "id" in match.relation.column_types:
            rows = connection.execute(f'select distinct "id" from {match.relation.sql} where {match.owned}')
            ids += [value for (value,) in rows.fetchall() if value is not None]
    return ids


def record_digests(record_ids: list[Any]) -> set[str]:
    """dlt's dedup digests of the record ids (current and pre-1.29 forms), as in ``unique_hashes``."""
    return {digest_dedup_value(value, legacy) for value in record_ids for legacy in (False, True)}


def scrub_state(state: dict[str, Any], digests: set[str]) -> int:
    """Remove ``digests`` from every incremental cursor's ``unique_hashes`` in a dlt state; how many."""
    removed = 0
    for source in (state.get("sources") or {}).values():
        for resource in (source.get("resources") or {}).values():
            for cursor in (resource.get("incremental") or {}).values():
                hashes = cursor.get("unique_hashes") or []
                kept = [value for value in hashes if value not in digests]
                removed += len(hashes) - len(kept)
                if len(kept) != len(hashes):
                    cursor["unique_hashes"] = kept
    return removed


def scrub_pipeline_state(connection: duckdb.DuckDBPyConnection, digests: set[str]) -> int:
    """Scrub every ``_dlt_pipeline_state`` row of the warehouse (each version of each pipeline's
    state, compressed); the digests removed."""
    tables = connection.execute(
        "select schema_name from duckdb_tables() where table_name = '_dlt_pipeline_state' "
        "and database_name = current_database()"
    ).fetchall()
    removed = 0
    for (schema,) in tables:
        relation = f'"{schema}"."_dlt_pipeline_state"'
        for row_id, blob in connection.execute(f'select "_dlt_id", state from {relation}').fetchall():
            state = decompress_state(blob)
            if found := scrub_state(state, digests):
                state["_version_hash"] = generate_state_version_hash(state, exclude_attrs=["_local"])
                connection.execute(
                    f'update {relation} set state = ?, version_hash = ? where "_dlt_id" = ?',
                    [compress_state(state), state["_version_hash"], row_id],
                )
                removed += found
    return removed


def scrub_local_pipelines(digests: set[str], pipelines_dir: Path | None = None) -> int:
    """Delete dlt's local load packages and traces (copies of loaded records) and scrub the local
    state files; the files deleted. (dagster-dlt drops this local state before each run anyway.)"""
    pipelines_dir = pipelines_dir or paths.data_dir() / "dlt_pipelines"
    deleted = 0
    for pipeline_dir in sorted(pipelines_dir.glob("*")) if pipelines_dir.exists() else []:
        for folder in LOCAL_PACKAGE_FOLDERS:
            for package in sorted((pipeline_dir / folder).glob("*")):
                deleted += sum(1 for path in package.rglob("*") if path.is_file()) if package.is_dir() else 1
                shutil.rmtree(package) if package.is_dir() else package.unlink()
        trace = pipeline_dir / "trace.pickle"
        if trace.exists():
            trace.unlink()
            deleted += 1
        state_file = pipeline_dir / "state.json"
        if state_file.exists():
            from dlt.common.versioned_state import json_decode_state, json_encode_state

            state = json_decode_state(state_file.read_text())
            if scrub_state(state, digests):
                state_file.write_text(json_encode_state(state))
    return deleted


def delete_person_rows(connection: duckdb.DuckDBPyConnection, counts: list[RowCount]) -> tuple[dict, dict]:
    """Delete the person's rows from every table that is not rebuilt (nested tables first) and their
    phone from other people's rows there; (rows deleted, phones removed) per table."""
    deleted, phones = {}, {}
    for count in counts:
        match = count.match
        if match.action != "delete":
            continue
        if count.mentions:
            for column in match.phones:
                connection.execute(
                    f'update {match.relation.sql} set "{column}" = null '
                    f"where not ({match.owned}) and {match.phone_named(column)}"
                )
            phones[match.relation.label] = count.mentions
        if count.owned:
            removed = connection.execute(f"delete from {match.relation.sql} where {match.owned}").fetchone()[
                0
            ]
            deleted[match.relation.label] = removed
    return deleted, phones


def clear_key_mentions(connection: duckdb.DuckDBPyConnection) -> None:
    """Other people's key history that names the person's customer key as a previous key loses it."""
    exists = connection.execute(
        "select count(*) > 0 from duckdb_tables() where schema_name = 'intermediate' "
        "and table_name = 'int_identity__person_keys' and database_name = current_database()"
    ).fetchone()[0]
    if exists:
        connection.execute(
            f"""
            update intermediate.int_identity__person_keys
            set previous_customer_key = null
            where {_in("previous_customer_key", CUSTOMER_KEY)}
            """
        )


def suppress(connection: duckdb.DuckDBPyConnection, person: Person, key: str, request_id: str) -> int:
    """Add every identifier of the person to the suppression list (keyed hashes); how many were new."""
    before = connection.execute(f"select count(*) from {SUPPRESSIONS}").fetchone()[0]
    connection.executemany(
        f"insert or ignore into {SUPPRESSIONS} values (?, ?, ?, now())",
        [(item.type, item.hashed(key).split(":", 1)[1], request_id) for item in person.all_identifiers()],
    )
    return connection.execute(f"select count(*) from {SUPPRESSIONS}").fetchone()[0] - before


def write_log(connection: duckdb.DuckDBPyConnection, report: ErasureReport, status: str) -> None:
    """Insert the request's row of the erasure log (counts and keyed hashes only)."""
    connection.execute(
        f"""
        insert into {ERASURE_LOG} (
            request_id, requested_at, finished_at, request_type, dry_run, subject_hashes, identifiers,
            customer_keys, rows_removed, phones_removed, dlt_state_hashes_removed, status
        )
        values (?, now(), case when ? then now() end, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
        [
            report.request.request_id,
            report.dry_run,
            report.request.request_type,
            report.dry_run,
            report.subject_hashes,
            sum(report.identifiers.values()),
            report.customer_keys,
            json.dumps(report.rows, sort_keys=True),
            json.dumps(report.phones, sort_keys=True),
            report.state_hashes_removed,
            status,
        ],
    )


def finish_log(connection: duckdb.DuckDBPyConnection, report: ErasureReport) -> None:
    """Record the rebuild and what was left in the request's log row."""
    if report.rebuild is None or not report.rebuild.success:
        status = "rebuild_failed"
    else:
        status = "rows_left" if report.rows_left else "completed"
    connection.execute(
        f"""
        update {ERASURE_LOG}
        set finished_at = now(), local_files_removed = ?, rebuild_run_id = ?, bi_snapshot_republished = ?,
            bi_snapshot_versions_removed = ?, rows_left = ?, status = ?
        where request_id = ?
        """,
        [
            report.local_files_removed,
            report.rebuild.run_id if report.rebuild else None,
            report.bi_republished,
            report.bi_versions_removed,
            json.dumps(report.rows_left, sort_keys=True),
            status,
            report.request.request_id,
        ],
    )


def compact_warehouse(connection: duckdb.DuckDBPyConnection) -> None:
    """Rewrite the warehouse into a fresh file and rename it into place, so deleted rows and the
    blocks of replaced tables are gone from the disk, not only unreachable.

    The old file stays open (and locked) until the new one is in place, so no other process can
    write to the old one in between.
    """
    warehouse = paths.warehouse_path()
    fresh = warehouse.with_name(warehouse.name + ".compacting")
    fresh.unlink(missing_ok=True)
    database = connection.execute("select current_database()").fetchone()[0]
    connection.execute("checkpoint")
    connection.execute(f"attach '{fresh}' as compacted")
    connection.execute(f'copy from database "{database}" to compacted')
    connection.execute("detach compacted")
    os.replace(fresh, warehouse)


def _report(
    request: Request, key: str, person: Person, counts: list[RowCount], dry_run: bool
) -> ErasureReport:
    return ErasureReport(
        request=request,
        dry_run=dry_run,
        subject_hashes=request.subject_hashes(key),
        identifiers=person.size,
        customer_keys=len(person.customer_keys),
        rows={count.match.relation.label: count.owned for count in counts if count.owned},
        phones={count.match.relation.label: count.mentions for count in counts if count.mentions},
        actions={count.match.relation.label: count.match.action for count in counts},
    )


def not_found(connection: duckdb.DuckDBPyConnection, request: Request, key: str) -> PersonNotFound:
    """The error for a request no row matches, saying whether its identifiers were erased before."""
    hashes = [item.hashed(key).split(":", 1)[1] for item in request.identifiers]
    erased = 0
    if connection.execute(
        "select count(*) > 0 from duckdb_tables() where schema_name = 'audit' and table_name = ?",
        [SUPPRESSIONS.split(".")[1]],
    ).fetchone()[0]:
        erased = connection.execute(
            f"select count(*) from {SUPPRESSIONS} where list_contains(?, identifier_hash)", [hashes]
        ).fetchone()[0]
    named = ", ".join(request.subject_hashes(key))
    already = f"; {erased} of them are on the suppression list (erased before)" if erased else ""
    return PersonNotFound(f"no row of the warehouse names the identifiers given ({named}){already}")


def forget(
    request: Request,
    dry_run: bool = False,
    instance: dg.DagsterInstance | None = None,
    wait_seconds: float = 0,
    compact: bool = True,
    log_level: str = "WARNING",
    on_progress: Callable[[str], None] = log.info,
) -> ErasureReport:
    """Erase the person ``request`` names from every layer (see the module docstring)."""
    started = time.perf_counter()
    key = hash_key()
    with contextlib.ExitStack() as stack:
        instance = instance or stack.enter_context(dg.DagsterInstance.get())
        if not dry_run:
            wait_for_idle_runs(instance, wait_seconds)
        with open_warehouse(wait_seconds=wait_seconds) as connection:
            with attach_bi_snapshot(connection) as bi_catalog:
                person, matches = resolve_person(connection, request.identifiers, key, bi_catalog)
                counts = owned_rows(connection, matches)
            if not any(count.owned for count in counts):
                raise not_found(connection, request, key)
            report = _report(request, key, person, counts, dry_run)
            ensure_audit_tables(connection, suppressions=not dry_run)
            if dry_run:
                write_log(connection, report, "dry_run")
                report.seconds = time.perf_counter() - started
                return report
            on_progress("deleting the person's rows and recording the suppression entry")
            digests = record_digests(_record_ids(connection, counts))
            connection.begin()
            delete_person_rows(connection, counts)
            clear_key_mentions(connection)
            report.state_hashes_removed = scrub_pipeline_state(connection, digests)
            report.suppressed = suppress(connection, person, key, request.request_id)
            write_log(connection, report, "rebuilding")
            connection.commit()
        report.local_files_removed = scrub_local_pipelines(digests)
        on_progress(f"rebuilding the models through Dagster (job {REBUILD_JOB})")
        report.rebuild = rebuild(request.request_id, instance, log_level)
        report.bi_republished = BI_SNAPSHOT.to_user_string() in report.rebuild.assets_materialized
        if report.bi_republished:
            report.bi_versions_removed = remove_old_snapshots()
        with open_warehouse(wait_seconds=max(wait_seconds, 60)) as connection:
            with attach_bi_snapshot(connection) as bi_catalog:
                left = owned_rows(connection, match_person(connection, person, key, bi_catalog))
            report.rows_left = {
                count.match.relation.label: count.owned + count.mentions
                for count in left
                if count.owned + count.mentions
            }
            finish_log(connection, report)
            if compact:
                on_progress("compacting the warehouse file")
                compact_warehouse(connection)
    report.seconds = time.perf_counter() - started
    return report


def remove_old_snapshots() -> int:
    """Delete every BI snapshot Parquet version but the current one (publishing keeps the one before
    for readers still inside it, but it holds the erased person) and any unfinished publish; how
    many versions went. The old DuckDB snapshot file was replaced by the republish itself."""
    bi_dir = paths.bi_dir()
    link = bi_dir / PARQUET_LINK
    if not link.is_symlink():
        return 0
    current = os.readlink(link)
    old = [
        path for path in bi_dir.glob(f"{PARQUET_VERSION_PREFIX}*") if path.is_dir() and path.name != current
    ]
    remove_old_versions(bi_dir, keep={current})
    remove_unfinished(bi_dir)
    return len(old)


def rebuild(request_id: str, instance: dg.DagsterInstance, log_level: str) -> NightlyReport:
    """Run the ``erasure_rebuild`` job: every dbt model and what is below it, with their checks.
    Its only tag is the request id (no personal data in run config or tags)."""
    from orchestration.nightly import run_job

    return run_job(REBUILD_JOB, lambda _instance: {REQUEST_TAG: request_id}, instance, log_level)
