"""Data minimisation helpers: drop personal fields no mart uses before records leave the extractor."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def without(record: dict[str, Any] | None, fields: Iterable[str]) -> dict[str, Any] | None:
    """A copy of ``record`` without ``fields`` (``None`` stays ``None``)."""
    if record is None:
        return None
    dropped = set(fields)
    return {key: value for key, value in record.items() if key not in dropped}
