"""Which GA4 export days the warehouse counts as loaded, which decides a night's partitions."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from orchestration.partitions import loaded_days


def test_days_an_older_shop360_loaded_with_nested_fields_do_not_count_as_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upgraded warehouse still holds rows with the export's nested fields as JSON: their days are
    loaded again (and replaced), while a day already reloaded in the flat layout counts."""
    monkeypatch.setenv("SHOP360_DATA_DIR", str(tmp_path))
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as connection:
        connection.execute("create schema raw_ga4")
        connection.execute("create table raw_ga4.events (event_date varchar, geo__country varchar)")
        connection.execute("insert into raw_ga4.events values ('20260501', 'DE')")
    assert loaded_days() == {"2026-05-01"}

    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as connection:
        connection.execute("alter table raw_ga4.events add column event_params json")
        connection.execute(
            """insert into raw_ga4.events values
                ('20260502', null, '[{"key": "ga_session_id", "value": {"int_value": 1}}]'),
                ('20260502', null, '[]')"""
        )
    assert loaded_days() == {"2026-05-01"}
