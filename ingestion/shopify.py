"""dlt source for the Shopify Admin REST API: customers, orders, products and abandoned checkouts.

Every resource is merged on ``id`` and loaded incrementally on ``updated_at`` (the API's
``updated_at_min`` filter), so a refund or a cancellation on an old order re-loads that order.
Timestamps other than the cursor stay as the API's strings; dbt staging casts them, so a
malformed value lands in the warehouse and is quarantined there instead of failing the load.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dlt
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import APIKeyAuth
from dlt.sources.helpers.rest_client.paginators import HeaderLinkPaginator

from ingestion import settings
from ingestion.cursors import parse_cursor
from ingestion.pii import without

# endpoint -> JSON key of the list in its response
ENDPOINTS = {"customers": "customers", "orders": "orders", "products": "products", "checkouts": "checkouts"}


def _client(shop_url: str, access_token: str, api_version: str) -> RESTClient:
    return RESTClient(
        base_url=f"{shop_url.rstrip('/')}/admin/api/{api_version}",
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


def _pages(
    client: RESTClient, endpoint: str, updated_at: dlt.sources.incremental
) -> Iterator[list[dict[str, Any]]]:
    params: dict[str, Any] = {"limit": settings.SHOPIFY_PAGE_SIZE}
    if endpoint == "orders":
        params["status"] = "any"  # the API returns only open orders otherwise
    if endpoint == "checkouts":
        params["status"] = "open"  # abandoned checkouts only
    if updated_at.last_value is not None:
        params["updated_at_min"] = updated_at.last_value.isoformat()
    for page in client.paginate(f"{endpoint}.json", params=params, data_selector=ENDPOINTS[endpoint]):
        records = []
        for record in page:
            record = _minimise(endpoint, record)
            record["updated_at"] = parse_cursor(record, "updated_at", f"shopify {endpoint[:-1]}")
            records.append(record)
        yield records


@dlt.source(name="shopify", max_table_nesting=2)
def shopify_source(
    shop_url: str = dlt.config.value,
    access_token: str = dlt.secrets.value,
    api_version: str = settings.SHOPIFY_API_VERSION,
):
    """Shopify Admin REST resources, each merged on ``id`` and incremental on ``updated_at``."""
    # Keep the API's timestamp strings as they are; staging casts them and quarantines bad ones.
    dlt.current.source_schema().remove_type_detection("iso_timestamp")
    client = _client(shop_url, access_token, api_version)
    resources = []
    for endpoint in ENDPOINTS:

        def fetch(
            updated_at: dlt.sources.incremental = dlt.sources.incremental("updated_at"),
            endpoint: str = endpoint,
        ) -> Iterator[list[dict[str, Any]]]:
            yield from _pages(client, endpoint, updated_at)

        fetch.__doc__ = f"Shopify {endpoint}, merged on id, incremental on updated_at."
        resources.append(dlt.resource(fetch, name=endpoint, primary_key="id", write_disposition="merge"))
    return resources
