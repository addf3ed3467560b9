"""dlt source for the Shopify Admin REST API: customers, orders, products and abandoned checkouts.

Every resource is merged on ``id`` and loaded incrementally on ``updated_at`` (the API's
``updated_at_min`` filter), so a refund or a cancellation on an old order re-loads that order and
its nested tables (line items, refunds, …) are replaced with it. Timestamps other than the cursor
stay as the API's strings; dbt staging casts them, so a malformed value lands in the warehouse and
is quarantined there instead of failing the load. A record without an id or a usable cursor goes
to ``raw_shopify.quarantined_records``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dlt
from dlt.sources.helpers.rest_client.auth import APIKeyAuth
from dlt.sources.helpers.rest_client.paginators import HeaderLinkPaginator

from ingestion import settings
from ingestion.cursors import parse_cursor
from ingestion.http import ApiClient
from ingestion.pii import without
from ingestion.quarantine import quarantined, split_quarantined

# endpoint -> JSON key of the list in its response
ENDPOINTS = {"customers": "customers", "orders": "orders", "products": "products", "checkouts": "checkouts"}

# Only these query parameters may accompany a page_info cursor, so they go on the first request only.
FIRST_PAGE_FILTERS = {"orders": {"status": "any"}, "checkouts": {"status": "open"}}


def _client(shop_url: str, access_token: str, api_version: str) -> ApiClient:
    return ApiClient(
        f"{shop_url.rstrip('/')}/admin/api/{api_version}",
        service="Shopify",
        credential_setting="sources.shopify.access_token",
        auth=APIKeyAuth(name="X-Shopify-Access-Token", api_key=access_token, location="header"),
        paginator=HeaderLinkPaginator(),
    )


def _minimise(endpoint: str, record: dict[str, Any]) -> dict[str, Any]:
    """Drop personal fields no mart uses, keeping city and country of addresses."""
    if endpoint == "customers":
        record = without(record, settings.SHOPIFY_CUSTOMER_DROP)
        record["default_address"] = without(record.get("default_address"), settings.SHOPIFY_ADDRESS_DROP)
    elif endpoint in ("orders", "checkouts"):
        record = without(record, settings.SHOPIFY_ORDER_DROP)
        if record.get("customer"):
            record["customer"] = {"id": record["customer"].get("id")}
    return record


def _prepare(endpoint: str, record: dict[str, Any]) -> Any:
    """The record ready to load, or its quarantine row when it cannot be merged or tracked."""
    if not isinstance(record.get("id"), int):
        return quarantined(endpoint, record, f"id {record.get('id')!r} is missing or not an integer")
    try:
        cursor = parse_cursor(record, "updated_at", f"shopify {endpoint[:-1]}")
    except ValueError as error:
        return quarantined(endpoint, record, str(error))
    record = _minimise(endpoint, record)
    record["updated_at"] = cursor
    return record


def _pages(client: ApiClient, endpoint: str, updated_at: dlt.sources.incremental) -> Iterator[Any]:
    params: dict[str, Any] = {"limit": settings.SHOPIFY_PAGE_SIZE, **FIRST_PAGE_FILTERS.get(endpoint, {})}
    if updated_at.last_value is not None:
        params["updated_at_min"] = updated_at.last_value.isoformat()
    for page in client.paginate(f"{endpoint}.json", params=params, data_selector=ENDPOINTS[endpoint]):
        yield from split_quarantined([_prepare(endpoint, record) for record in page])


@dlt.source(name="shopify", max_table_nesting=2)
def shopify_source(
    shop_url: str = dlt.config.value,
    access_token: str = dlt.secrets.value,
    api_version: str = settings.SHOPIFY_API_VERSION,
    start_date: str | None = None,
):
    """Shopify Admin REST resources, each merged on ``id`` and incremental on ``updated_at``.

    ``start_date`` (ISO 8601) limits the first load to records updated since then.
    """
    # Keep the API's timestamp strings as they are; staging casts them and quarantines bad ones.
    dlt.current.source_schema().remove_type_detection("iso_timestamp")
    client = _client(shop_url, access_token, api_version)
    initial = parse_cursor({"start_date": start_date}, "start_date", "setting") if start_date else None
    resources = []
    for endpoint in ENDPOINTS:

        def fetch(
            updated_at: dlt.sources.incremental = dlt.sources.incremental(
                "updated_at", initial_value=initial, on_cursor_value_missing="include"
            ),
            endpoint: str = endpoint,
        ) -> Iterator[list[Any]]:
            yield from _pages(client, endpoint, updated_at)

        fetch.__doc__ = f"Shopify {endpoint}, merged on id, incremental on updated_at."
        resources.append(dlt.resource(fetch, name=endpoint, primary_key="id", write_disposition="merge"))
    return resources
