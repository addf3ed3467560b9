"""dlt source for the Shopify Admin REST API: customers, orders, products and abandoned checkouts.

Every resource is merged on ``id`` and loaded incrementally on ``updated_at`` (the API's
``updated_at_min`` filter), so a refund or a cancellation on an old order re-loads that order and
its nested tables (line items, refunds, …) are replaced with it. Timestamps other than the cursor
stay as the API's strings; dbt staging casts them, so a malformed value lands in the warehouse and
is quarantined there instead of failing the load. A record without an id or a usable cursor goes
to ``raw_shopify.quarantined_records``. Records of erased people (the suppression list) are dropped
before either, and an erased person's phone on someone else's record is removed.
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
from ingestion.suppression import EMAIL, SHOPIFY_CHECKOUT, SHOPIFY_CUSTOMER, SHOPIFY_ORDER, Suppression

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


# endpoint -> the type of its records' ids (identity resolution's node types)
RECORD_TYPES = {"customers": SHOPIFY_CUSTOMER, "orders": SHOPIFY_ORDER, "checkouts": SHOPIFY_CHECKOUT}
# Fields holding a phone, on the records that keep them (addresses are dropped by _minimise)
PHONE_FIELDS = ("phone",)


def owner_identifiers(endpoint: str, record: dict[str, Any]) -> list[tuple[str, Any]]:
    """The identifiers that make a record someone's: its id, its customer's id, its email."""
    if endpoint not in RECORD_TYPES:
        return []
    customer = record.get("customer") or {}
    return [
        (RECORD_TYPES[endpoint], record.get("id")),
        (SHOPIFY_CUSTOMER, customer.get("id") if isinstance(customer, dict) else None),
        (EMAIL, record.get("email")),
        (EMAIL, customer.get("email") if isinstance(customer, dict) else None),
    ]


def _suppressed(endpoint: str, record: dict[str, Any], suppression: Suppression | None) -> bool:
    """Whether the record is an erased person's (then it is dropped); removes an erased phone."""
    if not suppression or endpoint not in RECORD_TYPES:
        return False
    if suppression.owned(endpoint, owner_identifiers(endpoint, record)):
        return True
    suppression.without_phones(endpoint, record, PHONE_FIELDS)
    return False


def _prepare(endpoint: str, record: dict[str, Any], suppression: Suppression | None = None) -> Any:
    """The record ready to load, its quarantine row when it cannot be merged or tracked, or None when
    it belongs to an erased person."""
    if _suppressed(endpoint, record, suppression):
        return None
    if not isinstance(record.get("id"), int):
        return quarantined(endpoint, record, f"id {record.get('id')!r} is missing or not an integer")
    try:
        cursor = parse_cursor(record, "updated_at", f"shopify {endpoint[:-1]}")
    except ValueError as error:
        return quarantined(endpoint, record, str(error))
    record = _minimise(endpoint, record)
    record["updated_at"] = cursor
    return record


def _pages(
    client: ApiClient,
    endpoint: str,
    updated_at: dlt.sources.incremental,
    suppression: Suppression | None = None,
) -> Iterator[Any]:
    params: dict[str, Any] = {"limit": settings.SHOPIFY_PAGE_SIZE, **FIRST_PAGE_FILTERS.get(endpoint, {})}
    if updated_at.last_value is not None:
        params["updated_at_min"] = updated_at.last_value.isoformat()
    for page in client.paginate(f"{endpoint}.json", params=params, data_selector=ENDPOINTS[endpoint]):
        prepared = (_prepare(endpoint, record, suppression) for record in page)
        yield from split_quarantined([record for record in prepared if record is not None])


@dlt.source(name="shopify", max_table_nesting=2)
def shopify_source(
    shop_url: str = dlt.config.value,
    access_token: str = dlt.secrets.value,
    api_version: str = settings.SHOPIFY_API_VERSION,
    start_date: str | None = None,
    suppression: Suppression | None = None,
):
    """Shopify Admin REST resources, each merged on ``id`` and incremental on ``updated_at``.

    ``start_date`` (ISO 8601) limits the first load to records updated since then; records of the
    people on the ``suppression`` list are dropped.
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
            yield from _pages(client, endpoint, updated_at, suppression)

        fetch.__doc__ = f"Shopify {endpoint}, merged on id, incremental on updated_at."
        resources.append(
            dlt.resource(
                fetch,
                name=endpoint,
                primary_key="id",
                write_disposition="merge",
                file_format=settings.API_LOADER_FILE_FORMAT,
            )
        )
    return resources
