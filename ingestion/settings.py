"""Constants shared by the dlt sources: API versions, page sizes, datasets, dropped PII, load settings."""

from __future__ import annotations

SHOPIFY_API_VERSION = "2025-10"
SHOPIFY_PAGE_SIZE = 250  # the Admin REST maximum
KLAVIYO_BASE_URL = "https://a.klaviyo.com/api"
KLAVIYO_REVISION = "2025-10-15"
KLAVIYO_PROFILE_PAGE_SIZE = 100  # the API maximum for profiles
KLAVIYO_EVENT_PAGE_SIZE = 200  # the API maximum for events

# One warehouse schema (dlt dataset) per source system; the dbt sources read these names.
DATASETS = {"shopify": "raw_shopify", "klaviyo": "raw_klaviyo", "ga4": "raw_ga4"}
# Resources an earlier version loaded and no mart reads: their tables are dropped from the warehouse
# and the pipeline's schema before the source's next load, so no one keeps data held for nothing.
RETIRED_RESOURCES = {"klaviyo": ("list_memberships",)}

GA4_FILE_GLOB = "events_*.json.gz"
# GA4 rewrites a daily export table for up to 3 days while late events arrive.
GA4_RELOAD_DAYS = 3
# Export files parsed by one DuckDB read_json into one Parquet file (a day is about 1-2 MB gzipped at
# 100,000 customers): DuckDB reads them in parallel and dlt imports one file per batch.
GA4_FILES_PER_BATCH = 16

# Personal data no mart uses is dropped before it reaches the warehouse (GDPR data minimisation).
# Emails and phones stay: they are the identifiers the customer 360 is stitched on.
SHOPIFY_CUSTOMER_DROP = ("first_name", "last_name", "note", "addresses")
SHOPIFY_ADDRESS_DROP = ("first_name", "last_name", "name", "address1", "address2", "company", "phone", "zip")
SHOPIFY_ORDER_DROP = ("browser_ip", "billing_address", "shipping_address", "client_details", "note")
KLAVIYO_PROFILE_DROP = ("first_name", "last_name", "image", "title", "organization")
KLAVIYO_LOCATION_DROP = ("address1", "address2", "zip", "ip", "latitude", "longitude")

# DuckDB settings of a source's dlt loads (fields of dlt's duckdb credentials). GA4 loads about a
# million events a day: with insertion order preserved, DuckDB keeps such an insert uncompressed until
# the connection closes and only then compresses it (about 2 s per million events, for the staging
# table and again for the merge); without it, the insert writes compressed row groups as it goes.
# Raw tables have no order. The memory limit keeps the loader's peak memory bounded (DuckDB would
# otherwise take up to 80% of the machine's memory for a merge).
_BOUNDED_LOAD = {
    "local_config": {"preserve_insertion_order": False},
    "global_config": {"memory_limit": "1GB"},
}
DUCKDB_LOAD_SETTINGS = {"shopify": _BOUNDED_LOAD, "klaviyo": _BOUNDED_LOAD, "ga4": _BOUNDED_LOAD}

# The file format dlt's normalizer writes for the API sources' tables. DuckDB's default is SQL INSERT
# statements, which dlt renders value by value in Python and DuckDB parses and runs row by row; Parquet
# is written by pyarrow and bulk-loaded by DuckDB. The tables, columns and types are the same (at size M:
# Klaviyo events normalize 3.5x and load 7x faster).
API_LOADER_FILE_FORMAT = "parquet"
