"""Incremental cursor values: API timestamps parsed to aware datetimes so dlt compares instants.

Shopify writes timestamps with the shop's UTC offset, which changes at daylight saving time, so
comparing the strings would order some records wrongly; parsed datetimes compare correctly.
"""

from __future__ import annotations

from datetime import datetime


def parse_cursor(record: dict, field: str, label: str) -> datetime:
    """``record[field]`` as an aware datetime, or a ValueError naming the record and the problem."""
    value = record.get(field)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{label} {record.get('id')!r}: {field} {value!r} is not an ISO 8601 timestamp"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError(f"{label} {record.get('id')!r}: {field} {value!r} has no UTC offset")
    return parsed
