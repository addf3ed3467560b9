"""shop360 orchestration: the Dagster definitions that run the nightly pipeline."""
