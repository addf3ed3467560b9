"""The suppression list: keyed hashes of the identifiers of erased people, applied at ingestion.

``shop360 forget`` records every identifier of an erased person in ``audit.erasure_suppressions``
as its keyed hash (``ingestion.pii.keyed_hash`` of the normalised value, typed like identity
resolution's nodes). The sources read the list when a run starts and keep that person's records
out of the warehouse:

- a record is **dropped** when it is the person's: its own id, its customer / profile id, its email
  (Shopify customers, orders, checkouts; Klaviyo profiles and events), or for GA4
  every event of a cookie that is suppressed, logs in as a suppressed customer or buys a
  suppressed order (in the same export file);
- a record that only **mentions** a suppressed phone keeps everything but that phone (another
  person's order typed with the erased person's phone stays that other person's order).

What was dropped is counted per table (``counts``), never logged with its values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ingestion import paths
from ingestion import warehouse as warehouse_db
from ingestion.pii import keyed_hash, normalise_email, normalise_phone

SCHEMA = "audit"
TABLE = "erasure_suppressions"
QUALIFIED_TABLE = f"{SCHEMA}.{TABLE}"

# Identifier types, as identity resolution names its nodes (int_identity__identifiers)
EMAIL = "email"
PHONE = "phone"
SHOPIFY_CUSTOMER = "shopify_customer"
SHOPIFY_ORDER = "shopify_order"
SHOPIFY_CHECKOUT = "shopify_checkout"
KLAVIYO_PROFILE = "klaviyo_profile"
GA4_COOKIE = "ga4_cookie"
IDENTIFIER_TYPES = (
    EMAIL,
    PHONE,
    SHOPIFY_CUSTOMER,
    SHOPIFY_ORDER,
    SHOPIFY_CHECKOUT,
    KLAVIYO_PROFILE,
    GA4_COOKIE,
)

CREATE_TABLE = f"""
create table if not exists {QUALIFIED_TABLE} (
    identifier_type varchar not null,
    identifier_hash varchar not null,
    request_id varchar not null,
    suppressed_at timestamp with time zone not null,
    primary key (identifier_type, identifier_hash)
)
"""


@cache
def default_calling_code() -> str | None:
    """The dbt var ``identity_default_calling_code`` of the project (phones without a country code)."""
    project = yaml.safe_load((paths.PROJECT_ROOT / "transform" / "dbt_project.yml").read_text())
    code = (project.get("vars") or {}).get("identity_default_calling_code")
    return None if code is None else str(code)


def normalise(identifier_type: str, value: Any) -> str | None:
    """``value`` as identity resolution keys an identifier of ``identifier_type`` (ids as text)."""
    if value is None:
        return None
    text = str(value)
    if identifier_type == EMAIL:
        return normalise_email(text)
    if identifier_type == PHONE:
        return normalise_phone(text, default_calling_code())
    return text.strip() or None


def identifier_hash(identifier_type: str, value: Any, key: str) -> str | None:
    """The keyed hash of a normalised identifier (``None`` when it is no identifier)."""
    normalised = normalise(identifier_type, value)
    return None if normalised is None else keyed_hash(normalised, key)


@dataclass
class Suppression:
    """The suppression list of one run, and what it kept out (table -> records)."""

    key: str
    hashes: dict[str, frozenset[str]] = field(default_factory=dict)
    dropped: Counter = field(default_factory=Counter)
    phones_removed: Counter = field(default_factory=Counter)
    _seen: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False)

    def __bool__(self) -> bool:
        return any(self.hashes.values())

    @property
    def entries(self) -> int:
        return sum(len(hashes) for hashes in self.hashes.values())

    def matches(self, identifier_type: str, value: Any) -> bool:
        """Whether ``value`` is a suppressed identifier of ``identifier_type`` (memoised: a profile
        has many events)."""
        if value is None or not self.hashes.get(identifier_type):
            return False
        memo = (identifier_type, str(value))
        if memo not in self._seen:
            self._seen[memo] = (
                identifier_hash(identifier_type, value, self.key) in self.hashes[identifier_type]
            )
        return self._seen[memo]

    def owned(self, table: str, identifiers: Iterable[tuple[str, Any]]) -> bool:
        """Whether a record of ``table`` naming ``identifiers`` is a suppressed person's; counts it."""
        if any(self.matches(identifier_type, value) for identifier_type, value in identifiers):
            self.dropped[table] += 1
            return True
        return False

    def without_phones(self, table: str, record: dict[str, Any], fields: Iterable[str]) -> dict[str, Any]:
        """``record`` with each of its phone ``fields`` that is suppressed set to ``None``; counts it."""
        for name in fields:
            if self.matches(PHONE, record.get(name)):
                record[name] = None
                self.phones_removed[table] += 1
        return record

    def summary(self) -> str:
        """What was kept out, as counts (no values)."""
        parts = [f"{table} {count} dropped" for table, count in sorted(self.dropped.items())]
        parts += [f"{table} {count} phones removed" for table, count in sorted(self.phones_removed.items())]
        return ", ".join(parts) or "nothing matched"


def load_suppression(key: str = "", warehouse: Path | None = None) -> Suppression:
    """The suppression list in the warehouse (empty when there is none yet), read-only. Matching
    needs the hash ``key``; it may be set later (an empty list needs none)."""
    warehouse = warehouse or paths.warehouse_path()
    suppression = Suppression(key=key)
    if not warehouse.exists():
        return suppression
    with warehouse_db.connect(warehouse, read_only=True) as connection:
        exists = connection.execute(
            "select count(*) > 0 from duckdb_tables() where schema_name = ? and table_name = ?",
            [SCHEMA, TABLE],
        ).fetchone()[0]
        if not exists:
            return suppression
        rows = connection.execute(
            f"select identifier_type, list(identifier_hash) from {QUALIFIED_TABLE} group by identifier_type"
        ).fetchall()
    suppression.hashes = {identifier_type: frozenset(hashes) for identifier_type, hashes in rows}
    return suppression
