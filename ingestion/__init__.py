"""shop360 ingestion: dlt sources for Shopify, Klaviyo and GA4, and the sandbox that fakes them."""
