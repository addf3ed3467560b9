"""GA4 retention: raw events older than 14 months (the world's today 2026-06-01: export days before
2025-04-01) are deleted by the nightly run and never loaded, not even from an old export file."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.cli import main
from orchestration.nightly import run_nightly
from orchestration.partitions import nightly_days
from orchestration.retention import months_before, retention_cutoff
from tests.conftest import own_world

GA4_EVENTS = dg.AssetKey(["raw_ga4", "events"])


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from own_world(tmp_path_factory.mktemp("retention"))


def _events(warehouse: Path, day: str) -> int:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.execute(
            "select count(*) from raw_ga4.events where event_date = ?", [day]
        ).fetchone()[0]


def test_months_before_keeps_the_day_or_the_month_end() -> None:
    assert months_before(date(2026, 6, 1), 14) == date(2025, 4, 1)
    assert months_before(date(2026, 3, 31), 1) == date(2026, 2, 28)
    assert months_before(date(2024, 3, 31), 1) == date(2024, 2, 29)
    assert months_before(date(2026, 1, 15), 13) == date(2024, 12, 15)


def test_old_export_days_are_neither_loaded_nor_kept(directory: Path) -> None:
    assert retention_cutoff() == date(2025, 4, 1)
    # an export file of a day long gone (the bucket still holds it) is not among tonight's days
    ga4 = directory / "sandbox" / "ga4"
    shutil.copy(ga4 / "events_20260502.json.gz", ga4 / "events_20250115.json.gz")
    assert nightly_days() == ("2026-05-02", "2026-05-31")

    with dg.DagsterInstance.ephemeral() as instance:
        first = run_nightly(instance)
        assert first.success, first.render()
        warehouse = first.warehouse
        assert _events(warehouse, "20250115") == 0
        # events of old days already in the warehouse (loaded when they were young) expire tonight
        with duckdb.connect(str(warehouse)) as connection:
            for old_day in ("20250331", "20250401"):
                connection.execute(
                    "insert into raw_ga4.events "
                    "select * replace (? as event_date) from raw_ga4.events where event_date = '20260502'",
                    [old_day],
                )
        planted = _events(warehouse, "20250331")
        assert planted > 0 and _events(warehouse, "20250401") == planted

        second = run_nightly(instance)
        assert second.success, second.render()
        assert _events(warehouse, "20250331") == 0  # before the cutoff: deleted
        assert _events(warehouse, "20250401") == planted  # the cutoff day itself is kept
        record = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=GA4_EVENTS), limit=1)
        metadata = record.records[0].asset_materialization.metadata
        assert metadata["rows_expired"].value == planted
        assert metadata["retained_from"].value == "2025-04-01"
        with duckdb.connect(str(warehouse), read_only=True) as connection:
            oldest = connection.execute("select min(event_date) from raw_ga4.events").fetchone()[0]
        assert oldest == "20250401"


def test_a_backfill_of_days_past_retention_is_refused(directory: Path) -> None:
    with pytest.raises(SystemExit) as refused:
        main(["backfill-ga4", "--from", "2025-03-30", "--to", "2025-04-02"])
    assert str(refused.value) == (
        "--from 2025-03-30 is older than the GA4 retention period (14 months, SHOP360_GA4_RETENTION_MONTHS): "
        "events before 2025-04-01 are deleted by every run"
    )
