"""Asset checks written in Python; dbt's tests arrive as asset checks through dagster-dbt.

Raw-table checks run right after a source loads and *block*: when one fails with severity ERROR,
nothing downstream (the whole ``dbt build``) runs on the bad data. Each result carries its numbers
as metadata, so the asset page says what was found, not only that something was.
"""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import duckdb

from ingestion import paths, settings
from ingestion import warehouse as warehouse_db
from ingestion.pipelines import describe_source
from orchestration import settings as control
from orchestration.constants import WAREHOUSE_WRITER_POOL
from orchestration.raw_assets import GA4_EVENTS

QUARANTINE = dg.AssetKey(["audit", "quarantined_records"])
FCT_ORDERS = dg.AssetKey(["marts", "fct_orders"])
CUSTOMER_360 = dg.AssetKey(["marts", "customer_360"])
# The raw tables whose email column the marts link people by
EMAIL_TABLES = {"shopify": "customers", "klaviyo": "profiles"}
# The same rule as staging's macro is_valid_email (transform/macros/casts.sql)
VALID_EMAIL = r"[^@\s]+@[^@\s]+\.[^@\s]+"
SAMPLE_SIZE = 5


@dataclass(frozen=True)
class RawTable:
    """A top-level raw table of an API source and its primary key, from the dlt resource's hints."""

    source: str
    table: str
    primary_key: tuple[str, ...]

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey([settings.DATASETS[self.source], self.table])

    @property
    def relation(self) -> str:
        return f'"{settings.DATASETS[self.source]}"."{self.table}"'


def raw_tables(source: str) -> list[RawTable]:
    """The tables a source loads, with the primary keys its resources declare."""
    tables = []
    for resource in describe_source(source).selected_resources.values():
        columns = resource.compute_table_schema().get("columns", {})
        primary_key = tuple(name for name, column in columns.items() if column.get("primary_key"))
        tables.append(RawTable(source, resource.name, primary_key))
    return tables


@contextlib.contextmanager
def warehouse() -> Iterator[duckdb.DuckDBPyConnection]:
    """The warehouse, read-only. Checks run in the writers' pool, so no writer holds the file."""
    with warehouse_db.connect(paths.warehouse_path(), read_only=True) as connection:
        yield connection


def _markdown_rows(rows: list[tuple]) -> dg.MetadataValue:
    return dg.MetadataValue.md("\n".join("- " + ", ".join(map(str, row)) for row in rows) or "none")


def primary_key_unique(connection: duckdb.DuckDBPyConnection, table: RawTable) -> dg.AssetCheckResult:
    """No two rows of the raw table share a primary key (dlt merges on it; a duplicate is corruption)."""
    key = ", ".join(f'"{column}"' for column in table.primary_key)
    duplicates = connection.execute(
        f"select {key}, count(*) as rows from {table.relation} group by all having count(*) > 1 "
        f"order by rows desc, {key}"
    ).fetchall()
    return dg.AssetCheckResult(
        asset_key=table.key,
        check_name="primary_key_unique",
        passed=not duplicates,
        metadata={
            "primary_key": ", ".join(table.primary_key),
            "duplicate_keys": dg.MetadataValue.int(len(duplicates)),
            "duplicate_rows": dg.MetadataValue.int(sum(row[-1] - 1 for row in duplicates)),
            "sample (key, rows)": _markdown_rows(duplicates[:SAMPLE_SIZE]),
        },
    )


def previous_row_count(instance: dg.DagsterInstance, key: dg.AssetKey, run_id: str) -> int | None:
    """The row count recorded by the latest materialisation of ``key`` before run ``run_id``."""
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=5).records
    for record in records:
        if record.run_id == run_id:
            continue
        value = record.asset_materialization.metadata.get("dagster/row_count")
        return None if value is None else value.value
    return None


def row_count_change(rows: int, previous: int | None, table: RawTable) -> dg.AssetCheckResult:
    """Rows now against the previous run's: a shrink beyond the bound fails (ERROR), a jump warns."""
    change = None if not previous else (rows - previous) / previous
    max_drop, max_growth = control.row_count_max_drop(), control.row_count_max_growth()
    passed, severity = True, dg.AssetCheckSeverity.ERROR
    if change is not None and change < -max_drop:
        passed = False
    elif change is not None and change > max_growth:
        passed, severity = False, dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(
        asset_key=table.key,
        check_name="row_count_change",
        passed=passed,
        severity=severity,
        metadata={
            "rows": dg.MetadataValue.int(rows),
            "previous_rows": dg.MetadataValue.int(previous) if previous is not None else "no earlier run",
            "change": dg.MetadataValue.float(round(change, 4)) if change is not None else "n/a",
            "max_drop": dg.MetadataValue.float(max_drop),
            "max_growth": dg.MetadataValue.float(max_growth),
        },
    )


def invalid_email_share(connection: duckdb.DuckDBPyConnection, table: RawTable) -> dg.AssetCheckResult:
    """Share of non-empty emails that are not addresses (staging quarantines those records)."""
    emails, invalid = connection.execute(
        f"""
        select count(*), count(*) filter (where not regexp_full_match(email, '{VALID_EMAIL}'))
        from (select lower(trim(email)) as email from {table.relation}) where email <> ''
        """
    ).fetchone()
    share = invalid / emails if emails else 0.0
    bound = control.invalid_email_max_share()
    return dg.AssetCheckResult(
        asset_key=table.key,
        check_name="invalid_email_share",
        passed=share <= bound,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "emails": dg.MetadataValue.int(emails),
            "invalid": dg.MetadataValue.int(invalid),
            "share": dg.MetadataValue.float(round(share, 4)),
            "max_share": dg.MetadataValue.float(bound),
        },
    )


def build_raw_checks(source: str) -> dg.AssetChecksDefinition:
    """One step checking every raw table of ``source``: keys unique, row counts, emails."""
    tables = raw_tables(source)
    specs = []
    for table in tables:
        if table.primary_key:
            specs.append(
                dg.AssetCheckSpec(
                    "primary_key_unique",
                    asset=table.key,
                    blocking=True,
                    description=f"No two rows share the primary key ({', '.join(table.primary_key)}).",
                )
            )
        specs.append(
            dg.AssetCheckSpec(
                "row_count_change",
                asset=table.key,
                blocking=True,
                description="Rows against the previous run: shrinking beyond SHOP360_ROW_COUNT_MAX_DROP "
                "fails, growing beyond SHOP360_ROW_COUNT_MAX_GROWTH warns.",
            )
        )
        if EMAIL_TABLES.get(source) == table.table:
            specs.append(
                dg.AssetCheckSpec(
                    "invalid_email_share",
                    asset=table.key,
                    description="Warns beyond SHOP360_INVALID_EMAIL_MAX_SHARE of invalid emails.",
                )
            )
    by_key = {table.key: table for table in tables}

    @dg.multi_asset_check(
        specs=specs, name=f"{source}_raw_checks", can_subset=True, pool=WAREHOUSE_WRITER_POOL
    )
    def raw_checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        with warehouse() as connection:
            for check_key in context.selected_asset_check_keys:
                table = by_key[check_key.asset_key]
                if check_key.name == "primary_key_unique":
                    yield primary_key_unique(connection, table)
                elif check_key.name == "invalid_email_share":
                    yield invalid_email_share(connection, table)
                else:
                    rows = connection.execute(f"select count(*) from {table.relation}").fetchone()[0]
                    previous = previous_row_count(
                        context.instance, table.key, context.op_execution_context.run_id
                    )
                    yield row_count_change(rows, previous, table)

    return raw_checks


# Net revenue of each raw Shopify order, recomputed from the raw tables alone, with the exclusions the
# README documents: test orders, and orders staging quarantined (audit.quarantined_records).
RAW_ORDER_NET_REVENUE = """
with orders as (
    select
        try_cast(id as bigint) as order_id,
        coalesce(test, false) as is_test,
        try_cast(cancelled_at as timestamptz) is not null as is_cancelled,
        try_cast(total_price as decimal(18, 2)) as total_price
    from raw_shopify.orders
),
refunded as (
    select refunds.order_id, sum(try_cast(transactions.amount as decimal(18, 2))) as refunded
    from raw_shopify.orders__refunds__transactions as transactions
    inner join raw_shopify.orders__refunds as refunds on transactions._dlt_parent_id = refunds._dlt_id
    where transactions.kind = 'refund' and transactions.status = 'success'
    group by all
),
quarantined as (
    select record_id from audit.quarantined_records
    where source_system = 'shopify' and source_table = 'orders'
)
select
    orders.order_id,
    case when is_cancelled then 0 else total_price - coalesce(refunded.refunded, 0) end as net_revenue
from orders
left join refunded using (order_id)
where not is_test and orders.order_id::varchar not in (select record_id from quarantined)
"""


def reconciliation(connection: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """marts.fct_orders holds exactly the raw Shopify orders after the exclusions, with their net revenue."""
    raw_orders, raw_revenue, mart_orders, mart_revenue = connection.execute(
        f"""
        select
            (select count(*) from ({RAW_ORDER_NET_REVENUE})),
            (select coalesce(sum(net_revenue), 0) from ({RAW_ORDER_NET_REVENUE})),
            (select count(*) from marts.fct_orders),
            (select coalesce(sum(net_revenue), 0) from marts.fct_orders)
        """
    ).fetchone()
    mismatches = connection.execute(
        f"""
        select coalesce(raw.order_id, mart.order_id) as order_id, raw.net_revenue, mart.net_revenue
        from ({RAW_ORDER_NET_REVENUE}) as raw
        full join marts.fct_orders as mart on raw.order_id = mart.order_id
        where raw.net_revenue is distinct from mart.net_revenue
        order by order_id
        """
    ).fetchall()
    return dg.AssetCheckResult(
        asset_key=FCT_ORDERS,
        check_name="reconciles_with_shopify",
        passed=not mismatches,
        metadata={
            "raw_orders": dg.MetadataValue.int(raw_orders),
            "mart_orders": dg.MetadataValue.int(mart_orders),
            "raw_net_revenue": dg.MetadataValue.float(float(raw_revenue)),
            "mart_net_revenue": dg.MetadataValue.float(float(mart_revenue)),
            "orders_differing": dg.MetadataValue.int(len(mismatches)),
            "sample (order id, raw, mart)": _markdown_rows(mismatches[:SAMPLE_SIZE]),
        },
    )


def ga4_purchases_match_web_orders(connection: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """GA4's purchases against Shopify's online orders on the days both cover, within a tolerance."""
    first_day, last_day, purchases = connection.execute(
        """
        select min(strptime(event_date, '%Y%m%d'))::date, max(strptime(event_date, '%Y%m%d'))::date,
            count(distinct ecommerce__transaction_id) filter (where event_name = 'purchase')
        from raw_ga4.events
        """
    ).fetchone()
    orders = connection.execute(
        """
        select count(*) from marts.fct_orders
        where sales_channel = 'online' and order_date between ? and ?
        """,
        [first_day, last_day],
    ).fetchone()[0]
    difference = (purchases - orders) / orders if orders else 0.0
    tolerance = control.ga4_purchase_tolerance()
    return dg.AssetCheckResult(
        asset_key=FCT_ORDERS,
        check_name="ga4_purchases_match_web_orders",
        passed=abs(difference) <= tolerance,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "days": f"{first_day} to {last_day}",
            "ga4_purchases": dg.MetadataValue.int(purchases),
            "shopify_web_orders": dg.MetadataValue.int(orders),
            "difference": dg.MetadataValue.float(round(difference, 4)),
            "tolerance": dg.MetadataValue.float(tolerance),
        },
    )


def identity_over_merge(connection: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """How many identifiers the over-merge guard cut loose; a surge means a shared identifier appeared."""
    cut, identifiers, people = connection.execute(
        """
        select
            (select count(*) from intermediate.int_identity__cut_identifiers),
            (select count(*) from intermediate.int_identity__identifiers),
            (select count(*) from marts.customer_360)
        """
    ).fetchone()
    share = cut / identifiers if identifiers else 0.0
    bound = control.identity_max_cut_share()
    return dg.AssetCheckResult(
        asset_key=CUSTOMER_360,
        check_name="identity_over_merge",
        passed=share <= bound,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "identifiers_cut": dg.MetadataValue.int(cut),
            "identifiers": dg.MetadataValue.int(identifiers),
            "people": dg.MetadataValue.int(people),
            "cut_share": dg.MetadataValue.float(round(share, 4)),
            "max_cut_share": dg.MetadataValue.float(bound),
        },
    )


def quarantined_records(connection: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """Warns (without blocking) when source records were quarantined instead of loaded."""
    by_problem = connection.execute(
        """
        select source_system || '.' || source_table || ': ' || problem as problem, count(*)
        from audit.quarantined_records
        group by all
        order by 2 desc, 1
        """
    ).fetchall()
    total = sum(count for _, count in by_problem)
    return dg.AssetCheckResult(
        asset_key=QUARANTINE,
        check_name="no_quarantined_records",
        passed=total == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "quarantined": dg.MetadataValue.int(total),
            "by_problem": dg.MetadataValue.md(
                "\n".join(f"- {problem}: {count}" for problem, count in by_problem) or "none"
            ),
        },
    )


MART_CHECKS = {
    dg.AssetCheckKey(FCT_ORDERS, "reconciles_with_shopify"): (
        reconciliation,
        "Order count and net revenue equal the raw Shopify orders (test and quarantined orders excluded).",
        True,
    ),
    dg.AssetCheckKey(FCT_ORDERS, "ga4_purchases_match_web_orders"): (
        ga4_purchases_match_web_orders,
        "GA4 purchases within SHOP360_GA4_PURCHASE_TOLERANCE of Shopify's online orders.",
        False,
    ),
    dg.AssetCheckKey(CUSTOMER_360, "identity_over_merge"): (
        identity_over_merge,
        "Warns when the over-merge guard cut more than SHOP360_IDENTITY_MAX_CUT_SHARE of the identifiers.",
        False,
    ),
    dg.AssetCheckKey(QUARANTINE, "no_quarantined_records"): (
        quarantined_records,
        "Warns (without blocking) when source records were quarantined instead of loaded.",
        False,
    ),
}


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(key.name, asset=key.asset_key, description=description, blocking=blocking)
        for key, (_, description, blocking) in MART_CHECKS.items()
    ],
    name="mart_checks",
    can_subset=True,
    pool=WAREHOUSE_WRITER_POOL,
)
def mart_checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
    with warehouse() as connection:
        for check_key in context.selected_asset_check_keys:
            yield MART_CHECKS[check_key][0](connection)


# GA4's freshness policy is not partition-aware: this check wants yesterday's export day loaded by the
# deadline (a re-loaded old day does not make the asset fresh). The freshness sensor runs it.
ga4_partition_freshness = dg.build_time_partition_freshness_checks(
    assets=[GA4_EVENTS], deadline_cron=control.GA4_DEADLINE_CRON, timezone=control.TIMEZONE
)

raw_checks = [build_raw_checks(source) for source in ("shopify", "klaviyo")]
python_checks = [*raw_checks, mart_checks]
