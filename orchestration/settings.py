"""The control room's settings: environment variables with defaults (the README lists them).

Schedule, timezone and the GA4 partitions are read when the definitions load; check thresholds and
the alert webhook when a check or sensor runs, so a change needs no restart of the code location.
"""

from __future__ import annotations

import os
from datetime import timedelta

from ingestion.secrets import register_secret


def _setting(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _share(name: str, default: str) -> float:
    value = float(_setting(name, default))
    if not value >= 0:
        raise ValueError(f"{name} must be a non-negative number, not {value}")
    return value


# The shop's timezone: the nightly schedule, GA4's daily partitions and its freshness deadline use it.
TIMEZONE = _setting("SHOP360_TIMEZONE", "Europe/Oslo")
NIGHTLY_CRON = _setting("SHOP360_NIGHTLY_CRON", "0 2 * * *")
# The first GA4 export day Dagster knows as a partition; older files are never loaded.
GA4_START_DATE = _setting("SHOP360_GA4_START_DATE", "2024-01-01")

# How fresh each source must be (the export of GA4's yesterday lands late in the morning).
API_SOURCE_MAX_AGE = timedelta(hours=float(_setting("SHOP360_API_SOURCE_MAX_AGE_HOURS", "26")))
GA4_DEADLINE_CRON = _setting("SHOP360_GA4_DEADLINE_CRON", "0 9 * * *")


def alert_webhook_url() -> str | None:
    """A Slack-compatible incoming webhook for alerts; none: alerts are only logged.

    Its URL authorises posting, so it is a secret: masked in every log from here on."""
    url = os.environ.get("SHOP360_ALERT_WEBHOOK_URL") or None
    register_secret(url)
    return url


def row_count_max_drop() -> float:
    """A raw table may shrink by at most this share between runs (merge-loaded tables never should)."""
    return _share("SHOP360_ROW_COUNT_MAX_DROP", "0.1")


def row_count_max_growth() -> float:
    """Growth beyond this share between runs warns (a doubled load, a source replaying history)."""
    return _share("SHOP360_ROW_COUNT_MAX_GROWTH", "1.0")


def invalid_email_max_share() -> float:
    """Share of a source's non-empty emails that may be invalid before the check warns."""
    return _share("SHOP360_INVALID_EMAIL_MAX_SHARE", "0.05")


def identity_max_cut_share() -> float:
    """Share of identifiers the over-merge guard may cut before the check warns."""
    return _share("SHOP360_IDENTITY_MAX_CUT_SHARE", "0.02")


def ga4_purchase_tolerance() -> float:
    """How far GA4's purchases may be from Shopify's web orders, as a share of the orders
    (consent banners and ad blockers hide some purchases from GA4)."""
    return _share("SHOP360_GA4_PURCHASE_TOLERANCE", "0.2")
