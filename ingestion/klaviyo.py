"""dlt source for the Klaviyo JSON:API: profiles (with consent), events, metrics, campaigns, lists.

JSON:API resource objects are flattened to one row each: ``id``, the attributes, and the ids of
related objects (``profile_id``, ``metric_id``); events carry their metric's name. Profiles and
events are merged on ``id`` and incremental on ``updated`` / ``datetime``, so a re-run after a
failed load never duplicates an event. List memberships are not read: no mart uses them (consent
is the profile's own), and re-reading them all every night cost seconds a night for data held for
no purpose. Profiles and events of erased people (the suppression list) are dropped, and an erased
person's phone on another profile is removed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import dlt
from dlt.sources.helpers.rest_client.auth import APIKeyAuth
from dlt.sources.helpers.rest_client.paginators import JSONLinkPaginator

from ingestion import settings
from ingestion.cursors import parse_cursor
from ingestion.http import ApiClient
from ingestion.pii import without
from ingestion.quarantine import quarantined, split_quarantined
from ingestion.suppression import EMAIL, KLAVIYO_PROFILE, SHOPIFY_ORDER, Suppression

_FILE_FORMAT = settings.API_LOADER_FILE_FORMAT


def _client(base_url: str, api_key: str, revision: str) -> ApiClient:
    return ApiClient(
        base_url.rstrip("/"),
        service="Klaviyo",
        credential_setting="sources.klaviyo.api_key",
        # an auth object, not a header: dlt's request log prints headers, never auth
        auth=APIKeyAuth(name="Authorization", api_key=f"Klaviyo-API-Key {api_key}", location="header"),
        headers={"revision": revision, "accept": "application/vnd.api+json"},
        paginator=JSONLinkPaginator(next_url_path="links.next"),
    )


def _flatten(resource: dict[str, Any]) -> dict[str, Any]:
    """One row from a JSON:API resource object: id, attributes, and ``<relation>_id`` columns."""
    row = {"id": resource["id"], **resource.get("attributes", {})}
    for name, relation in (resource.get("relationships") or {}).items():
        data = relation.get("data")
        if isinstance(data, dict):
            row[f"{name}_id"] = data.get("id")
    return row


def _since(cursor: dlt.sources.incremental, field: str) -> str | None:
    if cursor.last_value is None:
        return None
    # greater-or-equal: records sharing the last timestamp are de-duplicated by dlt, not missed
    return f"greater-or-equal({field},{cursor.last_value.isoformat()})"


def _with_cursor(row: dict[str, Any], field: str, table: str) -> Any:
    """``row`` with its cursor parsed, or its quarantine row when the cursor is unusable."""
    try:
        row[field] = parse_cursor(row, field, f"klaviyo {table[:-1]}")
    except ValueError as error:
        return quarantined(table, row, str(error))
    return row


def owner_identifiers(table: str, row: dict[str, Any]) -> list[tuple[str, Any]]:
    """The identifiers that make a flattened row someone's: a profile's id and email, the profile of
    an event, the Shopify order of a Placed Order event."""
    if table == "profiles":
        return [(KLAVIYO_PROFILE, row.get("id")), (EMAIL, row.get("email"))]
    properties = row.get("event_properties") if table == "events" else None
    order_id = properties.get("$event_id") if isinstance(properties, dict) else None
    return [(KLAVIYO_PROFILE, row.get("profile_id")), (SHOPIFY_ORDER, order_id)]


def _kept(table: str, rows: list[dict[str, Any]], suppression: Suppression | None) -> list[dict[str, Any]]:
    """``rows`` without those of erased people; an erased phone removed from the profiles kept."""
    if not suppression:
        return rows
    kept = [row for row in rows if not suppression.owned(table, owner_identifiers(table, row))]
    if table == "profiles":
        kept = [suppression.without_phones(table, row, ("phone_number",)) for row in kept]
    return kept


def _incremental(field: str, initial: datetime | None) -> dlt.sources.incremental:
    return dlt.sources.incremental(field, initial_value=initial, on_cursor_value_missing="include")


@dlt.source(name="klaviyo", max_table_nesting=3)
def klaviyo_source(
    base_url: str = settings.KLAVIYO_BASE_URL,
    api_key: str = dlt.secrets.value,
    revision: str = settings.KLAVIYO_REVISION,
    start_date: str | None = None,
    suppression: Suppression | None = None,
):
    """Klaviyo profiles, events, metrics, campaigns and lists.

    ``start_date`` (ISO 8601) limits the first load to profiles updated and events since then; the
    profiles and events of the people on the ``suppression`` list are dropped.
    """
    dlt.current.source_schema().remove_type_detection("iso_timestamp")
    client = _client(base_url, api_key, revision)
    initial = parse_cursor({"start_date": start_date}, "start_date", "setting") if start_date else None

    @dlt.resource(primary_key="id", write_disposition="merge", file_format=_FILE_FORMAT)
    def profiles(
        updated_since: dlt.sources.incremental = _incremental("updated", initial),
    ) -> Iterator[list[Any]]:
        """Klaviyo profiles with email consent and zero-party properties, incremental on updated."""
        params = {
            "page[size]": settings.KLAVIYO_PROFILE_PAGE_SIZE,
            "sort": "updated",
            # consent is only returned when asked for
            "additional-fields[profile]": "subscriptions",
        }
        if since := _since(updated_since, "updated"):
            params["filter"] = since
        for page in client.paginate("/profiles", params=params, data_selector="data"):
            rows = []
            for flattened in _kept("profiles", [_flatten(resource) for resource in page], suppression):
                row = without(flattened, settings.KLAVIYO_PROFILE_DROP)
                row["location"] = without(row.get("location"), settings.KLAVIYO_LOCATION_DROP)
                rows.append(_with_cursor(row, "updated", "profiles"))
            yield from split_quarantined(rows)

    @dlt.resource(primary_key="id", write_disposition="merge", file_format=_FILE_FORMAT)
    def events(
        occurred_since: dlt.sources.incremental = _incremental("datetime", initial),
    ) -> Iterator[list[Any]]:
        """Klaviyo events (email engagement, orders) with their metric name, incremental on datetime."""
        params = {"page[size]": settings.KLAVIYO_EVENT_PAGE_SIZE, "sort": "datetime", "include": "metric"}
        if since := _since(occurred_since, "datetime"):
            params["filter"] = since
        for page in client.paginate("/events", params=params, data_selector="data"):
            body = page.response.json()
            metric_names = {m["id"]: m["attributes"].get("name") for m in body.get("included", [])}
            rows = []
            for row in _kept("events", [_flatten(resource) for resource in page], suppression):
                row["metric_name"] = metric_names.get(row.get("metric_id"))
                rows.append(_with_cursor(row, "datetime", "events"))
            yield from split_quarantined(rows)

    @dlt.resource(primary_key="id", write_disposition="merge", file_format=_FILE_FORMAT)
    def metrics() -> Iterator[list[dict[str, Any]]]:
        """Klaviyo metrics (event types)."""
        for page in client.paginate("/metrics", data_selector="data"):
            yield [_flatten(resource) for resource in page]

    @dlt.resource(primary_key="id", write_disposition="merge", file_format=_FILE_FORMAT)
    def campaigns() -> Iterator[list[dict[str, Any]]]:
        """Klaviyo email campaigns."""
        params = {"filter": "equals(messages.channel,'email')"}
        for page in client.paginate("/campaigns", params=params, data_selector="data"):
            yield [_flatten(resource) for resource in page]

    @dlt.resource(primary_key="id", write_disposition="merge", file_format=_FILE_FORMAT)
    def lists() -> Iterator[list[dict[str, Any]]]:
        """Klaviyo lists."""
        for page in client.paginate("/lists", data_selector="data"):
            yield [_flatten(resource) for resource in page]

    return profiles, events, metrics, campaigns, lists
