"""Customer-level predictions: purchase counts, survival and lifetime value (BG/NBD and Gamma-Gamma)."""
