"""Retention of raw GA4 events: export days older than ``SHOP360_GA4_RETENTION_MONTHS`` (default 14,
GA4's own longest retention) are deleted from the warehouse by every run that loads GA4, and never
loaded again. Everything built from them (sessions, funnel, web behaviour) is rebuilt from raw by
the same run, so it forgets those days too.

"Today" is the shop's today, or the sandbox world's last day (as the marts' as-of date is).
"""

from __future__ import annotations

import calendar
import json
import os
from datetime import date, datetime
from zoneinfo import ZoneInfo

import duckdb

from ingestion import paths, pipelines
from orchestration import settings as control

DEFAULT_RETENTION_MONTHS = 14


def retention_months() -> int:
    """How many months of GA4 events the warehouse keeps."""
    value = os.environ.get("SHOP360_GA4_RETENTION_MONTHS") or str(DEFAULT_RETENTION_MONTHS)
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"SHOP360_GA4_RETENTION_MONTHS must be a whole number of months ≥ 1, not {value!r}")
    return int(value)


def shop_today() -> date:
    """Today in the shop's timezone; against the sandbox, the world's last day."""
    meta_file = paths.sandbox_dir() / "world" / "meta.json"
    if pipelines.source_mode() == "sandbox" and meta_file.exists():
        return date.fromisoformat(json.loads(meta_file.read_text())["as_of"])
    return datetime.now(ZoneInfo(control.TIMEZONE)).date()


def months_before(day: date, months: int) -> date:
    """The same day of the month ``months`` earlier (that month's last day when it is shorter)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def retention_cutoff() -> date:
    """The oldest export day kept: today minus the retention period."""
    return months_before(shop_today(), retention_months())


def expire_ga4_events(connection: duckdb.DuckDBPyConnection, cutoff: date) -> int:
    """Delete raw GA4 events of export days before ``cutoff``; how many were deleted."""
    (expired,) = connection.execute(
        "delete from raw_ga4.events where event_date < ?", [cutoff.strftime("%Y%m%d")]
    ).fetchone()
    return expired
