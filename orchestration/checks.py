"""Asset checks written in Python (dbt's tests arrive as checks through dagster-dbt)."""

import dagster as dg
import duckdb

from ingestion import paths

QUARANTINE = dg.AssetKey(["audit", "quarantined_records"])


@dg.asset_check(
    asset=QUARANTINE,
    name="no_quarantined_records",
    description="Warns (without blocking) when source records were quarantined instead of loaded.",
)
def quarantined_records_check() -> dg.AssetCheckResult:
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as connection:
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
        passed=total == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "quarantined": dg.MetadataValue.int(total),
            "by_problem": dg.MetadataValue.md(
                "\n".join(f"- {problem}: {count}" for problem, count in by_problem) or "none"
            ),
        },
    )
