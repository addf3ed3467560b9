"""The sandbox: a deterministic fake shop (world generator, fake APIs, GA4 export files)."""
